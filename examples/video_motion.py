"""Camera-motion classification: the label is the motion, so a single frame cannot tell it.

Clips are generated at run time from the two photos scikit-learn ships
(``load_sample_images``): a virtual camera looks at a random window of a photo
and pans left / right / up / down, zooms in / out or rolls clockwise /
anticlockwise. Each clip is encoded to mp4 with PyAV, then decoded back through
``unireplknet.data.video`` (class-per-folder dataset, DataLoader workers),
tiled into one image and fed to a small UniRepLKNet. The same network trained
on one frame of each clip is the baseline; it can only guess (chance 1/8).

    python examples/video_motion.py            # a few CPU minutes
    python examples/video_motion.py --quick    # the reduced pipeline run of the tests (seconds)
"""
from __future__ import annotations

import argparse
import json
import math
import random
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from unireplknet import UniRepLKNet
from unireplknet.data.video import ClipSampling, VideoClipDataset, scan_video_folder, write_video
from unireplknet.modalities.video import ClipAugment

MOTIONS = ("pan_left", "pan_right", "pan_up", "pan_down", "zoom_in", "zoom_out", "roll_cw", "roll_ccw")


def load_photos() -> list[torch.Tensor]:
    """The scikit-learn sample photos as ``3 x H x W`` float tensors in [0, 1]."""
    from sklearn.datasets import load_sample_images

    return [torch.from_numpy(np.array(img)).permute(2, 0, 1).float() / 255 for img in load_sample_images().images]


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


def make_dataset(root: Path, per_class: int, frames: int, size: int, seed: int) -> Path:
    """Write ``per_class`` mp4 clips per motion under ``root/<motion>/``."""
    rng = random.Random(seed)
    photos = load_photos()
    for motion in MOTIONS:
        (root / motion).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            clip = camera_clip(rng.choice(photos), motion, frames, size, rng)
            write_video(root / motion / f"{i:04d}.mp4", clip, fps=8)
    return root


class OneFrame(torch.utils.data.Dataset):
    """The baseline's view of a clip dataset: only frame ``index`` of each (tiled) clip."""

    def __init__(self, clips: VideoClipDataset, index: int, frames: int) -> None:
        self.clips, self.index, self.frames = clips, index, frames

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from unireplknet.modalities.video import untile_frames

        image, label = self.clips[i]
        return untile_frames(image, self.frames)[self.index], label


def tiny_model(num_classes: int) -> UniRepLKNet:
    """A small UniRepLKNet. Stage 1 (stride 4) sees a 24² frame as 6 x 6 cells, so its kernel 13 reaches the
    same place in the neighbouring tiles: the large kernel is what lets a ConvNet compare frames."""
    return UniRepLKNet(
        in_chans=3,
        num_classes=num_classes,
        depths=(1, 1, 2, 1),
        dims=(16, 32, 64, 128),
        kernel_sizes=((13,), (7,), (7, 7), (3,)),
    )


def train_and_eval(
    train_set: torch.utils.data.Dataset, val_set: torch.utils.data.Dataset, epochs: int, seed: int, workers: int
) -> float:
    """Train a fresh tiny model with AdamW + cosine schedule; return held-out top-1 accuracy (%)."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    model = tiny_model(len(MOTIONS))
    loader = DataLoader(train_set, batch_size=32, shuffle=True, num_workers=workers, persistent_workers=workers > 0)
    steps = epochs * len(loader)
    opt = torch.optim.AdamW(model.parameters(), lr=4e-3, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=4e-3, total_steps=steps, pct_start=0.1)
    for _ in range(epochs):
        model.train()
        for x, y in loader:
            loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in DataLoader(val_set, batch_size=64, num_workers=workers):
            correct += int((model(x).argmax(-1) == y).sum())
            total += len(y)
    return 100.0 * correct / total


def run(
    train_per_class: int = 64,
    val_per_class: int = 32,
    frames: int = 8,
    size: int = 24,
    epochs: int = 30,
    seed: int = 0,
    workers: int = 1,
    threads: int = 1,
    workdir: Optional[Path] = None,
    crop_scale: float = 1.0,
) -> dict:
    """Generate the data, train the video model and the single-frame baseline; return their accuracies."""
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _run(train_per_class, val_per_class, frames, size, epochs, seed, workers, workdir, crop_scale)
    finally:
        torch.set_num_threads(old_threads)


def _run(
    train_per_class: int, val_per_class: int, frames: int, size: int, epochs: int, seed: int, workers: int,
    workdir: Optional[Path], crop_scale: float,
) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(workdir or tmp)
        t0 = time.time()
        make_dataset(root / "train", train_per_class, frames, size, seed)
        make_dataset(root / "val", val_per_class, frames, size, seed + 1)
        train_records, classes = scan_video_folder(root / "train", MOTIONS)
        val_records, _ = scan_video_folder(root / "val", MOTIONS)
        sampling = ClipSampling(num_frames=frames, stride=1)
        # no flips: a mirrored pan left is a pan right
        augment = ClipAugment(size=(size, size), scale=(crop_scale, 1.0), ratio=(1.0, 1.0), hflip=0.0)
        cache = root / "frame_cache"
        train_set = VideoClipDataset(train_records, sampling, (size, size), augment=augment, cache_dir=cache)
        val_set = VideoClipDataset(val_records, sampling, (size, size), cache_dir=cache)
        t1 = time.time()
        video_acc = train_and_eval(train_set, val_set, epochs, seed, workers)
        t2 = time.time()
        mid = frames // 2
        one_train, one_val = OneFrame(train_set, mid, frames), OneFrame(val_set, mid, frames)
        base_acc = train_and_eval(one_train, one_val, epochs, seed, workers)
        t3 = time.time()
        input_shape = list(val_set[0][0].shape)
    return {
        "classes": list(classes),
        "train_clips": len(train_records),
        "val_clips": len(val_records),
        "input": input_shape,
        "video_top1": round(video_acc, 2),
        "single_frame_top1": round(base_acc, 2),
        "chance": round(100 / len(classes), 2),
        "seconds": {"data": round(t1 - t0, 1), "video": round(t2 - t1, 1), "baseline": round(t3 - t2, 1)},
    }


# The reduced run of the tests: checks the whole pipeline in seconds; too short to learn the motions.
QUICK = dict(train_per_class=6, val_per_class=3, frames=8, size=24, epochs=1)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-per-class", type=int, default=64)
    parser.add_argument("--val-per-class", type=int, default=32)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=24, help="frame side in pixels")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="DataLoader workers (decoding happens there)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for training")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the generated clips here")
    parser.add_argument("--crop-scale", type=float, default=1.0, help="smallest random-crop area (1: no crop)")
    parser.add_argument("--quick", action="store_true", help="the reduced run used by the tests")
    a = parser.parse_args(argv)
    kw = dict(
        train_per_class=a.train_per_class, val_per_class=a.val_per_class, frames=a.frames, size=a.size, epochs=a.epochs
    )
    if a.quick:
        kw.update(QUICK)
    result = run(**kw, seed=a.seed, workers=a.workers, threads=a.threads, workdir=a.workdir, crop_scale=a.crop_scale)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
