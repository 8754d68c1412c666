// The edgeseg C++ core: pre/post-processing kernels for real-time segmentation. Pure C++17, no
// Python; every kernel validates nothing and trusts its arguments (edgeseg/ops.py is the checked
// Python face of the same functions). Each header documents shapes, dtypes and semantics:
//
//   letterbox.h        BGR u8 frame -> normalised RGB CHW float32/float16 network input, resized
//                      and padded in one pass (ops.letterbox)
//   upsample_argmax.h  low-resolution logits -> frame-size labels, fused bilinear upsample + argmax
//                      that never materialises full-resolution logits (ops.upsample_argmax)
//   argmax.h           channel argmax at the logits' own resolution (ops.argmax)
//   nms.h              greedy per-class NMS, and the fused decode of a single-stage detection head
//                      (ops.nms, ops.select_detections)
//   masks.h            box-local instance masks: assembly from prototypes (YOLACT / YOLO-seg),
//                      paste of RoI masks (Mask R-CNN), areas, COCO RLE, instance overlay
//                      (ops.assemble_masks, ops.paste_masks, ops.overlay_instances)
//   overlay.h          colourise labels and alpha-blend onto the frame (ops.overlay)
//   threadpool.h       the thread pool every kernel uses (set_num_threads)
//
// Conventions: images are BGR uint8 H x W x 3; network inputs are 3 x h x w planes (R, G, B);
// labels are uint8 (<= 255 classes) or int32; boxes are float32 xyxy in pixel-edge coordinates;
// every array is C-contiguous unless a header says otherwise. Results do not depend on the
// thread count or on SIMD support (scalar and AVX2 paths give identical bits).
//
// With CMake:  find_package(edgeseg REQUIRED)  target_link_libraries(app PRIVATE edgeseg::core)
// and include <edgeseg/core/core.h>. See examples/cpp/ for a program that uses every kernel.
#pragma once

#include "argmax.h"
#include "common.h"
#include "letterbox.h"
#include "masks.h"
#include "nms.h"
#include "overlay.h"
#include "threadpool.h"
#include "upsample_argmax.h"
