// Colourise labels with a palette and alpha-blend onto an image, in one pass.
//
//   image:   H x W x 3 uint8 (any channel order; the palette must use the same order, BGR in edgeseg)
//   labels:  H x W uint8 or int32 (C-contiguous)
//   palette: K x 3 uint8
//   out:     H x W x 3 uint8; may alias image (in-place)
//   For label l in [0, K): out = (image * (65536 - a) + palette[l] * a + 32768) >> 16 per channel,
//   with a = round(alpha * 65536) (exact 16-bit fixed point, within 1 of the float blend);
//   any other label (>= K, or negative) leaves the pixel unchanged, and so does a label k with
//   skip[k] != 0 (skip: K uint8 flags, or null; e.g. background left untinted).
#pragma once

#include <cstdint>

#include "common.h"

namespace edgeseg {

void overlay(const uint8_t* image, const void* labels, LabelType label_type, int64_t H, int64_t W,
             const uint8_t* palette, int64_t K, uint32_t alpha16, uint8_t* out,
             const uint8_t* skip = nullptr);

}  // namespace edgeseg
