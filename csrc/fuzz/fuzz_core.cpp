// libFuzzer target over the C++ core's entry points, under AddressSanitizer + UBSan.
//
// The first input byte picks a kernel; the rest, through FuzzedDataProvider, gives its shapes,
// parameters and array contents (any float bits: NaN, inf, denormals; any ints). Each call first
// applies exactly the checks the Python binding (csrc/bindings.cpp) applies, so the fuzzer
// explores everything a Python caller can reach; ASan/UBSan turn any out-of-bounds access,
// overflow or bad float->int conversion into a crash. Shapes stay small (<= 64 per side) so a run
// makes thousands of calls a second; the thread pool runs with 1 and 3 threads.
//
// Build and run (clang; tools/fuzz.sh does this):
//   clang++ -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
//       -ffp-contract=off -Icsrc csrc/fuzz/fuzz_core.cpp csrc/core/*.cpp -pthread -o /tmp/fuzz_core
//   /tmp/fuzz_core -max_total_time=60 /tmp/corpus tests/fuzz/corpus/core
#include <fuzzer/FuzzedDataProvider.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/argmax.h"
#include "core/letterbox.h"
#include "core/masks.h"
#include "core/nms.h"
#include "core/overlay.h"
#include "core/threadpool.h"
#include "core/upsample_argmax.h"

using namespace edgeseg;

namespace {

constexpr int64_t kSide = 64;

template <typename T>
std::vector<T> values(FuzzedDataProvider& in, size_t n) {
  std::vector<T> v(n);
  for (auto& x : v) {
    if (in.remaining_bytes() >= sizeof(T)) {
      in.ConsumeData(&x, sizeof(T));  // raw bits: NaN, inf, denormals, any int
    } else {
      x = T{};
    }
  }
  return v;
}

FloatType float_type(FuzzedDataProvider& in) { return in.ConsumeBool() ? FloatType::F16 : FloatType::F32; }
size_t float_size(FloatType t) { return t == FloatType::F16 ? 2 : 4; }

std::vector<uint8_t> float_bytes(FuzzedDataProvider& in, size_t n, FloatType t) {
  return values<uint8_t>(in, n * float_size(t));
}

void fuzz_letterbox(FuzzedDataProvider& in) {
  const int64_t H = in.ConsumeIntegralInRange<int64_t>(1, kSide), W = in.ConsumeIntegralInRange<int64_t>(1, kSide);
  const int64_t oh = in.ConsumeIntegralInRange<int64_t>(1, kSide), ow = in.ConsumeIntegralInRange<int64_t>(1, kSide);
  const int64_t rh = in.ConsumeIntegralInRange<int64_t>(1, oh), rw = in.ConsumeIntegralInRange<int64_t>(1, ow);
  const int64_t pt = in.ConsumeIntegralInRange<int64_t>(0, oh - rh), pl = in.ConsumeIntegralInRange<int64_t>(0, ow - rw);
  const FloatType ft = float_type(in);
  auto params = values<float>(in, 9);
  auto image = values<uint8_t>(in, size_t(H * W * 3));
  std::vector<uint8_t> out(size_t(3 * oh * ow) * float_size(ft));
  letterbox(image.data(), H, W, out.data(), ft, oh, ow, rh, rw, pt, pl, params.data(), params.data() + 3,
            params.data() + 6);
}

void fuzz_upsample_argmax(FuzzedDataProvider& in) {
  const int64_t C = in.ConsumeBool() ? in.ConsumeIntegralInRange<int64_t>(1, 8) : in.ConsumeIntegralInRange<int64_t>(1, 300);
  const int64_t h = in.ConsumeIntegralInRange<int64_t>(1, 16), w = in.ConsumeIntegralInRange<int64_t>(1, 16);
  const int64_t H = in.ConsumeIntegralInRange<int64_t>(1, kSide), W = in.ConsumeIntegralInRange<int64_t>(1, kSide);
  double ay, by, ax, bx;
  if (in.ConsumeBool()) {  // the mappings ops.py passes: plain resize, then anything
    ay = double(h) / H, by = ay / 2 - 0.5, ax = double(w) / W, bx = ax / 2 - 0.5;
  } else {
    auto m = values<double>(in, 4);
    ay = m[0], by = m[1], ax = m[2], bx = m[3];
  }
  if (!(ay > 0) || !(ax > 0)) return;  // the binding refuses these
  const FloatType ft = float_type(in);
  auto logits = float_bytes(in, size_t(C * h * w), ft);
  const LabelType lt = label_type_for(C);
  std::vector<uint8_t> labels(size_t(H * W) * (lt == LabelType::I32 ? 4 : 1));
  upsample_argmax(logits.data(), ft, C, h, w, labels.data(), lt, H, W, ay, by, ax, bx);
  // argmax over the same logits, batched as (1, C, h*w)
  std::vector<uint8_t> low(size_t(h * w) * (lt == LabelType::I32 ? 4 : 1));
  argmax(logits.data(), ft, 1, C, h * w, low.data(), lt);
}

NmsParams nms_params(FuzzedDataProvider& in, bool* ok) {
  NmsParams p;
  p.iou_threshold = in.ConsumeFloatingPoint<double>();
  p.score_threshold = in.ConsumeBool() ? in.ConsumeFloatingPoint<double>() : in.ConsumeProbability<double>();
  p.max_candidates = in.ConsumeIntegral<int64_t>();
  p.max_detections = in.ConsumeIntegral<int64_t>();
  p.class_agnostic = in.ConsumeBool();
  *ok = p.iou_threshold == p.iou_threshold && p.score_threshold == p.score_threshold && p.max_candidates >= 0 &&
        p.max_detections >= 0;
  return p;
}

void fuzz_nms(FuzzedDataProvider& in) {
  const int64_t N = in.ConsumeIntegralInRange<int64_t>(0, 64);
  const bool transposed = in.ConsumeBool();
  const FloatType ft = float_type(in);
  bool ok;
  const NmsParams p = nms_params(in, &ok);
  if (!ok) return;
  if (in.ConsumeBool()) {  // nms over (N, 4) boxes, possibly read transposed from (4, N)
    auto boxes = float_bytes(in, size_t(4 * N), ft);
    auto scores = values<float>(in, size_t(N));
    auto cls = values<int64_t>(in, size_t(N));
    Strided2D b{boxes.data(), ft, transposed ? 1 : 4, transposed ? std::max<int64_t>(N, 1) : 1};
    nms(b, scores.data(), in.ConsumeBool() ? cls.data() : nullptr, N, p);
  } else {  // fused decode of a (4 + C, A) head, read in place
    const int64_t C = in.ConsumeIntegralInRange<int64_t>(1, 16);
    auto head = float_bytes(in, size_t((4 + C) * std::max<int64_t>(N, 1)), ft);
    const int64_t A = std::max<int64_t>(N, 1);
    const size_t fs = float_size(ft);
    Strided2D b{head.data(), ft, 1, A}, s{head.data() + 4 * A * fs, ft, 1, A};
    select_detections(b, s, N, C, p);
  }
}

// A mask set over an H x W frame from K boxes: regions by the given function, offsets, data.
struct MaskSet {
  std::vector<int32_t> regions;
  std::vector<int64_t> offsets;
  std::vector<uint8_t> data;
  int64_t K = 0;
};

MaskSet allocate(const std::vector<float>& boxes, int64_t K, int64_t H, int64_t W, bool paste) {
  MaskSet m;
  m.K = K;
  m.regions.assign(size_t(4 * K), 0);
  if (paste) paste_regions(boxes.data(), K, H, W, m.regions.data());
  else assemble_regions(boxes.data(), K, H, W, m.regions.data());
  m.offsets.assign(size_t(K + 1), 0);
  for (int64_t k = 0; k < K; ++k) {
    const int32_t* r = m.regions.data() + 4 * k;
    if (r[0] < 0 || r[1] < 0 || r[2] < r[0] || r[3] < r[1] || r[2] > W || r[3] > H) __builtin_trap();  // contract
    m.offsets[k + 1] = m.offsets[k] + int64_t(r[2] - r[0]) * (r[3] - r[1]);
  }
  m.data.assign(size_t(m.offsets[K]) + 1, 0);  // +1: a valid pointer when empty
  return m;
}

void use_maskset(FuzzedDataProvider& in, MaskSet& m, int64_t H, int64_t W) {
  std::vector<int64_t> areas(size_t(m.K));
  mask_areas(m.data.data(), m.offsets.data(), m.K, areas.data());
  rle_strings(m.data.data(), m.offsets.data(), m.regions.data(), m.K, H, W);
  auto image = values<uint8_t>(in, size_t(H * W * 3));
  auto colors = values<uint8_t>(in, size_t(3 * m.K));
  const uint32_t a16 = in.ConsumeIntegralInRange<uint32_t>(0, 65536);
  const bool outline = in.ConsumeBool();
  if (in.ConsumeBool()) {
    overlay_instances(image.data(), H, W, m.data.data(), m.offsets.data(), m.regions.data(), m.K, colors.data(), a16,
                      outline, image.data());  // in place
  } else {
    std::vector<uint8_t> out(image.size());
    overlay_instances(image.data(), H, W, m.data.data(), m.offsets.data(), m.regions.data(), m.K, colors.data(), a16,
                      outline, out.data());
  }
}

void fuzz_masks(FuzzedDataProvider& in) {
  const int64_t H = in.ConsumeIntegralInRange<int64_t>(1, kSide), W = in.ConsumeIntegralInRange<int64_t>(1, kSide);
  const int64_t K = in.ConsumeIntegralInRange<int64_t>(0, 12);
  std::vector<float> boxes(size_t(4 * K));
  const bool small = in.ConsumeBool();
  for (auto& b : boxes)  // raw bits, or coordinates near the frame
    b = small ? float(in.ConsumeIntegralInRange<int>(-80, 80)) + in.ConsumeProbability<float>()
              : values<float>(in, 1)[0];
  if (in.ConsumeBool()) {  // prototype masks
    const int64_t Mc = in.ConsumeIntegralInRange<int64_t>(1, 8);
    const int64_t Hp = in.ConsumeIntegralInRange<int64_t>(1, 16), Wp = in.ConsumeIntegralInRange<int64_t>(1, 16);
    const FloatType pt = float_type(in);
    auto coeffs = values<float>(in, size_t(K * Mc));
    auto protos = float_bytes(in, size_t(Mc * Hp * Wp), pt);
    auto maps = values<double>(in, 6);
    const double thr = in.ConsumeFloatingPoint<double>();
    const bool fast = in.ConsumeBool();
    if (!(maps[0] > 0) || !(maps[2] > 0) || !(maps[3] > 0) || !(maps[5] > 0) || thr != thr) return;  // binding checks
    MaskSet m = allocate(boxes, K, H, W, false);
    const AxisMap my{maps[0], double(H), maps[1], double(Hp), maps[2]};
    const AxisMap mx{maps[3], double(W), maps[4], double(Wp), maps[5]};
    assemble_masks(coeffs.data(), K, Mc, protos.data(), pt, Hp, Wp, m.regions.data(), m.offsets.data(), m.data.data(),
                   my, mx, thr, fast);
    use_maskset(in, m, H, W);
  } else {  // RoI masks pasted into the frame
    const int64_t Mh = in.ConsumeIntegralInRange<int64_t>(1, 28), Mw = in.ConsumeIntegralInRange<int64_t>(1, 28);
    const FloatType ft = float_type(in);
    auto masks = float_bytes(in, size_t(K * Mh * Mw) + 1, ft);
    const double thr = in.ConsumeFloatingPoint<double>();
    if (!std::isfinite(thr)) return;  // binding check
    MaskSet m = allocate(boxes, K, H, W, true);
    paste_masks(masks.data(), ft, K, Mh, Mw, boxes.data(), m.regions.data(), m.offsets.data(), m.data.data(), thr);
    use_maskset(in, m, H, W);
  }
}

void fuzz_overlay(FuzzedDataProvider& in) {
  const int64_t H = in.ConsumeIntegralInRange<int64_t>(1, kSide), W = in.ConsumeIntegralInRange<int64_t>(1, kSide);
  const int64_t K = in.ConsumeIntegralInRange<int64_t>(0, 300);
  const LabelType lt = in.ConsumeBool() ? LabelType::I32 : LabelType::U8;
  const uint32_t a16 = in.ConsumeIntegralInRange<uint32_t>(0, 65536);
  auto palette = values<uint8_t>(in, size_t(3 * K) + 1);
  auto skip = values<uint8_t>(in, size_t(K) + 1);
  auto labels = values<uint8_t>(in, size_t(H * W) * (lt == LabelType::I32 ? 4 : 1));
  auto image = values<uint8_t>(in, size_t(H * W * 3));
  const bool use_skip = in.ConsumeBool();
  if (in.ConsumeBool()) {
    overlay(image.data(), labels.data(), lt, H, W, palette.data(), K, a16, image.data(), use_skip ? skip.data() : nullptr);
  } else {
    std::vector<uint8_t> out(image.size());
    overlay(image.data(), labels.data(), lt, H, W, palette.data(), K, a16, out.data(), use_skip ? skip.data() : nullptr);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  FuzzedDataProvider in(data + 2, size - 2);
  set_num_threads(data[1] & 1 ? 3 : 1);
  switch (data[0] % 5) {
    case 0: fuzz_letterbox(in); break;
    case 1: fuzz_upsample_argmax(in); break;
    case 2: fuzz_nms(in); break;
    case 3: fuzz_masks(in); break;
    default: fuzz_overlay(in); break;
  }
  return 0;
}
