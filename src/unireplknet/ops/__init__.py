"""Custom operators. Importing this package never imports triton; kernels load lazily on CUDA use."""
from __future__ import annotations

from .fast_train import fast_training, fast_training_enabled, set_fast_training
from .native import native_kernels_enabled, set_native_kernels
from .triton_dwconv import depthwise_conv2d, depthwise_conv2d_nhwc, depthwise_conv2d_triton, triton_available

__all__ = [
    "depthwise_conv2d", "depthwise_conv2d_nhwc", "depthwise_conv2d_triton", "triton_available",
    "set_fast_training", "fast_training_enabled", "fast_training", "set_native_kernels", "native_kernels_enabled",
]
