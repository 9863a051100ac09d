"""A read-only output folder and a full disk give one ``error:`` line (exit 2), and lose no data.

The folders are real tmpfs mounts (this needs root, as on the CI machines); where mounting is not
permitted the same code paths are driven by an injected ``OSError`` instead, so the test always runs.
"""
from __future__ import annotations

import errno
import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from unireplknet.cli import main

TINY = json.dumps({"depths": [1, 1, 1, 1], "dims": [8, 16, 24, 32], "kernel_sizes": [[3], [5], [5], [3]]})


def _mount(path: Path, size: str, read_only: bool = False) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if read_only else "")
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, f"t{uuid.uuid4().hex[:6]}", str(path)],
                           capture_output=True)
    except FileNotFoundError:
        return False
    return r.returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _train(out: Path, *extra: str) -> int:
    return main(["train", "-o", str(out), "--epochs", "1", "--max-train-steps", "2", "--model-args", TINY,
                 "--no-deploy", "--num-threads", "1", *extra])


def test_read_only_output_is_one_line(tmp_path, capsys, monkeypatch):
    mnt = tmp_path / "ro"
    mounted = _mount(mnt, "1m", read_only=True)
    if not mounted:  # no permission to mount: make every write there fail the way a read-only FS does
        mnt.mkdir(exist_ok=True)
        real_open = os.open

        def ro_open(path, flags, *a, **k):
            if str(path).startswith(str(mnt)) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
            return real_open(path, flags, *a, **k)

        monkeypatch.setattr(os, "open", ro_open)
    try:
        code = _train(mnt / "run")
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and err[0].startswith("error:"), err
        assert "not writable" in err[0] or "Read-only" in err[0]
    finally:
        if mounted:
            _umount(mnt)


def test_full_disk_is_one_line_and_keeps_the_last_checkpoint(tmp_path, capsys):
    mnt = tmp_path / "full"
    if not _mount(mnt, "2m"):
        pytest.fail("mounting a tmpfs is not permitted here: run this test as root (CI does)")
    try:
        out = mnt / "run"
        assert _train(out) == 0
        before = (out / "last.pt").read_bytes()
        filler = mnt / "filler"
        with open(filler, "wb") as f:  # take (almost) all the space that is left
            try:
                while True:
                    f.write(b"\0" * 65536)
            except OSError:
                pass
        capsys.readouterr()
        code = main(["train", "--resume", str(out / "last.pt"), "--epochs", "2", "--max-train-steps", "2",
                     "--no-deploy", "--num-threads", "1"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and err[0].startswith("error:"), err
        assert "No space left" in err[0] or "space" in err[0].lower()
        assert (out / "last.pt").read_bytes() == before  # the data stays safe
        assert not list(out.glob(".*.tmp"))
    finally:
        _umount(mnt)
