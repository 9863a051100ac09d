"""Where a training step loses when going from 1 to 2 threads: torch.profiler per operator and input shape.

    python benchmarks/profile_train_threads.py unireplknet_t
    python benchmarks/profile_train_threads.py unireplknet_a --top 40

One model, one fixed batch (16 x 3 x 224², fp32, fused AdamW), one profiled step at 1 thread and one at 2
threads in the same process (two warm-up steps before each). Printed: the summed self CPU time of each run,
then the operators (grouped by input shapes) whose 2-thread time exceeds half their 1-thread time the most
("loss" = t2 - t1/2, in ms): the ones that do not parallelise.
"""
from __future__ import annotations

import argparse


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="?", default="unireplknet_t")
    p.add_argument("--top", type=int, default=30)
    args = p.parse_args()

    import torch
    from torch.profiler import ProfilerActivity, profile

    import unireplknet

    torch.manual_seed(0)
    if args.model.startswith("unireplknet"):
        model = unireplknet.create_model(args.model, num_classes=1000)
    else:
        import timm

        model = timm.create_model(args.model, num_classes=1000)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    x = torch.randn(16, 3, 224, 224)
    y = torch.randint(0, 1000, (16,))

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    res = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        step()
        step()
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            step()
        res[threads] = {(e.key, str(e.input_shapes)[:90]): (e.self_cpu_time_total / 1e3, e.count)
                        for e in prof.key_averages(group_by_input_shape=True)}
        print(f"{threads} thread(s): summed self CPU {sum(v[0] for v in res[threads].values()):.0f} ms")
    rows = []
    for key, (t1, n) in res[1].items():
        t2 = res[2].get(key, (0.0, 0))[0]
        rows.append((t2 - t1 / 2, t1, t2, n, key))
    rows.sort(reverse=True)
    for loss, t1, t2, n, (name, shapes) in rows[:args.top]:
        print(f"loss {loss:7.1f} ms  1t {t1:7.1f}  2t {t2:7.1f}  n={n:4d}  {name:30s} {shapes}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
