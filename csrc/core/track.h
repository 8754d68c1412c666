// Association kernels for multi-object tracking: pairwise IoU of box-local masks and a
// rectangular linear assignment with a cost limit.
#pragma once

#include <cstdint>

namespace edgeseg {

// IoU of every pair (mask i of set A, mask j of set B), box-local storage as in masks.h.
//   A: data_a / offsets_a / regions_a (K masks), each mask i moved by shift_a[i] = (dx, dy)
//      whole pixels (shift_a may be null = no move; a moved region may leave the frame);
//   B: data_b / offsets_b / regions_b (M masks).
//   out: K x M float32, |a & b| / |a | b| with the areas counted on the bitmaps; 0 when the union
//   is empty. Work is proportional to the overlap of the two regions of each pair.
void mask_iou(const uint8_t* data_a, const int64_t* offsets_a, const int32_t* regions_a,
              const int32_t* shift_a, int64_t K, const uint8_t* data_b, const int64_t* offsets_b,
              const int32_t* regions_b, int64_t M, float* out);

// Minimum-cost matching of the rows and columns of an n x m cost matrix (row-major, float64),
// where leaving a row or a column unmatched costs limit / 2 and pairs with cost > limit (or a
// NaN cost) are never matched: a pair is matched only where that lowers the total, so every
// matched pair has cost <= limit (limit must be finite). Writes row_to_col[n] (column index, or
// -1 when unmatched).
// Shortest augmenting paths (Jonker-Volgenant / Crouse 2016), O((n + m)^3).
void linear_assignment(const double* cost, int64_t n, int64_t m, double limit,
                       int64_t* row_to_col);

}  // namespace edgeseg
