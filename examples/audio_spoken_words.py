"""Spoken-word recognition on held-out voices, end to end on a CPU in a few minutes.

1. Synthesise a small Speech-Commands-like set with the espeak-ng speech
   synthesiser (``apt install espeak-ng``): every word is spoken by many
   voices (an English accent + a voice variant) at several speeds and
   pitches, and resampled from espeak's 22.05 kHz to 16 kHz with
   ``unireplknet.data.audio_io.resample``.
2. Split by *voice*: the training voices, a validation set of other voices
   (picks the best epoch) and a test set of yet other voices, whose voice
   variants never occur in training.
3. Compute the data set's log-mel mean/std, train a small UniRepLKNet
   (``in_chans=1``) with ``unireplknet train --modality audio``, and report the
   accuracy on the held-out test voices against chance.

Run:  python examples/audio_spoken_words.py --out runs/spoken_words
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
# voice = accent + variant; the variants of the val and test voices never occur in training
TRAIN_VOICES = ["en+m1", "en-us+m2", "en-gb-scotland+m3", "en-gb-x-rp+f1", "en-029+f2", "en-gb-x-gbclan+klatt",
                "en-gb-x-gbcwmd+m7", "en-us-nyc+f5", "en+m6", "en-us+f1", "en-gb-x-rp+m2", "en-029+m3"]
VAL_VOICES = ["en-us+m4", "en-gb-scotland+f3", "en+klatt3"]
TEST_VOICES = ["en-gb-x-rp+f4", "en-us-nyc+m8", "en-029+klatt2", "en+m5"]
SAMPLE_RATE = 16000

MODEL_ARGS = {"depths": [1, 1, 2, 1], "dims": [24, 48, 96, 192], "kernel_sizes": [[3], [7], [7, 3], [7]]}


def synthesize(word: str, voice: str, speed: int, pitch: int, path: Path) -> None:
    """Speak ``word`` with espeak-ng and store it as a 16 kHz WAV."""
    import soundfile as sf

    from unireplknet.data.audio_io import load_audio

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(raw), word],
                       check=True, capture_output=True)
        wave = load_audio(raw, SAMPLE_RATE)  # 22.05 kHz -> 16 kHz
    sf.write(str(path), wave.numpy(), SAMPLE_RATE)


def build_dataset(root: Path, words: list[str], repeats: int, seed: int = 0) -> dict[str, int]:
    """Write ``root/{train,val,test}/<word>/<voice>-<k>.wav``; returns the file count per split."""
    rng = random.Random(seed)
    jobs = []
    for split, voices in (("train", TRAIN_VOICES), ("val", VAL_VOICES), ("test", TEST_VOICES)):
        for voice in voices:
            for word in words:
                for k in range(repeats):
                    speed, pitch = rng.randint(120, 200), rng.randint(25, 75)
                    jobs.append((word, voice, speed, pitch, root / split / word / f"{voice.replace('+', '_')}-{k}.wav"))
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda job: synthesize(*job), jobs))
    return {split: sum(1 for j in jobs if j[4].parts[-3] == split) for split in ("train", "val", "test")}


def main(argv: list[str] | None = None) -> dict:
    """Build the data, train, evaluate on the held-out voices; returns (and writes) the results."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/audio_spoken_words", help="output folder (data/ and run/)")
    parser.add_argument("--words", type=int, default=len(WORDS), help=f"number of words (classes), <= {len(WORDS)}")
    parser.add_argument("--repeats", type=int, default=3, help="renditions of each word per voice (speed/pitch)")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is not installed (Debian/Ubuntu: apt install espeak-ng)")
    if not 2 <= args.words <= len(WORDS):
        raise SystemExit(f"--words must be in [2, {len(WORDS)}]")

    import yaml

    from unireplknet.cli import main as unireplknet_main
    from unireplknet.data.audio import audio_config_from_args, log_mel_stats
    from unireplknet.data.audio_layouts import scan_audio_data

    out = Path(args.out)
    data, run = out / "data", out / "run"
    start = time.time()
    if data.exists():
        shutil.rmtree(data)
    counts = build_dataset(data, WORDS[: args.words], args.repeats, args.seed)
    synth_s = time.time() - start
    print(f"synthesised {counts} clips in {synth_s:.1f} s")

    config = {
        "model": "custom", "model_args": MODEL_ARGS, "epochs": args.epochs, "batch_size": args.batch_size,
        "lr": 2e-3, "warmup_epochs": 1, "weight_decay": 0.05, "smoothing": 0.1, "drop_path": 0.05,
        "num_workers": args.num_workers, "device": "cpu", "seed": args.seed,
        "num_mel_bins": 64, "target_frames": 100, "freq_mask": 12, "time_mask": 20, "audio_noise": True,
        "wave_mixup": 0.3,
    }
    splits = scan_audio_data(data)
    frontend = audio_config_from_args(argparse.Namespace(**config))
    mean, std = log_mel_stats([path for path, _ in splits.train], frontend)  # = `unireplknet audio-stats`
    config.update(audio_mean=round(mean, 6), audio_std=round(std, 6))
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(config))

    train_start = time.time()
    code = unireplknet_main(["train", "--modality", "audio", "--data", str(data), "--config", str(out / "config.yaml"),
                             "--output", str(run)])
    if code != 0:
        raise SystemExit(f"training failed with exit code {code}")
    train_s = time.time() - train_start

    # the held-out voices are the run's test split; `eval` uses the re-parameterised (deploy) model
    if unireplknet_main(["eval", str(run), "--split", "test", "--output", str(out / "eval")]) != 0:
        raise SystemExit("evaluation failed")
    test = json.loads((out / "eval" / "eval.json").read_text())
    record = json.loads((run / "model.json").read_text())
    accuracy, chance = test["acc1"], 1.0 / len(record["class_names"])
    result = {"held_out_voice_accuracy": round(accuracy, 4), "chance": round(chance, 4), "test_clips": test["n"],
              "test_voices": TEST_VOICES, "classes": record["class_names"], "train_clips": counts["train"],
              "epochs": args.epochs, "synth_seconds": round(synth_s, 1), "train_seconds": round(train_s, 1),
              "total_seconds": round(time.time() - start, 1)}
    (out / "results.json").write_text(json.dumps(result, indent=2))
    print(f"held-out-voice accuracy {accuracy:.3f} on {test['n']} clips of {len(TEST_VOICES)} unseen voices "
          f"(chance {chance:.3f}); {time.time() - start:.0f} s in all")
    return result


if __name__ == "__main__":
    main()
