#include "argmax.h"

#include <algorithm>
#include <vector>

#include "simd.h"
#include "threadpool.h"

namespace edgeseg {

void argmax(const void* logits, FloatType dtype, int64_t N, int64_t C, int64_t HW, void* labels,
            LabelType label_type) {
  if (N <= 0 || C <= 0 || HW <= 0) return;
  constexpr int64_t kTile = 2048;
  // Channels per pass over a tile. Planes are HW elements apart, often a large power of two, so
  // all of them map to the same cache sets: streaming many at once defeats the caches'
  // associativity and the prefetchers. A few at a time, with the running max/index parked in
  // L1 between passes, keeps the reads sequential enough.
  // (on the 2-core Xeon VM, idle: 8 per pass was the most consistent of 2..19 for float16 with
  // 2 threads, and as fast as any for float32)
  constexpr int64_t kGroup = 8;
  const int64_t tiles_per_image = (HW + kTile - 1) / kTile;
  const int64_t total = N * tiles_per_image;
  const int64_t min_chunk = min_chunk_for(kTile * C);
  // float16 with up to 65536 channels runs on int16 order keys (rows::argmax_channels overload).
  const bool keys = dtype == FloatType::F16 && C <= 65536;
  parallel_for(
      total,
      [&](int64_t t0, int64_t t1) {
        std::vector<int32_t> idx(keys ? 0 : kTile);
        std::vector<float> best(keys ? 0 : kTile);
        std::vector<uint16_t> kidx(keys ? kTile : 0);
        std::vector<int16_t> kbest(keys ? kTile : 0);
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t n = t / tiles_per_image;
          const int64_t p0 = (t % tiles_per_image) * kTile;
          const int64_t len = std::min(kTile, HW - p0);
          const int64_t off = n * C * HW + p0;
          for (int64_t c0 = 0; c0 < C; c0 += kGroup) {
            const int64_t c1 = std::min(C, c0 + kGroup);
            if (dtype == FloatType::F32)
              rows::argmax_channels(static_cast<const float*>(logits) + off, c0, c1, HW,
                                    best.data(), idx.data(), len);
            else if (keys)
              rows::argmax_channels(static_cast<const uint16_t*>(logits) + off, c0, c1, HW,
                                    kbest.data(), kidx.data(), len);
            else
              rows::argmax_channels(static_cast<const uint16_t*>(logits) + off, c0, c1, HW,
                                    best.data(), idx.data(), len);
          }
          if (keys)
            store_labels(kidx.data(), labels, label_type, n * HW + p0, len);
          else
            store_labels(idx.data(), labels, label_type, n * HW + p0, len);
        }
      },
      min_chunk);
}

}  // namespace edgeseg
