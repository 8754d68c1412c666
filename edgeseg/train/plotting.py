"""Training curves: loss and val mIoU per epoch, as a PNG (matplotlib Agg, no display needed)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence, Union

from .._io import atomic_path


def plot_history(history: Sequence[dict], path: Union[str, "os.PathLike[str]"]) -> Path:
    """Plot ``history`` (dicts with ``epoch``, ``train_loss`` and optionally ``val_miou`` /
    ``val_pixel_acc``) to ``path`` (written atomically). Returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    fig = Figure(figsize=(9, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax_loss, ax_iou = fig.subplots(1, 2)
    ep = [h["epoch"] for h in history]
    ax_loss.plot(ep, [h["train_loss"] for h in history], "o-", color="tab:red", ms=3)
    ax_loss.set(xlabel="epoch", ylabel="train loss", title="loss")
    ax_loss.grid(alpha=0.3)
    val = [(h["epoch"], h.get("val_miou"), h.get("val_pixel_acc")) for h in history
           if h.get("val_miou") is not None]
    if val:
        ax_iou.plot([v[0] for v in val], [v[1] for v in val], "o-", ms=3, label="val mIoU")
        ax_iou.plot([v[0] for v in val], [v[2] for v in val], "s--", ms=3, label="val pixel acc")
        ax_iou.legend(loc="lower right")
    ax_iou.set(xlabel="epoch", title="validation", ylim=(0, 1))
    ax_iou.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
