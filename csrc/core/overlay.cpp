#include "overlay.h"

#include <vector>

#include "simd.h"
#include "threadpool.h"

namespace edgeseg {

void overlay(const uint8_t* image, const void* labels, LabelType label_type, int64_t H, int64_t W,
             const uint8_t* palette, int64_t K, uint32_t alpha16, uint8_t* out,
             const uint8_t* skip) {
  if (H <= 0 || W <= 0) return;
  if (alpha16 > 65536u) alpha16 = 65536u;
  // Entry per label: B | G << 8 | R << 16 | 0xff << 24 for labels with a colour; 0 ("leave the
  // pixel") for the rest. uint8 labels: 256 entries; int32 labels: K + 1, the last one for
  // every label outside [0, K).
  const int64_t n = label_type == LabelType::U8 ? 256 : K + 1;
  const uint32_t last = static_cast<uint32_t>(n - 1);
  std::vector<uint32_t> table(n, 0u);
  for (int64_t k = 0; k < K && k < n; ++k) {
    if (skip != nullptr && skip[k] != 0) continue;
    const uint8_t* c = palette + 3 * k;
    table[k] = uint32_t(c[0]) | uint32_t(c[1]) << 8 | uint32_t(c[2]) << 16 | 0xffu << 24;
  }
  const uint32_t* t = table.data();
  parallel_for(
      H,
      [&](int64_t y0, int64_t y1) {
        for (int64_t y = y0; y < y1; ++y) {
          const uint8_t* p = image + y * W * 3;
          uint8_t* q = out + y * W * 3;
          if (label_type == LabelType::U8)
            rows::overlay_row(p, static_cast<const uint8_t*>(labels) + y * W, last, t, alpha16, q, W);
          else
            rows::overlay_row(p, static_cast<const int32_t*>(labels) + y * W, last, t, alpha16, q, W);
        }
      },
      min_chunk_for(3 * W));
}

}  // namespace edgeseg
