"""`edgeseg train`: train a semantic, single-stage instance or Mask R-CNN model from scratch."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .. import defaults
from ..errors import EdgesegError
from ._common import _size



def cmd_train(args: argparse.Namespace) -> int:
    try:
        if args.task == "instance":
            from ..train.instance_trainer import InstanceTrainConfig as Config
            from ..train.instance_trainer import train_instance as train
        else:
            from ..train.trainer import TrainConfig as Config
            from ..train.trainer import train
    except ImportError as e:
        raise EdgesegError(f"training needs PyTorch ({e}); install with: pip install 'edgeseg[train]'") from None
    given = dict(
        model=args.model or defaults.TRAIN_MODEL[args.task], data=args.data, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer, input_size=args.imgsz, out_dir=args.out,
        seed=args.seed, device=args.device, resume=args.resume, init_from=args.init, workers=args.workers,
        max_iters_per_epoch=args.iters_per_epoch, max_val_samples=args.val_limit, num_threads=args.threads,
    )
    if args.task == "semantic":
        given["loss"] = args.loss or "ce+lovasz"
    elif args.loss:
        raise EdgesegError("--loss applies to semantic training; instance models train with their fixed "
                           "classification + box IoU/L1 + in-box mask BCE/Dice losses")
    if args.no_sync_bn:
        given["sync_bn"] = False
    cfg = Config(**{k: v for k, v in given.items() if v is not None})
    best = train(cfg)
    from ..train.distributed import from_env

    if from_env().is_main:  # under torchrun, rank 0 reports
        print(f"best checkpoint: {best}")
        print(f"training curve:  {Path(args.out) / 'curve.png'}")
    return 0


def add_parser(sub: Any, fmt: Any) -> None:
    """Register the subcommand on ``sub``."""
    p = sub.add_parser("train", help="train a segmentation model from scratch", formatter_class=fmt,
                       description="Train a model; writes best/ and last/ checkpoints, history.json and curve.png to --out.",
                       epilog="Several processes (data parallel): torchrun --nproc-per-node N -m edgeseg train ... "
                              "(one process per GPU with NCCL, or CPU processes with gloo); --batch-size is per "
                              "process, only rank 0 writes files, and a group restarted by torchrun "
                              "--max-restarts resumes from the last saved epoch.")
    p.add_argument("--task", default="semantic", choices=["semantic", "instance"],
                   help="semantic: a class per pixel; instance: a mask per object")
    p.add_argument("--model", default=None,
                   help="semantic: fcn, liteseg_t (default), liteseg_s, liteseg_m; "
                        "instance: yoloseg_n (default), yoloseg_s, maskrcnn")
    p.add_argument("--data", default="synthetic",
                   help="synthetic | synthetic:N | voc:PATH | cityscapes:PATH (semantic) | coco:PATH (instance)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=8, help="images per step (under torchrun: per process)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: 4e-3 for adamw)")
    p.add_argument("--optimizer", default="adamw", choices=["adamw", "sgd"])
    p.add_argument("--loss", default=None, help="semantic only: ce | ce+jaccard | ce+lovasz (default) | lovasz ...")
    p.add_argument("--imgsz", type=_size, default=None,
                   help="network input N or HxW (default 256; semantic: the training crop)")
    p.add_argument("--iters-per-epoch", type=int, default=None, help="cap iterations per epoch")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (under torchrun: cuda:LOCAL_RANK)")
    p.add_argument("--workers", type=int, default=None, help="data loader processes (default: min(4, cores-1))")
    p.add_argument("--val-limit", type=int, default=None, help="validate on at most N images")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads per process (default: the cores, shared among torchrun's processes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from --out/last")
    p.add_argument("--init", default=None, metavar="CKPT",
                   help="fine-tune: start from this checkpoint's weights (same model and classes)")
    p.add_argument("--no-sync-bn", action="store_true",
                   help="under torchrun on CUDA, keep per-process BatchNorm instead of SyncBatchNorm (CPU "
                        "processes always keep it: SyncBatchNorm cannot run on CPU)")
    p.add_argument("--out", default="runs/train", help="output directory")
    p.set_defaults(func=cmd_train)
