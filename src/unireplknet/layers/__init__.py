"""Building blocks of UniRepLKNet, one concept per file."""
from .dilated_reparam import ORIGINAL_BRANCHES, DilatedReparamBlock, default_branches
from .drop_path import DropPath, drop_path
from .fusion import dilate_kernel, fuse_bn, merge_dilated_branches, pad_kernel
from .norm import GRN, LayerNorm2d
from .se import SEBlock

__all__ = [
    "DilatedReparamBlock", "ORIGINAL_BRANCHES", "default_branches", "DropPath", "drop_path",
    "fuse_bn", "dilate_kernel", "pad_kernel", "merge_dilated_branches", "GRN", "LayerNorm2d", "SEBlock",
]
