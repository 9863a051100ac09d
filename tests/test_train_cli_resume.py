"""`--resume` continues exactly: a run killed with SIGKILL mid-epoch and resumed from `last.pt`
ends with the same weights as an uninterrupted run."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap

import torch

from unireplknet.cli import main
from unireplknet.engine.checkpoint import load_checkpoint

from test_train_cli import base_args, make_dataset

KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from unireplknet.tasks import classification as C

    _build = C.build_loss

    def build_loss(*a, **k):
        loss_fn, calls = _build(*a, **k), [0]

        def loss(output, target):
            calls[0] += 1
            if calls[0] == int(os.environ["KILL_AT_BATCH"]):
                os.kill(os.getpid(), signal.SIGKILL)
            return loss_fn(output, target)

        return loss

    C.build_loss = build_loss
    from unireplknet.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(tmp_path):
    data = make_dataset(tmp_path / "data", n_train=6, n_val=2)  # 12 images, batch 4 -> 3 batches per epoch
    extra = ["--epochs", "2", "--ckpt-every-steps", "1", "--drop-path", "0.1", "--mixup", "0.4", "--ema",
             "--ema-decay", "0.9", "--no-deploy"]
    assert main(base_args(data, tmp_path / "full", *extra)) == 0

    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    env = dict(__import__("os").environ, KILL_AT_BATCH="5")  # epoch 2, second batch
    proc = subprocess.run([sys.executable, str(script), *base_args(data, tmp_path / "cut", *extra)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    mid = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert (mid["epoch"], mid["batch_in_epoch"], mid["global_step"]) == (1, 1, 4)  # killed mid-epoch

    assert main(["train", "--resume", str(tmp_path / "cut" / "last.pt")]) == 0
    full = load_checkpoint(tmp_path / "full" / "last.pt")
    resumed = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert resumed["global_step"] == full["global_step"] == 6
    for key in ("model", "ema"):
        for name, value in full[key].items():
            assert torch.equal(value, resumed[key][name]), f"{key}.{name}"
    assert full["optimizer"]["state"].keys() == resumed["optimizer"]["state"].keys()
    for i, st in full["optimizer"]["state"].items():
        assert torch.equal(st["exp_avg"], resumed["optimizer"]["state"][i]["exp_avg"])
    rows = [json.loads(line) for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
