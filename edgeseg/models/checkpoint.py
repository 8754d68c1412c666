"""Checkpoints: ``model.safetensors`` + ``config.json`` in a directory. Never pickles.

config.json::

    {"format": "edgeseg-checkpoint", "version": 1,
     "meta": ModelMeta.to_dict(),
     "model": {"name": "liteseg_t", "num_classes": 6, "kwargs": {...}},
     "extra": {...}}
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Optional, Union

import torch
from torch import nn

from ..errors import ModelError
from ..meta import ModelMeta
from .registry import create_model, is_model, list_models

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT = "edgeseg-checkpoint"
VERSION = 1

PathLike = Union[str, "os.PathLike[str]"]


def _atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` on a temp file next to ``path``, then rename it into place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _model_cfg(model: nn.Module, model_cfg: Optional[dict]) -> dict:
    cfg = model_cfg if model_cfg is not None else getattr(model, "edgeseg_cfg", None)
    if not isinstance(cfg, dict) or "name" not in cfg:
        raise ModelError("save_checkpoint needs model_cfg={'name': ..., 'kwargs': {...}} "
                         "(or a model built with edgeseg.models.create_model)")
    name = str(cfg["name"])
    if not is_model(name):
        raise ModelError(f"model_cfg names unknown model {name!r}; valid names: {', '.join(list_models())}")
    kwargs = dict(cfg.get("kwargs") or {})
    num_classes = cfg.get("num_classes", kwargs.pop("num_classes", None))
    kwargs.pop("num_classes", None)
    if num_classes is None:
        num_classes = getattr(model, "num_classes", None)
    out = {"name": name, "kwargs": kwargs}
    if num_classes is not None:
        out["num_classes"] = int(num_classes)
    return out


def save_checkpoint(directory: PathLike, model: nn.Module, meta: ModelMeta,
                    model_cfg: Optional[dict] = None, extra: Optional[dict] = None) -> Path:
    """Write ``directory/model.safetensors`` and ``directory/config.json`` (each atomically).

    ``model_cfg`` is ``{"name": registry name, "kwargs": create_model kwargs}`` (optionally
    ``"num_classes"``); ``None`` uses the record left by :func:`create_model`. Returns the directory.
    """
    from safetensors.torch import save_file

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    cfg = _model_cfg(model, model_cfg)
    cfg.setdefault("num_classes", meta.num_classes)
    if cfg["num_classes"] != meta.num_classes:
        raise ModelError(f"model has {cfg['num_classes']} classes but meta lists {meta.num_classes}")
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    config = {"format": FORMAT, "version": VERSION, "meta": meta.to_dict(), "model": cfg,
              "extra": dict(extra or {})}
    text = json.dumps(config, indent=2, sort_keys=True)  # fails early on non-JSON extras
    _atomic_write(d / WEIGHTS_FILE, lambda p: save_file(state, p, metadata={"format": "pt"}))
    _atomic_write(d / CONFIG_FILE, lambda p: Path(p).write_text(text + "\n"))
    return d


def read_config(directory: PathLike) -> dict:
    """Read and validate ``config.json`` of a checkpoint directory (no torch work)."""
    d = _resolve_dir(directory)
    path = d / CONFIG_FILE
    try:
        cfg = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ModelError(f"{path} is not valid JSON ({e}); re-save the checkpoint") from None
    except OSError as e:
        raise ModelError(f"cannot read {path} ({e.strerror})") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("model"), dict) or "meta" not in cfg:
        raise ModelError(f"{path} lacks the 'meta' and 'model' sections of an edgeseg checkpoint")
    if not isinstance(cfg["model"].get("name"), str) or not isinstance(cfg["model"].get("kwargs", {}), dict):
        raise ModelError(f"{path}: 'model' must be {{'name': str, 'kwargs': {{...}}}}")
    return cfg


def _resolve_dir(path: PathLike) -> Path:
    p = Path(path)
    if p.is_file() and p.name in (WEIGHTS_FILE, CONFIG_FILE):
        p = p.parent
    if not p.is_dir():
        raise ModelError(f"checkpoint directory {p} does not exist; pass the folder that holds "
                         f"{WEIGHTS_FILE} and {CONFIG_FILE} (e.g. runs/x/best)")
    missing = [f for f in (WEIGHTS_FILE, CONFIG_FILE) if not (p / f).is_file()]
    if missing:
        raise ModelError(f"checkpoint directory {p} lacks {', '.join(missing)}; "
                         "it must be written by edgeseg (save_checkpoint / edgeseg train)")
    return p


def _check_state(path: Path, model: nn.Module, state: dict) -> None:
    want = model.state_dict()
    missing = sorted(set(want) - set(state))
    unexpected = sorted(set(state) - set(want))
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(want[k].shape)}"
              for k in sorted(set(want) & set(state)) if state[k].shape != want[k].shape]
    problems = []
    if missing:
        problems.append(f"missing keys {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
    if shapes:
        problems.append(f"shape mismatch {shapes[:5]}{' ...' if len(shapes) > 5 else ''}")
    if problems:
        raise ModelError(f"weights in {path} do not match the model in config.json: "
                         + "; ".join(problems) + ". The two files come from different models; re-save it")


def load_checkpoint(path: PathLike, device: Union[str, torch.device] = "cpu"):
    """Load a checkpoint directory -> ``(model in eval mode, ModelMeta, config dict)``.

    Raises :class:`~edgeseg.errors.ModelError` if files are missing, config.json is invalid, the
    model name is unknown, or the weights do not match the model (missing/unexpected keys, shapes).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    d = _resolve_dir(path)
    cfg = read_config(d)
    meta = ModelMeta.from_dict(cfg["meta"])
    mc = cfg["model"]
    if not is_model(mc["name"]):
        raise ModelError(f"{d / CONFIG_FILE} names unknown model {mc['name']!r}; valid names: "
                         f"{', '.join(list_models())} (a newer edgeseg may know it)")
    try:
        model = create_model(mc["name"], int(mc.get("num_classes", meta.num_classes)), **mc.get("kwargs", {}))
    except TypeError as e:
        raise ModelError(f"{d / CONFIG_FILE}: bad kwargs for model {mc['name']!r} ({e})") from None
    wpath = d / WEIGHTS_FILE
    try:
        state = load_file(str(wpath))
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelError(f"{wpath} is not a readable safetensors file ({e}); re-save the checkpoint") from None
    _check_state(wpath, model, state)
    model.load_state_dict(state, strict=True)
    return model.to(device).eval(), meta, cfg
