// Box-local instance masks: assembly from prototypes, paste of fixed-size RoI masks, COCO RLE,
// areas and overlay. Nothing here allocates N x H x W.
//
// A mask set of K masks over an H x W frame is stored as
//   regions: K x 4 int32 (x0, y0, x1, y1), 0 <= x0 <= x1 <= W, 0 <= y0 <= y1 <= H, the frame
//            pixels [y0, y1) x [x0, x1) the mask may cover; an empty region is (0, 0, 0, 0);
//   offsets: K + 1 int64, offsets[0] = 0, offsets[k+1] - offsets[k] = region area;
//   data:    offsets[K] uint8 bytes, mask k's bitmap (0/1, row-major over its region) at
//            data + offsets[k]. Pixels outside a region are 0.
//
// Kernels fill a preallocated set: callers compute regions (the *_regions functions), offsets
// (prefix sums of the areas), allocate data, then call the fill function. Work is spread over the
// thread pool by rows of all regions together, so one large box does not serialise the rest;
// results do not depend on the thread count.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common.h"

namespace edgeseg {

// Frame pixel index d -> continuous position in a coarser grid of `cells` samples that spans a
// network input of `input` pixels, the frame having been resized to `resized` pixels and placed
// at `pad` (letterbox):  u = (d + 0.5) * resized / frame + pad,  s = u * cells / input - 0.5.
// Bilinear taps use s (pixel-centre convention, border-clamped as resample.h); nearest uses
// floor(u * cells / input) clamped to [0, cells - 1].
struct AxisMap {
  double resized, frame, pad, cells, input;
  double unit(int64_t d) const {  // u * cells / input, evaluated in this exact order
    return ((static_cast<double>(d) + 0.5) * resized / frame + pad) * cells / input;
  }
};

// Regions of masks assembled from prototypes: the pixels whose centre lies in the box,
// x0 <= x + 0.5 < x1 and y0 <= y + 0.5 < y1, clipped to the frame (empty if a coordinate is NaN).
// boxes: K x 4 float32 xyxy.
void assemble_regions(const float* boxes, int64_t K, int64_t H, int64_t W, int32_t* regions);

// Prototype masks (YOLACT / YOLO-seg): mask k is 1 at region pixel (y, x) iff the bilinearly
// interpolated logit  m = sum_c coeffs[k, c] * protos[c](s_y(y), s_x(x))  is > logit_threshold.
//   coeffs: K x Mc float32; protos: Mc x Hp x Wp float32 or float16 (C-contiguous).
//   fast: instead threshold the logit of the nearest prototype cell.
// Interpolation is linear, so the logits are computed only on the prototype cells under each box
// (a K x cells x Mc product) and the scalar field is interpolated per pixel.
void assemble_masks(const float* coeffs, int64_t K, int64_t Mc, const void* protos,
                    FloatType protos_dtype, int64_t Hp, int64_t Wp, const int32_t* regions,
                    const int64_t* offsets, uint8_t* data, const AxisMap& my, const AxisMap& mx,
                    double logit_threshold, bool fast);

// Regions of pasted masks, as detectron2's CPU path (paste_masks_in_image, one box per chunk):
// [floor(x0) - 1, ceil(x1) + 1) x [floor(y0) - 1, ceil(y1) + 1) clipped to the frame; empty for
// a degenerate box (x1 <= x0, y1 <= y0, or not finite).
void paste_regions(const float* boxes, int64_t N, int64_t H, int64_t W, int32_t* regions);

// detectron2 _do_paste_mask: region pixel (y, x) samples mask k at
//   ix = (x + 0.5 - x0) / (x1 - x0) * Mw - 0.5,  iy likewise,
// bilinearly with zero padding outside the mask (grid_sample, align_corners=False), and is 1 iff
// the value is >= threshold. masks: N x Mh x Mw float32 or float16 (C-contiguous).
void paste_masks(const void* masks, FloatType dtype, int64_t N, int64_t Mh, int64_t Mw,
                 const float* boxes, const int32_t* regions, const int64_t* offsets,
                 uint8_t* data, double threshold);

// Number of set pixels of every mask.
void mask_areas(const uint8_t* data, const int64_t* offsets, int64_t K, int64_t* areas);

// COCO compressed RLE counts string of every mask as a full H x W mask (column-major runs
// starting with zeros, pycocotools rleToString encoding), computed from the box-local bitmaps.
std::vector<std::string> rle_strings(const uint8_t* data, const int64_t* offsets,
                                     const int32_t* regions, int64_t K, int64_t H, int64_t W);

// Blend every mask's colour onto the frame in order (later masks on top), box-local:
//   out = (out * (65536 - a) + colour * a + 32768) >> 16 on mask pixels (a = alpha16),
//   out = colour on outline pixels when outline (mask pixels with a 4-neighbour that is not in
//   the mask; neighbours outside the frame count as not in the mask).
// image and out: H x W x 3 uint8; out may alias image; colors: K x 3 uint8.
void overlay_instances(const uint8_t* image, int64_t H, int64_t W, const uint8_t* data,
                       const int64_t* offsets, const int32_t* regions, int64_t K,
                       const uint8_t* colors, uint32_t alpha16, bool outline, uint8_t* out);

}  // namespace edgeseg
