// Fused bilinear upsample + channel argmax, never materialising full-resolution logits.
//
//   logits: C x h x w (C-contiguous), float32 or float16
//   labels: H x W (C-contiguous), uint8 (C <= 255) or int32
//   Output pixel (y, x) samples each channel at logits position (y * ay + by, x * ax + bx)
//   (pixel-centre coordinates, border-clamped, see resample.h) and takes the argmax over C
//   (first index wins on ties). Plain half-pixel resize (torch align_corners=False):
//   ay = h / H, by = ay / 2 - 1/2 (same for x). Letterbox inverse mapping is another (a, b).
//
// Separable and row-buffered: each thread owns a band of output rows and, per column tile, keeps
// the horizontally interpolated logits of the two source rows it needs (2 x C x tile floats,
// tile chosen so this stays ~128 KiB); each output row is then a vertical blend + running argmax
// over the C channels, streaming through L2. Source rows are reinterpolated only when the band
// moves to a new pair of rows.
//
// Label-uniform cells are skipped: the argmax of the low-resolution logits is taken first, and
// output pixels whose four bilinear source pixels share the same argmax k (all channels finite)
// are set to k directly. That is exact: a convex combination of logit vectors that each rank k
// first (ties included) ranks k first. Only pixels near a label boundary pay for the C-channel
// blend, a small fraction of the frame for real segmentation maps.
#pragma once

#include <cstdint>

#include "common.h"

namespace edgeseg {

void upsample_argmax(const void* logits, FloatType dtype, int64_t C, int64_t h, int64_t w,
                     void* labels, LabelType label_type, int64_t H, int64_t W, double ay, double by,
                     double ax, double bx);

}  // namespace edgeseg
