"""Waveform augmentations, per-utterance normalisation and their flags (fast, no training)."""
from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from unireplknet.modalities.audio import datasets as audio_data
from unireplknet.modalities.audio.datasets import (
    CONFIG_DEFAULTS,
    RECIPES,
    AudioClassificationDataset,
    audio_config_from_args,
    wave_augment_from_args,
)
from unireplknet.modalities.audio.transforms import (
    AudioConfig,
    FbankOptions,
    WaveAugment,
    add_noise_snr,
    colored_noise,
    per_utterance_normalize,
    pitch_shift,
    random_gain,
    sliding_windows,
    speed_perturb,
    time_shift,
    time_stretch,
    waveform_to_image,
)

SR = 16000


def tone(freq: float, seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(SR * seconds), dtype=torch.float64) / SR
    return (0.3 * torch.sin(2 * math.pi * freq * t)).float()


def peak_hz(x: torch.Tensor) -> float:
    spec = torch.fft.rfft(x * torch.hann_window(x.shape[-1])).abs()
    return float(spec.argmax()) * SR / x.shape[-1]


def rms(x: torch.Tensor) -> float:
    return float(x.double().pow(2).mean().sqrt())


@pytest.mark.parametrize("factor", [0.9, 1.05, 1.1])
def test_speed_perturbation_changes_length_by_the_factor(factor):
    x = tone(440)
    y = speed_perturb(x, factor)
    assert abs(y.shape[-1] - x.shape[-1] / factor) <= 1
    assert abs(peak_hz(y) - 440 * factor) < 2.0  # the spectrum scales with the speed
    batch = speed_perturb(torch.stack([x, -x]), factor)  # batched over leading dims
    assert batch.shape == (2, y.shape[-1]) and torch.allclose(batch[0], y, atol=1e-6)


@pytest.mark.parametrize("semitones", [-3.0, 2.0])
def test_pitch_shift_keeps_the_length_and_moves_the_pitch(semitones):
    x = tone(440)
    y = pitch_shift(x, semitones)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert abs(peak_hz(y) - 440 * 2 ** (semitones / 12)) < 6.0
    assert 0.7 * rms(x) < rms(y) < 1.3 * rms(x)
    odd = tone(300, 0.4377)  # an odd length is kept too
    assert pitch_shift(odd, semitones).shape == odd.shape


def test_time_stretch_length_and_pitch():
    x = tone(1000)
    for rate in (0.8, 1.25):
        y = time_stretch(x, rate)
        assert y.shape[-1] == round(x.shape[-1] / rate)
        assert abs(peak_hz(y) - 1000) < 3.0


@pytest.mark.parametrize("db", [-12.0, -3.0, 6.0])
def test_gain_scales_rms_by_the_db_amount(db):
    x = torch.randn(8000)
    assert 20 * math.log10(rms(random_gain(x, db)) / rms(x)) == pytest.approx(db, abs=1e-4)


def test_time_shift_zero_fills_and_keeps_length():
    x = torch.arange(1.0, 11.0)
    assert time_shift(x, 3).tolist() == [0, 0, 0, 1, 2, 3, 4, 5, 6, 7]
    assert time_shift(x, -2).tolist() == [3, 4, 5, 6, 7, 8, 9, 10, 0, 0]
    assert torch.equal(time_shift(x, 0), x) and not time_shift(x, 20).any()


def test_coloured_noise_and_snr():
    white, brown = colored_noise(16000, 0.0), colored_noise(16000, 2.0)
    assert rms(white) == pytest.approx(1.0, rel=1e-4) and rms(brown) == pytest.approx(1.0, rel=1e-4)

    def low_share(n: torch.Tensor) -> float:  # power below 500 Hz / total
        p = torch.fft.rfft(n).abs().pow(2)
        return float(p[: 500 * n.shape[-1] // SR].sum() / p.sum())

    assert low_share(brown) > 0.9 > 0.1 > low_share(white)
    x = tone(440)
    for snr in (0.0, 10.0, 25.0):
        noise = colored_noise(4000, 1.0)  # shorter than the signal: looped
        y = add_noise_snr(x, noise, snr)
        assert y.shape == x.shape
        assert 10 * math.log10(rms(x) ** 2 / rms(y - x) ** 2) == pytest.approx(snr, abs=0.01)


def test_per_utterance_norm_gives_zero_mean_unit_variance():
    spec = torch.randn(3, 64, 100) * 4.0 - 7.0
    z = per_utterance_normalize(spec)
    assert torch.allclose(z.mean(dim=(-2, -1)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(z.std(dim=(-2, -1), unbiased=False), torch.ones(3), atol=1e-4)
    assert not per_utterance_normalize(torch.full((64, 100), -15.9)).any()  # silence -> zeros
    # in the front-end: a clip filling the window is zero-mean / unit-variance, and invariant to gain
    # (64 bins: at 128 bins one filter is empty, a constant log(eps) row that gain does not move)
    cfg = AudioConfig(target_frames=98, per_utterance_norm=True, fbank=FbankOptions(num_mel_bins=64))
    x = torch.randn(SR) * 0.1
    image = waveform_to_image(x, cfg)
    assert image.shape == (1, 64, 98)
    assert abs(float(image.mean())) < 1e-4 and abs(float(image.std(unbiased=False)) - 1) < 1e-3
    assert torch.allclose(waveform_to_image(random_gain(x, 12.0), cfg), image, atol=1e-3)
    # a short clip: its real frames are normalised, the padding is 0; sliding windows agree for one window
    short = x[:8000]
    long_cfg = AudioConfig(target_frames=128, per_utterance_norm=True)
    img = waveform_to_image(short, long_cfg)
    assert not img[..., 60:].any()
    torch.testing.assert_close(sliding_windows(short, long_cfg), img.unsqueeze(0))


def test_augmentations_are_deterministic_under_a_fixed_seed():
    aug = WaveAugment(speed=0.1, pitch=2.0, pitch_prob=1.0, gain_db=6.0, shift=0.1, noise_prob=1.0)
    x = tone(300)
    torch.manual_seed(7)
    a = aug(x)
    torch.manual_seed(7)
    b = aug(x)
    torch.manual_seed(8)
    c = aug(x)
    assert torch.equal(a, b) and not (a.shape == c.shape and torch.equal(a, c))
    assert 0.85 * SR <= a.shape[-1] <= 1.15 * SR
    g = torch.Generator().manual_seed(7)
    assert torch.equal(aug(x, generator=g), aug(x, generator=torch.Generator().manual_seed(7)))


def test_wave_augment_checks_its_settings():
    with pytest.raises(ValueError, match="speed"):
        WaveAugment(speed=1.5)
    with pytest.raises(ValueError, match="noise_prob"):
        WaveAugment(noise_prob=2.0)
    with pytest.raises(ValueError, match="snr"):
        WaveAugment(snr=(30.0, 5.0))
    assert not WaveAugment().active and WaveAugment(gain_db=3.0).active


def test_flags_defaults_and_recipes(tmp_path):
    parser = argparse.ArgumentParser()
    audio_data.add_train_args(parser)
    ns = parser.parse_args([])
    for key in ("speed_perturb", "pitch_shift", "pitch_prob", "gain_db", "time_shift", "noise_prob", "noise_snr",
                "noise_dir", "per_utterance_norm"):
        assert getattr(ns, key) is None and key in CONFIG_DEFAULTS  # real defaults live in CONFIG_DEFAULTS
    for action in parser._actions:
        if action.dest in CONFIG_DEFAULTS:
            assert action.help
    aug = wave_augment_from_args(ns)
    assert aug.active and aug.speed == CONFIG_DEFAULTS["speed_perturb"] and aug.noise_files == ()
    assert audio_config_from_args(ns).per_utterance_norm is CONFIG_DEFAULTS["per_utterance_norm"]
    off = parser.parse_args(["--speed-perturb", "0", "--pitch-shift", "0", "--gain-db", "0", "--time-shift", "0",
                             "--noise-prob", "0", "--no-per-utterance-norm", "--noise-snr", "0", "10"])
    assert not wave_augment_from_args(off).active and not audio_config_from_args(off).per_utterance_norm
    assert wave_augment_from_args(off).snr == (0.0, 10.0)
    # the original recipe stays the original; kws_small is the small-CPU keyword-spotting setting
    sc = RECIPES["speech_commands"]
    assert sc["speed_perturb"] == 0 and sc["noise_prob"] == 0 and sc["per_utterance_norm"] is False
    kws = RECIPES["kws_small"]
    assert kws["num_mel_bins"] == 64 and kws["target_frames"] == 100 and kws["model"] == "custom"
    # --noise-dir: files found recursively; an empty folder is an error
    (tmp_path / "noise" / "sub").mkdir(parents=True)
    with pytest.raises(ValueError, match="no audio files"):
        wave_augment_from_args(parser.parse_args(["--noise-dir", str(tmp_path / "noise")]))
    hum = (0.1 * np.random.default_rng(0).standard_normal(4000)).astype(np.float32)
    sf.write(str(tmp_path / "noise" / "sub" / "hum.wav"), hum, SR)
    files = wave_augment_from_args(parser.parse_args(["--noise-dir", str(tmp_path / "noise")])).noise_files
    assert [p.name for p in files] == ["hum.wav"]


def test_dataset_applies_the_augmentation_in_training_only(tmp_path):
    paths = []
    for i, word in enumerate(["a", "b"]):
        p = tmp_path / word / "x.wav"
        p.parent.mkdir(parents=True)
        sf.write(str(p), tone(300 + 200 * i, 0.8).numpy(), SR)
        paths.append((p, (word,)))
    noise_file = tmp_path / "noise.wav"
    sf.write(str(noise_file), colored_noise(3000, 1.0).numpy() * 0.1, SR)
    cfg = AudioConfig(target_frames=100, per_utterance_norm=True)
    aug = WaveAugment(speed=0.1, pitch=1.0, gain_db=6.0, shift=0.05, noise_prob=1.0, noise_files=(noise_file,))
    train = AudioClassificationDataset(paths, ["a", "b"], cfg, train=True, augment=aug)
    evaluation = AudioClassificationDataset(paths, ["a", "b"], cfg, augment=aug)
    torch.manual_seed(0)
    x1, y1 = train[0]
    torch.manual_seed(0)
    x2, _ = train[0]
    assert x1.shape == (1, 128, 100) and y1 == 0 and torch.equal(x1, x2)
    assert torch.equal(evaluation[0][0], evaluation[0][0])
    assert not torch.allclose(evaluation[0][0], x1)


def test_auto_frames_keep_clips_whole_except_outliers():
    from unireplknet.modalities.audio.auto import frames_for

    frames, why = frames_for([0.5, 0.8, 0.9, 1.0, 1.17])  # the longest clip decides, not the 90th percentile
    assert frames == 128 and "1.17 s" in why
    frames, _ = frames_for([0.5, 0.8, 0.9, 1.0, 1.17], speed_perturb=0.1)  # slowed by 10%: 1.3 s
    assert frames == 144
    frames, why = frames_for([1.0] * 20 + [30.0])  # one 30 s outlier does not set the width
    assert frames == 112 and "outlier" in why
    assert frames_for([60.0] * 3)[0] == 1024 and frames_for([0.05])[0] == 32


def test_kws_small_recipe_resolves_through_the_train_command(tmp_path):
    from unireplknet.cli import build_parser
    from unireplknet.modalities import get_modality
    from unireplknet.runner.train import _resolve

    args = build_parser().parse_args(["train", "--modality", "audio", "--data", str(tmp_path), "--recipe", "kws_small",
                                      "--noise-prob", "0.5"])
    cfg = _resolve(args, get_modality("audio")).config
    assert (cfg["model"], cfg["num_mel_bins"], cfg["target_frames"], cfg["per_utterance_norm"]) == (
        "custom", 64, 100, True)
    assert cfg["noise_prob"] == 0.5 and cfg["speed_perturb"] == 0.1  # flags override the recipe
