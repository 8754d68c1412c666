// Box-local instance mask kernels (see masks.h).
#include "masks.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "half.h"
#include "simd.h"
#include "threadpool.h"

namespace edgeseg {
namespace {

struct Region {
  int64_t x0, y0, x1, y1;
  int64_t w() const { return x1 - x0; }
  int64_t h() const { return y1 - y0; }
  bool empty() const { return x1 <= x0 || y1 <= y0; }
};

inline Region region_at(const int32_t* regions, int64_t k) {
  const int32_t* r = regions + 4 * k;
  return Region{r[0], r[1], r[2], r[3]};
}

// clamp(v, lo, hi) for a double that may be huge or NaN (NaN -> lo), as an integer.
inline int64_t clamp_index(double v, int64_t lo, int64_t hi) {
  if (!(v > static_cast<double>(lo))) return lo;
  if (v >= static_cast<double>(hi)) return hi;
  return static_cast<int64_t>(v);
}

inline void store_region(int32_t* out, int64_t x0, int64_t y0, int64_t x1, int64_t y1) {
  if (x1 <= x0 || y1 <= y0) x0 = y0 = x1 = y1 = 0;  // one canonical empty region
  out[0] = static_cast<int32_t>(x0);
  out[1] = static_cast<int32_t>(y0);
  out[2] = static_cast<int32_t>(x1);
  out[3] = static_cast<int32_t>(y1);
}

// Bilinear taps at continuous position s over n samples, border-clamped (as resample.h).
inline void bilinear_tap(double s, int64_t n, int32_t& i0, int32_t& i1, float& f) {
  if (!(s > 0.0)) s = 0.0;
  int64_t i = s >= static_cast<double>(n - 1) ? n - 1 : static_cast<int64_t>(std::floor(s));
  f = static_cast<float>(s - static_cast<double>(i));
  if (i >= n - 1) {
    i = n - 1;
    f = 0.0f;
  }
  i0 = static_cast<int32_t>(i);
  i1 = static_cast<int32_t>(std::min<int64_t>(i + 1, n - 1));
}

inline int32_t nearest_tap(const AxisMap& m, int64_t d, int64_t n) {
  const double u = std::floor(m.unit(d));
  return static_cast<int32_t>(clamp_index(u, 0, n - 1));
}

// Largest float <= t (so float v > result <=> double v > t), and smallest float >= t.
inline float float_floor(double t) {
  float f = static_cast<float>(t);
  if (static_cast<double>(f) > t) f = std::nextafter(f, -std::numeric_limits<float>::infinity());
  return f;
}
inline float float_ceil(double t) {
  float f = static_cast<float>(t);
  if (static_cast<double>(f) < t) f = std::nextafter(f, std::numeric_limits<float>::infinity());
  return f;
}

// out[i] = (a[i] * wa + b[i] * wb) > thr (or >=): rows::lerp's float operations fused with the
// threshold. __restrict (the uint8 output could alias the floats otherwise) lets the compiler
// vectorise it for the baseline ISA.
inline void lerp_greater(const float* __restrict a, const float* __restrict b, float wa, float wb,
                         float thr, uint8_t* __restrict out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] * wa + b[i] * wb > thr;
}
inline void lerp_greater_equal(const float* __restrict a, const float* __restrict b, float wa,
                               float wb, float thr, uint8_t* __restrict out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] * wa + b[i] * wb >= thr;
}

// Rows of all non-empty regions, numbered consecutively: starts[k] = first row number of mask k.
std::vector<int64_t> row_starts(const int32_t* regions, int64_t K) {
  std::vector<int64_t> s(static_cast<size_t>(K + 1), 0);
  for (int64_t k = 0; k < K; ++k) {
    const Region r = region_at(regions, k);
    s[k + 1] = s[k] + (r.empty() ? 0 : r.h());
  }
  return s;
}

// Spread every (mask, row) over the pool: body(scratch_state, k, y) for rows of chunk [b, e).
// make_state() builds per-chunk scratch.
template <class MakeState, class Body>
void for_each_row(const int32_t* regions, int64_t K, MakeState&& make_state, Body&& body) {
  const std::vector<int64_t> starts = row_starts(regions, K);
  const int64_t total = starts[K];
  parallel_for(
      total,
      [&](int64_t b, int64_t e) {
        auto state = make_state();
        int64_t k = std::upper_bound(starts.begin(), starts.end(), b) - starts.begin() - 1;
        for (int64_t r = b; r < e; ++r) {
          while (r >= starts[k + 1]) ++k;
          body(state, k, regions[4 * k + 1] + (r - starts[k]));
        }
      },
      16);
}

}  // namespace

// ---- prototype assembly ---------------------------------------------------------------------

void assemble_regions(const float* boxes, int64_t K, int64_t H, int64_t W, int32_t* regions) {
  for (int64_t k = 0; k < K; ++k) {
    const float* b = boxes + 4 * k;
    // x0 <= x + 0.5 <=> x >= ceil(x0 - 0.5);  x + 0.5 < x1 <=> x < ceil(x1 - 0.5)  (exact)
    const int64_t x0 = clamp_index(std::ceil(static_cast<double>(b[0]) - 0.5), 0, W);
    const int64_t y0 = clamp_index(std::ceil(static_cast<double>(b[1]) - 0.5), 0, H);
    const int64_t x1 = clamp_index(std::ceil(static_cast<double>(b[2]) - 0.5), 0, W);
    const int64_t y1 = clamp_index(std::ceil(static_cast<double>(b[3]) - 0.5), 0, H);
    const bool nan = std::isnan(b[0]) || std::isnan(b[1]) || std::isnan(b[2]) || std::isnan(b[3]);
    if (!nan)  // +-inf edges are fine: they clamp to the frame
      store_region(regions + 4 * k, x0, y0, x1, y1);
    else
      store_region(regions + 4 * k, 0, 0, 0, 0);
  }
}

void assemble_masks(const float* coeffs, int64_t K, int64_t Mc, const void* protos,
                    FloatType protos_dtype, int64_t Hp, int64_t Wp, const int32_t* regions,
                    const int64_t* offsets, uint8_t* data, const AxisMap& my, const AxisMap& mx,
                    double logit_threshold, bool fast) {
  if (K <= 0 || Hp <= 0 || Wp <= 0) return;
  const float thr = float_floor(logit_threshold);

  // Per mask: the prototype cell window its region samples; its logits (window rows x cols) and
  // those logit rows sampled at every region column (window rows x region width): interpolated
  // (exact: an output row is then one vertical blend of two such rows + threshold) or nearest
  // and thresholded (fast: an output row is a copy of one).
  struct Window {
    int64_t cy0 = 0, cy1 = 0, cx0 = 0, cx1 = 0;  // inclusive cell range
    int64_t lofs = 0, hofs = 0;                   // offsets into logits / sampled rows
    int64_t ww() const { return cx1 - cx0 + 1; }
    int64_t wh() const { return cy1 - cy0 + 1; }
  };
  std::vector<Window> win(static_cast<size_t>(K));
  int64_t n_logits = 0, n_hrows = 0;
  for (int64_t k = 0; k < K; ++k) {
    const Region r = region_at(regions, k);
    if (r.empty()) continue;
    Window& w = win[k];
    if (fast) {
      w.cx0 = nearest_tap(mx, r.x0, Wp);
      w.cx1 = nearest_tap(mx, r.x1 - 1, Wp);
      w.cy0 = nearest_tap(my, r.y0, Hp);
      w.cy1 = nearest_tap(my, r.y1 - 1, Hp);
    } else {  // taps are monotone in the pixel index: the end pixels bound the window
      int32_t a, b;
      float f;
      bilinear_tap(mx.unit(r.x0) - 0.5, Wp, a, b, f);
      w.cx0 = a;
      bilinear_tap(mx.unit(r.x1 - 1) - 0.5, Wp, a, b, f);
      w.cx1 = b;
      bilinear_tap(my.unit(r.y0) - 0.5, Hp, a, b, f);
      w.cy0 = a;
      bilinear_tap(my.unit(r.y1 - 1) - 0.5, Hp, a, b, f);
      w.cy1 = b;
    }
    w.lofs = n_logits;
    w.hofs = n_hrows;
    n_logits += w.ww() * w.wh();
    n_hrows += w.wh() * r.w();
  }
  std::vector<float> logits(static_cast<size_t>(n_logits));
  std::vector<float> hrows(fast ? 0 : static_cast<size_t>(n_hrows));
  std::vector<uint8_t> trows(fast ? static_cast<size_t>(n_hrows) : 0);  // fast: thresholded

  // 1. per mask: logits on the window (sum over prototypes, rows contiguous), column taps, and
  //    in exact mode the horizontally interpolated logit rows.
  const bool f16 = protos_dtype == FloatType::F16;
  parallel_for(K, [&](int64_t k0, int64_t k1) {
    std::vector<float> conv(f16 ? Wp : 0);
    std::vector<int32_t> i0v, i1;
    std::vector<float> w0, w1;
    for (int64_t k = k0; k < k1; ++k) {
      const Region r = region_at(regions, k);
      if (r.empty()) continue;
      const Window& w = win[k];
      const int64_t ww = w.ww(), rw = r.w();
      float* L = logits.data() + w.lofs;
      std::fill(L, L + ww * w.wh(), 0.0f);
      for (int64_t c = 0; c < Mc; ++c) {
        const float coef = coeffs[k * Mc + c];
        for (int64_t cy = w.cy0; cy <= w.cy1; ++cy) {
          const int64_t off = (c * Hp + cy) * Wp + w.cx0;
          const float* src;
          if (!f16) {
            src = static_cast<const float*>(protos) + off;
          } else {
            rows::half_to_float(static_cast<const uint16_t*>(protos) + off, conv.data(), ww);
            src = conv.data();
          }
          float* dst = L + (cy - w.cy0) * ww;
          for (int64_t j = 0; j < ww; ++j) dst[j] += coef * src[j];
        }
      }
      i0v.resize(rw);
      int32_t* i0 = i0v.data();
      if (fast) {
        for (int64_t x = 0; x < rw; ++x)
          i0[x] = static_cast<int32_t>(nearest_tap(mx, r.x0 + x, Wp) - w.cx0);
        for (int64_t cy = 0; cy < w.wh(); ++cy) {
          const float* Lr = L + cy * ww;
          uint8_t* t = trows.data() + w.hofs + cy * rw;
          for (int64_t x = 0; x < rw; ++x) t[x] = Lr[i0[x]] > thr;
        }
        continue;
      }
      i1.resize(rw);
      w0.resize(rw);
      w1.resize(rw);
      for (int64_t x = 0; x < rw; ++x) {
        int32_t a, b;
        float f;
        bilinear_tap(mx.unit(r.x0 + x) - 0.5, Wp, a, b, f);
        i0[x] = static_cast<int32_t>(a - w.cx0);
        i1[x] = static_cast<int32_t>(b - w.cx0);
        w1[x] = f;
        w0[x] = 1.0f - f;
      }
      for (int64_t cy = 0; cy < w.wh(); ++cy)
        rows::gather_lerp(L + cy * ww, i0, i1.data(), w0.data(), w1.data(),
                          hrows.data() + w.hofs + cy * rw, rw);
    }
  });

  // 2. per region row: vertical blend of two interpolated logit rows (exact; the same float
  //    operations as rows::lerp, fused with the threshold) or the nearest thresholded row (fast).
  for_each_row(
      regions, K, [] { return 0; },
      [&](int, int64_t k, int64_t y) {
        const Region r = region_at(regions, k);
        const Window& w = win[k];
        const int64_t rw = r.w();
        uint8_t* out = data + offsets[k] + (y - r.y0) * rw;
        if (fast) {
          std::memcpy(out, trows.data() + w.hofs + (nearest_tap(my, y, Hp) - w.cy0) * rw,
                      static_cast<size_t>(rw));
          return;
        }
        int32_t a, b;
        float f;
        bilinear_tap(my.unit(y) - 0.5, Hp, a, b, f);
        const float* ha = hrows.data() + w.hofs + (a - w.cy0) * rw;
        const float* hb = hrows.data() + w.hofs + (b - w.cy0) * rw;
        lerp_greater(ha, hb, 1.0f - f, f, thr, out, rw);
      });
}

// ---- paste (detectron2) ---------------------------------------------------------------------

void paste_regions(const float* boxes, int64_t N, int64_t H, int64_t W, int32_t* regions) {
  for (int64_t k = 0; k < N; ++k) {
    const float* b = boxes + 4 * k;
    const bool ok = std::isfinite(b[0]) && std::isfinite(b[1]) && std::isfinite(b[2]) &&
                    std::isfinite(b[3]) && b[2] > b[0] && b[3] > b[1];
    if (!ok) {
      store_region(regions + 4 * k, 0, 0, 0, 0);
      continue;
    }
    store_region(regions + 4 * k,
                 clamp_index(std::floor(static_cast<double>(b[0])) - 1.0, 0, W),
                 clamp_index(std::floor(static_cast<double>(b[1])) - 1.0, 0, H),
                 clamp_index(std::ceil(static_cast<double>(b[2])) + 1.0, 0, W),
                 clamp_index(std::ceil(static_cast<double>(b[3])) + 1.0, 0, H));
  }
}

namespace {

// Position in the mask of region pixel d along one axis, and its two taps in the zero-padded
// mask (padded index = index + 1; rows/cols 0 and M + 1 are zero).
inline void paste_tap(int64_t d, double lo, double hi, int64_t M, int32_t& j0, int32_t& j1,
                      float& f) {
  double s = (static_cast<double>(d) + 0.5 - lo) / (hi - lo) * static_cast<double>(M) - 0.5;
  s = std::min(std::max(s, -2.0), static_cast<double>(M) + 1.0);  // beyond: all taps are zero
  const double fl = std::floor(s);
  f = static_cast<float>(s - fl);
  const int64_t i = static_cast<int64_t>(fl) + 1;
  j0 = static_cast<int32_t>(std::min<int64_t>(std::max<int64_t>(i, 0), M + 1));
  j1 = static_cast<int32_t>(std::min<int64_t>(std::max<int64_t>(i + 1, 0), M + 1));
}

}  // namespace

void paste_masks(const void* masks, FloatType dtype, int64_t N, int64_t Mh, int64_t Mw,
                 const float* boxes, const int32_t* regions, const int64_t* offsets,
                 uint8_t* data, double threshold) {
  if (N <= 0 || Mh <= 0 || Mw <= 0) return;
  const float thr = float_ceil(threshold);
  const int64_t ph = Mh + 2, pw = Mw + 2;
  // hrows of mask k: its ph zero-padded rows interpolated horizontally at every region column.
  std::vector<int64_t> hofs(static_cast<size_t>(N + 1), 0);
  for (int64_t k = 0; k < N; ++k) {
    const Region r = region_at(regions, k);
    hofs[k + 1] = hofs[k] + (r.empty() ? 0 : ph * r.w());
  }
  std::vector<float> hrows(static_cast<size_t>(hofs[N]));

  // 1. per mask: zero-padded float copy, column taps, horizontally interpolated rows.
  parallel_for(N, [&](int64_t k0, int64_t k1) {
    std::vector<float> P(static_cast<size_t>(ph * pw), 0.0f);
    std::vector<int32_t> i0, i1;
    std::vector<float> w0, w1;
    for (int64_t k = k0; k < k1; ++k) {
      const Region r = region_at(regions, k);
      if (r.empty()) continue;
      for (int64_t y = 0; y < Mh; ++y) {
        const int64_t off = (k * Mh + y) * Mw;
        float* dst = P.data() + (y + 1) * pw + 1;
        if (dtype == FloatType::F32)
          std::memcpy(dst, static_cast<const float*>(masks) + off, sizeof(float) * Mw);
        else
          rows::half_to_float(static_cast<const uint16_t*>(masks) + off, dst, Mw);
      }
      const int64_t rw = r.w();
      i0.resize(rw);
      i1.resize(rw);
      w0.resize(rw);
      w1.resize(rw);
      const float* b = boxes + 4 * k;
      for (int64_t x = 0; x < rw; ++x) {
        float f;
        paste_tap(r.x0 + x, b[0], b[2], Mw, i0[x], i1[x], f);
        w1[x] = f;
        w0[x] = 1.0f - f;
      }
      for (int64_t y = 0; y < ph; ++y)
        rows::gather_lerp(P.data() + y * pw, i0.data(), i1.data(), w0.data(), w1.data(),
                          hrows.data() + hofs[k] + y * rw, rw);
    }
  });

  // 2. rows: vertical blend of two interpolated padded rows, >= threshold.
  for_each_row(
      regions, N, [] { return 0; },
      [&](int, int64_t k, int64_t y) {
        const Region r = region_at(regions, k);
        const float* b = boxes + 4 * k;
        int32_t j0, j1;
        float f;
        paste_tap(y, b[1], b[3], Mh, j0, j1, f);
        const int64_t rw = r.w();
        const float* ha = hrows.data() + hofs[k] + j0 * rw;
        const float* hb = hrows.data() + hofs[k] + j1 * rw;
        lerp_greater_equal(ha, hb, 1.0f - f, f, thr, data + offsets[k] + (y - r.y0) * rw, rw);
      });
}

// ---- areas, RLE, overlay --------------------------------------------------------------------

void mask_areas(const uint8_t* data, const int64_t* offsets, int64_t K, int64_t* areas) {
  parallel_for(K, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) {
      int64_t s = 0;
      for (int64_t i = offsets[k]; i < offsets[k + 1]; ++i) s += data[i] != 0;
      areas[k] = s;
    }
  });
}

namespace {

// Run lengths of the full H x W mask in column-major order, starting with a run of zeros.
// The region is first transposed (in cache-sized tiles, normalised to 0/1) into `colmajor` so
// that each column is contiguous and runs are found with memchr.
std::vector<int64_t> rle_counts(const uint8_t* bm, const Region& r, int64_t H, int64_t W,
                                std::vector<uint8_t>& colmajor) {
  std::vector<int64_t> counts;
  uint8_t cur = 0;
  int64_t run = 0;
  auto push = [&](uint8_t v, int64_t n) {
    if (n <= 0) return;
    if (v == cur) {
      run += n;
    } else {
      counts.push_back(run);
      cur = v;
      run = n;
    }
  };
  if (r.empty()) {
    push(0, H * W);
  } else {
    const int64_t w = r.w(), h = r.h();
    colmajor.resize(static_cast<size_t>(w * h));
    uint8_t* T = colmajor.data();
    const int64_t B = 32;
    for (int64_t yb = 0; yb < h; yb += B)
      for (int64_t xb = 0; xb < w; xb += B) {
        const int64_t ye = std::min(h, yb + B), xe = std::min(w, xb + B);
        for (int64_t y = yb; y < ye; ++y) {
          const uint8_t* src = bm + y * w;
          for (int64_t x = xb; x < xe; ++x) T[x * h + y] = src[x] != 0;
        }
      }
    push(0, r.x0 * H);
    for (int64_t x = 0; x < w; ++x) {
      push(0, r.y0);
      const uint8_t* col = T + x * h;
      int64_t y = 0;
      while (y < h) {
        const uint8_t v = col[y];
        const void* next = std::memchr(col + y, v ^ 1, static_cast<size_t>(h - y));
        const int64_t e = next ? static_cast<const uint8_t*>(next) - col : h;
        push(v, e - y);
        y = e;
      }
      push(0, H - r.y1);
    }
    push(0, (W - r.x1) * H);
  }
  counts.push_back(run);
  return counts;
}

// pycocotools rleToString: counts after the second are delta-coded against counts[i - 2], then
// written 5 bits per char (+48), 0x20 = more chars follow, sign-extended from bit 0x10.
std::string counts_to_string(const std::vector<int64_t>& counts) {
  std::string s;
  for (size_t i = 0; i < counts.size(); ++i) {
    int64_t x = counts[i];
    if (i > 2) x -= counts[i - 2];
    bool more = true;
    while (more) {
      int64_t c = x & 0x1f;
      x >>= 5;  // arithmetic shift (as the C code on a signed long)
      more = (c & 0x10) ? x != -1 : x != 0;
      if (more) c |= 0x20;
      s.push_back(static_cast<char>(c + 48));
    }
  }
  return s;
}

}  // namespace

std::vector<std::string> rle_strings(const uint8_t* data, const int64_t* offsets,
                                     const int32_t* regions, int64_t K, int64_t H, int64_t W) {
  std::vector<std::string> out(static_cast<size_t>(std::max<int64_t>(K, 0)));
  parallel_for(K, [&](int64_t k0, int64_t k1) {
    std::vector<uint8_t> colmajor;
    for (int64_t k = k0; k < k1; ++k)
      out[k] = counts_to_string(
          rle_counts(data + offsets[k], region_at(regions, k), H, W, colmajor));
  });
  return out;
}

void overlay_instances(const uint8_t* image, int64_t H, int64_t W, const uint8_t* data,
                       const int64_t* offsets, const int32_t* regions, int64_t K,
                       const uint8_t* colors, uint32_t alpha16, bool outline, uint8_t* out) {
  if (H <= 0 || W <= 0) return;
  if (alpha16 > 65536u) alpha16 = 65536u;
  const uint32_t ia = 65536u - alpha16;
  std::vector<uint32_t> pre(static_cast<size_t>(3 * std::max<int64_t>(K, 0)));
  for (int64_t i = 0; i < 3 * K; ++i) pre[i] = colors[i] * alpha16 + 32768u;
  parallel_for(
      H,
      [&](int64_t ya, int64_t yb) {
        for (int64_t y = ya; y < yb; ++y) {
          uint8_t* q = out + y * W * 3;
          if (out != image) std::memcpy(q, image + y * W * 3, static_cast<size_t>(W * 3));
          for (int64_t k = 0; k < K; ++k) {
            const Region r = region_at(regions, k);
            if (r.empty() || y < r.y0 || y >= r.y1) continue;
            const int64_t w = r.w();
            const uint8_t* m = data + offsets[k] + (y - r.y0) * w;
            const uint8_t* up = y > r.y0 ? m - w : nullptr;
            const uint8_t* down = y + 1 < r.y1 ? m + w : nullptr;
            const uint8_t* col = colors + 3 * k;
            const uint32_t* pc = pre.data() + 3 * k;
            uint8_t* p = q + r.x0 * 3;
            for (int64_t x = 0; x < w; ++x, p += 3) {
              if (!m[x]) continue;
              const bool edge = outline && (x == 0 || !m[x - 1] || x + 1 == w || !m[x + 1] ||
                                            !up || !up[x] || !down || !down[x]);
              if (edge) {
                p[0] = col[0];
                p[1] = col[1];
                p[2] = col[2];
              } else {
                p[0] = static_cast<uint8_t>((p[0] * ia + pc[0]) >> 16);
                p[1] = static_cast<uint8_t>((p[1] * ia + pc[1]) >> 16);
                p[2] = static_cast<uint8_t>((p[2] * ia + pc[2]) >> 16);
              }
            }
          }
        }
      },
      16);
}

}  // namespace edgeseg
