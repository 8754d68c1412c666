// Row primitives: portable loops + AVX2/F16C versions chosen at run time (see simd.h).
#include "simd.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "half.h"

// The portable loops are forced inline: called from an AVX2 function (for its tail) they are then
// compiled with VEX encoding, avoiding the AVX<->SSE transition penalty of a call into SSE code.
#if defined(__GNUC__) || defined(__clang__)
#define EDGESEG_SCALAR __attribute__((always_inline)) inline
#else
#define EDGESEG_SCALAR inline
#endif

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define EDGESEG_HAVE_AVX2 1
#include <cpuid.h>
#include <immintrin.h>
#define EDGESEG_AVX2 __attribute__((target("avx2,f16c")))
#else
#define EDGESEG_HAVE_AVX2 0
#endif

namespace edgeseg {
namespace {

bool cpu_has_avx2() {
#if EDGESEG_HAVE_AVX2
  __builtin_cpu_init();
  // F16C from CPUID leaf 1 (ECX bit 29): older clang has no __builtin_cpu_supports("f16c").
  unsigned a = 0, b = 0, c = 0, d = 0;
  const bool f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
  return __builtin_cpu_supports("avx2") && f16c;
#else
  return false;
#endif
}

bool env_force_scalar() {
  const char* s = std::getenv("EDGESEG_FORCE_SCALAR");
  return s && *s && std::strcmp(s, "0") != 0;
}

std::atomic<int>& simd_state() {  // -1: not initialised, 0: off, 1: on
  static std::atomic<int> state{-1};
  return state;
}

inline bool use_simd() {
  int s = simd_state().load(std::memory_order_relaxed);
  if (s < 0) {
    s = (cpu_has_avx2() && !env_force_scalar()) ? 1 : 0;
    simd_state().store(s, std::memory_order_relaxed);
  }
  return s == 1;
}

// ---- portable loops -------------------------------------------------------------------------

EDGESEG_SCALAR bool beats(float v, float b) { return (v > b) || (v != v && b == b); }

EDGESEG_SCALAR void half_to_float_scalar(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = edgeseg::half_to_float(src[i]);
}
// Order-preserving int16 key of an IEEE half: -mag for negatives, mag otherwise (so -0 and +0
// tie, as floats do), and one key above +inf for every NaN (so any NaN beats any number and,
// NaNs tying, the first one stays). Comparing keys is comparing the floats, numpy.argmax's way.
EDGESEG_SCALAR int16_t half_key(uint16_t h) {
  const int32_t mag = h & 0x7fff;
  if (mag > 0x7c00) return 0x7fff;
  return static_cast<int16_t>((h & 0x8000) ? -mag : mag);
}
EDGESEG_SCALAR bool beats(int16_t k, int16_t b) { return k > b; }

// Running argmax; Load maps an element to the compared value (Best: float or an int16 key).
template <typename T, typename Best, typename Index, typename Load>
EDGESEG_SCALAR void argmax_channels_scalar_t(const T* v, int64_t c0, int64_t c1, int64_t stride,
                                             Best* best, Index* idx, int64_t n, Load load) {
  int64_t c = c0;
  if (c == 0) {
    for (int64_t i = 0; i < n; ++i) {
      best[i] = load(v[i]);
      idx[i] = 0;
    }
    c = 1;
  }
  for (; c < c1; ++c) {
    const T* p = v + c * stride;
    const Index ci = static_cast<Index>(c);
    for (int64_t i = 0; i < n; ++i) {
      const Best x = load(p[i]), bb = best[i];
      const bool t = beats(x, bb);
      best[i] = t ? x : bb;
      idx[i] = t ? ci : idx[i];
    }
  }
}
EDGESEG_SCALAR void argmax_channels_scalar(const float* v, int64_t c0, int64_t c1, int64_t stride,
                                           float* best, int32_t* idx, int64_t n) {
  argmax_channels_scalar_t(v, c0, c1, stride, best, idx, n, [](float x) { return x; });
}
EDGESEG_SCALAR void argmax_channels_scalar(const uint16_t* v, int64_t c0, int64_t c1,
                                           int64_t stride, float* best, int32_t* idx, int64_t n) {
  argmax_channels_scalar_t(v, c0, c1, stride, best, idx, n,
                           [](uint16_t h) { return edgeseg::half_to_float(h); });
}
EDGESEG_SCALAR void argmax_channels_scalar(const uint16_t* v, int64_t c0, int64_t c1, int64_t stride,
                                           int16_t* best, uint16_t* idx, int64_t n) {
  argmax_channels_scalar_t(v, c0, c1, stride, best, idx, n, half_key);
}
EDGESEG_SCALAR void clear_nonfinite_scalar(const float* v, int64_t C, int64_t stride, uint8_t* flags, int64_t n) {
  for (int64_t c = 0; c < C; ++c) {
    const float* p = v + c * stride;
    for (int64_t i = 0; i < n; ++i) {
      const float d = p[i] - p[i];  // 0 for finite values, NaN for NaN and +-inf
      flags[i] = d == 0.0f ? flags[i] : 0;
    }
  }
}
EDGESEG_SCALAR void clear_nonfinite_scalar(const uint16_t* v, int64_t C, int64_t stride, uint8_t* flags,
                            int64_t n) {
  for (int64_t c = 0; c < C; ++c) {
    const uint16_t* p = v + c * stride;
    for (int64_t i = 0; i < n; ++i) flags[i] = (p[i] & 0x7c00u) == 0x7c00u ? 0 : flags[i];
  }
}
EDGESEG_SCALAR void resample_bgr_row_scalar(const uint8_t* src, int64_t /*readable*/, const int32_t* o0,
                             const int32_t* o1, const float* w0, const float* w1, float* R,
                             float* G, float* B, int64_t n) {
  for (int64_t x = 0; x < n; ++x) {
    const uint8_t* p0 = src + o0[x];
    const uint8_t* p1 = src + o1[x];
    B[x] = static_cast<float>(p0[0]) * w0[x] + static_cast<float>(p1[0]) * w1[x];
    G[x] = static_cast<float>(p0[1]) * w0[x] + static_cast<float>(p1[1]) * w1[x];
    R[x] = static_cast<float>(p0[2]) * w0[x] + static_cast<float>(p1[2]) * w1[x];
  }
}
EDGESEG_SCALAR void bgr_row_to_planes_scalar(const uint8_t* src, int64_t /*readable*/, float* R,
                                             float* G, float* B, int64_t n) {
  for (int64_t x = 0; x < n; ++x) {
    B[x] = static_cast<float>(src[3 * x]);
    G[x] = static_cast<float>(src[3 * x + 1]);
    R[x] = static_cast<float>(src[3 * x + 2]);
  }
}
EDGESEG_SCALAR void gather_lerp_scalar(const float* src, const int32_t* i0, const int32_t* i1, const float* w0,
                        const float* w1, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = src[i0[i]] * w0[i] + src[i1[i]] * w1[i];
}
EDGESEG_SCALAR void lerp_argmax_channels_scalar(const float* a, const float* b, float wa, float wb,
                                 const int32_t* chans, int64_t nch, int64_t stride, int32_t* idx,
                                 int64_t n) {
  constexpr int64_t kBlock = 16;  // small fixed blocks the compiler can vectorise (NEON/SSE2)
  float best[kBlock];
  int32_t bi[kBlock];
  for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
    const int64_t m = n - i0 < kBlock ? n - i0 : kBlock;
    const float* pa = a + chans[0] * stride + i0;
    const float* pb = b + chans[0] * stride + i0;
    for (int64_t j = 0; j < m; ++j) {
      best[j] = pa[j] * wa + pb[j] * wb;
      bi[j] = chans[0];
    }
    for (int64_t k = 1; k < nch; ++k) {
      const int32_t ci = chans[k];
      pa = a + ci * stride + i0;
      pb = b + ci * stride + i0;
      for (int64_t j = 0; j < m; ++j) {
        const float x = pa[j] * wa + pb[j] * wb, bb = best[j];
        const bool t = beats(x, bb);
        best[j] = t ? x : bb;
        bi[j] = t ? ci : bi[j];
      }
    }
    for (int64_t j = 0; j < m; ++j) idx[i0 + j] = bi[j];
  }
}
EDGESEG_SCALAR void lerp_affine_scalar(const float* a, const float* b, float wa, float wb, float k, float bias,
                        float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = (a[i] * wa + b[i] * wb) * k + bias;
}
EDGESEG_SCALAR void lerp_affine_scalar(const float* a, const float* b, float wa, float wb, float k, float bias,
                        uint16_t* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    out[i] = edgeseg::float_to_half((a[i] * wa + b[i] * wb) * k + bias);
}

// Overlay of n BGR pixels (see simd.h): label index -> table entry B | G<<8 | R<<16 | flag<<24.
template <typename Index>
EDGESEG_SCALAR void overlay_row_scalar_t(const uint8_t* src, Index index, const uint32_t* table,
                                         uint32_t a16, uint8_t* dst, int64_t n) {
  const uint32_t ia = 65536u - a16;
  for (int64_t x = 0; x < n; ++x) {
    const uint32_t e = table[index(x)];
    const uint8_t* p = src + 3 * x;
    uint8_t* q = dst + 3 * x;
    if (e >> 24) {
      for (int ch = 0; ch < 3; ++ch)
        q[ch] = static_cast<uint8_t>((p[ch] * ia + ((e >> (8 * ch)) & 0xffu) * a16 + 32768u) >> 16);
    } else if (q != p) {
      q[0] = p[0], q[1] = p[1], q[2] = p[2];
    }
  }
}
EDGESEG_SCALAR void overlay_row_scalar(const uint8_t* src, const uint8_t* labels, uint32_t /*last*/,
                                       const uint32_t* table, uint32_t a16, uint8_t* dst, int64_t n) {
  overlay_row_scalar_t(src, [labels](int64_t x) { return labels[x]; }, table, a16, dst, n);
}
EDGESEG_SCALAR void overlay_row_scalar(const uint8_t* src, const int32_t* labels, uint32_t last,
                                       const uint32_t* table, uint32_t a16, uint8_t* dst, int64_t n) {
  overlay_row_scalar_t(
      src,
      [labels, last](int64_t x) {  // negative -> huge as unsigned -> last
        const uint32_t u = static_cast<uint32_t>(labels[x]);
        return u < last ? u : last;
      },
      table, a16, dst, n);
}

// ---- AVX2 + F16C ------------------------------------------------------------------------------
#if EDGESEG_HAVE_AVX2

EDGESEG_AVX2 void half_to_float_avx2(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
  }
  half_to_float_scalar(src + i, dst + i, n - i);
}

// mask of lanes where x beats b: (x > b or unordered) and b is not NaN, i.e. x > b, or x is NaN
// and b is not.
EDGESEG_AVX2 inline __m256 beats_avx2(__m256 x, __m256 b) {
  return _mm256_and_ps(_mm256_cmp_ps(x, b, _CMP_NLE_UQ), _mm256_cmp_ps(b, b, _CMP_ORD_Q));
}

EDGESEG_AVX2 inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
EDGESEG_AVX2 inline __m256 load8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// 32 pixels per step: running max and index of 4 x 8 lanes stay in registers over the channels
// [c0, c1), loaded from / stored to best and idx between calls.
template <typename T>
EDGESEG_AVX2 void argmax_channels_avx2_t(const T* v, int64_t c0, int64_t c1, int64_t stride,
                                         float* best, int32_t* idx, int64_t n) {
  int64_t i = 0;
  const int64_t cs = c0 == 0 ? 1 : c0;  // first channel compared
  for (; i + 32 <= n; i += 32) {
    __m256 b0, b1, b2, b3, i0, i1, i2, i3;
    if (c0 == 0) {
      b0 = load8(v + i), b1 = load8(v + i + 8), b2 = load8(v + i + 16), b3 = load8(v + i + 24);
      i0 = i1 = i2 = i3 = _mm256_setzero_ps();
    } else {
      b0 = _mm256_loadu_ps(best + i), b1 = _mm256_loadu_ps(best + i + 8);
      b2 = _mm256_loadu_ps(best + i + 16), b3 = _mm256_loadu_ps(best + i + 24);
      i0 = _mm256_loadu_ps(reinterpret_cast<const float*>(idx + i));
      i1 = _mm256_loadu_ps(reinterpret_cast<const float*>(idx + i + 8));
      i2 = _mm256_loadu_ps(reinterpret_cast<const float*>(idx + i + 16));
      i3 = _mm256_loadu_ps(reinterpret_cast<const float*>(idx + i + 24));
    }
    const T* p = v + cs * stride + i;
    for (int64_t c = cs; c < c1; ++c, p += stride) {
      const __m256 cv = _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int32_t>(c)));
      const __m256 x0 = load8(p), x1 = load8(p + 8), x2 = load8(p + 16), x3 = load8(p + 24);
      const __m256 t0 = beats_avx2(x0, b0), t1 = beats_avx2(x1, b1);
      const __m256 t2 = beats_avx2(x2, b2), t3 = beats_avx2(x3, b3);
      b0 = _mm256_blendv_ps(b0, x0, t0);
      b1 = _mm256_blendv_ps(b1, x1, t1);
      b2 = _mm256_blendv_ps(b2, x2, t2);
      b3 = _mm256_blendv_ps(b3, x3, t3);
      i0 = _mm256_blendv_ps(i0, cv, t0);
      i1 = _mm256_blendv_ps(i1, cv, t1);
      i2 = _mm256_blendv_ps(i2, cv, t2);
      i3 = _mm256_blendv_ps(i3, cv, t3);
    }
    _mm256_storeu_ps(best + i, b0);
    _mm256_storeu_ps(best + i + 8, b1);
    _mm256_storeu_ps(best + i + 16, b2);
    _mm256_storeu_ps(best + i + 24, b3);
    _mm256_storeu_ps(reinterpret_cast<float*>(idx + i), i0);
    _mm256_storeu_ps(reinterpret_cast<float*>(idx + i + 8), i1);
    _mm256_storeu_ps(reinterpret_cast<float*>(idx + i + 16), i2);
    _mm256_storeu_ps(reinterpret_cast<float*>(idx + i + 24), i3);
  }
  argmax_channels_scalar(v + i, c0, c1, stride, best + i, idx + i, n - i);
}
EDGESEG_AVX2 void argmax_channels_avx2(const float* v, int64_t c0, int64_t c1, int64_t stride,
                                       float* best, int32_t* idx, int64_t n) {
  argmax_channels_avx2_t(v, c0, c1, stride, best, idx, n);
}
EDGESEG_AVX2 void argmax_channels_avx2(const uint16_t* v, int64_t c0, int64_t c1, int64_t stride,
                                       float* best, int32_t* idx, int64_t n) {
  argmax_channels_avx2_t(v, c0, c1, stride, best, idx, n);
}

// half_key of 16 lanes: sign(mag, h) negates where h's sign bit is set (-0 -> 0); the max with
// nan ^ 0x8000 (0x7fff in NaN lanes, the int16 minimum elsewhere) raises NaN lanes to 0x7fff.
EDGESEG_AVX2 inline __m256i half_key16(const uint16_t* p) {
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const __m256i mag = _mm256_and_si256(h, _mm256_set1_epi16(0x7fff));
  const __m256i nan = _mm256_cmpgt_epi16(mag, _mm256_set1_epi16(0x7c00));
  return _mm256_max_epi16(_mm256_sign_epi16(mag, h),
                          _mm256_xor_si256(nan, _mm256_set1_epi16(INT16_MIN)));
}

// Half-precision argmax on int16 keys: 16 pixels per register, 32 per step. Channels ascend, so
// the index update is max(idx, t & c): where channel c wins it is larger than any index so far.
EDGESEG_AVX2 void argmax_channels_avx2(const uint16_t* v, int64_t c0, int64_t c1, int64_t stride,
                                       int16_t* best, uint16_t* idx, int64_t n) {
  int64_t i = 0;
  const int64_t cs = c0 == 0 ? 1 : c0;
  for (; i + 32 <= n; i += 32) {
    __m256i b0, b1, i0, i1;
    if (c0 == 0) {
      b0 = half_key16(v + i), b1 = half_key16(v + i + 16);
      i0 = i1 = _mm256_setzero_si256();
    } else {
      b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(best + i));
      b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(best + i + 16));
      i0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(idx + i));
      i1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(idx + i + 16));
    }
    const uint16_t* p = v + cs * stride + i;
    for (int64_t c = cs; c < c1; ++c, p += stride) {
      const __m256i cv = _mm256_set1_epi16(static_cast<int16_t>(c));
      const __m256i x0 = half_key16(p), x1 = half_key16(p + 16);
      const __m256i t0 = _mm256_cmpgt_epi16(x0, b0), t1 = _mm256_cmpgt_epi16(x1, b1);
      b0 = _mm256_max_epi16(b0, x0);
      b1 = _mm256_max_epi16(b1, x1);
      i0 = _mm256_max_epu16(i0, _mm256_and_si256(t0, cv));
      i1 = _mm256_max_epu16(i1, _mm256_and_si256(t1, cv));
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(best + i), b0);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(best + i + 16), b1);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx + i), i0);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx + i + 16), i1);
  }
  argmax_channels_scalar(v + i, c0, c1, stride, best + i, idx + i, n - i);
}

// ---- overlay
// Table indices of 8 labels: uint8 labels index a 256-entry table; int32 ones are clamped (as
// unsigned, so negatives too) to `last`, the table's "no colour" entry.
EDGESEG_AVX2 inline __m256i overlay_index8(const uint8_t* l, uint32_t /*last*/) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(l)));
}
EDGESEG_AVX2 inline __m256i overlay_index8(const int32_t* l, uint32_t last) {
  return _mm256_min_epu32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(l)),
                          _mm256_set1_epi32(static_cast<int32_t>(last)));
}

// dst = src + ((((col - src) & mask) * a16 + 32768) >> 16) per byte, in 16-bit lanes. With
// a16 = s (kHigh false, a16 < 32768) or s + 65536 (kHigh, s <= 0), the 32-bit product d * a16 is
// (mulhi(d, s) [+ d]) * 65536 + mullo(d, s) (low half unsigned), so adding 32768 and shifting
// by 16 is mulhi [+ d] + (mullo >> 15, logical): exact. Equal to the scalar
// (p * (65536 - a16) + c * a16 + 32768) >> 16, and always within 0..255.
template <bool kHigh>
EDGESEG_AVX2 void blend_bytes_avx2(const uint8_t* src, const uint8_t* col, const uint8_t* mask,
                                   uint32_t a16, uint8_t* dst, int64_t nb) {
  const __m256i vs = _mm256_set1_epi16(static_cast<int16_t>(kHigh ? a16 - 65536 : a16));
  const __m256i z = _mm256_setzero_si256();
  int64_t i = 0;
  for (; i + 32 <= nb; i += 32) {
    const __m256i p = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
    const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(col + i));
    const __m256i m = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(mask + i));
    __m256i q[2];
    for (int h = 0; h < 2; ++h) {
      const __m256i p16 = h ? _mm256_unpackhi_epi8(p, z) : _mm256_unpacklo_epi8(p, z);
      const __m256i c16 = h ? _mm256_unpackhi_epi8(c, z) : _mm256_unpacklo_epi8(c, z);
      const __m256i m16 = h ? _mm256_unpackhi_epi8(m, m) : _mm256_unpacklo_epi8(m, m);
      const __m256i d = _mm256_and_si256(_mm256_sub_epi16(c16, p16), m16);
      __m256i r = _mm256_add_epi16(_mm256_mulhi_epi16(d, vs),
                                   _mm256_srli_epi16(_mm256_mullo_epi16(d, vs), 15));
      if (kHigh) r = _mm256_add_epi16(r, d);
      q[h] = _mm256_add_epi16(p16, r);
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), _mm256_packus_epi16(q[0], q[1]));
  }
  for (; i < nb; ++i) {
    const int64_t d = mask[i] ? int64_t(col[i]) - int64_t(src[i]) : 0;
    dst[i] = static_cast<uint8_t>((int64_t(src[i]) * 65536 + d * a16 + 32768) >> 16);
  }
}

// Overlay of n pixels in chunks: gather 8 table entries at a time and compact them (pshufb +
// vpermd) into interleaved colour and mask bytes matching the BGR layout, then blend bytes.
template <typename L>
EDGESEG_AVX2 void overlay_row_avx2_t(const uint8_t* src, const L* labels, uint32_t last,
                                     const uint32_t* table, uint32_t a16, uint8_t* dst, int64_t n) {
  constexpr int64_t kChunk = 256;
  alignas(32) uint8_t col[3 * kChunk + 32], mask[3 * kChunk + 32];
  const __m256i take_col = _mm256_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1,
                                            0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1);
  const __m256i take_flag = _mm256_setr_epi8(3, 3, 3, 7, 7, 7, 11, 11, 11, 15, 15, 15, -1, -1, -1, -1,
                                             3, 3, 3, 7, 7, 7, 11, 11, 11, 15, 15, 15, -1, -1, -1, -1);
  const __m256i join = _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 7, 7);
  const int* base = reinterpret_cast<const int*>(table);
  for (int64_t x0 = 0; x0 < n; x0 += kChunk) {
    const int64_t len = std::min(kChunk, n - x0);
    int64_t x = 0;
    for (; x + 8 <= len; x += 8) {
      const __m256i e = _mm256_i32gather_epi32(base, overlay_index8(labels + x0 + x, last), 4);
      const __m256i c = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(e, take_col), join);
      const __m256i m = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(e, take_flag), join);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(col + 3 * x), c);  // 24 bytes used
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(mask + 3 * x), m);
    }
    for (; x < len; ++x) {
      const L l = labels[x0 + x];
      const uint32_t u = static_cast<uint32_t>(l);
      const uint32_t e = table[sizeof(L) == 1 ? u : (u < last ? u : last)];
      for (int ch = 0; ch < 3; ++ch) {
        col[3 * x + ch] = static_cast<uint8_t>(e >> (8 * ch));
        mask[3 * x + ch] = static_cast<uint8_t>(e >> 24);
      }
    }
    if (a16 < 32768)
      blend_bytes_avx2<false>(src + 3 * x0, col, mask, a16, dst + 3 * x0, 3 * len);
    else
      blend_bytes_avx2<true>(src + 3 * x0, col, mask, a16, dst + 3 * x0, 3 * len);
  }
}
EDGESEG_AVX2 void overlay_row_avx2(const uint8_t* src, const uint8_t* labels, uint32_t last,
                                   const uint32_t* table, uint32_t a16, uint8_t* dst, int64_t n) {
  overlay_row_avx2_t(src, labels, last, table, a16, dst, n);
}
EDGESEG_AVX2 void overlay_row_avx2(const uint8_t* src, const int32_t* labels, uint32_t last,
                                   const uint32_t* table, uint32_t a16, uint8_t* dst, int64_t n) {
  overlay_row_avx2_t(src, labels, last, table, a16, dst, n);
}

// float(q0 & m) * a + float(q1 & m) * b, lane-wise.
EDGESEG_AVX2 inline __m256 byte_lerp8(__m256i q0, __m256i q1, __m256i m, __m256 a, __m256 b) {
  const __m256 v0 = _mm256_cvtepi32_ps(_mm256_and_si256(q0, m));
  const __m256 v1 = _mm256_cvtepi32_ps(_mm256_and_si256(q1, m));
  return _mm256_add_ps(_mm256_mul_ps(v0, a), _mm256_mul_ps(v1, b));
}

EDGESEG_AVX2 void resample_bgr_row_avx2(const uint8_t* src, int64_t readable, const int32_t* o0,
                                         const int32_t* o1, const float* w0, const float* w1,
                                         float* R, float* G, float* B, int64_t n) {
  int64_t safe = n;  // pixels whose 4-byte loads stay inside the readable bytes (o1 is monotone)
  while (safe > 0 && o1[safe - 1] + 4 > readable) --safe;
  const __m256i m = _mm256_set1_epi32(0xff);
  const int* base = reinterpret_cast<const int*>(src);
  int64_t x = 0;
  for (; x + 8 <= safe; x += 8) {
    const __m256i q0 = _mm256_i32gather_epi32(
        base, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(o0 + x)), 1);
    const __m256i q1 = _mm256_i32gather_epi32(
        base, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(o1 + x)), 1);
    const __m256 a = _mm256_loadu_ps(w0 + x), b = _mm256_loadu_ps(w1 + x);
    _mm256_storeu_ps(B + x, byte_lerp8(q0, q1, m, a, b));
    _mm256_storeu_ps(G + x, byte_lerp8(_mm256_srli_epi32(q0, 8), _mm256_srli_epi32(q1, 8), m, a, b));
    _mm256_storeu_ps(R + x, byte_lerp8(_mm256_srli_epi32(q0, 16), _mm256_srli_epi32(q1, 16), m, a, b));
  }
  resample_bgr_row_scalar(src, readable, o0 + x, o1 + x, w0 + x, w1 + x, R + x, G + x, B + x,
                          n - x);
}

// Channel ch of 4 BGR pixels held in bytes 0..11 of v, as 4 int32 lanes.
EDGESEG_AVX2 inline __m128i bgr4_channel(__m128i v, int ch) {
  const char z = static_cast<char>(0x80);  // pshufb: 0x80 writes a zero byte
  const __m128i m = _mm_setr_epi8(static_cast<char>(ch), z, z, z, static_cast<char>(ch + 3), z, z, z,
                                  static_cast<char>(ch + 6), z, z, z, static_cast<char>(ch + 9), z, z, z);
  return _mm_shuffle_epi8(v, m);
}

// Byte shuffles instead of gathers (gathers are slow on CPUs with the gather data sampling
// mitigation).
EDGESEG_AVX2 void bgr_row_to_planes_avx2(const uint8_t* src, int64_t readable, float* R, float* G,
                                          float* B, int64_t n) {
  int64_t x = 0;
  for (; x + 8 <= n && 3 * x + 28 <= readable; x += 8) {  // 16-byte loads at 3x and 3x + 12
    const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 3 * x));
    const __m128i hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 3 * x + 12));
    float* planes[3] = {B, G, R};
    for (int ch = 0; ch < 3; ++ch) {
      const __m256i v = _mm256_set_m128i(bgr4_channel(hi, ch), bgr4_channel(lo, ch));
      _mm256_storeu_ps(planes[ch] + x, _mm256_cvtepi32_ps(v));
    }
  }
  bgr_row_to_planes_scalar(src + 3 * x, readable - 3 * x, R + x, G + x, B + x, n - x);
}

EDGESEG_AVX2 void gather_lerp_avx2(const float* src, const int32_t* i0, const int32_t* i1,
                                   const float* w0, const float* w1, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(i0 + i));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(i1 + i));
    __m256 x = _mm256_add_ps(_mm256_mul_ps(_mm256_i32gather_ps(src, a, 4), _mm256_loadu_ps(w0 + i)),
                             _mm256_mul_ps(_mm256_i32gather_ps(src, b, 4), _mm256_loadu_ps(w1 + i)));
    _mm256_storeu_ps(out + i, x);
  }
  gather_lerp_scalar(src, i0 + i, i1 + i, w0 + i, w1 + i, out + i, n - i);
}

EDGESEG_AVX2 inline __m256 lerp8(const float* a, const float* b, __m256 va, __m256 vb) {
  return _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(a), va), _mm256_mul_ps(_mm256_loadu_ps(b), vb));
}

EDGESEG_AVX2 void lerp_argmax_channels_avx2(const float* a, const float* b, float wa, float wb,
                                            const int32_t* chans, int64_t nch, int64_t stride,
                                            int32_t* idx, int64_t n) {
  const __m256 va = _mm256_set1_ps(wa), vb = _mm256_set1_ps(wb);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {  // 16 pixels: running max/index in 4 registers
    const float* pa = a + chans[0] * stride + i;
    const float* pb = b + chans[0] * stride + i;
    __m256 b0 = lerp8(pa, pb, va, vb), b1 = lerp8(pa + 8, pb + 8, va, vb);
    __m256 i0 = _mm256_castsi256_ps(_mm256_set1_epi32(chans[0])), i1 = i0;
    for (int64_t k = 1; k < nch; ++k) {
      pa = a + chans[k] * stride + i;
      pb = b + chans[k] * stride + i;
      const __m256 cv = _mm256_castsi256_ps(_mm256_set1_epi32(chans[k]));
      const __m256 x0 = lerp8(pa, pb, va, vb), x1 = lerp8(pa + 8, pb + 8, va, vb);
      const __m256 t0 = beats_avx2(x0, b0), t1 = beats_avx2(x1, b1);
      b0 = _mm256_blendv_ps(b0, x0, t0);
      b1 = _mm256_blendv_ps(b1, x1, t1);
      i0 = _mm256_blendv_ps(i0, cv, t0);
      i1 = _mm256_blendv_ps(i1, cv, t1);
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx + i), _mm256_castps_si256(i0));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx + i + 8), _mm256_castps_si256(i1));
  }
  lerp_argmax_channels_scalar(a + i, b + i, wa, wb, chans, nch, stride, idx + i, n - i);
}

EDGESEG_AVX2 inline __m256 lerp_affine8(const float* a, const float* b, __m256 va, __m256 vb,
                                        __m256 vk, __m256 vbias) {
  return _mm256_add_ps(_mm256_mul_ps(lerp8(a, b, va, vb), vk), vbias);
}

EDGESEG_AVX2 void lerp_affine_avx2(const float* a, const float* b, float wa, float wb, float k,
                                   float bias, float* out, int64_t n) {
  const __m256 va = _mm256_set1_ps(wa), vb = _mm256_set1_ps(wb);
  const __m256 vk = _mm256_set1_ps(k), vbias = _mm256_set1_ps(bias);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, lerp_affine8(a + i, b + i, va, vb, vk, vbias));
  lerp_affine_scalar(a + i, b + i, wa, wb, k, bias, out + i, n - i);
}

EDGESEG_AVX2 void lerp_affine_avx2(const float* a, const float* b, float wa, float wb, float k,
                                   float bias, uint16_t* out, int64_t n) {
  const __m256 va = _mm256_set1_ps(wa), vb = _mm256_set1_ps(wb);
  const __m256 vk = _mm256_set1_ps(k), vbias = _mm256_set1_ps(bias);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm256_cvtps_ph(lerp_affine8(a + i, b + i, va, vb, vk, vbias),
                                _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), h);
  }
  lerp_affine_scalar(a + i, b + i, wa, wb, k, bias, out + i, n - i);
}

#define EDGESEG_DISPATCH(name, ...)               \
  do {                                            \
    if (use_simd()) return name##_avx2(__VA_ARGS__); \
    return name##_scalar(__VA_ARGS__);            \
  } while (0)
#else
#define EDGESEG_DISPATCH(name, ...) return name##_scalar(__VA_ARGS__)
#endif

}  // namespace

bool simd_supported() { return cpu_has_avx2(); }
bool simd_enabled() { return use_simd(); }
void set_simd_enabled(bool on) { simd_state().store((on && cpu_has_avx2()) ? 1 : 0); }
const char* simd_name() { return use_simd() ? "avx2+f16c" : "scalar"; }

namespace rows {

void half_to_float(const uint16_t* src, float* dst, int64_t n) {
  EDGESEG_DISPATCH(half_to_float, src, dst, n);
}
void argmax_channels(const float* v, int64_t c0, int64_t c1, int64_t stride, float* best,
                     int32_t* idx, int64_t n) {
  EDGESEG_DISPATCH(argmax_channels, v, c0, c1, stride, best, idx, n);
}
void argmax_channels(const uint16_t* v, int64_t c0, int64_t c1, int64_t stride, float* best,
                     int32_t* idx, int64_t n) {
  EDGESEG_DISPATCH(argmax_channels, v, c0, c1, stride, best, idx, n);
}
void argmax_channels(const uint16_t* v, int64_t c0, int64_t c1, int64_t stride, int16_t* best,
                     uint16_t* idx, int64_t n) {
  EDGESEG_DISPATCH(argmax_channels, v, c0, c1, stride, best, idx, n);
}
void overlay_row(const uint8_t* src, const uint8_t* labels, uint32_t last, const uint32_t* table,
                 uint32_t alpha16, uint8_t* dst, int64_t n) {
  EDGESEG_DISPATCH(overlay_row, src, labels, last, table, alpha16, dst, n);
}
void overlay_row(const uint8_t* src, const int32_t* labels, uint32_t last, const uint32_t* table,
                 uint32_t alpha16, uint8_t* dst, int64_t n) {
  EDGESEG_DISPATCH(overlay_row, src, labels, last, table, alpha16, dst, n);
}
void clear_nonfinite(const float* v, int64_t C, int64_t stride, uint8_t* flags, int64_t n) {
  clear_nonfinite_scalar(v, C, stride, flags, n);  // the compiler vectorises it
}
void clear_nonfinite(const uint16_t* v, int64_t C, int64_t stride, uint8_t* flags, int64_t n) {
  clear_nonfinite_scalar(v, C, stride, flags, n);
}
void resample_bgr_row(const uint8_t* src, int64_t readable, const int32_t* o0, const int32_t* o1,
                      const float* w0, const float* w1, float* R, float* G, float* B, int64_t n) {
  EDGESEG_DISPATCH(resample_bgr_row, src, readable, o0, o1, w0, w1, R, G, B, n);
}
void bgr_row_to_planes(const uint8_t* src, int64_t readable, float* R, float* G, float* B,
                       int64_t n) {
  EDGESEG_DISPATCH(bgr_row_to_planes, src, readable, R, G, B, n);
}
void gather_lerp(const float* src, const int32_t* i0, const int32_t* i1, const float* w0,
                 const float* w1, float* out, int64_t n) {
  EDGESEG_DISPATCH(gather_lerp, src, i0, i1, w0, w1, out, n);
}
void lerp_argmax_channels(const float* a, const float* b, float wa, float wb,
                          const int32_t* chans, int64_t nch, int64_t stride, int32_t* idx,
                          int64_t n) {
  EDGESEG_DISPATCH(lerp_argmax_channels, a, b, wa, wb, chans, nch, stride, idx, n);
}
void lerp_affine(const float* a, const float* b, float wa, float wb, float k, float bias,
                 float* out, int64_t n) {
  EDGESEG_DISPATCH(lerp_affine, a, b, wa, wb, k, bias, out, n);
}
void lerp_affine(const float* a, const float* b, float wa, float wb, float k, float bias,
                 uint16_t* out, int64_t n) {
  EDGESEG_DISPATCH(lerp_affine, a, b, wa, wb, k, bias, out, n);
}

}  // namespace rows
}  // namespace edgeseg
