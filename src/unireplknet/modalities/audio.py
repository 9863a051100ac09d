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
    noise + time roll.
    """
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
    to :func:`waveform_to_image`.
    """
    if waveform.dim() != 1:
        raise ValueError(f"sliding_windows expects one 1-D waveform, got shape {tuple(waveform.shape)}")
    width = config.target_frames
    hop = hop_frames or max(1, width // 2)
    if hop <= 0:
        raise ValueError(f"hop_frames must be positive, got {hop_frames}")
    spec = _log_mel(waveform, config)  # F x T
    total = spec.shape[-1]
    count = 1 if total <= width else 1 + math.ceil((total - width) / hop)
    views = [pad_or_crop(spec[:, i * hop: i * hop + width], width, dim=-1) for i in range(count)]
    return normalize(torch.stack(views), config.mean, config.std).unsqueeze(1)
