"""ERF maps, area ratios and kernel pictures: numerical checks on tiny models, PNGs written at test time."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from unireplknet import UniRepLKNet, erf, save_weights
from unireplknet.layers import DilatedReparamBlock
from unireplknet.weights import infer_architecture, model_from_checkpoint


def _chain(kernels, channels=4):
    """Stride-1 convolutions of the given sizes (13 = a Dilated Reparam Block), GELU between them."""
    layers = [nn.Conv2d(1, channels, 1)]
    for k in kernels:
        conv = DilatedReparamBlock(channels, k) if k >= 7 else nn.Conv2d(channels, channels, k, padding=k // 2)
        layers += [conv, nn.GELU()]
    return nn.Sequential(*layers)


def _extent(raw: np.ndarray) -> tuple[int, int]:
    """Height and width of the bounding box of the non-zero contributions."""
    nz = np.argwhere(raw > 0)
    return tuple(int(v) for v in nz.max(0) - nz.min(0) + 1)


def _no_global_pooling(model: UniRepLKNet) -> UniRepLKNet:
    """Remove SE and GRN (the only global operations) so that the model is purely local."""
    for block in model.blocks():
        block.se = nn.Identity()
        block.act[1] = nn.Identity()
    return model


def _tiny(kernel_sizes, in_chans=1, **kw) -> UniRepLKNet:
    torch.manual_seed(0)
    depths = tuple(len(k) for k in kernel_sizes)
    return UniRepLKNet(in_chans=in_chans, num_classes=0, depths=depths, dims=(8, 16, 16, 16),
                       kernel_sizes=kernel_sizes, **kw)


def test_3x3_chain_erf_equals_theoretical_field_and_13x13_block_widens_it():
    torch.manual_seed(0)
    xs = [torch.randn(1, 1, 41, 41) for _ in range(3)]
    raw3 = erf.compute_erf(_chain((3, 3, 3)), xs)
    raw13 = erf.compute_erf(_chain((3, 13, 3)), xs)
    assert raw3.shape == (41, 41)
    # three 3x3 convs: receptive field 7, centred on the central pixel; exactly zero outside
    assert _extent(raw3) == (7, 7)
    assert raw3[:17].sum() == 0 and raw3[24:].sum() == 0 and raw3[:, :17].sum() == 0 and raw3[:, 24:].sum() == 0
    assert (raw3[17:24, 17:24] > 0).mean() > 0.5
    # replacing the middle conv with a 13x13 Dilated Reparam Block: 1 + 2 + 12 + 2 = 17
    assert _extent(raw13) == (17, 17)
    assert raw13[12:29, 12:29].sum() == pytest.approx(raw13.sum())


def test_local_unireplknet_erf_is_bounded_by_theoretical_field_and_a_13_block_widens_it():
    small = _no_global_pooling(_tiny(((3,), (3,), (3,), (3,)), layer_scale_init_value=1.0))
    wide = _no_global_pooling(_tiny(((13,), (3,), (3,), (3,)), layer_scale_init_value=1.0))
    rf_small, rf_wide = erf.theoretical_receptive_field(small), erf.theoretical_receptive_field(wide)
    # stem 3x3/2 + 3x3/2 (7), then per stage a block (2 * stride) and a 3x3/2 downsampling: 183; +10*4 for K=13
    assert (rf_small, rf_wide) == (183, 223)
    assert erf.theoretical_receptive_field(_tiny(((3,), (3,), (3, 0), (3,)))) == 183
    torch.manual_seed(1)
    xs = [torch.randn(1, 1, 256, 256) for _ in range(2)]
    h_small, w_small = _extent(erf.compute_erf(small, xs))
    h_wide, w_wide = _extent(erf.compute_erf(wide, xs))
    assert h_small <= rf_small and w_small <= rf_small
    assert h_wide <= rf_wide and w_wide <= rf_wide
    assert h_wide > rf_small and w_wide > rf_small  # the 13x13 block reaches beyond the 3x3 network's field


def test_squeeze_excitation_makes_the_full_block_global():
    model = _tiny(((3,), (3,), (3,), (3,)), layer_scale_init_value=1.0)
    raw = erf.compute_erf(model, [torch.randn(1, 1, 256, 256)])
    # SE pools the whole map: every pixel contributes a little, far beyond the theoretical field
    assert erf.theoretical_receptive_field(model) < 256 and _extent(raw) == (256, 256)


def test_compute_erf_restores_training_mode_and_skips_nan_images(caplog):
    model = _chain((3,))
    model.train()
    good = torch.randn(1, 1, 15, 15)
    bad = good.clone()
    bad[0, 0, 7, 7] = float("nan")
    raw = erf.compute_erf(model, [good, bad])
    assert model.training
    assert np.allclose(raw, erf.compute_erf(model, [good]))
    assert "NaN" in caplog.text
    with pytest.raises(ValueError, match="no usable input"):
        erf.compute_erf(model, [bad])


def test_postprocess_and_area_ratios_by_hand():
    raw = np.zeros((11, 11))
    raw[5, 5] = 9.0  # log10(10) = 1
    raw[0, 0] = 99.0  # log10(100) = 2 -> the maximum
    data = erf.postprocess_erf(raw)
    assert data.max() == 1.0 and data[5, 5] == pytest.approx(0.5) and data[0, 0] == 1.0
    ratios = erf.area_ratios(data, (0.2, 0.5))
    # the 3x3 square around the centre holds 1/3 of the total (> 0.2): side 3
    assert (ratios[0].side, ratios[0].ratio) == (3, pytest.approx(9 / 121))
    # half the mass sits in the corner: only the whole map holds more than 0.5
    assert ratios[1].side == 11 and ratios[1].ratio == pytest.approx(1.0)
    uniform = erf.area_ratios(np.ones((101, 101)), erf.THRESHOLDS)
    for r in uniform:  # uniform map: area ratio just above the threshold
        assert r.threshold < r.ratio <= r.threshold + 4 * 101 / 101**2
    table = erf.format_ratio_table({"uniform": uniform})
    assert "t=0.99" in table and "uniform" in table
    with pytest.raises(ValueError, match="sums to zero"):
        erf.area_ratios(np.zeros((5, 5)))
    with pytest.raises(ValueError, match="thresholds"):
        erf.area_ratios(np.ones((5, 5)), (1.5,))
    with pytest.raises(ValueError, match="2-D"):
        erf.postprocess_erf(np.ones(5))


def test_erf_inputs_are_reproducible_real_photos_for_any_channels(tmp_path):
    paths = erf.builtin_image_paths()
    assert len(paths) == 3 and all(p.stat().st_size > 10_000 for p in paths)
    a = list(erf.erf_inputs(5, (24, 40), in_chans=3, seed=3))
    b = list(erf.erf_inputs(5, (24, 40), in_chans=3, seed=3))
    assert len(a) == 5 and all(x.shape == (1, 3, 24, 40) for x in a)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.allclose(a[0], a[3])  # a random crop of the first photo differs from the whole photo
    assert a[0].std() > 0.2  # normalised natural image, not a constant
    grey = next(erf.erf_inputs(1, 16, in_chans=1))
    five = next(erf.erf_inputs(1, 16, in_chans=5))
    assert grey.shape == (1, 1, 16, 16) and five.shape == (1, 5, 16, 16)
    assert torch.equal(five[:, 3], next(erf.erf_inputs(1, 16, in_chans=3))[:, 0])  # RGB repeated cyclically
    np.save(tmp_path / "spec.npy", np.random.default_rng(0).normal(size=(32, 48)).astype(np.float32))
    spec = list(erf.erf_inputs(2, (16, 24), in_chans=2, images=tmp_path))
    assert spec[0].shape == (1, 2, 16, 24) and torch.equal(spec[0][:, 0], spec[0][:, 1])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        next(erf.erf_inputs(1, 16, images=tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="directory not found"):
        next(erf.erf_inputs(1, 16, images=tmp_path / "missing"))
    with pytest.raises(ValueError, match="size"):
        next(erf.erf_inputs(1, 4))


def test_config_from_checkpoint_round_trips_train_and_deploy(tmp_path):
    model = _tiny(((3,), (7,), (13, 0), (5,)), in_chans=2)
    model.reset_classifier(4)
    train_path = save_weights(model, tmp_path / "train.pth")
    cfg = infer_architecture(model.state_dict())
    assert cfg["kernel_sizes"] == ((3,), (7,), (13, 0), (5,))
    assert (cfg["in_chans"], cfg["num_classes"], cfg["depths"], cfg["dims"]) == (2, 4, (1, 1, 2, 1), (8, 16, 16, 16))
    deployed = model.eval().reparameterize()
    deploy_path = save_weights(deployed, tmp_path / "deploy.safetensors")
    k_train = erf.merged_kernels(model_from_checkpoint(train_path))
    k_deploy = erf.merged_kernels(model_from_checkpoint(deploy_path))
    assert [[k.shape for k in s] for s in k_train] == [[(8, 3, 3)], [(16, 7, 7)], [(16, 13, 13)], [(16, 5, 5)]]
    for s_train, s_deploy in zip(k_train, k_deploy):
        for a, b in zip(s_train, s_deploy):
            torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="not a UniRepLKNet"):
        infer_architecture({"x": torch.zeros(1)})


def test_merged_kernel_is_the_dilated_reparam_blocks_merge_and_model_is_unchanged():
    model = _tiny(((3,), (3,), (13, 3), (3,)))
    for m in model.modules():  # non-trivial BN statistics so that the merge is not a plain sum
        if isinstance(m, nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 2.0)
            m.running_mean.uniform_(-0.5, 0.5)
    block = model.stages[2][0]
    kernels = erf.merged_kernels(model)
    assert not model.deployed
    dw, _ = block.dwconv.merged_kernel()
    bn = block.norm
    scale = bn.weight / (bn.running_var + bn.eps).sqrt()
    torch.testing.assert_close(kernels[2][0], (dw * scale.view(-1, 1, 1, 1))[:, 0])
    pics = erf.kernel_pictures(kernels)
    assert pics[2][0].shape == (13, 13) and pics[2][0].max() == pytest.approx(1.0)


def test_pngs_are_drawn(tmp_path):
    maps = {"a": np.random.default_rng(0).random((20, 30)), "b": np.ones((20, 30))}
    ratios = {k: erf.area_ratios(v) for k, v in maps.items()}
    out = erf.render_erf(maps, tmp_path / "sub" / "erf.png", ratios=ratios, title="t")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    kernels = erf.merged_kernels(_tiny(((3,), (7,), (13, 0), (0,))))
    assert kernels[3] == []
    k_out = erf.render_kernels(erf.kernel_pictures(kernels), tmp_path / "k.png")
    assert k_out.stat().st_size > 1000
    with pytest.raises(ValueError, match="no depthwise kernels"):
        erf.render_kernels([[], [], [], []], tmp_path / "none.png")
