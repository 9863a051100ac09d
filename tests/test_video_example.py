"""A reduced run of examples/video_motion.py: clips made from real photos, encoded to mp4, trained on through
``unireplknet train``."""
from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from unireplknet.modalities.video.datasets import ClipSampling, read_clips, write_video

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "video_motion.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("video_motion_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_camera_motions_are_what_they_claim() -> None:
    ex = _load_example()
    photo = ex.load_photos()["china"]
    rng = random.Random(0)
    pan = ex.camera_clip(photo, "pan_right", 8, 24, rng).astype(np.float32)
    # panning right: frame t+1 shifted left by some pixels matches frame t better than shifted right
    a, b = pan[3], pan[4]
    left = np.abs(a[:, 3:] - b[:, :-3]).mean()
    right = np.abs(a[:, :-3] - b[:, 3:]).mean()
    assert left < right
    cw, ccw = (ex.camera_clip(photo, m, 8, 24, random.Random(5)).astype(np.float32) for m in ("roll_cw", "roll_ccw"))
    mid, end = np.abs(cw[4] - ccw[4]).mean(), np.abs(cw[7] - ccw[7]).mean()
    assert mid < 0.5 * end  # the middle frames nearly agree (no tilt cue), the ends differ


def test_mp4_round_trip_keeps_the_motion(tmp_path: Path) -> None:
    ex = _load_example()
    clip = ex.camera_clip(ex.load_photos()["flower"], "zoom_in", 8, 24, random.Random(2))
    path = write_video(tmp_path / "zoom.mp4", clip, fps=8)
    decoded = read_clips(path, ClipSampling(8, 1))[0].permute(0, 2, 3, 1).numpy().astype(np.float32)
    err = np.abs(decoded - clip).mean(axis=(1, 2, 3))
    steps = np.abs(np.diff(clip.astype(np.float32), axis=0)).mean(axis=(1, 2, 3))
    assert err.max() < 12 and err.max() < steps.min()  # codec error is below the frame-to-frame change


def test_reduced_example_pipeline(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ex = _load_example()
    threads = torch.get_num_threads()
    result = ex.run(**ex.QUICK, seed=0, workers=0, workdir=tmp_path)
    assert torch.get_num_threads() == threads  # restored
    q = ex.QUICK
    assert len(list((tmp_path / "clips" / "train" / "pan_left").glob("*.mp4"))) == q["train_per_class"]
    assert len(list((tmp_path / "clips" / "test" / "zoom_in").glob("*.mp4"))) == q["test_per_class"]
    assert result["photos"]["test photo"][0] not in result["photos"]["train/val photos"]
    assert list((tmp_path / "frame_cache").glob("*.npz"))
    (run,) = result["runs"]
    assert run["layout"] == "flow" and run["input"] == [3 * q["frames"] + 2 * (q["frames"] - 1), q["size"], q["size"]]
    n_test = 8 * q["test_per_class"]
    acc = run["test_top1"]
    assert 0 <= acc <= 100 and acc * n_test / 100 == pytest.approx(round(acc * n_test / 100), abs=0.01)
    assert {"logreg[frame_difference]", "logreg[first_frame]", "majority_class"} <= set(run["baselines"])
    assert "--video-layout flow" in run["command"] and "logreg[frame_difference]" in ex.format_results(result)
    assert "--clip-norm clip" in run["command"] and "--clip-jitter" in run["command"]  # auto's choices, spelled out
    assert {"relief", "mri", "present"} <= set(result["photos"]["train/val photos"])  # more training scenes


def test_extra_scenes_are_real_images_and_the_test_photo_stays_unseen(tmp_path: Path) -> None:
    ex = _load_example()
    extra = ex.extra_photos()
    assert set(extra) == {"relief", "mri", "present"}
    for name, photo in extra.items():
        assert photo.shape[0] == 3 and min(photo.shape[1:]) >= 128 and 0 <= photo.min() and photo.max() <= 1
        assert photo.std() > 0.05, name  # textured, not blank
    photos = ex.make_splits(tmp_path, 1, 1, 1, 4, 16, 0, held_out="flower")
    assert photos["test photo"] == ["flower"] and "flower" not in photos["train/val photos"]
    plain = ex.make_splits(tmp_path / "plain", 1, 1, 1, 4, 16, 0, held_out="flower", extra=False)
    assert plain["train/val photos"] == ["china", "grace_hopper"]
    assert ex.generalize_flags()[:2] == ["--clip-norm", "clip"]


def test_procedural_textures_and_rescaled_scenes() -> None:
    ex = _load_example()
    tex = ex.power_law_textures(3, size=64, seed=0)
    assert len(tex) == 3 and all(t.shape == (3, 64, 64) and 0 <= t.min() and t.max() <= 1 for t in tex.values())
    again = ex.power_law_textures(3, size=64, seed=0)
    assert all(torch.equal(tex[k], again[k]) for k in tex)  # deterministic
    rough = [float((t[:, :, 1:] - t[:, :, :-1]).abs().mean()) for t in tex.values()]
    assert rough[0] > rough[1] > rough[2]  # a larger spectral exponent is smoother
    scenes = ex.rescaled_scenes({"a": torch.rand(3, 40, 60)}, (1.0, 2.0, 0.5))
    assert {k: tuple(v.shape) for k, v in scenes.items()} == {"a@x2": (3, 80, 120), "a@x0.5": (3, 20, 30)}


def test_development_splits_hold_out_any_scene_and_exclude_others(tmp_path: Path) -> None:
    ex = _load_example()
    photos = ex.make_splits(tmp_path, 1, 1, 1, 4, 16, 0, held_out="china", exclude=("flower",), textures=2,
                            scene_scales=(2.0,))
    seen = photos["train/val photos"]
    assert photos["test photo"] == ["china"] and "china" not in seen and not any("flower" in s for s in seen)
    assert "grace_hopper@x2" in seen and sum(s.startswith("texture") for s in seen) == 2
    relief = ex.make_splits(tmp_path / "relief", 1, 1, 1, 4, 16, 0, held_out="relief")
    assert relief["test photo"] == ["relief"] and "relief" not in relief["train/val photos"]
    with pytest.raises(SystemExit):
        ex.make_splits(tmp_path / "bad", 1, 1, 1, 4, 16, 0, held_out="china", exclude=("nope",))
