"""The single source of truth for edgeseg's defaults. Everything else reads from here."""
from __future__ import annotations

#: ImageNet statistics in RGB order on the 0..255 scale; (x - mean) / std is applied per channel.
MEAN_RGB: tuple[float, float, float] = (123.675, 116.28, 103.53)
STD_RGB: tuple[float, float, float] = (58.395, 57.12, 57.375)
#: Grey used to pad letterboxed frames (pixel units, before normalisation); training pads with it too.
PAD_VALUE: int = 114
#: Label value ignored by losses and metrics (VOC boundaries, Cityscapes void).
IGNORE_INDEX: int = 255
#: Network input size (height, width) of semantic models unless told otherwise.
SEMANTIC_INPUT_SIZE: tuple[int, int] = (256, 256)
#: ONNX opset used by export.
ONNX_OPSET: int = 17
#: Minimum PyTorch-vs-exported label agreement; export fails below this.
PARITY_MIN_AGREEMENT: float = 0.999
#: Overlay blend weight of the class colour.
OVERLAY_ALPHA: float = 0.5
#: Environment variable that sets the C++ core's thread count (default: all cores).
NUM_THREADS_ENV: str = "EDGESEG_NUM_THREADS"
#: Metadata key under which ModelMeta JSON is stored in ONNX metadata_props.
META_KEY: str = "edgeseg.meta"
#: The default semantic model shipped inside the package (a path relative to edgeseg/assets/).
DEFAULT_SEMANTIC_MODEL: str = "semantic_default.onnx"
#: Synthetic frames compared between PyTorch and the exported model after every export.
PARITY_IMAGES: int = 4
#: One-channel (binary) models: a pixel is foreground when its probability is above this.
BINARY_THRESHOLD: float = 0.5

# ---- instance segmentation
#: Network input size (height, width) of instance models unless told otherwise.
INSTANCE_INPUT_SIZE: tuple[int, int] = (256, 256)
#: Detections below this class probability are dropped before NMS.
SCORE_THRESHOLD: float = 0.25
#: Class-aware NMS IoU threshold: a box is dropped when its IoU with a kept box is above it.
IOU_THRESHOLD: float = 0.5
#: A pixel belongs to an instance when sigmoid(mask logit) > this.
MASK_THRESHOLD: float = 0.5
#: Candidates kept (by score) before NMS, and detections kept after it (``ops.nms`` and
#: ``ops.select_detections`` too; ``csrc/core/nms.h`` has the same defaults, checked by a test).
MAX_CANDIDATES: int = 1000
MAX_DETECTIONS: int = 100
#: Detection score threshold used for COCO evaluation (low: AP integrates over all scores).
EVAL_SCORE_THRESHOLD: float = 0.001
#: COCO's maxDets: detections per image (and class) that AP counts, as COCOeval does.
COCO_MAX_DETS: int = 100
#: The default instance model shipped inside the package (relative to edgeseg/assets/).
DEFAULT_INSTANCE_MODEL: str = "instance_default.onnx"

# ---- tracking (ByteTrack's thresholds, expressed as IoU)
#: How detections are matched to tracks: "mask" (mask IoU) or "box" (box IoU).
TRACK_MATCHING: str = "mask"
#: Detections at or above this score are matched first and may start tracks; the second pass
#: takes those from TRACK_LOW_SCORE up.
TRACK_HIGH_SCORE: float = 0.5
TRACK_LOW_SCORE: float = 0.1
#: A detection left unmatched starts a (tentative) track at this score or more.
TRACK_NEW_SCORE: float = 0.6
#: Least IoU of a match: first pass, low-score pass, tentative tracks.
TRACK_MATCH_IOU: float = 0.2
TRACK_LOW_MATCH_IOU: float = 0.5
TRACK_TENTATIVE_IOU: float = 0.3
#: Frames a lost track is kept (and can be found again with its id).
TRACK_BUFFER: int = 30

# ---- training
#: Model trained by ``edgeseg train`` per task when none is named.
TRAIN_MODEL: dict[str, str] = {"semantic": "liteseg_t", "instance": "yoloseg_n"}

# ---- deployment exports (OpenVINO, ONNX INT8, TensorRT) and their accuracy gate
#: Largest allowed mIoU / mask AP drop of an export (fraction; 0.01 = one point).
GATE_MAX_DROP: float = 0.01
#: Validation images the gate scores, and the data they come from.
GATE_VAL_IMAGES: int = 32
GATE_VAL_DATA: str = "synthetic"
#: The gate matches a detection to a reference detection of the same class at this box IoU or more.
GATE_MATCH_IOU: float = 0.5
#: Calibration images of INT8 exports.
CALIB_IMAGES: int = 32
#: Seed of synthetic calibration scenes: a stream of its own (the synthetic splits use 0, 1_000_003
#: and 2_000_003), so the gate never scores on images the quantiser calibrated on.
CALIB_SEED: int = 7_000_003
#: Layers an ONNX Runtime INT8 export keeps in float (see :mod:`edgeseg.export.quantize`).
INT8_KEEP_FLOAT: tuple[str, ...] = ("first",)
#: Op types an ONNX Runtime INT8 export quantises (see :mod:`edgeseg.export.quantize`).
INT8_OP_TYPES: tuple[str, ...] = ("Conv", "Relu", "Clip", "MaxPool")
#: TensorRT builder workspace limit (MB), and the largest batch of a dynamic engine.
TRT_WORKSPACE_MB: int = 1024
TRT_MAX_BATCH: int = 4

# ---- benchmarks
#: Frame size (height, width) ``edgeseg bench`` feeds: 720p landscape.
BENCH_FRAME_SIZE: tuple[int, int] = (720, 1280)
#: Distinct synthetic frames cycled through by benchmarks.
BENCH_DISTINCT_FRAMES: int = 8
#: Timed frames per model and backend, and untimed frames before them.
BENCH_RUNS: int = 100
BENCH_WARMUP: int = 10

#: Environment variable that lets ONNX models with operators from custom domains load (=1).
ALLOW_CUSTOM_OPS_ENV: str = "EDGESEG_ALLOW_CUSTOM_OPS"
#: Most tensor bytes (inline + external) an ONNX model may declare (4 GiB).
MODEL_BYTES_BUDGET: int = 4 << 30
#: Largest image (width x height) edgeseg decodes; EDGESEG_MAX_IMAGE_PIXELS overrides it.
MAX_IMAGE_PIXELS: int = 1 << 28
MAX_IMAGE_PIXELS_ENV: str = "EDGESEG_MAX_IMAGE_PIXELS"


def max_image_pixels() -> int:
    """The image-size limit in force (the environment variable wins when it is a positive integer)."""
    import os

    text = os.environ.get(MAX_IMAGE_PIXELS_ENV, "")
    return int(text) if text.isdigit() and int(text) > 0 else MAX_IMAGE_PIXELS
#: Most threads edgeseg starts for one pool (ONNX Runtime intra-op, the C++ core).
MAX_THREADS: int = 256

# ---- real-time pipeline
#: Frame rate of a written video, a synthetic or replayed live source, when nothing else sets it.
VIDEO_FPS: float = 30.0
#: Frame size (height, width) of the live synthetic source.
SYNTHETIC_SOURCE_SIZE: tuple[int, int] = (360, 640)
#: Live sources: seconds without a frame before the device counts as lost, and seconds of failed
#: reopening before giving up.
LIVE_READ_TIMEOUT: float = 5.0
LIVE_RECONNECT_TIMEOUT: float = 30.0
#: Live sources: first wait between reopen attempts (seconds, doubling each attempt) and its cap.
LIVE_BACKOFF: float = 0.25
LIVE_BACKOFF_MAX: float = 4.0
#: Web view: viewers served at once (more get 503), and the JPEG quality of its MJPEG stream.
WEB_MAX_CLIENTS: int = 8
WEB_JPEG_QUALITY: int = 80
#: Semantic smoothing, when a kind is named without its value: mode-filter window (frames),
#: hysteresis streak (frames), weight of the newest frame in the (flow-)EMA.
SMOOTH_MODE_FRAMES: int = 3
SMOOTH_HYSTERESIS_FRAMES: int = 2
SMOOTH_EMA_WEIGHT: float = 0.5
#: ``edgeseg batch``: times a recording is retried on a fresh worker after its worker died.
BATCH_RETRIES: int = 2
#: ``edgeseg demo``: frames and frame size (height, width) of the generated video.
DEMO_FRAMES: int = 300
DEMO_FRAME_SIZE: tuple[int, int] = (480, 480)
