// Non-maximum suppression and the fused detection decode of a single-stage head.
//
// Both functions share one definition (mirrored literally by tests/reference.py):
//   1. pre-filter: keep candidates with score > score_threshold, compared in double (NaN never);
//   2. top-k: the max_candidates best by score, descending (equal scores: lower index first);
//   3. greedy NMS in that order: a candidate is dropped when its IoU with an already kept box of
//      the same class (any class when class_agnostic) is > iou_threshold; stop at max_detections
//      kept.
// IoU is computed in double from the float boxes (xyxy, pixel-edge coordinates):
//   area = max(x1 - x0, 0) * max(y1 - y0, 0),
//   inter = max(min(ax1, bx1) - max(ax0, bx0), 0) * max(min(ay1, by1) - max(ay0, by0), 0),
//   iou = inter / (area_a + area_b - inter), or 0 when that union is <= 0 (or NaN).
//
// Arrays are read through element strides (any non-negative strides), so a transposed view of a
// (4 + C, A) head output is read in place.
#pragma once

#include <cstdint>
#include <vector>

#include "common.h"

namespace edgeseg {

// Defaults equal edgeseg/defaults.py (IOU_THRESHOLD, MAX_CANDIDATES, MAX_DETECTIONS); a test checks.
struct NmsParams {
  double iou_threshold = 0.5;
  double score_threshold = 0.0;
  int64_t max_candidates = 1000;
  int64_t max_detections = 100;
  bool class_agnostic = false;
};

// A strided 2-D float32/float16 array: element (i, j) at data + i * s0 + j * s1 (elements).
struct Strided2D {
  const void* data = nullptr;
  FloatType dtype = FloatType::F32;
  int64_t s0 = 0, s1 = 1;
};

// boxes: N x 4 (strided), scores: N float32 (contiguous), class_ids: N int64 or nullptr (one
// class). Returns the kept indices into the input, by descending score.
std::vector<int64_t> nms(const Strided2D& boxes, const float* scores, const int64_t* class_ids,
                         int64_t N, const NmsParams& p);

struct Detections {
  std::vector<int64_t> index;  // anchor index
  std::vector<int32_t> class_id;
  std::vector<float> score;
};

// boxes: A x 4 (strided), scores: A x C per-class probabilities (strided). Per anchor the best
// class (the first on ties; NaN never wins), then the pipeline above with that class and score.
Detections select_detections(const Strided2D& boxes, const Strided2D& scores, int64_t A,
                             int64_t C, const NmsParams& p);

}  // namespace edgeseg
