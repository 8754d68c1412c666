// Row primitives: portable loops + AVX2/F16C versions chosen at run time (see simd.h).
#include "simd.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "half.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define EDGESEG_HAVE_AVX2 1
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
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
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

inline bool beats(float v, float b) { return (v > b) || (v != v && b == b); }

void half_to_float_scalar(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = edgeseg::half_to_float(src[i]);
}
void float_to_half_scalar(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = edgeseg::float_to_half(src[i]);
}
void argmax_update_scalar(const float* v, float* best, int32_t* idx, int32_t c, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float x = v[i], b = best[i];
    const bool t = beats(x, b);
    best[i] = t ? x : b;
    idx[i] = t ? c : idx[i];
  }
}
void lerp_scalar(const float* a, const float* b, float wa, float wb, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] * wa + b[i] * wb;
}
void lerp_argmax_update_scalar(const float* a, const float* b, float wa, float wb, float* best,
                               int32_t* idx, int32_t c, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float x = a[i] * wa + b[i] * wb, bb = best[i];
    const bool t = beats(x, bb);
    best[i] = t ? x : bb;
    idx[i] = t ? c : idx[i];
  }
}
void gather_lerp_scalar(const float* src, const int32_t* i0, const int32_t* i1, const float* w0,
                        const float* w1, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = src[i0[i]] * w0[i] + src[i1[i]] * w1[i];
}
void lerp_argmax_channels_scalar(const float* a, const float* b, float wa, float wb, int64_t C,
                                 int64_t stride, int32_t* idx, int64_t n) {
  constexpr int64_t kBlock = 16;  // small fixed blocks the compiler can vectorise (NEON/SSE2)
  float best[kBlock];
  int32_t bi[kBlock];
  for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
    const int64_t m = n - i0 < kBlock ? n - i0 : kBlock;
    for (int64_t j = 0; j < m; ++j) {
      best[j] = a[i0 + j] * wa + b[i0 + j] * wb;
      bi[j] = 0;
    }
    for (int64_t c = 1; c < C; ++c) {
      const float* pa = a + c * stride + i0;
      const float* pb = b + c * stride + i0;
      const int32_t ci = static_cast<int32_t>(c);
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
void lerp_affine_scalar(const float* a, const float* b, float wa, float wb, float k, float bias,
                        float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = (a[i] * wa + b[i] * wb) * k + bias;
}
void lerp_affine_scalar(const float* a, const float* b, float wa, float wb, float k, float bias,
                        uint16_t* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    out[i] = edgeseg::float_to_half((a[i] * wa + b[i] * wb) * k + bias);
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

EDGESEG_AVX2 void float_to_half_avx2(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), h);
  }
  float_to_half_scalar(src + i, dst + i, n - i);
}

// mask of lanes where x beats b: x > b, or x is NaN and b is not.
EDGESEG_AVX2 inline __m256 beats_avx2(__m256 x, __m256 b) {
  __m256 gt = _mm256_cmp_ps(x, b, _CMP_GT_OQ);
  __m256 xnan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
  __m256 bord = _mm256_cmp_ps(b, b, _CMP_ORD_Q);
  return _mm256_or_ps(gt, _mm256_and_ps(xnan, bord));
}

EDGESEG_AVX2 inline void update8(__m256 x, float* best, int32_t* idx, __m256 cv) {
  __m256 b = _mm256_loadu_ps(best);
  __m256 t = beats_avx2(x, b);
  _mm256_storeu_ps(best, _mm256_blendv_ps(b, x, t));
  __m256 id = _mm256_castsi256_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(idx)));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx),
                      _mm256_castps_si256(_mm256_blendv_ps(id, cv, t)));
}

EDGESEG_AVX2 void argmax_update_avx2(const float* v, float* best, int32_t* idx, int32_t c,
                                     int64_t n) {
  const __m256 cv = _mm256_castsi256_ps(_mm256_set1_epi32(c));
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) update8(_mm256_loadu_ps(v + i), best + i, idx + i, cv);
  argmax_update_scalar(v + i, best + i, idx + i, c, n - i);
}

EDGESEG_AVX2 void lerp_avx2(const float* a, const float* b, float wa, float wb, float* out,
                            int64_t n) {
  const __m256 va = _mm256_set1_ps(wa), vb = _mm256_set1_ps(wb);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 x = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(a + i), va),
                             _mm256_mul_ps(_mm256_loadu_ps(b + i), vb));
    _mm256_storeu_ps(out + i, x);
  }
  lerp_scalar(a + i, b + i, wa, wb, out + i, n - i);
}

EDGESEG_AVX2 void lerp_argmax_update_avx2(const float* a, const float* b, float wa, float wb,
                                          float* best, int32_t* idx, int32_t c, int64_t n) {
  const __m256 va = _mm256_set1_ps(wa), vb = _mm256_set1_ps(wb);
  const __m256 cv = _mm256_castsi256_ps(_mm256_set1_epi32(c));
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 x = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(a + i), va),
                             _mm256_mul_ps(_mm256_loadu_ps(b + i), vb));
    update8(x, best + i, idx + i, cv);
  }
  lerp_argmax_update_scalar(a + i, b + i, wa, wb, best + i, idx + i, c, n - i);
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

EDGESEG_AVX2 void lerp_argmax_channels_avx2(const float* a, const float* b, float wa, float wb,
                                            int64_t C, int64_t stride, int32_t* idx, int64_t n) {
  const __m256 va = _mm256_set1_ps(wa), vb = _mm256_set1_ps(wb);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {  // 16 pixels: running max/index in 4 registers
    const float* pa = a + i;
    const float* pb = b + i;
    __m256 b0 = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(pa), va),
                              _mm256_mul_ps(_mm256_loadu_ps(pb), vb));
    __m256 b1 = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(pa + 8), va),
                              _mm256_mul_ps(_mm256_loadu_ps(pb + 8), vb));
    __m256 i0 = _mm256_setzero_ps(), i1 = _mm256_setzero_ps();
    for (int64_t c = 1; c < C; ++c) {
      pa += stride;
      pb += stride;
      const __m256 cv = _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int32_t>(c)));
      __m256 x0 = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(pa), va),
                                _mm256_mul_ps(_mm256_loadu_ps(pb), vb));
      __m256 x1 = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(pa + 8), va),
                                _mm256_mul_ps(_mm256_loadu_ps(pb + 8), vb));
      __m256 t0 = beats_avx2(x0, b0), t1 = beats_avx2(x1, b1);
      b0 = _mm256_blendv_ps(b0, x0, t0);
      b1 = _mm256_blendv_ps(b1, x1, t1);
      i0 = _mm256_blendv_ps(i0, cv, t0);
      i1 = _mm256_blendv_ps(i1, cv, t1);
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx + i), _mm256_castps_si256(i0));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx + i + 8), _mm256_castps_si256(i1));
  }
  lerp_argmax_channels_scalar(a + i, b + i, wa, wb, C, stride, idx + i, n - i);
}

EDGESEG_AVX2 inline __m256 lerp_affine8(const float* a, const float* b, __m256 va, __m256 vb,
                                        __m256 vk, __m256 vbias) {
  __m256 x = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(a), va),
                           _mm256_mul_ps(_mm256_loadu_ps(b), vb));
  return _mm256_add_ps(_mm256_mul_ps(x, vk), vbias);
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
void float_to_half(const float* src, uint16_t* dst, int64_t n) {
  EDGESEG_DISPATCH(float_to_half, src, dst, n);
}
void argmax_init(const float* v, float* best, int32_t* idx, int64_t n) {
  std::memcpy(best, v, static_cast<size_t>(n) * sizeof(float));
  std::memset(idx, 0, static_cast<size_t>(n) * sizeof(int32_t));
}
void argmax_update(const float* v, float* best, int32_t* idx, int32_t c, int64_t n) {
  EDGESEG_DISPATCH(argmax_update, v, best, idx, c, n);
}
void lerp(const float* a, const float* b, float wa, float wb, float* out, int64_t n) {
  EDGESEG_DISPATCH(lerp, a, b, wa, wb, out, n);
}
void lerp_argmax_update(const float* a, const float* b, float wa, float wb, float* best,
                        int32_t* idx, int32_t c, int64_t n) {
  EDGESEG_DISPATCH(lerp_argmax_update, a, b, wa, wb, best, idx, c, n);
}
void gather_lerp(const float* src, const int32_t* i0, const int32_t* i1, const float* w0,
                 const float* w1, float* out, int64_t n) {
  EDGESEG_DISPATCH(gather_lerp, src, i0, i1, w0, w1, out, n);
}
void lerp_argmax_channels(const float* a, const float* b, float wa, float wb, int64_t C,
                          int64_t stride, int32_t* idx, int64_t n) {
  EDGESEG_DISPATCH(lerp_argmax_channels, a, b, wa, wb, C, stride, idx, n);
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
