"""Weights you can trust: NaN/inf refused by name, empty files explained, honest head messages, hashed downloads."""
from __future__ import annotations

import hashlib
import logging

import pytest
import torch

import unireplknet.weights as W
from unireplknet import UniRepLKNet, load_weights, save_weights
from unireplknet.cli import main
from unireplknet.errors import CheckpointError, NonFiniteError, WeightsUnavailableError
from unireplknet.export import convert_checkpoint
from unireplknet.weights import PretrainedWeights, model_from_checkpoint, read_checkpoint, resolve_pretrained

TINY = dict(depths=(1, 1, 2, 1), dims=(16, 32, 48, 64), kernel_sizes=((3,), (7,), (13, 0), (5,)))


def tiny(num_classes=10, seed=0) -> UniRepLKNet:
    torch.manual_seed(seed)
    return UniRepLKNet(num_classes=num_classes, **TINY).eval()


def poisoned_state_dict(n_bad: int = 7) -> dict:
    sd = tiny().state_dict()
    names = [k for k, v in sd.items() if v.is_floating_point()][:n_bad]
    for i, k in enumerate(names):
        sd[k] = sd[k].clone()
        sd[k].view(-1)[0] = float("nan") if i % 2 == 0 else float("inf")
    return sd


def test_nonfinite_weights_are_refused_naming_tensors(tmp_path, caplog):
    sd = poisoned_state_dict(7)
    path = tmp_path / "nan.pth"
    torch.save(sd, path)
    bad = [k for k, v in sd.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    with pytest.raises(NonFiniteError) as e:
        load_weights(tiny(), path)
    msg = str(e.value)
    assert "in 7 tensor(s)" in msg and bad[0] in msg and bad[4] in msg and bad[5] not in msg
    assert "and 2 more" in msg and "allow_nonfinite" in msg and "\n" not in msg
    with pytest.raises(NonFiniteError):
        model_from_checkpoint(path)
    with caplog.at_level(logging.WARNING, logger="unireplknet.weights"):
        load_weights(tiny(), path, allow_nonfinite=True)
        model = model_from_checkpoint(path, allow_nonfinite=True)
    assert "loaded anyway" in caplog.text
    assert not torch.isfinite(model.state_dict()[bad[0]]).all()


def test_nonfinite_into_deploy_model_is_refused_too():
    deploy = UniRepLKNet(num_classes=10, deploy=True, **TINY)
    with pytest.raises(NonFiniteError):
        load_weights(deploy, poisoned_state_dict(1))


def test_cli_convert_nonfinite_is_one_line_and_allow_flag(tmp_path, capsys):
    src = tmp_path / "nan.pth"
    torch.save(poisoned_state_dict(3), src)
    out = tmp_path / "d.safetensors"
    assert main(["convert", str(src), str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "NaN/inf in 3 tensor(s)" in err and "\n" not in err
    assert not out.exists()
    assert main(["convert", str(src), str(out), "--probe-size", "32", "--allow-nonfinite"]) == 0
    assert out.is_file() and "nan" in capsys.readouterr().out
    with pytest.raises(NonFiniteError):
        convert_checkpoint(src, tmp_path / "x.safetensors", probe_size=32)


def test_empty_checkpoint_has_a_real_reason(tmp_path, capsys):
    for name in ("empty.pth", "empty.safetensors"):
        (tmp_path / name).write_bytes(b"")
        with pytest.raises(CheckpointError, match=r"empty \(0 bytes"):
            read_checkpoint(tmp_path / name)
    assert main(["convert", str(tmp_path / "empty.pth"), str(tmp_path / "o.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "the file is empty (0 bytes" in err and err.count("\n") == 1


def test_training_checkpoint_empty_file_reason(tmp_path):
    from unireplknet.engine.checkpoint import load_checkpoint

    (tmp_path / "last.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty \(0 bytes"):
        load_checkpoint(tmp_path)


def test_variant_mismatch_with_equal_classes_does_not_mention_a_dropped_head(tmp_path, caplog):
    save_weights(tiny(num_classes=10), tmp_path / "t.pth")
    wider = UniRepLKNet(num_classes=10, **dict(TINY, dims=(16, 32, 48, 80)))
    with caplog.at_level(logging.WARNING), pytest.raises(CheckpointError) as e:
        load_weights(wider, tmp_path / "t.pth")
    assert "dropped" not in caplog.text and "classes" not in caplog.text
    msg = str(e.value)
    assert "another variant" in msg and "dropped" not in msg


def test_other_class_count_still_drops_head_with_the_counts(tmp_path, caplog):
    save_weights(tiny(num_classes=10), tmp_path / "t.pth")
    with caplog.at_level(logging.WARNING):
        report = load_weights(tiny(num_classes=4), tmp_path / "t.pth")
    assert report.dropped == ["head.weight", "head.bias"]
    assert "10 classes, the model's 4" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_weights(tiny(num_classes=0), tmp_path / "t.pth")
    assert "no classifier (num_classes=0)" in caplog.text


# ------------------------------------------------------------------ pinned, hashed downloads
def _fake_hub(monkeypatch, payload: bytes, tmp_path):
    """A stand-in for huggingface_hub.hf_hub_download that 'downloads' ``payload`` and records its arguments."""
    import huggingface_hub

    calls = []

    def fake_download(repo_id, filename, revision=None, **kw):
        calls.append(dict(repo_id=repo_id, filename=filename, revision=revision))
        path = tmp_path / "hub" / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)
        return str(path)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    return calls


def _entry(**kw) -> PretrainedWeights:
    return PretrainedWeights("unireplknet_a.test", "unireplknet_a_test.pth", 10, 224, None, "test", **kw)


def test_download_hash_mismatch_names_expected_and_actual(tmp_path, monkeypatch):
    payload = b"pretend these are weights"
    actual = hashlib.sha256(payload).hexdigest()
    calls = _fake_hub(monkeypatch, payload, tmp_path)
    wrong = "0" * 64
    with pytest.raises(WeightsUnavailableError) as e:
        resolve_pretrained(_entry(sha256=wrong, revision="abc123"))
    msg = str(e.value)
    assert f"expected sha256 {wrong}" in msg and f"got {actual}" in msg and "\n" not in msg
    assert calls[-1] == dict(repo_id=W.HF_REPO, filename="unireplknet_a_test.pth", revision="abc123")
    assert resolve_pretrained(_entry(sha256=actual.upper())).read_bytes() == payload  # case-insensitive match


def test_download_without_recorded_hash_warns(tmp_path, monkeypatch, caplog):
    calls = _fake_hub(monkeypatch, b"x", tmp_path)
    monkeypatch.setattr(W, "HF_REVISION", "feedbeef")
    with caplog.at_level(logging.WARNING, logger="unireplknet.weights"):
        resolve_pretrained(_entry())
    assert "no SHA-256 recorded" in caplog.text
    assert calls[-1]["revision"] == "feedbeef"  # the table's pinned revision is used by default


def test_released_weights_end_to_end_with_fake_hub(tmp_path, monkeypatch):
    src = tiny()
    good = tmp_path / "src.pth"
    torch.save(src.state_dict(), good)
    payload = good.read_bytes()
    _fake_hub(monkeypatch, payload, tmp_path)
    entry = _entry(sha256=hashlib.sha256(payload).hexdigest())
    model = tiny(seed=1)
    load_weights(model, resolve_pretrained(entry))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), src(x))
    tampered = payload[:-1] + bytes([payload[-1] ^ 1])
    _fake_hub(monkeypatch, tampered, tmp_path / "t")
    with pytest.raises(WeightsUnavailableError, match="failed its hash check"):
        resolve_pretrained(entry)


def test_table_has_revision_and_hash_fields():
    for w in W.PRETRAINED.values():
        assert hasattr(w, "revision") and hasattr(w, "sha256")
        assert w.sha256 is None or len(w.sha256) == 64
