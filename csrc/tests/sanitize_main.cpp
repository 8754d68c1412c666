// Standalone C++ smoke test of csrc/core under sanitizers (no Python): odd/tiny shapes, both
// SIMD and scalar paths, 1 and 3 threads, in-place overlay. It checks memory/UB/races, not values
// (values are checked against numpy references in tests/test_ops.py). Run from the repo root:
//   g++ -std=c++17 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -ffp-contract=off \
//       -Icsrc csrc/tests/sanitize_main.cpp csrc/core/*.cpp -pthread -o /tmp/es_san && /tmp/es_san
//   (or -fsanitize=thread for the thread pool)
#include <algorithm>
#include <cstdio>
#include <random>
#include <vector>
#include "core/argmax.h"
#include "core/letterbox.h"
#include "core/overlay.h"
#include "core/simd.h"
#include "core/threadpool.h"
#include "core/upsample_argmax.h"
using namespace edgeseg;
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
    }
  }
  std::puts("ok");
}
