"""Training curves: loss and validation scores per epoch, as a PNG (matplotlib Agg, no display needed)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Sequence, Tuple, Union

from .._io import atomic_path

PathLike = Union[str, "os.PathLike[str]"]


def plot_curves(history: Sequence[dict], path: PathLike,
                loss_lines: Sequence[Tuple[str, str, Dict[str, Any]]],
                val_lines: Sequence[Tuple[str, str, str]], loss_log: bool = False,
                val_legend_loc: str = "lower right") -> Path:
    """Two panels from ``history`` (dicts with ``epoch``) to ``path`` (written atomically).

    Left, "loss": per ``(key, fmt, plot kwargs)`` of ``loss_lines`` a curve of ``h[key]`` over the
    epochs, drawn where every record has ``key`` (a legend when the curves have labels; log scale with
    ``loss_log``). Right, "validation" in [0, 1]: per ``(key, fmt, label)`` of ``val_lines`` a curve
    over the epochs where the first key is not None. Returns the path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    fig = Figure(figsize=(9, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax_loss, ax_val = fig.subplots(1, 2)
    ep = [h["epoch"] for h in history]
    for key, fmt, kw in loss_lines:
        if all(key in h for h in history):
            ax_loss.plot(ep, [h[key] for h in history], fmt, **kw)
    ax_loss.set(xlabel="epoch", ylabel="train loss", title="loss", **({"yscale": "log"} if loss_log else {}))
    if any("label" in kw for _, _, kw in loss_lines):
        ax_loss.legend(loc="upper right", fontsize=7)
    ax_loss.grid(alpha=0.3)
    val = [h for h in history if h.get(val_lines[0][0]) is not None] if val_lines else []
    if val:
        for key, fmt, label in val_lines:
            ax_val.plot([h["epoch"] for h in val], [h.get(key) for h in val], fmt, ms=3, label=label)
        ax_val.legend(loc=val_legend_loc)
    ax_val.set(xlabel="epoch", title="validation", ylim=(0, 1))
    ax_val.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def plot_history(history: Sequence[dict], path: PathLike) -> Path:
    """Plot ``history`` (dicts with ``epoch``, ``train_loss`` and optionally ``val_miou`` /
    ``val_pixel_acc``) to ``path`` (written atomically). Returns the path."""
    return plot_curves(history, path, [("train_loss", "o-", {"color": "tab:red", "ms": 3})],
                       [("val_miou", "o-", "val mIoU"), ("val_pixel_acc", "s--", "val pixel acc")])

