// argmax over the channel axis.
//
//   logits: N x C x H x W (C-contiguous), float32 or float16   (N = 1 for a CHW input)
//   labels: N x H x W (C-contiguous), uint8 (C <= 255) or int32
//   labels[n, y, x] = argmax_c logits[n, c, y, x]; the first index wins on ties and the first NaN
//   wins over any number, exactly as numpy.argmax(axis=-3).
//
// Pixels are processed in tiles of 2048 spread over the thread pool. A tile is swept over the
// channels 8 planes at a time: blocks of 32 pixels keep their running max/index in registers
// within a pass and park them in an L1 buffer between passes. Planes are H*W apart (often a large
// power of two, so they share cache sets); reading a few at a time keeps the hardware prefetchers
// useful. float16 is converted in registers, so it reads half the bytes.
#pragma once

#include <cstdint>

#include "common.h"

namespace edgeseg {

void argmax(const void* logits, FloatType dtype, int64_t N, int64_t C, int64_t HW, void* labels,
            LabelType label_type);

}  // namespace edgeseg
