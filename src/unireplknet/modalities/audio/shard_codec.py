"""Audio clips in tar shards (``.wav``/``.flac``/``.ogg``/``.mp3`` members): the audio :class:`ShardCodec`.

Decoding is :func:`~.io.decode_audio` (soundfile on the member's bytes, then the same down-mix and
resampling as files); map-style training uses :class:`AudioClassificationDataset` itself (waveform
mixup with partners, the wave augmentations, SpecAugment), reading waveforms from the shard instead of
files. Streaming applies the same per-clip front-end and augmentations without mixup (a stream has no
random access to partners). ``unireplknet shard --modality audio`` finds the splits by the audio rules
(Speech Commands lists included) and writes the files as they are.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import Dataset

from ..base import ShardCodec, ShardSample, prescan
from .io import AUDIO_EXTENSIONS, decode_audio

__all__ = ["ShardAudioDataset", "CODEC"]


def _datasets() -> Any:
    from . import datasets

    return datasets


class ShardAudioDataset(_datasets().AudioClassificationDataset):  # type: ignore[misc]
    """:class:`~.datasets.AudioClassificationDataset` whose waveforms come from a map-style shard ``source``
    (items ``(waveform, class index)``, :class:`~unireplknet.modalities.shards.ShardDataset`)."""

    def __init__(self, source: Dataset, class_names: list[str], config: Any, **kw: Any) -> None:
        items = [(Path(source.name_of(i)), (class_names[int(lab)],)) for i, lab in enumerate(source.labels)]
        super().__init__(items, class_names, config, **kw)
        self.source = source

    def waveform(self, index: int) -> torch.Tensor:
        """The waveform of item ``index``, decoded from its shard member."""
        return self.source[index][0]


def _decoder(args: argparse.Namespace) -> Callable[[bytes, str], torch.Tensor]:
    rate = int(_datasets()._get(args, "sample_rate"))

    def decode(data: bytes, ext: str) -> torch.Tensor:
        return decode_audio(data, rate, f".{ext} member")

    return decode


def _options(args: argparse.Namespace, train: bool) -> dict[str, Any]:
    d = _datasets()
    if not train:
        return {}
    return dict(freq_mask=int(d._get(args, "freq_mask")), time_mask=int(d._get(args, "time_mask")),
                noise=bool(d._get(args, "audio_noise")), augment=d.wave_augment_from_args(args))


def _transform(args: argparse.Namespace, train: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    from .transforms import waveform_to_image

    config = _datasets().audio_config_from_args(args)
    opts = _options(args, train)
    augment = opts.pop("augment", None)
    augment = augment if augment is not None and augment.active else None

    def to_image(wave: torch.Tensor) -> torch.Tensor:
        if augment is not None:
            wave = augment(wave)
        return waveform_to_image(wave, config, train=train, **opts)

    return to_image


def _dataset(args: argparse.Namespace, source: Dataset, train: bool) -> Dataset:
    d = _datasets()
    config = d.audio_config_from_args(args)
    kw = _options(args, train)
    if train:
        kw.update(mixup_prob=float(d._get(args, "wave_mixup")), mixup_alpha=float(d._get(args, "wave_mixup_alpha")))
    return ShardAudioDataset(source, list(source.classes), config, train=train, **kw)


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    config = _datasets().audio_config_from_args(args)
    config.fbank.frame_sizes(config.sample_rate)  # fail early on impossible options
    return {"in_chans": 1, "input_size": config.image_size,
            "meta": {"layout": "shards", "sample_rate": config.sample_rate, "audio_mean": config.mean,
                     "audio_std": config.std, "per_utterance_norm": config.per_utterance_norm}}


def _samples(args: argparse.Namespace) -> tuple[dict[str, list[ShardSample]], list[str], dict[str, str]]:
    from ..shards import file_samples

    d = _datasets()
    splits = d.audio_splits(args.data, args)
    prescan(splits, d.check_audio, name="audio-decode", skip_bad=getattr(args, "skip_bad_files", None))
    return file_samples(splits), list(splits.classes), dict(splits.sources)


CODEC = ShardCodec(keys=tuple(e.lstrip(".") for e in AUDIO_EXTENSIONS), decoder=_decoder, transform=_transform,
                   fields=_fields, dataset=_dataset, samples=_samples, hf_columns=("audio",))
