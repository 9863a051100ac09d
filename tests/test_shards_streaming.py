"""Streaming shards in the runner: 2 gloo processes x 2 DataLoader workers see every training sample exactly
once per epoch (the runner's own loader building), every rank runs the same number of batches; and the
real `train --modality audio` command learns on audio shards (map-style pattern and streaming) above chance
and above nothing-to-learn baselines."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from unireplknet.cli import main

from test_shards_modalities import write_tones
from test_train_cli import make_dataset

SCRIPT = r'''
import json, sys, types
import torch.distributed as dist
from unireplknet.engine.distributed import init_from_env
from unireplknet.modalities.shards import ShardIterableDataset, load_shard_index
from unireplknet.runner.loaders import build_loader


class Named(ShardIterableDataset):
    def _item(self, epoch, pos, name, ext, data, label):
        return name, int(label)


info = init_from_env("cpu")
index = load_shard_index(sys.argv[1])
paths = index.shards["train"]
ds = Named(paths, [index.counts[p] for p in paths], (".png",), None, seed=5, buffer=4)
cfg = types.SimpleNamespace(batch_size=3, num_workers=2, device="cpu")
loader = build_loader(ds, cfg, train=True, info=info)
out = {"len": len(loader), "epochs": []}
for epoch in range(2):
    loader.dataset.set_epoch(epoch)
    batches = list(loader)
    out["epochs"].append({"batches": len(batches), "names": [n for names, _ in batches for n in names]})
got = [None] * info.world_size
dist.all_gather_object(got, out)
if info.rank == 0:
    open(sys.argv[2], "w").write(json.dumps(got))
dist.destroy_process_group()
'''


def test_two_gloo_processes_see_every_sample_once_per_epoch(tmp_path):
    data = make_dataset(tmp_path / "data", n_train=6, n_val=2)  # 12 training images
    assert main(["shard", "--data", str(data), "-o", str(tmp_path / "sh"), "--max-count", "5"]) == 0  # 5+5+2
    (tmp_path / "run.py").write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                           "--master-port", "29731", str(tmp_path / "run.py"), str(tmp_path / "sh"),
                           str(tmp_path / "out.json")], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = json.loads((tmp_path / "out.json").read_text())
    assert [r["len"] for r in ranks] == [2, 2]  # 6 samples per rank, batch 3
    orders = []
    for epoch in range(2):
        per_rank = [r["epochs"][epoch] for r in ranks]
        assert [p["batches"] for p in per_rank] == [2, 2]  # the same number of steps on every rank
        names = [n for p in per_rank for n in p["names"]]
        assert len(names) == 12 == len(set(names))  # every sample exactly once across ranks and workers
        orders.append(names)
    assert orders[0] != orders[1]  # reshuffled per epoch


def _tone_shards(tmp_path: Path) -> Path:
    data = write_tones(tmp_path / "tones", train=16, val=6, test=6)
    assert main(["shard", "--modality", "audio", "--data", str(data), "-o", str(tmp_path / "sh"),
                 "--max-count", "10"]) == 0  # train: 4 shards of <= 10, val: 2, test: 2
    return tmp_path / "sh"


AUDIO_TRAIN = ["--model", "custom", "--model-args",
               '{"depths": [1, 1, 1, 1], "dims": [8, 16, 32, 64], "kernel_sizes": [[3], [5], [5], [3]]}',
               "--sample-rate", "8000", "--num-mel-bins", "32", "--target-frames", "32", "--epochs", "10",
               "--batch-size", "8", "--lr", "0.004", "--warmup-epochs", "0", "--num-workers", "0",
               "--num-threads", "1", "--no-deploy", "--baselines"]


@pytest.mark.parametrize("stream", [False, True], ids=["map-style pattern", "streaming"])
def test_audio_train_command_on_shards_learns(tmp_path, stream):
    sh = _tone_shards(tmp_path)
    pattern = f"{sh}/train-{{000000..000003}}.tar::{sh}/val-{{000000..000001}}.tar::{sh}/test-{{000000..000001}}.tar"
    data = ("stream:" if stream else "") + pattern
    run = tmp_path / "run"
    assert main(["train", "--modality", "audio", "--data", data, "-o", str(run), *AUDIO_TRAIN]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["splits"] == {"train": 32, "val": 12, "test": 12}
    test = summary["evaluation"]["test"]
    assert test["n"] == 12 and test["acc1"] >= 0.9, summary["evaluation"]  # chance is 0.5 (two balanced classes)
    assert summary["baselines"]["results"]["test"]  # simple baselines stand beside it on the same split
    assert any(("streaming" in line) == stream for line in summary["plan"][:1])


@pytest.mark.slow
def test_sigkill_mid_epoch_while_streaming_then_resume_matches_uninterrupted(tmp_path):
    import signal

    import torch

    from unireplknet.engine.checkpoint import load_checkpoint

    from test_train_cli import base_args
    from test_train_cli_resume import KILLER

    data = make_dataset(tmp_path / "data", n_train=6, n_val=2)  # 12 training images: 3 batches of 4
    assert main(["shard", "--data", str(data), "-o", str(tmp_path / "sh"), "--max-count", "5"]) == 0
    spec = f"stream:{tmp_path / 'sh'}"
    # 2 workers: worker 0 yields 1 batch per epoch, worker 1 two; the resumed epoch must skip worker 0's
    extra = ["--epochs", "2", "--ckpt-every-steps", "1", "--drop-path", "0.1", "--mixup", "0.4", "--no-deploy",
             "--num-workers", "2"]
    assert main(base_args(spec, tmp_path / "full", *extra)) == 0
    (tmp_path / "killer.py").write_text(KILLER)
    env = {**os.environ, "KILL_AT_BATCH": "5", "PYTHONPATH": os.pathsep.join(sys.path)}  # epoch 2, second batch
    proc = subprocess.run([sys.executable, str(tmp_path / "killer.py"), *base_args(spec, tmp_path / "cut", *extra)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    mid = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert (mid["epoch"], mid["batch_in_epoch"], mid["global_step"]) == (1, 1, 4)
    assert main(["train", "--resume", str(tmp_path / "cut" / "last.pt")]) == 0
    full, resumed = load_checkpoint(tmp_path / "full" / "last.pt"), load_checkpoint(tmp_path / "cut" / "last.pt")
    assert resumed["global_step"] == full["global_step"] == 6
    for name, value in full["model"].items():
        assert torch.equal(value, resumed["model"][name]), name


def test_mid_epoch_skip_gives_the_rest_of_the_same_epoch(tmp_path):
    import types

    from unireplknet.engine.distributed import DistInfo
    from unireplknet.modalities.shards import ShardIterableDataset, load_shard_index
    from unireplknet.runner.loaders import build_loader

    class Named(ShardIterableDataset):
        def _item(self, epoch, pos, name, ext, data, label):
            return name, int(label)

    data = make_dataset(tmp_path / "data", n_train=7, n_val=2)  # 14 training images
    assert main(["shard", "--data", str(data), "-o", str(tmp_path / "sh"), "--max-count", "4"]) == 0
    index = load_shard_index(str(tmp_path / "sh"))
    paths = index.shards["train"]
    ds = Named(paths, [index.counts[p] for p in paths], (".png",), None, seed=1, buffer=3)
    for workers, rank in ((0, 0), (2, 1), (3, 0)):
        cfg = types.SimpleNamespace(batch_size=2, num_workers=workers, device="cpu")
        loader = build_loader(ds, cfg, train=True, info=DistInfo(rank=rank, world_size=2))
        loader.sampler.set_epoch(2)
        whole = [list(names) for names, _ in loader]
        assert len(whole) == len(loader) == 3  # 7 samples per rank, batch 2
        for k in range(1, 3):
            loader.sampler.set_skip(k * 2)
            assert [list(names) for names, _ in loader] == whole[k:], (workers, k)
            loader.sampler.set_skip(0)


@pytest.mark.slow
def test_torchrun_two_processes_train_on_streamed_shards(tmp_path):
    from test_train_cli import base_args

    data = make_dataset(tmp_path / "data", n_train=7, n_val=3)  # 14 training images, 6 validation
    assert main(["shard", "--data", str(data), "-o", str(tmp_path / "sh"), "--max-count", "4"]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    args = base_args(f"stream:{tmp_path / 'sh'}", tmp_path / "run", "--epochs", "2", "--batch-size", "3",
                     "--num-workers", "2", "--no-deploy")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                           "--master-port", "29733", "-m", "unireplknet", *args], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["splits"] == {"train": 14, "val": 6}
    assert summary["evaluation"]["val"]["n"] == 6  # the final evaluation reads every validation sample once
    from unireplknet.engine.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path / "run" / "last.pt")["global_step"] == 4  # 7 samples per rank, batch 3: 2 steps
