"""Audio as an image: Kaldi-compatible log-mel filterbanks and the AST-style augmentations.

Everything here is pure torch: batched over any leading dimensions, on any
device, and differentiable with respect to the waveform. The defaults follow
the original UniRepLKNet audio recipe (AST on Speech Commands V2): Hanning
window, 25 ms frames every 10 ms, 128 mel bins, pre-emphasis 0.97, DC removal,
power spectrum, Kaldi mel scale, dither 0, no energy term, 128 frames, and the
normalisation ``(x - mean) / (2 * std)``.

Orientation: a log-mel spectrogram from :func:`kaldi_fbank` is ``... x T x F``
(time, frequency), as in Kaldi. :func:`waveform_to_image` turns it into the
backbone's ``1 x F x T`` image (frequency on the height axis, time on the
width axis), which is what the original model sees after its transpose.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

__all__ = [
    "SPEECH_COMMANDS_MEAN",
    "SPEECH_COMMANDS_STD",
    "FbankOptions",
    "AudioConfig",
    "kaldi_fbank",
    "mel_banks",
    "frame_window",
    "pad_or_crop",
    "normalize",
    "spec_augment",
    "add_noise_and_roll",
    "mix_waveforms",
    "log_mel_spectrogram",
    "waveform_to_image",
    "sliding_windows",
    "per_utterance_normalize",
    "fractional_resample",
    "speed_perturb",
    "time_stretch",
    "pitch_shift",
    "random_gain",
    "time_shift",
    "colored_noise",
    "add_noise_snr",
    "WaveAugment",
]

#: Log-mel mean and std of Speech Commands V2 used by the original recipe.
SPEECH_COMMANDS_MEAN = -6.845978
SPEECH_COMMANDS_STD = 5.5654526

logger = logging.getLogger(__name__)

_WINDOWS = ("hanning", "povey", "hamming", "rectangular", "blackman")
_EPS = torch.finfo(torch.float32).eps  # Kaldi's log floor (FLT_EPSILON)


@dataclass(frozen=True)
class FbankOptions:
    """Options of :func:`kaldi_fbank` (Kaldi names; defaults = the original audio recipe).

    Kaldi's own defaults differ in two places: ``window_type="povey"`` and
    ``num_mel_bins=23``. ``high_freq <= 0`` means Nyquist plus ``high_freq``.
    """

    num_mel_bins: int = 128
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    window_type: str = "hanning"
    blackman_coeff: float = 0.42
    preemphasis: float = 0.97
    remove_dc_offset: bool = True
    dither: float = 0.0
    round_to_power_of_two: bool = True
    snip_edges: bool = True
    low_freq: float = 20.0
    high_freq: float = 0.0
    use_power: bool = True
    use_log_fbank: bool = True
    use_energy: bool = False
    raw_energy: bool = True
    energy_floor: float = 0.0
    htk_compat: bool = False

    def frame_sizes(self, sample_rate: int) -> tuple[int, int, int]:
        """Return ``(window_size, window_shift, fft_size)`` in samples for ``sample_rate``."""
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        size = int(sample_rate * 0.001 * self.frame_length_ms)
        shift = int(sample_rate * 0.001 * self.frame_shift_ms)
        if size < 2 or shift < 1:
            raise ValueError(
                f"frame_length_ms={self.frame_length_ms} / frame_shift_ms={self.frame_shift_ms} give "
                f"{size}/{shift} samples at {sample_rate} Hz; need at least 2 and 1"
            )
        fft = 1 << (size - 1).bit_length() if self.round_to_power_of_two else size
        return size, shift, fft


@dataclass(frozen=True)
class AudioConfig:
    """How a waveform becomes a backbone image: rate, fbank options, frames and normalisation."""

    sample_rate: int = 16000
    target_frames: int = 128
    mean: float = SPEECH_COMMANDS_MEAN
    std: float = SPEECH_COMMANDS_STD
    fbank: FbankOptions = FbankOptions()
    #: normalise every clip by its own log-mel mean/std (:func:`per_utterance_normalize`) instead of
    #: ``(x - mean) / (2 * std)`` with the data set's ``mean``/``std``; padding and masks are then 0.
    per_utterance_norm: bool = False

    @property
    def image_size(self) -> tuple[int, int]:
        """``(height, width) = (mel bins, frames)`` of the image given to the backbone."""
        return (self.fbank.num_mel_bins, self.target_frames)


def _mel(freq: torch.Tensor) -> torch.Tensor:
    return 1127.0 * torch.log1p(freq / 700.0)


@functools.lru_cache(maxsize=32)
def _mel_banks_cpu(num_bins: int, fft_size: int, sample_rate: float, low_freq: float, high_freq: float) -> torch.Tensor:
    nyquist = 0.5 * sample_rate
    high = high_freq if high_freq > 0 else nyquist + high_freq
    if not (0.0 <= low_freq < high <= nyquist):
        raise ValueError(
            f"mel range must satisfy 0 <= low_freq < high_freq <= Nyquist ({nyquist} Hz), "
            f"got low_freq={low_freq}, high_freq={high} at sample rate {sample_rate}"
        )
    if num_bins < 3:
        raise ValueError(f"num_mel_bins must be at least 3, got {num_bins}")
    mel_low, mel_high = _mel(torch.tensor(low_freq, dtype=torch.float64)), _mel(torch.tensor(high, dtype=torch.float64))
    delta = (mel_high - mel_low) / (num_bins + 1)
    b = torch.arange(num_bins, dtype=torch.float64).unsqueeze(1)
    left, center, right = mel_low + b * delta, mel_low + (b + 1) * delta, mel_low + (b + 2) * delta
    # Kaldi uses the first fft_size/2 bins (the Nyquist bin gets no weight).
    mel = _mel(torch.arange(fft_size // 2, dtype=torch.float64) * (sample_rate / fft_size)).unsqueeze(0)
    up, down = (mel - left) / (center - left), (right - mel) / (right - center)
    banks = torch.where(mel <= center, up, down)
    banks = torch.where((mel > left) & (mel < right), banks, torch.zeros(()))
    empty = (banks.sum(1) == 0).nonzero().flatten().tolist()
    if empty:  # Kaldi refuses; torchaudio (and so the original recipe) keeps them as log(eps) columns
        logger.info("mel bins %s cover no FFT bin at %g Hz (%d-point FFT); they stay at log(eps)",
                    empty, sample_rate, fft_size)
    return F.pad(banks, (0, 1))  # num_bins x (fft_size/2 + 1)


def mel_banks(num_bins: int, fft_size: int, sample_rate: float, low_freq: float = 20.0, high_freq: float = 0.0,
              device: Optional[torch.device] = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Kaldi triangular mel filters (``1127 ln(1 + f/700)`` scale) as a ``num_bins x (fft_size/2 + 1)`` matrix."""
    return _mel_banks_cpu(num_bins, fft_size, float(sample_rate), float(low_freq), float(high_freq)).to(device, dtype)


def frame_window(window_type: str, size: int, blackman_coeff: float = 0.42,
                 device: Optional[torch.device] = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """One of Kaldi's analysis windows (``hanning``, ``povey``, ``hamming``, ``rectangular``, ``blackman``)."""
    if window_type not in _WINDOWS:
        raise ValueError(f"unknown window_type {window_type!r}; choose one of {', '.join(_WINDOWS)}")
    a = 2 * math.pi * torch.arange(size, dtype=torch.float64) / (size - 1)
    if window_type == "hanning":
        w = 0.5 - 0.5 * torch.cos(a)
    elif window_type == "povey":
        w = (0.5 - 0.5 * torch.cos(a)).pow(0.85)
    elif window_type == "hamming":
        w = 0.54 - 0.46 * torch.cos(a)
    elif window_type == "blackman":
        w = blackman_coeff - 0.5 * torch.cos(a) + (0.5 - blackman_coeff) * torch.cos(2 * a)
    else:
        w = torch.ones(size, dtype=torch.float64)
    return w.to(device, dtype)


def _frame_starts(num_samples: int, size: int, shift: int, snip_edges: bool) -> torch.Tensor:
    if snip_edges:
        count = 0 if num_samples < size else 1 + (num_samples - size) // shift
        return torch.arange(count) * shift
    count = (num_samples + shift // 2) // shift
    return torch.arange(count) * shift + shift // 2 - size // 2


def kaldi_fbank(waveform: torch.Tensor, sample_rate: int, options: Optional[FbankOptions] = None,
                generator: Optional[torch.Generator] = None, **overrides) -> torch.Tensor:
    """Kaldi ``compute-fbank-feats`` in torch: ``... x N`` samples -> ``... x T x num_mel_bins`` log-mel.

    Matches Kaldi / ``kaldi-native-fbank`` / ``torchaudio.compliance.kaldi.fbank``
    for the same options. Samples are used as given (the original feeds floats
    in [-1, 1]). ``overrides`` replace single fields of ``options``, e.g.
    ``kaldi_fbank(x, 16000, num_mel_bins=80)``. With ``use_energy`` the log
    energy is an extra first column (last with ``htk_compat``).

    Raises ValueError when the waveform is shorter than one frame (with
    ``snip_edges``), or when an option is out of range.
    """
    opts = options or FbankOptions()
    if overrides:
        opts = dataclasses.replace(opts, **overrides)
    if not torch.is_floating_point(waveform):
        raise ValueError(f"waveform must be a floating-point tensor, got dtype {waveform.dtype}")
    size, shift, fft_size = opts.frame_sizes(sample_rate)
    n = waveform.shape[-1]
    starts = _frame_starts(n, size, shift, opts.snip_edges)
    if starts.numel() == 0:
        raise ValueError(
            f"waveform has {n} samples, shorter than one {opts.frame_length_ms} ms frame "
            f"({size} samples at {sample_rate} Hz)"
        )
    dev, dt = waveform.device, waveform.dtype
    idx = starts.unsqueeze(1) + torch.arange(size)
    if not opts.snip_edges:  # reflect out-of-range indices like Kaldi's ExtractWindow
        idx = torch.where(idx < 0, -idx - 1, idx)
        idx = torch.where(idx >= n, 2 * n - 1 - idx, idx)
    frames = waveform[..., idx.to(dev)]  # ... x T x size
    if opts.dither != 0.0:
        frames = frames + opts.dither * torch.randn(frames.shape, generator=generator, dtype=dt).to(dev)
    if opts.remove_dc_offset:
        frames = frames - frames.mean(dim=-1, keepdim=True)
    energy = None
    if opts.use_energy and opts.raw_energy:
        energy = frames.pow(2).sum(-1)
    if opts.preemphasis != 0.0:
        previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
        frames = frames - opts.preemphasis * previous
    frames = frames * frame_window(opts.window_type, size, opts.blackman_coeff, dev, dt)
    if opts.use_energy and not opts.raw_energy:
        energy = frames.pow(2).sum(-1)
    spectrum = torch.fft.rfft(frames, n=fft_size, dim=-1).abs()
    if opts.use_power:
        spectrum = spectrum.pow(2)
    banks = mel_banks(opts.num_mel_bins, fft_size, sample_rate, opts.low_freq, opts.high_freq, dev, dt)
    feats = spectrum @ banks.T
    if opts.use_log_fbank:
        feats = feats.clamp_min(_EPS).log()
    if energy is not None:
        energy = energy.clamp_min(_EPS).log()
        if opts.energy_floor > 0.0:
            energy = energy.clamp_min(math.log(opts.energy_floor))
        parts = [feats, energy.unsqueeze(-1)] if opts.htk_compat else [energy.unsqueeze(-1), feats]
        feats = torch.cat(parts, dim=-1)
    return feats


def pad_or_crop(x: torch.Tensor, length: int, dim: int = -1) -> torch.Tensor:
    """Zero-pad at the end or cut ``x`` along ``dim`` to exactly ``length`` entries."""
    if length <= 0:
        raise ValueError(f"target length must be positive, got {length}")
    have = x.shape[dim]
    if have >= length:
        return x.narrow(dim, 0, length)
    pad_shape = list(x.shape)
    pad_shape[dim] = length - have
    return torch.cat([x, x.new_zeros(pad_shape)], dim=dim)


def normalize(x: torch.Tensor, mean: float = SPEECH_COMMANDS_MEAN, std: float = SPEECH_COMMANDS_STD) -> torch.Tensor:
    """The original's normalisation ``(x - mean) / (2 * std)``."""
    if not std > 0:
        raise ValueError(f"std must be positive, got {std}")
    return (x - mean) / (2.0 * std)


def _random_masks(shape: tuple[int, ...], length: int, max_width: int,
                  generator: Optional[torch.Generator], device: torch.device) -> torch.Tensor:
    """Boolean masks ``shape x length``: one band of width U[0, max_width) per leading index."""
    width = torch.randint(0, max(1, min(max_width, length)), shape, generator=generator)
    start = (torch.rand(shape, generator=generator) * (length - width)).long()
    pos = torch.arange(length)
    mask = (pos >= start.unsqueeze(-1)) & (pos < (start + width).unsqueeze(-1))
    return mask.to(device)


def spec_augment(image: torch.Tensor, freq_mask: int = 48, time_mask: int = 48, num_masks: int = 1,
                 value: float = 0.0, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """SpecAugment on ``... x F x T`` spectrograms: ``num_masks`` frequency then time bands set to ``value``.

    Like torchaudio's ``FrequencyMasking`` / ``TimeMasking``: each band has a
    width drawn from U[0, max) and a uniform start; every leading index gets
    its own bands. The original masks the raw log-mel (value 0) before
    normalisation.
    """
    if image.dim() < 2:
        raise ValueError(f"spec_augment needs ... x F x T input, got shape {tuple(image.shape)}")
    lead, (nf, nt) = tuple(image.shape[:-2]), image.shape[-2:]
    out = image
    for _ in range(num_masks):
        if freq_mask > 0:
            m = _random_masks(lead, nf, freq_mask, generator, image.device)
            out = out.masked_fill(m.unsqueeze(-1), value)
        if time_mask > 0:
            m = _random_masks(lead, nt, time_mask, generator, image.device)
            out = out.masked_fill(m.unsqueeze(-2), value)
    return out


def add_noise_and_roll(image: torch.Tensor, max_shift: int = 10, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """The original's noise augmentation on one ``... x F x T`` image.

    Adds ``U(0, 1) * u / 10`` noise (``u ~ U(0, 1)`` once per call) and rolls
    along time by an integer drawn from ``[-max_shift, max_shift)``.
    """
    scale = torch.rand((), generator=generator).item() / 10.0
    noise = torch.rand(image.shape, generator=generator).to(image.device, image.dtype)
    shift = int(torch.randint(-max_shift, max_shift, (), generator=generator)) if max_shift > 0 else 0
    return torch.roll(image + noise * scale, shifts=shift, dims=-1)


def mix_waveforms(first: torch.Tensor, second: torch.Tensor, lam: float) -> torch.Tensor:
    """Waveform mixup as in the original: ``lam * a + (1 - lam) * b``, both mean-removed.

    ``second`` is zero-padded or cut to the length of ``first``; the mix is
    mean-removed again.
    """
    a = first - first.mean(dim=-1, keepdim=True)
    b = second - second.mean(dim=-1, keepdim=True)
    mixed = lam * a + (1.0 - lam) * pad_or_crop(b, a.shape[-1], dim=-1)
    return mixed - mixed.mean(dim=-1, keepdim=True)


def _log_mel(waveform: torch.Tensor, config: AudioConfig) -> torch.Tensor:
    """Mean-removed waveform (padded to one frame if shorter) -> ``... x F x T`` log-mel.

    Computed in float64 on CPU (where float32 rounding moves quiet bins by ~1e-3)
    and returned in the waveform's dtype.
    """
    if waveform.shape[-1] == 0:
        raise ValueError("waveform has no samples")
    if not torch.isfinite(waveform).all():
        raise ValueError("waveform contains NaN or infinite samples")
    size = config.fbank.frame_sizes(config.sample_rate)[0]
    precise = torch.float64 if waveform.device.type == "cpu" else waveform.dtype
    wave = waveform.to(precise)
    wave = wave - wave.mean(dim=-1, keepdim=True)
    if wave.shape[-1] < size:
        wave = pad_or_crop(wave, size, dim=-1)
    return kaldi_fbank(wave, config.sample_rate, config.fbank).transpose(-1, -2).to(waveform.dtype)


def log_mel_spectrogram(waveform: torch.Tensor, config: AudioConfig = AudioConfig()) -> torch.Tensor:
    """Raw (unnormalised) log-mel ``... x F x target_frames`` of a ``... x N`` waveform.

    The waveform's mean is removed first; a waveform shorter than one frame is
    zero-padded to one frame; the spectrogram is zero-padded (value 0, as the
    original) or cut to ``config.target_frames``. A silent waveform gives the
    constant ``log(FLT_EPSILON)`` spectrogram.
    """
    return pad_or_crop(_log_mel(waveform, config), config.target_frames, dim=-1)


def waveform_to_image(waveform: torch.Tensor, config: AudioConfig = AudioConfig(), *, train: bool = False,
                      freq_mask: int = 0, time_mask: int = 0, noise: bool = False,
                      generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """The whole front-end: ``... x N`` waveform at ``config.sample_rate`` -> ``... x 1 x F x T`` image.

    Steps (the original's order): :func:`log_mel_spectrogram`, then for
    ``train=True`` SpecAugment (``freq_mask``/``time_mask`` max widths) on the
    raw log-mel, then normalisation, then for ``train=True`` and ``noise`` the
    noise + time roll. With ``config.per_utterance_norm`` the real (unpadded)
    frames are normalised by their own mean/std first, then padded/cut, and
    SpecAugment masks with 0 (the clip's mean).
    """
    if config.per_utterance_norm:
        spec = pad_or_crop(per_utterance_normalize(_log_mel(waveform, config)), config.target_frames, dim=-1)
        if train and (freq_mask > 0 or time_mask > 0):
            spec = spec_augment(spec, freq_mask, time_mask, generator=generator)
        image = spec
    else:
        spec = log_mel_spectrogram(waveform, config)
        if train and (freq_mask > 0 or time_mask > 0):
            spec = spec_augment(spec, freq_mask, time_mask, generator=generator)
        image = normalize(spec, config.mean, config.std)
    if train and noise:
        image = add_noise_and_roll(image, generator=generator)
    return image.unsqueeze(-3)


def sliding_windows(waveform: torch.Tensor, config: AudioConfig = AudioConfig(), hop_frames: Optional[int] = None) -> torch.Tensor:
    """Views of a long ``N``-sample waveform: ``V x 1 x F x target_frames`` normalised images.

    The log-mel of the whole file is cut into windows of ``target_frames``
    starting every ``hop_frames`` (default: half a window); the last window is
    zero-padded. A clip no longer than one window gives a single view, equal
    to :func:`waveform_to_image`. With ``config.per_utterance_norm`` the whole
    file's log-mel is normalised by its own mean/std before it is cut.
    """
    if waveform.dim() != 1:
        raise ValueError(f"sliding_windows expects one 1-D waveform, got shape {tuple(waveform.shape)}")
    width = config.target_frames
    hop = hop_frames or max(1, width // 2)
    if hop <= 0:
        raise ValueError(f"hop_frames must be positive, got {hop_frames}")
    spec = _log_mel(waveform, config)  # F x T
    if config.per_utterance_norm:  # statistics of the whole file (= of the clip for a short one)
        spec = per_utterance_normalize(spec)
    total = spec.shape[-1]
    count = 1 if total <= width else 1 + math.ceil((total - width) / hop)
    views = torch.stack([pad_or_crop(spec[:, i * hop: i * hop + width], width, dim=-1) for i in range(count)])
    if config.per_utterance_norm:
        return views.unsqueeze(1)
    return normalize(views, config.mean, config.std).unsqueeze(1)


# ----------------------------------------------------------------------------------------------
# Augmentations for generalising across speakers, voices and recording chains (waveform domain,
# except per_utterance_normalize). All take torch's global generator unless ``generator`` is given.

def per_utterance_normalize(spec: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``(x - mean) / std`` with the mean and std of each ``F x T`` spectrogram (the last two dims).

    Removes a clip's overall level and spread, so that loudness, microphone gain
    and part of a voice's or synthesiser's character do not move the input.
    A constant clip (e.g. silence) becomes all zeros.
    """
    if spec.dim() < 2:
        raise ValueError(f"per_utterance_normalize needs ... x F x T input, got shape {tuple(spec.shape)}")
    mean = spec.mean(dim=(-2, -1), keepdim=True)
    std = spec.std(dim=(-2, -1), keepdim=True, unbiased=False)
    out = (spec - mean) / std.clamp_min(eps)
    return torch.where(std > eps, out, torch.zeros((), dtype=out.dtype, device=out.device))


def fractional_resample(waveform: torch.Tensor, step: float, *, resolution: int = 100) -> torch.Tensor:
    """Read ``... x N`` at positions ``0, step, 2 step, ...`` (band-limited): ``step`` > 1 shortens, < 1 lengthens.

    ``step`` is rounded to a multiple of ``1 / resolution`` (0.01 by default) and
    applied as the rational rate change ``round(step * resolution) / resolution``
    with the polyphase windowed-sinc :func:`~unireplknet.modalities.audio.io.resample`
    (which low-passes against aliasing). The output has ``ceil(N / step)``
    samples for the rounded ``step``.
    """
    from .io import resample

    if not step > 0:
        raise ValueError(f"step must be positive, got {step}")
    if waveform.shape[-1] == 0:
        raise ValueError("waveform has no samples")
    num = max(1, round(float(step) * resolution))
    if num == resolution:
        return waveform
    g = math.gcd(num, resolution)
    return resample(waveform, num // g, resolution // g)


def speed_perturb(waveform: torch.Tensor, factor: float) -> torch.Tensor:
    """Play ``... x N`` ``factor`` times faster (Kaldi/ESPnet speed perturbation): tempo and pitch change together.

    The result has ``ceil(N / factor)`` samples (0.9 -> about 11% longer,
    1.1 -> about 9% shorter); the spectrum scales by ``factor``, which also
    imitates a different vocal-tract length. ``factor`` is rounded to 0.01
    (see :func:`fractional_resample`).
    """
    if not factor > 0:
        raise ValueError(f"speed factor must be positive, got {factor}")
    return fractional_resample(waveform, float(factor))


def time_stretch(waveform: torch.Tensor, rate: float, n_fft: int = 512, hop: Optional[int] = None) -> torch.Tensor:
    """Phase-vocoder time stretch of ``... x N``: ``rate`` > 1 faster, < 1 slower, pitch unchanged.

    STFT (Hann window ``n_fft``, hop ``n_fft // 4``), magnitudes interpolated
    and phases advanced along the new time grid, inverse STFT. The result has
    ``round(N / rate)`` samples.
    """
    if not rate > 0:
        raise ValueError(f"stretch rate must be positive, got {rate}")
    n = waveform.shape[-1]
    if rate == 1.0:
        return waveform
    hop = hop or n_fft // 4
    lead = waveform.shape[:-1]
    x = waveform.reshape(-1, n)
    if n < n_fft:  # too short for one frame: fall back to padding
        x = F.pad(x, (0, n_fft - n))
    window = torch.hann_window(n_fft, dtype=x.dtype, device=x.device)
    spec = torch.stft(x, n_fft, hop, window=window, center=True, pad_mode="constant", return_complex=True)  # B x K x T
    steps = torch.arange(0, spec.shape[-1], rate, dtype=torch.float64, device=x.device)
    spec = F.pad(spec, (0, 2))
    expected = torch.linspace(0, math.pi * hop, spec.shape[-2], dtype=x.dtype, device=x.device).unsqueeze(-1)
    i0 = steps.floor().long()
    frac = (steps - i0.double()).to(x.dtype)
    a, b = spec[..., i0], spec[..., i0 + 1]
    mag = (1 - frac) * a.abs() + frac * b.abs()
    dphase = b.angle() - a.angle() - expected
    dphase = dphase - 2 * math.pi * torch.round(dphase / (2 * math.pi))
    phase = torch.cat([spec[..., :1].angle(), (dphase + expected)[..., :-1]], dim=-1).cumsum(-1)
    out = torch.polar(mag, phase)
    length = max(1, round(n / rate))
    y = torch.istft(out, n_fft, hop, window=window, center=True, length=length)
    return y.reshape(*lead, length)


def pitch_shift(waveform: torch.Tensor, semitones: float, n_fft: int = 512) -> torch.Tensor:
    """Shift the pitch (and spectral envelope) of ``... x N`` by ``semitones``, keeping exactly ``N`` samples.

    :func:`time_stretch` by ``1 / r`` (``r = 2 ** (semitones / 12)``), then
    :func:`fractional_resample` with step ``r`` back to the original duration;
    the result is cut or zero-padded to ``N`` samples (``r`` is rounded to 0.01,
    so the shift is exact to about 0.15 semitones, and the two steps round by at
    most a few samples). A phase vocoder smears transients a little and can
    lose up to ~10% of a steady tone's level: fine for augmentation.
    """
    if semitones == 0:
        return waveform
    ratio = 2.0 ** (float(semitones) / 12.0)
    stretched = time_stretch(waveform, 1.0 / ratio, n_fft=n_fft)
    return pad_or_crop(fractional_resample(stretched, ratio), waveform.shape[-1], dim=-1)


def random_gain(waveform: torch.Tensor, db: float) -> torch.Tensor:
    """Scale ``waveform`` by ``db`` decibels (amplitude x ``10 ** (db / 20)``; RMS changes by ``db`` dB)."""
    return waveform * (10.0 ** (float(db) / 20.0))


def time_shift(waveform: torch.Tensor, shift: int) -> torch.Tensor:
    """Delay (``shift`` > 0) or advance (< 0) ``... x N`` by ``|shift|`` samples, zero-filled; length kept."""
    n = waveform.shape[-1]
    shift = int(shift)
    if shift == 0:
        return waveform
    if abs(shift) >= n:
        return torch.zeros_like(waveform)
    if shift > 0:
        return F.pad(waveform[..., : n - shift], (shift, 0))
    return F.pad(waveform[..., -shift:], (0, -shift))


def colored_noise(num_samples: int, exponent: float = 1.0, *, generator: Optional[torch.Generator] = None,
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Unit-RMS noise whose power falls as ``1 / f ** exponent``: 0 white, 1 pink, 2 brown, -1 blue."""
    if num_samples <= 0:
        raise ValueError(f"num_samples must be positive, got {num_samples}")
    white = torch.randn(num_samples, generator=generator, dtype=torch.float64)
    spec = torch.fft.rfft(white)
    freqs = torch.fft.rfftfreq(num_samples, dtype=torch.float64)
    freqs[0] = freqs[1] if num_samples > 1 else 1.0
    noise = torch.fft.irfft(spec * freqs.pow(-float(exponent) / 2.0), n=num_samples)
    noise = noise - noise.mean()
    return (noise / noise.pow(2).mean().sqrt().clamp_min(1e-12)).to(dtype)


def add_noise_snr(waveform: torch.Tensor, noise: torch.Tensor, snr_db: float) -> torch.Tensor:
    """``waveform + g * noise`` with ``g`` chosen so that the signal-to-noise ratio is ``snr_db`` dB.

    ``noise`` is looped or cut to the waveform's length. A silent waveform is
    returned unchanged (no reference level).
    """
    n = waveform.shape[-1]
    if noise.shape[-1] == 0:
        raise ValueError("noise has no samples")
    if noise.shape[-1] < n:
        noise = noise.repeat(*([1] * (noise.dim() - 1)), math.ceil(n / noise.shape[-1]))
    noise = noise[..., :n].to(waveform.dtype)
    p_signal = waveform.pow(2).mean(-1, keepdim=True)
    p_noise = noise.pow(2).mean(-1, keepdim=True).clamp_min(1e-20)
    gain = torch.sqrt(p_signal / (p_noise * 10.0 ** (float(snr_db) / 10.0)))
    return waveform + gain * noise


def _uniform(low: float, high: float, generator: Optional[torch.Generator]) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator, dtype=torch.float64))


@dataclass
class WaveAugment:
    """Random waveform augmentations of one training clip, in this order.

    * ``speed``: speed perturbation by a factor from U[1 - speed, 1 + speed] (length changes);
    * ``pitch``: pitch shift by U[-pitch, pitch] semitones (length kept), with probability ``pitch_prob``;
    * ``gain_db``: gain from U[-gain_db, gain_db] dB;
    * ``shift``: time shift by U[-shift, shift] seconds, zero-filled (length kept);
    * ``noise_prob``: probability of background noise at an SNR from U[``snr``]; the noise is a clip from
      ``noise_files`` (a random excerpt) when given, else coloured noise with exponent U[-1, 2]
      (blue to brown).

    A value of 0 turns a step off. Draws come from ``generator`` (torch's global one by default),
    so a fixed torch seed gives the same result.
    """

    sample_rate: int = 16000
    speed: float = 0.0
    pitch: float = 0.0
    pitch_prob: float = 0.5
    gain_db: float = 0.0
    shift: float = 0.0
    noise_prob: float = 0.0
    snr: tuple[float, float] = (5.0, 30.0)
    noise_files: tuple = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.speed < 1.0:
            raise ValueError(f"speed perturbation must be in [0, 1), got {self.speed}")
        for name in ("pitch", "gain_db", "shift"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("pitch_prob", "noise_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if len(self.snr) != 2 or self.snr[0] > self.snr[1]:
            raise ValueError(f"snr must be (low, high) dB with low <= high, got {self.snr}")

    @property
    def active(self) -> bool:
        """Whether any step is on."""
        return bool(self.speed or (self.pitch and self.pitch_prob) or self.gain_db or self.shift or self.noise_prob)

    def _noise(self, n: int, generator: Optional[torch.Generator], dtype: torch.dtype) -> torch.Tensor:
        if self.noise_files:
            from .io import load_audio

            path = self.noise_files[int(torch.randint(len(self.noise_files), (), generator=generator))]
            noise = load_audio(path, self.sample_rate).to(dtype)
            if noise.shape[-1] > n:
                start = int(torch.randint(noise.shape[-1] - n + 1, (), generator=generator))
                noise = noise[start: start + n]
            if float(noise.pow(2).mean()) > 0:
                return noise
        return colored_noise(n, _uniform(-1.0, 2.0, generator), generator=generator, dtype=dtype)

    def __call__(self, waveform: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """The augmented copy of a 1-D (or ``... x N``) waveform."""
        x = waveform
        if self.speed > 0:
            x = speed_perturb(x, _uniform(1.0 - self.speed, 1.0 + self.speed, generator))
        if self.pitch > 0 and self.pitch_prob > 0 and float(torch.rand((), generator=generator)) < self.pitch_prob:
            x = pitch_shift(x, _uniform(-self.pitch, self.pitch, generator))
        if self.gain_db > 0:
            x = random_gain(x, _uniform(-self.gain_db, self.gain_db, generator))
        if self.shift > 0:
            limit = int(self.shift * self.sample_rate)
            x = time_shift(x, int(torch.randint(-limit, limit + 1, (), generator=generator)))
        if self.noise_prob > 0 and float(torch.rand((), generator=generator)) < self.noise_prob:
            snr = _uniform(self.snr[0], self.snr[1], generator)
            x = add_noise_snr(x, self._noise(x.shape[-1], generator, x.dtype), snr)
        return x
