"""Fixes of the audio exploratory test: Speech Commands file and list rules, --val-data, audio-stats pre-scan."""
from __future__ import annotations

import argparse
import logging

import numpy as np
import pytest
import soundfile as sf

from unireplknet.cli import main as cli_main
from unireplknet.errors import ConfigError, DataError
from unireplknet.modalities.audio.datasets import audio_splits

SR = 16000


def tone(freq: float, seconds: float = 0.25) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def speech_commands(root, *, names=("a.wav", "b.wav", "c.wav", "d.wav"), val=None, test=None):
    """``root/{no,yes}/<names>``; by default the first name of each word in the validation list, the second in
    the test list."""
    for w, word in enumerate(("no", "yes")):
        (root / word).mkdir(parents=True)
        for i, name in enumerate(names):
            fmt = "FLAC" if name.lower().endswith(".flac") else "WAV"
            sf.write(str(root / word / name), tone(300 + 400 * w + 20 * i), SR, format=fmt)
    val = [f"{w}/{names[0]}" for w in ("no", "yes")] if val is None else val
    test = [f"{w}/{names[1]}" for w in ("no", "yes")] if test is None else test
    (root / "validation_list.txt").write_text("\n".join(val) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    return root


def scan(root, **kw):
    return audio_splits(root, argparse.Namespace(seed=0, val_fraction=0.1, **kw))


def test_speech_commands_uses_every_audio_extension_and_skips_hidden_files(tmp_path):
    root = speech_commands(tmp_path / "sc", names=("a.wav", "b.WAV", "c.flac", "d.Wav", "e.wav"))
    for word in ("no", "yes"):
        (root / word / "._a.wav").write_bytes(b"\0\5\26\7" + bytes(200))  # AppleDouble
        (root / word / ".DS_Store").write_bytes(bytes(64))
    splits = scan(root)
    assert sorted(p.name for p, _ in splits.train) == ["c.flac", "c.flac", "d.Wav", "d.Wav", "e.wav", "e.wav"]
    assert [p.name for p, _ in splits.tests["test"]] == ["b.WAV", "b.WAV"]
    every = [p for _, items in splits.named() for p, _ in items]
    assert len(every) == 10 and not any(p.name.startswith(".") for p in every)


def test_speech_commands_list_lines_are_normalised(tmp_path):
    root = speech_commands(tmp_path / "sc", val=["./no/a.wav", "./yes/a.wav"], test=["no\\b.wav", "yes\\b.wav"])
    (root / "validation_list.txt").write_text("\ufeff./no/a.wav\r\n./yes/a.wav\r\n\r\n")
    splits = scan(root)
    assert [p.name for p, _ in splits.val] == ["a.wav", "a.wav"]
    assert [p.name for p, _ in splits.tests["test"]] == ["b.wav", "b.wav"]
    assert len(splits.train) == 4


def test_speech_commands_unmatched_list_lines_are_reported(tmp_path, caplog):
    root = speech_commands(tmp_path / "sc", test=["no/b.wav", "yes/b.wav", "yes/gone1.wav", "yes/gone2.wav"])
    with caplog.at_level(logging.WARNING):
        splits = scan(root)
    assert len(splits.tests["test"]) == 2
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "testing_list.txt" in warning and "2 of 4 line(s)" in warning and "yes/gone1.wav" in warning

    (root / "validation_list.txt").write_text("other/no/a.wav\nother/yes/a.wav\n")
    with pytest.raises(DataError, match=r"validation_list.txt: none of its 2 line\(s\) names an audio file.*other/no/a.wav"):
        scan(root)


def test_speech_commands_refuses_val_data(tmp_path):
    root = speech_commands(tmp_path / "sc")
    with pytest.raises(ConfigError, match="--val-data cannot be used with the Speech Commands layout"):
        scan(root, val_data=str(tmp_path / "extra.csv"))


def test_audio_stats_skips_unreadable_files_like_train(tmp_path, capsys, caplog):
    root = speech_commands(tmp_path / "sc")
    (root / "no" / "empty.wav").write_bytes(b"")
    with caplog.at_level(logging.WARNING):
        assert cli_main(["audio-stats", "--data", str(root)]) == 0
    assert "files: 4" in capsys.readouterr().out  # 5 training files, the empty one skipped
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "skipped 1 unreadable file(s)" in warning and "empty.wav" in warning
    assert cli_main(["audio-stats", "--data", str(root), "--no-skip-bad-files"]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_audio_stats_takes_data_root_for_a_csv_list(tmp_path, capsys):
    (tmp_path / "clips").mkdir()
    rows = ["path,label"]
    for w, word in enumerate(("no", "yes")):
        for i in range(3):
            sf.write(str(tmp_path / "clips" / f"{word}{i}.wav"), tone(300 + 400 * w + 20 * i), SR)
            rows.append(f"{word}{i}.wav,{word}")
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "all.csv").write_text("\n".join(rows) + "\n")
    assert cli_main(["audio-stats", "--data", str(tmp_path / "lists" / "all.csv")]) == 2
    capsys.readouterr()
    assert cli_main(["audio-stats", "--data", str(tmp_path / "lists" / "all.csv"),
                     "--data-root", str(tmp_path / "clips")]) == 0
    assert "files:" in capsys.readouterr().out
