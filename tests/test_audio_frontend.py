"""Audio front-end: Kaldi fbank parity, input-as-image, augmentations, resampling."""
from __future__ import annotations

import math

import kaldi_native_fbank as knf
import numpy as np
import pytest
import soxr
import torch

from unireplknet.modalities.audio.io import resample
from unireplknet.modalities.audio.transforms import (
    SPEECH_COMMANDS_MEAN,
    SPEECH_COMMANDS_STD,
    AudioConfig,
    FbankOptions,
    add_noise_and_roll,
    kaldi_fbank,
    log_mel_spectrogram,
    mel_banks,
    mix_waveforms,
    normalize,
    pad_or_crop,
    sliding_windows,
    spec_augment,
    waveform_to_image,
)


def speech_like(sr: int, seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """Voiced harmonics with a gliding pitch, syllable-rate envelope, formant-ish tilt and a noise floor."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    f0 = 110 + 40 * np.sin(2 * np.pi * 2.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voiced = sum(np.sin(k * phase) / k for k in range(1, 20) if k * 150 < sr / 2)
    envelope = np.clip(np.sin(2 * np.pi * 3 * t), 0, None) ** 0.5
    hiss = np.convolve(rng.standard_normal(len(t)), [1, -0.9], mode="same")
    return (0.3 * envelope * voiced + 0.02 * hiss + 0.003 * rng.standard_normal(len(t))).astype(np.float32)


def noise(sr: int, seconds: float = 1.0, seed: int = 1) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(sr * seconds))).astype(np.float32)


def reference_fbank(x: np.ndarray, sr: int, bins: int, window: str = "hanning", use_energy: bool = False,
                    snip_edges: bool = True) -> np.ndarray:
    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = sr
    opts.frame_opts.dither = 0.0
    opts.frame_opts.window_type = window
    opts.frame_opts.snip_edges = snip_edges
    opts.mel_opts.num_bins = bins
    opts.use_energy = use_energy
    fb = knf.OnlineFbank(opts)
    fb.accept_waveform(sr, x.tolist())
    fb.input_finished()
    return np.stack([fb.get_frame(i) for i in range(fb.num_frames_ready)])


# kaldi-native-fbank refuses filter banks with an empty triangle, which 128 bins at 16 kHz have
# (bin 3, like torchaudio and the original recipe); parity uses the largest valid counts near it.
@pytest.mark.parametrize("sr,bins", [(8000, 64), (16000, 80)])
@pytest.mark.parametrize("signal", [speech_like, noise])
@pytest.mark.parametrize("variant", [
    dict(),
    dict(window="povey", use_energy=True),
    dict(window="hamming", snip_edges=False),
])
def test_fbank_matches_kaldi_native_fbank(sr, bins, signal, variant):
    x = signal(sr)
    ref = reference_fbank(x, sr, bins, **variant)
    opts = FbankOptions(num_mel_bins=bins, window_type=variant.get("window", "hanning"),
                        use_energy=variant.get("use_energy", False), snip_edges=variant.get("snip_edges", True))
    ours64 = kaldi_fbank(torch.from_numpy(x).double(), sr, opts).numpy()
    ours32 = kaldi_fbank(torch.from_numpy(x), sr, opts).numpy()
    assert ours64.shape == ref.shape
    assert np.abs(ours64 - ref).max() <= 1e-3
    assert np.abs(ours32 - ref).max() <= 2e-3  # float32 rounding in the quietest bins
    assert ref.std() > 1.0  # the features are not trivially constant


def test_recipe_fbank_shape_and_empty_bin():
    x = torch.from_numpy(speech_like(16000))
    feats = kaldi_fbank(x, 16000)
    assert feats.shape == (98, 128)  # 1 + (16000 - 400) // 160 frames, 128 mel bins
    assert torch.allclose(feats[:, 3], torch.tensor(math.log(torch.finfo(torch.float32).eps)))
    # the non-empty bins of 128 equal the rows of the mel matrix applied by hand to a float64 power spectrum
    banks = mel_banks(128, 512, 16000, dtype=torch.float64)
    assert (banks.sum(1) > 0).sum() == 127
    assert torch.allclose(banks[:, -1], torch.zeros(128, dtype=torch.float64))  # no Nyquist weight


def test_fbank_is_batched_and_differentiable():
    x = torch.from_numpy(np.stack([speech_like(16000, 0.3, s) for s in range(3)])).double()
    batch = kaldi_fbank(x.view(3, 1, -1), 16000)
    assert batch.shape == (3, 1, 28, 128)
    for i in range(3):
        torch.testing.assert_close(batch[i, 0], kaldi_fbank(x[i], 16000))
    x.requires_grad_(True)
    kaldi_fbank(x, 16000, num_mel_bins=40).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    small = torch.randn(450, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda w: kaldi_fbank(w, 16000, num_mel_bins=23), (small,), eps=1e-6, atol=1e-4)


def test_fbank_bad_options_and_short_input():
    with pytest.raises(ValueError, match="shorter than one 25.0 ms frame"):
        kaldi_fbank(torch.zeros(399), 16000)
    with pytest.raises(ValueError, match="window_type"):
        kaldi_fbank(torch.zeros(16000), 16000, window_type="kaiser")
    with pytest.raises(ValueError, match="sample_rate must be positive"):
        kaldi_fbank(torch.zeros(16000), 0)
    with pytest.raises(ValueError, match="floating-point"):
        kaldi_fbank(torch.zeros(16000, dtype=torch.int16), 16000)
    with pytest.raises(ValueError, match="Nyquist"):
        kaldi_fbank(torch.zeros(16000), 16000, high_freq=9000)
    # without snip_edges even a short clip gives frames, as in Kaldi
    assert kaldi_fbank(torch.randn(300), 16000, snip_edges=False).shape == (2, 128)


def test_image_orientation_is_freq_by_time():
    sr = 16000
    t = torch.arange(sr) / sr
    tone = torch.sin(2 * math.pi * 3000 * t) * (t >= 0.5)  # 3 kHz, second half only
    image = waveform_to_image(tone, AudioConfig())
    assert image.shape == (1, 128, 128)
    spec = image[0]
    mel_3k = 1127 * math.log1p(3000 / 700)
    mel_lo, mel_hi = 1127 * math.log1p(20 / 700), 1127 * math.log1p(8000 / 700)
    expected_row = round((mel_3k - mel_lo) / (mel_hi - mel_lo) * 129) - 1
    loud = spec[:, 70]
    assert abs(int(loud.argmax()) - expected_row) <= 1  # height = mel frequency
    assert spec[expected_row, 70] > spec[expected_row, 20] + 1.0  # width = time (silent first half)
    # frames 98..127 are zero padding of the raw log-mel, i.e. normalised (0 - mean) / (2 std)
    pad_value = (0 - SPEECH_COMMANDS_MEAN) / (2 * SPEECH_COMMANDS_STD)
    assert torch.allclose(spec[:, 98:], torch.full((128, 30), pad_value))


def test_silent_and_too_short_waveforms():
    floor = math.log(torch.finfo(torch.float32).eps)
    spec = log_mel_spectrogram(torch.zeros(16000), AudioConfig())
    assert torch.allclose(spec[:, :98], torch.full((128, 98), floor))
    short = log_mel_spectrogram(torch.randn(100), AudioConfig())  # padded to one frame -> one frame
    assert short.shape == (128, 128) and (short[:, 0] != 0).all() and (short[:, 1:] == 0).all()
    with pytest.raises(ValueError, match="no samples"):
        waveform_to_image(torch.zeros(0))
    with pytest.raises(ValueError, match="NaN"):
        waveform_to_image(torch.tensor([0.0, float("nan")] * 1000))


def test_pad_crop_and_normalize():
    x = torch.arange(6.0).view(2, 3)
    assert torch.equal(pad_or_crop(x, 5), torch.tensor([[0, 1, 2, 0, 0], [3, 4, 5, 0, 0.0]]))
    assert torch.equal(pad_or_crop(x, 2, dim=-1), x[:, :2])
    assert torch.equal(pad_or_crop(x, 1, dim=0), x[:1])
    with pytest.raises(ValueError):
        pad_or_crop(x, 0)
    assert normalize(torch.tensor(4.0), mean=2.0, std=0.5).item() == pytest.approx(2.0)
    with pytest.raises(ValueError, match="std"):
        normalize(x, 0.0, 0.0)


def test_spec_augment_masks_one_band_each():
    g = torch.Generator().manual_seed(0)
    spec = torch.ones(64, 1, 128, 100)
    out = spec_augment(spec, freq_mask=48, time_mask=30, generator=g)
    zero_rows = (out == 0).all(dim=-1)[:, 0]  # B x F: rows fully masked by the frequency band
    zero_cols = (out == 0).all(dim=-2)[:, 0]  # B x T
    widths_f, widths_t = zero_rows.sum(1), zero_cols.sum(1)
    assert widths_f.max() < 48 and widths_t.max() < 30 and widths_f.float().mean() > 10
    assert len(set(widths_f.tolist())) > 5  # every example draws its own band
    for row in zero_rows:  # contiguous bands
        idx = row.nonzero().flatten()
        if len(idx):
            assert idx[-1] - idx[0] + 1 == len(idx)
    masked = (~zero_rows[:, :, None]) & (~zero_cols[:, None, :])
    assert (out[:, 0][masked] == 1).all()  # nothing else touched


def test_noise_and_roll():
    g = torch.Generator().manual_seed(3)
    image = torch.zeros(1, 8, 50)
    image[..., 10] = 100.0
    out = add_noise_and_roll(image, generator=g)
    col = int(out[0, 0].argmax())
    assert 0 <= col < 20  # rolled by a shift in [-10, 10)
    rest = out.clone()
    rest[..., col] = 0
    assert 0 <= rest.min() and rest.max() <= 0.1


def test_mix_waveforms():
    a = torch.ones(100) * 2 + torch.linspace(-1, 1, 100)
    b = torch.linspace(0, 3, 60)
    mixed = mix_waveforms(a, b, 0.7)
    assert mixed.shape == (100,)
    assert mixed.mean().abs() < 1e-6
    b0 = b - b.mean()
    expected = 0.7 * (a - a.mean()) + 0.3 * torch.cat([b0, torch.zeros(40)])
    torch.testing.assert_close(mixed, expected - expected.mean())
    assert mix_waveforms(a, torch.randn(300), 1.0).allclose(a - a.mean(), atol=1e-6)


def test_sliding_windows_cover_long_audio():
    x = torch.from_numpy(speech_like(16000, 3.0))
    views = sliding_windows(x, AudioConfig())
    # 298 frames, windows of 128 every 64 frames -> 1 + ceil(170 / 64) = 4 views
    assert views.shape == (4, 1, 128, 128)
    short = torch.from_numpy(speech_like(16000, 1.0))
    torch.testing.assert_close(sliding_windows(short, AudioConfig()), waveform_to_image(short).unsqueeze(0))
    with pytest.raises(ValueError, match="1-D"):
        sliding_windows(torch.zeros(2, 16000))


@pytest.mark.parametrize("orig,new", [(8000, 16000), (44100, 16000), (48000, 16000), (16000, 8000)])
def test_resample_matches_soxr_and_ideal(orig, new):
    t = np.arange(orig) / orig
    x = np.sin(2 * np.pi * 440 * t) + 0.5 * np.sin(2 * np.pi * 1234 * t)
    y = resample(torch.from_numpy(x), orig, new).numpy()
    ref = soxr.resample(x, orig, new, "VHQ")
    tt = np.arange(len(y)) / new
    ideal = np.sin(2 * np.pi * 440 * tt) + 0.5 * np.sin(2 * np.pi * 1234 * tt)
    assert len(y) == len(ref) == new
    inner = slice(400, -400)  # both treat the signal as silent beyond its ends
    assert np.abs(y - ideal)[inner].max() < 2e-4
    assert np.abs(y - ref)[inner].max() < 2e-4
    batch = resample(torch.from_numpy(np.stack([x, -x])).float(), orig, new)
    assert batch.shape == (2, new) and torch.allclose(batch[0], -batch[1])
    with pytest.raises(ValueError, match="positive"):
        resample(torch.zeros(10), 0, 16000)
