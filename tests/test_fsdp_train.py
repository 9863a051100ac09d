"""``train --fsdp``: a 2-process CPU run (torchrun, gloo, FSDP2) of the built-in digits demo matches DDP and a
1-process run with the same global batch, writes a resharding checkpoint that 1 process resumes, and deploys."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from unireplknet.engine.checkpoint import load_checkpoint

from test_train_cli import TINY_ARGS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(out, nproc, batch, *extra):
    args = ["train", "--model", "custom", "--model-args", TINY_ARGS, "--epochs", "1", "--max-train-steps", "2",
            "--batch-size", str(batch), "--num-workers", "0", "--num-threads", "1", "--warmup-epochs", "0",
            "--opt", "sgd", "--lr", "0.05", "--weight-decay", "0", "--smoothing", "0", "--device", "cpu",
            "-o", str(out), *extra]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", str(nproc),
                "--master-addr", "127.0.0.1", "--master-port", str(_free_port()), "-m", "unireplknet"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(launcher + args, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _rows(run):
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_fsdp_two_processes_match_and_reshard_to_one(tmp_path):
    _train(tmp_path / "one", 1, 8, "--no-deploy")
    _train(tmp_path / "ddp", 2, 4, "--no-deploy")
    fsdp = tmp_path / "fsdp"
    _train(fsdp, 2, 4, "--fsdp")

    last = load_checkpoint(fsdp / "last.pt")
    assert last["world_size"] == 2 and last["global_step"] == 2 and last["model"] is None
    assert last["config"]["fsdp"] is True
    shard_dir = fsdp / last["sharded"]
    assert shard_dir.is_dir() and (shard_dir / ".metadata").is_file()
    assert sorted(p.name for p in fsdp.glob("*.dcp")) == [last["sharded"]]  # best.pt shares it
    assert load_checkpoint(fsdp / "best.pt")["sharded"] == last["sharded"]
    assert (fsdp / "deploy.safetensors").is_file()
    summary = json.loads((fsdp / "summary.json").read_text())
    assert summary["deploy_max_abs_diff"] < 1e-3

    one, ddp, sh = _rows(tmp_path / "one")[0], _rows(tmp_path / "ddp")[0], _rows(fsdp)[0]
    # FSDP vs DDP, both 2 x 4 samples: the same computation up to float summation order.
    assert abs(sh["train_loss"] - ddp["train_loss"]) <= 1e-5 * abs(ddp["train_loss"]), (sh, ddp)
    assert abs(sh["val_loss"] - ddp["val_loss"]) <= 1e-4 * abs(ddp["val_loss"]), (sh, ddp)
    # vs 1 process x 8 samples: the same samples per update, but BatchNorm normalises with the statistics of
    # 4 samples per process instead of 8, so the losses are close, not equal.
    assert abs(sh["train_loss"] - one["train_loss"]) <= 0.02 * abs(one["train_loss"]), (sh, one)

    # resume the 2-process sharded checkpoint in 1 process (no process group: fsdp is ignored, DCP reshards)
    resumed = tmp_path / "resumed"
    proc = _train(resumed, 1, 8, "--resume", str(fsdp / "last.pt"), "--epochs", "2")
    ckpt = load_checkpoint(resumed / "last.pt")
    assert ckpt["global_step"] == 4 and ckpt["epoch"] == 2 and ckpt["model"] is not None
    assert [r["epoch"] for r in _rows(resumed)] == [1, 2]
    assert (resumed / "deploy.safetensors").is_file()
    assert "fsdp ignored" in proc.stderr
