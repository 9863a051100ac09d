"""The ``flow`` video layout: frames stacked as channels, then the normal flow of consecutive frames."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest
import torch

from unireplknet import UniRepLKNet
from unireplknet.cli import main as cli_main
from unireplknet.modalities.video.datasets import load_for_predict
from unireplknet.modalities.video.transforms import (
    FLOW_CLAMP,
    flow_channels,
    frames_to_image,
    image_to_frames,
    inflate_stem_weight,
    layout_channels,
    normal_flow,
    stack_channels,
)

from test_video_train import make_videos, train_argv


def _moving_pattern(dx: float, dy: float, frames: int = 4, size: int = 32) -> torch.Tensor:
    """A smooth pattern translated by ``(dx, dy)`` pixels per frame; ``frames x 3 x size x size``."""
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    out = []
    for t in range(frames):
        x, y = xx - dx * t, yy - dy * t
        grey = torch.sin(2 * math.pi * x / 24) if dy == 0 else torch.sin(2 * math.pi * y / 24)
        out.append(torch.stack([grey, 0.5 * grey + 0.1, -grey]))
    return torch.stack(out)


def test_flow_layout_shape_and_channel_order() -> None:
    clip = torch.randn(5, 3, 8, 8)
    image = flow_channels(clip)
    assert layout_channels("flow", 5) == 5 * 3 + 2 * 4 == image.shape[0]
    assert torch.equal(frames_to_image(clip, "flow"), image)
    assert torch.equal(image[:15], stack_channels(clip))  # the frames first, in order
    flow = normal_flow(clip)
    assert flow.shape == (4, 2, 8, 8)
    for t in range(4):  # then u_t, v_t of the pair (t, t+1)
        assert torch.equal(image[15 + 2 * t], flow[t, 0]) and torch.equal(image[16 + 2 * t], flow[t, 1])
    assert torch.equal(image_to_frames(image, 5, "flow"), clip)
    batch = torch.stack([clip, 2 * clip])
    out = frames_to_image(batch, "flow")
    assert out.shape == (2, 23, 8, 8) and torch.allclose(out[0], image)
    assert torch.equal(image_to_frames(out, 5, "flow"), batch)
    assert torch.allclose(out[1, 15:], image[15:], atol=1e-5)  # contrast-invariant flow
    with pytest.raises(ValueError):
        image_to_frames(image[:-1], 5, "flow")


@pytest.mark.parametrize("speed", [0.5, 1.0, 2.0])
def test_translation_gives_normal_flow_the_right_way(speed: float) -> None:
    right = normal_flow(_moving_pattern(speed, 0))  # moving right: u > 0, v = 0
    inner = right[:, :, :, 3:-3]
    assert inner[:, 0].median().item() == pytest.approx(speed, rel=0.1)
    assert inner[:, 1].abs().max().item() < 1e-6
    up = normal_flow(_moving_pattern(0, -speed))  # moving up: v < 0 (rows grow downwards), u = 0
    inner = up[:, :, 3:-3, :]
    assert inner[:, 1].median().item() == pytest.approx(-speed, rel=0.1)
    assert inner[:, 0].abs().max().item() < 1e-6
    static = normal_flow(_moving_pattern(0, 0))
    assert static.abs().max().item() == 0
    # scaling the contrast or adding an offset leaves the flow unchanged; it is clamped
    assert torch.allclose(normal_flow(_moving_pattern(speed, 0) * 7 - 3), right, atol=1e-4)
    assert normal_flow(torch.randn(4, 3, 16, 16) * 100).abs().max().item() <= FLOW_CLAMP


def test_inflated_flow_stem_has_zero_flow_weights_and_matches_2d_on_a_static_clip() -> None:
    w = torch.randn(8, 3, 3, 3)
    inflated = inflate_stem_weight(w, 6, "flow")
    assert inflated.shape == (8, layout_channels("flow", 6), 3, 3)
    assert torch.equal(inflated[:, :18], inflate_stem_weight(w, 6, "channels"))
    assert torch.count_nonzero(inflated[:, 18:]) == 0
    torch.manual_seed(0)
    kw = dict(num_classes=5, depths=(1, 1, 1, 1), dims=(8, 16, 32, 64), kernel_sizes=((3,), (3,), (3,), (3,)))
    m2d = UniRepLKNet(in_chans=3, **kw).eval()
    m3d = UniRepLKNet(in_chans=layout_channels("flow", 4), **kw).eval()
    sd = dict(m2d.state_dict())
    sd["downsample_layers.0.0.weight"] = inflate_stem_weight(sd["downsample_layers.0.0.weight"], 4, "flow")
    m3d.load_state_dict(sd)
    frame = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        out3d = m3d(frames_to_image(frame.unsqueeze(1).expand(1, 4, 3, 32, 32), "flow"))
        assert torch.allclose(m2d(frame), out3d, atol=1e-5)


def test_train_predict_round_trip_with_the_flow_layout(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = make_videos(tmp_path / "clips")
    run = tmp_path / "run"
    argv = train_argv(root, run, "--eval-clips", "1", "--eval-crops", "1", "--video-layout", "flow",
                      "--clip-norm", "clip", "--no-deploy")
    assert cli_main(argv) == 0
    capsys.readouterr()
    record = json.loads((run / "model.json").read_text())
    assert record["config"]["layout"] == "flow"
    assert record["in_chans"] == layout_channels("flow", 4) == 18 and record["input_size"] == [16, 16]
    view = load_for_predict(str(root / "up" / "0.mp4"), argparse.Namespace(**record["config"]))
    assert view.shape == (18, 16, 16) and torch.isfinite(view).all()
    assert view[12:].abs().sum() > 0  # the bar moves: the flow channels are not empty
    assert cli_main(["predict", "-r", str(run), str(root / "down" / "1.mp4"), "--json", "-k", "2"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {t["label"] for t in line["top"]} == {"down", "up"}
