"""A constant-velocity Kalman filter on boxes, batched over tracks (numpy).

State per track: ``cx, cy, a, h, vx, vy, va, vh`` (centre, aspect ratio w / h, height and their
velocities); measurement: ``cx, cy, a, h``. Noise scales with the box height, as in SORT /
DeepSORT / ByteTrack (position std 1/20 of the height, velocity std 1/160 per frame).
"""
from __future__ import annotations

import numpy as np

STD_POSITION = 1.0 / 20
STD_VELOCITY = 1.0 / 160

_F = np.eye(8)
_F[:4, 4:] = np.eye(4)  # x' = x + v (one frame)


def xyxy_to_xyah(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) xyxy -> (N, 4) centre x, centre y, aspect w / h, height (float64)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    w = b[:, 2] - b[:, 0]
    h = np.maximum(b[:, 3] - b[:, 1], 1e-6)
    return np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, w / h, h], 1)


def xyah_to_xyxy(s: np.ndarray) -> np.ndarray:
    """(N, >= 4) states -> (N, 4) xyxy boxes (float64)."""
    cx, cy, a, h = s[:, 0], s[:, 1], s[:, 2], s[:, 3]
    w = a * h
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)


def initiate(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (N, 8) and covariance (N, 8, 8) of new tracks from their first boxes (xyxy)."""
    z = xyxy_to_xyah(boxes)
    mean = np.concatenate([z, np.zeros_like(z)], 1)
    h = z[:, 3:4]
    std = np.concatenate([2 * STD_POSITION * h, 2 * STD_POSITION * h, np.full_like(h, 1e-2),
                          2 * STD_POSITION * h, 10 * STD_VELOCITY * h, 10 * STD_VELOCITY * h,
                          np.full_like(h, 1e-5), 10 * STD_VELOCITY * h], 1)
    cov = np.zeros((len(z), 8, 8))
    idx = np.arange(8)
    cov[:, idx, idx] = std ** 2
    return mean, cov


def predict(mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One frame ahead: new (mean, cov) arrays."""
    h = mean[:, 3:4]
    std = np.concatenate([STD_POSITION * h, STD_POSITION * h, np.full_like(h, 1e-2), STD_POSITION * h,
                          STD_VELOCITY * h, STD_VELOCITY * h, np.full_like(h, 1e-5), STD_VELOCITY * h], 1)
    mean = mean @ _F.T
    cov = _F @ cov @ _F.T
    idx = np.arange(8)
    cov[:, idx, idx] += std ** 2
    return mean, cov


def update(mean: np.ndarray, cov: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correct (mean, cov) of N tracks with their N measured boxes (xyxy)."""
    z = xyxy_to_xyah(boxes)
    h = mean[:, 3:4]
    std = np.concatenate([STD_POSITION * h, STD_POSITION * h, np.full_like(h, 1e-1), STD_POSITION * h], 1)
    s = cov[:, :4, :4].copy()  # H P H^T
    idx = np.arange(4)
    s[:, idx, idx] += std ** 2
    pht = cov[:, :, :4]  # P H^T
    gain = np.linalg.solve(s, np.transpose(pht, (0, 2, 1))).transpose(0, 2, 1)  # P H^T S^-1
    mean = mean + np.einsum("nij,nj->ni", gain, z - mean[:, :4])
    cov = cov - gain @ s @ np.transpose(gain, (0, 2, 1))
    return mean, cov
