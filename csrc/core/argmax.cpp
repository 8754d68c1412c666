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
  const int64_t tiles_per_image = (HW + kTile - 1) / kTile;
  const int64_t total = N * tiles_per_image;
  // Fewer than ~64K channel-pixels per chunk is not worth a thread wake-up.
  const int64_t min_chunk = std::max<int64_t>(1, 65536 / (kTile * C));
  parallel_for(
      total,
      [&](int64_t t0, int64_t t1) {
        std::vector<int32_t> idx(kTile);
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t n = t / tiles_per_image;
          const int64_t p0 = (t % tiles_per_image) * kTile;
          const int64_t len = std::min(kTile, HW - p0);
          const int64_t off = n * C * HW + p0;
          if (dtype == FloatType::F32)
            rows::argmax_channels(static_cast<const float*>(logits) + off, C, HW, idx.data(), len);
          else
            rows::argmax_channels(static_cast<const uint16_t*>(logits) + off, C, HW, idx.data(), len);
          store_labels(idx.data(), labels, label_type, n * HW + p0, len);
        }
      },
      min_chunk);
}

}  // namespace edgeseg
