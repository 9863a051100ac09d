"""Run directories you can trust: one run per directory, no stale temp files, resume in place.

* :class:`RunDir` holds a lock file ``.lock`` (JSON: pid, host, start time) for as long as a run
  writes into the directory. A second run on the same directory fails with one line naming the
  holder; a lock whose process is gone (same host) is taken over with a warning; ``force=True``
  takes over any lock. The lock is released on ``release()``, on leaving the ``with`` block and,
  as a last resort, at interpreter exit.
* :func:`clean_temp_files` removes the ``.<name>.<random>.tmp`` files an interrupted
  :func:`~unireplknet.engine.checkpoint.atomic_save` (or ``save_weights``) can leave behind.
* :func:`resolve_resume_dir`: ``--resume PATH`` continues in PATH's own directory; the
  directory recorded inside a checkpoint is informational only.
* :func:`check_writable`: a directory that cannot be written is one clear error up front,
  not a traceback at the end of the first epoch.

Only one process of a distributed run (rank 0) should hold the lock.
"""
from __future__ import annotations

import atexit
import datetime as _dt
import errno
import json
import logging
import os
import socket
import tempfile
import uuid
from pathlib import Path
from typing import Any, List, Optional, Tuple, Union

from ..errors import RunDirError
from .checkpoint import TEMP_FILE_RE

__all__ = ["RunDir", "LOCK_NAME", "clean_temp_files", "resolve_resume_dir", "check_writable", "read_lock",
           "set_aside_previous_run", "RUN_FILES"]

_logger = logging.getLogger(__name__)

#: name of the lock file inside a run directory
LOCK_NAME = ".lock"

PathLike = Union[str, "os.PathLike[str]"]


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (unknown platforms: assume it does)."""
    if pid <= 0:
        return False
    if os.name != "posix":  # no cheap, reliable check: never take over a lock that may be live
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    except OSError as e:
        return e.errno != errno.ESRCH
    return True


def read_lock(path: PathLike) -> Optional[dict]:
    """The JSON content of a lock file, ``{}`` when unreadable or half-written, ``None`` when absent."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _describe(info: dict) -> str:
    return (f"pid {info.get('pid', '?')} on host {info.get('host', '?')}, "
            f"started {info.get('started', '?')}")


#: files whose presence means a directory holds a run (finished or interrupted)
RUN_FILES = ("config.yaml", "model.json", "last.pt", "best.pt", "summary.json", "metrics.jsonl", "metrics.json")


def set_aside_previous_run(path: PathLike) -> Optional[Path]:
    """Rename a directory that holds an earlier run (:data:`RUN_FILES`) to ``<name>.old-<time>`` so that a
    new run starts in an empty directory and the earlier one is kept whole; returns the new name, or ``None``
    when there is nothing to set aside or another live run holds the directory's lock (taking the lock then
    fails with its own message). Every training command calls it (not on ``--resume``); it logs the move."""
    path = Path(path)
    if not path.is_dir() or not any((path / f).exists() for f in RUN_FILES):
        return None
    info = read_lock(path / LOCK_NAME)
    if info:  # a lock: set aside only when its process is gone (same host)
        pid = info.get("pid")
        if info.get("host") != socket.gethostname() or not isinstance(pid, int) or _pid_alive(pid):
            return None
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.old-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.old-{stamp}-{n}")
    path.rename(target)
    _logger.warning("%s held an earlier run: moved to %s (resume it with --resume %s)", path, target, target)
    return target


class RunDir:
    """Exclusive use of a run directory through a ``.lock`` file.

    Args:
        path: the run directory (created if missing).
        force: take over the lock even when another live run holds it.

    Use as a context manager, or call :meth:`acquire` / :meth:`release`::

        with RunDir(out, force=args.force) as run_dir:
            run_dir.clean_temp_files()
            trainer.fit(...)
    """

    def __init__(self, path: PathLike, force: bool = False) -> None:
        self.path = Path(path)
        self.force = force
        self.lock_path = self.path / LOCK_NAME
        self._token: Optional[str] = None

    @property
    def locked(self) -> bool:
        """True while this object holds the lock."""
        return self._token is not None

    def _content(self) -> dict:
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "token": self._token,
        }

    def _try_create(self) -> bool:
        """Create the lock file exclusively; False when one exists."""
        try:
            fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            json.dump(self._content(), f)
            f.flush()
            os.fsync(f.fileno())
        return True

    def _take_over(self, seen: dict) -> None:
        """Move the lock file that was judged stale (content ``seen``) out of the way."""
        aside = self.path / f"{LOCK_NAME}.{uuid.uuid4().hex[:8]}.stale"
        try:
            os.rename(self.lock_path, aside)
        except FileNotFoundError:
            return  # someone else removed it: just retry
        moved = read_lock(aside)
        if moved != seen and not self.force:
            # another run replaced the lock between our read and the rename: put it back
            try:
                os.link(aside, self.lock_path)
            except OSError:
                pass
        try:
            os.unlink(aside)
        except OSError:
            pass

    def acquire(self) -> "RunDir":
        """Take the lock (see the class docstring); raises :class:`RunDirError` when another run holds it."""
        if self.locked:
            return self
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"run directory {self.path} exists and is not a directory")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RunDirError(f"cannot create run directory {self.path}: {e.strerror or e}") from e
        check_writable(self.path)
        self._token = uuid.uuid4().hex
        try:
            for _ in range(20):
                if self._try_create():
                    break
                info = read_lock(self.lock_path)
                if info is None:
                    continue  # released meanwhile
                here = info.get("host") == socket.gethostname()
                pid = info.get("pid")
                if here and pid == os.getpid():
                    _logger.info("%s: lock already held by this process: renewing it", self.path)
                elif self.force:
                    _logger.warning("%s: --force: taking over the lock of another run (%s)", self.path, _describe(info))
                elif not info:
                    _logger.warning("%s: unreadable lock file %s: taking it over", self.path, self.lock_path)
                elif here and isinstance(pid, int) and not _pid_alive(pid):
                    _logger.warning("%s: taking over a stale lock (%s; that process is gone)", self.path,
                                    _describe(info))
                else:
                    where = "" if here else " (another host: cannot check whether it is still running)"
                    raise RunDirError(
                        f"run directory {self.path} is in use by another run ({_describe(info)}){where}; "
                        f"wait for it, choose another output directory, or pass --force to take it over"
                    )
                self._take_over(info)
            else:
                raise RunDirError(f"could not lock run directory {self.path}: the lock file keeps changing")
        except BaseException:
            self._token = None
            raise
        atexit.register(self.release)
        return self

    def release(self) -> None:
        """Remove the lock file if this object still holds it (idempotent)."""
        if self._token is None:
            return
        token, self._token = self._token, None
        try:
            atexit.unregister(self.release)
        except Exception:  # pragma: no cover - interpreter shutting down
            pass
        info = read_lock(self.lock_path)
        if info and info.get("token") == token:
            try:
                os.unlink(self.lock_path)
            except OSError as e:  # pragma: no cover - read-only after the fact
                _logger.warning("could not remove lock file %s: %s", self.lock_path, e)
        elif info is not None:
            _logger.warning("%s: the lock was taken over by another run; leaving it", self.path)

    def clean_temp_files(self) -> List[Path]:
        """:func:`clean_temp_files` of this directory."""
        return clean_temp_files(self.path)

    def __enter__(self) -> "RunDir":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r}, locked={self.locked})"


def clean_temp_files(directory: PathLike) -> List[Path]:
    """Remove leftover atomic-write temp files (``.last.pt.<random>.tmp``, ``.best.pt.<random>.tmp``, ...).

    Only files matching :data:`~unireplknet.engine.checkpoint.TEMP_FILE_RE` are touched; call this
    while holding the directory's lock (another live run may be writing them). Returns the removed paths.
    """
    directory = Path(directory)
    removed: List[Path] = []
    if not directory.is_dir():
        return removed
    for p in directory.iterdir():
        if TEMP_FILE_RE.match(p.name) and p.is_file() and not p.is_symlink():
            try:
                p.unlink()
            except OSError as e:
                _logger.warning("could not remove leftover temp file %s: %s", p, e)
                continue
            removed.append(p)
    if removed:
        _logger.warning("removed %d leftover temp file(s) of an interrupted save in %s: %s", len(removed), directory,
                        ", ".join(p.name for p in removed))
    return removed


def resolve_resume_dir(resume_path: PathLike, output: Optional[PathLike] = None) -> Tuple[Path, Path]:
    """``(checkpoint file, run directory)`` for ``--resume PATH [-o OUTPUT]``.

    PATH may be a checkpoint file (the run continues in its parent directory) or a run directory
    (its ``last.pt``; the run continues in it). ``output`` redirects the continued run elsewhere.
    The directory recorded inside the checkpoint is never used: runs may be moved or copied.
    Raises ``FileNotFoundError`` when there is nothing to resume.
    """
    p = Path(resume_path)
    if p.is_dir():
        ckpt, run_dir = p / "last.pt", p
    else:
        ckpt, run_dir = p, p.parent
    if not ckpt.is_file():
        hint = f" ({p} is a directory without last.pt)" if p.is_dir() else ""
        raise FileNotFoundError(f"checkpoint to resume not found: {ckpt}{hint}")
    return ckpt, Path(output) if output is not None else run_dir


def check_writable(directory: PathLike) -> None:
    """Raise :class:`RunDirError` (one line) unless files can be created in ``directory`` (created if missing)."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise RunDirError(f"run directory {directory} exists and is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=directory)
    except OSError as e:
        raise RunDirError(f"run directory {directory} is not writable: {e.strerror or e}") from e
    os.close(fd)
    os.unlink(probe)
