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
// Running argmax over the channel planes [c0, c1) of v (plane c at v + c*stride; float32, or
// IEEE half bits read directly): with c0 == 0 it starts from channel 0, otherwise from best/idx
// as a previous call left them; best/idx hold the running max and its channel afterwards. The
// first index wins on ties and the first NaN wins over any number (as numpy.argmax). Within a
// call the running max stays in registers across channels.
void argmax_channels(const float* v, int64_t c0, int64_t c1, int64_t stride, float* best,
                     int32_t* idx, int64_t n);
void argmax_channels(const uint16_t* v, int64_t c0, int64_t c1, int64_t stride, float* best,
                     int32_t* idx, int64_t n);
// Half-precision argmax with the running max kept as int16 order keys (see half_key in
// simd.cpp; comparing keys is comparing the floats) and uint16 channel indices: twice the lanes
// of the float version per register, and integer ops only. Same contract otherwise (C <= 65536).
void argmax_channels(const uint16_t* v, int64_t c0, int64_t c1, int64_t stride, int16_t* best,
                     uint16_t* idx, int64_t n);
// Palette blend of n interleaved 3-byte pixels: e = table[index(label)], an entry
// B | G << 8 | R << 16 | flag << 24 (flag 0xff: the label has a colour, 0: leave the pixel).
// With a colour, dst = (src * (65536 - alpha16) + colour * alpha16 + 32768) >> 16 per byte
// (alpha16 <= 65536); otherwise dst = src. uint8 labels index a 256-entry table; int32 labels
// are clamped as unsigned to `last` (so negatives too), the table having last + 1 entries.
// dst may alias src.
void overlay_row(const uint8_t* src, const uint8_t* labels, uint32_t last, const uint32_t* table,
                 uint32_t alpha16, uint8_t* dst, int64_t n);
void overlay_row(const uint8_t* src, const int32_t* labels, uint32_t last, const uint32_t* table,
                 uint32_t alpha16, uint8_t* dst, int64_t n);
// flags[i] = 0 where any of the C planes holds a NaN or infinity at i (flags left as is elsewhere).
void clear_nonfinite(const float* v, int64_t C, int64_t stride, uint8_t* flags, int64_t n);
void clear_nonfinite(const uint16_t* v, int64_t C, int64_t stride, uint8_t* flags, int64_t n);
// Horizontal bilinear taps of one BGR uint8 row into float R, G, B planes:
// for channel ch, plane[i] = float(src[o0[i] + ch]) * w0[i] + float(src[o1[i] + ch]) * w1[i]
// (o0/o1 are byte offsets of pixels). `readable` = bytes readable from src (the SIMD path loads
// 4 bytes per pixel, so it leaves pixels within 4 bytes of that end to the scalar loop).
void resample_bgr_row(const uint8_t* src, int64_t readable, const int32_t* o0, const int32_t* o1,
                      const float* w0, const float* w1, float* R, float* G, float* B, int64_t n);
// A BGR uint8 row of n pixels into float R, G, B planes unchanged (the identity of
// resample_bgr_row: same values bit for bit). `readable` as there.
void bgr_row_to_planes(const uint8_t* src, int64_t readable, float* R, float* G, float* B,
                       int64_t n);
// out[i] = src[i0[i]]*w0[i] + src[i1[i]]*w1[i] (horizontal bilinear taps).
void gather_lerp(const float* src, const int32_t* i0, const int32_t* i1, const float* w0,
                 const float* w1, float* out, int64_t n);
// Fused vertical blend + argmax over the channels chans[0..nch) (ascending) of planes with
// stride `stride`: v_k[i] = a[chans[k]*stride + i]*wa + b[chans[k]*stride + i]*wb;
// idx[i] = the channel of the largest v_k[i] (same rules as argmax_channels). The running max
// stays in registers across channels.
void lerp_argmax_channels(const float* a, const float* b, float wa, float wb,
                          const int32_t* chans, int64_t nch, int64_t stride, int32_t* idx,
                          int64_t n);
// out[i] = (a[i]*wa + b[i]*wb) * k + bias, as float or as half.
void lerp_affine(const float* a, const float* b, float wa, float wb, float k, float bias,
                 float* out, int64_t n);
void lerp_affine(const float* a, const float* b, float wa, float wb, float k, float bias,
                 uint16_t* out, int64_t n);

}  // namespace rows
}  // namespace edgeseg
