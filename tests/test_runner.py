"""The runner behind ``train``: config layers, selection, resume, auto, run-directory rules."""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from unireplknet.cli import main
from test_data_contract import make_layout

TINY = json.dumps({"depths": [1, 1, 1, 1], "dims": [8, 16, 24, 32], "kernel_sizes": [[3], [5], [5], [3]]})


def _base(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--data", str(data), "-o", str(out), "--model", "custom", "--model-args", TINY,
            "--input-size", "16", "--in-chans", "1", "--transform", "light", "--batch-size", "4",
            "--num-workers", "0", "--num-threads", "1", "--warmup-epochs", "0", "--no-baselines", "--no-deploy",
            "--val-fraction", "0.25", *extra]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_layout("image", tmp_path_factory.mktemp("d") / "data", "train_test", n=8)


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_yaml_metric_and_mode_are_honoured(data, tmp_path):
    (tmp_path / "c.yaml").write_text("metric: loss\nmetric_mode: min\nepochs: 3\nlr: 0.02\n")
    out = tmp_path / "run"
    assert main(_base(data, out, "--config", str(tmp_path / "c.yaml"))) == 0
    summary = json.loads((out / "summary.json").read_text())
    rows = _rows(out)
    assert summary["best"]["metric"] == "loss"
    assert summary["best"]["value"] == pytest.approx(min(r["val_loss"] for r in rows))


def test_metric_mode_follows_a_loss_metric_set_in_yaml(data, tmp_path):
    (tmp_path / "c.yaml").write_text("metric: loss\nepochs: 2\n")
    out = tmp_path / "run"
    assert main(_base(data, out, "--config", str(tmp_path / "c.yaml"))) == 0
    rows = _rows(out)
    best = json.loads((out / "summary.json").read_text())["best"]
    assert best["value"] == pytest.approx(min(r["val_loss"] for r in rows))


def test_select_last_keeps_the_last_epoch(data, tmp_path):
    out = tmp_path / "run"
    assert main(_base(data, out, "--epochs", "3", "--select", "last", "--lr", "0.05")) == 0
    assert json.loads((out / "summary.json").read_text())["best"]["epoch"] == 3


def test_config_with_resume_overrides_the_checkpoint(data, tmp_path, caplog):
    out = tmp_path / "run"
    assert main(_base(data, out, "--epochs", "1")) == 0
    (tmp_path / "more.yaml").write_text("epochs: 2\n")
    with caplog.at_level(logging.INFO):
        assert main(["train", "--resume", str(out / "last.pt"), "--config", str(tmp_path / "more.yaml")]) == 0
    assert [r["epoch"] for r in _rows(out)] == [1, 2]
    assert "epochs=1->2" in caplog.text


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_resuming_a_copied_run_leaves_the_original_untouched(data, tmp_path):
    orig = tmp_path / "orig"
    assert main(_base(data, orig, "--epochs", "1")) == 0
    before = _digest(orig)
    copy = tmp_path / "copy"
    shutil.copytree(orig, copy)
    (tmp_path / "more.yaml").write_text("epochs: 2\n")
    assert main(["train", "--resume", str(copy / "last.pt"), "--config", str(tmp_path / "more.yaml")]) == 0
    assert _digest(orig) == before
    assert [r["epoch"] for r in _rows(copy)] == [1, 2]


def test_a_second_writer_gets_one_line(data, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from unireplknet.engine.rundir import RunDir; "
         f"r = RunDir({str(out)!r}); r.acquire(); print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        code = main(_base(data, out, "--epochs", "1"))
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and err[0].startswith("error:") and "--force" in err[0]
    finally:
        holder.kill()
        holder.wait()


def test_auto_chooses_a_small_model_for_a_small_cpu_dataset(data, tmp_path, caplog):
    out = tmp_path / "run"
    with caplog.at_level(logging.INFO):
        assert main(["train", "--data", str(data), "-o", str(out), "--time-budget", "0.05", "--device", "cpu",
                     "--no-baselines", "--no-deploy", "--num-threads", "1"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    auto = summary["auto"]
    assert auto["model"]["value"] == "custom" and "small custom network" in auto["model"]["why"]
    assert auto["input_size"]["value"] == 32 and auto["in_chans"]["value"] == 1  # 12 px single-channel: 32 (the floor)
    assert auto["epochs"]["value"] >= 1 and "budget" in auto["epochs"]["why"]
    assert "auto: model = custom" in caplog.text
    assert summary["test"]["test"]["acc1"] >= 0.0 and summary["splits"]["test"] == 4


def test_auto_trains_to_well_above_chance(data, tmp_path):
    """With auto defaults and a two-class set of dark vs bright images the test accuracy is far above 50%."""
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "-o", str(out), "--epochs", "6", "--no-deploy",
                 "--num-threads", "1", "--lr", "0.01"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test"]["test"]["acc1"] >= 0.9
    assert summary["baselines"]["results"]["test"]["logreg[pixels]"] >= 0.9  # the baseline sees the same split


def test_eval_any_split_by_name_and_predict_with_the_same_run_flag(tmp_path, capsys):
    data = make_layout("image", tmp_path / "data", "train_test_ab", n=4)
    out = tmp_path / "run"
    assert main(_base(data, out, "--epochs", "1")) == 0
    capsys.readouterr()
    assert main(["eval", "-r", str(out), "--split", "test_b"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("test_b: n=4")
    assert json.loads((out / "eval" / "eval-test_b.json").read_text())["split"] == "test_b"
    assert main(["eval", "-r", str(out), "--split", "nope"]) == 2
    assert "has no split 'nope'" in capsys.readouterr().err
    img = next((data / "test_a" / "a").glob("*.png"))
    assert main(["predict", str(img), "-r", str(out), "-k", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["top"][0]["label"] in ("a", "b")


def test_missing_data_is_one_clear_line(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "nope"), "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not found" in err[0] and "val/" not in err[0]


def test_version_flag(capsys):
    import unireplknet

    assert main(["--version"]) == 0
    assert unireplknet.__version__ in capsys.readouterr().out
