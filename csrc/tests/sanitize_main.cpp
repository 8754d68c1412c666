// Standalone C++ smoke test of csrc/core under sanitizers (no Python): odd/tiny shapes, both
// SIMD and scalar paths, 1 and 3 threads, in-place overlay, and the instance kernels (NMS,
// detection decode, mask assembly and paste, RLE, areas, instance overlay) on random boxes that
// include degenerate, out-of-frame and non-finite ones. It checks memory/UB/races, not values
// (values are checked against numpy references in tests/test_ops.py). Run from the repo root:
//   g++ -std=c++17 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -ffp-contract=off \
//       -Icsrc csrc/tests/sanitize_main.cpp csrc/core/*.cpp -pthread -o /tmp/es_san && /tmp/es_san
//   (or -fsanitize=thread for the thread pool)
#include <algorithm>
#include <limits>
#include <cstdio>
#include <random>
#include <vector>
#include "core/argmax.h"
#include "core/letterbox.h"
#include "core/masks.h"
#include "core/nms.h"
#include "core/overlay.h"
#include "core/simd.h"
#include "core/threadpool.h"
#include "core/upsample_argmax.h"
using namespace edgeseg;

// Sets up a box-local mask set (regions -> offsets -> data) the way the Python layer does.
static void fill_offsets(const std::vector<int32_t>& regions, std::vector<int64_t>& offsets) {
  const size_t K = regions.size() / 4;
  offsets.assign(K + 1, 0);
  for (size_t k = 0; k < K; ++k) {
    const int64_t area = int64_t(regions[4 * k + 2] - regions[4 * k]) * (regions[4 * k + 3] - regions[4 * k + 1]);
    offsets[k + 1] = offsets[k] + area;
  }
}

static void instance_kernels(std::mt19937& rng) {
  std::uniform_real_distribution<float> X(-20, 90);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (int K : {0, 1, 7, 40}) {
    std::vector<float> boxes(4 * K), scores(K), coeffs(K * 4);
    std::vector<int64_t> cls(K);
    for (int k = 0; k < K; ++k) {
      float a = X(rng), b = X(rng), c = X(rng), d = X(rng);
      boxes[4 * k] = std::min(a, b);
      boxes[4 * k + 1] = std::min(c, d);
      boxes[4 * k + 2] = std::max(a, b);
      boxes[4 * k + 3] = std::max(c, d);
      scores[k] = float(k % 5) / 5.0f;
      cls[k] = k % 3;
      for (int j = 0; j < 4; ++j) coeffs[k * 4 + j] = X(rng) / 50.0f;
    }
    if (K > 2) {
      boxes[4] = nan;      // non-finite box
      boxes[10] = boxes[8];  // zero-width box
    }
    Strided2D bx{boxes.data(), FloatType::F32, 4, 1};
    NmsParams p;
    p.max_detections = 5;
    nms(bx, scores.data(), cls.data(), K, p);
    p.class_agnostic = true;
    nms(bx, scores.data(), nullptr, K, p);
    // (4 + 3, K) head output read transposed in place, as YOLO heads emit it
    std::vector<float> head((4 + 3) * std::max(K, 1));
    for (auto& v : head) v = X(rng) / 90.0f;
    Strided2D hb{head.data(), FloatType::F32, 1, std::max(K, 1)};
    Strided2D hs{head.data() + 4 * std::max(K, 1), FloatType::F32, 1, std::max(K, 1)};
    select_detections(hb, hs, K, 3, p);

    for (int H : {1, 31, 64})
      for (int W : {1, 45}) {
        std::vector<int32_t> regions(4 * K);
        std::vector<int64_t> offsets, areas(K);
        assemble_regions(boxes.data(), K, H, W, regions.data());
        fill_offsets(regions, offsets);
        std::vector<uint8_t> data(offsets.back() + 1);
        std::vector<float> protos(4 * 16 * 16);
        for (auto& v : protos) v = X(rng) / 90.0f;
        std::vector<uint16_t> protos16(protos.size(), 0x3c00);
        AxisMap my{double(H), double(H), 0.0, 16.0, 64.0}, mx{double(W), double(W), 3.0, 16.0, 64.0};
        for (bool fast : {false, true}) {
          assemble_masks(coeffs.data(), K, 4, protos.data(), FloatType::F32, 16, 16, regions.data(),
                         offsets.data(), data.data(), my, mx, 0.0, fast);
          assemble_masks(coeffs.data(), K, 4, protos16.data(), FloatType::F16, 16, 16, regions.data(),
                         offsets.data(), data.data(), my, mx, 0.0, fast);
        }
        mask_areas(data.data(), offsets.data(), K, areas.data());
        rle_strings(data.data(), offsets.data(), regions.data(), K, H, W);
        std::vector<uint8_t> img(H * W * 3, 100), colors(3 * std::max(K, 1), 200);
        for (bool outline : {false, true})
          overlay_instances(img.data(), H, W, data.data(), offsets.data(), regions.data(), K,
                            colors.data(), 30000, outline, img.data());

        paste_regions(boxes.data(), K, H, W, regions.data());
        fill_offsets(regions, offsets);
        data.assign(offsets.back() + 1, 0);
        std::vector<float> m28(K * 28 * 28);
        for (auto& v : m28) v = X(rng) / 90.0f;
        std::vector<uint16_t> m16(m28.size(), 0x3800);
        paste_masks(m28.data(), FloatType::F32, K, 28, 28, boxes.data(), regions.data(), offsets.data(),
                    data.data(), 0.5);
        paste_masks(m16.data(), FloatType::F16, K, 28, 28, boxes.data(), regions.data(), offsets.data(),
                    data.data(), 0.5);
      }
  }
}

int main() {
  std::mt19937 rng(0);
  std::uniform_real_distribution<float> U(-1, 1);
  for (int simd = 0; simd < 2; ++simd) {
    set_simd_enabled(simd);
    for (int th : {1, 3}) {
      set_num_threads(th);
      for (int C : {1, 3, 19, 300})
        for (int h : {1, 2, 7})
          for (int w : {1, 5, 17}) {
            std::vector<float> f(C * h * w);
            for (auto& v : f) v = U(rng);
            std::vector<uint16_t> hf(f.size(), 0x3c00);
            std::vector<int32_t> o32(64 * 129);
            std::vector<uint8_t> o8(64 * 129);
            LabelType lt = label_type_for(C);
            void* out = lt == LabelType::U8 ? (void*)o8.data() : (void*)o32.data();
            argmax(f.data(), FloatType::F32, 1, C, h * w, out, lt);
            argmax(hf.data(), FloatType::F16, 1, C, h * w, out, lt);
            for (int H : {1, 3, 64})
              for (int W : {1, 17, 129}) {
                double ay = double(h) / H, ax = double(w) / W;
                upsample_argmax(f.data(), FloatType::F32, C, h, w, out, lt, H, W, ay, ay / 2 - .5, ax, ax / 2 - .5);
                upsample_argmax(hf.data(), FloatType::F16, C, h, w, out, lt, H, W, ay * 0.7, 3.0, ax * 1.3, -2.0);
              }
          }
      for (int H : {1, 5, 33})
        for (int W : {1, 9, 70})
          for (int oh : {1, 8, 31})
            for (int ow : {1, 16, 33}) {
              std::vector<uint8_t> img(H * W * 3, 7);
              double s = std::min(double(oh) / H, double(ow) / W);
              int rh = std::max(1, std::min(oh, int(H * s + 0.5))), rw = std::max(1, std::min(ow, int(W * s + 0.5)));
              std::vector<float> o(3 * oh * ow);
              std::vector<uint16_t> o16(3 * oh * ow);
              float k[3] = {1, 1, 1}, b[3] = {0, 0, 0}, p[3] = {1, 2, 3};
              letterbox(img.data(), H, W, o.data(), FloatType::F32, oh, ow, rh, rw, (oh - rh) / 2, (ow - rw) / 2, k, b, p);
              letterbox(img.data(), H, W, o16.data(), FloatType::F16, oh, ow, rh, rw, (oh - rh) / 2, (ow - rw) / 2, k, b, p);
              std::vector<uint8_t> lab(H * W, 200), pal(3 * 4, 9);
              std::vector<int32_t> lab32(H * W, -3);
              overlay(img.data(), lab.data(), LabelType::U8, H, W, pal.data(), 4, 30000, img.data());
              overlay(img.data(), lab32.data(), LabelType::I32, H, W, pal.data(), 4, 30000, img.data());
              overlay(img.data(), lab32.data(), LabelType::I32, H, W, pal.data(), 0, 65536, img.data());
            }
      for (int W : {7, 8, 255, 256, 257, 600}) {  // overlay: 8-pixel groups, 256-pixel chunks
        const int H = 3;
        std::vector<uint8_t> img(H * W * 3, 100), lab(H * W), pal(3 * 5, 9);
        std::vector<int32_t> lab32(H * W);
        for (int i = 0; i < H * W; ++i) lab[i] = uint8_t(rng() % 7), lab32[i] = int32_t(rng() % 9) - 2;
        for (uint32_t a : {0u, 1u, 32767u, 32768u, 65536u}) {
          overlay(img.data(), lab.data(), LabelType::U8, H, W, pal.data(), 5, a, img.data());
          overlay(img.data(), lab32.data(), LabelType::I32, H, W, pal.data(), 5, a, img.data());
        }
      }
      for (int H : {1, 2, 9})  // frames already at the network size (row-copy path, last-row tails)
        for (int W : {1, 5, 8, 9, 10, 11, 17, 70}) {
          std::vector<uint8_t> img(H * W * 3, 11);
          std::vector<float> o(3 * H * W);
          std::vector<uint16_t> o16(3 * H * W);
          float k[3] = {1, 1, 1}, b[3] = {0, 0, 0}, p[3] = {1, 2, 3};
          letterbox(img.data(), H, W, o.data(), FloatType::F32, H, W, H, W, 0, 0, k, b, p);
          letterbox(img.data(), H, W, o16.data(), FloatType::F16, H, W, H, W, 0, 0, k, b, p);
        }
      instance_kernels(rng);
    }
  }
  std::puts("ok");
}
