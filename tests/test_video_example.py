"""A reduced run of examples/video_motion.py: clips made from real photos, encoded to mp4, decoded, trained on."""
from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import numpy as np
import torch

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "video_motion.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("video_motion_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_camera_motions_are_what_they_claim() -> None:
    ex = _load_example()
    photo = ex.load_photos()[0]
    rng = random.Random(0)
    pan = ex.camera_clip(photo, "pan_right", 8, 24, rng).astype(np.float32)
    # panning right: frame t+1 shifted left by some pixels matches frame t better than shifted right
    a, b = pan[3], pan[4]
    left = np.abs(a[:, 3:] - b[:, :-3]).mean()
    right = np.abs(a[:, :-3] - b[:, 3:]).mean()
    assert left < right
    mid = [ex.camera_clip(photo, m, 8, 24, random.Random(5))[4] for m in ("roll_cw", "roll_ccw")]
    assert np.abs(mid[0].astype(int) - mid[1].astype(int)).mean() < 25  # no tilt cue in the middle frame


def test_reduced_example_video_beats_single_frame(tmp_path: Path) -> None:
    ex = _load_example()
    result = ex.run(**ex.QUICK, seed=0, workers=1, workdir=tmp_path)
    assert result["train_clips"] == 8 * ex.QUICK["train_per_class"]
    assert result["input"] == [3, 48, 96]  # 8 frames of 24² in a 2 x 4 grid
    assert list((tmp_path / "train" / "pan_left").glob("*.mp4"))
    assert result["video_top1"] >= result["single_frame_top1"] + 10, result
    assert torch.get_num_threads() >= 1
