"""A local camera: an index (0, 1, ...) or a V4L2 device path (``/dev/video0``); live."""
from __future__ import annotations

from typing import Any

from ...errors import SourceError
from .live import LIVE_OPTIONS, VideoCaptureSource, _open_capture
from .registry import register_source


class CameraSource(VideoCaptureSource):
    """A local camera: an index (0, 1, ...) or a V4L2 device path (``/dev/video0``).

    ``width``/``height``/``fps`` are requests; the driver may pick the nearest mode it supports
    (the actual values are read back into :attr:`frame_size` / :attr:`fps`).
    """

    def __init__(self, device: int | str, width: int | None = None, height: int | None = None,
                 fps: float | None = None, **live_options: Any) -> None:
        super().__init__(**live_options)
        self.device = int(device) if isinstance(device, str) and device.isdigit() else device
        self.request = (width, height, fps)
        self.fps = fps
        self.frame_size: tuple[int, int] | None = None
        self._cap: Any = None

    def describe(self) -> str:
        return f"camera {self.device}"

    def _open(self) -> None:
        import os

        import cv2

        if isinstance(self.device, str) and not os.path.exists(self.device):
            raise SourceError(f"camera {self.device} does not exist; list cameras with `ls /dev/video*` "
                              "or `v4l2-ctl --list-devices`, or use --camera N with an index")
        cap = _open_capture(self.device)
        if cap is None:
            raise SourceError(
                f"camera {self.device} cannot be opened (no such camera, no permission, or another "
                "program is using it). Try another index (--camera 1), list cameras with "
                "`ls /dev/video*` or `v4l2-ctl --list-devices` (Linux), check that your user is in "
                "the 'video' group, or run without a camera: --source video.mp4 | rtsp://... | synthetic")
        w, h, fps = self.request
        if w:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, int(w))
        if h:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, int(h))
        if fps:
            cap.set(cv2.CAP_PROP_FPS, float(fps))
        got_fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(got_fps) if got_fps and got_fps > 0 else self.fps
        self.frame_size = (int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)))
        self._cap = cap


@register_source("camera", priority=10, live=True, options=LIVE_OPTIONS + ("width", "height", "fps"),
                 help="a camera index (0, 1, ...) or a V4L2 device path /dev/videoN")
def _open_camera(spec: Any, **options: Any) -> CameraSource | None:
    if isinstance(spec, int) and not isinstance(spec, bool):
        return CameraSource(spec, **options)
    if isinstance(spec, str) and spec.startswith("/dev/video"):
        return CameraSource(spec, **options)
    return None

