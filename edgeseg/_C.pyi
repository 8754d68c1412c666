"""Type stub of the compiled C++ core (csrc/bindings.cpp). Call it through :mod:`edgeseg.ops`,
which validates arguments and documents each kernel; these functions expect exactly the arrays
ops prepares (dtype, shape, C-contiguous) and raise ValueError otherwise."""
from typing import Optional

import numpy as np
import numpy.typing as npt


def argmax(logits: np.ndarray) -> np.ndarray: ...
def assemble_masks(
    coeffs: np.ndarray,
    protos: np.ndarray,
    boxes: np.ndarray,
    H: int,
    W: int,
    ymap: tuple[float, float, float],
    xmap: tuple[float, float, float],
    logit_threshold: float,
    fast: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...
def default_num_threads() -> int: ...
def get_num_threads() -> int: ...
def get_simd() -> bool: ...
def letterbox(
    image: np.ndarray,
    out: np.ndarray,
    rh: int,
    rw: int,
    pad_top: int,
    pad_left: int,
    scale: tuple[float, float, float],
    bias: tuple[float, float, float],
    pad: tuple[float, float, float],
) -> None: ...
def linear_assignment(cost: np.ndarray, limit: float) -> npt.NDArray[np.int64]: ...
def mask_areas(
    data: np.ndarray,
    offsets: np.ndarray,
    regions: np.ndarray,
    H: int,
    W: int,
) -> npt.NDArray[np.int64]: ...
def mask_iou(
    data_a: np.ndarray,
    offsets_a: np.ndarray,
    regions_a: np.ndarray,
    shift_a: Optional[np.ndarray],
    data_b: np.ndarray,
    offsets_b: np.ndarray,
    regions_b: np.ndarray,
    H: int,
    W: int,
) -> npt.NDArray[np.float32]: ...
def mask_rle(
    data: np.ndarray,
    offsets: np.ndarray,
    regions: np.ndarray,
    H: int,
    W: int,
) -> list[str]: ...
def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    class_ids: Optional[np.ndarray],
    iou_threshold: float,
    score_threshold: float,
    max_candidates: int,
    max_detections: int,
    class_agnostic: bool,
) -> npt.NDArray[np.int64]: ...
def overlay(
    image: np.ndarray,
    labels: np.ndarray,
    palette: np.ndarray,
    alpha: float,
    out: np.ndarray,
    skip: Optional[np.ndarray] = None,
) -> None: ...
def overlay_instances(
    image: np.ndarray,
    data: np.ndarray,
    offsets: np.ndarray,
    regions: np.ndarray,
    colors: np.ndarray,
    alpha: float,
    outline: bool,
    out: np.ndarray,
) -> None: ...
def paste_masks(
    masks: np.ndarray,
    boxes: np.ndarray,
    H: int,
    W: int,
    threshold: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...
def select_detections(
    boxes: np.ndarray,
    scores: np.ndarray,
    iou_threshold: float,
    score_threshold: float,
    max_candidates: int,
    max_detections: int,
    class_agnostic: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...
def set_num_threads(n: int) -> None: ...
def set_simd(enabled: bool) -> None: ...
def simd_name() -> str: ...
def simd_supported() -> bool: ...
def upsample_argmax(
    logits: np.ndarray,
    out_h: int,
    out_w: int,
    ay: float,
    by: float,
    ax: float,
    bx: float,
) -> np.ndarray: ...
