"""Audio files, data set layouts, datasets, statistics and the engine plug-in (no training here)."""
from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from unireplknet.cli import build_parser
from unireplknet.cli import main as cli_main
from unireplknet.modalities.audio import datasets as audio_data
from unireplknet.modalities.audio.datasets import AudioClassificationDataset, build_task_data, load_for_predict, log_mel_stats
from unireplknet.modalities.audio.io import load_audio, read_audio
from unireplknet.modalities.audio.datasets import audio_splits
from unireplknet.modalities.audio.layouts import read_audio_csv


def scan_audio_data(path, val_fraction=0.1, seed=0):
    """The audio modality's splits by the shared rules (modalities/base.py) plus Speech Commands."""
    import argparse

    return audio_splits(path, argparse.Namespace(val_fraction=val_fraction, seed=seed))
from unireplknet.modalities.audio.transforms import AudioConfig, log_mel_spectrogram, waveform_to_image

SR = 16000


def tone(freq: float, seconds: float = 0.5, sr: int = SR) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write(path, data, sr=SR, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, sr, **kw)
    return path


# ----------------------------------------------------------------------------- reading, bad input

def test_formats_and_mono_mixdown(tmp_path):
    x = tone(440)
    for ext in ("wav", "flac", "ogg"):
        wave = load_audio(write(tmp_path / f"a.{ext}", x))
        assert wave.shape == (len(x),) and wave.dtype == torch.float32
        tol = 0.05 if ext == "ogg" else 1e-3  # lossy
        assert np.abs(wave.numpy() - x).max() < tol
    stereo = np.stack([x, -0.5 * x], axis=1)
    raw, rate = read_audio(write(tmp_path / "stereo.wav", stereo, subtype="FLOAT"))
    assert raw.shape == (2, len(x)) and rate == SR
    assert torch.allclose(load_audio(tmp_path / "stereo.wav"), torch.from_numpy(0.25 * x), atol=1e-6)


def test_wrong_sample_rate_is_resampled_or_refused(tmp_path):
    path = write(tmp_path / "8k.wav", tone(440, 1.0, 8000), sr=8000)
    wave = load_audio(path, SR)
    assert wave.shape == (SR,)
    expected = torch.from_numpy(tone(440, 1.0, SR))
    assert (wave - expected)[200:-200].abs().max() < 1e-3
    with pytest.raises(ValueError, match="sampled at 8000 Hz but 16000 Hz"):
        load_audio(path, SR, allow_resample=False)


def test_bad_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        load_audio(tmp_path / "missing.wav")
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk" + bytes(range(200)))
    with pytest.raises(ValueError, match="cannot decode audio file .*corrupt.wav"):
        load_audio(corrupt)
    text = tmp_path / "notes.flac"
    text.write_text("not audio at all")
    with pytest.raises(ValueError, match="cannot decode"):
        load_audio(text)
    empty = write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32))
    with pytest.raises(ValueError, match="no samples.*empty.wav"):
        load_audio(empty)
    nan = np.ones(1000, dtype=np.float32)
    nan[10] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite samples.*nan.wav"):
        load_audio(write(tmp_path / "nan.wav", nan, subtype="FLOAT"))


def test_silent_and_short_files_are_valid_inputs(tmp_path):
    cfg = AudioConfig()
    silent = load_audio(write(tmp_path / "silent.wav", np.zeros(SR, dtype=np.float32)))
    image = waveform_to_image(silent, cfg)
    floor = (math.log(torch.finfo(torch.float32).eps) - cfg.mean) / (2 * cfg.std)
    assert torch.allclose(image[0, :, :98], torch.full((128, 98), floor))
    short = load_audio(write(tmp_path / "short.wav", tone(440, 0.01)))  # 160 samples < one 400-sample frame
    image = waveform_to_image(short, cfg)
    assert image.shape == (1, 128, 128) and torch.isfinite(image).all()


# ----------------------------------------------------------------------------- layouts

def make_speech_commands(root, words=("no", "yes"), per_word=4):
    for w_i, word in enumerate(words):
        for i in range(per_word):
            write(root / word / f"spk{i}_nohash_0.wav", tone(300 + 500 * w_i + 20 * i))
    write(root / "_background_noise_" / "white_noise.wav", np.random.default_rng(0).standard_normal(SR).astype(np.float32) * 0.1)
    (root / "validation_list.txt").write_text("no/spk0_nohash_0.wav\nyes/spk0_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("no/spk1_nohash_0.wav\nyes/spk1_nohash_0.wav\n")
    return root


def test_speech_commands_layout(tmp_path):
    splits = scan_audio_data(make_speech_commands(tmp_path / "sc"))
    assert splits.layout == "speech_commands"
    assert splits.classes == ["no", "yes"] and not splits.multi_label
    assert [p.name for p, _ in splits.val] == ["spk0_nohash_0.wav"] * 2
    assert [p.name for p, _ in splits.tests["test"]] == ["spk1_nohash_0.wav"] * 2
    assert len(splits.train) == 4
    assert all("_background_noise_" not in str(p) for p, _ in splits.train + splits.val + splits.tests["test"])


def test_class_folder_layouts(tmp_path):
    for c in ("a", "b"):
        for i in range(10):
            write(tmp_path / "flat" / c / f"{i}.wav", tone(200 + i))
    splits = scan_audio_data(tmp_path / "flat", val_fraction=0.2, seed=1)
    assert splits.layout == "class_folders" and not splits.tests
    assert len(splits.train) == 16 and len(splits.val) == 4
    assert sorted(labels[0] for _, labels in splits.val) == ["a", "a", "b", "b"]  # stratified
    again = scan_audio_data(tmp_path / "flat", val_fraction=0.2, seed=1)
    assert again.val == splits.val  # seeded
    for split in ("train", "val", "test"):
        write(tmp_path / "split" / split / "x" / "1.flac", tone(300))
        write(tmp_path / "split" / split / "y" / "1.ogg", tone(600))
    splits = scan_audio_data(tmp_path / "split")
    assert (len(splits.train), len(splits.val), len(splits.tests["test"])) == (2, 2, 2)
    (tmp_path / "nothing" / "c").mkdir(parents=True)
    (tmp_path / "nothing" / "c" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="no files with a known extension"):
        scan_audio_data(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError):
        scan_audio_data(tmp_path / "absent")


def test_csv_layout_multi_label(tmp_path):
    for i in range(6):
        write(tmp_path / "clips" / f"{i}.wav", tone(200 * (i + 1)))
    rows = ["path,label,split", "clips/0.wav,dog;bark,train", "clips/1.wav,cat;meow,train", "clips/2.wav,dog,train",
            "clips/3.wav,cat;meow,val", "clips/4.wav,dog,val", "clips/5.wav,bark,test"]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    splits = scan_audio_data(tmp_path / "labels.csv")
    assert splits.layout == "csv" and splits.multi_label
    assert splits.classes == ["bark", "cat", "dog", "meow"]
    assert splits.train[0] == (tmp_path / "clips" / "0.wav", ("dog", "bark"))
    task = build_task_data(plugin_args(data=str(tmp_path / "labels.csv"), wave_mixup=0.0))
    assert task.multi_label and task.num_classes == 4 and len(task.test) == 1
    assert torch.equal(task.train[0][1], torch.tensor([1.0, 0, 1, 0]))  # multi-hot over bark, cat, dog, meow
    assert torch.equal(task.val[0][1], torch.tensor([0.0, 1, 0, 1]))
    (tmp_path / "bad.csv").write_text("file,label\nclips/0.wav,dog\n")
    with pytest.raises(ValueError, match="'path' and 'label'"):
        read_audio_csv(tmp_path / "bad.csv")
    (tmp_path / "missing.csv").write_text("path,label\nclips/nope.wav,dog\n")
    with pytest.raises(FileNotFoundError, match=r"missing.csv:2: file not found"):
        read_audio_csv(tmp_path / "missing.csv")


# ----------------------------------------------------------------------------- datasets

def test_dataset_items_targets_and_mixup(tmp_path):
    splits = scan_audio_data(make_speech_commands(tmp_path / "sc"))
    names = splits.classes
    val = AudioClassificationDataset(splits.val, names)
    image, target = val[0]
    assert image.shape == (1, 128, 128) and target == 0
    expected = waveform_to_image(load_audio(splits.val[0][0], SR))
    torch.testing.assert_close(image, expected)
    train = AudioClassificationDataset(splits.train, names, train=True, freq_mask=48, time_mask=48, noise=True,
                                       mixup_prob=1.0)
    torch.manual_seed(0)
    mixed = []
    for i in list(range(len(train))) * 4:
        image, target = train[i]
        assert image.shape == (1, 128, 128) and target.shape == (2,)
        assert target.sum().item() == pytest.approx(1.0) and (target >= 0).all()
        if target.max() < 1:  # partner of the other class (same-class partners keep a one-hot target)
            mixed.append(target.max().item())
    assert len(mixed) >= 3 and all(0.5 <= m < 0.9 for m in mixed)  # lambda ~ Beta(10, 10) stays near 1/2
    plain = AudioClassificationDataset(splits.train, names, train=True)  # no mixup: int targets
    assert isinstance(plain[0][1], int)
    with pytest.raises(ValueError, match="not among the training classes"):
        AudioClassificationDataset(splits.train, ["no"])


def test_log_mel_stats_and_cli(tmp_path, capsys):
    root = make_speech_commands(tmp_path / "sc")
    splits = scan_audio_data(root)
    cfg = AudioConfig()
    paths = [p for p, _ in splits.train]
    specs = torch.stack([log_mel_spectrogram(load_audio(p), cfg).double() for p in paths])
    mean, std = log_mel_stats(paths, cfg)
    assert mean == pytest.approx(specs.mean().item(), abs=1e-5)
    assert std == pytest.approx(specs.std(unbiased=False).item(), abs=1e-5)
    out = tmp_path / "stats.yaml"
    assert cli_main(["audio-stats", "--data", str(root), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"audio_mean: {mean:.6f}" in printed and f"--audio-std {std:.6f}" in printed
    assert out.read_text() == f"audio_mean: {mean:.6f}\naudio_std: {std:.6f}\n"
    assert cli_main(["audio-stats", "--data", str(tmp_path / "absent")]) == 2
    assert "data not found" in capsys.readouterr().err


# ----------------------------------------------------------------------------- engine plug-in

def plugin_args(**values) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    audio_data.add_train_args(parser)
    args = parser.parse_args([])
    assert all(v is None for v in vars(args).values())  # the contract: every flag defaults to None
    for key, value in {**audio_data.CONFIG_DEFAULTS, "seed": 0, "val_data": None, **values}.items():
        setattr(args, key, value)
    return args


def test_plugin_contract(tmp_path):
    assert set(audio_data.CONFIG_DEFAULTS) == set(vars(plugin_args()).keys()) - {"seed", "val_data", "data"}
    recipe = audio_data.RECIPES["speech_commands"]
    assert recipe["model"] == "unireplknet_s" and recipe["drop_path"] == 0.4 and recipe["wave_mixup"] == 0.6
    root = make_speech_commands(tmp_path / "sc")
    task = build_task_data(plugin_args(data=str(root)))
    assert (task.num_classes, list(task.class_names), task.in_chans, task.input_size) == (2, ["no", "yes"], 1, (128, 128))
    assert not task.multi_label and len(task.train) == 4 and len(task.val) == 2 and len(task.test) == 2
    assert task.meta["layout"] == "speech_commands"
    x, y = task.train[0]
    assert x.shape == (1, 128, 128) and y.dtype == torch.float32  # waveform mixup -> soft targets
    x, y = task.val[0]
    assert x.shape == (1, 128, 128) and isinstance(y, int)
    small = build_task_data(plugin_args(data=str(root), num_mel_bins=64, target_frames=50, wave_mixup=0.0))
    assert small.input_size == (64, 50) and small.train[0][0].shape == (1, 64, 50)


def test_recipe_resolves_through_the_train_command(tmp_path):
    args = build_parser().parse_args(["train", "--modality", "audio", "--data", str(tmp_path), "--recipe",
                                      "speech_commands", "--freq-mask", "10", "--no-audio-noise"])
    from unireplknet.modalities import get_modality
    from unireplknet.runner.train import _resolve

    cfg = _resolve(args, get_modality("audio")).config
    assert (cfg["model"], cfg["opt"], cfg["lr"], cfg["opt_betas"], cfg["drop_path"]) == (
        "unireplknet_s", "adam", 2.5e-4, [0.95, 0.999], 0.4)
    assert (cfg["freq_mask"], cfg["time_mask"], cfg["audio_noise"], cfg["wave_mixup"]) == (10, 48, False, 0.6)
    assert (cfg["audio_mean"], cfg["audio_std"]) == (-6.845978, 5.5654526)


def test_predict_sliding_windows(tmp_path):
    args = plugin_args()
    one = load_for_predict(str(write(tmp_path / "short.wav", tone(500, 1.0))), args)
    assert one.shape == (1, 128, 128)
    long = load_for_predict(str(write(tmp_path / "long.wav", tone(500, 4.0, 8000), sr=8000)), args)
    assert long.shape == (6, 1, 128, 128)  # 398 frames at 16 kHz: windows of 128 at 0, 64, ..., 320
    with pytest.raises(ValueError, match="cannot decode"):
        (tmp_path / "bad.wav").write_bytes(b"nope")
        load_for_predict(str(tmp_path / "bad.wav"), args)


def test_builtin_demo_synthesises_spoken_words_once(tmp_path, monkeypatch):
    args = plugin_args(data=None, output=str(tmp_path / "run"), demo_words=2, demo_repeats=1)
    task = build_task_data(args)
    assert list(task.class_names) == ["no", "yes"] and task.meta["layout"] == "split_folders"
    from unireplknet.modalities.audio.demo import TEST_VOICES, TRAIN_VOICES, VAL_VOICES

    assert (len(task.train), len(task.val), len(task.test)) == (
        2 * len(TRAIN_VOICES), 2 * len(VAL_VOICES), 2 * len(TEST_VOICES))  # 36 / 3 / 4 voices x 2 words
    root = tmp_path / "run" / "spoken_words"
    clip = next((root / "test" / "no").glob("*.wav"))
    before = clip.stat().st_mtime_ns
    wave = load_audio(clip)
    assert sf.info(str(clip)).samplerate == SR and wave.abs().max() > 0.05
    build_task_data(args)  # same parameters: reused, not synthesised again
    assert clip.stat().st_mtime_ns == before
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(FileNotFoundError, match="apt install espeak-ng"):
        build_task_data(plugin_args(data=None, output=str(tmp_path / "other"), demo_words=2, demo_repeats=1))
