"""Audio classification data: datasets of clips and the ``--modality audio`` plug-in of the engine.

``unireplknet train --modality audio --data PATH`` reads any layout that
:func:`~unireplknet.data.audio_layouts.scan_audio_data` recognises (Speech
Commands V2, class folders, CSV), turns each clip into a ``1 x mel x frames``
log-mel image (:mod:`unireplknet.modalities.audio`) and trains the unchanged
backbone with ``in_chans=1``. The ``speech_commands`` recipe reproduces the
original's (AST) settings.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import torch
from torch.utils.data import Dataset

from ..modalities.audio import (
    SPEECH_COMMANDS_MEAN,
    SPEECH_COMMANDS_STD,
    AudioConfig,
    FbankOptions,
    log_mel_spectrogram,
    mix_waveforms,
    sliding_windows,
    waveform_to_image,
)
from ..tasks.base import TaskData
from .audio_demo import build_spoken_words
from .audio_io import load_audio
from .audio_layouts import all_items, check_labels, scan_audio_data

__all__ = [
    "AudioClassificationDataset",
    "log_mel_stats",
    "audio_config_from_args",
    "add_train_args",
    "CONFIG_DEFAULTS",
    "RECIPES",
    "DEMO_DEFAULTS",
    "build_task_data",
    "load_for_predict",
]

logger = logging.getLogger(__name__)

Item = tuple[Path, tuple[str, ...]]


class AudioClassificationDataset(Dataset):
    """Labelled audio files -> ``(1 x F x T image, target)``.

    Targets are class indices, or float vectors when ``multi_label`` (multi-hot)
    or ``soft_targets`` (one-hot, mixed by waveform mixup). Training
    augmentation follows the original: waveform mixup with a uniformly chosen
    partner (probability ``mixup_prob``, ``lambda ~ Beta(mixup_alpha, mixup_alpha)``),
    SpecAugment and noise + time roll. Randomness comes from torch's global
    generator, which the engine seeds per sample.
    """

    def __init__(self, items: Sequence[Item], class_names: Sequence[str], config: AudioConfig = AudioConfig(), *,
                 train: bool = False, multi_label: bool = False, soft_targets: bool = False,
                 freq_mask: int = 0, time_mask: int = 0, noise: bool = False,
                 mixup_prob: float = 0.0, mixup_alpha: float = 10.0) -> None:
        if not items:
            raise ValueError("an audio dataset needs at least one file")
        if not 0.0 <= mixup_prob <= 1.0:
            raise ValueError(f"mixup probability must be in [0, 1], got {mixup_prob}")
        self.items = list(items)
        self.class_names = list(class_names)
        self.index = {name: i for i, name in enumerate(self.class_names)}
        check_labels(self.items, self.class_names, "audio dataset")
        self.config = config
        self.train = train
        self.multi_label = multi_label
        self.vector_targets = multi_label or soft_targets or (train and mixup_prob > 0)
        self.freq_mask, self.time_mask, self.noise = freq_mask, time_mask, noise
        self.mixup_prob, self.mixup_alpha = mixup_prob, mixup_alpha

    def __len__(self) -> int:
        return len(self.items)

    def target_vector(self, index: int) -> torch.Tensor:
        """Multi-hot float vector of the labels of item ``index``."""
        vec = torch.zeros(len(self.class_names))
        vec[[self.index[label] for label in self.items[index][1]]] = 1.0
        return vec

    def waveform(self, index: int) -> torch.Tensor:
        """The mono waveform of item ``index`` at the configured rate."""
        return load_audio(self.items[index][0], self.config.sample_rate)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Any]:
        wave = self.waveform(index)
        target: Any = self.target_vector(index) if self.vector_targets else self.index[self.items[index][1][0]]
        if self.train and self.mixup_prob > 0 and float(torch.rand(())) < self.mixup_prob:
            partner = int(torch.randint(len(self.items), ()))
            lam = float(torch.distributions.Beta(self.mixup_alpha, self.mixup_alpha).sample())
            wave = mix_waveforms(wave, self.waveform(partner), lam)
            target = lam * target + (1.0 - lam) * self.target_vector(partner)
        image = waveform_to_image(wave, self.config, train=self.train, freq_mask=self.freq_mask,
                                  time_mask=self.time_mask, noise=self.noise)
        return image, target


def log_mel_stats(paths: Iterable[Path], config: AudioConfig = AudioConfig()) -> tuple[float, float]:
    """Mean and std of the raw log-mel images (padded/cut to ``target_frames``) of audio files.

    These are the ``audio_mean`` / ``audio_std`` of the normalisation
    ``(x - mean) / (2 * std)``; like the original, zero padding is counted.
    """
    total = squares = count = 0.0
    for path in paths:
        spec = log_mel_spectrogram(load_audio(path, config.sample_rate), config).double()
        total += float(spec.sum())
        squares += float(spec.pow(2).sum())
        count += spec.numel()
    if count == 0:
        raise ValueError("no audio files to compute statistics from")
    mean = total / count
    return mean, max(squares / count - mean * mean, 0.0) ** 0.5


# ----------------------------------------------------------------------------------------------
# The engine plug-in (see docs/engine.md): flags, defaults, recipes, task data, predict input.

CONFIG_DEFAULTS: dict[str, Any] = {
    "sample_rate": 16000,
    "num_mel_bins": 128,
    "target_frames": 128,
    "fbank_window": "hanning",
    "audio_mean": SPEECH_COMMANDS_MEAN,
    "audio_std": SPEECH_COMMANDS_STD,
    "freq_mask": 48,
    "time_mask": 48,
    "audio_noise": True,
    "wave_mixup": 0.6,
    "wave_mixup_alpha": 10.0,
    "multi_label": None,
    "val_fraction": 0.1,
    "window_hop": None,
    "demo_words": 10,
    "demo_repeats": 3,
}

#: The built-in demo (no --data): spoken words by espeak-ng voices (:mod:`.audio_demo`), a tiny
#: backbone on 64 mel bins x 100 frames, and the demo set's log-mel statistics (`unireplknet audio-stats`).
DEMO_DEFAULTS: dict[str, Any] = {
    "model": "custom",
    "model_args": {"depths": [1, 1, 2, 1], "dims": [24, 48, 96, 192], "kernel_sizes": [[3], [7], [7, 3], [7]]},
    "epochs": 12,
    "batch_size": 32,
    "lr": 2e-3,
    "warmup_epochs": 1,
    "weight_decay": 0.05,
    "smoothing": 0.1,
    "drop_path": 0.05,
    "num_mel_bins": 64,
    "target_frames": 100,
    "audio_mean": -6.907172,
    "audio_std": 6.847467,
    "freq_mask": 12,
    "time_mask": 20,
    "wave_mixup": 0.3,
}

#: The original audio recipe (AST on Speech Commands V2, SPEC §3). Differences: the
#: engine's schedule is cosine (the original steps the lr by x0.85 every epoch from
#: epoch 5) and the loss is soft-target cross-entropy (the original uses BCE on the
#: one-hot/mixed targets; pass --multi-label for BCE with mAP metrics).
RECIPES: dict[str, dict[str, Any]] = {
    "speech_commands": {
        "model": "unireplknet_s",
        "drop_path": 0.4,
        "epochs": 100,
        "batch_size": 128,
        "opt": "adam",
        "lr": 2.5e-4,
        "opt_betas": [0.95, 0.999],
        "weight_decay": 5e-7,
        "warmup_epochs": 0,
        "min_lr": 0.0,
        "smoothing": 0.0,
        "mixup": 0.0,
        "cutmix": 0.0,
        "sample_rate": 16000,
        "num_mel_bins": 128,
        "target_frames": 128,
        "fbank_window": "hanning",
        "audio_mean": SPEECH_COMMANDS_MEAN,
        "audio_std": SPEECH_COMMANDS_STD,
        "freq_mask": 48,
        "time_mask": 48,
        "audio_noise": True,
        "wave_mixup": 0.6,
        "wave_mixup_alpha": 10.0,
    },
}


def add_train_args(parser: argparse.ArgumentParser) -> None:
    """Add the audio flags (every default None: the real defaults are :data:`CONFIG_DEFAULTS`)."""
    g = parser.add_argument_group("audio (--modality audio)")
    g.add_argument("--sample-rate", dest="sample_rate", type=int, default=None,
                   help="rate every file is resampled to (default 16000)")
    g.add_argument("--num-mel-bins", dest="num_mel_bins", type=int, default=None,
                   help="mel bins = image height (default 128)")
    g.add_argument("--target-frames", dest="target_frames", type=int, default=None,
                   help="10 ms frames per clip = image width; shorter clips are zero-padded, longer cut (default 128)")
    g.add_argument("--fbank-window", dest="fbank_window", default=None,
                   choices=["hanning", "povey", "hamming", "rectangular", "blackman"], help="analysis window (default hanning)")
    g.add_argument("--audio-mean", dest="audio_mean", type=float, default=None,
                   help="log-mel mean of the data set (see `unireplknet audio-stats`; default: Speech Commands')")
    g.add_argument("--audio-std", dest="audio_std", type=float, default=None, help="log-mel std of the data set")
    g.add_argument("--freq-mask", dest="freq_mask", type=int, default=None, help="SpecAugment max frequency band (default 48; 0 off)")
    g.add_argument("--time-mask", dest="time_mask", type=int, default=None, help="SpecAugment max time band (default 48; 0 off)")
    g.add_argument("--audio-noise", dest="audio_noise", action=argparse.BooleanOptionalAction, default=None,
                   help="noise + time-roll augmentation (default on)")
    g.add_argument("--wave-mixup", dest="wave_mixup", type=float, default=None,
                   help="probability of waveform mixup per training clip (default 0.6; 0 off)")
    g.add_argument("--wave-mixup-alpha", dest="wave_mixup_alpha", type=float, default=None,
                   help="Beta(alpha, alpha) of the mixup weight (default 10)")
    g.add_argument("--multi-label", dest="multi_label", action=argparse.BooleanOptionalAction, default=None,
                   help="BCE loss and multi-hot targets (default: when a file has several labels)")
    g.add_argument("--val-fraction", dest="val_fraction", type=float, default=None,
                   help="share of each class held out for validation when the data has no val split (default 0.1)")
    g.add_argument("--window-hop", dest="window_hop", type=int, default=None,
                   help="predict: frames between sliding windows over long files (default half a window)")
    g.add_argument("--demo-words", dest="demo_words", type=int, default=None,
                   help="demo (no --data): how many spoken words (classes), 2..10 (default 10)")
    g.add_argument("--demo-repeats", dest="demo_repeats", type=int, default=None,
                   help="demo: renditions of each word per voice (default 3)")


def _get(args: argparse.Namespace, key: str) -> Any:
    value = getattr(args, key, None)
    return CONFIG_DEFAULTS[key] if value is None else value


def audio_config_from_args(args: argparse.Namespace) -> AudioConfig:
    """The front-end configuration described by resolved config keys."""
    return AudioConfig(
        sample_rate=int(_get(args, "sample_rate")),
        target_frames=int(_get(args, "target_frames")),
        mean=float(_get(args, "audio_mean")),
        std=float(_get(args, "audio_std")),
        fbank=FbankOptions(num_mel_bins=int(_get(args, "num_mel_bins")), window_type=str(_get(args, "fbank_window"))),
    )


def build_task_data(args: argparse.Namespace) -> TaskData:
    """Scan ``args.data`` (and ``args.val_data``) and build the training/validation/test datasets.

    Without ``args.data`` the spoken-word demo set is synthesised into ``OUTPUT/spoken_words``.
    """
    seed = int(getattr(args, "seed", 0) or 0)
    data = getattr(args, "data", None)
    if data is None:  # the built-in demo, synthesised once into the run directory
        data = build_spoken_words(Path(getattr(args, "output", None) or "runs/demo") / "spoken_words",
                                  int(_get(args, "demo_words")), int(_get(args, "demo_repeats")), seed)
    splits = scan_audio_data(data, float(_get(args, "val_fraction")), seed)
    train_items, val_items, test_items = splits.train, splits.val, splits.test
    if getattr(args, "val_data", None) is not None:
        train_items = all_items(splits)
        val_items, test_items = all_items(scan_audio_data(args.val_data)), None
    class_names = sorted({label for _, labels in train_items for label in labels})
    check_labels(val_items + (test_items or []), class_names, "validation/test data")
    multi = _get(args, "multi_label")
    multi_label = bool(multi) if multi is not None else splits.multi_label
    config = audio_config_from_args(args)
    config.fbank.frame_sizes(config.sample_rate)  # fail early on impossible options
    train_set = AudioClassificationDataset(
        train_items, class_names, config, train=True, multi_label=multi_label,
        freq_mask=int(_get(args, "freq_mask")), time_mask=int(_get(args, "time_mask")),
        noise=bool(_get(args, "audio_noise")), mixup_prob=float(_get(args, "wave_mixup")),
        mixup_alpha=float(_get(args, "wave_mixup_alpha")),
    )

    def evaluation(items: Optional[list[Item]]) -> Optional[AudioClassificationDataset]:
        return AudioClassificationDataset(items, class_names, config, multi_label=multi_label) if items else None

    logger.info("audio data %s (%s): %d train, %d val, %d test files, %d classes%s", data, splits.layout,
                len(train_items), len(val_items), len(test_items or []), len(class_names),
                ", multi-label" if multi_label else "")
    return TaskData(
        train=train_set, val=evaluation(val_items), test=evaluation(test_items),
        num_classes=len(class_names), class_names=class_names, in_chans=1, input_size=config.image_size,
        multi_label=multi_label,
        meta={"layout": splits.layout, "sample_rate": config.sample_rate, "audio_mean": config.mean,
              "audio_std": config.std},
    )


def load_for_predict(path: str, args: argparse.Namespace) -> torch.Tensor:
    """One audio file -> ``1 x F x T`` image, or ``V x 1 x F x T`` sliding-window views for a long file."""
    config = audio_config_from_args(args)
    views = sliding_windows(load_audio(path, config.sample_rate), config, _get(args, "window_hop"))
    return views[0] if views.shape[0] == 1 else views
