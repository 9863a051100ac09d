"""Camera-motion classification on photos unseen in training: the label is the motion, not the scene.

Clips are generated at run time from real photos shipped with installed packages
(scikit-learn's ``china`` and ``flower``, matplotlib's ``grace_hopper``, and for
training only three more matplotlib scenes: a shaded-relief elevation model, an MRI
slice and a small photo): a virtual camera looks at a random window of a photo and
pans left / right / up / down, zooms in / out or rolls clockwise / anticlockwise (8
classes, chance 12.5 %). The train and val clips come from the training scenes; the
test clips from one held-out photo, never seen in training. Clips are encoded to mp4
with PyAV and written as ``clips/{train,val,test}/<motion>/*.mp4``; each layout is
then trained through the real command, ``unireplknet train --modality video --data
clips --video-layout L ...`` with the options ``auto`` picks for a model trained from
scratch (per-clip normalisation, photometric augmentation drawn once per clip); the
first run also fits the simple baselines on the same splits (logistic regression on
optical-flow-like frame-difference features, on the first frame alone, on pooled
pixels) and prints them beside the model.

    python examples/video_motion.py                     # flow layout, then grid (CPU minutes)
    python examples/video_motion.py --layouts flow      # one run
    python examples/video_motion.py --quick             # the reduced pipeline run of the tests
    python examples/video_motion.py --layouts flow --held-out china --exclude flower --textures 4
        # a development run: another scene held out, flower used nowhere, 4 procedural training textures

Layouts: ``flow`` (``auto``'s choice) stacks the frames as channels (pixel-aligned) and adds the normal
flow of consecutive frames; ``diff`` adds the consecutive differences instead; ``grid`` is the paper's
tiling (frames side by side).
"""
from __future__ import annotations

import argparse
import json
import math
import random
import shlex
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F

from unireplknet.modalities.video.datasets import write_video

MOTIONS = ("pan_left", "pan_right", "pan_up", "pan_down", "zoom_in", "zoom_out", "roll_cw", "roll_ccw")


def load_photos() -> dict[str, torch.Tensor]:
    """Real photos shipped with installed packages, as ``3 x H x W`` float tensors in [0, 1].

    scikit-learn's two sample photos (``china``, ``flower``) and, when matplotlib is installed,
    its ``grace_hopper`` portrait.
    """
    from PIL import Image
    from sklearn.datasets import load_sample_images

    sk = load_sample_images()
    photos = {Path(name).stem: img for name, img in zip(sk.filenames, sk.images)}
    try:
        import matplotlib

        hopper = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
        if hopper.is_file():
            photos["grace_hopper"] = np.asarray(Image.open(hopper).convert("RGB"))
    except ImportError:
        pass
    return {k: torch.from_numpy(np.array(v)).permute(2, 0, 1).float() / 255 for k, v in photos.items()}


def extra_photos() -> dict[str, torch.Tensor]:
    """More real scenes that matplotlib ships, for training only, as ``3 x H x W`` float tensors in [0, 1].

    ``relief``: the Jacksboro fault elevation model (344 x 403 samples) rendered as a shaded relief
    (``matplotlib.colors.LightSource``, colour map ``gist_earth``); ``mri``: the 256 x 256 MRI slice
    ``s1045.ima.gz`` (grey); ``present``: the 128 x 128 photo ``Minduka_Present_Blue_Pack.png``.
    Empty without matplotlib.
    """
    try:
        import gzip

        import matplotlib
        from matplotlib import colormaps
        from matplotlib.colors import LightSource
        from PIL import Image
    except ImportError:
        return {}
    data = Path(matplotlib.get_data_path()) / "sample_data"
    out: dict[str, np.ndarray] = {}
    if (data / "jacksboro_fault_dem.npz").is_file():
        dem = np.load(data / "jacksboro_fault_dem.npz")["elevation"].astype(np.float64)
        rgb = LightSource(azdeg=315, altdeg=45).shade(dem, cmap=colormaps["gist_earth"], vert_exag=0.05,
                                                      blend_mode="overlay")[..., :3]
        out["relief"] = rgb
    if (data / "s1045.ima.gz").is_file():
        with gzip.open(data / "s1045.ima.gz") as f:
            mri = np.frombuffer(f.read(), np.uint16).reshape(256, 256).astype(np.float64)
        out["mri"] = np.repeat((mri / mri.max())[..., None], 3, axis=-1)
    if (data / "Minduka_Present_Blue_Pack.png").is_file():
        out["present"] = np.asarray(Image.open(data / "Minduka_Present_Blue_Pack.png").convert("RGB")) / 255.0
    return {k: torch.from_numpy(np.ascontiguousarray(v)).permute(2, 0, 1).float() for k, v in out.items()}


def power_law_textures(count: int, size: int = 384, seed: int = 0) -> dict[str, torch.Tensor]:
    """``count`` procedural colour textures (training scenes only), ``3 x size x size`` in [0, 1].

    Each is noise with a ``1 / f**beta`` amplitude spectrum, ``beta`` spread evenly over 1-3 (natural
    photos are near 1; larger is smoother: soft gradients, out-of-focus blobs), its three channels
    mixed by a random colour matrix and stretched to [0, 1]. Generic scene variety: nothing in them
    knows about the motions or about any test photo.
    """
    gen = torch.Generator().manual_seed(10_000 + seed)
    fy = torch.fft.fftfreq(size)[:, None]
    fx = torch.fft.rfftfreq(size)[None, :]
    f = torch.sqrt(fx**2 + fy**2).clamp_min(1.0 / size)
    out = {}
    for i in range(count):
        beta = 1.0 + 2.0 * (i / max(1, count - 1))
        spec = torch.randn(3, size, size // 2 + 1, dtype=torch.complex64, generator=gen) / f**beta
        field = torch.fft.irfft2(spec, s=(size, size))
        field = (field - field.mean(dim=(1, 2), keepdim=True)) / field.std(dim=(1, 2), keepdim=True)
        mixed = torch.einsum("ij,jhw->ihw", torch.randn(3, 3, generator=gen), field)
        lo, hi = mixed.quantile(0.01), mixed.quantile(0.99)
        out[f"texture{i}_beta{beta:.1f}"] = ((mixed - lo) / (hi - lo)).clamp(0, 1)
    return out


def rescaled_scenes(scenes: dict[str, torch.Tensor], factors: tuple[float, ...]) -> dict[str, torch.Tensor]:
    """Each scene resized by each factor (antialiased bilinear) as an extra training scene named ``name@xF``.

    The camera's window is a fixed fraction of the scene, so an enlarged scene shows less of it per
    window: smoother content under the same motion; a reduced one shows more detail. Factor 1 is skipped.
    """
    out = {}
    for name, photo in scenes.items():
        for fac in factors:
            if fac == 1:
                continue
            h, w = (max(16, round(d * fac)) for d in photo.shape[-2:])
            out[f"{name}@x{fac:g}"] = F.interpolate(photo[None], size=(h, w), mode="bilinear", align_corners=False,
                                                   antialias=True)[0].clamp(0, 1)
    return out


def camera_clip(photo: torch.Tensor, motion: str, frames: int, size: int, rng: random.Random) -> np.ndarray:
    """Render ``frames x size x size x 3`` uint8 frames of a virtual camera moving over ``photo``."""
    _, h, w = photo.shape
    half = rng.uniform(0.1, 0.16) * min(h, w)  # half-width of the middle view, pixels
    amount = rng.uniform(0.7, 1.0)  # speed of the motion, relative
    p = torch.linspace(-0.5, 0.5, frames)  # time, centred: every class looks alike in the middle frame
    shift = torch.zeros(frames, 2)  # (x, y) of the centre, pixels
    scale = torch.ones(frames)
    angle = torch.full((frames,), math.radians(rng.uniform(-20, 20)))  # a random tilt, the same for all classes
    if motion.startswith("pan"):
        d = {"pan_left": (-1, 0), "pan_right": (1, 0), "pan_up": (0, -1), "pan_down": (0, 1)}[motion]
        shift = p[:, None] * torch.tensor(d, dtype=torch.float32) * 2 * half * amount  # up to a view width
    elif motion.startswith("zoom"):
        f = 1 + 1.2 * amount
        scale = f ** (-p) if motion == "zoom_in" else f**p  # the view shrinks (zoom in) or grows
    else:
        angle = angle + p * math.radians(60 * amount) * (1 if motion == "roll_cw" else -1)
    reach = half * math.sqrt(2) * float(scale.max()) + float(shift.abs().max()) + 2
    cx, cy = rng.uniform(reach, w - 1 - reach), rng.uniform(reach, h - 1 - reach)
    u = torch.linspace(-1, 1, size)
    gy, gx = torch.meshgrid(u, u, indexing="ij")
    cos, sin = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    r = (half * scale)[:, None, None]
    x = cx + shift[:, 0, None, None] + r * (cos * gx - sin * gy)
    y = cy + shift[:, 1, None, None] + r * (sin * gx + cos * gy)
    grid = torch.stack([x / (w - 1) * 2 - 1, y / (h - 1) * 2 - 1], dim=-1)
    out = F.grid_sample(photo.expand(frames, -1, -1, -1), grid, mode="bilinear", align_corners=True)
    return (out.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def make_dataset(root: Path, photos: list[torch.Tensor], per_class: int, frames: int, size: int, seed: int) -> Path:
    """Write ``per_class`` mp4 clips per motion under ``root/<motion>/``, windows drawn from ``photos``."""
    rng = random.Random(seed)
    for motion in MOTIONS:
        (root / motion).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            clip = camera_clip(rng.choice(photos), motion, frames, size, rng)
            write_video(root / motion / f"{i:04d}.mp4", clip, fps=8)
    return root


def make_splits(root: Path, train_per_class: int, val_per_class: int, test_per_class: int, frames: int, size: int,
                seed: int, held_out: Optional[str] = None, extra: bool = True,
                exclude: tuple[str, ...] = (), textures: int = 0,
                scene_scales: tuple[float, ...] = (), val_scene: Optional[str] = None) -> dict[str, list[str]]:
    """``root/{train,val,test}/<motion>/*.mp4``: train and val from the training photos, test from a held-out one.

    The held-out photo (default: ``grace_hopper`` when matplotlib ships it, else ``flower``) is never
    seen in training or validation, so the test split measures motion, not memorised scenery. With
    ``extra`` the scenes of :func:`extra_photos` join the training photos (more varied scenes to learn
    motion on). Any scene may be held out (a development scene, e.g. ``relief``); the scenes named in
    ``exclude`` are used nowhere (development runs that keep a final test photo out entirely).
    ``val_scene``: the val clips come from this scene alone, and it is left out of training (so the
    epoch is selected on a scene the model did not train on); default: val from the training scenes.
    """
    photos = load_photos()
    scenes = {**photos, **(extra_photos() if extra else {})}
    held_out = held_out or ("grace_hopper" if "grace_hopper" in photos else "flower")
    for name in (held_out, *exclude, *([val_scene] if val_scene else [])):
        if name not in scenes:
            raise SystemExit(f"unknown scene {name!r}; available: {', '.join(scenes)}")
    if val_scene in (held_out, *exclude):
        raise SystemExit(f"the val scene {val_scene!r} is held out or excluded")
    seen = {name: p for name, p in scenes.items() if name not in (held_out, val_scene) and name not in exclude}
    seen.update(rescaled_scenes(seen, scene_scales))
    seen.update(power_law_textures(textures, seed=seed))
    make_dataset(root / "train", list(seen.values()), train_per_class, frames, size, seed)
    val = [scenes[val_scene]] if val_scene else list(seen.values())
    make_dataset(root / "val", val, val_per_class, frames, size, seed + 1)
    make_dataset(root / "test", [scenes[held_out]], test_per_class, frames, size, seed + 2)
    if val_scene:
        return {"train photos": list(seen), "val photo": [val_scene], "test photo": [held_out]}
    return {"train/val photos": list(seen), "test photo": [held_out]}


#: the small UniRepLKNet of the example: kernels 13/7/7/3, dims 32-256 (1.3 M parameters with the flow stem).
MODEL_ARGS = {"depths": [1, 1, 2, 1], "dims": [32, 64, 128, 256], "kernel_sizes": [[13], [7], [7, 7], [3]]}


def generalize_flags() -> list[str]:
    """The options ``auto`` picks for a model trained from scratch (``video.auto.GENERALIZE``), as flags.

    Per-clip normalisation and photometric augmentation drawn once per clip (colour jitter, grey,
    blur, pixel noise): generic, for any video data, and spelled out so the printed command is complete.
    """
    from unireplknet.modalities.video.auto import GENERALIZE

    flags: list[str] = []
    for key, (value, _) in GENERALIZE.items():
        flags += ["--" + key.replace("_", "-"), str(value)]
    return flags


def train_command(data: Path, out: Path, layout: str, frames: int, size: int, epochs: int, seed: int,
                  workers: int, batch_size: int = 32, generalize: bool = True, baselines: bool = True,
                  extra_args: tuple[str, ...] = ()) -> list[str]:
    """The ``unireplknet train`` arguments of one run (layout and epochs are the only differences between runs);
    ``extra_args`` are appended (later flags win)."""
    return ["train", "--modality", "video", "--data", str(data), "--video-layout", layout,
            "--model", "custom", "--model-args", json.dumps(MODEL_ARGS, separators=(",", ":")), "--epochs", str(epochs),
            "--batch-size", str(batch_size), "--lr", "4e-3", "--warmup-epochs", "1",
            "--num-frames", str(frames), "--frame-stride", "1", "--frame-size", str(size),
            "--train-scale", "1", "1", "--hflip", "0", "--aa", "none", "--reprob", "0",
            "--eval-clips", "1", "--eval-crops", "1", *(generalize_flags() if generalize else []),
            "--frame-cache", str(data.parent / "frame_cache"), "--num-workers", str(workers), "--seed", str(seed),
            "--baselines" if baselines else "--no-baselines", "--no-deploy", "-o", str(out), *extra_args]


def run_layout(data: Path, out: Path, layout: str, **kw: Any) -> dict[str, Any]:
    """Train through the real ``unireplknet train`` command; the test numbers of the model and the baselines."""
    from unireplknet.cli import main as cli_main

    argv = train_command(data, out, layout, **kw)
    t0 = time.time()
    if cli_main(argv) != 0:
        raise SystemExit(f"unireplknet train ({layout}) failed")
    summary = json.loads((out / "summary.json").read_text())
    test = summary["evaluation"]["test"]
    base = (summary.get("baselines") or {}).get("results", {}).get("test", {})
    record = json.loads((out / "model.json").read_text())
    return {"layout": layout, "epochs": kw["epochs"], "test_top1": round(100 * test["acc1"], 2),
            "val_top1": round(100 * summary["evaluation"]["val"]["acc1"], 2),
            "baselines": {k: round(100 * v, 2) for k, v in base.items()},
            "input": [record["in_chans"], *record["input_size"]], "seconds": round(time.time() - t0, 1),
            "command": "unireplknet " + " ".join(argv)}


def run(
    train_per_class: int = 192,
    val_per_class: int = 16,
    test_per_class: int = 32,
    frames: int = 8,
    size: int = 32,
    epochs: int = 12,
    seed: int = 0,
    workers: int = 1,
    threads: int = 1,
    workdir: Optional[Path] = None,
    layouts: tuple[str, ...] = ("flow", "grid"),
    held_out: Optional[str] = None,
    grid_epochs: Optional[int] = None,
    extra: bool = True,
    generalize: bool = True,
    exclude: tuple[str, ...] = (),
    extra_args: tuple[str, ...] = (),
    textures: int = 0,
    scene_scales: tuple[float, ...] = (),
    val_scene: Optional[str] = None,
) -> dict:
    """Generate the clips, train one run per layout through ``unireplknet train``; return their test numbers.

    The first layout fits the baselines; later runs use the same splits and skip them. ``grid`` trains
    for ``grid_epochs`` (``None``: ``epochs``; fewer for a reduced run, it costs about twice the time
    of ``flow`` per epoch here). ``extra`` adds :func:`extra_photos` to the training scenes; ``generalize``
    passes :func:`generalize_flags` (both on: ``False`` reproduces the earlier, scene-bound setting).
    Development options (see :func:`make_splits`): ``exclude`` keeps scenes out of every split,
    ``textures`` and ``scene_scales`` add training scenes, ``val_scene`` draws val from one scene left
    out of training, ``extra_args`` are appended to every
    ``unireplknet train`` command.
    """
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(workdir or tmp)
            t0 = time.time()
            photos = make_splits(root / "clips", train_per_class, val_per_class, test_per_class, frames, size,
                                 seed, held_out, extra, exclude, textures, scene_scales, val_scene)
            data_s = time.time() - t0
            runs = []
            for i, layout in enumerate(layouts):
                n = grid_epochs if layout == "grid" and grid_epochs else epochs
                runs.append(run_layout(root / "clips", root / "runs" / layout, layout, frames=frames, size=size,
                                       epochs=n, seed=seed, workers=workers, generalize=generalize,
                                       baselines=i == 0, extra_args=extra_args))
            first = runs[0]["baselines"]
            for r in runs[1:]:
                r["baselines"] = {**first, **r["baselines"]}  # the same splits: the first run's baselines
    finally:
        torch.set_num_threads(old_threads)
    return {"classes": list(MOTIONS), "photos": photos, "clips_per_class": {
        "train": train_per_class, "val": val_per_class, "test": test_per_class},
        "chance": round(100 / len(MOTIONS), 2), "data_seconds": round(data_s, 1), "runs": runs}


def format_results(result: dict) -> str:
    """The comparison table: each layout's test accuracy beside the baselines of the same run."""
    lines = [f"held-out photo {result['photos']['test photo'][0]} (test), chance {result['chance']:.1f} %"]
    keys = ["logreg[frame_difference]", "logreg[first_frame]", "logreg[pixels]"]
    lines.append(f"{'layout':<10}{'input':>14}{'epochs':>7}{'ours test (val)':>18}" + "".join(f"{k:>26}" for k in keys)
                 + f"{'time (s)':>10}")
    for r in result["runs"]:
        shape = "x".join(str(v) for v in r["input"])
        ours = f"{r['test_top1']:.2f}% ({r['val_top1']:.1f}%)"
        lines.append(f"{r['layout']:<10}{shape:>14}{r['epochs']:>7}{ours:>18}"
                     + "".join(f"{r['baselines'].get(k, float('nan')):>25.2f}%" for k in keys)
                     + f"{r['seconds']:>10.1f}")
    return "\n".join(lines)


# The reduced run of the tests: the whole pipeline on a few clips (learning checked by the slow test).
QUICK = dict(train_per_class=4, val_per_class=2, test_per_class=2, frames=8, size=24, epochs=1, layouts=("flow",))


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-per-class", type=int, default=192)
    parser.add_argument("--val-per-class", type=int, default=16)
    parser.add_argument("--test-per-class", type=int, default=32)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=32, help="frame side in pixels")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--layouts", default="flow,grid", help="comma-separated --video-layout values, one run each")
    parser.add_argument("--held-out", default=None, help="photo kept for the test split (default grace_hopper)")
    parser.add_argument("--grid-epochs", type=int, default=0,
                        help="epochs of the grid run, fewer for a reduced run (default 0: --epochs)")
    parser.add_argument("--no-extra-photos", dest="extra", action="store_false",
                        help="train on the two other sample photos only (no matplotlib scenes)")
    parser.add_argument("--no-generalize", dest="generalize", action="store_false",
                        help="ImageNet normalisation and no photometric augmentation (the earlier setting)")
    parser.add_argument("--exclude", default="",
                        help="comma-separated scenes used nowhere (development runs that keep a test photo out)")
    parser.add_argument("--train-args", default="",
                        help="extra 'unireplknet train' flags appended to every run, e.g. \"--clip-blur 0.5\"")
    parser.add_argument("--textures", type=int, default=0,
                        help="procedural power-law textures added as training scenes (default 0)")
    parser.add_argument("--scene-scales", default="",
                        help="comma-separated factors: each training scene also resized by each (e.g. 2)")
    parser.add_argument("--val-scene", default=None,
                        help="draw the val clips from this scene alone and leave it out of training "
                             "(epoch selection on an unseen scene; default: val from the training scenes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="DataLoader workers (decoding happens there)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for training")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the generated clips and runs here")
    parser.add_argument("--quick", action="store_true", help="the reduced run used by the tests")
    a = parser.parse_args(argv)
    kw = dict(train_per_class=a.train_per_class, val_per_class=a.val_per_class, test_per_class=a.test_per_class,
              frames=a.frames, size=a.size, epochs=a.epochs, layouts=tuple(a.layouts.split(",")),
              grid_epochs=a.grid_epochs or None, extra=a.extra, generalize=a.generalize,
              exclude=tuple(n for n in a.exclude.split(",") if n), extra_args=tuple(shlex.split(a.train_args)),
              textures=a.textures, scene_scales=tuple(float(v) for v in a.scene_scales.split(",") if v),
              val_scene=a.val_scene)
    if a.quick:
        kw.update(QUICK)
    result = run(**kw, seed=a.seed, workers=a.workers, threads=a.threads, workdir=a.workdir, held_out=a.held_out)
    print(json.dumps(result, indent=2))
    print(format_results(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
