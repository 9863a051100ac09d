"""The spoken-word example, reduced (2 words, 1 epoch): espeak-ng -> data set -> `unireplknet train` -> test."""
from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from unireplknet.cli import main as cli_main
from unireplknet.data.audio_demo import TEST_VOICES, TRAIN_VOICES, VAL_VOICES

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "audio_spoken_words.py"


def load_example():
    spec = importlib.util.spec_from_file_location("audio_spoken_words", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_espeak_ng_is_installed():
    assert shutil.which("espeak-ng"), "espeak-ng is needed by the audio example (apt install espeak-ng)"


def test_spoken_words_example_end_to_end(tmp_path, capsys):
    example = load_example()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: one thread is faster, above all on a busy CI machine
    try:
        result = example.main(["--out", str(tmp_path), "--words", "2", "--repeats", "1", "--epochs", "1",
                               "--batch-size", "8", "--num-workers", "0"])
    finally:
        torch.set_num_threads(threads)
    data = tmp_path / "data"
    n_train, n_val, n_test = len(TRAIN_VOICES) * 2, len(VAL_VOICES) * 2, len(TEST_VOICES) * 2
    assert [len(list((data / s).rglob("*.wav"))) for s in ("train", "val", "test")] == [n_train, n_val, n_test]
    clip, rate = sf.read(str(next((data / "test" / "yes").glob("*.wav"))))
    assert rate == 16000 and 0.2 < len(clip) / rate < 2.0 and abs(clip).max() > 0.05  # real speech, resampled
    assert result["classes"] == ["no", "yes"] and result["test_clips"] == n_test and result["chance"] == 0.5
    assert 0.0 <= result["held_out_voice_accuracy"] <= 1.0
    assert json.loads((tmp_path / "results.json").read_text()) == result
    run = tmp_path / "run"
    assert (run / "best.pt").is_file() and (run / "model.json").is_file()
    record = json.loads((run / "model.json").read_text())
    assert record["in_chans"] == 1 and record["input_size"] == [64, 100]
    # predict on a long file (4 test clips in a row): classified with sliding windows, top classes printed
    clips = [sf.read(str(p))[0] for p in sorted((data / "test").rglob("*.wav"))[:4]]
    sf.write(str(tmp_path / "long.wav"), np.concatenate(clips), 16000)
    capsys.readouterr()
    assert cli_main(["predict", "-r", str(run), str(tmp_path / "long.wav"), "--json"]) == 0
    top = json.loads(capsys.readouterr().out)["top"]
    assert sorted(t["label"] for t in top) == ["no", "yes"] and abs(sum(t["prob"] for t in top) - 1) < 1e-4
