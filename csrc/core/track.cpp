#include "track.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "threadpool.h"

namespace edgeseg {

namespace {

int64_t count_set(const uint8_t* p, int64_t n) {
  int64_t c = 0;
  for (int64_t i = 0; i < n; ++i) c += p[i] != 0;
  return c;
}

int64_t count_both(const uint8_t* a, const uint8_t* b, int64_t n) {
  int64_t c = 0;
  for (int64_t i = 0; i < n; ++i) c += (a[i] != 0) & (b[i] != 0);
  return c;
}

}  // namespace

void mask_iou(const uint8_t* data_a, const int64_t* offsets_a, const int32_t* regions_a,
              const int32_t* shift_a, int64_t K, const uint8_t* data_b, const int64_t* offsets_b,
              const int32_t* regions_b, int64_t M, float* out) {
  if (K <= 0 || M <= 0) return;
  std::vector<int64_t> area_a(K), area_b(M);
  for (int64_t i = 0; i < K; ++i)
    area_a[i] = count_set(data_a + offsets_a[i], offsets_a[i + 1] - offsets_a[i]);
  for (int64_t j = 0; j < M; ++j)
    area_b[j] = count_set(data_b + offsets_b[j], offsets_b[j + 1] - offsets_b[j]);
  // Work per row i: its bitmap and the overlapping parts of B (bounded by all of B), plus M
  // rectangle tests. Small sets (the usual tracking frame) stay on the calling thread.
  const int64_t work = (offsets_a[K] + offsets_b[M]) / K + 16 * M;
  parallel_for(
      K,
      [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) {
          const int32_t* ra = regions_a + 4 * i;
          const int64_t dx = shift_a ? shift_a[2 * i] : 0, dy = shift_a ? shift_a[2 * i + 1] : 0;
          const int64_t ax0 = ra[0] + dx, ay0 = ra[1] + dy, ax1 = ra[2] + dx, ay1 = ra[3] + dy;
          const int64_t aw = ra[2] - ra[0];
          const uint8_t* pa = data_a + offsets_a[i];
          for (int64_t j = 0; j < M; ++j) {
            const int32_t* rb = regions_b + 4 * j;
            const int64_t x0 = std::max<int64_t>(ax0, rb[0]), x1 = std::min<int64_t>(ax1, rb[2]);
            const int64_t y0 = std::max<int64_t>(ay0, rb[1]), y1 = std::min<int64_t>(ay1, rb[3]);
            int64_t inter = 0;
            if (x0 < x1 && y0 < y1) {
              const int64_t bw = rb[2] - rb[0];
              const uint8_t* pb = data_b + offsets_b[j];
              for (int64_t y = y0; y < y1; ++y)
                inter += count_both(pa + (y - ay0) * aw + (x0 - ax0), pb + (y - rb[1]) * bw + (x0 - rb[0]),
                                    x1 - x0);
            }
            const int64_t uni = area_a[i] + area_b[j] - inter;
            out[i * M + j] = uni > 0 ? static_cast<float>(static_cast<double>(inter) / uni) : 0.0f;
          }
        }
      },
      min_chunk_for(work));
}

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Square or wide (nr <= nc) assignment of every row, minimum total cost; entries may be +inf
// (forbidden) as long as a full assignment exists. Crouse's shortest augmenting path, as in
// SciPy's linear_sum_assignment. Returns false when no finite full assignment exists.
bool solve_rows(const std::vector<double>& c, int64_t nr, int64_t nc, std::vector<int64_t>& col4row) {
  std::vector<double> u(nr, 0.0), v(nc, 0.0), dist(nc);
  std::vector<int64_t> path(nc, -1), row4col(nc, -1), remaining(nc);
  std::vector<char> SR(nr), SC(nc);
  col4row.assign(nr, -1);
  for (int64_t cur = 0; cur < nr; ++cur) {
    double min_val = 0.0;
    int64_t n_rem = nc;
    for (int64_t it = 0; it < nc; ++it) remaining[it] = nc - it - 1;
    std::fill(SR.begin(), SR.end(), 0);
    std::fill(SC.begin(), SC.end(), 0);
    std::fill(dist.begin(), dist.end(), kInf);
    int64_t sink = -1, i = cur;
    while (sink == -1) {
      int64_t index = -1;
      double lowest = kInf;
      SR[i] = 1;
      for (int64_t it = 0; it < n_rem; ++it) {
        const int64_t j = remaining[it];
        const double r = min_val + c[i * nc + j] - u[i] - v[j];
        if (r < dist[j]) {
          path[j] = i;
          dist[j] = r;
        }
        if (dist[j] < lowest || (dist[j] == lowest && row4col[j] == -1)) {
          lowest = dist[j];
          index = it;
        }
      }
      min_val = lowest;
      if (!(min_val < kInf)) return false;
      const int64_t j = remaining[index];
      if (row4col[j] == -1)
        sink = j;
      else
        i = row4col[j];
      SC[j] = 1;
      remaining[index] = remaining[--n_rem];
    }
    u[cur] += min_val;
    for (int64_t r = 0; r < nr; ++r)
      if (SR[r] && r != cur) u[r] += min_val - dist[col4row[r]];
    for (int64_t j = 0; j < nc; ++j)
      if (SC[j]) v[j] -= min_val - dist[j];
    for (int64_t j = sink;;) {
      const int64_t r = path[j];
      row4col[j] = r;
      std::swap(col4row[r], j);
      if (r == cur) break;
    }
  }
  return true;
}

}  // namespace

void linear_assignment(const double* cost, int64_t n, int64_t m, double limit,
                       int64_t* row_to_col) {
  for (int64_t i = 0; i < n; ++i) row_to_col[i] = -1;
  if (n <= 0 || m <= 0) return;
  // Square (n + m) problem: [C | row dummies; column dummies | 0]. Row i may stay unmatched
  // through its own dummy column m + i (cost limit / 2), column j through dummy row n + j.
  const int64_t N = n + m;
  const double half = limit / 2.0;
  std::vector<double> c(static_cast<size_t>(N * N), kInf);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < m; ++j) {
      const double x = cost[i * m + j];
      if (x <= limit) c[i * N + j] = x;  // NaN and costs above the limit stay forbidden
    }
    c[i * N + m + i] = half;
  }
  for (int64_t j = 0; j < m; ++j) {
    c[(n + j) * N + j] = half;
    for (int64_t k = 0; k < n; ++k) c[(n + j) * N + m + k] = 0.0;
  }
  std::vector<int64_t> col4row;
  if (!solve_rows(c, N, N, col4row)) return;  // cannot happen: the dummies make it feasible
  for (int64_t i = 0; i < n; ++i)
    if (col4row[i] < m) row_to_col[i] = col4row[i];
}

}  // namespace edgeseg
