"""``unireplknet erf`` and ``unireplknet kernels`` end to end on tiny checkpoints written at test time."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from unireplknet import UniRepLKNet, erf, save_weights
from unireplknet.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Two 1-channel tiny checkpoints: all 3x3 kernels, and 13x13 blocks (train) plus its deploy twin."""
    d = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    cfg = dict(in_chans=1, num_classes=3, depths=(1, 1, 1, 1), dims=(8, 16, 16, 16), layer_scale_init_value=1.0)
    small = UniRepLKNet(kernel_sizes=((3,), (3,), (3,), (3,)), **cfg)
    wide = UniRepLKNet(kernel_sizes=((13,), (13,), (13,), (0,)), **cfg)
    paths = dict(small=save_weights(small, d / "small.pth"), wide=save_weights(wide, d / "wide.pth"))
    paths["wide_deploy"] = save_weights(wide.eval().reparameterize(), d / "wide_deploy.safetensors")
    return paths


def test_erf_command_compares_models_and_prints_the_ratio_table(checkpoints, tmp_path, capsys):
    out, maps = tmp_path / "erf.png", tmp_path / "maps.npz"
    rc = main(["erf", "--model", str(checkpoints["small"]), "--model", str(checkpoints["wide"]),
               "--label", "k3", "--label", "k13", "--num-images", "2", "--size", "96", "128",
               "--out", str(out), "--save-maps", str(maps)])
    assert rc == 0
    assert out.read_bytes()[:8] == PNG
    text = capsys.readouterr().out
    assert "t=0.2" in text and "t=0.99" in text and "k3 " in text and "k13 " in text
    saved = np.load(maps)
    assert list(saved["names"]) == ["k3", "k13"] and saved["map0"].shape == (96, 128)
    ratios = {n: erf.area_ratios(erf.postprocess_erf(saved[f"map{i}"]))[-1].ratio for i, n in enumerate(["k3", "k13"])}
    assert 0 < ratios["k3"] <= 1 and 0 < ratios["k13"] <= 1


def test_erf_of_train_and_deploy_checkpoints_agree(checkpoints, tmp_path, capsys):
    rc = main(["erf", "--model", str(checkpoints["wide"]), "--model", str(checkpoints["wide_deploy"]),
               "--num-images", "1", "--size", "64", "--out", str(tmp_path / "e.png"),
               "--save-maps", str(tmp_path / "m.npz")])
    assert rc == 0
    saved = np.load(tmp_path / "m.npz")
    # agreement up to float32 rounding, relative to the map's scale (single pixels of ~1e-5 may differ by ~1e-3 relative)
    np.testing.assert_allclose(saved["map0"], saved["map1"], rtol=1e-3, atol=1e-5 * float(saved["map1"].max()))


def test_erf_command_reads_a_directory_of_spectrogram_arrays(checkpoints, tmp_path, capsys):
    rng = np.random.default_rng(0)
    (tmp_path / "specs").mkdir()
    for i in range(2):
        np.save(tmp_path / "specs" / f"s{i}.npy", rng.normal(size=(40, 100)).astype(np.float32))
    rc = main(["erf", "--model", str(checkpoints["small"]), "--images", str(tmp_path / "specs"),
               "--num-images", "3", "--size", "64", "--out", str(tmp_path / "spec.png")])
    assert rc == 0 and (tmp_path / "spec.png").read_bytes()[:8] == PNG


def test_erf_command_user_errors(checkpoints, tmp_path, capsys):
    ck = str(checkpoints["small"])
    assert main(["erf", "--model", ck, "--out", str(tmp_path / "x.txt")]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["erf", "--model", ck, "--model", ck, "--out", str(tmp_path / "x.png")]) == 2
    assert "--label" in capsys.readouterr().err
    assert main(["erf", "--model", ck, "--label", "a", "--label", "b", "--out", str(tmp_path / "x.png")]) == 2
    assert main(["erf", "--model", str(tmp_path / "missing.pth"), "--out", str(tmp_path / "x.png")]) == 2
    assert "missing.pth" in capsys.readouterr().err
    assert main(["erf", "--model", ck, "--in-chans", "3", "--out", str(tmp_path / "x.png")]) == 2
    assert "input channels" in capsys.readouterr().err
    assert main(["erf", "--model", "unireplknet_a:x3", "--out", str(tmp_path / "x.png")]) == 2
    assert "NAME:kN" in capsys.readouterr().err
    assert main(["erf", "--model", ck, "--pretrained", ck, "--out", str(tmp_path / "x.png")]) == 2
    assert "cannot be combined" in capsys.readouterr().err
    assert main(["erf", "--model", ck, "--size", "8", "8", "8", "--out", str(tmp_path / "x.png")]) == 2


def test_model_specs():
    torch.manual_seed(0)
    m = erf.build_erf_model("unireplknet_a:k3", in_chans=2, layer_scale_init_value=1.0)
    assert m.kernel_sizes == ((3, 3), (3, 3), (3,) * 6, (3, 3)) and m.in_chans == 2 and not m.training
    assert all(float(b.gamma.detach()[0]) == 1.0 for b in m.blocks())
    assert erf.build_erf_model("unireplknet_a").kernel_sizes[1] == (13, 13)
    with pytest.raises(ValueError, match="unknown model"):
        erf.build_erf_model("resnet50")


def test_kernels_command_train_and_deploy(checkpoints, tmp_path, capsys):
    for key in ("wide", "wide_deploy"):
        out = tmp_path / f"{key}.png"
        assert main(["kernels", str(checkpoints[key]), "--out", str(out)]) == 0
        assert out.read_bytes()[:8] == PNG
    text = capsys.readouterr().out
    assert text.count("stage 0: 1 kernels (13)") == 2 and text.count("stage 3: 0 kernels (none)") == 2
    assert main(["kernels", str(tmp_path / "nope.pth"), "--out", str(tmp_path / "k.png")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["kernels", "--out", str(tmp_path / "k.png")]) == 2
    assert "either" in capsys.readouterr().err


def test_kernels_command_for_a_named_variant(tmp_path, capsys):
    assert main(["kernels", "--model", "unireplknet_a:k7", "--out", str(tmp_path / "a.png")]) == 0
    assert "stage 2: 6 kernels (7, 7, 7, 7, 7, 7)" in capsys.readouterr().out
    assert (tmp_path / "a.png").read_bytes()[:8] == PNG
