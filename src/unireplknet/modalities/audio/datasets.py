"""Audio classification data: datasets of clips and the ``--modality audio`` plug-in of the engine.

``unireplknet train --modality audio --data PATH`` reads any layout that
:func:`~unireplknet.modalities.audio.layouts.scan_audio_data` recognises (Speech
Commands V2, class folders, CSV), turns each clip into a ``1 x mel x frames``
log-mel image (:mod:`unireplknet.modalities.audio.transforms`) and trains the unchanged
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

from .transforms import (
    SPEECH_COMMANDS_MEAN,
    SPEECH_COMMANDS_STD,
    AudioConfig,
    FbankOptions,
    WaveAugment,
    log_mel_spectrogram,
    mix_waveforms,
    sliding_windows,
    waveform_to_image,
)
from ...errors import ConfigError
from ..base import Item, NamedFileErrors, Splits, TaskData, finalize_splits, prescan, scan_splits
from .demo import build_spoken_words
from .io import load_audio
from .io import AUDIO_EXTENSIONS
from .layouts import check_labels, scan_speech_commands

__all__ = [
    "AudioClassificationDataset",
    "log_mel_stats",
    "audio_config_from_args",
    "wave_augment_from_args",
    "noise_files",
    "add_train_args",
    "CONFIG_DEFAULTS",
    "RECIPES",
    "DEMO_DEFAULTS",
    "build_task_data",
    "load_for_predict",
]

logger = logging.getLogger(__name__)



class AudioClassificationDataset(Dataset):
    """Labelled audio files -> ``(1 x F x T image, target)``.

    Targets are class indices, or float vectors when ``multi_label`` (multi-hot)
    or ``soft_targets`` (one-hot, mixed by waveform mixup). Training
    augmentation follows the original: waveform mixup with a uniformly chosen
    partner (probability ``mixup_prob``, ``lambda ~ Beta(mixup_alpha, mixup_alpha)``),
    SpecAugment and noise + time roll. ``augment`` (a :class:`~.transforms.WaveAugment`:
    speed, pitch, gain, time shift, background noise) is applied to the (mixed)
    training waveform before the log-mel. Randomness comes from torch's global
    generator, which the engine seeds per sample.
    """

    def __init__(self, items: Sequence[Item], class_names: Sequence[str], config: AudioConfig = AudioConfig(), *,
                 train: bool = False, multi_label: bool = False, soft_targets: bool = False,
                 freq_mask: int = 0, time_mask: int = 0, noise: bool = False,
                 mixup_prob: float = 0.0, mixup_alpha: float = 10.0,
                 augment: Optional[WaveAugment] = None) -> None:
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
        self.augment = augment if augment is not None and augment.active else None

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
        if self.train and self.augment is not None:
            wave = self.augment(wave)
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

#: The original (AST, Speech Commands V2) front-end and its augmentation: the defaults and the
#: ``speech_commands`` recipe share it.
_ORIGINAL_FRONT_END: dict[str, Any] = {
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
}

CONFIG_DEFAULTS: dict[str, Any] = {
    **_ORIGINAL_FRONT_END,
    "speed_perturb": 0.1,
    "pitch_shift": 0.0,
    "pitch_prob": 0.5,
    "gain_db": 6.0,
    "time_shift": 0.1,
    "noise_prob": 0.3,
    "noise_snr": [5.0, 30.0],
    "noise_dir": None,
    "per_utterance_norm": True,
    "multi_label": None,
    "window_hop": None,
    "demo_words": 10,
    "demo_repeats": 3,
}

#: The waveform augmentations and normalisation added for speaker / synthesiser robustness, all off:
#: recipes that reproduce a published setting start from these.
_ROBUSTNESS_OFF: dict[str, Any] = {"speed_perturb": 0.0, "pitch_shift": 0.0, "gain_db": 0.0, "time_shift": 0.0,
                                   "noise_prob": 0.0, "per_utterance_norm": False}

#: The built-in demo (no --data): spoken words by espeak-ng voices (:mod:`.demo`; tested on unseen voices),
#: a tiny backbone on 64 mel bins x 100 frames, per-utterance normalisation (so no data-set statistics) and
#: the speaker-robustness augmentations of CONFIG_DEFAULTS (speed, gain, shift, noise) with light SpecAugment.
DEMO_DEFAULTS: dict[str, Any] = {
    "model": "custom",
    "model_args": {"depths": [1, 1, 2, 1], "dims": [24, 48, 96, 192], "kernel_sizes": [[3], [7], [7, 3], [7]]},
    "epochs": 14,
    "batch_size": 32,
    "lr": 2e-3,
    "warmup_epochs": 1,
    "weight_decay": 0.05,
    "smoothing": 0.1,
    "drop_path": 0.05,
    "num_mel_bins": 64,
    "target_frames": 100,
    "per_utterance_norm": True,
    "freq_mask": 12,
    "time_mask": 20,
    "wave_mixup": 0.2,
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
        **_ORIGINAL_FRONT_END,
        **_ROBUSTNESS_OFF,
    },
    # keyword spotting on a small CPU: ~1 s clips as 64 mel bins x 100 frames, a 0.35M-parameter network
    "kws_small": {
        "model": "custom",
        "model_args": {"depths": [1, 1, 2, 1], "dims": [16, 32, 64, 128], "kernel_sizes": [[3], [7], [7, 3], [7]]},
        "drop_path": 0.05,
        "epochs": 30,
        "batch_size": 64,
        "lr": 2e-3,
        "warmup_epochs": 1,
        "weight_decay": 0.05,
        "smoothing": 0.1,
        "sample_rate": 16000,
        "num_mel_bins": 64,
        "target_frames": 100,
        "freq_mask": 12,
        "time_mask": 20,
        "audio_noise": False,
        "wave_mixup": 0.3,
        "speed_perturb": 0.1,
        "pitch_shift": 0.0,
        "gain_db": 6.0,
        "time_shift": 0.1,
        "noise_prob": 0.3,
        "per_utterance_norm": True,
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
    g.add_argument("--speed-perturb", dest="speed_perturb", type=float, default=None,
                   help="speed perturbation: play each training clip U[1-s, 1+s] times faster (tempo and pitch; "
                        "the clip gets longer/shorter); default 0.1, 0 off")
    g.add_argument("--pitch-shift", dest="pitch_shift", type=float, default=None,
                   help="pitch shift by U[-s, s] semitones, length kept (phase vocoder + resampling; ~10x the cost of "
                        "the other augmentations on a CPU); default 0 = off, e.g. 2")
    g.add_argument("--pitch-prob", dest="pitch_prob", type=float, default=None,
                   help="probability of the pitch shift per training clip (default 0.5)")
    g.add_argument("--gain-db", dest="gain_db", type=float, default=None,
                   help="random gain of U[-g, g] dB per training clip (default 6; 0 off)")
    g.add_argument("--time-shift", dest="time_shift", type=float, default=None,
                   help="shift each training clip by up to this many seconds, zero-filled (default 0.1; 0 off)")
    g.add_argument("--noise-prob", dest="noise_prob", type=float, default=None,
                   help="probability of additive background noise per training clip: coloured noise "
                        "(white..brown), or a file from --noise-dir (default 0.3; 0 off)")
    g.add_argument("--noise-snr", dest="noise_snr", type=float, nargs=2, metavar=("LOW", "HIGH"), default=None,
                   help="signal-to-noise ratio range of the background noise in dB (default 5 30)")
    g.add_argument("--noise-dir", dest="noise_dir", default=None,
                   help="folder of noise recordings (any audio files, searched recursively) mixed in as background "
                        "instead of synthetic coloured noise")
    g.add_argument("--per-utterance-norm", dest="per_utterance_norm", action=argparse.BooleanOptionalAction,
                   default=None,
                   help="normalise every clip's log-mel by its own mean/std instead of the data set's "
                        "--audio-mean/--audio-std; robust to level, microphone, speaker and synthesiser (default on)")
    g.add_argument("--multi-label", dest="multi_label", action=argparse.BooleanOptionalAction, default=None,
                   help="BCE loss and multi-hot targets (default: when a file has several labels)")
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
        per_utterance_norm=bool(_get(args, "per_utterance_norm")),
    )


def noise_files(folder: Optional[str]) -> tuple[Path, ...]:
    """The audio files under ``folder`` (recursively, sorted); empty for None. Raises for a folder without audio."""
    if not folder:
        return ()
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"--noise-dir {root} is not a folder")
    files = tuple(sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
                         and not p.name.startswith(".")))
    if not files:
        raise ValueError(f"--noise-dir {root} holds no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    return files


def wave_augment_from_args(args: argparse.Namespace) -> WaveAugment:
    """The training waveform augmentations described by resolved config keys."""
    snr = _get(args, "noise_snr")
    return WaveAugment(
        sample_rate=int(_get(args, "sample_rate")), speed=float(_get(args, "speed_perturb")),
        pitch=float(_get(args, "pitch_shift")), pitch_prob=float(_get(args, "pitch_prob")),
        gain_db=float(_get(args, "gain_db")), shift=float(_get(args, "time_shift")),
        noise_prob=float(_get(args, "noise_prob")), snr=(float(snr[0]), float(snr[1])),
        noise_files=noise_files(_get(args, "noise_dir")),
    )


def check_audio(path: Path) -> None:
    """Decode ``path`` fully (raises on an empty, truncated, foreign or non-finite file).

    libsndfile reads a truncated WAV without complaint, so a RIFF file whose header promises more
    bytes than the file holds is reported as truncated.
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(12)
    if len(head) == 12 and head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        declared = int.from_bytes(head[4:8], "little") + 8
        actual = path.stat().st_size
        if actual < declared:
            raise ValueError(f"truncated WAV: the header declares {declared} bytes, the file has {actual}")
    load_audio(path, None)


def audio_splits(data: Any, args: argparse.Namespace) -> Splits:
    """The splits of ``data`` by the shared rules (:mod:`unireplknet.modalities.base`), plus the Speech
    Commands V2 layout (``validation_list.txt`` / ``testing_list.txt``; ``--val-data`` is refused there, the
    validation split being the list)."""
    seed = int(getattr(args, "seed", 0) or 0)
    path = Path(data)
    if path.is_dir() and (path / "validation_list.txt").is_file() and (path / "testing_list.txt").is_file():
        if getattr(args, "val_data", None) is not None:
            raise ConfigError(f"--val-data cannot be used with the Speech Commands layout of {path}: its validation "
                              f"split is {path / 'validation_list.txt'}; drop --val-data, or edit that list")
        sc = scan_speech_commands(path)
        splits = Splits("speech_commands", sc.train, sc.val, {"test": sc.test or []},
                        {"train": f"{path} (files in neither list)", "val": str(path / "validation_list.txt"),
                         "test": str(path / "testing_list.txt")})
        return finalize_splits(splits, str(path))
    return scan_splits(path, AUDIO_EXTENSIONS, val_data=getattr(args, "val_data", None),
                       val_fraction=float(getattr(args, "val_fraction", None) or 0.1), seed=seed,
                       data_root=getattr(args, "data_root", None),
                       allow_outside_root=bool(getattr(args, "allow_outside_root", False)))


def build_task_data(args: argparse.Namespace) -> TaskData:
    """Find the splits of ``args.data`` (and ``args.val_data``) and build the datasets.

    Without ``args.data`` the spoken-word demo set is synthesised into ``OUTPUT/spoken_words``.
    """
    seed = int(getattr(args, "seed", 0) or 0)
    data = getattr(args, "data", None)
    if data is None:  # the built-in demo, synthesised once into the run directory
        data = build_spoken_words(Path(getattr(args, "output", None) or "runs/demo-audio") / "spoken_words",
                                  int(_get(args, "demo_words")), int(_get(args, "demo_repeats")), seed)
    splits = audio_splits(data, args)
    prescan(splits, check_audio, name="audio-decode", skip_bad=getattr(args, "skip_bad_files", None))
    class_names = splits.classes
    multi = _get(args, "multi_label")
    multi_label = bool(multi) if multi is not None else splits.multi_label
    config = audio_config_from_args(args)
    config.fbank.frame_sizes(config.sample_rate)  # fail early on impossible options
    train_set = AudioClassificationDataset(
        splits.train, class_names, config, train=True, multi_label=multi_label,
        freq_mask=int(_get(args, "freq_mask")), time_mask=int(_get(args, "time_mask")),
        noise=bool(_get(args, "audio_noise")), mixup_prob=float(_get(args, "wave_mixup")),
        mixup_alpha=float(_get(args, "wave_mixup_alpha")), augment=wave_augment_from_args(args),
    )

    def named(ds: AudioClassificationDataset) -> Dataset:
        return NamedFileErrors(ds, lambda i, items=ds.items: items[i][0])

    def evaluation(items: list[Item]) -> Dataset:
        return named(AudioClassificationDataset(items, class_names, config, multi_label=multi_label))

    return TaskData(
        train=named(train_set), val=evaluation(splits.val),
        tests={name: evaluation(items) for name, items in splits.tests.items()},
        num_classes=len(class_names), class_names=class_names, in_chans=1, input_size=config.image_size,
        multi_label=multi_label, splits=splits,
        meta={"layout": splits.layout, "sample_rate": config.sample_rate, "audio_mean": config.mean,
              "audio_std": config.std, "per_utterance_norm": config.per_utterance_norm},
    )


def load_for_predict(path: str, args: argparse.Namespace) -> torch.Tensor:
    """One audio file -> ``1 x F x T`` image, or ``V x 1 x F x T`` sliding-window views for a long file."""
    config = audio_config_from_args(args)
    views = sliding_windows(load_audio(path, config.sample_rate), config, _get(args, "window_hop"))
    return views[0] if views.shape[0] == 1 else views
