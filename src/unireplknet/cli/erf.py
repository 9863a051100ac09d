"""``unireplknet erf``: effective receptive field heat-maps (one model or several side by side) and area ratios."""
from __future__ import annotations

import argparse
from pathlib import Path

from unireplknet.cli import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``erf`` sub-command."""
    p = subparsers.add_parser(
        "erf",
        help="effective receptive field heat-map (PNG) and high-contribution area ratios",
        description="Accumulate the gradient of the central point of the last stage's output with respect to "
        "the input over N images, log-scale it (log10(x+1), rescaled to [0,1]) and draw it; print the "
        "high-contribution area ratios at t = 0.2/0.3/0.5/0.99 (RepLKNet's analysis). Repeat --model to "
        "compare models side by side on the same images.",
    )
    p.add_argument("--model", action="append", metavar="SPEC",
                   help="variant name (unireplknet_t), NAME:kN (every block's kernel set to N, e.g. "
                        "unireplknet_t:k3) or a checkpoint path (architecture read from it); repeat to compare "
                        "(default: unireplknet_t)")
    p.add_argument("--pretrained", action="append", metavar="TAG|PATH",
                   help="weights for the model at the same position ('none' for random init); "
                        "one value applies to every named variant")
    p.add_argument("--images", metavar="DIR",
                   help="directory of images (or .npy C x H x W arrays); default: built-in photos "
                        "from scikit-learn and matplotlib, with random crops")
    p.add_argument("--num-images", type=int, default=50, help="images to accumulate over (50, as in RepLKNet)")
    p.add_argument("--size", type=int, nargs="+", default=[1024], metavar="PX",
                   help="input size: one value (square) or H W (1024, as in RepLKNet)")
    p.add_argument("--in-chans", type=int, default=None,
                   help="input channels (default: a checkpoint's, else 3); 1 = grey images or spectrograms")
    p.add_argument("--layer-scale-init", type=float, default=None,
                   help="layer scale of randomly initialised variants (default 1e-6; 1.0 lets every residual "
                        "branch act at full strength, showing an architecture's ERF without weights)")
    p.add_argument("--label", action="append", help="panel title of the model at the same position")
    p.add_argument("--seed", type=int, default=0, help="seed for random crops and model init (0)")
    p.add_argument("--device", default="cpu", help="torch device (cpu)")
    p.add_argument("--save-maps", metavar="FILE.npz", help="also save the raw (unprocessed) maps, one array per model")
    p.add_argument("-o", "--output", "--out", dest="out", default="erf.png", help="output picture (erf.png)")
    p.set_defaults(func=run)


def _per_model(values: list | None, n: int, what: str) -> list:
    if not values:
        return [None] * n
    if len(values) == 1 and n > 1 and what == "--pretrained":
        return values * n
    if len(values) != n:
        raise UserError(f"give {what} once per --model ({n}), got {len(values)}")
    return values


def run(args: argparse.Namespace) -> int:
    """Compute, draw and tabulate the ERF of every ``--model``."""
    import numpy as np
    import torch

    from unireplknet import erf
    from unireplknet.weights import WeightsUnavailableError

    specs = args.model or ["unireplknet_t"]
    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".pdf", ".svg"):
        raise UserError(f"--out must end in .png, .jpg, .pdf or .svg, got {out.name!r}")
    if len(args.size) not in (1, 2):
        raise UserError(f"--size takes one or two values, got {len(args.size)}")
    size = (args.size[0], args.size[-1])
    pretrained = _per_model(args.pretrained, len(specs), "--pretrained")
    labels = _per_model(args.label, len(specs), "--label")
    if len(set(labels if args.label else specs)) != len(specs):
        raise UserError("two models have the same name: give each a --label")
    models = []
    for spec, pre in zip(specs, pretrained):
        torch.manual_seed(args.seed)
        pre = None if pre in (None, "", "none") else pre
        try:
            models.append(erf.build_erf_model(spec, pretrained=pre, in_chans=args.in_chans or 3,
                                              layer_scale_init_value=args.layer_scale_init))
        except WeightsUnavailableError as e:
            raise UserError(str(e)) from e
    chans = {m.in_chans for m in models}
    if args.in_chans is not None:
        chans.add(args.in_chans)
    if len(chans) != 1:
        raise UserError(f"the models take different input channels ({sorted(chans)}); compare models with one in_chans")
    in_chans = chans.pop()
    maps, raws, ratios = {}, {}, {}
    for spec, label, model in zip(specs, labels, models):
        name = label or spec
        model.to(args.device)
        inputs = erf.erf_inputs(args.num_images, size, in_chans, images=args.images, seed=args.seed)
        raw = erf.compute_erf(model, inputs, device=args.device, progress=True, total=args.num_images)
        raws[name] = raw
        maps[name] = erf.postprocess_erf(raw)
        ratios[name] = erf.area_ratios(maps[name])
        model.to("cpu")
        if hasattr(model, "stages"):
            print(f"{name}: theoretical receptive field {erf.theoretical_receptive_field(model)} px")
    src = args.images or "built-in photos"
    title = f"ERF over {args.num_images} images ({src}), {size[0]}x{size[1]}"
    erf.render_erf(maps, out, ratios=ratios, title=title)
    if args.save_maps:
        np.savez(args.save_maps, **{f"map{i}": raws[k] for i, k in enumerate(raws)}, names=np.array(list(raws)))
    print("high-contribution area ratio (square side):")
    print(erf.format_ratio_table(ratios))
    print(f"wrote {out}")
    return 0
