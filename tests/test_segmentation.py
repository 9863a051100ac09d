"""Segmentation: UPerNet, loss with ignore index, mIoU, inference modes, mask folders, training, smp route."""
import argparse
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from unireplknet.tasks.segmentation_data import SegmentationFolder, SegTransform, check_mask, find_pairs, pad_collate
from unireplknet.tasks.synthetic_dense import ShapesSegmentation, make_scene, write_shapes_folder
from unireplknet.tasks.dense_utils import build_dense_optimizer
from unireplknet.tasks.segmentation import (
    UPerNet, confusion_matrix, create_smp_upernet, create_upernet, predict_segmentation, segmentation_loss,
    segmentation_metrics, slide_inference, whole_inference,
)
from unireplknet.tasks.segmentation_train import (
    add_segmentation_args, resolve_segmentation_config,
)

TINY = dict(depths=(1, 1, 2, 1), dims=(16, 32, 64, 128), kernel_sizes=((3,), (7,), (7, 3), (7,)))


def tiny_upernet(num_classes=4, aux=8):
    return create_upernet("custom", num_classes=num_classes, channels=16, aux_channels=aux, model_args=TINY)


def test_upernet_shapes_any_size_and_aux_in_training():
    model = tiny_upernet()
    model.train()
    out = model(torch.randn(2, 3, 70, 50))
    assert set(out) == {"out", "aux"}
    assert out["out"].shape == out["aux"].shape == (2, 4, 70, 50)
    model.eval()
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 4, 64, 64)
    no_aux = tiny_upernet(aux=0).train()
    assert isinstance(no_aux(torch.randn(2, 3, 32, 32)), torch.Tensor)


def test_loss_ignores_ignore_index_and_weights_aux():
    torch.manual_seed(0)
    logits, aux = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    target = torch.randint(0, 3, (2, 4, 4))
    target[0, :2] = 255
    keep = target != 255
    manual = F.cross_entropy(logits.permute(0, 2, 3, 1)[keep], target[keep])
    loss_fn = segmentation_loss(ignore_index=255, aux_weight=0.4)
    assert torch.allclose(loss_fn(logits, target), manual)
    manual_aux = F.cross_entropy(aux.permute(0, 2, 3, 1)[keep], target[keep])
    assert torch.allclose(loss_fn({"out": logits, "aux": aux}, target), manual + 0.4 * manual_aux)


def test_confusion_matrix_and_miou_by_hand():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 255]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 0]])
    conf = confusion_matrix(pred, target, num_classes=4)
    assert conf.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    m = segmentation_metrics(conf)
    ious = [1 / 3, 2 / 3, 1 / 2]  # class 3 has no ground truth: left out
    assert m["mIoU"] == pytest.approx(sum(ious) / 3)
    assert m["aAcc"] == pytest.approx(4 / 6)
    assert m["mAcc"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(pred, torch.full_like(target, 7), num_classes=4)


def test_slide_equals_whole_for_a_pointwise_model_and_covers_everything():
    torch.manual_seed(0)
    pointwise = torch.nn.Conv2d(3, 5, 1)
    x = torch.randn(2, 3, 50, 70)
    whole = whole_inference(pointwise, x)
    slide = slide_inference(pointwise, x, num_classes=5, crop_size=32, stride=20)
    assert whole.shape == slide.shape == (2, 5, 50, 70)
    assert torch.allclose(whole, slide, atol=1e-5)
    model = tiny_upernet().eval()
    pred = predict_segmentation(model, torch.randn(1, 3, 40, 72), mode="slide", crop_size=32)
    assert pred.shape == (1, 40, 72) and pred.max() < 4
    with pytest.raises(ValueError, match="mode"):
        predict_segmentation(model, x, mode="tiles")


def test_mask_folder_layout_and_transforms(tmp_path):
    root = write_shapes_folder(tmp_path / "shapes", length=3, size=(40, 48), seed=3)
    ds = SegmentationFolder(root, transform=SegTransform(train=True, crop_size=32))
    assert ds.num_classes == 4 and ds.class_names == ["background", "circle", "square", "triangle"]
    img, mask = ds[0]
    assert img.shape == (3, 32, 32) and mask.shape == (32, 32) and mask.dtype == torch.long
    raw = SegmentationFolder(root)
    image, m = raw[1]
    scene = make_scene(3 * 100_003 + 1, (40, 48))
    assert np.array_equal(m, scene["mask"]) and np.array_equal(image, scene["image"])
    val = SegmentationFolder(root, transform=SegTransform(train=False))
    x, y = pad_collate([val[0], (torch.zeros(3, 20, 20), torch.zeros(20, 20, dtype=torch.long))], size_divisor=32)
    assert x.shape == (2, 3, 64, 64) and (y[1, 20:, :] == 255).all() and (y[0, :40, :48] < 4).all()


def _write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_bad_masks_give_clear_errors(tmp_path):
    img = np.zeros((16, 20, 3), dtype=np.uint8)
    _write(tmp_path / "a" / "images" / "x.png", img)
    _write(tmp_path / "a" / "masks" / "x.png", np.full((16, 20), 7, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"x\.png has values \[7\] outside the class range 0\.\.2"):
        SegmentationFolder(tmp_path / "a", num_classes=3)[0]
    _write(tmp_path / "b" / "images" / "y.png", img)
    _write(tmp_path / "b" / "masks" / "y.png", np.zeros((16, 21), dtype=np.uint8))
    with pytest.raises(ValueError, match="16x20.*16x21"):
        SegmentationFolder(tmp_path / "b", num_classes=3)
    _write(tmp_path / "c" / "images" / "z.png", img)
    (tmp_path / "c" / "masks").mkdir()
    with pytest.raises(FileNotFoundError, match="have no mask.*z.png"):
        find_pairs(tmp_path / "c")
    _write(tmp_path / "d" / "images" / "w.png", img)
    _write(tmp_path / "d" / "masks" / "w.png", img)
    with pytest.raises(ValueError, match="single-channel"):
        SegmentationFolder(tmp_path / "d", num_classes=3)
    check_mask(np.array([0, 1, 255]), num_classes=2)  # ignore_index is allowed
    with pytest.raises(FileNotFoundError, match="images/ and masks/"):
        find_pairs(tmp_path)


def test_training_steps_reduce_the_loss():
    torch.manual_seed(0)
    data = ShapesSegmentation(4, (48, 48), seed=1, transform=SegTransform(train=False))
    x = torch.stack([data[i][0] for i in range(4)])
    y = torch.stack([data[i][1] for i in range(4)])
    model = tiny_upernet().train()
    opt = build_dense_optimizer(model, lr=5e-3, layer_decay=0.9, weight_decay=0.0)
    loss_fn = segmentation_loss()
    losses = []
    for _ in range(8):
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert (losses[-1] + losses[-2]) / 2 < 0.8 * losses[0], losses


def test_train_command_on_a_mask_folder(tmp_path):
    from unireplknet.cli import main

    root = write_shapes_folder(tmp_path / "data", length=6, size=(48, 48))
    assert main([
        "train", "--task", "segmentation", "--data", str(root), "--output", str(tmp_path / "run"), "--model", "custom", "--model-args", json.dumps(TINY),
        "--crop-size", "32", "--seg-channels", "16", "--aux-channels", "8", "--epochs", "1", "--batch-size", "2",
        "--num-workers", "0", "--device", "cpu", "--val-split", "0.34", "--layer-decay", "0.9",
    ]) == 0
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["best"]["metric"] == "mIoU" and 0 <= summary["best"]["value"] <= 100
    assert summary["deploy_max_abs_diff"] < 1e-3
    assert (run / "predictions.png").stat().st_size > 1000 and (run / "deploy.safetensors").is_file()
    assert "val_mIoU" in (run / "metrics.csv").read_text()


def test_segmentation_flags_fit_the_train_command():
    from unireplknet.cli import train

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    train.register(sub)
    add_segmentation_args(sub.choices["train"])  # what `--task segmentation` wiring does; idempotent
    add_segmentation_args(sub.choices["train"])
    args = parser.parse_args(["train", "--data", "d", "--crop-size", "64", "--layer-decay", "0.8", "--output", "r",
                              "--model-args", '{"depths": [1, 1, 2, 1]}', "--val-split", "0.2"])
    cfg = resolve_segmentation_config(args)
    assert cfg["crop_size"] == 64 and cfg["layer_decay"] == 0.8 and cfg["model_args"] == {"depths": [1, 1, 2, 1]}
    assert cfg["metric"] == "mIoU" and cfg["lr"] == 1e-4 and cfg["output"] == "r" and cfg["val_fraction"] == 0.2
    demo = resolve_segmentation_config(parser.parse_args(["train"]))
    assert demo["model"] == "unireplknet_a" and demo["crop_size"] == 128


def test_smp_upernet_with_timm_encoder_loads_mm_checkpoint(tmp_path):
    from unireplknet.weights import to_official

    torch.manual_seed(0)
    net = create_smp_upernet("unireplknet_a", num_classes=3, decoder_channels=16, **TINY).eval()
    assert net(torch.randn(1, 3, 64, 64)).shape == (1, 3, 64, 64)
    src = tiny_upernet(3)
    path = tmp_path / "mm.pth"
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in to_official(src.backbone.state_dict()).items()}}, path)
    net2 = create_smp_upernet("unireplknet_a", num_classes=3, decoder_channels=16, pretrained=str(path), **TINY)
    w = net2.encoder.model.stages[2][0].dwconv.lk_origin.weight
    assert torch.equal(w, src.backbone.stages[2][0].dwconv.lk_origin.weight)
    assert isinstance(src, UPerNet)


def test_train_command_split_folders_evaluate_the_test_split_once(tmp_path):
    """DATA/{train,test}/: validation carved from train, the test split evaluated at the end (summary.json)."""
    from unireplknet.cli import main

    write_shapes_folder(tmp_path / "data" / "train", length=6, size=(48, 48))
    write_shapes_folder(tmp_path / "data" / "test", length=2, size=(48, 48), seed=7)
    assert main([
        "train", "--task", "segmentation", "--data", str(tmp_path / "data"), "-o", str(tmp_path / "run"),
        "--model", "custom", "--model-args", json.dumps(TINY), "--crop-size", "32", "--seg-channels", "16",
        "--aux-channels", "8", "--epochs", "1", "--batch-size", "2", "--num-workers", "0", "--device", "cpu",
        "--val-split", "0.34", "--no-deploy",
    ]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert set(summary["test"]) == {"test"} and "mIoU" in summary["test"]["test"]
    assert "mIoU" in summary["evaluation"]["val"]
