"""Frames -> image layouts (grid tiling and the original raw reshape) and clip-consistent augmentation."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from unireplknet.modalities.video.transforms import (
    ClipAugment,
    clip_eval_crops,
    frames_to_image,
    grid_shape,
    image_size_for,
    image_to_frames,
    normalize_clip,
    reshape_frames,
    tile_frames,
    untile_frames,
)


def _clip(t: int = 16, c: int = 3, h: int = 8, w: int = 6) -> torch.Tensor:
    return torch.arange(t * c * h * w, dtype=torch.float32).reshape(t, c, h, w)


@pytest.mark.parametrize("t,expected", [(16, (4, 4)), (8, (2, 4)), (4, (2, 2)), (1, (1, 1)), (7, (3, 3)), (6, (2, 3))])
def test_grid_shape_defaults(t: int, expected: tuple[int, int]) -> None:
    assert grid_shape(t) == expected


def test_grid_tiling_places_each_frame_in_its_cell() -> None:
    clip = _clip(16, 3, 224 // 28, 224 // 28)  # 16 frames of 8 x 8
    img = tile_frames(clip)
    assert img.shape == (3, 32, 32)
    for t in range(16):
        r, c = divmod(t, 4)
        assert torch.equal(img[:, r * 8 : (r + 1) * 8, c * 8 : (c + 1) * 8], clip[t])


def test_paper_size_16_frames_of_224_become_896() -> None:
    assert image_size_for(16, (224, 224)) == (896, 896)
    assert image_size_for(16, (224, 224), layout="reshape") == (896, 896)
    assert tile_frames(torch.zeros(16, 3, 224, 224)).shape == (3, 896, 896)


def test_grid_with_empty_cells_and_custom_grid() -> None:
    clip = _clip(5, 1, 2, 3) + 1  # no zero pixels in real frames
    img = tile_frames(clip, grid=(2, 3))
    assert img.shape == (1, 4, 9)
    assert torch.equal(img[:, 2:4, 3:6], clip[4])
    assert img[:, 2:4, 6:9].abs().sum() == 0  # the sixth cell is empty
    assert torch.equal(untile_frames(img, 5, grid=(2, 3)), clip)
    with pytest.raises(ValueError, match="cannot hold"):
        tile_frames(clip, grid=(2, 2))


def test_reshape_layout_matches_original_memory_reinterpretation() -> None:
    # The original: (B, 3, 16, 224, 224).reshape(B, 3, 896, 896) on a C-first clip.
    clip = torch.rand(16, 3, 16, 12)  # T x C x H x W
    img = reshape_frames(clip)
    assert torch.equal(img, clip.permute(1, 0, 2, 3).reshape(3, 16 * 16 // 4, 4 * 12))
    # frame t fills rows (H/4)t .. (H/4)(t+1)-1; each row holds 4 consecutive frame rows side by side
    for t in (0, 5, 15):
        for r in range(4):  # output row within the frame's band
            for k in range(4):
                assert torch.equal(img[:, 4 * t + r, k * 12 : (k + 1) * 12], clip[t, :, 4 * r + k, :])


@pytest.mark.parametrize("layout", ["grid", "reshape"])
def test_layouts_invert_batched_and_unbatched(layout: str) -> None:
    clip = torch.rand(2, 16, 3, 8, 4)
    img = frames_to_image(clip, layout)
    assert img.shape[:2] == (2, 3)
    assert torch.equal(image_to_frames(img, 16, layout), clip)
    assert torch.equal(image_to_frames(img[1], 16, layout), clip[1])


def test_reshape_factor_and_errors() -> None:
    clip = torch.rand(8, 3, 6, 5)
    with pytest.raises(ValueError, match="square number of frames"):
        reshape_frames(clip)
    img = frames_to_image(clip, "reshape", factor=2)
    assert img.shape == (3, 24, 10)
    assert torch.equal(image_to_frames(img, 8, "reshape", factor=2), clip)
    with pytest.raises(ValueError, match="divide the frame height"):
        reshape_frames(clip, factor=4)
    with pytest.raises(ValueError, match="unknown frame layout"):
        frames_to_image(clip, "mosaic")
    with pytest.raises(ValueError, match="T x C x H x W"):
        tile_frames(torch.rand(3, 4, 4))


def _moving_square_clip(t: int = 8, size: int = 40) -> torch.Tensor:
    clip = torch.zeros(t, 3, size, size, dtype=torch.uint8)
    for i in range(t):
        clip[i, :, 10:20, 5 + 2 * i : 15 + 2 * i] = 255
    return clip


def test_augmentation_is_identical_across_frames() -> None:
    # Frames equal up to a known shift stay so after augmentation: the crop, flip and RandAugment are per clip.
    base = torch.randint(0, 256, (1, 3, 48, 48), dtype=torch.uint8)
    clip = base.repeat(6, 1, 1, 1)
    aug = ClipAugment(size=(32, 32), scale=(0.3, 1.0), rand_augment="rand-m9-n3-mstd0.5", erase_prob=1.0)
    random.seed(3)
    np.random.seed(3)
    for _ in range(5):
        out = aug(clip)
        assert out.shape == (6, 3, 32, 32) and out.dtype == torch.float32
        diff = (out[1:] - out[:1]).abs()
        erased = diff.amax(dim=(0, 1)) > 0  # only the erased tube may differ (independent noise per frame)
        assert erased.any()
        assert torch.equal(out[1:][..., ~erased], out[:1].expand_as(out[1:])[..., ~erased])


def test_augmentation_varies_between_clips_and_is_seeded() -> None:
    clip = _moving_square_clip()
    aug = ClipAugment(size=(24, 24), rand_augment="rand-m7-n4-mstd0.5-inc1")
    random.seed(0)
    np.random.seed(0)
    a = [aug(clip) for _ in range(3)]
    random.seed(0)
    np.random.seed(0)
    b = [aug(clip) for _ in range(3)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], a[1])


def test_eval_crops_cover_the_long_side() -> None:
    clip = torch.arange(40, dtype=torch.float32).view(1, 1, 1, 40).expand(2, 3, 20, 40).contiguous()
    views = clip_eval_crops(clip, (20, 20), num_crops=3)
    assert [v.shape for v in views] == [(2, 3, 20, 20)] * 3
    assert [int(v[0, 0, 0, 0]) for v in views] == [0, 10, 20]  # left, centre, right
    (centre,) = clip_eval_crops(clip, (10, 10), num_crops=1)
    assert centre.shape == (2, 3, 10, 10)


def test_normalize_clip_uses_imagenet_stats() -> None:
    x = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    y = normalize_clip(x)
    assert torch.allclose(y[0, :, 0, 0], torch.tensor([(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225]))
