"""What the tools/train_*.py scripts share: installing a finished run into tools/zoo/ (and edgeseg/assets/)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]


def install_run(name: str, out: Path, best: Path, report: dict[str, Any], recipe: Optional[dict[str, Any]],
                onnx_path: Optional[Path] = None, asset: Optional[str] = None) -> Path:
    """Copy a run into ``tools/zoo/NAME/``: eval.json always; when ``recipe`` is given (the run was
    trained here) also history.json, curve.png, recipe.json and the checkpoint; ``onnx_path`` is
    copied to ``edgeseg/assets/ASSET`` when ``asset`` is given. Returns the zoo folder."""
    zoo = ROOT / "tools" / "zoo" / name
    zoo.mkdir(parents=True, exist_ok=True)
    if recipe is not None:
        for fname in ("history.json", "curve.png"):
            if (out / fname).exists():
                shutil.copy2(out / fname, zoo / fname)
        (zoo / "recipe.json").write_text(json.dumps(recipe, indent=2, default=str) + "\n")
        ckpt = zoo / "checkpoint"
        ckpt.mkdir(exist_ok=True)
        for f in Path(best).iterdir():
            if f.is_file():
                shutil.copy2(f, ckpt / f.name)
                (ckpt / f.name).chmod(0o644)
    (zoo / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
    if asset is not None and onnx_path is not None:
        dst = ROOT / "edgeseg" / "assets" / asset
        shutil.copy2(onnx_path, dst)
        dst.chmod(0o644)
        print(f"installed {dst} ({dst.stat().st_size / 1e6:.2f} MB)")
    print(f"installed {zoo}/")
    return zoo
