// The C++ core called from 8 threads at once (as one Python predictor shared by 8 threads calls
// it, the GIL released), under ThreadSanitizer: every kernel's output must equal a sequential
// run's, and TSan must report no race in the kernels or the shared thread pool. Run from the
// repo root:
//   g++ -std=c++17 -O1 -g -fsanitize=thread -ffp-contract=off -Icsrc csrc/fuzz/concurrent_main.cpp \
//       csrc/core/*.cpp -pthread -o /tmp/es_tsan_mt && TSAN_OPTIONS=halt_on_error=1 /tmp/es_tsan_mt
#include <cstdio>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

#include "core/letterbox.h"
#include "core/masks.h"
#include "core/nms.h"
#include "core/overlay.h"
#include "core/threadpool.h"
#include "core/upsample_argmax.h"

using namespace edgeseg;

namespace {

struct Inputs {
  std::vector<uint8_t> image;  // 45 x 61 x 3
  std::vector<float> logits;   // 5 x 12 x 16
  std::vector<float> boxes, scores, coeffs, protos;
  std::vector<int64_t> cls;
};

Inputs make_inputs(unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1, 1), x(-5, 70);
  Inputs in;
  in.image.resize(45 * 61 * 3);
  for (auto& v : in.image) v = static_cast<uint8_t>(rng() & 255);
  in.logits.resize(5 * 12 * 16);
  for (auto& v : in.logits) v = u(rng);
  const int K = 20;
  for (int k = 0; k < K; ++k) {
    float a = x(rng), b = x(rng), c = x(rng), d = x(rng);
    in.boxes.insert(in.boxes.end(), {std::min(a, b), std::min(c, d), std::max(a, b), std::max(c, d)});
    in.scores.push_back((u(rng) + 1) / 2);
    in.cls.push_back(k % 3);
  }
  in.coeffs.resize(K * 8);
  for (auto& v : in.coeffs) v = u(rng);
  in.protos.resize(8 * 16 * 16);
  for (auto& v : in.protos) v = u(rng);
  return in;
}

// Every kernel once; returns all outputs as bytes.
std::vector<uint8_t> run_all(const Inputs& in) {
  std::vector<uint8_t> out;
  auto append = [&out](const void* p, size_t n) {
    out.insert(out.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
  };
  const float scale[3] = {1 / 58.f, 1 / 57.f, 1 / 57.f}, bias[3] = {-2.1f, -2.0f, -1.8f}, pad[3] = {0, 0, 0};
  std::vector<float> lb(3 * 64 * 64);
  letterbox(in.image.data(), 45, 61, lb.data(), FloatType::F32, 64, 64, 47, 64, 8, 0, scale, bias, pad);
  append(lb.data(), lb.size() * 4);
  std::vector<uint8_t> labels(45 * 61);
  upsample_argmax(in.logits.data(), FloatType::F32, 5, 12, 16, labels.data(), LabelType::U8, 45, 61, 12.0 / 45,
                  6.0 / 45 - 0.5, 16.0 / 61, 8.0 / 61 - 0.5);
  append(labels.data(), labels.size());
  const int64_t K = static_cast<int64_t>(in.scores.size());
  Strided2D bx{in.boxes.data(), FloatType::F32, 4, 1};
  NmsParams p;
  const auto keep = nms(bx, in.scores.data(), in.cls.data(), K, p);
  append(keep.data(), keep.size() * 8);
  std::vector<int32_t> regions(4 * K);
  assemble_regions(in.boxes.data(), K, 45, 61, regions.data());
  std::vector<int64_t> offsets(K + 1, 0);
  for (int64_t k = 0; k < K; ++k)
    offsets[k + 1] = offsets[k] + int64_t(regions[4 * k + 2] - regions[4 * k]) * (regions[4 * k + 3] - regions[4 * k + 1]);
  std::vector<uint8_t> data(offsets[K] + 1);
  AxisMap my{45, 45, 0, 16, 64}, mx{61, 61, 0, 16, 64};
  assemble_masks(in.coeffs.data(), K, 8, in.protos.data(), FloatType::F32, 16, 16, regions.data(), offsets.data(),
                 data.data(), my, mx, 0.0, false);
  append(data.data(), data.size());
  std::vector<uint8_t> vis(in.image);
  std::vector<uint8_t> colors(3 * K, 200);
  overlay_instances(vis.data(), 45, 61, data.data(), offsets.data(), regions.data(), K, colors.data(), 32768, true,
                    vis.data());
  const uint8_t palette[15] = {0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9};
  overlay(vis.data(), labels.data(), LabelType::U8, 45, 61, palette, 5, 20000, vis.data());
  append(vis.data(), vis.size());
  return out;
}

}  // namespace

int main() {
  const int T = 8, R = 25;
  std::vector<Inputs> inputs;
  for (int t = 0; t < T; ++t) inputs.push_back(make_inputs(100 + t));
  for (int threads : {1, 3}) {
    set_num_threads(threads);
    std::vector<std::vector<uint8_t>> want;
    for (int t = 0; t < T; ++t) want.push_back(run_all(inputs[t]));
    std::vector<int> mismatches(T, 0);
    std::vector<std::thread> pool;
    for (int t = 0; t < T; ++t)
      pool.emplace_back([&, t] {
        for (int r = 0; r < R; ++r)
          if (run_all(inputs[t]) != want[t]) ++mismatches[t];
      });
    for (auto& th : pool) th.join();
    int bad = 0;
    for (int m : mismatches) bad += m;
    std::printf("pool of %d: %d callers x %d rounds, %d mismatches\n", threads, T, R, bad);
    if (bad) return 1;
  }
  std::printf("ok\n");
  return 0;
}
