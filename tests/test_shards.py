"""Tar shards: writer → reader round trip, split naming, exact samples per epoch across ranks × workers,
training through the real command on shards, and exact mid-epoch resume on shards."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from unireplknet.cli import main
from unireplknet.engine.checkpoint import load_checkpoint
from unireplknet.errors import DataError
from unireplknet.modalities.shards import (
    ShardIterableDataset, build_map_datasets, decode_image, expand_braces, is_shard_spec, load_shard_index,
    shard_split_name,
)

from test_train_cli import base_args, make_dataset
from test_train_cli_resume import KILLER


def _raw(data: bytes, ext: str) -> bytes:
    return data


def _shard(data: Path, out: Path, *extra: str) -> Path:
    assert main(["shard", "--data", str(data), "-o", str(out), *extra]) == 0
    return out


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("shards")
    data = make_dataset(tmp / "data", n_train=6, n_val=2)  # 12 train, 4 val images
    return data, _shard(data, tmp / "sh", "--max-count", "5")


def test_writer_reader_round_trip(shards, capsys):
    data, out = shards
    index = json.loads((out / "index.json").read_text())
    assert index["classes"] == ["circle", "square"]
    assert [(s["name"], s["count"]) for s in index["shards"]] == [
        ("train-000000.tar", 5), ("train-000001.tar", 5), ("train-000002.tar", 2), ("val-000000.tar", 4)]
    assert sum(sum(s["classes"].values()) for s in index["shards"]) == 16
    sets, classes = build_map_datasets(load_shard_index(str(out)), (".png",), _raw)
    assert classes == ["circle", "square"] and {k: len(v) for k, v in sets.items()} == {"train": 12, "val": 4}
    for split in ("train", "val"):
        want = Counter((p.read_bytes(), p.parent.name) for p in (data / split).rglob("*.png"))
        got = Counter((x, classes[y]) for x, y in (sets[split][i] for i in range(len(sets[split]))))
        assert got == want
    decoded, _ = build_map_datasets(load_shard_index(str(out)), (".png",), decode_image)
    img, _ = decoded["train"][0]
    assert img.size == (20, 20) and img.mode == "RGB"


def test_patterns_and_split_names(shards):
    _, out = shards
    assert expand_braces("a/train-{000..002}.tar") == [f"a/train-00{i}.tar" for i in range(3)]
    assert expand_braces("{train,val}-{0..1}.tar") == ["train-0.tar", "train-1.tar", "val-0.tar", "val-1.tar"]
    assert shard_split_name("x/train-000001.tar") == "train"
    assert shard_split_name("validation-0.tar") == "val" and shard_split_name("val-0.tar") == "val"
    assert shard_split_name("test_hard-000000.tar") == "test_hard"
    with pytest.raises(DataError, match="train-, val- or test"):
        shard_split_name("misc-000000.tar")
    pattern = f"{out}/train-{{000000..000002}}.tar::{out}/val-000000.tar"
    assert is_shard_spec(str(out)) and is_shard_spec(pattern) and not is_shard_spec(str(out.parent / "data"))
    index = load_shard_index(pattern)
    assert index.count("train") == 12 and index.count("val") == 4 and index.classes == ["circle", "square"]
    with pytest.raises(FileNotFoundError):
        load_shard_index(f"{out}/train-{{000000..000009}}.tar")


def _stream(out: Path, **kw) -> ShardIterableDataset:
    index = load_shard_index(str(out))
    paths = index.shards["train"]
    return ShardIterableDataset(paths, [index.counts[p] for p in paths], (".png",), _raw, seed=3, buffer=4, **kw)


def test_streaming_exact_samples_per_epoch_across_ranks_and_workers(shards):
    _, out = shards
    ds = _stream(out)  # 12 samples in shards of 5, 5, 2: 2 ranks x 2 workers
    for epoch in (0, 1):
        seen = []
        for rank in (0, 1):
            per_rank = [name for w in (0, 1) for _, name, _ in ds.iter_part(epoch, rank, 2, w, 2)]
            assert len(per_rank) == 6
            seen += per_rank
        assert len(seen) == 12 == len(set(seen))  # every sample exactly once
    # the same through real DataLoader workers (forked), with the shuffle buffer, on each simulated rank
    got = []
    for rank in (0, 1):
        ds = _stream(out, rank=rank, world_size=2)
        ds.set_epoch(1)
        assert len(ds) == 6
        batch = [x for x, _ in DataLoader(ds, batch_size=None, num_workers=2)]
        assert len(batch) == 6
        got += batch
    assert len(set(got)) == 12
    # padding: 12 samples over 5 ranks -> 3 each (15), the 3 extra repeat the start of the epoch's order
    ds = _stream(out)
    names = [n for r in range(5) for _, n, _ in ds.iter_part(0, r, 5)]
    assert len(names) == 15 and len(set(names)) == 12
    dropped = _stream(out, pad=False)
    names = [n for r in range(5) for _, n, _ in dropped.iter_part(0, r, 5)]
    assert len(names) == 10 == len(set(names))


def test_streaming_order_is_seeded_per_epoch(shards):
    _, out = shards
    a, b = _stream(out, rank=0, world_size=1), _stream(out, rank=0, world_size=1)
    a.set_epoch(0)
    b.set_epoch(0)
    first = [y for _, y in a]
    assert first == [y for _, y in b] and len(first) == 12
    a.set_epoch(1)
    assert sorted(x for x, _ in a) == sorted(x for x, _ in b)  # same samples, another order
    assert [x for x, _ in a] != [x for x, _ in b]


def test_train_through_the_real_command_on_shards(shards, tmp_path, capsys):
    _, out = shards
    run = tmp_path / "run"
    assert main(base_args(out, run, "--no-deploy")) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["splits"] == {"train": 12, "val": 4}
    assert any("shards" in line for line in summary["plan"])
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["global_step"] == 3  # 12 samples, batch 4
    # a brace pattern without val shards: validation is carved from training (10% per class -> 2)
    run2 = tmp_path / "run2"
    assert main(base_args(f"{out}/train-{{000000..000002}}.tar", run2, "--no-deploy")) == 0
    assert json.loads((run2 / "summary.json").read_text())["splits"] == {"train": 10, "val": 2}


def test_bad_shard_is_one_line_error(tmp_path, capsys):
    (tmp_path / "train-000000.tar").write_bytes(b"not a tar" * 100)
    (tmp_path / "val-000000.tar").write_bytes(b"")
    rc = main(base_args(f"{tmp_path}/{{train,val}}-000000.tar", tmp_path / "run"))
    assert rc == 2 and "not a readable uncompressed tar shard" in capsys.readouterr().err


@pytest.mark.slow
def test_sigkill_mid_epoch_on_shards_then_resume_matches_uninterrupted(shards, tmp_path):
    _, out = shards  # 12 train samples, batch 4 -> 3 batches per epoch
    extra = ["--epochs", "2", "--ckpt-every-steps", "1", "--drop-path", "0.1", "--mixup", "0.4", "--no-deploy"]
    assert main(base_args(out, tmp_path / "full", *extra)) == 0
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    env = dict(__import__("os").environ, KILL_AT_BATCH="5")  # epoch 2, second batch
    proc = subprocess.run([sys.executable, str(script), *base_args(out, tmp_path / "cut", *extra)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    mid = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert (mid["epoch"], mid["batch_in_epoch"], mid["global_step"]) == (1, 1, 4)
    assert main(["train", "--resume", str(tmp_path / "cut" / "last.pt")]) == 0
    full, resumed = load_checkpoint(tmp_path / "full" / "last.pt"), load_checkpoint(tmp_path / "cut" / "last.pt")
    assert resumed["global_step"] == full["global_step"] == 6
    for name, value in full["model"].items():
        assert torch.equal(value, resumed["model"][name]), name


FSDP_SCRIPT = """
import sys, torch, torch.distributed as dist
from unireplknet.tasks.classification import build_model
from unireplknet.engine.fsdp import shard_model, save_sharded, load_sharded, full_state_dict
dist.init_process_group("gloo")
cfg = {"model": "custom", "model_args": {"depths": [1, 1, 1, 1], "dims": [8, 16, 32, 64],
       "kernel_sizes": [[3], [3], [7], [3]]}, "drop_path": 0.0}
torch.manual_seed(0)
m = build_model(cfg, 2, 3)
shard_model(m, checkpoint_activations=True)
opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
path = sys.argv[2]
if sys.argv[1] == "train":
    torch.manual_seed(1 + dist.get_rank())
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 2, (4,))
    torch.nn.functional.cross_entropy(m(x), y).backward()
    opt.step()
    save_sharded(m, opt, path)
    full = full_state_dict(m)
    if dist.get_rank() == 0:
        torch.save(full, path + ".full.pt")
else:  # load at another world size: DCP reshards
    load_sharded(m, opt, path)
    full, want = full_state_dict(m), torch.load(path + ".full.pt")
    assert set(full) == set(want) and all(torch.equal(full[k], want[k]) for k in want)
dist.barrier()  # no rank tears the group down while another still writes (gloo aborts the late one)
dist.destroy_process_group()
# all work is done and checked: leave without interpreter teardown, where gloo's background threads can
# still abort a rank under load ("terminate called without an active exception", exit -6 after success)
import os
sys.stdout.flush(); sys.stderr.flush()
os._exit(0)
"""


@pytest.mark.slow
def test_fsdp2_gloo_two_processes_checkpoint_loads_at_world_size_one(tmp_path):
    import os

    from test_distributed import _free_port

    script = tmp_path / "fsdp.py"
    script.write_text(FSDP_SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for mode, nproc in (("train", 2), ("load", 1)):
        proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
                               "--master-addr", "127.0.0.1", "--master-port", str(_free_port()), str(script), mode,
                               str(tmp_path / "ckpt")], capture_output=True, text=True, timeout=300, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "ckpt" / ".metadata").is_file()
