// segment_image: run the edgeseg core's kernels on an image, as a C++ inference stack would
// around its own network (TensorRT, ONNX Runtime C++ ...).
//
//   segment_image IN.ppm OUT_DIR [REPEATS] [THREADS]
//
// 1. letterbox: BGR frame -> normalised RGB 3 x 256 x 256 float32 (mean/std/pad of edgeseg's
//    defaults), the geometry of edgeseg.geometry.letterbox_info;
// 2. a stand-in for the network: 4 x 32 x 32 "logits" at stride 8 (the input's R, G, B planes
//    sampled every 8 pixels, and a constant 0.5 plane: class k = "channel k is the largest");
// 3. upsample_argmax back to the frame through the letterbox mapping -> labels;
// 4. overlay: labels coloured onto the frame;
// 5. nms over 300 pseudo-random boxes of 3 classes, and paste_masks of 16 pseudo-random 28 x 28
//    RoI masks (Mask R-CNN style) into the frame.
//
// OUT_DIR receives input.f32, labels.pgm, overlay.ppm, boxes.f32, scores.f32, classes.i64,
// keep.txt, roi_masks.f32, roi_boxes.f32, masks.u8 (box-local bitmaps), regions.i32, so every
// step can be checked against edgeseg's Python API. Median kernel times (ms) over REPEATS runs
// are printed as one JSON line.
#include <edgeseg/core/core.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct Image {
  int64_t h = 0, w = 0;
  std::vector<uint8_t> bgr;  // h x w x 3
};

// Binary PPM (P6, maxval 255) -> BGR.
Image read_ppm(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  std::string magic;
  int64_t w = 0, h = 0, maxval = 0;
  f >> magic;
  auto skip_comments = [&f] {
    f >> std::ws;
    while (f.peek() == '#') {
      std::string line;
      std::getline(f, line);
      f >> std::ws;
    }
  };
  skip_comments();
  f >> w;
  skip_comments();
  f >> h;
  skip_comments();
  f >> maxval;
  f.get();
  if (magic != "P6" || w <= 0 || h <= 0 || maxval != 255) throw std::runtime_error(path + ": not an 8-bit binary PPM (P6)");
  Image im{h, w, std::vector<uint8_t>(static_cast<size_t>(h * w * 3))};
  f.read(reinterpret_cast<char*>(im.bgr.data()), static_cast<std::streamsize>(im.bgr.size()));
  if (!f) throw std::runtime_error(path + ": truncated pixel data");
  for (size_t i = 0; i < im.bgr.size(); i += 3) std::swap(im.bgr[i], im.bgr[i + 2]);  // RGB -> BGR
  return im;
}

void write_file(const std::string& path, const void* data, size_t bytes, const std::string& head = "") {
  std::ofstream f(path, std::ios::binary);
  f << head;
  f.write(static_cast<const char*>(data), static_cast<std::streamsize>(bytes));
  if (!f) throw std::runtime_error("cannot write " + path);
}

// Median wall time of fn over n runs, in milliseconds.
double time_ms(int n, const std::function<void()>& fn) {
  std::vector<double> t;
  for (int i = 0; i < n; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Deterministic pseudo-random numbers in [0, 1) (64-bit LCG, top 24 bits).
struct Lcg {
  uint64_t s;
  float next() {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<float>(s >> 40) / 16777216.0f;
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: segment_image IN.ppm OUT_DIR [REPEATS] [THREADS]\n";
    return 2;
  }
  try {
    const std::string out = std::string(argv[2]) + "/";
    const int repeats = argc > 3 ? std::max(1, std::atoi(argv[3])) : 1;
    if (argc > 4) edgeseg::set_num_threads(std::max(1, std::atoi(argv[4])));
    const Image im = read_ppm(argv[1]);
    const int64_t H = im.h, W = im.w;

    // 1. letterbox (geometry as edgeseg.geometry.letterbox_info; Python rounds half to even)
    const int64_t oh = 256, ow = 256;
    const double s = std::min(double(oh) / H, double(ow) / W);
    const int64_t rh = std::min(oh, std::max<int64_t>(1, static_cast<int64_t>(std::nearbyint(H * s))));
    const int64_t rw = std::min(ow, std::max<int64_t>(1, static_cast<int64_t>(std::nearbyint(W * s))));
    const int64_t pad_top = (oh - rh) / 2, pad_left = (ow - rw) / 2;
    const double mean[3] = {123.675, 116.28, 103.53}, stdv[3] = {58.395, 57.12, 57.375};
    float scale[3], bias[3], pad[3];
    for (int c = 0; c < 3; ++c) {
      scale[c] = static_cast<float>(1.0 / stdv[c]);
      bias[c] = static_cast<float>(-mean[c] / stdv[c]);
      pad[c] = static_cast<float>((114.0 - mean[c]) / stdv[c]);
    }
    std::vector<float> input(static_cast<size_t>(3 * oh * ow));
    const double t_letterbox = time_ms(repeats, [&] {
      edgeseg::letterbox(im.bgr.data(), H, W, input.data(), edgeseg::FloatType::F32, oh, ow, rh, rw, pad_top,
                         pad_left, scale, bias, pad);
    });

    // 2. the stand-in network: 4 x 32 x 32 logits
    const int64_t C = 4, h = oh / 8, w = ow / 8;
    std::vector<float> logits(static_cast<size_t>(C * h * w), 0.5f);
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x) logits[(c * h + y) * w + x] = input[(c * oh + 8 * y) * ow + 8 * x];

    // 3. labels at frame size through the letterbox mapping (ops.upsample_argmax(letterbox=info))
    const double ky = double(h) / oh, kx = double(w) / ow;
    const double ay = double(rh) / H * ky, ax = double(rw) / W * kx;
    const double by = (0.5 * rh / H + pad_top) * ky - 0.5, bx = (0.5 * rw / W + pad_left) * kx - 0.5;
    std::vector<uint8_t> labels(static_cast<size_t>(H * W));
    const double t_upsample = time_ms(repeats, [&] {
      edgeseg::upsample_argmax(logits.data(), edgeseg::FloatType::F32, C, h, w, labels.data(),
                               edgeseg::label_type_for(C), H, W, ay, by, ax, bx);
    });

    // 4. overlay (BGR palette, alpha 0.5)
    const uint8_t palette[4 * 3] = {0, 0, 255, 0, 255, 0, 255, 0, 0, 128, 128, 128};
    std::vector<uint8_t> vis(im.bgr.size());
    const uint32_t alpha16 = static_cast<uint32_t>(0.5 * 65536.0 + 0.5);
    const double t_overlay = time_ms(repeats, [&] {
      edgeseg::overlay(im.bgr.data(), labels.data(), edgeseg::LabelType::U8, H, W, palette, 4, alpha16, vis.data());
    });

    // 5a. NMS
    const int64_t N = 300;
    Lcg rng{12345};
    std::vector<float> boxes(static_cast<size_t>(N * 4)), scores(static_cast<size_t>(N));
    std::vector<int64_t> classes(static_cast<size_t>(N));
    for (int64_t i = 0; i < N; ++i) {
      const float x0 = rng.next() * W, y0 = rng.next() * H;
      boxes[4 * i] = x0;
      boxes[4 * i + 1] = y0;
      boxes[4 * i + 2] = x0 + 4 + rng.next() * W / 4;
      boxes[4 * i + 3] = y0 + 4 + rng.next() * H / 4;
      scores[i] = rng.next();
      classes[i] = static_cast<int64_t>(rng.next() * 3);
    }
    edgeseg::NmsParams np;
    np.iou_threshold = 0.5;
    np.score_threshold = 0.05;
    np.max_candidates = 30000;
    np.max_detections = 300;
    std::vector<int64_t> keep;
    const double t_nms = time_ms(repeats, [&] {
      keep = edgeseg::nms(edgeseg::Strided2D{boxes.data(), edgeseg::FloatType::F32, 4, 1}, scores.data(),
                          classes.data(), N, np);
    });

    // 5b. paste 16 RoI masks of 28 x 28 into the frame
    const int64_t K = 16, M = 28;
    std::vector<float> roi(static_cast<size_t>(K * M * M)), roi_boxes(static_cast<size_t>(K * 4));
    for (auto& v : roi) v = rng.next();
    for (int64_t k = 0; k < K; ++k) {
      const float x0 = rng.next() * W * 0.8f, y0 = rng.next() * H * 0.8f;
      roi_boxes[4 * k] = x0;
      roi_boxes[4 * k + 1] = y0;
      roi_boxes[4 * k + 2] = x0 + 2 + rng.next() * W / 3;
      roi_boxes[4 * k + 3] = y0 + 2 + rng.next() * H / 3;
    }
    std::vector<int32_t> regions(static_cast<size_t>(K * 4));
    std::vector<int64_t> offsets(static_cast<size_t>(K + 1));
    std::vector<uint8_t> bitmaps;
    const double t_paste = time_ms(repeats, [&] {
      edgeseg::paste_regions(roi_boxes.data(), K, H, W, regions.data());
      offsets[0] = 0;
      for (int64_t k = 0; k < K; ++k)
        offsets[k + 1] = offsets[k] + int64_t(regions[4 * k + 2] - regions[4 * k]) * (regions[4 * k + 3] - regions[4 * k + 1]);
      bitmaps.assign(static_cast<size_t>(offsets[K]), 0);
      edgeseg::paste_masks(roi.data(), edgeseg::FloatType::F32, K, M, M, roi_boxes.data(), regions.data(),
                           offsets.data(), bitmaps.data(), 0.5);
    });

    // outputs
    write_file(out + "input.f32", input.data(), input.size() * sizeof(float));
    write_file(out + "labels.pgm", labels.data(), labels.size(),
               "P5\n" + std::to_string(W) + " " + std::to_string(H) + "\n255\n");
    std::vector<uint8_t> rgb(vis);
    for (size_t i = 0; i < rgb.size(); i += 3) std::swap(rgb[i], rgb[i + 2]);
    write_file(out + "overlay.ppm", rgb.data(), rgb.size(), "P6\n" + std::to_string(W) + " " + std::to_string(H) + "\n255\n");
    write_file(out + "boxes.f32", boxes.data(), boxes.size() * sizeof(float));
    write_file(out + "scores.f32", scores.data(), scores.size() * sizeof(float));
    write_file(out + "classes.i64", classes.data(), classes.size() * sizeof(int64_t));
    std::ostringstream k;
    for (int64_t i : keep) k << i << "\n";
    const std::string ks = k.str();
    write_file(out + "keep.txt", ks.data(), ks.size());
    write_file(out + "roi_masks.f32", roi.data(), roi.size() * sizeof(float));
    write_file(out + "roi_boxes.f32", roi_boxes.data(), roi_boxes.size() * sizeof(float));
    write_file(out + "masks.u8", bitmaps.data(), bitmaps.size());
    write_file(out + "regions.i32", regions.data(), regions.size() * sizeof(int32_t));

    std::printf("{\"height\": %lld, \"width\": %lld, \"threads\": %d, \"repeats\": %d, \"letterbox_ms\": %.4f, "
                "\"upsample_argmax_ms\": %.4f, \"overlay_ms\": %.4f, \"nms_ms\": %.4f, \"paste_masks_ms\": %.4f, "
                "\"kept\": %zu}\n",
                static_cast<long long>(H), static_cast<long long>(W), edgeseg::get_num_threads(), repeats,
                t_letterbox, t_upsample, t_overlay, t_nms, t_paste, keep.size());
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "segment_image: " << e.what() << "\n";
    return 1;
  }
}
