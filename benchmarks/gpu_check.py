"""Checks of the CUDA paths that CI (CPU only) cannot run; exits non-zero on the first failure.

    python benchmarks/gpu_check.py --out gpu_check.json

On a CUDA machine: train / deploy / optimized outputs agree (fp32, TF32 off) for a tiny model
and every variant up to B, re-parameterization keeps the device, a mixed-precision training
step (bf16 autocast, gradient checkpointing, channels-last) runs and lowers the loss, the
Triton depthwise convolution equals cuDNN forward and backward, and the optimized path in
bfloat16 stays close to fp32. Writes what it measured as JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch
import torch.nn.functional as F

import unireplknet
from unireplknet.inference import conv_layout_choices, optimize_for_inference


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative error ||a - b|| / ||b|| in float64."""
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def check(name: str, ok: bool, report: dict, **values: object) -> None:
    report[name] = dict(ok=bool(ok), **values)
    print(f"{'ok  ' if ok else 'FAIL'} {name} {values}", flush=True)
    if not ok:
        raise SystemExit(f"check failed: {name} {values}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="gpu_check.json")
    p.add_argument("--variants", nargs="+", default=["unireplknet_a", "unireplknet_t", "unireplknet_b"])
    p.add_argument("--device", default="cuda", help="cuda (default); cpu runs the same checks as a dry run")
    args = p.parse_args()
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available: nothing to check", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    name = torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"
    report: dict = {"device": name, "torch": torch.__version__}

    # 1. train == deploy == optimized, fp32
    tiny = unireplknet.UniRepLKNet(in_chans=3, num_classes=10, depths=(1, 1, 2, 1), dims=(16, 32, 64, 128),
                                   kernel_sizes=((3,), (13,), (13, 3), (7,))).to(dev).eval()
    for name in ["tiny"] + args.variants:
        model = tiny if name == "tiny" else unireplknet.create_model(name).to(dev).eval()
        x = torch.randn(4, 3, 224, 224, device=dev)
        with torch.inference_mode():
            ref = model(x)
            fast = optimize_for_inference(model, x)
            out_fast = fast(x)
            out_triton = None
            if dev.type == "cuda" and name in ("tiny", "unireplknet_t"):  # every depthwise conv through Triton
                out_triton = optimize_for_inference(model, x, conv_layout="triton")(x)
            model.reparameterize()
            out_dep = model(x)
        on_dev = all(t.device.type == dev.type for t in model.state_dict().values())
        check(f"deploy_equals_train[{name}]", rel(out_dep, ref) < 1e-5 and on_dev, report,
              rel_err=rel(out_dep, ref), stays_on_device=on_dev)
        check(f"optimized_equals_train[{name}]", rel(out_fast, ref) < 1e-5, report, rel_err=rel(out_fast, ref))
        if out_triton is not None:
            check(f"optimized_triton_equals_train[{name}]", rel(out_triton, ref) < 1e-5, report,
                  rel_err=rel(out_triton, ref))
        del model

    choices = list(conv_layout_choices().values())
    report["conv_layouts_chosen"] = {k: choices.count(k) for k in sorted(set(choices))}
    print("conv layouts chosen by timing:", report["conv_layouts_chosen"])

    # 2. the optimized path in bfloat16
    model = unireplknet.create_model("unireplknet_t").to(dev).eval()
    x = torch.randn(8, 3, 224, 224, device=dev)
    with torch.inference_mode():
        ref = model(x)
        fast = optimize_for_inference(model.to(torch.bfloat16), x.to(torch.bfloat16))
        out = fast(x.to(torch.bfloat16)).float()
    check("optimized_bf16_close[unireplknet_t]", rel(out, ref) < 0.05, report, rel_err=rel(out, ref))

    # 3. a training step: bf16 autocast, gradient checkpointing, channels-last; loss goes down
    torch.manual_seed(0)
    model = unireplknet.create_model("unireplknet_a", num_classes=10, grad_checkpointing=True).to(dev)
    model = model.to(memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(16, 3, 128, 128, device=dev).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (16,), device=dev)
    losses = []
    t0 = time.perf_counter()
    for _ in range(8):
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    if dev.type == "cuda":
        torch.cuda.synchronize()
    check("train_step_bf16_checkpointing[unireplknet_a]", losses[-1] < losses[0], report,
          first_loss=losses[0], last_loss=losses[-1], seconds=round(time.perf_counter() - t0, 2))

    # 4. the Triton depthwise convolution against cuDNN, forward and backward
    from unireplknet.ops import depthwise_conv2d, triton_available

    if dev.type == "cuda":
        check("triton_importable", triton_available(), report)
    for c, hw, k in [(80, 56, 3), (160, 28, 13), (320, 14, 13), (640, 7, 13), (24, 17, 31)]:
        xx = torch.randn(4, c, hw, hw + 3, device=dev, requires_grad=True)
        w = torch.randn(c, 1, k, k, device=dev, requires_grad=True)
        b = torch.randn(c, device=dev, requires_grad=True)
        g = torch.randn(4, c, hw, hw + 3, device=dev)
        want = F.conv2d(xx, w, b, padding=k // 2, groups=c)
        want_grads = torch.autograd.grad(want, (xx, w, b), g)
        got = depthwise_conv2d(xx, w, b)
        got_grads = torch.autograd.grad(got, (xx, w, b), g)
        errs = [rel(got, want)] + [rel(a, e) for a, e in zip(got_grads, want_grads)]
        check(f"triton_dwconv[C{c},{hw}x{hw + 3},K{k}]", max(errs) < 1e-4, report,
              rel_err_out_dx_dw_db=[f"{e:.1e}" for e in errs])

    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    n = sum(1 for v in report.values() if isinstance(v, dict) and "ok" in v)
    print(f"all {n} checks passed; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
