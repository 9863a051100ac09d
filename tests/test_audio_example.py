"""The spoken-word example, reduced (2 words, 24 voices, 8 epochs): espeak-ng -> `unireplknet train` -> new voices."""
from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from unireplknet.cli import main as cli_main
from unireplknet.modalities.audio.demo import TEST_VOICES, TRAIN_VOICES, VAL_VOICES

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "audio_spoken_words.py"


def load_example():
    spec = importlib.util.spec_from_file_location("audio_spoken_words", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_espeak_ng_is_installed():
    assert shutil.which("espeak-ng"), "espeak-ng is needed by the audio example (apt install espeak-ng)"


@pytest.mark.slow  # 34 s on a lightly loaded 2-core CPU, over 60 s under load: espeak-ng, training, baselines
def test_spoken_words_example_end_to_end(tmp_path, capsys):
    example = load_example()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: one thread is faster, above all on a busy CI machine
    try:
        result = example.main(["--out", str(tmp_path), "--words", "2", "--repeats", "2", "--train-voices", "24",
                               "--epochs", "8", "--batch-size", "16", "--num-workers", "0"])
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    data = tmp_path / "data"
    n_train, n_val, n_test = 24 * 2 * 2, len(VAL_VOICES) * 2 * 2, len(TEST_VOICES) * 2 * 2
    assert [len(list((data / s).rglob("*.wav"))) for s in ("train", "val", "test")] == [n_train, n_val, n_test]
    train_voices = {p.stem.rsplit("-", 1)[0] for p in (data / "train").rglob("*.wav")}
    test_voices = {p.stem.rsplit("-", 1)[0] for p in (data / "test").rglob("*.wav")}
    assert train_voices == {v.replace("+", "_") for v in TRAIN_VOICES[:24]}
    assert test_voices == {v.replace("+", "_") for v in TEST_VOICES} and not train_voices & test_voices
    clip, rate = sf.read(str(next((data / "test" / "yes").glob("*.wav"))))
    assert rate == 16000 and 0.2 < len(clip) / rate < 2.0 and abs(clip).max() > 0.05  # real speech, resampled
    assert result["classes"] == ["no", "yes"] and result["test_clips"] == n_test and result["chance"] == 0.5
    # learning well above chance on voices never heard in training
    assert result["held_out_voice_accuracy"] >= 0.75, result
    # the command's table (model beside the baselines) and the example's test-voice line are printed
    assert "logreg[pixels]" in printed and "1nn[pixels]" in printed and "majority_class" in printed
    assert re.search(r"^test\s+16\s+[\d.]+%", printed, re.M), printed
    assert "held-out voices" in printed and "UniRepLKNet" in printed and "logreg[pixels]" in result["baselines"]
    assert json.loads((tmp_path / "results.json").read_text()) == result
    run = tmp_path / "run"
    assert (run / "best.pt").is_file() and (run / "model.json").is_file()
    record = json.loads((run / "model.json").read_text())
    assert record["in_chans"] == 1 and record["input_size"] == [64, 100]
    assert record["config"]["per_utterance_norm"] is True and record["config"]["speed_perturb"] > 0
    # predict on a long file (4 test clips in a row): classified with sliding windows, top classes printed
    clips = [sf.read(str(p))[0] for p in sorted((data / "test").rglob("*.wav"))[:4]]
    sf.write(str(tmp_path / "long.wav"), np.concatenate(clips), 16000)
    capsys.readouterr()
    assert cli_main(["predict", "-r", str(run), str(tmp_path / "long.wav"), "--json"]) == 0
    top = json.loads(capsys.readouterr().out)["top"]
    assert sorted(t["label"] for t in top) == ["no", "yes"] and abs(sum(t["prob"] for t in top) - 1) < 1e-4
