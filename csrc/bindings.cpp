// Python bindings of the edgeseg C++ core -> module edgeseg._C.
//
// Arrays are taken zero-copy as py::array (never force-cast): each binding checks dtype, ndim,
// shape and C-contiguity itself and raises ValueError naming what was expected and what it got.
// The GIL is released around every kernel. edgeseg/ops.py is the documented public face.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <sstream>
#include <string>
#include <vector>

#include "core/argmax.h"
#include "core/letterbox.h"
#include "core/overlay.h"
#include "core/simd.h"
#include "core/threadpool.h"
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
  check_ndim(image, fn, "image", "(H, W, 3)", {3});
  if (image.shape(2) != 3)
    fail("letterbox: image must have shape (H, W, 3) (BGR), got shape " + shape_str(image));
  if (!is_dtype(image, 'u', 1)) fail("letterbox: image must be uint8, got " + dtype_str(image));
  check_contiguous(image, fn, "image");
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
                double alpha, py::array& out) {
  const char* fn = "overlay";
  check_ndim(image, fn, "image", "(H, W, 3)", {3});
  if (image.shape(2) != 3)
    fail("overlay: image must have shape (H, W, 3) (BGR), got shape " + shape_str(image));
  if (!is_dtype(image, 'u', 1)) fail("overlay: image must be uint8, got " + dtype_str(image));
  check_contiguous(image, fn, "image");
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

  check_ndim(out, fn, "out", "(H, W, 3)", {3});
  if (out.shape(0) != H || out.shape(1) != W || out.shape(2) != 3)
    fail("overlay: out must have the image's shape " + shape_str(image) + ", got shape " +
         shape_str(out));
  if (!is_dtype(out, 'u', 1)) fail("overlay: out must be uint8, got " + dtype_str(out));
  check_contiguous(out, fn, "out");
  check_writeable(out, fn, "out");
  if (!(alpha >= 0.0 && alpha <= 1.0))
    fail("overlay: alpha must be in [0, 1], got " + std::to_string(alpha));
  const uint32_t a16 = static_cast<uint32_t>(alpha * 65536.0 + 0.5);

  const uint8_t* img = static_cast<const uint8_t*>(image.data());
  const void* lab = labels.data();
  const uint8_t* pal = static_cast<const uint8_t*>(palette.data());
  const int64_t K = palette.shape(0);
  uint8_t* dst = static_cast<uint8_t*>(out.mutable_data());
  {
    py::gil_scoped_release release;
    overlay(img, lab, lt, H, W, pal, K, a16, dst);
  }
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
        py::arg("alpha"), py::arg("out"), "Palette colourise + alpha blend into out.");
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
