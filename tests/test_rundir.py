"""Run directories: one run at a time, stale locks taken over, temp files cleaned, resume in place, read-only dirs."""
from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch

from unireplknet.engine.checkpoint import TEMP_FILE_RE, atomic_save
from unireplknet.engine.rundir import (LOCK_NAME, RunDir, check_writable, clean_temp_files, read_lock,
                                       resolve_resume_dir)
from unireplknet.errors import RunDirError

HOLDER = textwrap.dedent("""
    import sys, time
    from unireplknet.engine.rundir import RunDir
    with RunDir(sys.argv[1]):
        print("locked", flush=True)
        sys.stdin.readline()  # hold the lock until the test says so
""")


@pytest.fixture
def holder(tmp_path):
    """A subprocess holding the lock of tmp_path/run."""
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "locked"
    yield run, proc
    if proc.poll() is None:
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.wait(timeout=30)


@pytest.mark.slow  # the holder subprocess imports torch
def test_second_acquirer_fails_with_one_line(holder):
    run, proc = holder
    with pytest.raises(RunDirError) as e:
        RunDir(run).acquire()
    msg = str(e.value)
    assert "\n" not in msg and f"pid {proc.pid}" in msg and socket.gethostname() in msg
    assert "started " in msg and "--force" in msg
    assert read_lock(run / LOCK_NAME)["pid"] == proc.pid  # untouched
    proc.stdin.write("\n")
    proc.stdin.flush()
    assert proc.wait(timeout=30) == 0
    assert not (run / LOCK_NAME).exists()  # released on exit
    with RunDir(run) as rd:  # free again
        assert rd.locked


def test_force_takes_over_a_live_lock(tmp_path, caplog):
    run = tmp_path / "run"
    run.mkdir()
    live = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.readline()"], stdin=subprocess.PIPE)
    try:
        (run / LOCK_NAME).write_text(json.dumps({"pid": live.pid, "host": socket.gethostname(), "started": "now"}))
        with pytest.raises(RunDirError, match=f"pid {live.pid}"):
            RunDir(run).acquire()
        with caplog.at_level(logging.WARNING, logger="unireplknet.engine.rundir"):
            rd = RunDir(run, force=True).acquire()
        assert "taking over" in caplog.text and str(live.pid) in caplog.text
        assert read_lock(run / LOCK_NAME)["pid"] == os.getpid()
        rd.release()
        assert not (run / LOCK_NAME).exists()
    finally:
        live.communicate(b"\n", timeout=30)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_lock_is_taken_over_with_a_warning(tmp_path, caplog):
    run = tmp_path / "run"
    run.mkdir()
    pid = _dead_pid()
    (run / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "started": "yesterday"}))
    with caplog.at_level(logging.WARNING, logger="unireplknet.engine.rundir"):
        with RunDir(run) as rd:
            assert rd.locked and read_lock(run / LOCK_NAME)["pid"] == os.getpid()
    assert "stale lock" in caplog.text and f"pid {pid}" in caplog.text
    assert not (run / LOCK_NAME).exists()
    assert [p.name for p in run.iterdir()] == []  # no leftover .stale files


def test_garbage_lock_is_taken_over_and_other_host_is_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_NAME).write_text("{half-written")
    with RunDir(run):
        pass
    (run / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "some-other-host", "started": "now"}))
    with pytest.raises(RunDirError, match="some-other-host.*another host"):
        RunDir(run).acquire()


def test_release_is_idempotent_and_leaves_a_foreign_lock(tmp_path):
    rd = RunDir(tmp_path / "run").acquire()
    (tmp_path / "run" / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "x", "token": "other"}))
    rd.release()
    rd.release()
    assert (tmp_path / "run" / LOCK_NAME).exists()  # not ours any more: kept


def test_clean_temp_files_removes_only_atomic_save_leftovers(tmp_path):
    atomic_save({"a": torch.zeros(1)}, tmp_path / "last.pt")
    leftovers = [".last.pt.a1b2c3d4.tmp", ".best.pt.x_y_z123.tmp", ".deploy.safetensors.abcdefgh.tmp"]
    keep = ["last.pt", "notes.tmp", ".lock", "last.pt.tmp", ".config.yaml.abcdefgh.tmp", ".last.pt.toolongname.tmp"]
    for name in leftovers + keep[1:]:
        (tmp_path / name).write_bytes(b"x")
    assert all(TEMP_FILE_RE.match(n) for n in leftovers)
    removed = clean_temp_files(tmp_path)
    assert sorted(p.name for p in removed) == sorted(leftovers)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep)
    assert RunDir(tmp_path).clean_temp_files() == []


def test_atomic_save_temp_name_matches_the_cleanup_pattern(tmp_path, monkeypatch):
    seen = []

    def spy(obj, f, *a, **k):
        seen.extend(p.name for p in tmp_path.iterdir())
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", spy)
    with pytest.raises(OSError):
        atomic_save({}, tmp_path / "last.pt")
    assert len(seen) == 1 and TEMP_FILE_RE.match(seen[0]), seen
    assert list(tmp_path.iterdir()) == []


def test_resolve_resume_dir(tmp_path):
    run = tmp_path / "old"
    run.mkdir()
    (run / "last.pt").write_bytes(b"x")
    (run / "epoch3.pt").write_bytes(b"x")
    assert resolve_resume_dir(run / "last.pt") == (run / "last.pt", run)
    assert resolve_resume_dir(run) == (run / "last.pt", run)
    assert resolve_resume_dir(run / "epoch3.pt") == (run / "epoch3.pt", run)
    assert resolve_resume_dir(run / "last.pt", output=tmp_path / "new") == (run / "last.pt", tmp_path / "new")
    with pytest.raises(FileNotFoundError, match="without last.pt"):
        resolve_resume_dir(tmp_path)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        resolve_resume_dir(run / "missing.pt")


def test_unwritable_dir_is_one_line_via_mocked_permission(tmp_path, monkeypatch):
    import tempfile

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(RunDirError, match=r"is not writable: Permission denied$"):
        check_writable(tmp_path)
    (tmp_path / "file").write_text("x")
    monkeypatch.undo()
    with pytest.raises(RunDirError, match="not a directory"):
        check_writable(tmp_path / "file")
