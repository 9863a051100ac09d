"""The package's layers import one way: core <- modalities <- tasks <- engine <- runner <- cli.

Parses every module's imports (top level and inside functions) with ``ast``; no import is executed.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "unireplknet"

#: package -> packages it must never import
FORBIDDEN = {
    "core": {"modalities", "tasks", "engine", "runner", "cli"},
    "modalities": {"tasks", "engine", "runner", "cli"},
    "tasks": {"runner", "cli"},
    "engine": {"modalities", "tasks", "runner", "cli"},
    "runner": {"cli"},
    "ops": {"modalities", "tasks", "engine", "runner", "cli"},
    "layers": {"modalities", "tasks", "engine", "runner", "cli"},
}
CORE_FILES = {"model.py", "weights.py", "factory.py", "timm_models.py", "errors.py", "_extras.py", "complexity.py",
              "reparam.py", "export.py", "inference.py"}


def _package_of(path: Path) -> str:
    rel = path.relative_to(SRC)
    if len(rel.parts) == 1:
        return "core" if rel.name in CORE_FILES else rel.stem
    return rel.parts[0]


def _imports(path: Path) -> set[str]:
    """Absolute dotted names of the package modules imported by ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    else:
        parts = parts[:-1]  # the module's package
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("unireplknet")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[: len(parts) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.startswith("unireplknet"):
                out.add(mod)
                out |= {f"{mod}.{a.name}" for a in node.names}
    return out


def _top(name: str) -> str:
    parts = name.split(".")
    if len(parts) < 2:
        return "root"
    second = parts[1]
    return "core" if f"{second}.py" in CORE_FILES else second


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for path in SRC.rglob("*.py"):
        pkg = _package_of(path)
        for name in _imports(path):
            other = _top(name)
            if other not in ("root", pkg) and (SRC / other).is_dir() | (other == "core"):
                graph[pkg].add(other)
    return graph


def test_no_package_imports_a_layer_above_it():
    graph = _graph()
    bad = [(pkg, dep) for pkg, deps in graph.items() for dep in deps if dep in FORBIDDEN.get(pkg, set())]
    assert not bad, f"imports against the layer order: {bad}"


def test_no_import_cycle_between_packages():
    graph = _graph()

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    cycles = sorted(p for p in graph if p in reach(p))
    assert not cycles, f"packages in an import cycle: {cycles} ({dict(graph)})"


def test_nothing_below_cli_imports_cli():
    offenders = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
                 if _package_of(p) not in ("cli", "__main__") and any(_top(n) == "cli" for n in _imports(p))]
    assert not offenders


@pytest.mark.parametrize("module", ["unireplknet", "unireplknet.cli", "unireplknet.engine", "unireplknet.modalities"])
def test_light_imports_do_not_load_torch_or_timm(module):
    import subprocess
    import sys

    code = (f"import sys, {module}; bad = [m for m in ('torch', 'timm', 'torchvision') if m in sys.modules]; "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"import {module} loaded {out}"
