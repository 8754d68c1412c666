#include "letterbox.h"

#include <algorithm>
#include <vector>

#include "half.h"
#include "resample.h"
#include "simd.h"
#include "threadpool.h"

namespace edgeseg {
namespace {

template <typename T>
inline void fill_value(T* dst, int64_t n, T v) {
  std::fill(dst, dst + n, v);
}

}  // namespace

void letterbox(const uint8_t* image, int64_t H, int64_t W, void* out, FloatType out_dtype,
               int64_t oh, int64_t ow, int64_t rh, int64_t rw, int64_t pad_top, int64_t pad_left,
               const float scale[3], const float bias[3], const float pad[3]) {
  if (oh <= 0 || ow <= 0) return;
  const double ay = static_cast<double>(H) / rh, ax = static_cast<double>(W) / rw;
  const AxisTaps ty = make_axis_taps(rh, H, ay, 0.5 * ay - 0.5);
  const AxisTaps tx = make_axis_taps(rw, W, ax, 0.5 * ax - 0.5);
  const int64_t plane = oh * ow;
  // Without resizing along an axis its taps are (i, weight 1) + (i + 1, weight 0), and
  // v * 1 + u * 0 == v exactly for the finite values here: the shortcuts below change no bit.
  const bool same_w = rw == W, same_h = rh == H;
  const int64_t pad_right = ow - pad_left - rw;
  uint16_t pad_h[3];
  for (int c = 0; c < 3; ++c) pad_h[c] = float_to_half(pad[c]);
  // Byte offsets of the horizontal taps in a BGR row.
  std::vector<int32_t> xo0(rw), xo1(rw);
  for (int64_t x = 0; x < rw; ++x) {
    xo0[x] = tx.i0[x] * 3;
    xo1[x] = tx.i1[x] * 3;
  }

  parallel_for(
      oh,
      [&](int64_t y0, int64_t y1) {
        // slot s holds source row slot_row[s] resized horizontally, as 3 planes R, G, B.
        std::vector<float> buf(2 * 3 * rw);
        float* slot[2] = {buf.data(), buf.data() + 3 * rw};
        int64_t slot_row[2] = {-1, -1};
        auto fill = [&](int s, int64_t r) {
          float* R = slot[s];
          if (same_w)  // no horizontal resize: the taps would be (x, weight 1) + (x + 1, weight 0)
            rows::bgr_row_to_planes(image + r * W * 3, (H - r) * W * 3, R, R + rw, R + 2 * rw, rw);
          else
            rows::resample_bgr_row(image + r * W * 3, (H - r) * W * 3, xo0.data(), xo1.data(),
                                   tx.w0.data(), tx.w1.data(), R, R + rw, R + 2 * rw, rw);
          slot_row[s] = r;
        };

        for (int64_t y = y0; y < y1; ++y) {
          const int64_t ry = y - pad_top;
          const bool inside = ry >= 0 && ry < rh;
          int s0 = 0, s1 = 0;
          float wa = 1.0f, wb = 0.0f;
          if (inside) {
            // no vertical resize: the second row has weight 0, so it need not be read
            acquire_rows(slot_row, ty.i0[ry], same_h ? ty.i0[ry] : ty.i1[ry], s0, s1, fill);
            wa = ty.w0[ry];
            wb = ty.w1[ry];
          }
          for (int c = 0; c < 3; ++c) {
            const int64_t row_off = c * plane + y * ow;
            // output row y of channel c, float32 or float16: padding, resized pixels, padding
            auto write_row = [&](auto* o, auto pad_value) {
              if (!inside) {
                fill_value(o, ow, pad_value);
                return;
              }
              fill_value(o, pad_left, pad_value);
              rows::lerp_affine(slot[s0] + c * rw, slot[s1] + c * rw, wa, wb, scale[c], bias[c],
                                o + pad_left, rw);
              fill_value(o + pad_left + rw, pad_right, pad_value);
            };
            if (out_dtype == FloatType::F32)
              write_row(static_cast<float*>(out) + row_off, pad[c]);
            else
              write_row(static_cast<uint16_t*>(out) + row_off, pad_h[c]);
          }
        }
      },
      min_chunk_for(3 * ow));
}

}  // namespace edgeseg
