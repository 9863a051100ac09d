"""Released checkpoints, safe loading and saving, and key mapping to and from the original layout.

Checkpoints are untrusted input: ``.pth`` files are read with ``torch.load(weights_only=True)``
(with ``argparse.Namespace`` allow-listed, as ConvNeXt-style trainers store their arguments),
``.safetensors`` with safetensors; nothing pickled is ever executed. Weights holding NaN or inf
are refused (:class:`~unireplknet.errors.NonFiniteError` naming the tensors) unless
``allow_nonfinite=True``.

Released weights are downloaded from the Hugging Face repo :data:`HF_REPO` at the revision
:data:`HF_REVISION` (each :class:`PretrainedWeights` may override it) and, when the table
records a ``sha256`` for the file, the downloaded file's SHA-256 is checked: a mismatch is a
:class:`~unireplknet.errors.WeightsUnavailableError` giving the expected and the actual hash.

Provenance, stated plainly: this table was written without network access, so the commit of
:data:`HF_REPO` (``HF_REVISION``) and the per-file hashes are **not filled in yet** (``None``).
While a field is ``None`` the download uses the repo's default branch and is not hash-checked;
a warning says so. Filling them in is a data change only: record the repo commit in
``HF_REVISION`` and each file's SHA-256 (the LFS ``oid`` shown on the Hub, or ``sha256sum``
of a downloaded file) in ``_SHA256``.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import logging
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ._extras import require

__all__ = [
    "PretrainedWeights", "PRETRAINED", "HF_REPO", "HF_REVISION", "list_pretrained", "get_pretrained", "resolve_pretrained",
    "read_checkpoint", "safe_torch_load", "unwrap_state_dict", "from_official", "to_official", "adapt_input_conv",
    "load_weights", "check_fits", "save_weights", "infer_architecture", "model_from_checkpoint", "CheckpointError",
    "WeightsUnavailableError", "NonFiniteError", "nonfinite_keys", "check_finite_state_dict", "file_sha256",
]

from .errors import CheckpointError, NonFiniteError, WeightsUnavailableError

_logger = logging.getLogger(__name__)

HF_REPO = "DingXiaoH/UniRepLKNet"

#: the commit of :data:`HF_REPO` the released weights are downloaded at. ``None``: not recorded yet
#: (no network access when the table was written), so the default branch is used; see the module docstring.
HF_REVISION: Optional[str] = None

#: SHA-256 of each released file, by file name; a file absent here is downloaded without a hash check
#: (with a warning). Empty until recorded from the Hub; see the module docstring.
_SHA256: Dict[str, str] = {}


@dataclass(frozen=True)
class PretrainedWeights:
    """One released checkpoint of the original authors."""

    tag: str  # e.g. "unireplknet_s.in22k_ft_in1k_384"
    filename: str  # file name in the Hugging Face repo ``HF_REPO``
    num_classes: int
    input_size: int
    top1: Optional[float]  # ImageNet-1K top-1 reported by the authors
    description: str
    backbone_only: bool = False  # dense-task checkpoints: only the backbone is used
    revision: Optional[str] = None  # commit of HF_REPO to download from (None: HF_REVISION)
    sha256: Optional[str] = None  # expected SHA-256 of the file (None: not recorded, not checked)

    @property
    def variant(self) -> str:
        """Model name, e.g. ``unireplknet_s``."""
        return self.tag.split(".")[0]


def _build_table() -> Dict[str, PretrainedWeights]:
    table: Dict[str, PretrainedWeights] = {}

    def add(w: PretrainedWeights) -> None:
        if w.sha256 is None and w.filename in _SHA256:
            w = dataclasses.replace(w, sha256=_SHA256[w.filename])
        table[w.tag] = w

    for v, acc in [("a", "77.03"), ("f", "78.58"), ("p", "80.23"), ("n", "81.64"), ("t", "83.21"), ("s", "83.91")]:
        add(PretrainedWeights(f"unireplknet_{v}.in1k_224", f"unireplknet_{v}_in1k_224_acc{acc}.pth", 1000, 224,
                              float(acc), "ImageNet-1K, 224"))
    for v, size in [("s", 224), ("b", 224), ("l", 192), ("xl", 192)]:
        add(PretrainedWeights(f"unireplknet_{v}.in22k", f"unireplknet_{v}_in22k_pretrain.pth", 21841, size, None,
                              f"ImageNet-22K pretraining, {size}"))
    for v, acc in [("s", "86.44"), ("b", "87.40"), ("l", "87.88"), ("xl", "87.96")]:
        add(PretrainedWeights(f"unireplknet_{v}.in22k_ft_in1k_384", f"unireplknet_{v}_in22k_to_in1k_384_acc{acc}.pth",
                              1000, 384, float(acc), "ImageNet-22K then 1K fine-tuning, 384"))
    for tag, fname, size, desc in [
        ("unireplknet_t.coco_cascade_mask_rcnn_3x", "casc_mask_rcnn_unireplknet_t_in1k_3x_coco_ap51.75.pth", 800,
         "COCO Cascade Mask R-CNN 3x backbone (box AP 51.7)"),
        ("unireplknet_xl.coco_cascade_mask_rcnn_3x", "casc_mask_rcnn_unireplknet_xl_in22k_3x_coco_ap56.39.pth", 800,
         "COCO Cascade Mask R-CNN 3x backbone (box AP 56.4)"),
        ("unireplknet_t.ade20k_upernet_512", "upernet_unireplknet_t_512_160k_ade20k_miou48.56.pth", 512,
         "ADE20K UperNet backbone (mIoU 48.6)"),
        ("unireplknet_b.ade20k_upernet_640", "upernet_unireplknet_b_in22k_640_160k_ade20k_miou53.52.pth", 640,
         "ADE20K UperNet backbone (mIoU 53.5)"),
    ]:
        add(PretrainedWeights(tag, fname, 0, size, None, desc, backbone_only=True))
    return table


#: every released checkpoint, by tag.
PRETRAINED: Dict[str, PretrainedWeights] = _build_table()


def list_pretrained(model_name: Optional[str] = None) -> List[str]:
    """Tags of the released checkpoints, optionally only those of ``model_name``."""
    return [t for t, w in PRETRAINED.items() if model_name is None or w.variant == model_name]


def get_pretrained(tag: str, model_name: Optional[str] = None) -> PretrainedWeights:
    """Look up a tag (``"unireplknet_s.in1k_224"`` or, given ``model_name``, just ``"in1k_224"``)."""
    full = tag if "." in tag or model_name is None else f"{model_name}.{tag}"
    if full not in PRETRAINED:
        valid = list_pretrained(model_name) or list(PRETRAINED)
        raise ValueError(f"unknown pretrained tag {tag!r}; valid tags: {', '.join(valid)}")
    w = PRETRAINED[full]
    if model_name is not None and w.variant != model_name:
        raise ValueError(f"pretrained tag {full!r} is for {w.variant}, not {model_name}")
    return w


_VERIFIED: Dict[Tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256, hashed this process


def file_sha256(path: Union[str, os.PathLike], chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file (cached per process by path, size and modification time)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _VERIFIED:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(chunk), b""):
                h.update(block)
        _VERIFIED[key] = h.hexdigest()
    return _VERIFIED[key]


def resolve_pretrained(weights: PretrainedWeights) -> Path:
    """Local path of a released checkpoint: the Hugging Face cache, downloading if allowed.

    Downloads at ``weights.revision`` (default :data:`HF_REVISION`) and checks ``weights.sha256`` when
    recorded. Raises :class:`WeightsUnavailableError` with instructions when offline and not cached,
    and with the expected and actual hash when the file does not match.
    """
    hub = require("huggingface_hub", "hub", "downloading released weights")
    revision = weights.revision or HF_REVISION
    kwargs: Dict[str, Any] = dict(repo_id=HF_REPO, filename=weights.filename)
    if revision is not None:
        kwargs["revision"] = revision
    try:
        path = Path(hub.hf_hub_download(**kwargs))
    except Exception as e:  # offline, no cache, hub errors
        at = f" at revision {revision}" if revision else ""
        raise WeightsUnavailableError(
            f"could not get {weights.filename} for {weights.tag} from the Hugging Face repo {HF_REPO}{at} "
            f"({type(e).__name__}: {' '.join(str(e).split())}). Download that file on a machine with access and "
            f"pass its path instead: pretrained='/path/to/{weights.filename}' (or place it in the Hugging Face cache)."
        ) from e
    if weights.sha256:
        actual = file_sha256(path)
        if actual.lower() != weights.sha256.lower():
            raise WeightsUnavailableError(
                f"{weights.filename} for {weights.tag} failed its hash check: expected sha256 {weights.sha256.lower()}, "
                f"got {actual} ({path}). The download is corrupt or the file changed upstream: delete it from the "
                f"Hugging Face cache and retry, or pass a file you trust as pretrained='/path/to/{weights.filename}'."
            )
    else:
        _logger.warning("%s: no SHA-256 recorded for %s (revision %s): the file is used without a hash check",
                        weights.tag, weights.filename, revision or "default branch")
    return path


_GLOBAL_RE = re.compile(r"GLOBAL ([\w.]+)")
#: the pickled magic number that starts a legacy (non-zip) ``torch.save`` file
_LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"


def _is_torch_archive(path: Union[str, os.PathLike]) -> bool:
    """Whether ``path`` has the structure ``torch.save`` writes: a zip archive, or the legacy magic number."""
    if zipfile.is_zipfile(path):
        return True
    with open(path, "rb") as f:
        return f.read(len(_LEGACY_MAGIC)) == _LEGACY_MAGIC


def safe_torch_load(path: Union[str, os.PathLike]) -> Any:
    """``torch.load(weights_only=True)`` (``argparse.Namespace`` allowed), its failures as one clear :class:`CheckpointError`.

    The one place that tells the two failures apart: a valid file that needs a non-allowed global
    (pickled objects that could run code) is *refused*, naming the global; anything else (random
    bytes, a truncated or foreign file) is reported as corrupt or not a PyTorch checkpoint.
    PyTorch's advice to retry with ``weights_only=False`` is never passed on.
    """
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        # torch wraps the unpickler's own error in a long "Weights only load failed ..." message
        inner = e.__context__ if isinstance(e.__context__, Exception) and "Weights only load failed" in str(e) else e
        found = _GLOBAL_RE.search(str(e))
        if found and _is_torch_archive(path):  # random bytes can also start with a GLOBAL opcode
            raise CheckpointError(
                f"refused to load {path}: it contains pickled objects that could run code ({found[1]}; only "
                f"tensors, containers and argparse.Namespace are allowed)"
            ) from e
        reason = " ".join(str(inner).split()) or type(inner).__name__
        if "Weights only load failed" in reason:  # no inner error to quote: keep only torch's specific part
            reason = reason.split("WeightsUnpickler error:")[-1].split("Check the documentation")[0].strip()
        raise CheckpointError(
            f"could not read checkpoint {path}: the file is corrupt, truncated or not a PyTorch checkpoint "
            f"({type(inner).__name__}: {reason.split('. ')[0][:200]})"
        ) from e


def read_checkpoint(path: Union[str, os.PathLike]) -> Dict[str, Any]:
    """Read a ``.pth``/``.pt``/``.bin`` or ``.safetensors`` file without executing pickled code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"could not read checkpoint {path}: the file is empty (0 bytes; an interrupted "
                              f"download, copy or save?)")
    with open(path, "rb") as f:
        head = f.read(16)
    if path.suffix == ".safetensors" or (len(head) >= 9 and head[8:9] == b"{"):
        st = require("safetensors.torch", "hub", "reading .safetensors checkpoints")
        try:
            return dict(st.load_file(str(path)))
        except Exception as e:
            raise CheckpointError(f"could not read safetensors checkpoint {path}: {e}") from e
    obj = safe_torch_load(path)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state_dict or a dict containing one")
    return dict(obj)


def unwrap_state_dict(obj: Mapping[str, Any]) -> Dict[str, torch.Tensor]:
    """Find the model weights in a checkpoint dict.

    Handles bare state_dicts, ``{'model': ...}``, ``{'state_dict': ...}`` (mm-style, with a
    ``backbone.`` prefix), ``{'model_ema': ...}`` and ``module.`` prefixes from DDP.
    """
    sd: Any = obj
    for key in ("model", "state_dict", "model_ema", "module"):
        if isinstance(sd, Mapping) and key in sd and isinstance(sd[key], Mapping):
            sd = sd[key]
            break
    tensors = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError("no tensors found in the checkpoint (expected a state_dict)")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    if any(k.startswith("backbone.") for k in tensors):
        tensors = {k[len("backbone."):]: v for k, v in tensors.items() if k.startswith("backbone.")}
    return tensors


_OFFICIAL_BRANCH = re.compile(r"\.dil_(conv|bn)_k(\d+)_(\d+)\.")
_PROJECT_BRANCH = re.compile(r"\.branches\.k(\d+)_(\d+)\.(conv|bn)\.")


def from_official(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Rename the original's Dilated Reparam Block branch keys (``dil_conv_k5_1``) to this package's.

    Every other key is identical in both layouts. Idempotent.
    """
    return {_OFFICIAL_BRANCH.sub(lambda m: f".branches.k{m[2]}_{m[3]}.{m[1]}.", k): v for k, v in state_dict.items()}


def to_official(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Inverse of :func:`from_official`: the original implementation's key names."""
    return {_PROJECT_BRANCH.sub(lambda m: f".dil_{m[3]}_k{m[1]}_{m[2]}.", k): v for k, v in state_dict.items()}


def adapt_input_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """Adapt a first-conv kernel trained on 3 channels to ``in_chans`` (timm's rule).

    1 channel: the sum over RGB; more: RGB repeated and rescaled by ``3 / in_chans``.
    """
    src = weight.shape[1]
    if in_chans == src:
        return weight
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    reps = -(-in_chans // src)
    return weight.repeat(1, reps, 1, 1)[:, :in_chans] * (src / in_chans)


def _is_deploy(sd: Mapping[str, torch.Tensor]) -> Optional[bool]:
    if any(k.endswith("pwconv2.2.running_mean") for k in sd):
        return False
    if any(k.endswith("pwconv2.0.bias") for k in sd):
        return True
    return None


@dataclass
class LoadReport:
    """What :func:`load_weights` did."""

    missing: List[str]
    unexpected: List[str]
    dropped: List[str]
    adapted: List[str]


def _fmt_keys(keys: List[str], n: int = 8) -> str:
    more = f" ... and {len(keys) - n} more" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def nonfinite_keys(state_dict: Mapping[str, Any]) -> List[str]:
    """Names of the floating-point tensors of ``state_dict`` holding NaN or inf."""
    return [k for k, v in state_dict.items()
            if isinstance(v, torch.Tensor) and (v.is_floating_point() or v.is_complex())
            and not bool(torch.isfinite(v).all())]


def check_finite_state_dict(state_dict: Mapping[str, Any], name: str = "state_dict", allow_nonfinite: bool = False) -> List[str]:
    """Raise :class:`NonFiniteError` naming the tensors (first 5 and the count) that hold NaN/inf.

    With ``allow_nonfinite`` only a warning is logged. Returns the offending names.
    """
    bad = nonfinite_keys(state_dict)
    if bad:
        listed = _fmt_keys(bad, 5)
        if not allow_nonfinite:
            raise NonFiniteError(
                f"{name} holds NaN/inf in {len(bad)} tensor(s): {listed} (a diverged run?); "
                f"load it anyway with allow_nonfinite=True (--allow-nonfinite)"
            )
        _logger.warning("%s holds NaN/inf in %d tensor(s): %s (loaded anyway: allow_nonfinite)", name, len(bad), listed)
    return bad


def check_fits(
    target: Mapping[str, Any],
    state_dict: Mapping[str, Any],
    name: str,
    strict: bool = True,
    ignore_missing: Sequence[str] = (),
    model_desc: str = "this model",
) -> Tuple[List[str], List[str]]:
    """Raise one :class:`CheckpointError` naming ``name`` when ``state_dict`` does not fit ``target`` (a model's state_dict).

    Shape mismatches always raise; missing and unexpected keys raise when ``strict`` (``num_batches_tracked``
    and ``ignore_missing`` are never missing). Returns ``(missing, unexpected)``. The one summary of
    "these weights belong to another model" shared by ``--pretrained``, ``load_weights`` and trained runs.
    """
    mismatched = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(target[k].shape)}"
                  for k, v in state_dict.items() if k in target and tuple(v.shape) != tuple(target[k].shape)]
    if mismatched:
        raise CheckpointError(
            f"{name} does not fit {model_desc} ({len(mismatched)} shape mismatches, another variant?): "
            f"{_fmt_keys(mismatched)}"
        )
    skip = set(ignore_missing)
    missing = [k for k in target if k not in state_dict and not k.endswith("num_batches_tracked") and k not in skip]
    unexpected = [k for k in state_dict if k not in target]
    if strict and (missing or unexpected):
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {_fmt_keys(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {_fmt_keys(unexpected)}")
        raise CheckpointError(f"{name} does not match {model_desc}: " + "; ".join(parts))
    return missing, unexpected


def load_weights(
    model: nn.Module,
    source: Union[str, os.PathLike, Mapping[str, Any]],
    strict: bool = True,
    allow_nonfinite: bool = False,
) -> LoadReport:
    """Load a checkpoint (path or dict, original or project layout, train or deploy structure) into ``model``.

    * A classifier of another size is dropped with a warning (the model keeps its fresh head).
    * A stem trained on 3 channels is adapted to the model's ``in_chans``.
    * A deploy-structure checkpoint re-parameterises a train-structure model first; a train-structure
      checkpoint is fused on the fly for a deploy-structure :class:`~unireplknet.model.UniRepLKNet`.
    * ``norm``/``head`` are ignored by a feature backbone; its ``norm{i}`` keep their init if absent.
    * Other shape mismatches and (when ``strict``) missing/unexpected keys raise :class:`CheckpointError`.
    * Tensors holding NaN/inf raise :class:`NonFiniteError` naming them, unless ``allow_nonfinite``.
    """
    from .model import UniRepLKNet, UniRepLKNetFeatures

    name = str(source) if not isinstance(source, Mapping) else "state_dict"
    raw = read_checkpoint(source) if not isinstance(source, Mapping) else dict(source)
    sd = from_official(unwrap_state_dict(raw))
    if check_finite_state_dict(sd, name, allow_nonfinite):
        allow_nonfinite = True  # warned once; the nested load below must not raise
    model_deploy = all(getattr(b, "deployed", True) for b in model.modules() if hasattr(b, "pwconv2"))
    ckpt_deploy = _is_deploy(sd)
    if ckpt_deploy is True and not model_deploy:
        _logger.warning("%s holds re-parameterized (deploy) weights: switching the model to the deploy structure", name)
        model.reparameterize()  # type: ignore[operator]
    elif ckpt_deploy is False and model_deploy and isinstance(model, UniRepLKNet):
        twin = UniRepLKNet(
            in_chans=model.in_chans, num_classes=model.num_classes, depths=model.depths, dims=model.dims,
            kernel_sizes=model.kernel_sizes, global_pool=model.global_pool,
            layer_scale_init_value=1e-6 if any(k.endswith(".gamma") and ".act." not in k for k in sd) else 0.0,
        )
        report = load_weights(twin, sd, strict=strict, allow_nonfinite=allow_nonfinite)
        twin.eval().reparameterize()
        model.load_state_dict(twin.state_dict())
        return report
    target = model.state_dict()
    dropped: List[str] = []
    adapted: List[str] = []
    if isinstance(model, UniRepLKNetFeatures):
        for k in [k for k in sd if k.startswith(("norm.", "head.", "head_drop."))]:
            sd.pop(k)
        for k in [k for k in sd if re.match(r"^(downsample_layers|stages|norm)\.?(\d+)", k) and k not in target]:
            sd.pop(k)  # stages/norms beyond the last out_index
    stem = "downsample_layers.0.0.weight"
    if stem in sd and stem in target and sd[stem].shape[1] != target[stem].shape[1]:
        _logger.info("adapting %s from %d to %d input channels", stem, sd[stem].shape[1], target[stem].shape[1])
        sd[stem] = adapt_input_conv(sd[stem], target[stem].shape[1])
        adapted.append(stem)
    # Drop the checkpoint's classifier only when the class count differs (or the model has none):
    # equal class counts with another width is a variant mismatch, reported below with the rest.
    head_w = sd.get("head.weight")
    if head_w is not None and "head.weight" not in target:
        head_note = "the model has no classifier (num_classes=0)"
    elif head_w is not None and head_w.shape[0] != target["head.weight"].shape[0]:
        head_note = (f"the checkpoint's classifier has {head_w.shape[0]} classes, "
                     f"the model's {target['head.weight'].shape[0]}")
    else:
        head_note = ""
    if head_note:
        for k in ("head.weight", "head.bias"):
            if k in sd:
                dropped.append(k)
                sd.pop(k)
    ignore = [k for k in target if (k.startswith("head.") and dropped)
              or (isinstance(model, UniRepLKNetFeatures) and re.match(r"^norm\d\.", k))]
    missing, unexpected = check_fits(target, sd, name, strict=strict, ignore_missing=ignore)
    if dropped:
        _logger.warning("%s: %s; dropped %s (the model keeps its new head)", name, head_note, ", ".join(dropped))
    if missing or unexpected:
        _logger.warning("%s: %d missing and %d unexpected keys ignored", name, len(missing), len(unexpected))
    model.load_state_dict(sd, strict=False)
    return LoadReport(missing, unexpected, dropped, adapted)


_BLOCK_KEY = re.compile(r"^stages\.(\d+)\.(\d+)\.")


def infer_architecture(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, Any]:
    """:class:`~unireplknet.model.UniRepLKNet` arguments read from a state_dict's keys and shapes.

    Returns ``in_chans``, ``num_classes`` (0 without a head), ``depths``, ``dims``, ``kernel_sizes``,
    ``layer_scale_init_value`` and ``deploy``; works for train and deploy structure, original or project keys.
    """
    sd = from_official(state_dict)
    stem = sd.get("downsample_layers.0.0.weight")
    if stem is None:
        raise CheckpointError("not a UniRepLKNet state_dict: 'downsample_layers.0.0.weight' (the stem) is missing")
    blocks: Dict[int, set] = {}
    for key in sd:
        m = _BLOCK_KEY.match(key)
        if m:
            blocks.setdefault(int(m[1]), set()).add(int(m[2]))
    if sorted(blocks) != [0, 1, 2, 3]:
        raise CheckpointError(f"not a UniRepLKNet state_dict: expected blocks in stages 0-3, found {sorted(blocks)}")
    depths = tuple(max(blocks[s]) + 1 for s in range(4))
    dims = tuple(int(sd[f"downsample_layers.{s}.{3 if s == 0 else 0}.weight"].shape[0]) for s in range(4))
    kernel_sizes = []
    for s in range(4):
        ks = []
        for b in range(depths[s]):
            w = sd.get(f"stages.{s}.{b}.dwconv.lk_origin.weight", sd.get(f"stages.{s}.{b}.dwconv.weight"))
            ks.append(int(w.shape[-1]) if w is not None else 0)
        kernel_sizes.append(tuple(ks))
    head = sd.get("head.weight")
    return dict(
        in_chans=int(stem.shape[1]), num_classes=int(head.shape[0]) if head is not None else 0,
        depths=depths, dims=dims, kernel_sizes=tuple(kernel_sizes),
        layer_scale_init_value=1e-6 if any(re.match(r"^stages\.\d+\.\d+\.gamma$", k) for k in sd) else 0.0,
        deploy=_is_deploy(sd) is True,
    )


def model_from_checkpoint(
    source: Union[str, os.PathLike, Mapping[str, Any]], allow_nonfinite: bool = False
) -> nn.Module:
    """A :class:`~unireplknet.model.UniRepLKNet` rebuilt from a checkpoint's shapes, with its weights, in eval mode.

    Head-less (dense-task backbone) checkpoints load with ``norm``/``head`` left at their init.
    NaN/inf weights raise :class:`NonFiniteError` unless ``allow_nonfinite``.
    """
    from .model import UniRepLKNet

    name = str(source) if not isinstance(source, Mapping) else "state_dict"
    raw = read_checkpoint(source) if not isinstance(source, Mapping) else dict(source)
    sd = from_official(unwrap_state_dict(raw))
    if check_finite_state_dict(sd, name, allow_nonfinite):
        allow_nonfinite = True
    model = UniRepLKNet(**infer_architecture(sd))
    load_weights(model, sd, strict="head.weight" in sd, allow_nonfinite=allow_nonfinite)
    return model.eval()


def save_weights(
    state: Union[nn.Module, Mapping[str, torch.Tensor]], path: Union[str, os.PathLike], official_keys: bool = False
) -> Path:
    """Write weights atomically: safetensors for ``.safetensors`` paths, else a tensors-only ``torch.save``."""
    path = Path(path)
    sd = state.state_dict() if isinstance(state, nn.Module) else dict(state)
    sd = {k: v.detach().contiguous().cpu() for k, v in sd.items()}
    if official_keys:
        sd = to_official(sd)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if path.suffix == ".safetensors":
            st = require("safetensors.torch", "hub", "saving .safetensors files")
            st.save_file(sd, tmp)
        else:
            torch.save(sd, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
