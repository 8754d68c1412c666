#include "overlay.h"

#include <vector>

#include "threadpool.h"

namespace edgeseg {
namespace {

// Per label: weight of the image and premultiplied colour (+ rounding term). Labels outside
// [0, K) get (65536, 32768): (p * 65536 + 32768) >> 16 == p, so no branch is needed.
struct Entry {
  uint32_t ia, c0, c1, c2;
};

template <typename L, typename Index>
void blend_rows(const uint8_t* image, const L* labels, const Entry* lut, Index index, int64_t W,
                int64_t y0, int64_t y1, uint8_t* out) {
  for (int64_t y = y0; y < y1; ++y) {
    const uint8_t* p = image + y * W * 3;
    const L* l = labels + y * W;
    uint8_t* q = out + y * W * 3;
    for (int64_t x = 0; x < W; ++x, p += 3, q += 3) {
      const Entry& e = lut[index(l[x])];
      const uint32_t p0 = p[0], p1 = p[1], p2 = p[2];
      q[0] = static_cast<uint8_t>((p0 * e.ia + e.c0) >> 16);
      q[1] = static_cast<uint8_t>((p1 * e.ia + e.c1) >> 16);
      q[2] = static_cast<uint8_t>((p2 * e.ia + e.c2) >> 16);
    }
  }
}

}  // namespace

void overlay(const uint8_t* image, const void* labels, LabelType label_type, int64_t H, int64_t W,
             const uint8_t* palette, int64_t K, uint32_t alpha16, uint8_t* out) {
  if (H <= 0 || W <= 0) return;
  if (alpha16 > 65536u) alpha16 = 65536u;
  const uint32_t ia = 65536u - alpha16;
  // uint8 labels: 256 entries; int32 labels: K entries + one "leave unchanged" entry at K.
  const int64_t n = label_type == LabelType::U8 ? 256 : K + 1;
  std::vector<Entry> lut(n, Entry{65536u, 32768u, 32768u, 32768u});
  for (int64_t k = 0; k < K && k < n; ++k) {
    const uint8_t* c = palette + 3 * k;
    lut[k] = Entry{ia, c[0] * alpha16 + 32768u, c[1] * alpha16 + 32768u, c[2] * alpha16 + 32768u};
  }
  const Entry* t = lut.data();
  parallel_for(
      H,
      [&](int64_t y0, int64_t y1) {
        if (label_type == LabelType::U8) {
          blend_rows(image, static_cast<const uint8_t*>(labels), t,
                     [](uint8_t v) { return static_cast<int64_t>(v); }, W, y0, y1, out);
        } else {
          const uint32_t k = static_cast<uint32_t>(K);
          blend_rows(image, static_cast<const int32_t*>(labels), t,
                     [k](int32_t v) {  // negative -> huge as unsigned -> K
                       const uint32_t u = static_cast<uint32_t>(v);
                       return static_cast<int64_t>(u < k ? u : k);
                     },
                     W, y0, y1, out);
        }
      },
      min_chunk_for(3 * W));
}

}  // namespace edgeseg
