"""Start-up cost of the package and the command, against ``import torch`` in the same run.

    python benchmarks/import_time.py [--repeats 5]

Each measurement is a fresh interpreter (``python -c ...``), best of ``--repeats`` (other jobs only add
time). Reports: ``import torch``; ``import unireplknet`` (and what it costs beyond torch when torch is
also imported); ``unireplknet --help`` and each sub-command's ``--help``.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

COMMANDS = ["train", "eval", "predict", "export", "convert", "benchmark", "info", "erf", "forecast", "kernels",
            "project", "audio-stats", "shard"]


def best_time(argv: list[str], repeats: int) -> float:
    """Best wall time of ``repeats`` runs of ``argv`` (seconds)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", default=None, help="also write the results to this file")
    args = ap.parse_args()
    py = [sys.executable, "-c"]
    res = {
        "python": best_time(py + ["pass"], args.repeats),
        "import torch": best_time(py + ["import torch"], args.repeats),
        "import unireplknet": best_time(py + ["import unireplknet"], args.repeats),
        "import torch, unireplknet; create_model": best_time(
            py + ["import torch, unireplknet; unireplknet.create_model"], args.repeats),
        "unireplknet --help": best_time([sys.executable, "-m", "unireplknet", "--help"], args.repeats),
    }
    for cmd in COMMANDS:
        res[f"unireplknet {cmd} --help"] = best_time([sys.executable, "-m", "unireplknet", cmd, "--help"], args.repeats)
    extra = res["import torch, unireplknet; create_model"] - res["import torch"]
    width = max(map(len, res))
    for k, v in res.items():
        print(f"{k:<{width}}  {v:6.3f} s")
    print(f"{'unireplknet beyond torch (import + create_model lookup)':<{width}}  {extra:6.3f} s")
    slowest = max((v, k) for k, v in res.items() if k.endswith("--help"))
    print(f"slowest --help: {slowest[1]} {slowest[0]:.3f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**res, "beyond_torch": extra}, f, indent=1)


if __name__ == "__main__":
    main()
