"""Distributed training under torchrun with 2 gloo processes on the CPU: equal weights on every
rank, disjoint shards that cover the epoch, 2 x batch b == 1 x batch 2b, only rank 0 writes, and a
killed worker restarted by ``--max-restarts`` resumes from the last checkpoint."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch.distributed.run")
if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 300  # per torchrun launch; a launch takes ~10-30 s on a busy 2-core machine

#: Tiny runs on synthetic data: (TrainConfig / InstanceTrainConfig fields) per model kind.
TINY = {
    "semantic": dict(model="liteseg_t", data="synthetic:12", val_data="synthetic:4", data_kwargs={"size": 64},
                     input_size=(64, 64), loss="ce"),
    "yoloseg": dict(model="yoloseg_n", data="synthetic:12", val_data="synthetic:4", data_kwargs={"size": 64},
                    input_size=(64, 64)),
    "maskrcnn": dict(model="maskrcnn", data="synthetic:12", val_data="synthetic:4", data_kwargs={"size": 64},
                     input_size=(64, 64)),
}

#: The exactness run: a semantic model with BatchNorm frozen (its batch statistics are per process
#: on the CPU) trains 2 epochs x 2 SGD steps at ``batch`` per process, on crops without ignored
#: pixels (each process's loss is the mean over its own labelled pixels, so the ranks' average
#: equals the global mean only when they hold equally many).
EXACT = textwrap.dedent('''
    import torch
    from edgeseg.models import create_model
    from edgeseg.train.hooks import hooks_for_model
    from edgeseg.train.loop import TrainLoop
    from edgeseg.train.trainer import TrainConfig


    def flat(model):
        return torch.cat([p.detach().flatten() for p in model.parameters()]).double()


    class FrozenBN(TrainLoop):
        def begin_epoch(self, epoch):
            super().begin_epoch(epoch)
            for m in self.model.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.eval()


    def exact_run(ctx, out, batch):
        cfg = TrainConfig(model="liteseg_t", data="synthetic:16", val_data="synthetic:2", data_kwargs={"size": 64},
                          input_size=(64, 64), scale_range=(1.0, 1.0), loss="ce", epochs=2, batch_size=batch,
                          max_iters_per_epoch=2, warmup_iters=1, optimizer="sgd", lr=0.05, workers=0, seed=5,
                          out_dir=f"{out}/exact", progress=False, num_threads=1)
        loop = FrozenBN(cfg, hooks_for_model(create_model(cfg.model, 1))(cfg), ctx=ctx).setup()
        losses = [loop.train_epoch(e)["train_loss"] for e in (0, 1)]
        return {"losses": losses, "weights": flat(loop.model).tolist(), "steps": loop.global_iter}
''')

#: Run under torchrun. Per kind in argv[2]: one epoch of 2 steps through the shared loop; every rank
#: reports its weights before/after and its shards of epochs 0 and 1. Then, if argv[3] is a batch
#: size, the exactness run. Rank 0 saves the gathered reports.
WORKER = EXACT + textwrap.dedent('''
    import json, sys
    import torch.distributed as dist
    from edgeseg.train import distributed as D
    from edgeseg.train.instance_trainer import InstanceTrainConfig

    out, kinds, batch = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
    ctx = D.from_env()
    dist.init_process_group("gloo")


    def gathered(obj):
        got = [None] * ctx.world
        dist.all_gather_object(got, obj)
        return got


    reports = {}
    for kind, fields in kinds.items():
        config = TrainConfig if kind == "semantic" else InstanceTrainConfig
        cfg = config(**fields, epochs=1, batch_size=2, max_iters_per_epoch=2, warmup_iters=1, workers=0, seed=3,
                     out_dir=f"{out}/{kind}", progress=False, num_threads=1)
        loop = TrainLoop(cfg, hooks_for_model(create_model(cfg.model, 1))(cfg), ctx=ctx).setup()
        before = flat(loop.model)
        shards = []
        for epoch in (0, 1):
            loop.sampler.set_epoch(epoch)
            shards.append(list(loop.sampler))
        loop.train_epoch(0)
        after = flat(loop.model)
        step = max(1, len(after) // 4096)
        reports[kind] = gathered({"rank": ctx.rank, "shards": shards, "n_train": len(loop.train_set),
                                  "iters": loop.iters, "train_steps": loop.global_iter, "before": before[::step].tolist(),
                                  "after": after[::step].tolist(), "checksum": float(after.sum())})
    if batch:
        reports["exact"] = gathered(exact_run(ctx, out, batch))
    if ctx.is_main:
        with open(f"{out}/reports.json", "w") as f:
            json.dump(reports, f)
    dist.destroy_process_group()
''')

#: Runs ``python -m edgeseg`` in this process, recording every file this rank creates, renames or
#: opens for writing under the directory argv[1] (Python audit events) into argv[2]/rank<R>.json.
AUDITED_CLI = textwrap.dedent('''
    import atexit, json, os, sys
    watch, log_dir = os.path.realpath(sys.argv[1]), sys.argv[2]
    writes = []

    def hook(event, args):
        if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            mode, flags = args[1], args[2] if len(args) > 2 else 0
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                mode is None and isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
            paths = [args[0]] if writing else []
        elif event in ("os.rename", "os.replace", "os.mkdir", "os.remove", "os.unlink", "shutil.rmtree"):
            paths = [a for a in args if isinstance(a, (str, bytes, os.PathLike))]
        else:
            return
        for p in paths:
            p = os.path.realpath(os.fsdecode(p))
            if p == watch or p.startswith(watch + os.sep):
                writes.append([event, p])

    def dump():
        with open(os.path.join(log_dir, f"rank{os.environ.get('RANK', '0')}.json"), "w") as f:
            json.dump(writes, f)

    atexit.register(dump)
    sys.addaudithook(hook)
    from edgeseg.cli import main
    sys.exit(main(sys.argv[3:]))
''')


def _torchrun(nproc: int, target: list, extra: tuple = (), timeout: float = TIMEOUT, **popen) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1", PYTHONFAULTHANDLER="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *extra, *target]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **popen)


def _finish(proc: subprocess.Popen, timeout: float = TIMEOUT) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"torchrun did not finish in {timeout} s:\n{out[-4000:]}")
    assert proc.returncode == 0, out[-6000:]
    return out


def _train_args(out: Path, *extra: str) -> list:
    return ["-m", "edgeseg", "train", "--model", "liteseg_t", "--data", "synthetic:16", "--imgsz", "64",
            "--loss", "ce", "--workers", "0", "--val-limit", "5", "--seed", "1", "--out", str(out), *extra]


def _check_reports(reports: dict) -> None:
    for kind, (r0, r1) in reports.items():
        # DDP averages the gradients, so both ranks take the same steps: equal weights, bit for bit
        assert r0["train_steps"] == r1["train_steps"] == r0["iters"] == 2, kind
        assert r0["before"] == r1["before"], kind
        assert r0["after"] == r1["after"] and r0["checksum"] == r1["checksum"], kind
        assert not np.allclose(r0["before"], r0["after"]), f"{kind}: the weights did not move"
        n = r0["n_train"]
        for epoch in (0, 1):
            a, b = set(r0["shards"][epoch]), set(r1["shards"][epoch])
            assert len(a) == len(b) == n // 2 and not a & b, (kind, epoch)  # disjoint, equal sizes
            assert a | b == set(range(n)), (kind, epoch)  # together: the whole epoch
        assert r0["shards"][0] != r0["shards"][1], f"{kind}: set_epoch did not reshuffle"


def _run_workers(out: Path, nproc: int, kinds: list, exact_batch: int = 0) -> dict:
    script = out / "worker.py"
    script.write_text(WORKER)
    _finish(_torchrun(nproc, [str(script), str(out), json.dumps({k: TINY[k] for k in kinds}), str(exact_batch)]))
    return json.loads((out / "reports.json").read_text())


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> dict:
    """Reports of 2 processes: semantic and single-stage instance steps, the exactness run at batch 2."""
    return _run_workers(tmp_path_factory.mktemp("ddp2"), 2, ["semantic", "yoloseg"], exact_batch=2)


def test_ranks_keep_equal_weights_and_get_disjoint_shards(two_processes):
    _check_reports({k: v for k, v in two_processes.items() if k != "exact"})


@pytest.mark.slow
def test_ranks_keep_equal_weights_maskrcnn(tmp_path):
    """Mask R-CNN drives its own stages inside the DDP-wrapped step (~1 min on 2 busy cores)."""
    _check_reports(_run_workers(tmp_path, 2, ["maskrcnn"]))


def test_two_processes_match_one_with_double_batch(two_processes, tmp_path):
    """1 process x batch 4 and 2 processes x batch 2 see the same samples per step
    (DistributedSampler interleaves one permutation per epoch) and step with the same averaged
    gradient. With BatchNorm frozen (its batch statistics would be per process on the CPU) and no
    ignored pixels, the weights after 4 SGD steps agree to 1e-4 relative (float summation order)
    and the epoch losses to 1e-5."""
    import torch.distributed as dist

    from edgeseg.train.distributed import DistContext

    ns: dict = {}
    exec(compile(EXACT, "EXACT", "exec"), ns)  # the same run in this process, as the one rank of a group
    threads = torch.get_num_threads()
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        one = ns["exact_run"](DistContext(enabled=True), tmp_path, 4)
    finally:
        dist.destroy_process_group()
        torch.set_num_threads(threads)
    r0, r1 = two_processes["exact"]
    assert r0["weights"] == r1["weights"] and r0["steps"] == one["steps"] == 4
    np.testing.assert_allclose(r0["losses"], one["losses"], rtol=1e-5)
    w1, w2 = np.asarray(one["weights"]), np.asarray(r0["weights"])
    assert np.linalg.norm(w2 - w1) <= 1e-4 * np.linalg.norm(w1)


def test_torchrun_cli_instance_run_records_the_world_and_only_rank0_writes(tmp_path):
    """An instance run through the CLI: world size and global batch in the history, validation
    split over the 2 processes and merged equal to scoring the saved model in one process, and
    only rank 0 writing into --out."""
    from edgeseg.data import open_instance_dataset
    from edgeseg.models.checkpoint import load_checkpoint
    from edgeseg.train.instance_trainer import evaluate_instances

    out, audit = tmp_path / "run", tmp_path / "audit"
    audit.mkdir()
    script = tmp_path / "audited_cli.py"
    script.write_text(AUDITED_CLI)
    args = ["train", "--task", "instance", "--model", "yoloseg_n", "--data", "synthetic:16", "--imgsz", "64",
            "--workers", "0", "--val-limit", "5", "--batch-size", "4", "--epochs", "2", "--iters-per-epoch", "2",
            "--out", str(out)]
    log = _finish(_torchrun(2, [str(script), str(out), str(audit), *args]))
    hist = json.loads((out / "history.json").read_text())
    assert [(h["epoch"], h["world_size"], h["global_batch"], h["iters"]) for h in hist] == [(1, 2, 8, 2), (2, 2, 8, 2)]
    assert log.count("best checkpoint:") == 1 and log.count("epoch 2/2: loss") == 1  # rank 0 reports
    model = load_checkpoint(out / "last")[0]
    res = evaluate_instances(model, open_instance_dataset("synthetic:16", "val"), (64, 64), limit=5,
                             evaluator=hist[-1]["val_evaluator"])
    assert hist[-1]["val_detections"] == res["detections"] > 0
    assert hist[-1]["val_mask_ap50"] == pytest.approx(res["mask_ap50"], abs=1e-9)
    assert hist[-1]["val_box_ap50"] == pytest.approx(res["box_ap50"], abs=1e-9)
    # only rank 0 touched the output directory (checkpoints, state, history, curve, config)
    writes = {r: json.loads((audit / f"rank{r}.json").read_text()) for r in (0, 1)}
    assert writes[1] == [], writes[1][:5]
    written = {Path(p).name for _, p in writes[0]}
    for name in ("train_state.pt", "history.json", "curve.png", "train_config.json", "model.safetensors"):
        assert any(w == name or w.startswith(f".{name}.") for w in written), name


def _worker_pids(parent: int) -> dict:
    """{RANK: pid} of the torchrun workers below ``parent`` (read from /proc)."""
    found, todo = {}, [parent]
    while todo:
        pid = todo.pop()
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        for c in map(int, children):
            todo.append(c)
            try:
                env = Path(f"/proc/{c}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            for kv in env:
                if kv.startswith(b"RANK="):
                    found[int(kv[5:])] = c
    return found


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the workers through /proc (Linux)")
def test_killed_worker_is_restarted_and_resumes_from_the_last_checkpoint(tmp_path):
    out = tmp_path / "run"
    epochs = 3
    proc = _torchrun(2, _train_args(out, "--epochs", str(epochs), "--batch-size", "2", "--iters-per-epoch", "6"),
                     extra=("--max-restarts=1",))
    hist = out / "history.json"
    deadline = time.monotonic() + TIMEOUT
    killed = None
    while killed is None and time.monotonic() < deadline and proc.poll() is None:
        if hist.is_file() and len(json.loads(hist.read_text())) == 1:
            time.sleep(0.3)  # into epoch 2
            workers = _worker_pids(proc.pid)
            if 1 in workers:
                os.kill(workers[1], signal.SIGKILL)
                killed = workers[1]
        time.sleep(0.05)
    log = _finish(proc)
    assert killed is not None, log[-3000:]
    h = json.loads(hist.read_text())
    assert [r["epoch"] for r in h] == list(range(1, epochs + 1)), log[-3000:]
    assert "resume: continuing" in log and "after epoch 1" in log, log[-3000:]
    state = torch.load(out / "train_state.pt", weights_only=True)
    assert state["epoch"] == epochs - 1 and state["world_size"] == 2
    # the validation the 2 processes split and merged == scoring the saved model in one process
    from edgeseg.data import open_dataset
    from edgeseg.models.checkpoint import load_checkpoint
    from edgeseg.train.trainer import evaluate

    res = evaluate(load_checkpoint(out / "last")[0], open_dataset("synthetic:16", "val"), (64, 64), limit=5)
    assert h[-1]["val_miou"] == pytest.approx(res["miou"], abs=1e-12)
