// Score filter + stable top-k + greedy class-aware NMS (see nms.h for the exact definition).
#include "nms.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "half.h"
#include "simd.h"
#include "threadpool.h"

namespace edgeseg {
namespace {

struct Cand {
  float score;
  int64_t index;
};

// Descending score, then ascending index: a strict weak order (NaN scores never get here).
inline bool before(const Cand& a, const Cand& b) {
  return a.score > b.score || (a.score == b.score && a.index < b.index);
}

void top_k(std::vector<Cand>& c, int64_t k) {
  if (static_cast<int64_t>(c.size()) > k) {
    std::nth_element(c.begin(), c.begin() + k, c.end(), before);
    c.resize(static_cast<size_t>(k));
  }
  std::sort(c.begin(), c.end(), before);
}

inline float load(const Strided2D& a, int64_t i, int64_t j) {
  const int64_t off = i * a.s0 + j * a.s1;
  if (a.dtype == FloatType::F32) return static_cast<const float*>(a.data)[off];
  return half_to_float(static_cast<const uint16_t*>(a.data)[off]);
}

// Where v[i] > best[i] (never for NaN): best = v, idx = c. Branch-free with __restrict so the
// compiler vectorises it.
inline void best_update(const float* __restrict v, float* __restrict best,
                        int32_t* __restrict idx, int32_t c, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float b = best[i], x = v[i];
    const int32_t m = -static_cast<int32_t>(x > b);  // all ones where x wins
    best[i] = x > b ? x : b;
    idx[i] = (c & m) | (idx[i] & ~m);
  }
}

inline double box_area(const double* b) {
  return std::max(b[2] - b[0], 0.0) * std::max(b[3] - b[1], 0.0);
}

inline double iou(const double* a, double area_a, const double* b, double area_b) {
  const double iw = std::max(std::min(a[2], b[2]) - std::max(a[0], b[0]), 0.0);
  const double ih = std::max(std::min(a[3], b[3]) - std::max(a[1], b[1]), 0.0);
  const double inter = iw * ih;
  const double uni = area_a + area_b - inter;
  return uni > 0.0 ? inter / uni : 0.0;
}

// Greedy NMS over candidates already in priority order. cls: one class per candidate, or null.
// Returns positions into `cand`.
std::vector<int64_t> greedy(const std::vector<Cand>& cand, const Strided2D& boxes,
                            const std::vector<int64_t>* cls, const NmsParams& p) {
  const int64_t n = static_cast<int64_t>(cand.size());
  const bool by_class = cls != nullptr && !p.class_agnostic;
  std::vector<int64_t> keep;
  std::vector<double> kept_box;   // 4 per kept candidate
  std::vector<double> kept_area;
  std::vector<int64_t> kept_cls;
  keep.reserve(static_cast<size_t>(std::min(n, p.max_detections)));
  for (int64_t i = 0; i < n && static_cast<int64_t>(keep.size()) < p.max_detections; ++i) {
    double b[4];
    for (int j = 0; j < 4; ++j) b[j] = static_cast<double>(load(boxes, cand[i].index, j));
    const double area = box_area(b);
    const int64_t c = by_class ? (*cls)[i] : 0;
    bool suppressed = false;
    for (size_t k = 0; k < keep.size(); ++k) {
      if (by_class && kept_cls[k] != c) continue;
      if (iou(&kept_box[4 * k], kept_area[k], b, area) > p.iou_threshold) {
        suppressed = true;
        break;
      }
    }
    if (suppressed) continue;
    keep.push_back(i);
    kept_box.insert(kept_box.end(), b, b + 4);
    kept_area.push_back(area);
    kept_cls.push_back(c);
  }
  return keep;
}

}  // namespace

std::vector<int64_t> nms(const Strided2D& boxes, const float* scores, const int64_t* class_ids,
                         int64_t N, const NmsParams& p) {
  std::vector<int64_t> out;
  if (N <= 0 || p.max_candidates <= 0 || p.max_detections <= 0) return out;
  std::vector<Cand> cand;
  for (int64_t i = 0; i < N; ++i)
    if (static_cast<double>(scores[i]) > p.score_threshold) cand.push_back({scores[i], i});
  top_k(cand, p.max_candidates);
  std::vector<int64_t> cls;
  if (class_ids) {
    cls.resize(cand.size());
    for (size_t i = 0; i < cand.size(); ++i) cls[i] = class_ids[cand[i].index];
  }
  const std::vector<int64_t> keep = greedy(cand, boxes, class_ids ? &cls : nullptr, p);
  out.reserve(keep.size());
  for (int64_t k : keep) out.push_back(cand[k].index);
  return out;
}

Detections select_detections(const Strided2D& boxes, const Strided2D& scores, int64_t A,
                             int64_t C, const NmsParams& p) {
  Detections d;
  if (A <= 0 || C <= 0 || p.max_candidates <= 0 || p.max_detections <= 0) return d;
  std::vector<float> best(static_cast<size_t>(A));
  std::vector<int32_t> best_cls(static_cast<size_t>(A));
  const float neg_inf = -std::numeric_limits<float>::infinity();
  const bool f16 = scores.dtype == FloatType::F16;
  // Largest float <= score_threshold: float v > thr_f <=> double v > score_threshold.
  float thr_f = static_cast<float>(p.score_threshold);
  if (static_cast<double>(thr_f) > p.score_threshold) thr_f = std::nextafter(thr_f, neg_inf);

  // 1. best class per anchor (first wins ties; NaN never wins: v > best is false for NaN).
  parallel_for(
      A,
      [&](int64_t a0, int64_t a1) {
        if (scores.s1 == 1) {  // classes contiguous per anchor: (A, C) row-major
          std::vector<float> conv(f16 ? C : 0);
          for (int64_t a = a0; a < a1; ++a) {
            const float* v;
            if (!f16) {
              v = static_cast<const float*>(scores.data) + a * scores.s0;
            } else {
              rows::half_to_float(static_cast<const uint16_t*>(scores.data) + a * scores.s0,
                                  conv.data(), C);
              v = conv.data();
            }
            // Most anchors have no score above the threshold: skip their argmax (the count
            // vectorises; the anchor is dropped by the filter below either way).
            int32_t above = 0;
            for (int64_t c = 0; c < C; ++c) above += v[c] > thr_f;
            float b = neg_inf;
            int32_t bc = 0;
            for (int64_t c = 0; above && c < C; ++c)
              if (v[c] > b) {
                b = v[c];
                bc = static_cast<int32_t>(c);
              }
            best[a] = b;
            best_cls[a] = bc;
          }
          return;
        }
        // Class-major (e.g. the transposed view of a (C, A) head output): a tile of anchors keeps
        // its running best while the class rows stream through.
        const int64_t T = 1024;
        std::vector<float> row(static_cast<size_t>(T));
        for (int64_t t0 = a0; t0 < a1; t0 += T) {
          const int64_t n = std::min(T, a1 - t0);
          float* b = best.data() + t0;
          int32_t* bc = best_cls.data() + t0;
          std::fill(b, b + n, neg_inf);
          std::fill(bc, bc + n, 0);
          for (int64_t c = 0; c < C; ++c) {
            const float* v;
            if (scores.s0 == 1 && !f16) {
              v = static_cast<const float*>(scores.data) + c * scores.s1 + t0;
            } else if (scores.s0 == 1) {
              rows::half_to_float(static_cast<const uint16_t*>(scores.data) + c * scores.s1 + t0,
                                  row.data(), n);
              v = row.data();
            } else {
              for (int64_t i = 0; i < n; ++i) row[i] = load(scores, t0 + i, c);
              v = row.data();
            }
            best_update(v, b, bc, static_cast<int32_t>(c), n);
          }
        }
      },
      512);

  // 2. pre-filter + stable top-k, 3. greedy NMS with the best class.
  std::vector<Cand> cand;
  for (int64_t a = 0; a < A; ++a)
    if (static_cast<double>(best[a]) > p.score_threshold) cand.push_back({best[a], a});
  top_k(cand, p.max_candidates);
  std::vector<int64_t> cls(cand.size());
  for (size_t i = 0; i < cand.size(); ++i) cls[i] = best_cls[cand[i].index];
  const std::vector<int64_t> keep = greedy(cand, boxes, &cls, p);
  d.index.reserve(keep.size());
  for (int64_t k : keep) {
    const int64_t a = cand[k].index;
    d.index.push_back(a);
    d.class_id.push_back(best_cls[a]);
    d.score.push_back(best[a]);
  }
  return d;
}

}  // namespace edgeseg
