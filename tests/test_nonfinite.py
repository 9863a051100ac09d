"""NaN/inf in training, evaluation and configs: the cause is named, good checkpoints survive, bad configs are refused."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from unireplknet import engine
from unireplknet.engine import checkpoint as ckpt_lib
from unireplknet.engine.config import EngineConfig, load_config_file
from unireplknet.engine.nonfinite import check_finite_outputs, diagnose_nonfinite_loss
from unireplknet.errors import ConfigError, NonFiniteError


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))


# ------------------------------------------------------------------ diagnosis
def test_diagnosis_names_the_input_tensor_and_count_not_the_lr():
    x = torch.randn(4, 4)
    x[1, 2] = float("nan")
    x[3, 0] = float("inf")
    msg = diagnose_nonfinite_loss(x, torch.zeros(4), small_model(), lr=1e-3, step=7, clip_grad=1.0)
    assert "input has 2 of 16 values NaN/inf" in msg and "step 7" in msg and "lr" not in msg
    msg = diagnose_nonfinite_loss({"image": torch.ones(2), "mask": torch.tensor([float("nan")])}, None,
                                  small_model(), 1e-3, 0)
    assert "input['mask'] has 1 of 1" in msg and "\n" not in msg


def test_diagnosis_targets_weights_outputs_lossfn_and_lr():
    model = small_model()
    x = torch.randn(2, 4)
    assert "targets contain NaN/inf (target has 1 of 2" in diagnose_nonfinite_loss(
        x, torch.tensor([0.0, float("nan")]), model, 1e-3, 3)
    with torch.no_grad():
        model[2].weight[0, 0] = float("nan")
    msg = diagnose_nonfinite_loss(x, torch.zeros(2), model, 0.5, 3, clip_grad=1.0)
    assert "model weights already hold NaN/inf in 1 tensor(s) (2.weight)" in msg and "set clip_grad" not in msg
    ok = small_model()
    out = torch.tensor([[float("inf")], [1.0]])
    assert "overflowed in float16" in diagnose_nonfinite_loss(x, torch.zeros(2), ok, 1e-3, 1, outputs=out,
                                                                amp_dtype=torch.float16)
    assert "the loss function returned NaN/inf on finite outputs" in diagnose_nonfinite_loss(
        x, torch.zeros(2), ok, 1e-3, 1, outputs=torch.ones(2, 1))
    msg = diagnose_nonfinite_loss(x, torch.zeros(2), ok, 4e-3, 1, loss_scale=65536.0, amp_dtype=torch.float16)
    assert "lr 0.004" in msg and "loss scale 65536" in msg and "bfloat16" in msg
    msg = diagnose_nonfinite_loss(x, torch.zeros(2), ok, 4e-3, 1, clip_grad=1.0)
    assert "clip_grad 1" in msg and "set clip_grad" not in msg  # clipping is on: do not suggest it


def test_check_finite_outputs():
    check_finite_outputs(torch.ones(3), "logits")
    check_finite_outputs(torch.tensor([1, 2]), "labels")  # integers are always finite
    with pytest.raises(NonFiniteError, match=r"^predictions for a\.png: 2 of 3 values are not finite \(1 NaN, 1 inf\)"):
        check_finite_outputs(torch.tensor([1.0, float("nan"), float("-inf")]), "predictions for a.png")


# ------------------------------------------------------------------ the training loop
def _trainer(run_dir, x, loss_fn=nn.functional.mse_loss, **overrides):
    y = x[:, :1].nan_to_num(0.0) * 2
    ds = TensorDataset(x, y)
    cfg = EngineConfig.from_dict(dict(dict(epochs=2, batch_size=8, lr=0.01, warmup_epochs=0, weight_decay=0.0,
                                           num_workers=0, metric="mse", metric_mode="min", min_lr=0.0,
                                           ckpt_every_steps=1, deploy=False), **overrides))
    loader = DataLoader(ds, batch_size=8, shuffle=False)
    return engine.Trainer(small_model(), loader, None, loss_fn, None, cfg, run_dir)


def test_nan_batch_raises_naming_the_input_and_keeps_last_pt(tmp_path):
    x = torch.randn(40, 4)
    x[20, 1] = float("nan")  # batch 2 (samples 16-23)
    trainer = _trainer(tmp_path, x, clip_grad=1.0)
    with pytest.raises(NonFiniteError) as e:
        trainer.fit()
    msg = str(e.value)
    assert "epoch 1, batch 2" in msg and "input batch contains NaN/inf (input has 1 of 32 values" in msg
    assert "lower lr" not in msg and "last.pt from before this step is kept" in msg and "\n" not in msg
    ckpt = ckpt_lib.load_checkpoint(tmp_path / "last.pt")
    assert ckpt["global_step"] == 2  # the two good steps; the bad one applied nothing
    for k, v in trainer.model.state_dict().items():
        assert torch.isfinite(ckpt["model"][k]).all() and torch.equal(ckpt["model"][k], v)


def test_diverged_weights_are_never_written_to_last_pt(tmp_path):
    def nan_grad_loss(out, y):  # finite loss, NaN gradient (d sqrt(u)/du at u = 0 is inf, times 0)
        return torch.sqrt(((out - y) ** 2).sum() * 0.0)

    trainer = _trainer(tmp_path, torch.randn(40, 4), loss_fn=nan_grad_loss, opt="sgd")
    with pytest.raises(NonFiniteError, match=r"^after step 1 the model has NaN/inf weights in 4 tensor\(s\): 0\.weight.*diverged.*last\.pt not updated$"):
        trainer.fit()
    assert not (tmp_path / "last.pt").exists()


# ------------------------------------------------------------------ configs
def test_float16_amp_on_cpu_is_a_config_error():
    with pytest.raises(ConfigError, match="float16 needs a CUDA device"):
        EngineConfig(amp=True, amp_dtype="float16", device="cpu")
    cfg = EngineConfig(amp=True, amp_dtype="float16", device="cuda")
    with pytest.raises(ConfigError, match="running on cpu"):
        cfg.autocast_dtype("cpu")
    assert cfg.autocast_dtype("cuda") == torch.float16
    assert EngineConfig(amp=True, device="cpu").autocast_dtype("cpu") == torch.bfloat16
    assert EngineConfig(amp=False, amp_dtype="float16", device="cpu").autocast_dtype("cpu") is None
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError):
            EngineConfig(amp=True, amp_dtype="float16")  # device auto resolves to the CPU here


def test_yaml_value_of_the_wrong_type_names_key_and_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("epochs: ten\nlr: 1e-3\n")
    with pytest.raises(ConfigError) as e:
        load_config_file(str(path))
    assert "'epochs'" in str(e.value) and str(path) in str(e.value) and "integer" in str(e.value)
    path.write_text("lr: 1e-3\nepochs: 3\namp: true\nopt_betas: [0.9, 0.99]\nclip_grad: null\nmodel: x\n")
    values = load_config_file(str(path))
    assert values["lr"] == pytest.approx(1e-3)  # YAML 1.1 reads 1e-3 as a string: converted
    assert EngineConfig.from_dict(values).epochs == 3
    for bad, key in (("amp: maybe\n", "'amp'"), ("batch_size: 2.5\n", "'batch_size'"), ("lr: [1]\n", "'lr'"),
                     ("amp_dtype: 16\n", "'amp_dtype'"), ("opt_betas: 0.9\n", "'opt_betas'"),
                     ("accum: true\n", "'accum'")):
        path.write_text(bad)
        with pytest.raises(ConfigError, match=f"{key} in {path}"):
            load_config_file(str(path))
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config_file(str(path))
    path.write_text("a: [1\n")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_config_file(str(path))


def test_from_dict_type_errors_are_config_errors():
    with pytest.raises(ConfigError, match="config key 'epochs' in flags must be an integer"):
        EngineConfig.from_dict({"epochs": "x"}, source="flags")
    with pytest.raises(ConfigError, match="'clip_grad' must be a number or null"):
        EngineConfig.from_dict({"clip_grad": "high"})
