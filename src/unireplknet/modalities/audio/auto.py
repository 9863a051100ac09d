"""``auto`` rules of the audio modality: clip length (image width), mel bins and normalisation from the data."""
from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path
from typing import Any, Mapping

from ..._extras import require
from .io import AUDIO_EXTENSIONS

__all__ = ["auto_config", "frames_for", "SAMPLE"]

logger = logging.getLogger(__name__)

#: how many training files are opened to measure the data.
SAMPLE = 200


def _training_files(cfg: Mapping[str, Any]) -> list[Path]:
    """A seeded sample of the training clips, by the run's own split rules (Speech Commands lists, CSV lists,
    carved validation: never a validation or test file, never ``_background_noise_``)."""
    from ..base import sample_training_files
    from .datasets import audio_splits

    return sample_training_files(lambda: audio_splits(cfg["data"], argparse.Namespace(**dict(cfg))), SAMPLE,
                                 int(cfg.get("seed") or 0))


def frames_for(durations: list[float], speed_perturb: float = 0.0) -> tuple[int, str]:
    """``target_frames`` (10 ms frames, a multiple of 16 in 32..1024) that keeps every clip of ``durations``
    (seconds) whole, also when speed perturbation slows it down by ``1 - speed_perturb``.

    Outliers are the exception: clips longer than twice the 90th percentile are left out of the
    rule (training cuts them, ``predict`` slides windows over them), so that one long recording
    does not multiply the cost of every batch. Returns ``(frames, reason)``.
    """
    if not durations:
        raise ValueError("no clip durations")
    ds = sorted(durations)
    p90 = ds[min(len(ds) - 1, int(0.9 * len(ds)))]
    kept = [d for d in ds if d <= 2.0 * p90]
    longest = kept[-1]
    cover = longest / max(1.0 - float(speed_perturb or 0.0), 0.5)
    frames = int(min(1024, max(32, math.ceil(cover * 100 / 16) * 16)))
    why = f"the longest of {len(ds)} sampled clips lasts {longest:.2f} s"
    if len(kept) < len(ds):
        why = (f"{len(ds) - len(kept)} of {len(ds)} sampled clips are outliers (> 2x the 90th percentile "
               f"{p90:.2f} s) and will be cut; the longest other clip lasts {longest:.2f} s")
    if speed_perturb:
        why += f", {cover:.2f} s when slowed by speed perturbation"
    why += "; 10 ms frames, multiple of 16, 32-1024"
    if cover * 100 > 1024:
        why += " (capped: longer clips are cut; predict uses sliding windows)"
    return frames, why


def auto_config(cfg: Mapping[str, Any]) -> dict[str, tuple[Any, str]]:
    """``target_frames`` to keep the sampled clips whole (:func:`frames_for`); ``audio_mean``/``audio_std``
    measured on a sample of training files; 64 mel bins for short clips on a CPU (empty without data)."""
    if cfg.get("data") is None:
        return {}
    sf = require("soundfile", "audio", "reading audio")
    files = _training_files(cfg)
    durations = []
    for f in files:
        try:
            info = sf.info(str(f))
            durations.append(info.frames / max(info.samplerate, 1))
        except Exception:  # reported by the pre-scan
            continue
    if not durations:
        logger.info("auto: no training clip could be read; clip length and normalisation keep their defaults")
        return {}
    speed = cfg.get("speed_perturb")
    if speed is None:
        from .datasets import CONFIG_DEFAULTS

        speed = CONFIG_DEFAULTS["speed_perturb"]
    frames, why = frames_for(durations, float(speed))
    out: dict[str, tuple[Any, str]] = {"target_frames": (frames, why)}
    if frames <= 200:
        out["num_mel_bins"] = (64, "short clips (keyword-spotting size): 64 mel bins")
        out["freq_mask"] = (12, "SpecAugment band scaled to 64 bins")
        out["time_mask"] = (max(8, frames // 5), "SpecAugment band of a fifth of the clip")
    # normalisation measured on training files with the chosen front-end
    from .datasets import CONFIG_DEFAULTS, log_mel_stats
    from .transforms import AudioConfig, FbankOptions

    config = AudioConfig(sample_rate=int(cfg.get("sample_rate") or CONFIG_DEFAULTS["sample_rate"]),
                         target_frames=frames,
                         fbank=FbankOptions(num_mel_bins=int(out.get("num_mel_bins", (cfg.get("num_mel_bins") or 128,))[0])))
    usable = []
    for f in files[:64]:
        try:
            log_mel_stats([f], config)
            usable.append(f)
        except Exception:
            continue
    if usable:
        mean, std = log_mel_stats(usable, config)
        out["audio_mean"] = (round(mean, 4), f"log-mel mean of {len(usable)} training files")
        out["audio_std"] = (round(max(std, 1e-3), 4), f"log-mel std of {len(usable)} training files")
    return out
