"""``unireplknet audio-stats``: the log-mel mean/std of an audio data set, for its normalisation."""
from __future__ import annotations

import argparse

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``audio-stats`` sub-command."""
    p = subparsers.add_parser(
        "audio-stats", help="log-mel mean/std of an audio data set (for --audio-mean/--audio-std)",
        description="Compute the mean and std of the log-mel images of the training split of an audio data set "
                    "(any layout `train --modality audio` reads). Pass them to training with "
                    "--audio-mean/--audio-std, or write them with --output and use --config FILE.",
    )
    p.add_argument("--data", required=True, help="Speech Commands folder, class folders, or CSV")
    p.add_argument("--split", default="train", choices=["train", "val", "test", "all"], help="which files (default train)")
    p.add_argument("--sample-rate", type=int, default=16000, help="resample every file to this rate (default 16000)")
    p.add_argument("--num-mel-bins", type=int, default=128, help="mel bins (default 128)")
    p.add_argument("--target-frames", type=int, default=128, help="frames per clip (default 128)")
    p.add_argument("--fbank-window", default="hanning", help="analysis window (default hanning)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="as for training, when the data has no val split")
    p.add_argument("--max-files", type=int, default=None, help="use only the first N files (seeded shuffle)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and of the --max-files choice")
    p.add_argument("--data-root", default=None, help="folder that relative CSV paths resolve under (the CSV's folder)")
    p.add_argument("--allow-outside-root", action="store_true", help="allow CSV paths outside the data root")
    p.add_argument("--skip-bad-files", action=argparse.BooleanOptionalAction, default=None,
                   help="skip unreadable files with one warning (default); --no-skip-bad-files: stop with an error")
    p.add_argument("-o", "--output", default=None, help="also write `audio_mean: ...` / `audio_std: ...` to this YAML file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Scan the data, compute the statistics and print them."""
    import random
    from pathlib import Path

    from unireplknet.cli import UserError
    from unireplknet.modalities.audio.datasets import audio_config_from_args, audio_splits, check_audio, log_mel_stats
    from unireplknet.modalities.base import prescan

    splits = audio_splits(args.data, argparse.Namespace(seed=args.seed, val_fraction=args.val_fraction,
                                                        data_root=args.data_root,
                                                        allow_outside_root=args.allow_outside_root))
    # the pre-scan of train/eval (same check, same cache): unreadable files skipped with one warning, or an error
    prescan(splits, check_audio, name="audio-decode", skip_bad=args.skip_bad_files)
    named = dict(splits.named())
    items = [it for _, its in named.items() for it in its] if args.split == "all" else named.get(
        args.split, splits.tests.get("test", []) if args.split == "test" else [])
    if not items:
        raise UserError(f"the {args.split} split of {args.data} has no files")
    paths = [path for path, _ in items]
    if args.max_files is not None:
        if args.max_files < 1:
            raise UserError(f"--max-files must be >= 1, got {args.max_files}")
        random.Random(args.seed).shuffle(paths)
        paths = paths[: args.max_files]
    config = audio_config_from_args(args)
    count = len(paths)
    try:
        from tqdm import tqdm

        paths = tqdm(paths, desc="audio-stats", unit="file")
    except ImportError:
        pass
    mean, std = log_mel_stats(paths, config)
    print(f"files: {count}")
    print(f"audio_mean: {mean:.6f}")
    print(f"audio_std: {std:.6f}")
    print(f"flags: --audio-mean {mean:.6f} --audio-std {std:.6f}")
    if args.output:
        Path(args.output).write_text(f"audio_mean: {mean:.6f}\naudio_std: {std:.6f}\n")
        print(f"wrote {args.output}")
    return 0
