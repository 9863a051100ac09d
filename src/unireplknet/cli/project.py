"""``unireplknet project FILE --out views.png``: a point cloud's three depth views, side by side."""
from __future__ import annotations

import argparse
from pathlib import Path

from unireplknet.cli import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``project`` sub-command."""
    p = subparsers.add_parser(
        "project",
        help="save the three orthographic depth views of a point cloud or mesh as a PNG",
        description="Project a point cloud (.npy/.npz/.txt/.xyz/.ply) or mesh (.off/.obj/.stl) to the "
        "three depth views the point modality feeds the backbone, and save them side by side.",
    )
    p.add_argument("file", help="point-cloud or mesh file")
    p.add_argument("-o", "--output", "--out", dest="out", required=True, help="output image (.png)")
    p.add_argument("--resolution", type=int, default=224, help="pixels per view side (224)")
    p.add_argument("--num-points", type=int, default=2048, help="points sampled from the cloud (2048)")
    p.add_argument("--sampling", choices=("fps", "random"), default="fps", help="point sampling (fps)")
    p.add_argument("--splat", type=int, default=1, help="odd splat size in pixels (1)")
    p.add_argument("--cmap", default="viridis", help="matplotlib colour map (viridis)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Project ``args.file`` and write ``args.out``."""
    from unireplknet._extras import require
    from unireplknet.modalities.point.datasets import views_for_file

    src = Path(args.file)
    if not src.exists():
        raise UserError(f"no such file: {src}")
    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".pdf", ".svg"):
        raise UserError(f"--out must end in .png, .jpg, .pdf or .svg, got {out.name!r}")
    views = views_for_file(str(src), num_points=args.num_points, resolution=args.resolution,
                           splat=args.splat, sampling=args.sampling)
    matplotlib = require("matplotlib", "train", "saving the projected views")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 3, figsize=(9.6, 3.4))
    for k, (ax, name) in enumerate(zip(axes, "xyz")):
        img = np.ma.masked_equal(views[k].numpy(), 0.0)  # empty pixels drawn as background
        ax.imshow(img, cmap=args.cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(f"view along {name}")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{src.name}: depth (bright = near)", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    print(f"wrote {out} ({args.resolution}x{args.resolution} per view, {views.shape[0]} views)")
    return 0
