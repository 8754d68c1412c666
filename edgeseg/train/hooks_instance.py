"""What the instance kinds (single-stage, Mask R-CNN) share in training: instance datasets,
aligned augmentation, EMA, the warm-up + cosine/poly schedule, COCO-style validation (sharded
across processes), metadata with the deployment thresholds, and the loss-parts curve."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .. import defaults
from ..errors import EdgesegError
from ..geometry import LetterboxInfo
from ..meta import ModelMeta
from ..models import create_model
from .common import lr_at, open_datasets
from .ema import ModelEMA
from .hooks import TrainHooks
from .instance_dataset import InstanceTrainDataset, instance_collate
from .instance_eval import InstanceScores, score_instances, summarize_instances, use_cocoeval
from .plotting import plot_curves


def frame_detections(result: Dict[str, Any]) -> Dict[str, np.ndarray]:
    """A runtime post-processing result (``postprocess_instances`` / ``postprocess_maskrcnn``) as
    validation scores it: ``{"boxes" (K,4) float32, "scores" (K,), "classes" (K,) int64,
    "masks" (K,h,w) bool}``."""
    return {"boxes": result["boxes"], "scores": result["scores"], "classes": result["class_ids"].astype(np.int64),
            "masks": result["masks"].to_dense()}


def plot_instance_history(history: Sequence[dict], path: Union[str, Path]) -> Path:
    """Loss (total and parts) and val box/mask AP50 per epoch, as a PNG (written atomically)."""
    parts = [k[5:] for k in history[0] if k.startswith("loss_")] if history else []
    return plot_curves(history, path,
                       [("train_loss", "o-", {"color": "black", "ms": 3, "label": "total"})]
                       + [(f"loss_{part}", "-", {"lw": 1, "label": part}) for part in parts],
                       [("val_mask_ap50", "o-", "mask AP50"), ("val_box_ap50", "s--", "box AP50")],
                       loss_log=True, val_legend_loc="upper left")


class InstanceHooks(TrainHooks):
    """The shared half of the instance kinds' hooks. Subclasses set :attr:`parts` and define
    :meth:`train_step`, :meth:`mask_stride`, :meth:`head_meta` and a static :meth:`predict`."""

    best_key = "val_mask_ap50"
    best_name = "mask AP50"
    data_word = "annotations"

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        self._coco_gt: Optional[Dict[str, Any]] = None

    # ---------------------------------------------------------------------- per kind
    def mask_stride(self, model: torch.nn.Module) -> int:
        """The resolution divisor of the mask targets."""
        raise NotImplementedError

    def head_meta(self, model: torch.nn.Module) -> Dict[str, Any]:
        """The head's entries of ``meta.extra``."""
        raise NotImplementedError

    @staticmethod
    def predict(model: torch.nn.Module, images: torch.Tensor, letterboxes: Sequence[LetterboxInfo],
                score_threshold: float, iou_threshold: float, max_detections: int, mean: Sequence[float],
                std: Sequence[float]) -> List[Dict[str, np.ndarray]]:
        """Frame detections of letterboxed images, each placed as its LetterboxInfo says (see
        :func:`~.instance_eval.predict_instances`)."""
        raise NotImplementedError

    # ------------------------------------------------------------------------ shared
    def open_datasets(self) -> Tuple[Any, Any, List[str]]:
        from ..data import open_instance_dataset

        return open_datasets(open_instance_dataset, self.cfg)

    def build_model(self, classes: List[str]) -> torch.nn.Module:
        model = create_model(self.cfg.model, len(classes), **self.cfg.model_kwargs)
        if getattr(model, "task", None) != "instance":
            raise EdgesegError(f"model {self.cfg.model!r} is not an instance segmentation model; use e.g. yoloseg_n")
        return model

    def train_dataset(self, train_ds: Any, model: torch.nn.Module) -> Tuple[Any, Any]:
        cfg = self.cfg
        ds = InstanceTrainDataset(train_ds, cfg.input_size, cfg.seed, cfg.scale_range, cfg.hflip, cfg.color_jitter,
                                  mask_stride=self.mask_stride(model))
        return ds, instance_collate

    def make_ema(self, model: torch.nn.Module) -> Optional[ModelEMA]:
        return ModelEMA(model, self.cfg.ema_decay, self.cfg.ema_tau) if self.cfg.ema else None

    def lr_at(self, it: int, total: int) -> float:
        cfg = self.cfg
        return lr_at(it, total, cfg.lr, cfg.warmup_iters, cfg.schedule, cfg.min_lr_ratio, cfg.poly_power)

    def val_fields(self) -> Dict[str, Any]:
        return {"val_box_ap50": None, "val_mask_ap50": None}

    def prepare_validation(self, val_ds: Any) -> None:
        if use_cocoeval(self.cfg.evaluator):  # the val ground truth, read once for the whole run
            from ..eval.coco import coco_gt_from_dataset

            self._coco_gt = coco_gt_from_dataset(val_ds, self.cfg.max_val_samples)

    def validate_shard(self, model: torch.nn.Module, val_ds: Any, device: torch.device, workers: int,
                       indices: Sequence[int]) -> InstanceScores:
        cfg = self.cfg
        return score_instances(model, val_ds, cfg.input_size, cfg.val_batch_size, device, workers,
                               cfg.max_val_samples, cfg.val_score_threshold, cfg.iou_threshold, cfg.max_detections,
                               with_coco=use_cocoeval(cfg.evaluator), indices=indices)

    def finish_validation(self, partials: Sequence[InstanceScores], val_ds: Any) -> Dict[str, Any]:
        scores = partials[0]
        for p in partials[1:]:
            scores.merge(p)
        res = summarize_instances(scores, val_ds, use_cocoeval(self.cfg.evaluator), self._coco_gt, scores.images)
        return {"val_box_ap50": res["box_ap50"], "val_mask_ap50": res["mask_ap50"], "val_box_ap": res["box_ap"],
                "val_mask_ap": res["mask_ap"], "val_per_class_mask_ap50": res["per_class_mask_ap50"],
                "val_detections": res["detections"], "val_evaluator": res["evaluator"]}

    def meta(self, model: torch.nn.Module, train_ds: Any, rec: Dict[str, Any]) -> ModelMeta:
        cfg = self.cfg
        extra = {**self.head_meta(model), "score_threshold": cfg.score_threshold, "iou_threshold": cfg.iou_threshold,
                 "max_detections": cfg.max_detections, "epoch": rec["epoch"], "val_mask_ap50": rec["val_mask_ap50"],
                 "val_box_ap50": rec["val_box_ap50"], "val_mask_ap": rec.get("val_mask_ap"),
                 "val_box_ap": rec.get("val_box_ap"), "dataset": cfg.data}
        return ModelMeta(task="instance", classes=list(train_ds.classes), input_size=cfg.input_size, arch=cfg.model,
                         mean=defaults.MEAN_RGB, std=defaults.STD_RGB, output_stride=int(model.output_stride),
                         output_names=list(model.output_names), palette=list(getattr(train_ds, "palette", []) or []),
                         extra=extra)

    def epoch_message(self, rec: Dict[str, Any], improved: bool) -> str:
        msg = (f"epoch {rec['epoch']}/{self.cfg.epochs}: loss {rec['train_loss']:.4f} ("
               + ", ".join(f"{p} {rec[f'loss_{p}']:.3f}" for p in self.parts) + ")")
        score = rec["val_mask_ap50"]
        if score is not None:
            msg += f", val mask AP50 {score:.4f}, box AP50 {rec['val_box_ap50']:.4f}"
            if rec.get("val_mask_ap") is not None:
                msg += f", mask AP {rec['val_mask_ap']:.4f}, box AP {rec['val_box_ap']:.4f}"
            msg += " (best)" if improved else ""
        return msg

    def plot(self, history: Sequence[dict], path: Path) -> Any:
        return plot_instance_history(history, path)
