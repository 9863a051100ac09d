"""Reading audio files (WAV/FLAC/OGG/MP3 through soundfile) and resampling in torch."""
from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Union

import torch
import torch.nn.functional as F

from unireplknet._extras import require

__all__ = ["AUDIO_EXTENSIONS", "read_audio", "load_audio", "decode_audio", "resample"]

#: File suffixes the datasets pick up (what libsndfile decodes).
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")

PathLike = Union[str, Path]


def read_audio(path: PathLike) -> tuple[torch.Tensor, int]:
    """Decode a file as it is: ``(channels x samples float32 tensor, sample_rate)``.

    Raises FileNotFoundError for a missing file and ValueError for a file
    soundfile cannot decode (naming the path and the decoder's reason).
    """
    sf = require("soundfile", "audio", "reading audio files")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError / RuntimeError / TypeError by format
        raise ValueError(f"cannot decode audio file {path}: {e}") from e
    return torch.from_numpy(data.T.copy()), int(rate)


def load_audio(path: PathLike, sample_rate: int | None = None, *, allow_resample: bool = True) -> torch.Tensor:
    """Read a file as a mono 1-D float32 waveform at ``sample_rate`` (the file's own rate if None).

    Multi-channel audio is mixed down by averaging the channels. A file at
    another rate is resampled with :func:`resample` (or, with
    ``allow_resample=False``, rejected). Raises ValueError for a file with no
    samples or with NaN/infinite samples. Silent files are returned as zeros.
    """
    wave, rate = read_audio(path)
    return _mono_at(wave, rate, sample_rate, path, allow_resample)


def _mono_at(wave: torch.Tensor, rate: int, sample_rate: int | None, name: PathLike,
             allow_resample: bool = True) -> torch.Tensor:
    """Checks, down-mix and resampling of :func:`load_audio` for a decoded ``channels x samples`` waveform."""
    if wave.shape[1] == 0:
        raise ValueError(f"audio file has no samples: {name}")
    if not torch.isfinite(wave).all():
        raise ValueError(f"audio file contains NaN or infinite samples: {name}")
    wave = wave.mean(dim=0)
    if sample_rate is not None and rate != sample_rate:
        if not allow_resample:
            raise ValueError(f"{name} is sampled at {rate} Hz but {sample_rate} Hz is required")
        wave = resample(wave, rate, sample_rate)
    return wave


def decode_audio(data: bytes, sample_rate: int | None = None, name: str = "<bytes>") -> torch.Tensor:
    """:func:`load_audio` for the bytes of an audio file (a shard member): a mono float32 waveform at
    ``sample_rate`` (its own rate if None). Raises ValueError naming ``name`` for bytes soundfile cannot decode."""
    import io

    sf = require("soundfile", "audio", "reading audio files")
    try:
        arr, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError / RuntimeError / TypeError by format
        raise ValueError(f"cannot decode audio {name}: {e}") from e
    return _mono_at(torch.from_numpy(arr.T.copy()), int(rate), sample_rate, name)


@functools.lru_cache(maxsize=128)
def _sinc_kernel(orig: int, new: int, zero_crossings: int, rolloff: float) -> tuple[torch.Tensor, int]:
    """Hann-windowed sinc low-pass, one row per output phase: ``new x 1 x (2 * reach + orig)`` (float64, CPU)."""
    cutoff = min(orig, new) * rolloff / orig  # low-pass cut-off, in cycles per input sample x 2
    reach = math.ceil(zero_crossings / cutoff)  # input samples on each side of an output sample
    offsets = torch.arange(-reach, reach + orig, dtype=torch.float64)
    phases = torch.arange(new, dtype=torch.float64).unsqueeze(1) * orig / new
    tau = phases - offsets  # distance (input samples) from each output time to each input sample
    window = torch.cos(tau.clamp(-reach, reach) * math.pi / (2 * reach)).pow(2)
    kernel = cutoff * torch.sinc(cutoff * tau) * window
    return kernel.unsqueeze(1), reach


def resample(waveform: torch.Tensor, orig_rate: int, new_rate: int, *, zero_crossings: int = 16,
             rolloff: float = 0.945) -> torch.Tensor:
    """Band-limited resampling of ``... x N`` by a polyphase windowed-sinc filter (torch, any device).

    The output has ``ceil(N * new_rate / orig_rate)`` samples. ``rolloff`` is
    the cut-off as a fraction of the lower Nyquist frequency.
    """
    if orig_rate <= 0 or new_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_rate} -> {new_rate}")
    if orig_rate == new_rate:
        return waveform
    g = math.gcd(int(orig_rate), int(new_rate))
    orig, new = int(orig_rate) // g, int(new_rate) // g
    kernel, reach = _sinc_kernel(orig, new, zero_crossings, float(rolloff))
    kernel = kernel.to(waveform.device, waveform.dtype)
    lead, n = waveform.shape[:-1], waveform.shape[-1]
    x = F.pad(waveform.reshape(-1, 1, n), (reach, reach + orig))
    y = F.conv1d(x, kernel, stride=orig)  # B x new x blocks: output q*new + j is y[:, j, q]
    y = y.transpose(1, 2).reshape(*lead, -1)
    return y[..., : math.ceil(n * new / orig)]
