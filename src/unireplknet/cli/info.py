"""``unireplknet info``: variants with live parameter/MAC counts, the released weights, and whether training
runs on the compiled kernels."""
from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("info", help="variants (params, MACs) and released weights (accuracy)",
                              description="Table of variants with parameters and MACs counted live from the "
                                          "models (on the meta device: no memory, no compute), and the released "
                                          "weights with the accuracy the authors report.")
    p.add_argument("--size", type=int, default=224, help="input size for the MAC count (default 224)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=run)


def variant_rows(size: int = 224) -> list:
    """One dict per variant: depths, dims, params (train/deploy) and deploy MACs at ``size``."""
    from unireplknet import create_model, list_models
    from unireplknet.complexity import count_macs, count_params

    rows = []
    for name in list_models():
        train = create_model(name, device="meta")
        deploy = create_model(name, device="meta", deploy=True)
        rows.append(dict(model=name, depths=list(train.depths), dims=list(train.dims),
                         params_train=count_params(train), params_deploy=count_params(deploy),
                         macs=count_macs(deploy, (3, size, size))))
    return rows


def run(args: argparse.Namespace) -> int:
    from unireplknet.weights import PRETRAINED

    rows = variant_rows(args.size)
    weights = [dict(tag=w.tag, file=w.filename, classes=w.num_classes, size=w.input_size, top1=w.top1,
                    description=w.description) for w in PRETRAINED.values()]
    from unireplknet.ops import native

    kernels = native.status()
    if args.json:
        print(json.dumps({"variants": rows, "weights": weights, "training_kernels": kernels}, indent=1))
        return 0
    print(f"{'model':<16}{'depths':<16}{'dims':<24}{'params (train)':>16}{'params (deploy)':>17}"
          f"{'GMACs@' + str(args.size):>12}")
    for r in rows:
        print(f"{r['model']:<16}{','.join(map(str, r['depths'])):<16}{','.join(map(str, r['dims'])):<24}"
              f"{r['params_train'] / 1e6:>15.2f}M{r['params_deploy'] / 1e6:>16.2f}M{r['macs'] / 1e9:>12.2f}")
    print()
    print(f"{'released weights (pretrained=TAG)':<44}{'classes':>8}{'size':>6}{'top-1':>8}  description")
    for w in weights:
        top1 = f"{w['top1']:.2f}" if w["top1"] is not None else "-"
        print(f"{w['tag']:<44}{w['classes'] or '-':>8}{w['size']:>6}{top1:>8}  {w['description']}")
    print("\nWeights are fetched from the Hugging Face repo DingXiaoH/UniRepLKNet (or pass a local file path).")
    print(f"Compiled training kernels: {kernels}")
    return 0
