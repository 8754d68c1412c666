// Bilinear sampling taps along one axis, shared by letterbox and upsample_argmax.
//
// Output coordinate d in [0, n_out) samples the input at continuous position s = d * a + b
// (pixel-centre convention: s = 0 is the centre of input pixel 0). Half-pixel resize
// (cv2.INTER_LINEAR, torch align_corners=False) is a = n_in / n_out, b = a / 2 - 1/2.
// Positions are clamped to the border like both libraries: s < 0 reads pixel 0 only, s >= n_in-1
// reads pixel n_in-1 only. value = in[i0] * w0 + in[i1] * w1.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace edgeseg {

struct AxisTaps {
  std::vector<int32_t> i0, i1;
  std::vector<float> w0, w1;
};

inline AxisTaps make_axis_taps(int64_t n_out, int64_t n_in, double a, double b) {
  AxisTaps t;
  t.i0.resize(n_out);
  t.i1.resize(n_out);
  t.w0.resize(n_out);
  t.w1.resize(n_out);
  for (int64_t d = 0; d < n_out; ++d) {
    double s = static_cast<double>(d) * a + b;
    if (!(s > 0.0)) s = 0.0;  // also maps NaN to 0
    // clamped before the conversion: a position past int64's range (or inf) is undefined behaviour
    int64_t i = s >= static_cast<double>(n_in - 1) ? n_in - 1 : static_cast<int64_t>(std::floor(s));
    float f = static_cast<float>(s - static_cast<double>(i));
    if (i >= n_in - 1) {
      i = n_in - 1;
      f = 0.0f;
    }
    t.i0[d] = static_cast<int32_t>(i);
    t.i1[d] = static_cast<int32_t>(std::min<int64_t>(i + 1, n_in - 1));
    t.w1[d] = f;
    t.w0[d] = 1.0f - f;
  }
  return t;
}

// Two-slot cache of horizontally resampled source rows, for separable bilinear resampling.
// Makes sure source rows r0 and r1 are held, calling fill(slot, row) only for a missing one
// (fill must record the row in slot_row[slot]); returns their slot indices in s0 and s1.
template <class Fill>
inline void acquire_rows(const int64_t slot_row[2], int64_t r0, int64_t r1, int& s0, int& s1, Fill&& fill) {
  s0 = slot_row[0] == r0 ? 0 : (slot_row[1] == r0 ? 1 : -1);
  if (s0 < 0) {
    s0 = (slot_row[0] == r1 && r1 != r0) ? 1 : 0;
    fill(s0, r0);
  }
  if (r1 == r0) {
    s1 = s0;
    return;
  }
  s1 = slot_row[1 - s0] == r1 ? 1 - s0 : -1;
  if (s1 < 0) {
    s1 = 1 - s0;
    fill(s1, r1);
  }
}

}  // namespace edgeseg
