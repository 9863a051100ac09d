"""``unireplknet train --task detection``: torchvision Faster R-CNN on UniRepLKNet + FPN with the generic engine.

:func:`add_detection_args` adds the flags (skipping any the ``train`` parser already has; stdlib only, so
``train --help`` stays fast) and :func:`run_detection_training` trains
:func:`unireplknet.tasks.detection.create_faster_rcnn` with :class:`unireplknet.engine.Trainer`: the loss is
the sum of torchvision's loss dict, the model is selected by validation ``map50`` (COCO-style AP at IoU 0.5,
:mod:`unireplknet.tasks.detection_metrics`), and the selected model is evaluated once on every test split.

Data (``--data``):

* COCO-style JSON (``images``, ``annotations`` with ``bbox`` = x, y, w, h in pixels, ``categories``):
  ``DIR/annotations.json`` (images under ``DIR`` or ``--image-root``), a JSON file, or split folders
  ``DIR/{train,val*,test*}/`` each with its images and ``annotations.json``;
* a CSV of boxes with a header ``image,x1,y1,x2,y2,label[,split]`` (one row per box; a row with the box
  and label empty lists an image without boxes; paths relative to the CSV's folder or ``--image-root``):
  ``DIR/annotations.csv``, a CSV file, or one per split folder.

Split rules are the shared ones (:func:`unireplknet.modalities.base.split_kind`, ``carve_val``): validation is
the ``val*`` split (or ``--val-data``), else ``--val-fraction`` (0.1) of the training images, seeded; ``test*``
splits are never trained on nor used for selection. Images without boxes train as negatives; unreadable
images are skipped with one warning (``--no-skip-bad-files``: an error). Without ``--data`` a tiny detector
trains on the built-in shapes-on-photos demo (:mod:`unireplknet.tasks.synthetic_dense`).
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

__all__ = [
    "DET_DEFAULTS", "DEMO_DEFAULTS", "DetectionSplits", "add_detection_args", "resolve_detection_config",
    "load_detection_splits", "read_coco", "read_box_csv", "run_detection_training", "format_detection_summary",
]

_logger = logging.getLogger(__name__)

#: one image: its file, boxes (x1, y1, x2, y2 pixels) and class names of the boxes.
RawSample = Tuple[Path, List[List[float]], List[str]]

#: defaults of a detection run on your data (engine keys included): torchvision's Faster R-CNN sizes,
#: the original's downstream optimizer (AdamW 1e-4, weight decay 0.05, layer-wise lr decay).
DET_DEFAULTS: Dict[str, Any] = {
    "model": "unireplknet_t", "model_args": None, "pretrained": None, "image_root": None, "val_image_root": None,
    "val_fraction": 0.1, "min_size": 800, "max_size": 1333, "anchor_sizes": None, "fpn_channels": 256,
    "representation_size": 1024, "frozen_stages": 0, "num_layers": 12, "score_thresh": 0.05,
    "detections_per_img": 100, "hflip": 0.5, "detector_kwargs": None, "demo_size": 64, "demo_image_size": 128,
    "skip_bad_files": True, "output": "runs/detection",
    "epochs": 12, "batch_size": 2, "lr": 1e-4, "min_lr": 0.0, "weight_decay": 0.05, "layer_decay": 0.9,
    "warmup_epochs": 1, "drop_path": 0.1, "metric": "map50", "metric_mode": "max", "num_workers": 2,
}

#: the tiny backbone of the demo (5 blocks, 0.5M parameters).
DEMO_MODEL_ARGS: Dict[str, Any] = {"depths": [1, 1, 2, 1], "dims": [16, 32, 64, 128],
                                   "kernel_sizes": [[3], [7], [7, 3], [7]]}

#: applied when no ``--data`` is given: a tiny detector on 128 px shapes scenes, trained from scratch in
#: about a minute on two CPU cores.
DEMO_DEFAULTS: Dict[str, Any] = {
    "model": "custom", "model_args": DEMO_MODEL_ARGS, "min_size": 128, "max_size": 128,
    "anchor_sizes": [8, 16, 32, 64, 128], "fpn_channels": 64, "representation_size": 128, "hflip": 0.0,
    "detector_kwargs": {"rpn_pre_nms_top_n_train": 300, "rpn_post_nms_top_n_train": 150,
                        "rpn_pre_nms_top_n_test": 150, "rpn_post_nms_top_n_test": 50,
                        "rpn_batch_size_per_image": 64, "box_batch_size_per_image": 32},
    "demo_size": 40, "epochs": 2, "batch_size": 4, "lr": 1e-3, "layer_decay": None, "warmup_epochs": 0,
    "drop_path": 0.0, "output": "runs/demo-detection",
}

_FLAGS = [
    (("--data",), dict(help="COCO-style annotations.json / CSV of boxes, or a folder with one (or with "
                            "train/ val/ test*/ folders holding one each); omit for the built-in shapes demo")),
    (("--val-data",), dict(help="validation annotations (default: the val split, else --val-fraction of train)")),
    (("--image-root",), dict(help="folder the image paths of --data resolve under (default: the file's folder)")),
    (("--val-image-root",), dict(help="the same for --val-data")),
    (("--val-fraction",), dict(type=float, help="share of training images held out when there is no val split (0.1)")),
    (("--output",), dict(help="run directory")),
    (("--model",), dict(help="backbone variant (unireplknet_a..xl) or 'custom' with --model-args")),
    (("--model-args",), dict(type=json.loads, help="JSON dict for --model custom")),
    (("--pretrained",), dict(help="released tag or checkpoint path for the backbone")),
    (("--min-size",), dict(type=int, help="shorter side the detector resizes images to (800)")),
    (("--max-size",), dict(type=int, help="longest side limit of that resize (1333)")),
    (("--anchor-sizes",), dict(type=int, nargs=5, help="anchor size per FPN level (default 32 64 128 256 512)")),
    (("--fpn-channels",), dict(type=int, help="FPN width (256)")),
    (("--representation-size",), dict(type=int, help="box head width (1024)")),
    (("--frozen-stages",), dict(type=int, help="freeze the stem and the first N backbone stages")),
    (("--num-layers",), dict(type=int, help="layer-decay depth")),
    (("--score-thresh",), dict(type=float, help="minimum score of a kept detection (0.05)")),
    (("--detections-per-img",), dict(type=int, help="detections kept per image (100)")),
    (("--hflip",), dict(type=float, help="horizontal flip probability in training (0.5; demo 0)")),
    (("--demo-size",), dict(type=int, help="number of demo training scenes")),
    (("--demo-image-size",), dict(type=int, help="side of the demo scenes (px)")),
    (("--epochs",), dict(type=int)), (("--batch-size",), dict(type=int)), (("--lr",), dict(type=float)),
    (("--weight-decay",), dict(type=float)), (("--layer-decay",), dict(type=float)),
    (("--device",), dict()), (("--num-workers",), dict(type=int)), (("--seed",), dict(type=int)),
    (("--max-train-steps",), dict(type=int, help="stop each epoch after N updates (smoke tests)")),
    (("--resume",), dict(help="continue from a run's last.pt (or its directory)")),
    (("--skip-bad-files",), dict(action=argparse.BooleanOptionalAction,
                                 help="skip unreadable images with one warning (default)")),
]


def add_detection_args(parser: argparse.ArgumentParser) -> None:
    """Add the detection flags (all ``default=None``), skipping options the parser already defines."""
    existing = set(getattr(parser, "_option_string_actions", {}))
    for names, kw in _FLAGS:
        if any(n in existing for n in names):
            continue
        parser.add_argument(*names, default=None, **kw)


def detection_auto(cfg: Dict[str, Any]) -> Dict[str, Tuple[Any, str]]:
    """``auto`` for data on a CPU: torchvision's 800 px / T defaults take minutes per image batch there."""
    device = str(cfg.get("device", "auto"))
    if device.startswith("cuda"):
        return {}
    if device == "auto":
        import torch

        if torch.cuda.is_available():
            return {}
    why = "a CPU run (800 px images and the T backbone take minutes per batch there)"
    return {k: (v, why) for k, v in (("model", "unireplknet_a"), ("min_size", 512), ("max_size", 853),
                                      ("fpn_channels", 128), ("representation_size", 256))}


def resolve_detection_config(args: argparse.Namespace) -> Dict[str, Any]:
    """engine defaults < ``DET_DEFAULTS`` < ``DEMO_DEFAULTS`` (no data) < auto (CPU) < ``--config`` YAML < flags;
    on ``--resume`` the checkpoint's config < YAML < flags (:func:`unireplknet.engine.resolve.resolve_run_config`)."""
    from ..engine.config import DEFAULTS
    from ..errors import ConfigError
    from ..engine.resolve import CLASSIFICATION_ONLY_FLAGS, resolve_run_config

    if getattr(args, "data_root", None) is not None and getattr(args, "image_root", None) is None:
        args.image_root = args.data_root  # the train command's name for the same thing
    known = set(DEFAULTS) | set(DET_DEFAULTS) | {"data", "val_data", "auto"}
    layers = resolve_run_config(args, task="detection", known=known,
                                base={**DEFAULTS, **DET_DEFAULTS, "data": None, "val_data": None, "auto": True},
                                task_defaults={}, demo_defaults=DEMO_DEFAULTS, auto=detection_auto,
                                ignored=CLASSIFICATION_ONLY_FLAGS)
    cfg = layers.config
    cfg["task"] = "detection"
    model_args = cfg.get("model_args")
    if isinstance(model_args, str):
        try:
            cfg["model_args"] = json.loads(model_args)
        except json.JSONDecodeError as e:
            raise ConfigError(f"--model-args is not valid JSON: {e}") from e
    if cfg["model"] != "custom" and not layers.set_by_user("model_args") and cfg.get("model_args") == DEMO_MODEL_ARGS:
        cfg["model_args"] = None  # the demo's tiny architecture is only for its own 'custom' model
    if cfg.get("layer_decay") is not None and float(cfg["layer_decay"]) >= 1.0:
        cfg["layer_decay"] = None
    for key in ("min_size", "max_size", "batch_size", "epochs"):
        if int(cfg[key]) < 1:
            raise ConfigError(f"{key} must be >= 1, got {cfg[key]}")
    if not 0.0 <= float(cfg["hflip"]) <= 1.0:
        raise ConfigError(f"hflip must be in [0, 1], got {cfg['hflip']}")
    return cfg


# ----------------------------------------------------------------------------------------------- data
class DetectionSplits:
    """Images with boxes per split (``train``, ``val``, then each test split), with the class names.

    Samples are ``(path, boxes, labels)``: boxes ``x1, y1, x2, y2`` in pixels, labels ``1..len(classes)``.
    """

    def __init__(self, layout: str, classes: List[str], train: list, val: list, tests: Dict[str, list],
                 sources: Dict[str, str]) -> None:
        self.layout, self.classes, self.train, self.val, self.tests, self.sources = layout, classes, train, val, tests, sources

    def named(self) -> List[Tuple[str, list]]:
        """``[(split name, samples)]``: train, val, then the test splits."""
        return [("train", self.train), ("val", self.val), *self.tests.items()]

    @property
    def num_classes(self) -> int:
        """Classes including torchvision's background (label 0)."""
        return len(self.classes) + 1


def _resolve_image(name: str, roots: Sequence[Path]) -> Path:
    """The first existing ``root/name`` or ``root/images/name``; else ``roots[0]/name`` (reported as unreadable).
    Windows separators (``sub\\x.jpg``, as some annotation tools write them) are read as ``/``."""
    p = Path(name.replace("\\", "/")) if "\\" in name and not Path(name).exists() else Path(name)
    if p.is_absolute():
        return p
    for root in roots:
        for cand in (root / p, root / "images" / p):
            if cand.is_file():
                return cand
    return roots[0] / p


def read_coco(path: Path, image_root: Optional[Path] = None) -> Tuple[List[RawSample], List[str], int]:
    """Read a COCO-style detection JSON: ``(samples, category names ordered by id, dropped boxes)``.

    Every listed image is a sample (those without annotations are negatives); ``iscrowd`` regions and
    boxes without area are dropped (counted). Raises :class:`~unireplknet.errors.DataError` for a file
    that is not such a JSON, an annotation naming an image or category that is not listed, or a bad bbox.
    """
    from ..errors import DataError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"annotations file not found: {path}")
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: not a readable JSON file ({e})") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise DataError(f"{path}: a COCO-style file needs 'images', 'annotations' and 'categories' lists")
    cats = doc.get("categories") or []
    try:
        cat_names = {int(c["id"]): str(c.get("name", c["id"])) for c in cats}
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"{path}: every category needs an 'id' (and a 'name'): {e}") from e
    names = [cat_names[i] for i in sorted(cat_names)]
    if len(set(names)) != len(names):
        raise DataError(f"{path}: category names are not unique: {names}")
    roots = [Path(image_root)] if image_root is not None else []
    roots.append(path.parent)
    images: Dict[Any, RawSample] = {}
    for im in doc["images"]:
        try:
            images[im["id"]] = (_resolve_image(str(im["file_name"]), roots), [], [])
        except (KeyError, TypeError) as e:
            raise DataError(f"{path}: every image needs 'id' and 'file_name', got {im!r}") from e
    dropped = 0
    for k, ann in enumerate(doc.get("annotations") or []):
        where = f"{path}: annotation {ann.get('id', k) if isinstance(ann, dict) else k}"
        if not isinstance(ann, dict) or "image_id" not in ann or "bbox" not in ann or "category_id" not in ann:
            raise DataError(f"{where} needs 'image_id', 'bbox' and 'category_id'")
        if ann["image_id"] not in images:
            raise DataError(f"{where} names image_id {ann['image_id']!r}, which is not in 'images'")
        try:
            cat = int(ann["category_id"])
        except (TypeError, ValueError) as e:
            raise DataError(f"{where}: bad category_id {ann['category_id']!r}") from e
        if cat not in cat_names:
            raise DataError(f"{where} names category_id {cat}, which is not in 'categories'")
        try:
            x, y, w, h = (float(v) for v in ann["bbox"])
        except (TypeError, ValueError) as e:
            raise DataError(f"{where}: bbox must be [x, y, width, height], got {ann['bbox']!r}") from e
        if not all(math.isfinite(v) for v in (x, y, w, h)):
            raise DataError(f"{where}: bbox {ann['bbox']!r} is not finite")
        if ann.get("iscrowd") or w <= 0 or h <= 0:
            dropped += 1
            continue
        _, boxes, labels = images[ann["image_id"]]
        boxes.append([x, y, x + w, y + h])
        labels.append(cat_names[cat])
    return list(images.values()), names, dropped


_CSV_COLUMNS = ("image", "x1", "y1", "x2", "y2", "label")


def read_box_csv(path: Path, image_root: Optional[Path] = None) -> Dict[str, List[RawSample]]:
    """Read a CSV of boxes (header ``image,x1,y1,x2,y2,label[,split]``): ``{split name: samples}``.

    Rows of one image are merged; a row whose box and label are empty lists an image without boxes.
    Rows without a ``split`` value are training rows. Raises :class:`~unireplknet.errors.DataError`
    naming the line for a missing column, a bad number or a partial row.
    """
    from ..errors import DataError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"annotations file not found: {path}")
    roots = [Path(image_root)] if image_root is not None else []
    roots.append(path.parent)
    out: Dict[str, Dict[Path, RawSample]] = {}
    where_of: Dict[Path, str] = {}
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [h.strip().lower() for h in (reader.fieldnames or [])]
            missing = [c for c in _CSV_COLUMNS if c not in header]
            if missing:
                raise DataError(f"{path}: the header needs columns {','.join(_CSV_COLUMNS)}[,split]; "
                                f"missing {', '.join(missing)} (got {','.join(header) or 'no header'})")
            reader.fieldnames = header
            for line, row in enumerate(reader, start=2):
                row = {k: (v or "").strip() for k, v in row.items() if k is not None}
                if not any(row.values()):
                    continue
                if not row["image"]:
                    raise DataError(f"{path}:{line}: empty image path")
                split = row.get("split") or "train"
                file = _resolve_image(row["image"], roots)
                if where_of.setdefault(file, split) != split:
                    raise DataError(f"{path}:{line}: {row['image']} is in splits {where_of[file]!r} and {split!r}")
                sample = out.setdefault(split, {}).setdefault(file, (file, [], []))
                fields = [row[c] for c in ("x1", "y1", "x2", "y2", "label")]
                if not any(fields):
                    continue  # an image without boxes
                if not all(fields):
                    raise DataError(f"{path}:{line}: give all of x1,y1,x2,y2,label (or none, for an image without boxes)")
                try:
                    box = [float(v) for v in fields[:4]]
                except ValueError as e:
                    raise DataError(f"{path}:{line}: box coordinates must be numbers ({e})") from e
                if not all(math.isfinite(v) for v in box) or box[2] <= box[0] or box[3] <= box[1]:
                    raise DataError(f"{path}:{line}: box {box} needs x2 > x1 and y2 > y1 (pixels)")
                sample[1].append(box)
                sample[2].append(fields[4])
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: not a readable CSV file ({e})") from e
    if not out:
        raise DataError(f"{path}: no rows")
    return {split: list(samples.values()) for split, samples in out.items()}


def _natural_key(s: str) -> tuple:
    return (0, int(s), "") if s.lstrip("-").isdigit() else (1, 0, s)


def _annotation_file(folder: Path) -> Optional[Path]:
    for name in ("annotations.json", "annotations.csv"):
        if (folder / name).is_file():
            return folder / name
    return None


def _read_any(path: Path, image_root: Optional[Path]) -> Tuple[Dict[str, List[RawSample]], Optional[List[str]]]:
    """One annotations file as ``({split: samples}, category names or None)``."""
    from ..errors import DataError

    if path.suffix.lower() == ".json":
        samples, names, dropped = read_coco(path, image_root)
        if dropped:
            _logger.warning("%s: dropped %d crowd or zero-area box(es)", path, dropped)
        return {"train": samples}, names
    if path.suffix.lower() == ".csv":
        return read_box_csv(path, image_root), None
    raise DataError(f"{path}: annotations must be a COCO-style .json or a .csv of boxes")


def load_detection_splits(data: str, val_data: Optional[str] = None, image_root: Optional[str] = None,
                          val_image_root: Optional[str] = None, val_fraction: float = 0.1,
                          seed: int = 0) -> DetectionSplits:
    """Read ``--data`` (and ``--val-data``) into :class:`DetectionSplits` following the shared split rules."""
    from ..errors import DataError
    from ..modalities.base import carve_val, split_kind

    root = Path(data)
    if not root.exists():
        raise DataError(f"--data not found: {root}")
    img_root = Path(image_root) if image_root else None
    raw: Dict[str, List[RawSample]] = {}
    sources: Dict[str, str] = {}
    categories: Optional[List[str]] = None
    layout = "file"
    if root.is_dir():
        split_dirs = [p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith((".", "_"))
                      and split_kind(p.name) is not None]
        if split_dirs:
            layout = "split folders"
            kinds = [split_kind(p.name) for p in split_dirs]
            for kind in ("train", "val"):
                if kinds.count(kind) > 1:
                    raise DataError(f"{root}: more than one {kind} folder: "
                                    f"{', '.join(p.name for p, k in zip(split_dirs, kinds) if k == kind)}")
            if "train" not in kinds:
                raise DataError(f"{root}: split folders {', '.join(p.name for p in split_dirs)} but no train/")
            for folder, kind in zip(split_dirs, kinds):
                ann = _annotation_file(folder)
                if ann is None:
                    raise DataError(f"{folder}: no annotations.json or annotations.csv in this split folder")
                per_split, names = _read_any(ann, None)
                samples = [s for v in per_split.values() for s in v]
                name = kind if kind in ("train", "val") else folder.name
                raw[name] = samples
                sources[name] = str(ann)
                if kind == "train":
                    categories = names
        else:
            ann = _annotation_file(root)
            if ann is None:
                raise DataError(f"{root}: no annotations.json or annotations.csv, and no train/ split folder "
                                f"(see docs/dense.md, 'Training detection')")
            root = ann
    if not raw:
        per_split, categories = _read_any(root, img_root)
        for split, samples in per_split.items():
            kind = split_kind(split)
            if kind is None:
                raise DataError(f"{root}: split {split!r} is not train, val* or test*")
            name = kind if kind in ("train", "val") else split.strip()
            raw.setdefault(name, []).extend(samples)
            sources[name] = str(root)
    if val_data is not None:
        vpath = Path(val_data)
        if vpath.is_dir():
            ann = _annotation_file(vpath)
            if ann is None:
                raise DataError(f"--val-data {vpath}: no annotations.json or annotations.csv")
            vpath = ann
        per_split, _ = _read_any(vpath, Path(val_image_root) if val_image_root else None)
        raw["val"] = [s for v in per_split.values() for s in v]
        sources["val"] = str(vpath)
    if not raw.get("train"):
        raise DataError(f"{data}: no training images")
    if not raw.get("val"):
        if "val" in raw:
            raise DataError(f"{sources['val']}: the validation split has no images")
        items = [(p, ()) for p, _, _ in raw["train"]]
        if len(items) < 2:
            raise DataError(f"{data}: {len(items)} training image(s): need at least 2 to hold out a validation set")
        _kept, held = carve_val(items, float(val_fraction), int(seed))
        held_set = {p for p, _ in held}
        raw["val"] = [s for s in raw["train"] if s[0] in held_set]
        raw["train"] = [s for s in raw["train"] if s[0] not in held_set]
        sources["val"] = f"{len(held)} of the training images (--val-fraction {val_fraction}, seed {seed})"
        _logger.info("no validation split: holding out %d of %d training images", len(held), len(items))
    # classes: the training file's categories (COCO), else the training labels (CSV)
    if categories is None:
        categories = sorted({lab for _, _, labels in raw["train"] for lab in labels}, key=_natural_key)
    index = {name: i + 1 for i, name in enumerate(categories)}
    seen: Dict[Path, str] = {}
    out: Dict[str, list] = {}
    for name, samples in [("train", raw.pop("train")), ("val", raw.pop("val")), *sorted(raw.items())]:
        converted = []
        for path, boxes, labels in samples:
            key = path.resolve()
            if key in seen:
                raise DataError(f"{path} is in both the {seen[key]} and the {name} split: splits must be disjoint")
            seen[key] = name
            unknown = sorted({lab for lab in labels if lab not in index})
            if unknown:
                raise DataError(f"{path} ({name} split) has label(s) {unknown} that are not training classes "
                                f"{categories}")
            converted.append((path, boxes, [index[lab] for lab in labels]))
        out[name] = converted
    if not categories:
        raise DataError(f"{data}: the training split has no boxes (and no categories): nothing to detect")
    tests = {k: v for k, v in out.items() if k not in ("train", "val")}
    return DetectionSplits(layout, list(categories), out["train"], out["val"], tests, sources)


def _check_image(path: Path) -> None:
    """Decode ``path`` fully (raises on a missing, empty, truncated or foreign file)."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()


def _drop_bad_images(splits: DetectionSplits, skip_bad: bool) -> Dict[str, List[str]]:
    """Pre-scan every image (cached; :func:`unireplknet.modalities.base.prescan`); drop unreadable ones."""
    from ..modalities.base import Splits, prescan

    plan = Splits(layout=splits.layout, train=[(p, ()) for p, _, _ in splits.train],
                  val=[(p, ()) for p, _, _ in splits.val],
                  tests={k: [(p, ()) for p, _, _ in v] for k, v in splits.tests.items()})
    prescan(plan, _check_image, name="detection-image-decode", skip_bad=skip_bad)
    for (name, samples), (_, kept) in zip(splits.named(), plan.named()):
        ok = {p for p, _ in kept}
        samples[:] = [s for s in samples if s[0] in ok]
    return dict(plan.skipped)


def _save_split_lists(splits: DetectionSplits, run_dir: Path) -> Path:
    """``RUN/splits/<split>.csv`` (``image,boxes``): which images each split used."""
    out = run_dir / "splits"
    out.mkdir(parents=True, exist_ok=True)
    for name, samples in splits.named():
        with open(out / f"{name}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["image", "boxes"])
            for path, boxes, _ in samples:
                w.writerow([str(Path(path).resolve()), len(boxes)])
    return out


# ----------------------------------------------------------------------------------------------- model
def _build_model(cfg: Dict[str, Any], num_classes: int) -> Any:
    from .detection import DetectorWithTargets, create_faster_rcnn

    kwargs = dict(cfg.get("detector_kwargs") or {})
    kwargs.setdefault("box_score_thresh", float(cfg["score_thresh"]))
    kwargs.setdefault("box_detections_per_img", int(cfg["detections_per_img"]))
    anchors = cfg.get("anchor_sizes")
    detector = create_faster_rcnn(
        cfg["model"], num_classes=num_classes, pretrained=cfg.get("pretrained"), min_size=int(cfg["min_size"]),
        max_size=int(cfg["max_size"]), anchor_sizes=list(anchors) if anchors else None,
        out_channels=int(cfg["fpn_channels"]), frozen_stages=int(cfg["frozen_stages"]),
        model_args=cfg.get("model_args"), backbone_kwargs={"drop_path_rate": float(cfg["drop_path"])},
        representation_size=int(cfg["representation_size"]), **kwargs,
    )
    return DetectorWithTargets(detector)


def detection_loss(output: Dict[str, Any], _targets: Any) -> Any:
    """The engine's loss: the sum of torchvision's loss dict (classifier, box regression, objectness, RPN box)."""
    return sum(output.values())


def make_evaluate_fn(num_classes: int) -> Any:
    """An engine ``evaluate_fn``: detections on the loader, scored by :func:`~.detection_metrics.detection_map`."""
    import torch

    from .detection_metrics import detection_map

    @torch.no_grad()
    def evaluate(model: Any, loader: Any, ctx: Any) -> Dict[str, float]:
        dets: List[Dict[str, Any]] = []
        targets: List[Dict[str, Any]] = []
        for (images, _), tgts in loader:
            with ctx.autocast():
                out = model((ctx.to_device(list(images)), None))
            dets += [{k: v.detach().float().cpu() for k, v in o.items()} for o in out]
            targets += tgts
        res = detection_map(dets, targets, num_classes)
        return {"map50": res["map50"], "map75": res["map75"], "map": res["map"], "n": float(len(targets))}

    return evaluate


# ----------------------------------------------------------------------------------------------- run
def _datasets(cfg: Dict[str, Any]) -> Tuple[Any, Any, Dict[str, Any], List[str], Optional[DetectionSplits]]:
    """``(train, val, tests, class names without background, splits or None for the demo)``."""
    from ..modalities.base import NamedFileErrors
    from .detection_data import BoxesOnly, DetectionFiles
    from .synthetic_dense import SHAPE_CLASSES, ShapesDetection

    if cfg.get("data") is None:
        size = (int(cfg["demo_image_size"]),) * 2
        n = int(cfg["demo_size"])
        seed = int(cfg["seed"])
        train = BoxesOnly(ShapesDetection(n, size, seed=seed))
        n_eval = max(4, n // 4)
        val = BoxesOnly(ShapesDetection(n_eval, size, seed=seed + 1))
        test = BoxesOnly(ShapesDetection(n_eval, size, seed=seed + 2))
        return train, val, {"test": test}, list(SHAPE_CLASSES[1:]), None
    splits = load_detection_splits(cfg["data"], cfg.get("val_data"), cfg.get("image_root"), cfg.get("val_image_root"),
                                   float(cfg["val_fraction"]), int(cfg["seed"]))
    skipped = _drop_bad_images(splits, bool(cfg.get("skip_bad_files", True)))
    if skipped:
        cfg["skipped_files"] = {k: len(v) for k, v in skipped.items()}

    def wrap(samples: list, hflip: float) -> Any:
        ds = DetectionFiles(samples, hflip=hflip)
        return NamedFileErrors(ds, ds.path_of)

    train = wrap(splits.train, float(cfg["hflip"]))
    val = wrap(splits.val, 0.0)
    tests = {k: wrap(v, 0.0) for k, v in splits.tests.items()}
    return train, val, tests, list(splits.classes), splits


def _plan_lines(cfg: Dict[str, Any], train: Any, val: Any, tests: Dict[str, Any],
                splits: Optional[DetectionSplits]) -> List[str]:
    src = splits.sources if splits is not None else {}
    lines = [f"data: {cfg.get('data') or 'built-in shapes demo'}"]
    lines.append(f"  train {len(train):>7} images  training ({src.get('train', 'synthetic')})")
    lines.append(f"  val   {len(val):>7} images  validation, selects the model ({src.get('val', 'synthetic')})")
    for name, ds in tests.items():
        lines.append(f"  {name:<5} {len(ds):>7} images  test: evaluated once at the end ({src.get(name, 'synthetic')})")
    if not tests:
        lines.append("  (no test split: only validation numbers will be reported)")
    return lines


def run_detection_training(args: argparse.Namespace) -> Dict[str, Any]:
    """Train Faster R-CNN as the parsed ``train --task detection`` arguments say; returns the summary
    (the CLI prints it with :func:`format_detection_summary`).

    Writes the engine's run files (``last.pt``, ``best.pt``, ``metrics.csv``, ``summary.json`` with the final
    ``evaluation``/``test`` results), ``model.json``, ``config.yaml``, ``splits/*.csv`` and ``predictions.png``.
    """
    return train_detection(args)


def train_detection(args: argparse.Namespace) -> Dict[str, Any]:
    """The run behind :func:`run_detection_training`; returns the summary dict (also in ``RUN/summary.json``)."""
    import copy

    import torch

    from .. import engine
    from ..engine.distributed import DistInfo
    from ..engine.rundir import RunDir, check_writable, clean_temp_files, resolve_resume_dir, set_aside_previous_run
    from ..errors import ConfigError
    from .dense_utils import build_dense_optimizer
    from .detection_data import trainer_collate

    if getattr(args, "resume", None):
        ckpt_path, out = resolve_resume_dir(args.resume, getattr(args, "output", None))
        args.resume = str(ckpt_path)
    cfg = resolve_detection_config(args)
    if getattr(args, "resume", None):
        cfg["output"] = str(out)
    out = Path(cfg["output"])
    info = engine.distributed.init_from_env(str(cfg["device"]))
    if info.is_main and not getattr(args, "resume", None):
        set_aside_previous_run(out)  # a new run never mixes its files with an earlier run's
    lock = RunDir(out, force=bool(getattr(args, "force", None))) if info.is_main else None
    try:
        if lock is not None:
            check_writable(out)
            lock.acquire()
            clean_temp_files(out)
        train_set, val_set, tests, class_names, splits = _datasets(cfg)
        num_classes = len(class_names) + 1
        plan = _plan_lines(cfg, train_set, val_set, tests, splits)
        if info.is_main:
            for line in plan:
                _logger.info("%s", line)
            if splits is not None:
                _save_split_lists(splits, out)
        try:
            econf = engine.EngineConfig.from_dict({**cfg, "layer_decay": None})  # layer decay: our own groups
        except (TypeError, ValueError) as e:
            raise ConfigError(f"bad config: {e}") from e
        torch.manual_seed(econf.seed)
        model = _build_model(cfg, num_classes)
        train_loader = engine.make_loader(train_set, econf, train=True, collate_fn=trainer_collate, info=info)
        val_loader = engine.make_loader(val_set, econf, train=False, collate_fn=trainer_collate, info=info)
        record = {"task": "detection", "detector": "torchvision FasterRCNN (tasks.detection.create_faster_rcnn)",
                  "state_dict_prefix": "detector.", "config": cfg, "num_classes": num_classes,
                  "class_names": ["background", *class_names], "min_size": cfg["min_size"], "max_size": cfg["max_size"],
                  "plan": plan, "splits": {"train": len(train_set), "val": len(val_set),
                                           **{k: len(v) for k, v in tests.items()}}}
        full = json.loads(json.dumps(cfg, default=str))
        if info.is_main:
            (out / "model.json").write_text(json.dumps(record, indent=2, default=str))
            try:
                import yaml

                (out / "config.yaml").write_text(yaml.safe_dump(full, sort_keys=True))
            except ImportError:  # PyYAML is optional: model.json holds the same config
                pass
        n_params = sum(p.numel() for p in model.parameters())
        _logger.info("Faster R-CNN on %s: %.2fM parameters, %d classes + background; run dir %s",
                     cfg["model"], n_params / 1e6, len(class_names), out)
        evaluate_fn = make_evaluate_fn(num_classes)
        trainer = engine.Trainer(model, train_loader, val_loader, loss_fn=detection_loss, evaluate_fn=evaluate_fn,
                                 config=econf, run_dir=out, full_config=full)
        trainer.optimizer = build_dense_optimizer(
            trainer.model, trainer.lr, float(cfg["weight_decay"]), cfg.get("layer_decay"), int(cfg["num_layers"]),
            betas=tuple(econf.opt_betas), eps=econf.opt_eps)
        trainer.scheduler = engine.build_scheduler(trainer.optimizer, econf, trainer.updates_per_epoch, trainer.lr)
        summary = trainer.fit(resume=getattr(args, "resume", None))
        summary.update(plan=plan, splits=record["splits"], classes=class_names,
                       skipped_files=dict(cfg.get("skipped_files") or {}))
        if info.is_main:
            best = copy.deepcopy(trainer.model)
            best.load_state_dict(trainer.selected_model_weights())
            best.eval()
            results: Dict[str, Dict[str, float]] = {}
            for name, ds in [("val", val_set), *tests.items()]:
                loader = engine.make_loader(ds, econf, train=False, collate_fn=trainer_collate, info=DistInfo())
                results[name] = evaluate_fn(best, loader, trainer.ctx)
            summary["evaluation"] = results
            summary["test"] = {k: v for k, v in results.items() if k != "val"}
            _logger.info("final evaluation of the selected model: %s", "; ".join(
                f"{k}: " + " ".join(f"{m}={v:.4g}" for m, v in r.items()) for k, r in results.items()))
            png = _save_predictions(best, val_set, ["background", *class_names], out / "predictions.png", trainer.ctx)
            if png is not None:
                summary["files"]["predictions"] = str(png)
            summary["files"]["model_json"] = str(out / "model.json")
            with open(out / "summary.json", "w") as f:
                json.dump(summary, f, indent=2, default=str)
        else:
            summary["files"] = None
    finally:
        if lock is not None:
            lock.release()
        engine.distributed.cleanup()
    return summary


def _save_predictions(model: Any, dataset: Any, class_names: List[str], path: Path, ctx: Any) -> Optional[Path]:
    """``predictions.png``: the first validation images with predicted (coloured) and true (white) boxes."""
    import torch

    from ..errors import MissingExtraError
    from .dense_viz import save_detection_png

    items = [dataset[i] for i in range(min(4, len(dataset)))]
    with torch.no_grad():
        dets = model(([ctx.to_device(x) for x, _ in items], None))
    images = [(x.permute(1, 2, 0).numpy() * 255).round().astype("uint8") for x, _ in items]
    try:
        return save_detection_png(path, images, [{k: v.cpu() for k, v in d.items()} for d in dets], class_names,
                                  targets=[t for _, t in items])
    except (MissingExtraError, ImportError, OSError) as e:  # a picture is a nicety, never a failure
        _logger.warning("predictions.png not written: %s", e)
        return None


def format_detection_summary(summary: Dict[str, Any]) -> str:
    """The lines ``train --task detection`` prints at the end: selection, mAP per split, files."""
    best = summary.get("best") or {}
    lines = [f"selected epoch {best.get('epoch')} by val {best.get('metric')} = {best.get('value', float('nan')):.4f}; "
             f"{summary.get('epochs')} epochs in {summary.get('seconds', 0):.1f} s, "
             f"{summary.get('train_img_s') or 0:.1f} images/s"]
    evaluation = summary.get("evaluation") or {}
    if evaluation:
        lines.append(f"{'split':<12} {'n':>6} {'mAP@0.5':>9} {'mAP@.5:.95':>11}")
        for name, res in evaluation.items():
            lines.append(f"{name:<12} {int(res.get('n', 0)):>6} {100 * res.get('map50', float('nan')):>8.2f}% "
                         f"{100 * res.get('map', float('nan')):>10.2f}%")
        if not summary.get("test"):
            lines.append("(no test split: the val number selected the model and is optimistic)")
    for k, v in (summary.get("files") or {}).items():
        lines.append(f"{k}: {v}")
    return "\n".join(lines)
