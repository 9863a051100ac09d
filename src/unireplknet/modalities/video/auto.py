"""``auto`` rules of the video modality: frame layout, frame size and clip length from a sample of the videos.

Layout: ``flow`` (frames stacked as channels, then the normal flow of consecutive frames: a motion
signal in pixels that does not depend on the scene's contrast; it beat ``diff`` on the development
scenes of ``examples/video_motion.py``, docs/video.md), or ``channels``
when a pretrained 2-D stem is loaded (the loader's stem adaptation, RGB repeated and divided by
``T``, is then exactly the documented inflation). Both keep neighbouring frames pixel-aligned, so
motion is a local feature that the very first convolution can see, and a clip costs the compute of
one frame instead of ``T`` tiled frames. ``--video-layout grid`` (the paper's tiling) or a recipe
overrides it.

Without a pretrained stem, ``auto`` also makes the model look at motion rather than at the few
scenes of a small training set: each clip is normalised by its own mean and standard deviation
(``clip_norm="clip"``: a scene's brightness and contrast no longer matter, and the frame
differences are measured against the clip's own contrast), and training clips get photometric
augmentation drawn once per clip and applied to every frame (colour jitter 0.4, grey 10 %, blur
20 %, pixel noise up to 0.03). With ``--pretrained`` the ImageNet normalisation the weights expect
is kept.
"""
from __future__ import annotations

import argparse
import logging
from typing import Any, Mapping

__all__ = ["auto_config", "SAMPLE", "GENERALIZE"]

logger = logging.getLogger(__name__)

#: how many training videos are opened to measure the data.
SAMPLE = 24

#: options that make a model trained from scratch rely on motion rather than on its training scenes.
GENERALIZE: dict[str, tuple[Any, str]] = {
    "clip_norm": ("clip", "each clip normalised by its own mean/std: scene brightness and contrast do not matter"),
    "clip_jitter": (0.4, "colour jitter, one draw per clip for all its frames (the motion is kept)"),
    "clip_gray": (0.1, "a tenth of the training clips in grey"),
    "clip_blur": (0.2, "a fifth of the training clips blurred (sigma 0.1-2 px)"),
    "clip_noise": (0.03, "pixel noise up to 0.03 on the 0-1 scale"),
}


def auto_config(cfg: Mapping[str, Any]) -> dict[str, tuple[Any, str]]:
    """``layout`` (``flow`` with :data:`GENERALIZE`, or ``channels`` with a pretrained stem), ``frame_size``
    from the median short side (32-224, multiple of 16); on a CPU a light clip (8 frames, one evaluation view) so a run fits the time
    budget (empty without folder data)."""
    if cfg.get("data") is None:
        return {}
    from ..base import sample_training_files
    from .datasets import open_video, video_splits

    # the run's own split rules (folders, CSV lists with segments, carved validation): never val or test videos
    files = sample_training_files(lambda: video_splits(argparse.Namespace(**dict(cfg)))[0], SAMPLE,
                                  int(cfg.get("seed") or 0))
    shorts, frames = [], []
    for f in files:
        try:
            src = open_video(str(f), backend="auto")
            info = src.info
            src.close()
        except Exception:  # reported by the pre-scan
            continue
        shorts.append(min(info.height, info.width))
        frames.append(info.num_frames)
    if not shorts:
        logger.info("auto: no training video could be read; layout, frame size and clip length keep their defaults")
        return {}
    shorts.sort()
    frames.sort()
    median = shorts[len(shorts) // 2]
    cpu = str(cfg.get("device", "auto")) == "cpu" or not _cuda()
    cap = 112 if cpu else 224
    size = int(min(cap, max(32, round(median / 16) * 16)))
    out: dict[str, tuple[Any, str]] = {
        "frame_size": (size, f"median short side of {len(shorts)} sampled videos is {median} px "
                             f"(clipped to 32-{cap}{' on a CPU' if cpu else ''})")}
    if cfg.get("pretrained"):
        out["layout"] = ("channels", "frames stacked as channels (pixel-aligned, so motion is local; one frame's "
                                     "compute); the pretrained stem is inflated exactly (RGB repeated, divided by T)")
    else:
        out["layout"] = ("flow", "frames stacked as channels plus the normal flow of consecutive frames: "
                                 "neighbouring frames stay pixel-aligned and the motion is handed over in pixels, "
                                 "independent of the scene's contrast; one frame's compute per clip")
        out.update(GENERALIZE)
    shortest = frames[0]
    n = 8 if cpu else 16
    stride = max(1, min(4, shortest // n)) if shortest else 1
    out["num_frames"] = (n, "8 frames per clip on a CPU" if cpu else "16 frames per clip (the paper's)")
    out["frame_stride"] = (stride, f"the shortest sampled video has {shortest} frames")
    if cpu:
        out["eval_clips"] = (1, "one evaluation clip on a CPU")
        out["eval_crops"] = (1, "one evaluation crop on a CPU")
        out["aa"] = ("", "no RandAugment on small CPU runs")
    return out


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
