// Python bindings of the edgeseg C++ core -> module edgeseg._C.
//
// Arrays are taken zero-copy as py::array (never force-cast): each binding checks dtype, ndim,
// shape and C-contiguity itself and raises ValueError naming what was expected and what it got.
// The GIL is released around every kernel. edgeseg/ops.py is the documented public face.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cmath>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "core/argmax.h"
#include "core/letterbox.h"
#include "core/masks.h"
#include "core/nms.h"
#include "core/overlay.h"
#include "core/simd.h"
#include "core/threadpool.h"
#include "core/track.h"
#include "core/upsample_argmax.h"

namespace py = pybind11;
using namespace edgeseg;

namespace {

std::string shape_str(const py::array& a) {
  std::ostringstream s;
  s << "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s << (i ? ", " : "") << a.shape(i);
  if (a.ndim() == 1) s << ",";
  s << ")";
  return s.str();
}

std::string dtype_str(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

[[noreturn]] void fail(const std::string& msg) { throw py::value_error(msg); }

bool native_order(const py::dtype& d) {
  const char b = d.byteorder();
  if (b == '=' || b == '|') return true;
  const uint16_t probe = 1;
  const bool little = *reinterpret_cast<const uint8_t*>(&probe) == 1;
  return (b == '<') == little;
}

bool is_dtype(const py::array& a, char kind, py::ssize_t size) {
  const py::dtype d = a.dtype();
  return d.kind() == kind && d.itemsize() == size && native_order(d);
}

void check_contiguous(const py::array& a, const char* fn, const char* name) {
  if (!(a.flags() & py::array::c_style))
    fail(std::string(fn) + ": " + name + " must be C-contiguous, got a strided array of shape " +
         shape_str(a) + " and strides " + [&] {
           std::ostringstream s;
           s << "(";
           for (py::ssize_t i = 0; i < a.ndim(); ++i) s << (i ? ", " : "") << a.strides(i);
           s << ")";
           return s.str();
         }() + "; pass np.ascontiguousarray(" + name + ")");
}

void check_ndim(const py::array& a, const char* fn, const char* name, const char* expected,
                std::initializer_list<int> ndims) {
  for (int n : ndims)
    if (a.ndim() == n) return;
  fail(std::string(fn) + ": " + name + " must have shape " + expected + ", got shape " +
       shape_str(a));
}

FloatType float_type(const py::array& a, const char* fn, const char* name) {
  if (is_dtype(a, 'f', 4)) return FloatType::F32;
  if (is_dtype(a, 'f', 2)) return FloatType::F16;
  fail(std::string(fn) + ": " + name + " must be float32 or float16, got " + dtype_str(a));
}

void check_writeable(const py::array& a, const char* fn, const char* name) {
  if (!a.writeable()) fail(std::string(fn) + ": " + name + " is read-only; pass a writeable array");
}

// A BGR frame: (H, W, 3) uint8, C-contiguous.
void check_bgr_image(const py::array& image, const char* fn) {
  check_ndim(image, fn, "image", "(H, W, 3)", {3});
  if (image.shape(2) != 3)
    fail(std::string(fn) + ": image must have shape (H, W, 3) (BGR), got shape " + shape_str(image));
  if (!is_dtype(image, 'u', 1))
    fail(std::string(fn) + ": image must be uint8, got " + dtype_str(image));
  check_contiguous(image, fn, "image");
}

// The output and weight of an overlay blend: out a writeable uint8 array of the image's shape,
// alpha in [0, 1]; returns alpha as the kernels' 16-bit fixed-point weight.
uint32_t check_blend(const py::array& image, const py::array& out, double alpha, const char* fn) {
  check_ndim(out, fn, "out", "(H, W, 3)", {3});
  if (out.shape(0) != image.shape(0) || out.shape(1) != image.shape(1) || out.shape(2) != 3)
    fail(std::string(fn) + ": out must have the image's shape " + shape_str(image) +
         ", got shape " + shape_str(out));
  if (!is_dtype(out, 'u', 1)) fail(std::string(fn) + ": out must be uint8, got " + dtype_str(out));
  check_contiguous(out, fn, "out");
  check_writeable(out, fn, "out");
  if (!(alpha >= 0.0 && alpha <= 1.0))
    fail(std::string(fn) + ": alpha must be in [0, 1], got " + std::to_string(alpha));
  return static_cast<uint32_t>(alpha * 65536.0 + 0.5);
}

py::array make_labels(LabelType lt, std::vector<py::ssize_t> shape) {
  if (lt == LabelType::U8) return py::array_t<uint8_t>(shape);
  return py::array_t<int32_t>(shape);
}

// ---- kernels --------------------------------------------------------------------------------

py::array argmax_py(const py::array& logits) {
  const char* fn = "argmax";
  check_ndim(logits, fn, "logits", "(C, H, W) or (N, C, H, W)", {3, 4});
  const FloatType ft = float_type(logits, fn, "logits");
  check_contiguous(logits, fn, "logits");
  const bool batched = logits.ndim() == 4;
  const int64_t N = batched ? logits.shape(0) : 1;
  const int64_t C = logits.shape(batched ? 1 : 0);
  const int64_t H = logits.shape(batched ? 2 : 1), W = logits.shape(batched ? 3 : 2);
  if (C < 1) fail("argmax: logits must have at least 1 channel, got shape " + shape_str(logits));
  const LabelType lt = label_type_for(C);
  py::array labels = batched ? make_labels(lt, {N, H, W}) : make_labels(lt, {H, W});
  const void* src = logits.data();
  void* dst = labels.mutable_data();
  {
    py::gil_scoped_release release;
    argmax(src, ft, N, C, H * W, dst, lt);
  }
  return labels;
}

py::array upsample_argmax_py(const py::array& logits, int64_t out_h, int64_t out_w, double ay,
                             double by, double ax, double bx) {
  const char* fn = "upsample_argmax";
  check_ndim(logits, fn, "logits", "(C, h, w)", {3});
  const FloatType ft = float_type(logits, fn, "logits");
  check_contiguous(logits, fn, "logits");
  const int64_t C = logits.shape(0), h = logits.shape(1), w = logits.shape(2);
  if (C < 1 || h < 1 || w < 1)
    fail("upsample_argmax: logits must be non-empty (C, h, w), got shape " + shape_str(logits));
  if (out_h < 1 || out_w < 1)
    fail("upsample_argmax: out_hw must be positive, got (" + std::to_string(out_h) + ", " +
         std::to_string(out_w) + ")");
  if (!(ay > 0) || !(ax > 0)) fail("upsample_argmax: sampling steps must be positive");
  const LabelType lt = label_type_for(C);
  py::array labels = make_labels(lt, {out_h, out_w});
  const void* src = logits.data();
  void* dst = labels.mutable_data();
  {
    py::gil_scoped_release release;
    upsample_argmax(src, ft, C, h, w, dst, lt, out_h, out_w, ay, by, ax, bx);
  }
  return labels;
}

void letterbox_py(const py::array& image, py::array& out, int64_t rh, int64_t rw, int64_t pad_top,
                  int64_t pad_left, std::array<float, 3> scale, std::array<float, 3> bias,
                  std::array<float, 3> pad) {
  const char* fn = "letterbox";
  check_bgr_image(image, fn);
  const int64_t H = image.shape(0), W = image.shape(1);
  if (H < 1 || W < 1) fail("letterbox: image must be non-empty, got shape " + shape_str(image));

  check_ndim(out, fn, "out", "(1, 3, h, w)", {4});
  if (out.shape(0) != 1 || out.shape(1) != 3)
    fail("letterbox: out must have shape (1, 3, h, w), got shape " + shape_str(out));
  const FloatType ft = float_type(out, fn, "out");
  check_contiguous(out, fn, "out");
  check_writeable(out, fn, "out");
  const int64_t oh = out.shape(2), ow = out.shape(3);
  if (rh < 1 || rw < 1 || pad_top < 0 || pad_left < 0 || pad_top + rh > oh || pad_left + rw > ow)
    fail("letterbox: resized region " + std::to_string(rh) + "x" + std::to_string(rw) + " at (" +
         std::to_string(pad_top) + ", " + std::to_string(pad_left) + ") does not fit in " +
         std::to_string(oh) + "x" + std::to_string(ow));
  const uint8_t* src = static_cast<const uint8_t*>(image.data());
  void* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    letterbox(src, H, W, dst, ft, oh, ow, rh, rw, pad_top, pad_left, scale.data(), bias.data(),
              pad.data());
  }
}

void overlay_py(const py::array& image, const py::array& labels, const py::array& palette,
                double alpha, py::array& out, const py::object& skip_obj) {
  const char* fn = "overlay";
  check_bgr_image(image, fn);
  const int64_t H = image.shape(0), W = image.shape(1);

  check_ndim(labels, fn, "labels", "(H, W)", {2});
  if (labels.shape(0) != H || labels.shape(1) != W)
    fail("overlay: labels must have the image's shape (" + std::to_string(H) + ", " +
         std::to_string(W) + "), got shape " + shape_str(labels));
  LabelType lt;
  if (is_dtype(labels, 'u', 1))
    lt = LabelType::U8;
  else if (is_dtype(labels, 'i', 4))
    lt = LabelType::I32;
  else
    fail("overlay: labels must be uint8 or int32, got " + dtype_str(labels));
  check_contiguous(labels, fn, "labels");

  check_ndim(palette, fn, "palette", "(K, 3)", {2});
  if (palette.shape(1) != 3)
    fail("overlay: palette must have shape (K, 3), got shape " + shape_str(palette));
  if (!is_dtype(palette, 'u', 1)) fail("overlay: palette must be uint8, got " + dtype_str(palette));
  check_contiguous(palette, fn, "palette");

  const uint32_t a16 = check_blend(image, out, alpha, fn);

  const uint8_t* img = static_cast<const uint8_t*>(image.data());
  const void* lab = labels.data();
  const uint8_t* pal = static_cast<const uint8_t*>(palette.data());
  const int64_t K = palette.shape(0);
  const uint8_t* skip = nullptr;
  py::array skip_arr;
  if (!skip_obj.is_none()) {
    skip_arr = py::cast<py::array>(skip_obj);
    check_ndim(skip_arr, fn, "skip", "(K,)", {1});
    if (skip_arr.shape(0) != K || !is_dtype(skip_arr, 'u', 1))
      fail("overlay: skip must be uint8 of shape (" + std::to_string(K) + ",) (one flag per palette "
           "colour), got " + dtype_str(skip_arr) + " of shape " + shape_str(skip_arr));
    check_contiguous(skip_arr, fn, "skip");
    skip = static_cast<const uint8_t*>(skip_arr.data());
  }
  uint8_t* dst = static_cast<uint8_t*>(out.mutable_data());
  {
    py::gil_scoped_release release;
    overlay(img, lab, lt, H, W, pal, K, a16, dst, skip);
  }
}

// ---- instance post-processing (nms, masks) ---------------------------------------------------

// A 2-D float32/float16 array read through element strides (any non-negative strides: C- or
// F-contiguous, or a strided view such as the transpose of a (4 + C, A) head output).
Strided2D strided_2d(const py::array& a, const char* fn, const char* name, const char* expected) {
  check_ndim(a, fn, name, expected, {2});
  Strided2D s;
  s.data = a.data();
  s.dtype = float_type(a, fn, name);
  const py::ssize_t item = a.itemsize();
  int64_t st[2];
  for (int d = 0; d < 2; ++d) {
    const py::ssize_t b = a.strides(d);
    if (a.shape(d) <= 1) {
      st[d] = d == 1 ? 1 : 0;  // stride of a length-1 axis is irrelevant
    } else if (b < 0 || b % item != 0) {
      fail(std::string(fn) + ": " + name + " has negative or unaligned strides; pass "
           "np.ascontiguousarray(" + name + ")");
    } else {
      st[d] = b / item;
    }
  }
  s.s0 = st[0];
  s.s1 = st[1];
  return s;
}

NmsParams nms_params(double iou, double score_thr, int64_t max_cand, int64_t max_det,
                     bool agnostic, const char* fn) {
  if (!(iou == iou)) fail(std::string(fn) + ": iou_threshold must be a number, got NaN");
  if (score_thr != score_thr) fail(std::string(fn) + ": score_threshold must be a number, got NaN");
  if (max_cand < 0 || max_det < 0)
    fail(std::string(fn) + ": max_candidates and max_detections must be >= 0, got " +
         std::to_string(max_cand) + " and " + std::to_string(max_det));
  NmsParams p;
  p.iou_threshold = iou;
  p.score_threshold = score_thr;
  p.max_candidates = max_cand;
  p.max_detections = max_det;
  p.class_agnostic = agnostic;
  return p;
}

py::array_t<int64_t> to_array(const std::vector<int64_t>& v) {
  py::array_t<int64_t> a(static_cast<py::ssize_t>(v.size()));
  if (!v.empty()) std::memcpy(a.mutable_data(), v.data(), v.size() * sizeof(int64_t));
  return a;
}

py::array_t<int64_t> nms_py(const py::array& boxes, const py::array& scores,
                            const py::object& class_ids, double iou, double score_thr,
                            int64_t max_cand, int64_t max_det, bool agnostic) {
  const char* fn = "nms";
  const Strided2D b = strided_2d(boxes, fn, "boxes", "(N, 4)");
  if (boxes.shape(1) != 4) fail("nms: boxes must have shape (N, 4) (x0, y0, x1, y1), got shape " +
                                shape_str(boxes));
  const int64_t N = boxes.shape(0);
  check_ndim(scores, fn, "scores", "(N,)", {1});
  if (!is_dtype(scores, 'f', 4)) fail("nms: scores must be float32, got " + dtype_str(scores));
  check_contiguous(scores, fn, "scores");
  if (scores.shape(0) != N)
    fail("nms: scores must have shape (" + std::to_string(N) + ",) like boxes, got shape " +
         shape_str(scores));
  const int64_t* cls = nullptr;
  py::array cls_arr;
  if (!class_ids.is_none()) {
    if (!py::isinstance<py::array>(class_ids))
      fail("nms: class_ids must be a numpy array or None");
    cls_arr = py::reinterpret_borrow<py::array>(class_ids);
    check_ndim(cls_arr, fn, "class_ids", "(N,)", {1});
    if (!is_dtype(cls_arr, 'i', 8))
      fail("nms: class_ids must be int64, got " + dtype_str(cls_arr));
    check_contiguous(cls_arr, fn, "class_ids");
    if (cls_arr.shape(0) != N)
      fail("nms: class_ids must have shape (" + std::to_string(N) + ",) like boxes, got shape " +
           shape_str(cls_arr));
    cls = static_cast<const int64_t*>(cls_arr.data());
  }
  const NmsParams p = nms_params(iou, score_thr, max_cand, max_det, agnostic, fn);
  const float* sc = static_cast<const float*>(scores.data());
  std::vector<int64_t> keep;
  {
    py::gil_scoped_release release;
    keep = nms(b, sc, cls, N, p);
  }
  return to_array(keep);
}

py::tuple select_detections_py(const py::array& boxes, const py::array& scores, double iou,
                               double score_thr, int64_t max_cand, int64_t max_det,
                               bool agnostic) {
  const char* fn = "select_detections";
  const Strided2D b = strided_2d(boxes, fn, "boxes", "(A, 4)");
  if (boxes.shape(1) != 4)
    fail("select_detections: boxes must have shape (A, 4) (x0, y0, x1, y1), got shape " +
         shape_str(boxes));
  const Strided2D s = strided_2d(scores, fn, "scores", "(A, C)");
  const int64_t A = boxes.shape(0), C = scores.shape(1);
  if (scores.shape(0) != A)
    fail("select_detections: scores must have shape (" + std::to_string(A) +
         ", C) (one row per box), got shape " + shape_str(scores));
  const NmsParams p = nms_params(iou, score_thr, max_cand, max_det, agnostic, fn);
  Detections d;
  {
    py::gil_scoped_release release;
    d = select_detections(b, s, A, C, p);
  }
  const py::ssize_t K = static_cast<py::ssize_t>(d.index.size());
  py::array_t<int32_t> cls(K);
  py::array_t<float> sc(K);
  if (K) {
    std::memcpy(cls.mutable_data(), d.class_id.data(), K * sizeof(int32_t));
    std::memcpy(sc.mutable_data(), d.score.data(), K * sizeof(float));
  }
  return py::make_tuple(to_array(d.index), cls, sc);
}

void check_boxes_f32(const py::array& boxes, const char* fn, int64_t K, const char* k_name) {
  check_ndim(boxes, fn, "boxes", "(K, 4)", {2});
  if (boxes.shape(1) != 4 || (K >= 0 && boxes.shape(0) != K))
    fail(std::string(fn) + ": boxes must have shape (" +
         (K >= 0 ? std::to_string(K) : std::string("K")) + ", 4) (one x0, y0, x1, y1 row per " +
         k_name + "), got shape " + shape_str(boxes));
  if (!is_dtype(boxes, 'f', 4)) fail(std::string(fn) + ": boxes must be float32, got " +
                                     dtype_str(boxes));
  check_contiguous(boxes, fn, "boxes");
}

// A mask set (data, offsets, regions) over K pixel regions: offsets are the prefix sums of the
// region areas; fill(offsets, data) writes the bitmaps, with the GIL released.
template <typename Fill>
py::tuple build_maskset(const std::vector<int32_t>& regions, int64_t K, Fill&& fill) {
  py::array_t<int64_t> offs(K + 1);
  int64_t* o = offs.mutable_data();
  o[0] = 0;
  for (int64_t k = 0; k < K; ++k) {
    const int32_t* r = regions.data() + 4 * k;
    o[k + 1] = o[k] + static_cast<int64_t>(r[2] - r[0]) * (r[3] - r[1]);
  }
  py::array_t<uint8_t> data(o[K]);
  py::array_t<int32_t> regs({K, static_cast<int64_t>(4)});
  if (K) std::memcpy(regs.mutable_data(), regions.data(), regions.size() * sizeof(int32_t));
  uint8_t* dst = data.mutable_data();
  {
    py::gil_scoped_release release;
    fill(static_cast<const int64_t*>(o), dst);
  }
  return py::make_tuple(data, offs, regs);
}

void check_frame(int64_t H, int64_t W, const char* fn) {
  if (H < 1 || W < 1 || H > (int64_t{1} << 30) || W > (int64_t{1} << 30))
    fail(std::string(fn) + ": image_hw must be positive (and < 2^30), got (" + std::to_string(H) +
         ", " + std::to_string(W) + ")");
}

py::tuple assemble_masks_py(const py::array& coeffs, const py::array& protos,
                            const py::array& boxes, int64_t H, int64_t W,
                            std::array<double, 3> ymap, std::array<double, 3> xmap,
                            double logit_threshold, bool fast) {
  const char* fn = "assemble_masks";
  check_frame(H, W, fn);
  check_ndim(coeffs, fn, "coeffs", "(K, M)", {2});
  if (!is_dtype(coeffs, 'f', 4)) fail("assemble_masks: coeffs must be float32, got " +
                                      dtype_str(coeffs));
  check_contiguous(coeffs, fn, "coeffs");
  const int64_t K = coeffs.shape(0), Mc = coeffs.shape(1);
  check_ndim(protos, fn, "protos", "(M, Hp, Wp)", {3});
  const FloatType pt = float_type(protos, fn, "protos");
  check_contiguous(protos, fn, "protos");
  if (protos.shape(0) != Mc)
    fail("assemble_masks: protos must have shape (" + std::to_string(Mc) +
         ", Hp, Wp) (one plane per coefficient), got shape " + shape_str(protos) +
         " with coeffs of shape " + shape_str(coeffs));
  const int64_t Hp = protos.shape(1), Wp = protos.shape(2);
  if (Hp < 1 || Wp < 1) fail("assemble_masks: protos must be non-empty, got shape " +
                             shape_str(protos));
  check_boxes_f32(boxes, fn, K, "coefficient row");
  // ymap / xmap: (resized, pad, input) of the letterbox along that axis.
  for (double v : {ymap[0], ymap[2], xmap[0], xmap[2]})
    if (!(v > 0)) fail("assemble_masks: resized and input sizes must be positive");
  if (logit_threshold != logit_threshold) fail("assemble_masks: threshold must not be NaN");
  const AxisMap my{ymap[0], static_cast<double>(H), ymap[1], static_cast<double>(Hp), ymap[2]};
  const AxisMap mx{xmap[0], static_cast<double>(W), xmap[1], static_cast<double>(Wp), xmap[2]};

  const float* bx = static_cast<const float*>(boxes.data());
  std::vector<int32_t> regions(static_cast<size_t>(4 * K));
  assemble_regions(bx, K, H, W, regions.data());
  const float* cf = static_cast<const float*>(coeffs.data());
  const void* pr = protos.data();
  return build_maskset(regions, K, [&](const int64_t* o, uint8_t* dst) {
    assemble_masks(cf, K, Mc, pr, pt, Hp, Wp, regions.data(), o, dst, my, mx, logit_threshold,
                   fast);
  });
}

py::tuple paste_masks_py(const py::array& masks, const py::array& boxes, int64_t H, int64_t W,
                         double threshold) {
  const char* fn = "paste_masks";
  check_frame(H, W, fn);
  check_ndim(masks, fn, "masks", "(N, Mh, Mw)", {3});
  const FloatType ft = float_type(masks, fn, "masks");
  check_contiguous(masks, fn, "masks");
  const int64_t N = masks.shape(0), Mh = masks.shape(1), Mw = masks.shape(2);
  if (Mh < 1 || Mw < 1) fail("paste_masks: masks must be non-empty (N, Mh, Mw), got shape " +
                             shape_str(masks));
  check_boxes_f32(boxes, fn, N, "mask");
  if (!std::isfinite(threshold)) fail("paste_masks: threshold must be finite");
  const float* bx = static_cast<const float*>(boxes.data());
  std::vector<int32_t> regions(static_cast<size_t>(4 * N));
  paste_regions(bx, N, H, W, regions.data());
  const void* src = masks.data();
  return build_maskset(regions, N, [&](const int64_t* o, uint8_t* dst) {
    paste_masks(src, ft, N, Mh, Mw, bx, regions.data(), o, dst, threshold);
  });
}

// Checks a mask set's three arrays against each other and the frame (O(K)); returns K.
int64_t check_maskset(const py::array& data, const py::array& offsets, const py::array& regions,
                      int64_t H, int64_t W, const char* fn) {
  check_frame(H, W, fn);
  check_ndim(data, fn, "masks.data", "(n,)", {1});
  if (!is_dtype(data, 'u', 1) && !is_dtype(data, 'b', 1))
    fail(std::string(fn) + ": masks.data must be uint8, got " + dtype_str(data));
  check_contiguous(data, fn, "masks.data");
  check_ndim(regions, fn, "masks.regions", "(K, 4)", {2});
  if (regions.shape(1) != 4 || !is_dtype(regions, 'i', 4))
    fail(std::string(fn) + ": masks.regions must be int32 of shape (K, 4), got " +
         dtype_str(regions) + " of shape " + shape_str(regions));
  check_contiguous(regions, fn, "masks.regions");
  const int64_t K = regions.shape(0);
  check_ndim(offsets, fn, "masks.offsets", "(K + 1,)", {1});
  if (offsets.shape(0) != K + 1 || !is_dtype(offsets, 'i', 8))
    fail(std::string(fn) + ": masks.offsets must be int64 of shape (" + std::to_string(K + 1) +
         ",), got " + dtype_str(offsets) + " of shape " + shape_str(offsets));
  check_contiguous(offsets, fn, "masks.offsets");
  const int32_t* r = static_cast<const int32_t*>(regions.data());
  const int64_t* o = static_cast<const int64_t*>(offsets.data());
  if (o[0] != 0) fail(std::string(fn) + ": masks.offsets[0] must be 0");
  for (int64_t k = 0; k < K; ++k) {
    const int32_t* q = r + 4 * k;
    if (q[0] < 0 || q[1] < 0 || q[2] < q[0] || q[3] < q[1] || q[2] > W || q[3] > H)
      fail(std::string(fn) + ": region " + std::to_string(k) + " is not inside the " +
           std::to_string(H) + "x" + std::to_string(W) + " frame");
    if (o[k + 1] - o[k] != static_cast<int64_t>(q[2] - q[0]) * (q[3] - q[1]))
      fail(std::string(fn) + ": masks.offsets do not match the region areas at mask " +
           std::to_string(k));
  }
  if (o[K] != data.shape(0))
    fail(std::string(fn) + ": masks.data has " + std::to_string(data.shape(0)) +
         " bytes, the regions need " + std::to_string(o[K]));
  return K;
}

py::array_t<int64_t> mask_areas_py(const py::array& data, const py::array& offsets,
                                   const py::array& regions, int64_t H, int64_t W) {
  const int64_t K = check_maskset(data, offsets, regions, H, W, "MaskSet.areas");
  py::array_t<int64_t> areas(K);
  const uint8_t* d = static_cast<const uint8_t*>(data.data());
  const int64_t* o = static_cast<const int64_t*>(offsets.data());
  int64_t* a = areas.mutable_data();
  {
    py::gil_scoped_release release;
    mask_areas(d, o, K, a);
  }
  return areas;
}

py::list rle_py(const py::array& data, const py::array& offsets, const py::array& regions,
                int64_t H, int64_t W) {
  const int64_t K = check_maskset(data, offsets, regions, H, W, "MaskSet.to_rle");
  const uint8_t* d = static_cast<const uint8_t*>(data.data());
  const int64_t* o = static_cast<const int64_t*>(offsets.data());
  const int32_t* r = static_cast<const int32_t*>(regions.data());
  std::vector<std::string> s;
  {
    py::gil_scoped_release release;
    s = rle_strings(d, o, r, K, H, W);
  }
  py::list out;
  for (const std::string& x : s) out.append(py::str(x));
  return out;
}

void overlay_instances_py(const py::array& image, const py::array& data,
                          const py::array& offsets, const py::array& regions,
                          const py::array& colors, double alpha, bool outline, py::array& out) {
  const char* fn = "overlay_instances";
  check_bgr_image(image, fn);
  const int64_t H = image.shape(0), W = image.shape(1);
  const int64_t K = check_maskset(data, offsets, regions, H, W, fn);
  check_ndim(colors, fn, "colors", "(K, 3)", {2});
  if (colors.shape(0) != K || colors.shape(1) != 3)
    fail("overlay_instances: colors must have shape (" + std::to_string(K) +
         ", 3) (one BGR colour per mask), got shape " + shape_str(colors));
  if (!is_dtype(colors, 'u', 1))
    fail("overlay_instances: colors must be uint8, got " + dtype_str(colors));
  check_contiguous(colors, fn, "colors");
  const uint32_t a16 = check_blend(image, out, alpha, fn);
  const uint8_t* img = static_cast<const uint8_t*>(image.data());
  const uint8_t* d = static_cast<const uint8_t*>(data.data());
  const int64_t* o = static_cast<const int64_t*>(offsets.data());
  const int32_t* r = static_cast<const int32_t*>(regions.data());
  const uint8_t* c = static_cast<const uint8_t*>(colors.data());
  uint8_t* dst = static_cast<uint8_t*>(out.mutable_data());
  {
    py::gil_scoped_release release;
    overlay_instances(img, H, W, d, o, r, K, c, a16, outline, dst);
  }
}

py::array_t<float> mask_iou_py(const py::array& data_a, const py::array& offsets_a,
                               const py::array& regions_a, const py::object& shift_a,
                               const py::array& data_b, const py::array& offsets_b,
                               const py::array& regions_b, int64_t H, int64_t W) {
  const char* fn = "mask_iou";
  const int64_t K = check_maskset(data_a, offsets_a, regions_a, H, W, fn);
  const int64_t M = check_maskset(data_b, offsets_b, regions_b, H, W, fn);
  const int32_t* sh = nullptr;
  py::array shift;
  if (!shift_a.is_none()) {
    shift = py::cast<py::array>(shift_a);
    check_ndim(shift, fn, "shift", "(K, 2)", {2});
    if (shift.shape(0) != K || shift.shape(1) != 2 || !is_dtype(shift, 'i', 4))
      fail("mask_iou: shift must be int32 of shape (" + std::to_string(K) + ", 2), got " +
           dtype_str(shift) + " of shape " + shape_str(shift));
    check_contiguous(shift, fn, "shift");
    sh = static_cast<const int32_t*>(shift.data());
  }
  py::array_t<float> out({K, M});
  const uint8_t* da = static_cast<const uint8_t*>(data_a.data());
  const uint8_t* db = static_cast<const uint8_t*>(data_b.data());
  const int64_t* oa = static_cast<const int64_t*>(offsets_a.data());
  const int64_t* ob = static_cast<const int64_t*>(offsets_b.data());
  const int32_t* ra = static_cast<const int32_t*>(regions_a.data());
  const int32_t* rb = static_cast<const int32_t*>(regions_b.data());
  float* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    mask_iou(da, oa, ra, sh, K, db, ob, rb, M, o);
  }
  return out;
}

py::array_t<int64_t> linear_assignment_py(const py::array& cost, double limit) {
  const char* fn = "linear_assignment";
  check_ndim(cost, fn, "cost", "(n, m)", {2});
  if (!is_dtype(cost, 'f', 8)) fail("linear_assignment: cost must be float64, got " + dtype_str(cost));
  check_contiguous(cost, fn, "cost");
  if (!std::isfinite(limit))
    fail("linear_assignment: limit must be a finite number, got " + std::to_string(limit));
  const int64_t n = cost.shape(0), m = cost.shape(1);
  if (n + m > 8192)
    fail("linear_assignment: at most 8192 rows + columns, got " + shape_str(cost));
  py::array_t<int64_t> out(n);
  const double* c = static_cast<const double*>(cost.data());
  int64_t* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    linear_assignment(c, n, m, limit, o);
  }
  return out;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "edgeseg C++ core (see edgeseg.ops for the documented Python API)";
  m.def("argmax", &argmax_py, py::arg("logits"),
        "Channel argmax of (C,H,W) or (N,C,H,W) float32/float16 logits -> uint8/int32 labels.");
  m.def("upsample_argmax", &upsample_argmax_py, py::arg("logits"), py::arg("out_h"),
        py::arg("out_w"), py::arg("ay"), py::arg("by"), py::arg("ax"), py::arg("bx"),
        "Fused bilinear sampling at (y*ay+by, x*ax+bx) + channel argmax of (C,h,w) logits.");
  m.def("letterbox", &letterbox_py, py::arg("image"), py::arg("out"), py::arg("rh"),
        py::arg("rw"), py::arg("pad_top"), py::arg("pad_left"), py::arg("scale"), py::arg("bias"),
        py::arg("pad"),
        "Resize BGR uint8 image to rh x rw into out (1,3,h,w) at (pad_top, pad_left), RGB, "
        "x*scale+bias inside, pad outside.");
  m.def("overlay", &overlay_py, py::arg("image"), py::arg("labels"), py::arg("palette"),
        py::arg("alpha"), py::arg("out"), py::arg("skip") = py::none(),
        "Palette colourise + alpha blend into out (labels flagged in skip left as they are).");
  // instance post-processing
  m.def("nms", &nms_py, py::arg("boxes"), py::arg("scores"), py::arg("class_ids"),
        py::arg("iou_threshold"), py::arg("score_threshold"), py::arg("max_candidates"),
        py::arg("max_detections"), py::arg("class_agnostic"),
        "Score filter + stable top-k + greedy (class-aware) NMS -> kept indices (int64).");
  m.def("select_detections", &select_detections_py, py::arg("boxes"), py::arg("scores"),
        py::arg("iou_threshold"), py::arg("score_threshold"), py::arg("max_candidates"),
        py::arg("max_detections"), py::arg("class_agnostic"),
        "Best class per anchor + nms -> (indices int64, class_ids int32, scores float32).");
  m.def("assemble_masks", &assemble_masks_py, py::arg("coeffs"), py::arg("protos"),
        py::arg("boxes"), py::arg("H"), py::arg("W"), py::arg("ymap"), py::arg("xmap"),
        py::arg("logit_threshold"), py::arg("fast"),
        "Box-local prototype masks -> (data uint8, offsets int64, regions int32).");
  m.def("paste_masks", &paste_masks_py, py::arg("masks"), py::arg("boxes"), py::arg("H"),
        py::arg("W"), py::arg("threshold"),
        "detectron2-style box-local paste -> (data uint8, offsets int64, regions int32).");
  m.def("mask_areas", &mask_areas_py, py::arg("data"), py::arg("offsets"), py::arg("regions"),
        py::arg("H"), py::arg("W"));
  m.def("mask_rle", &rle_py, py::arg("data"), py::arg("offsets"), py::arg("regions"),
        py::arg("H"), py::arg("W"), "COCO compressed RLE counts strings of a mask set.");
  m.def("overlay_instances", &overlay_instances_py, py::arg("image"), py::arg("data"),
        py::arg("offsets"), py::arg("regions"), py::arg("colors"), py::arg("alpha"),
        py::arg("outline"), py::arg("out"), "Blend instance masks onto image into out.");
  m.def("mask_iou", &mask_iou_py, py::arg("data_a"), py::arg("offsets_a"), py::arg("regions_a"),
        py::arg("shift_a"), py::arg("data_b"), py::arg("offsets_b"), py::arg("regions_b"),
        py::arg("H"), py::arg("W"), "Pairwise IoU of two box-local mask sets.");
  m.def("linear_assignment", &linear_assignment_py, py::arg("cost"), py::arg("limit"),
        "Minimum-cost matching with a cost limit -> column per row (-1 unmatched).");
  m.def("set_num_threads", [](int n) {
    if (n < 1) throw py::value_error("set_num_threads: n must be >= 1, got " + std::to_string(n));
    set_num_threads(n);
  }, py::arg("n"));
  m.def("get_num_threads", &get_num_threads);
  m.def("default_num_threads", &default_num_threads);
  m.def("set_simd", &set_simd_enabled, py::arg("enabled"),
        "Use the SIMD path when supported (False forces the portable scalar path).");
  m.def("get_simd", &simd_enabled);
  m.def("simd_supported", &simd_supported);
  m.def("simd_name", &simd_name);
}
