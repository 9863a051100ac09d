"""Clip-consistent photometric augmentation and per-clip normalisation of the video modality: every frame of
a clip gets the same parameters, so the motion between frames is kept."""
from __future__ import annotations

import argparse
import math
import random

import pytest
import torch

from unireplknet.modalities.video import datasets as vd
from unireplknet.modalities.video.transforms import (
    ClipAugment,
    adjust_clip,
    frames_to_image,
    gaussian_blur,
    normalize_per_clip,
)


def _moving_clip(t: int = 5, size: int = 20, step: int = 2, seed: int = 0) -> torch.Tensor:
    """uint8 ``T x 3 x size x size``: one random texture shifted ``step`` pixels right per frame (circularly)."""
    g = torch.Generator().manual_seed(seed)
    texture = torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8)
    return torch.stack([texture.roll(step * i, dims=-1) for i in range(t)])


def test_per_clip_normalisation_uses_one_map_for_all_frames() -> None:
    clip = _moving_clip().float() / 255
    x = normalize_per_clip(clip)
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(x.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=0.05)  # eps = 0.01 on ~0.29
    # the same affine map for every frame: frame t is still frame 0 shifted
    for t in range(1, clip.shape[0]):
        assert torch.allclose(x[t], x[0].roll(2 * t, dims=-1), atol=1e-5)
    # brightness and contrast of the scene do not matter (up to eps)
    assert torch.allclose(normalize_per_clip(0.5 * clip + 0.2), x, rtol=0.06, atol=0.01)
    # uint8 input is read on the 0..1 scale
    assert torch.allclose(normalize_per_clip(_moving_clip()), x, atol=1e-5)


def test_per_clip_normalisation_keeps_static_clips_static_and_flat_clips_flat() -> None:
    frame = torch.rand(3, 8, 8)
    static = frame.expand(4, 3, 8, 8)
    x = normalize_per_clip(static)
    assert torch.equal(x[1:] - x[:-1], torch.zeros(3, 3, 8, 8))
    flat = torch.full((4, 3, 8, 8), 0.7)
    assert normalize_per_clip(flat).abs().max() < 1e-4


@pytest.mark.parametrize(
    "params",
    [dict(brightness=1.3), dict(saturation=0.4), dict(hue=1.0), dict(grayscale=True), dict(blur_sigma=1.2),
     dict(brightness=0.8, saturation=1.5, hue=-0.7, blur_sigma=0.6)],
)
def test_adjust_clip_changes_every_frame_alike(params: dict) -> None:
    clip = _moving_clip().float() / 255
    out = adjust_clip(clip, **params)
    assert not torch.allclose(out, clip, atol=1e-3)  # it did something
    for t in range(clip.shape[0]):  # frame t of the clip's change is the change of frame t alone
        assert torch.allclose(out[t], adjust_clip(clip[t : t + 1], **params)[0], atol=1e-5)


def test_adjust_clip_contrast_uses_the_clip_mean() -> None:
    clip = _moving_clip().float() / 255
    out = adjust_clip(clip, contrast=0.5)
    weights = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
    grey = (clip * weights).sum(-3, keepdim=True).mean()
    assert torch.allclose(out, (clip - grey) * 0.5 + grey, atol=1e-6)
    for t in range(1, clip.shape[0]):  # still a pure shift: the motion survives
        assert torch.allclose(out[t], out[0].roll(2 * t, dims=-1), atol=1e-6)


def test_hue_rotation_turns_about_the_grey_axis() -> None:
    red = torch.zeros(1, 3, 2, 2)
    red[:, 0] = 1.0
    green = adjust_clip(red, hue=2 * math.pi / 3)  # a third of a turn maps R -> G -> B -> R
    assert torch.allclose(green[0, :, 0, 0], torch.tensor([0.0, 1.0, 0.0]), atol=1e-5)
    grey = torch.full((2, 3, 4, 4), 0.4)
    assert torch.allclose(adjust_clip(grey, hue=0.9), grey, atol=1e-6)


def test_gaussian_blur_keeps_constants_and_smooths() -> None:
    const = torch.full((2, 3, 9, 9), 0.3)
    assert torch.allclose(gaussian_blur(const, 1.5), const, atol=1e-6)
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(gaussian_blur(x, 0.0), x)
    y = gaussian_blur(x, 1.0)
    assert y.shape == x.shape and y.var() < 0.5 * x.var()
    tiny = torch.rand(1, 3, 2, 2)  # the kernel is cut to what reflect padding allows
    assert gaussian_blur(tiny, 3.0).shape == tiny.shape


def test_clip_augment_applies_one_draw_to_every_frame() -> None:
    aug = ClipAugment(size=(20, 20), scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip=0.5, color_jitter=0.5,
                      grayscale=0.3, blur=0.0, norm="clip")
    clip = _moving_clip()
    for seed in range(6):
        out = aug(clip, random.Random(seed))
        assert out.shape == (5, 3, 20, 20) and out.dtype == torch.float32
        flipped = torch.allclose(out[1], out[0].roll(-2, dims=-1), atol=1e-4)
        for t in range(1, 5):  # one draw of colour, flip and normalisation: every frame is frame 0 shifted
            assert torch.allclose(out[t], out[0].roll(-2 * t if flipped else 2 * t, dims=-1), atol=1e-4)
    static = clip[:1].expand(4, -1, -1, -1)
    blurred = ClipAugment(size=(20, 20), scale=(0.5, 1.0), color_jitter=0.4, blur=1.0, grayscale=0.5)
    for seed in range(4):
        out = blurred(static, random.Random(seed))
        assert torch.allclose(out[1:], out[:1].expand(3, -1, -1, -1), atol=1e-6)  # a static clip stays static


def test_clip_augment_draws_differ_between_clips_and_noise_is_fresh_per_frame() -> None:
    aug = ClipAugment(size=(16, 16), scale=(1.0, 1.0), hflip=0.0, color_jitter=0.4, norm="imagenet")
    clip = _moving_clip(size=16)
    a, b = aug(clip, random.Random(1)), aug(clip, random.Random(2))
    assert not torch.allclose(a, b, atol=1e-3)
    assert torch.equal(aug(clip, random.Random(1)), a)  # seeded: reproducible
    flat = torch.full((6, 3, 16, 16), 128, dtype=torch.uint8)
    noisy = ClipAugment(size=(16, 16), scale=(1.0, 1.0), hflip=0.0, noise=0.1, norm="imagenet")
    out = noisy(flat, random.Random(3))
    stds = out.std(dim=(1, 2, 3))
    assert stds.min() > 0 and stds.max() < 1.5 * stds.min()  # one noise level for the clip
    assert not torch.allclose(out[0], out[1])  # fresh noise in every frame


def test_clip_augment_rejects_bad_options() -> None:
    with pytest.raises(ValueError, match="normalisation"):
        ClipAugment(norm="batch")
    with pytest.raises(ValueError, match="color_jitter"):
        ClipAugment(color_jitter=1.5)
    with pytest.raises(ValueError, match="RGB"):
        ClipAugment(size=(8, 8), color_jitter=0.2)(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), random.Random(0))


def test_flags_reach_the_augmentation_and_the_evaluation_views(tmp_path) -> None:
    parser = argparse.ArgumentParser()
    vd.add_train_args(parser)
    args = parser.parse_args(["--clip-jitter", "0.3", "--clip-gray", "0.1", "--clip-blur", "0.2", "--clip-noise",
                              "0.02", "--clip-norm", "clip", "--frame-size", "16"])
    aug = vd._augment_from_args(args)
    assert (aug.color_jitter, aug.grayscale, aug.blur, aug.noise, aug.norm) == (0.3, 0.1, 0.2, 0.02, "clip")
    assert vd._datasets_from_args(args)["norm"] == "clip"
    defaults = vd._augment_from_args(parser.parse_args([]))
    assert (defaults.color_jitter, defaults.noise, defaults.norm) == (0.0, 0.0, "imagenet")  # the original's

    clip = _moving_clip(t=4, size=16).permute(0, 2, 3, 1).numpy()
    path = vd.write_video(tmp_path / "a.mp4", clip, fps=4)
    kw = dict(sampling=vd.ClipSampling(4, 1), frame_size=(16, 16), layout="diff")
    clip_normed = vd.VideoClipDataset([vd.VideoRecord(str(path), 0)], norm="clip", **kw)[0][0]
    frames = clip_normed[: 4 * 3].view(4, 3, 16, 16)
    assert torch.allclose(frames.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    imagenet = vd.VideoClipDataset([vd.VideoRecord(str(path), 0)], **kw)[0][0]
    assert clip_normed.shape == imagenet.shape == frames_to_image(torch.zeros(4, 3, 16, 16), "diff").shape
    with pytest.raises(ValueError, match="normalisation"):
        vd.VideoClipDataset([vd.VideoRecord(str(path), 0)], norm="batch", **kw)


def test_auto_turns_on_the_generalising_options_only_without_pretrained_weights(tmp_path) -> None:
    from unireplknet.modalities.video.auto import GENERALIZE, auto_config

    for label in ("a", "b"):  # two clips a class: auto measures the training part of a data set a run can split
        (tmp_path / label).mkdir()
        for i in range(2):
            clip = _moving_clip(t=12, size=32, seed=ord(label) + i).permute(0, 2, 3, 1).numpy()
            vd.write_video(tmp_path / label / f"{i}.mp4", clip, fps=4)
    scratch = auto_config({"data": str(tmp_path), "device": "cpu"})
    assert scratch["layout"][0] == "flow" and scratch["clip_norm"][0] == "clip"
    assert {k: v[0] for k, v in GENERALIZE.items()}.items() <= {k: v[0] for k, v in scratch.items()}.items()
    assert scratch["clip_jitter"][0] > 0 and scratch["clip_noise"][0] > 0
    pretrained = auto_config({"data": str(tmp_path), "device": "cpu", "pretrained": True})
    assert pretrained["layout"][0] == "channels" and "clip_norm" not in pretrained  # ImageNet stats kept
