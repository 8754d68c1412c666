// Letterbox preprocessing in one pass: bilinear resize + pad + BGR->RGB + normalise + HWC->CHW.
//
//   image:  H x W x 3 uint8, BGR, C-contiguous
//   out:    3 x oh x ow (C-contiguous planes, R, G, B), float32 or float16
//   The image is resized to rh x rw (cv2.resize INTER_LINEAR semantics: half-pixel centres,
//   border clamp, no antialiasing) and placed at (pad_top, pad_left); everything else is padding.
//   out[c, y, x] = resized_rgb[c] * scale[c] + bias[c] inside, pad[c] outside, where callers pass
//   scale = 1/std, bias = -mean/std, pad = (pad_value - mean)/std, all in RGB order.
//
// Rows of the output are split over the thread pool. Per thread, the two source rows an output
// row needs are resized horizontally into planar float buffers (cached while consecutive output
// rows share them), then one vertical blend + affine per plane writes the output row.
#pragma once

#include <cstdint>

#include "common.h"

namespace edgeseg {

void letterbox(const uint8_t* image, int64_t H, int64_t W, void* out, FloatType out_dtype,
               int64_t oh, int64_t ow, int64_t rh, int64_t rw, int64_t pad_top, int64_t pad_left,
               const float scale[3], const float bias[3], const float pad[3]);

}  // namespace edgeseg
