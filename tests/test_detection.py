"""Detection: UniRepLKNet + torchvision FPN, Faster/Mask R-CNN training steps, targets, re-parameterization."""
import pytest
import torch

from unireplknet.tasks.detection_data import check_detection_target, detection_collate
from unireplknet.tasks.synthetic_dense import ShapesDetection, make_scene
from unireplknet.model import reparameterize_blocks
from unireplknet.tasks.detection import UniRepLKNetFPN, average_precision, create_faster_rcnn, create_fpn_backbone, create_mask_rcnn

TINY = dict(depths=(1, 1, 2, 1), dims=(16, 32, 64, 128), kernel_sizes=((3,), (7,), (7, 3), (7,)))
SMALL = dict(min_size=64, max_size=64, anchor_sizes=(8, 16, 32, 64, 128), out_channels=32, model_args=TINY,
             rpn_pre_nms_top_n_train=200, rpn_post_nms_top_n_train=100, rpn_pre_nms_top_n_test=100,
             rpn_post_nms_top_n_test=50, rpn_batch_size_per_image=64, box_batch_size_per_image=64,
             representation_size=128)


def test_fpn_wrapper_levels_and_out_channels():
    fpn = create_fpn_backbone("custom", out_channels=24, model_args=TINY)
    assert isinstance(fpn, UniRepLKNetFPN) and fpn.out_channels == 24
    out = fpn(torch.randn(2, 3, 64, 96))
    assert list(out) == ["0", "1", "2", "3", "pool"]
    assert [tuple(v.shape[-2:]) for v in out.values()] == [(16, 24), (8, 12), (4, 6), (2, 3), (1, 2)]
    assert all(v.shape[:2] == (2, 24) for v in out.values())


def test_synthetic_scene_boxes_match_masks():
    s = make_scene(5, (64, 80), max_shapes=3)
    assert s["image"].shape == (64, 80, 3) and s["mask"].shape == (64, 80)
    assert len(s["boxes"]) == len(s["labels"]) == len(s["instance_masks"]) >= 1
    for box, m, label in zip(s["boxes"], s["instance_masks"], s["labels"]):
        ys, xs = m.nonzero()
        assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        assert (s["mask"][m] == label).all()


def _losses_down(model, images, targets, steps=6, lr=2e-3):
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    totals = []
    for _ in range(steps):
        losses = model(images, targets)
        loss = sum(losses.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        totals.append(loss.item())
    return totals, losses


def test_faster_rcnn_training_steps_reduce_the_loss():
    torch.manual_seed(0)
    images, targets = detection_collate([ShapesDetection(4, (64, 64), seed=2)[i] for i in range(4)])
    model = create_faster_rcnn("custom", num_classes=4, **SMALL)
    totals, losses = _losses_down(model, images, targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    assert (totals[-1] + totals[-2]) / 2 < 0.8 * totals[0], totals
    model.eval()
    with torch.no_grad():
        det = model(images[:1])[0]
    assert set(det) == {"boxes", "labels", "scores"}


def test_mask_rcnn_step_and_images_without_annotations():
    torch.manual_seed(0)
    data = ShapesDetection(2, (64, 64), seed=4)
    img0, t0 = data[0]
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
             "masks": torch.zeros(0, 64, 64, dtype=torch.uint8)}
    check_detection_target(empty, (64, 64), num_classes=4)  # documented: a negative image is valid
    model = create_mask_rcnn("custom", num_classes=4, **SMALL).train()
    losses = model([img0, data[1][0]], [t0, empty])
    assert "loss_mask" in losses and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    model.eval()
    with torch.no_grad():
        assert "masks" in model([img0])[0]


def test_bad_detection_targets_raise():
    ok = {"boxes": torch.tensor([[1.0, 2.0, 10.0, 12.0]]), "labels": torch.tensor([1])}
    check_detection_target(ok, (20, 20), num_classes=4)
    with pytest.raises(ValueError, match="degenerate"):
        check_detection_target({"boxes": torch.tensor([[5.0, 5.0, 5.0, 9.0]]), "labels": torch.tensor([1])}, (20, 20), 4)
    with pytest.raises(ValueError, match=r"labels \[4\] outside 1\.\.3"):
        check_detection_target({"boxes": ok["boxes"], "labels": torch.tensor([4])}, (20, 20), 4, where="sample 3")
    with pytest.raises(ValueError, match="outside the 10x10"):
        check_detection_target(ok, (10, 10), 4)
    with pytest.raises(ValueError, match="N x 4"):
        check_detection_target({"boxes": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)}, (10, 10), 4)


def test_reparameterized_detector_gives_equal_outputs():
    torch.manual_seed(0)
    model = create_faster_rcnn("custom", num_classes=4, **dict(SMALL, model_args=dict(TINY, layer_scale_init_value=1.0)))
    model.train()
    images = [torch.rand(3, 64, 64) for _ in range(2)]
    with torch.no_grad():  # populate BatchNorm statistics
        for _ in range(3):
            model.backbone(torch.randn(2, 3, 64, 64) * 2)
    model.eval()
    x = torch.randn(1, 3, 64, 64)
    head = {k: v.clone() for k, v in model.roi_heads.state_dict().items()}
    with torch.no_grad():
        ref_feats = model.backbone(x)
        ref_det = model(images)
    assert reparameterize_blocks(model) == 5
    with torch.no_grad():
        feats = model.backbone(x)
        det = model(images)
    for k in ref_feats:
        assert torch.allclose(feats[k], ref_feats[k], atol=1e-4, rtol=1e-4), k
    assert all(torch.equal(v, model.roi_heads.state_dict()[k]) for k, v in head.items())
    for a, b in zip(ref_det, det):
        n = min(len(a["scores"]), len(b["scores"]), 10)
        assert torch.allclose(a["scores"][:n], b["scores"][:n], atol=1e-3)


def test_average_precision_by_hand():
    gt = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]]), "labels": torch.tensor([1, 1])},
          {"boxes": torch.tensor([[0.0, 0, 10, 10]]), "labels": torch.tensor([2])}]
    det = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 31]]),
            "labels": torch.tensor([1, 1, 1]), "scores": torch.tensor([0.9, 0.8, 0.7])},
           {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64), "scores": torch.zeros(0)}]
    res = average_precision(det, gt, num_classes=4)
    # class 1: hit, miss, hit -> precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> AP = 0.5 * 1 + 0.5 * 2/3
    assert res["AP_1"] == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert res["AP_2"] == 0.0 and "AP_3" not in res
    assert res["mAP"] == pytest.approx((0.5 + 0.5 * 2 / 3) / 2)
