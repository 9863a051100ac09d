"""Spoken-word recognition on voices never heard in training, end to end on a CPU.

1. Synthesise a small Speech-Commands-like set with the espeak-ng speech
   synthesiser (``apt install espeak-ng``): 10 words spoken by many voices (an
   English accent + a voice variant) at random speeds and pitches, resampled
   from espeak's 22.05 kHz to 16 kHz with ``unireplknet.modalities.audio.io.resample``.
2. Split by *voice*: 36 training voices, a validation set of 3 other voices
   (picks the best epoch) and a test set of 4 more voices whose voice variants
   never occur in training.
3. Train a small UniRepLKNet (``in_chans=1``) with the real command
   ``unireplknet train --modality audio --data DATA ...`` and the built-in
   demo's settings (:data:`unireplknet.modalities.audio.datasets.DEMO_DEFAULTS`:
   64 mel bins x 100 frames, per-utterance normalisation, speed / pitch / gain /
   shift / noise augmentation, SpecAugment, waveform mixup). The command
   evaluates the selected model once on the test voices and fits simple
   baselines (logistic regression and 1-NN on the pooled log-mel, majority
   class) on the same splits; its table is printed, and this script repeats
   the test-voice line.

``unireplknet train --modality audio`` without ``--data`` runs the same demo
in one command. The data are reused when they exist with the same parameters.

Run:  python examples/audio_spoken_words.py --out runs/audio_spoken_words
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from unireplknet.modalities.audio.demo import TEST_VOICES, TRAIN_VOICES, WORDS, build_spoken_words


def main(argv: list[str] | None = None) -> dict:
    """Build the data, train and test on the held-out voices; returns (and writes) the results."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/audio_spoken_words", help="output folder (data/ and run/)")
    parser.add_argument("--words", type=int, default=len(WORDS), help=f"number of words (classes), <= {len(WORDS)}")
    parser.add_argument("--repeats", type=int, default=3, help="renditions of each word per voice (speed/pitch)")
    parser.add_argument("--train-voices", type=int, default=len(TRAIN_VOICES),
                        help=f"training voices, <= {len(TRAIN_VOICES)} (val/test voices are always the same)")
    parser.add_argument("--epochs", type=int, default=None, help="default: the demo's")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the demo's")
    parser.add_argument("--num-workers", type=int, default=1)
    parser.add_argument("--no-baselines", action="store_true", help="skip the baselines (faster)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is not installed (Debian/Ubuntu: apt install espeak-ng)")
    if not 2 <= args.words <= len(WORDS):
        raise SystemExit(f"--words must be in [2, {len(WORDS)}]")

    import yaml

    from unireplknet.cli import main as unireplknet_main
    from unireplknet.modalities.audio.datasets import DEMO_DEFAULTS

    out = Path(args.out)
    data, run = out / "data", out / "run"
    start = time.time()
    build_spoken_words(data, args.words, args.repeats, args.seed, train_voices=args.train_voices)
    counts = {split: len(list((data / split).rglob("*.wav"))) for split in ("train", "val", "test")}
    synth_s = time.time() - start
    print(f"synthesised {counts} clips in {synth_s:.1f} s", flush=True)

    # the built-in demo's settings; per-utterance normalisation needs no data-set statistics
    config = dict(DEMO_DEFAULTS)
    config.update(num_workers=args.num_workers, device="cpu", seed=args.seed,
                  **{k: v for k, v in (("epochs", args.epochs), ("batch_size", args.batch_size)) if v is not None})
    if args.no_baselines:
        config["baselines"] = False
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(config))

    train_start = time.time()
    code = unireplknet_main(["train", "--modality", "audio", "--data", str(data), "--config", str(out / "config.yaml"),
                             "--output", str(run)])
    if code != 0:
        raise SystemExit(f"training failed with exit code {code}")
    train_s = time.time() - train_start

    summary = json.loads((run / "summary.json").read_text())
    record = json.loads((run / "model.json").read_text())
    test = summary["test"]["test"]  # the selected model, evaluated once on the held-out voices
    baselines = ((summary.get("baselines") or {}).get("results") or {}).get("test", {})
    accuracy, chance = test["acc1"], 1.0 / len(record["class_names"])
    result = {"held_out_voice_accuracy": round(accuracy, 4), "chance": round(chance, 4), "test_clips": int(test["n"]),
              "baselines": {k: round(v, 4) for k, v in baselines.items()},
              "test_voices": list(TEST_VOICES), "classes": record["class_names"], "train_clips": counts["train"],
              "epochs": summary.get("epochs"), "synth_seconds": round(synth_s, 1), "train_seconds": round(train_s, 1),
              "total_seconds": round(time.time() - start, 1)}
    (out / "results.json").write_text(json.dumps(result, indent=2))
    others = "  ".join(f"{name} {100 * acc:.1f}%" for name, acc in result["baselines"].items())
    print(f"held-out voices ({len(TEST_VOICES)} unseen voices, {test['n']:.0f} clips, chance {100 * chance:.1f}%): "
          f"UniRepLKNet {100 * accuracy:.1f}%  |  baselines: {others or 'none'}")
    print(f"{time.time() - start:.0f} s in all (synthesis {synth_s:.0f} s, train + test + baselines {train_s:.0f} s)")
    return result


if __name__ == "__main__":
    main()
