"""Video layouts that keep frames pixel-aligned (``channels``, ``diff``), the stem inflation, the layout-aware
baselines, and a CI-sized run of the camera-motion example through ``unireplknet train``."""
from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from unireplknet import UniRepLKNet
from unireplknet.modalities.base import TaskData
from unireplknet.modalities.video import datasets as vd
from unireplknet.modalities.video.transforms import (
    LAYOUTS,
    diff_channels,
    frames_to_image,
    image_size_for,
    image_to_frames,
    inflate_stem_weight,
    layout_channels,
    stack_channels,
)
from unireplknet.weights import adapt_input_conv

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "video_motion.py"


def _coded_clip(t: int = 6, h: int = 5, w: int = 7) -> torch.Tensor:
    """A clip whose value at (frame, channel) is ``10 * frame + channel`` plus a pixel ramp."""
    ramp = torch.arange(h * w, dtype=torch.float32).view(h, w) / 1000
    return torch.stack([torch.stack([10.0 * f + c + ramp for c in range(3)]) for f in range(t)])


def test_channels_layout_keeps_frame_order() -> None:
    clip = _coded_clip()
    image = stack_channels(clip)
    assert image.shape == (18, 5, 7)
    for f in range(6):
        for c in range(3):
            assert torch.equal(image[3 * f + c], clip[f, c])
    assert torch.equal(frames_to_image(clip, "channels"), image)
    assert torch.equal(image_to_frames(image, 6, "channels"), clip)
    batch = torch.stack([clip, clip + 1])
    assert torch.equal(frames_to_image(batch, "channels")[1], image + 1)


def test_diff_channels_are_consecutive_differences() -> None:
    clip = torch.randn(5, 3, 4, 4)
    image = diff_channels(clip)
    assert image.shape == (3 * (2 * 5 - 1), 4, 4) and layout_channels("diff", 5) == 27
    assert torch.equal(image[:15], stack_channels(clip))
    for t in range(4):
        assert torch.allclose(image[15 + 3 * t: 18 + 3 * t], clip[t + 1] - clip[t])
    assert torch.equal(image_to_frames(image, 5, "diff"), clip)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_round_trips(layout: str) -> None:
    clip = torch.randn(4, 3, 6, 6)
    image = frames_to_image(clip, layout)
    assert image.shape[0] == layout_channels(layout, 4)
    assert tuple(image.shape[1:]) == image_size_for(4, (6, 6), layout)
    assert torch.equal(image_to_frames(image, 4, layout), clip)


@pytest.mark.parametrize("layout", ["channels", "diff"])
def test_inflated_stem_matches_the_2d_model_on_a_static_clip(layout: str) -> None:
    torch.manual_seed(0)
    kw = dict(num_classes=5, depths=(1, 1, 1, 1), dims=(8, 16, 32, 64), kernel_sizes=((3,), (3,), (3,), (3,)))
    frames = 4
    m2d = UniRepLKNet(in_chans=3, **kw).eval()
    m3d = UniRepLKNet(in_chans=layout_channels(layout, frames), **kw).eval()
    sd = dict(m2d.state_dict())
    sd["downsample_layers.0.0.weight"] = inflate_stem_weight(sd["downsample_layers.0.0.weight"], frames, layout)
    m3d.load_state_dict(sd)
    frame = torch.randn(1, 3, 32, 32)
    static = frame.unsqueeze(1).expand(1, frames, 3, 32, 32)
    with torch.no_grad():
        out2d, out3d = m2d(frame), m3d(frames_to_image(static, layout))
    assert torch.allclose(out2d, out3d, atol=1e-5)  # the 1/T scaling makes the sum over frames a mean


def test_generic_stem_adaptation_is_the_channels_inflation() -> None:
    w = torch.randn(8, 3, 3, 3)
    assert torch.allclose(adapt_input_conv(w, 3 * 6), inflate_stem_weight(w, 6, "channels"))
    assert torch.equal(inflate_stem_weight(w, 6, "grid"), w)


def test_baseline_features_read_any_layout() -> None:
    clip = torch.randn(8, 3, 12, 12)
    feats = {}
    for layout in ("grid", "channels", "diff"):
        task = TaskData(train=None, val=None, num_classes=2, class_names=["a", "b"], in_chans=3, input_size=(1, 1),
                        meta={"layout": layout, "num_frames": 8, "grid": None})
        fns = vd.baseline_features(task)
        x = frames_to_image(clip, layout)
        feats[layout] = {k: fn(x) for k, fn in fns.items()}
    for layout in ("channels", "diff"):
        for k in ("frame_difference", "first_frame"):
            np.testing.assert_allclose(feats[layout][k], feats["grid"][k], rtol=1e-5, atol=1e-6)


def test_layout_flag_and_in_chans() -> None:
    parser = argparse.ArgumentParser()
    vd.add_train_args(parser)
    assert parser.parse_args(["--video-layout", "diff"]).layout == "diff"
    assert parser.parse_args(["--layout", "channels"]).layout == "channels"


def _load_example():
    spec = importlib.util.spec_from_file_location("video_motion_example_layouts", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_ci_sized_motion_example_learns_and_prints_baselines(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ex = _load_example()
    result = ex.run(train_per_class=32, val_per_class=4, test_per_class=8, frames=8, size=24, epochs=10, seed=0,
                    workers=0, workdir=tmp_path, layouts=("flow",))
    run = result["runs"][0]
    assert run["input"] == [3 * 8 + 2 * 7, 24, 24]
    assert result["photos"]["test photo"][0] not in result["photos"]["train/val photos"]
    # 8 classes, 64 clips of an unseen photo: well above chance (50 % measured) and above appearance alone
    assert run["test_top1"] >= 3 * result["chance"]
    assert run["test_top1"] > run["baselines"]["logreg[first_frame]"] + 15
    printed = capsys.readouterr().out
    assert "logreg[frame_difference]" in printed and "majority_class" in printed  # the runner's baseline table
    table = ex.format_results(result)
    assert "logreg[frame_difference]" in table and "flow" in table
    assert "frame_difference" in run["baselines"].__repr__()
