// Row primitives shared by the kernels, with a runtime-dispatched SIMD path.
//
// Every primitive has a portable C++ loop (the "scalar" path; the compiler may still vectorise it
// for the baseline ISA: SSE2 on x86_64, NEON on aarch64) and, on x86_64 with GCC/Clang, an
// AVX2+F16C path selected at run time when the CPU supports it. Both paths perform the same IEEE
// operations in the same order (no FMA contraction: the library is built with -ffp-contract=off),
// so their results are bit-identical; tests check that via set_simd_enabled(false).
//
// The scalar path is forced by env EDGESEG_FORCE_SCALAR=1 (read once) or set_simd_enabled(false).
#pragma once

#include <cstdint>

namespace edgeseg {

bool simd_supported();            // CPU (and build) can run the SIMD path
bool simd_enabled();              // SIMD path in use now
void set_simd_enabled(bool on);   // request on/off (on is ignored when unsupported)
const char* simd_name();          // "avx2+f16c" or "scalar"

namespace rows {

// dst[i] = float(src[i]) for IEEE half bits src.
void half_to_float(const uint16_t* src, float* dst, int64_t n);
// dst[i] = half(src[i]) rounded to nearest even.
void float_to_half(const float* src, uint16_t* dst, int64_t n);
// best[i] = v[i]; idx[i] = 0.
void argmax_init(const float* v, float* best, int32_t* idx, int64_t n);
// Where v[i] beats best[i] (v > best, or v is NaN and best is not): best = v, idx = c.
// First index wins on ties; the first NaN wins, as numpy.argmax.
void argmax_update(const float* v, float* best, int32_t* idx, int32_t c, int64_t n);
// out[i] = a[i]*wa + b[i]*wb.
void lerp(const float* a, const float* b, float wa, float wb, float* out, int64_t n);
// v = a[i]*wa + b[i]*wb, then argmax_update with v.
void lerp_argmax_update(const float* a, const float* b, float wa, float wb, float* best,
                        int32_t* idx, int32_t c, int64_t n);
// out[i] = src[i0[i]]*w0[i] + src[i1[i]]*w1[i] (horizontal bilinear taps).
void gather_lerp(const float* src, const int32_t* i0, const int32_t* i1, const float* w0,
                 const float* w1, float* out, int64_t n);
// Fused vertical blend + argmax over C channels held as planes with stride `stride`:
// v_c[i] = a[c*stride + i]*wa + b[c*stride + i]*wb; idx[i] = argmax_c v_c[i] (same rules as
// argmax_update). The running max stays in registers across channels.
void lerp_argmax_channels(const float* a, const float* b, float wa, float wb, int64_t C,
                          int64_t stride, int32_t* idx, int64_t n);
// out[i] = (a[i]*wa + b[i]*wb) * k + bias, as float or as half.
void lerp_affine(const float* a, const float* b, float wa, float wb, float k, float bias,
                 float* out, int64_t n);
void lerp_affine(const float* a, const float* b, float wa, float wb, float k, float bias,
                 uint16_t* out, int64_t n);

}  // namespace rows
}  // namespace edgeseg
