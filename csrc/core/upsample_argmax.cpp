#include "upsample_argmax.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "argmax.h"
#include "half.h"
#include "resample.h"
#include "simd.h"
#include "threadpool.h"

namespace edgeseg {
namespace {

// Output columns [x0, x1) that sample the same pair of source columns.
struct Run {
  int64_t x0, x1;
  int32_t i0, i1;
};

// Output columns [x0, x1) of one row: every pixel takes `label`, or (label < 0) the blend of
// the channels cand[c0, c1) of the segment's candidate list.
struct Segment {
  int64_t x0, x1;
  int32_t label;
  int64_t c0, c1;
};

// Logit of channel c at low-resolution pixel p, as float.
inline float logit_at(const void* logits, FloatType dtype, int64_t hw, int64_t c, int64_t p) {
  const int64_t i = c * hw + p;
  return dtype == FloatType::F32 ? static_cast<const float*>(logits)[i]
                                 : half_to_float(static_cast<const uint16_t*>(logits)[i]);
}

// Channels that can win somewhere in the cell spanned by the finite low-res pixels p[0..4)
// whose argmaxes are lab[0..4), appended to cand in ascending order. A channel j that one of
// those winners k beats at all four corners (logit k > logit j, or equal with k < j) is beaten by
// k at every convex combination too, so it is left out.
void append_candidates(const void* logits, FloatType dtype, int64_t C, int64_t hw,
                       const int64_t p[4], const int32_t lab[4], std::vector<int32_t>& cand) {
  for (int64_t j = 0; j < C; ++j) {
    bool dominated = false;
    for (int q = 0; q < 4 && !dominated; ++q) {
      const int32_t k = lab[q];
      if (k == j) {
        dominated = false;
        break;
      }
      bool all = true;
      for (int r = 0; r < 4 && all; ++r) {
        const float vk = logit_at(logits, dtype, hw, k, p[r]);
        const float vj = logit_at(logits, dtype, hw, j, p[r]);
        all = vk > vj || (vk == vj && k < j);
      }
      dominated = all;
    }
    if (!dominated) cand.push_back(static_cast<int32_t>(j));
  }
}

// Argmax of the low-resolution logits, -1 where any channel is NaN or infinite.
std::vector<int32_t> low_res_labels(const void* logits, FloatType dtype, int64_t C, int64_t hw) {
  std::vector<int32_t> low(hw);
  argmax(logits, dtype, 1, C, hw, low.data(), LabelType::I32);
  std::vector<uint8_t> finite(hw, 1);
  if (dtype == FloatType::F32)
    rows::clear_nonfinite(static_cast<const float*>(logits), C, hw, finite.data(), hw);
  else
    rows::clear_nonfinite(static_cast<const uint16_t*>(logits), C, hw, finite.data(), hw);
  for (int64_t i = 0; i < hw; ++i)
    if (!finite[i]) low[i] = -1;
  return low;
}

// Fraction of 2x2 low-resolution cells whose four labels agree (1 for a single row or column).
double uniform_fraction(const std::vector<int32_t>& low, int64_t h, int64_t w) {
  if (h < 2 || w < 2) return 1.0;
  int64_t same = 0;
  for (int64_t y = 0; y + 1 < h; ++y) {
    const int32_t* a = low.data() + y * w;
    const int32_t* b = a + w;
    for (int64_t x = 0; x + 1 < w; ++x)
      same += a[x] >= 0 && a[x] == a[x + 1] && a[x] == b[x] && a[x] == b[x + 1];
  }
  return static_cast<double>(same) / static_cast<double>((h - 1) * (w - 1));
}

std::vector<Run> column_runs(const AxisTaps& tx, int64_t W) {
  std::vector<Run> runs;
  for (int64_t x = 0; x < W; ++x) {
    if (runs.empty() || runs.back().i0 != tx.i0[x] || runs.back().i1 != tx.i1[x])
      runs.push_back(Run{x, x + 1, tx.i0[x], tx.i1[x]});
    else
      runs.back().x1 = x + 1;
  }
  return runs;
}

void fill_labels(void* labels, LabelType lt, int64_t offset, int64_t n, int32_t label) {
  if (lt == LabelType::U8)
    std::memset(static_cast<uint8_t*>(labels) + offset, label, static_cast<size_t>(n));
  else
    std::fill_n(static_cast<int32_t*>(labels) + offset, n, label);
}

}  // namespace

void upsample_argmax(const void* logits, FloatType dtype, int64_t C, int64_t h, int64_t w,
                     void* labels, LabelType label_type, int64_t H, int64_t W, double ay, double by,
                     double ax, double bx) {
  if (C <= 0 || h <= 0 || w <= 0 || H <= 0 || W <= 0) return;
  const AxisTaps ty = make_axis_taps(H, h, ay, by);
  const AxisTaps tx = make_axis_taps(W, w, ax, bx);
  const std::vector<int32_t> low = low_res_labels(logits, dtype, C, h * w);
  const std::vector<Run> runs = column_runs(tx, W);
  // Pruning the channels of a boundary cell costs ~16 C comparisons: worth it when the cell covers
  // many output pixels and the label map is made of regions (most 2x2 low-resolution cells
  // uniform). For noise-like logits the candidates of neighbouring runs differ, their union is
  // nearly every channel, and the pruning would be pure overhead.
  const bool prune = 1.0 / (ax * ay) >= 32.0 && uniform_fraction(low, h, w) >= 0.5;

  // Column tile: keep 2 * C * tile floats around 128 KiB, at least 64 columns.
  int64_t tile = (128 * 1024) / (2 * 4 * C);
  tile = std::max<int64_t>(64, (tile / 16) * 16);
  tile = std::min<int64_t>(tile, W);
  const int64_t min_rows = min_chunk_for(W);

  parallel_for(
      H,
      [&](int64_t y0, int64_t y1) {
        std::vector<float> slot_buf(2 * C * tile);
        float* slot[2] = {slot_buf.data(), slot_buf.data() + C * tile};
        std::vector<float> conv(dtype == FloatType::F16 ? w : 0);
        std::vector<int32_t> idx(tile);
        std::vector<Segment> segs;
        std::vector<int32_t> cand, pruned;
        std::vector<uint8_t> mark(C, 0);

        for (int64_t xs = 0; xs < W; xs += tile) {
          const int64_t xe = std::min(W, xs + tile), tw = xe - xs;
          // Source columns this tile touches (taps are monotone in x).
          const int64_t lo = tx.i0[xs], hi = tx.i1[xe - 1];
          const size_t first_run = static_cast<size_t>(
              std::upper_bound(runs.begin(), runs.end(), xs,
                               [](int64_t x, const Run& r) { return x < r.x0; }) -
              runs.begin() - 1);
          int64_t slot_row[2] = {-1, -1};
          int64_t pair_r0 = -1, pair_r1 = -1;
          bool any_blend = false;

          // Interpolate source row r horizontally for every channel into slot s.
          auto fill = [&](int s, int64_t r) {
            float* dst = slot[s];
            for (int64_t c = 0; c < C; ++c) {
              const int64_t off = (c * h + r) * w;
              const float* src;
              if (dtype == FloatType::F32) {
                src = static_cast<const float*>(logits) + off;
              } else {
                rows::half_to_float(static_cast<const uint16_t*>(logits) + off + lo,
                                    conv.data() + lo, hi - lo + 1);
                src = conv.data();
              }
              rows::gather_lerp(src, tx.i0.data() + xs, tx.i1.data() + xs, tx.w0.data() + xs,
                                tx.w1.data() + xs, dst + c * tile, tw);
            }
            slot_row[s] = r;
          };

          // Split the tile's columns for source rows (r0, r1). Where the four source pixels a
          // column run blends all have the same argmax k, every blend of them has argmax k too
          // (a convex combination keeps k's lead), so the run is filled with k. Adjacent other
          // runs form one blend segment over the union of their candidate channels: those not
          // beaten at all four corners by a corner's winner (or all channels, see prune).
          auto segment = [&](int64_t r0, int64_t r1) {
            segs.clear();
            cand.clear();
            any_blend = false;
            bool open = false;  // segs.back() is a blend segment still collecting channels
            auto close = [&]() {  // its channels: the union of its runs' candidates, ascending
              Segment& sg = segs.back();
              sg.c0 = static_cast<int64_t>(cand.size());
              for (int64_t c = 0; c < C; ++c)
                if (mark[c]) {
                  cand.push_back(static_cast<int32_t>(c));
                  mark[c] = 0;
                }
              sg.c1 = static_cast<int64_t>(cand.size());
              open = false;
            };
            for (size_t k = first_run; k < runs.size() && runs[k].x0 < xe; ++k) {
              const Run& run = runs[k];
              const int64_t p[4] = {r0 * w + run.i0, r0 * w + run.i1, r1 * w + run.i0,
                                    r1 * w + run.i1};
              const int32_t lab[4] = {low[p[0]], low[p[1]], low[p[2]], low[p[3]]};
              const bool same = lab[0] == lab[1] && lab[0] == lab[2] && lab[0] == lab[3];
              const int32_t label = same ? lab[0] : -1;  // -1 also for a non-finite corner
              const int64_t x0 = std::max(run.x0, xs), x1 = std::min(run.x1, xe);
              if (label >= 0) {
                if (open) close();
                if (!segs.empty() && segs.back().label == label && segs.back().x1 == x0)
                  segs.back().x1 = x1;
                else
                  segs.push_back(Segment{x0, x1, label, 0, 0});
                continue;
              }
              if (open && segs.back().x1 == x0) {
                segs.back().x1 = x1;  // adjacent blend runs share one segment
              } else {
                if (open) close();
                segs.push_back(Segment{x0, x1, -1, 0, 0});
                open = true;
              }
              if (prune && std::min({lab[0], lab[1], lab[2], lab[3]}) >= 0) {
                pruned.clear();
                append_candidates(logits, dtype, C, h * w, p, lab, pruned);
                for (int32_t c : pruned) mark[c] = 1;
              } else {
                std::fill(mark.begin(), mark.end(), uint8_t{1});
              }
              any_blend = true;
            }
            if (open) close();
          };

          for (int64_t y = y0; y < y1; ++y) {
            const int64_t r0 = ty.i0[y], r1 = ty.i1[y];
            if (r0 != pair_r0 || r1 != pair_r1) {
              segment(r0, r1);
              pair_r0 = r0;
              pair_r1 = r1;
            }
            int s0 = 0, s1 = 0;
            if (any_blend) acquire_rows(slot_row, r0, r1, s0, s1, fill);
            for (const Segment& sg : segs) {
              const int64_t len = sg.x1 - sg.x0;
              if (sg.label >= 0) {
                fill_labels(labels, label_type, y * W + sg.x0, len, sg.label);
                continue;
              }
              const int64_t o = sg.x0 - xs;
              rows::lerp_argmax_channels(slot[s0] + o, slot[s1] + o, ty.w0[y], ty.w1[y],
                                         cand.data() + sg.c0, sg.c1 - sg.c0, tile, idx.data(),
                                         len);
              store_labels(idx.data(), labels, label_type, y * W + sg.x0, len);
            }
          }
        }
      },
      min_rows);
}

}  // namespace edgeseg
