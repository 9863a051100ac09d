"""Images in tar shards (``.jpg``/``.png``/... members): the image :class:`ShardCodec`.

Decoding is PIL on the member's bytes (``RGB`` or ``L`` by ``in_chans``, as files are read), then the
image modality's own transform (:func:`~.datasets.transform_kwargs`, :func:`~.transforms.build_transform`).
"""
from __future__ import annotations

import argparse
import functools
from typing import Any, Callable

from ..base import ShardCodec
from .transforms import IMAGE_EXTENSIONS

__all__ = ["CODEC"]


def _decoder(args: argparse.Namespace) -> Callable[[bytes, str], Any]:
    from ..shards import decode_image

    return functools.partial(decode_image, in_chans=int(args.in_chans))


def _transform(args: argparse.Namespace, train: bool) -> Callable[[Any], Any]:
    from .datasets import _transforms

    return _transforms(args)[0 if train else 1]


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    size = int(args.input_size)
    return {"in_chans": int(args.in_chans), "input_size": (size, size)}


CODEC = ShardCodec(keys=tuple(e.lstrip(".") for e in IMAGE_EXTENSIONS), decoder=_decoder, transform=_transform,
                   fields=_fields)
