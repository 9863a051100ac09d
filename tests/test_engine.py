"""Engine unit tests: optimizer groups, layer decay, schedule, checkpoints, the generic loop, exact resume."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import unireplknet
from unireplknet import engine
from unireplknet.engine import checkpoint as ckpt_lib
from unireplknet.tasks import classification as C

@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest (and robustly on a busy CI machine) on one thread."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


TINY = dict(depths=(1, 1, 2, 1), dims=(8, 16, 32, 64), kernel_sizes=((3,), (3,), (7, 3), (3,)))


def tiny_model(num_classes: int = 3, in_chans: int = 1, **kw) -> nn.Module:
    return unireplknet.UniRepLKNet(in_chans=in_chans, num_classes=num_classes, **TINY, **kw)


def toy_data(n: int = 48, classes: int = 3, size: int = 32) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % classes
    x = torch.randn(n, 1, size, size, generator=g) * 0.5
    x[:, 0, : size // 2, : size // 2] += y.view(-1, 1, 1).float()  # learnable signal
    return TensorDataset(x, y)


def test_layer_id_follows_the_original_mapping():
    from unireplknet.model import layer_decay_id as lid  # the model says; the engine only asks
    assert lid("downsample_layers.0.0.weight") == 0
    assert lid("downsample_layers.1.0.weight") == 2
    assert lid("downsample_layers.2.1.bias") == 3
    assert lid("downsample_layers.3.0.weight") == 12
    assert lid("stages.0.1.gamma") == 1
    assert lid("stages.1.2.dwconv.lk_origin.weight") == 2
    assert [lid(f"stages.2.{b}.se.up.weight") for b in (0, 2, 3, 8, 17, 26)] == [3, 3, 4, 5, 8, 11]
    assert lid("stages.3.0.pwconv1.1.weight") == 12
    assert lid("norm.weight") == lid("head.bias") == lid("norm2.weight") == 13
    assert lid("module.stages.0.0.gamma") == 1  # DDP prefix


def test_param_groups_scale_and_weight_decay_exclusion():
    model = tiny_model()
    groups = engine.param_groups(model, weight_decay=0.05, layer_decay=0.8)
    by_name = {n: g for g in groups for n in g["names"]}
    assert by_name["downsample_layers.0.0.weight"]["lr_scale"] == pytest.approx(0.8**13)
    assert by_name["head.weight"]["lr_scale"] == pytest.approx(1.0)
    assert by_name["stages.2.1.pwconv1.1.weight"]["lr_scale"] == pytest.approx(0.8**10)
    decayed = {n for n, g in by_name.items() if g["weight_decay"] > 0}
    assert "stages.1.0.pwconv1.1.weight" in decayed and "head.weight" in decayed
    assert "stages.2.0.dwconv.lk_origin.weight" in decayed
    for n in ("stages.0.0.gamma", "stages.0.0.act.1.gamma", "stages.0.0.act.1.beta", "head.bias",
              "norm.weight", "stages.0.0.norm.weight", "downsample_layers.0.1.weight"):
        assert by_name[n]["weight_decay"] == 0.0, n
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_schedule_warmup_then_cosine():
    model = nn.Linear(2, 2)
    cfg = engine.EngineConfig(epochs=10, warmup_epochs=2, lr=1.0, min_lr=0.0, layer_decay=None)
    opt = engine.build_optimizer(model, cfg, cfg.lr)
    sched = engine.build_scheduler(opt, cfg, updates_per_epoch=5, lr=cfg.lr)
    lrs = []
    for step in range(50):
        sched.step_update(step)
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[0] == 0.0 and lrs[5] == pytest.approx(0.5)  # linear warm-up over 10 updates
    assert lrs[10] == pytest.approx(1.0)
    assert lrs[30] == pytest.approx(0.5 * (1 + math.cos(math.pi * 20 / 40)))
    assert lrs[-1] < 0.01 and all(a >= b for a, b in zip(lrs[10:], lrs[11:]))


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="metric_mode"):
        engine.EngineConfig(metric_mode="up")
    with pytest.raises(ValueError, match="unknown engine config key"):
        engine.EngineConfig.from_dict({"lr": 1.0, "learning_rate": 2.0}, strict=True)


def test_checkpoint_roundtrip_weights_only_and_rng(tmp_path):
    random.seed(3); np.random.seed(3); torch.manual_seed(3)
    state = ckpt_lib.rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    ckpt_lib.atomic_save({"format": ckpt_lib.FORMAT, "rng": state, "x": [1, 2.5, "a"]}, tmp_path / "c.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temp file left behind
    loaded = ckpt_lib.load_checkpoint(tmp_path / "c.pt")  # weights_only=True inside
    random.random(); np.random.rand(); torch.rand(1)
    ckpt_lib.set_rng_state(loaded["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
    torch.save({"other": 1}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not a unireplknet training checkpoint"):
        ckpt_lib.load_checkpoint(tmp_path / "x.pt")
    with pytest.raises(FileNotFoundError):
        ckpt_lib.load_checkpoint(tmp_path / "missing.pt")


def test_signature_check_names_the_difference():
    a, b = tiny_model(3), tiny_model(5)
    ckpt_lib.check_signature(ckpt_lib.model_signature(a), tiny_model(3))
    with pytest.raises(ValueError, match="different model.*head"):
        ckpt_lib.check_signature(ckpt_lib.model_signature(a), b)


def test_resumable_sampler_skips_and_shards():
    ds = toy_data(20)
    info = engine.distributed.DistInfo()
    s = engine.ResumableSampler(ds, info, seed=1)
    s.set_epoch(2)
    full = list(s)
    s.set_skip(7)
    assert list(s) == full[7:] and len(s) == 13
    s.set_epoch(3)
    s.set_skip(0)
    assert sorted(list(s)) == list(range(20)) and list(s) != full
    shards = [list(engine.ShardSampler(ds, engine.distributed.DistInfo(r, 3))) for r in range(3)]
    assert sorted(sum(shards, [])) == list(range(20))


def test_seeded_dataset_is_reproducible_and_leaves_global_rng_alone():
    class Noisy(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return torch.rand(1).item() + random.random() + np.random.rand()

    ds = engine.SeededDataset(Noisy(), seed=5)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    a = [ds[i] for i in range(4)]
    assert torch.equal(before, torch.get_rng_state())
    assert a == [ds[i] for i in range(4)] and len(set(a)) == 4
    ds.set_epoch(1)
    assert a != [ds[i] for i in range(4)]


def _regression_trainer(run_dir, **overrides):
    """A non-classification task (MSE regression, metric 'mse' minimised) on the generic loop."""
    torch.manual_seed(0)
    x = torch.randn(40, 4)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    ds = TensorDataset(x, y)
    cfg = engine.EngineConfig.from_dict(dict(dict(epochs=3, batch_size=8, lr=0.05, warmup_epochs=0, weight_decay=0.0,
                                                  num_workers=0, metric="mse", metric_mode="min", min_lr=0.0),
                                             **overrides))

    def evaluate_fn(model, loader, ctx):
        se, n = 0.0, 0
        for xb, yb in loader:
            xb, yb = ctx.to_device((xb, yb))
            se += ((model(xb) - yb) ** 2).sum().item()
            n += len(xb)
        return {"mse": se / n, "n": n}

    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    return engine.Trainer(model, engine.make_loader(ds, cfg, True), engine.make_loader(ds, cfg, False),
                          nn.functional.mse_loss, evaluate_fn, cfg, run_dir)


def test_generic_loop_regression_task(tmp_path):
    trainer = _regression_trainer(tmp_path, epochs=6)
    first = trainer.evaluate()["mse"]
    summary = trainer.fit()
    hist = trainer.metrics.history
    assert [r["epoch"] for r in hist] == [1, 2, 3, 4, 5, 6]
    assert hist[-1]["val_mse"] < 0.5 * first
    assert summary["best"]["metric"] == "mse" and summary["best"]["value"] == min(r["val_mse"] for r in hist)
    for f in ("last.pt", "best.pt", "metrics.jsonl", "metrics.csv", "summary.json", "curves.png"):
        assert (tmp_path / f).is_file(), f
    assert "deploy" not in summary["files"]  # nn.Sequential has no reparameterize()


def test_trainer_logs_which_training_kernels_run(tmp_path, caplog):
    from unireplknet.ops import native

    with caplog.at_level("INFO", logger="unireplknet.engine.trainer"):
        _regression_trainer(tmp_path / "a")
    assert f"compiled CPU kernels: {native.status()}" in caplog.text
    caplog.clear()
    with caplog.at_level("INFO", logger="unireplknet.engine.trainer"):
        _regression_trainer(tmp_path / "b", fast_train=False)
    assert "compiled CPU kernels" not in caplog.text


def test_resume_between_epochs_is_exact(tmp_path):
    full = _regression_trainer(tmp_path / "a", epochs=3)
    full.fit()
    part = _regression_trainer(tmp_path / "b", epochs=3)
    part.cfg.epochs = 2  # "interrupted" after epoch 2 (schedule built for 3 epochs)
    part.fit()
    resumed = _regression_trainer(tmp_path / "b", epochs=3)
    resumed.fit(resume=tmp_path / "b" / "last.pt")
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    assert len(resumed.metrics.history) == 3


def test_classification_training_with_ema_mixup_amp_accum_and_deploy(tmp_path):
    ds = toy_data(32)
    values = dict(epochs=2, batch_size=8, accum=2, lr=2e-3, warmup_epochs=0, num_workers=0, ema=True, ema_decay=0.5,
                  mixup=0.2, cutmix=0.2, amp=True, clip_grad=1.0, grad_checkpointing=True, drop_path=0.1)
    cfg = engine.EngineConfig.from_dict(values)  # the engine ignores the task's keys (mixup, cutmix)
    task = type("T", (), dict(num_classes=3, multi_label=False, train_batch_transform=None))()
    parts = C.classification_parts(task, values)
    assert parts["train_batch_transform"] is not None
    model = tiny_model(3, layer_scale_init_value=1.0, drop_path_rate=0.1)
    trainer = engine.Trainer(model, engine.make_loader(ds, cfg, True), engine.make_loader(ds, cfg, False),
                             parts["loss_fn"], parts["evaluate_fn"], cfg, tmp_path,
                             train_batch_transform=parts["train_batch_transform"])
    assert trainer.updates_per_epoch == 2
    summary = trainer.fit()
    row = trainer.metrics.history[-1]
    assert {"val_acc1", "val_acc5", "ema_acc1", "train_loss"} <= set(row)
    assert trainer.global_step == 4
    assert summary["files"]["deploy"].endswith("deploy.safetensors")
    assert summary["deploy_max_abs_diff"] < 1e-3
    deployed = tiny_model(3)
    unireplknet.load_weights(deployed, tmp_path / "deploy.safetensors")
    best = tiny_model(3, layer_scale_init_value=1.0)
    best.load_state_dict(ckpt_lib.load_checkpoint(tmp_path / "best.pt")["model"])
    x = ds.tensors[0][:4]
    torch.testing.assert_close(deployed.eval()(x), best.eval()(x), rtol=1e-4, atol=1e-4)


def test_topk_confusion_and_map():
    logits = torch.tensor([[3.0, 2.0, 1.0], [0.0, 1.0, 2.0], [1.0, 3.0, 0.0]])
    target = torch.tensor([1, 2, 0])
    acc1, acc2 = C.topk_accuracy(logits, target, ks=(1, 2))
    assert acc1 == pytest.approx(1 / 3) and acc2 == pytest.approx(1.0)
    cm = C.confusion_matrix(logits.argmax(1), target, 3)
    assert cm.tolist() == [[0, 1, 0], [1, 0, 0], [0, 0, 1]]
    scores = torch.tensor([[0.9, 0.1], [0.8, 0.7], [0.1, 0.6]])
    labels = torch.tensor([[1, 0], [0, 1], [1, 1]])
    # class 0: ranks 1 (hit), 2 (miss), 3 (hit) -> (1 + 2/3)/2; class 1: ranks 1 (hit), 2 (hit) -> 1
    assert C.mean_average_precision(scores, labels) == pytest.approx(((1 + 2 / 3) / 2 + 1) / 2)


def test_evaluate_averages_views_and_handles_multi_label():
    class Probe(nn.Module):
        def forward(self, x):  # score of class c = mean of channel c
            return x.mean(dim=(2, 3))

    ctx = engine.EvalContext(torch.device("cpu"), None, engine.distributed.DistInfo())
    views = torch.zeros(2, 3, 2, 4, 4)  # B x V x C x H x W
    views[0, :, 1] = torch.tensor([1.0, 1.0, -1.5]).view(3, 1, 1)  # class 1 wins only on average
    views[1, :, 0] = 1.0
    loader = [(views, torch.tensor([1, 0]))]
    logits, target = C.predict_logits(Probe(), loader, ctx)
    assert logits.shape == (2, 2) and logits[0, 1].item() == pytest.approx(0.5 / 3)
    res = C.evaluate(Probe(), loader, ctx)
    assert res["acc1"] == 1.0 and res["n"] == 2
    multi = [(torch.stack([torch.ones(2, 4, 4), -torch.ones(2, 4, 4)]), torch.tensor([[1.0, 1.0], [0.0, 0.0]]))]
    res = C.evaluate(Probe(), multi, ctx, multi_label=True)
    assert res["mAP"] == 1.0 and "n" not in res


class _RandomShift(torch.utils.data.Dataset):
    """Augmentation drawn from the global torch RNG (as torchvision transforms do)."""

    def __len__(self):
        return 12

    def __getitem__(self, i):
        return torch.full((2,), float(i)) + torch.rand(2), i


def test_augmentation_does_not_depend_on_worker_count():
    batches = {}
    for workers in (0, 2):
        cfg = engine.EngineConfig.from_dict(dict(batch_size=4, num_workers=workers, seed=7))
        loader = engine.make_loader(_RandomShift(), cfg, train=True)
        loader.sampler.set_epoch(1)
        loader.dataset.set_epoch(1)
        batches[workers] = [x for x, _ in loader]
    assert len(batches[0]) == 3
    for a, b in zip(batches[0], batches[2]):
        assert torch.equal(a, b)
