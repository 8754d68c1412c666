#include "upsample_argmax.h"

#include <algorithm>
#include <vector>

#include "resample.h"
#include "simd.h"
#include "threadpool.h"

namespace edgeseg {

void upsample_argmax(const void* logits, FloatType dtype, int64_t C, int64_t h, int64_t w,
                     void* labels, LabelType label_type, int64_t H, int64_t W, double ay, double by,
                     double ax, double bx) {
  if (C <= 0 || h <= 0 || w <= 0 || H <= 0 || W <= 0) return;
  const AxisTaps ty = make_axis_taps(H, h, ay, by);
  const AxisTaps tx = make_axis_taps(W, w, ax, bx);

  // Column tile: keep 2 * C * tile floats around 128 KiB, at least 64 columns.
  int64_t tile = (128 * 1024) / (2 * 4 * C);
  tile = std::max<int64_t>(64, (tile / 16) * 16);
  tile = std::min<int64_t>(tile, W);
  const int64_t min_rows = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, W * C));

  parallel_for(
      H,
      [&](int64_t y0, int64_t y1) {
        std::vector<float> slot_buf(2 * C * tile);
        float* slot[2] = {slot_buf.data(), slot_buf.data() + C * tile};
        std::vector<float> conv(dtype == FloatType::F16 ? w : 0);
        std::vector<int32_t> idx(tile);

        for (int64_t xs = 0; xs < W; xs += tile) {
          const int64_t xe = std::min(W, xs + tile), tw = xe - xs;
          // Source columns this tile touches (taps are monotone in x).
          const int64_t lo = tx.i0[xs], hi = tx.i1[xe - 1];
          int64_t slot_row[2] = {-1, -1};

          // Interpolate source row r horizontally for every channel into slot s.
          auto fill = [&](int s, int64_t r) {
            float* dst = slot[s];
            for (int64_t c = 0; c < C; ++c) {
              const int64_t off = (c * h + r) * w;
              const float* src;
              if (dtype == FloatType::F32) {
                src = static_cast<const float*>(logits) + off;
              } else {
                rows::half_to_float(static_cast<const uint16_t*>(logits) + off + lo,
                                    conv.data() + lo, hi - lo + 1);
                src = conv.data();
              }
              rows::gather_lerp(src, tx.i0.data() + xs, tx.i1.data() + xs, tx.w0.data() + xs,
                                tx.w1.data() + xs, dst + c * tile, tw);
            }
            slot_row[s] = r;
          };
          for (int64_t y = y0; y < y1; ++y) {
            int s0, s1;
            acquire_rows(slot_row, ty.i0[y], ty.i1[y], s0, s1, fill);
            rows::lerp_argmax_channels(slot[s0], slot[s1], ty.w0[y], ty.w1[y], C, tile,
                                       idx.data(), tw);
            store_labels(idx.data(), labels, label_type, y * W + xs, tw);
          }
        }
      },
      min_rows);
}

}  // namespace edgeseg
