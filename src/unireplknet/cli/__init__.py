"""The ``unireplknet`` command.

Each sub-command lives in its own module in this package and exposes
``register(subparsers) -> None``, which adds an ``argparse`` sub-parser whose
``func`` default is called with the parsed arguments and returns an exit code.
A module may also define ``prepare(parser, argv) -> None``: called with the
sub-command's own arguments before parsing, when that sub-command is the one
invoked, it adds flags that depend on other flags (``train --modality X``).
Modules are discovered automatically, so adding a command is adding a file.
Sub-command modules must keep their top-level imports light (no torch-heavy
work at import), so that ``unireplknet --help`` stays fast.
"""
from __future__ import annotations

import argparse
import functools
import importlib
import logging
import pkgutil
import sys
from typing import Any, Callable, Dict, List, Sequence

from unireplknet.errors import UserError

__all__ = ["main", "build_parser", "UserError"]


class _CommandParser(argparse.ArgumentParser):
    """Top-level parser: before parsing, runs the invoked sub-command's ``prepare`` hook (once)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prepare_hooks: Dict[str, Callable[[List[str]], None]] = {}

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        command = next((a for a in argv if not a.startswith("-")), None)
        hook = self.prepare_hooks.pop(command, None) if command is not None else None
        if hook is not None:
            hook(argv[argv.index(command) + 1:])
        return super().parse_known_args(argv, namespace)


def _version() -> str:
    from unireplknet import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every discovered sub-command."""
    parser = _CommandParser(prog="unireplknet", description="UniRepLKNet: one large-kernel backbone for every modality.")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output (-vv for debug); tracebacks for errors")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=argparse.ArgumentParser)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is None:
            continue
        before = set(sub.choices)
        register(sub)
        prepare = getattr(module, "prepare", None)
        if prepare is not None:
            for name in set(sub.choices) - before:
                parser.prepare_hooks[name] = functools.partial(prepare, sub.choices[name])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``unireplknet`` command; returns the process exit code.

    Every user or environment error (a :class:`~unireplknet.errors.UserError`, a missing or
    unreadable file, a read-only folder, a full disk) is one ``error: ...`` line and exit code 2;
    ``-v`` shows the traceback.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error (already printed by argparse)
        return int(e.code or 0) if not isinstance(e.code, str) else 2
    level = logging.WARNING - 10 * min(args.verbose + 1, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("onnxscript", "onnx_ir", "torch.onnx", "torch._dynamo", "torch._inductor", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (UserError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError,
            ValueError, KeyError) as e:
        if args.verbose:
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {msg}", file=sys.stderr)
        return 2
    except OSError as e:  # disk full, read-only file system, ...
        if args.verbose:
            raise
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        print(f"error: {e.strerror or e}{where}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        text = str(e)
        if "DataLoader worker" in text and "Error" in text and not args.verbose:
            # a worker's exception: report its last line (which names the file) only
            last = [ln for ln in text.splitlines() if ln.strip()][-1]
            print(f"error: {last.split(': ', 1)[-1] if 'Error: ' in last else last}", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
