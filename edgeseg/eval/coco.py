"""COCO-style instance evaluation through pycocotools' COCOeval (numpy + pycocotools; no torch).

    gt = coco_gt_from_dataset(val_set)                  # COCO json dict, RLE masks, iscrowd
    dets = detections_to_coco(image_id, masks, scores, class_ids, val_set.cat_ids)
    evaluate_coco(gt, dets)  # {"segm": {"AP": .., "AP50": .., ...}, "bbox": {...}}

Detections use the standard COCO results format: ``image_id``, ``category_id`` (the dataset's
category id, not the contiguous class id), ``score``, ``bbox`` [x, y, w, h] and
``segmentation`` (RLE). Following detectron2, "segm" evaluation drops the detections' boxes so
that pycocotools takes each detection's area from its mask, and "bbox" evaluation drops the
masks.
"""
from __future__ import annotations

import contextlib
import copy
import io
import os
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from ..errors import ArrayError, EdgesegError, InputFileError

PathLike = Union[str, "os.PathLike[str]"]

#: Names of COCOeval.stats, in order.
STAT_NAMES: tuple[str, ...] = ("AP", "AP50", "AP75", "APs", "APm", "APl",
                               "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
IOU_TYPES = ("segm", "bbox")


def _pycocotools():
    try:
        from pycocotools import mask as mask_util
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise EdgesegError("COCO evaluation needs pycocotools: pip install pycocotools (it is "
                           "part of edgeseg's train and dev extras: pip install 'edgeseg[train]')") from None
    return COCO, COCOeval, mask_util


def _rle(mask: np.ndarray) -> dict[str, Any]:
    """Compressed COCO RLE with str counts (JSON-ready)."""
    _, _, mask_util = _pycocotools()
    r = mask_util.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {"size": [int(v) for v in r["size"]], "counts": r["counts"].decode("ascii")}


def coco_gt_from_dataset(dataset: Any, n: Optional[int] = None) -> dict[str, Any]:
    """A COCO instances json dict built in memory from the first ``n`` samples (all if None).

    ``dataset`` is an instance dataset (``sample(i) -> InstanceSample``, ``classes``,
    ``cat_ids``). Masks are stored as compressed RLE, ``area`` is the mask area, ``bbox`` the
    tight box, crowd regions keep ``iscrowd = 1``. Images without instances are included, so
    detections on them count as false positives.
    """
    total = len(dataset)
    n = total if n is None else min(int(n), total)
    cat_ids = tuple(getattr(dataset, "cat_ids", range(1, len(dataset.classes) + 1)))
    if len(cat_ids) != len(dataset.classes):
        raise EdgesegError(f"dataset has {len(dataset.classes)} classes but {len(cat_ids)} "
                           "cat_ids; they must correspond one to one")
    images, anns = [], []
    seen: set[int] = set()
    for i in range(n):
        s = dataset.sample(i)
        iid = int(s.image_id)
        if iid in seen:
            raise EdgesegError(f"sample {i} repeats image id {iid}; COCO needs unique image ids")
        seen.add(iid)
        h, w = s.hw
        images.append({"id": iid, "height": h, "width": w, "file_name": f"{iid}.jpg"})
        for m, c, b, crowd in zip(s.masks, s.class_ids, s.boxes, s.iscrowd):
            x0, y0, x1, y1 = (float(v) for v in b)
            anns.append({"id": len(anns) + 1,  # COCOeval treats id 0 as "unmatched"
                         "image_id": iid, "category_id": int(cat_ids[int(c)]),
                         "segmentation": _rle(m), "area": float(m.sum()),
                         "bbox": [x0, y0, x1 - x0, y1 - y0], "iscrowd": int(bool(crowd))})
    cats = [{"id": int(cid), "name": str(name)} for cid, name in zip(cat_ids, dataset.classes)]
    return {"info": {"description": "edgeseg ground truth"}, "images": images,
            "annotations": anns, "categories": cats}


def detections_to_coco(image_id: int, masks: Optional[np.ndarray], scores: np.ndarray,
                       class_ids: np.ndarray, cat_ids: Sequence[int],
                       boxes: Optional[np.ndarray] = None) -> list[dict[str, Any]]:
    """COCO results for one image: bool NxHxW ``masks`` (or None for boxes only), ``scores`` N,
    contiguous ``class_ids`` N mapped through ``cat_ids``, optional xyxy ``boxes`` Nx4 (the
    masks' tight boxes when omitted)."""
    scores = np.asarray(scores, np.float64).reshape(-1)
    class_ids = np.asarray(class_ids).reshape(-1)
    n = scores.size
    if class_ids.size != n:
        raise ArrayError(f"detections_to_coco: class_ids must have {n} entries like scores, "
                         f"got {class_ids.size}")
    if masks is not None:
        masks = np.asarray(masks)
        if masks.dtype != bool or masks.ndim != 3 or masks.shape[0] != n:
            raise ArrayError(f"detections_to_coco: masks must be bool ({n}, H, W), got "
                             f"{masks.dtype} {masks.shape}")
    if boxes is None:
        if masks is None:
            raise ArrayError("detections_to_coco: give masks, boxes or both")
        from ..data.instances import masks_to_boxes

        boxes = masks_to_boxes(masks)
    boxes = np.asarray(boxes, np.float64)
    if boxes.shape != (n, 4):
        raise ArrayError(f"detections_to_coco: boxes must be ({n}, 4) xyxy, got {boxes.shape}")
    if n and (class_ids.min() < 0 or class_ids.max() >= len(cat_ids)):
        raise ArrayError(f"detections_to_coco: class ids must be in 0..{len(cat_ids) - 1}, got "
                         f"{int(class_ids.min())}..{int(class_ids.max())}")
    out = []
    for k in range(n):
        x0, y0, x1, y1 = boxes[k].tolist()
        d = {"image_id": int(image_id), "category_id": int(cat_ids[int(class_ids[k])]),
             "score": float(scores[k]), "bbox": [x0, y0, x1 - x0, y1 - y0]}
        if masks is not None:
            d["segmentation"] = _rle(masks[k])
        out.append(d)
    return out


def _load_gt(gt: Union[dict, PathLike]) -> dict[str, Any]:
    if not isinstance(gt, dict):
        from ..data.coco import load_coco_json

        path = Path(gt)
        if not path.is_file():
            raise InputFileError(f"COCO ground truth file {path} not found")
        return load_coco_json(path)  # DataError (an EdgesegError) for bad JSON or a file that is not COCO
    for key in ("images", "annotations", "categories"):
        if key not in gt:
            raise EdgesegError(f"COCO ground truth has no {key!r}; expected a COCO instances "
                               "dict (see coco_gt_from_dataset)")
    return gt


def _check_detections(dets: Sequence[dict], img_ids: set, cat_ids: set,
                      iou_types: Sequence[str]) -> None:
    for k, d in enumerate(dets):
        if not isinstance(d, dict):
            raise EdgesegError(f"detection {k} is a {type(d).__name__}; expected a dict in COCO "
                               "results format")
        need = ["image_id", "category_id", "score"]
        need += ["segmentation"] if "segm" in iou_types else []
        need += ["bbox"] if "bbox" in iou_types else []
        missing = [key for key in need if key not in d]
        if missing:
            raise EdgesegError(f"detection {k} lacks {missing}; COCO results need image_id, "
                               "category_id, score, bbox [x, y, w, h] and segmentation (RLE)")
        if d["image_id"] not in img_ids:
            raise EdgesegError(f"detection {k} has image_id {d['image_id']}, which is not in the "
                               "ground truth")
        if d["category_id"] not in cat_ids:
            raise EdgesegError(f"detection {k} has category_id {d['category_id']}, not one of "
                               f"the ground truth's {sorted(cat_ids)} (pass the dataset's "
                               "cat_ids, not contiguous class ids)")


def _prepare(dets: Sequence[dict], iou_type: str, mask_util) -> list[dict[str, Any]]:
    out = []
    for d in dets:
        d = dict(d)
        if iou_type == "segm":
            d.pop("bbox", None)
            seg = d["segmentation"]
            if isinstance(seg, dict) and isinstance(seg.get("counts"), list):
                seg = mask_util.frPyObjects(seg, *seg["size"])
            d["segmentation"] = seg
        else:
            d.pop("segmentation", None)
        out.append(d)
    return out


def evaluate_coco(gt: Union[dict, PathLike], detections: Sequence[dict],
                  iou_types: Sequence[str] = IOU_TYPES, verbose: bool = False
                  ) -> dict[str, dict[str, float]]:
    """Evaluate COCO-format ``detections`` against ``gt`` (a COCO dict or json path) with
    pycocotools' COCOeval.

    Returns ``{iou_type: {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100",
    "ARs", "ARm", "ARl"}}`` as fractions in [0, 1]; -1 where the ground truth has no object in
    that size range (pycocotools' convention). No detections give 0 AP, not an error.
    pycocotools' printing is silenced unless ``verbose``.
    """
    COCO, COCOeval, mask_util = _pycocotools()
    iou_types = tuple(iou_types)
    bad = [t for t in iou_types if t not in IOU_TYPES]
    if bad or not iou_types:
        raise EdgesegError(f"iou_types must be a non-empty subset of {IOU_TYPES}, got "
                           f"{iou_types}")
    doc = _load_gt(gt)
    quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    results: dict[str, dict[str, float]] = {}
    with quiet:
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(doc)
        coco_gt.createIndex()
        _check_detections(detections, set(coco_gt.getImgIds()), set(coco_gt.getCatIds()),
                          iou_types)
        for t in iou_types:
            if detections:
                coco_dt = coco_gt.loadRes(_prepare(detections, t, mask_util))
            else:  # loadRes cannot take an empty list; an empty result set scores 0
                coco_dt = COCO()
                coco_dt.dataset = {"images": list(doc["images"]),
                                   "categories": copy.deepcopy(doc["categories"]),
                                   "annotations": []}
                coco_dt.createIndex()
            ev = COCOeval(coco_gt, coco_dt, iouType=t)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            results[t] = {name: float(v) for name, v in zip(STAT_NAMES, ev.stats)}
    return results


def evaluate_predictor(predictor: Any, dataset: Any, n: Optional[int] = None,
                       progress: bool = False) -> dict[str, Any]:
    """Run an instance predictor over the first ``n`` samples of ``dataset`` (an
    :func:`~edgeseg.data.open_instance_dataset` dataset) and score it with COCOeval.

    Returns ``{"images", "detections", "segm": {...}, "bbox": {...}, "ms_per_image_p50"}``. The
    predictor's thresholds are used as they are: for AP, lower its score threshold first
    (``defaults.EVAL_SCORE_THRESHOLD``), since AP integrates over all scores.
    """
    from .._progress import track

    n = len(dataset) if n is None else min(int(n), len(dataset))
    gt = coco_gt_from_dataset(dataset, n)
    cat_ids = getattr(dataset, "cat_ids", None)
    dets: list[dict[str, Any]] = []
    totals: list[float] = []
    for i in track(range(n), desc="eval", enabled=progress):
        sample = dataset.sample(i)
        result = predictor(sample.image)
        totals.append(sum(result.timings.values()))
        dets.extend(result.to_coco(image_id=sample.image_id, category_ids=cat_ids))
    return {"images": n, "detections": len(dets), **evaluate_coco(gt, dets),
            "ms_per_image_p50": round(float(np.median(totals)), 2) if totals else None}


__all__ = ["coco_gt_from_dataset", "detections_to_coco", "evaluate_coco", "evaluate_predictor",
           "STAT_NAMES", "IOU_TYPES"]
