"""Dropout speed and memory, measured against peers in the same run.

Prints one table: our numpy forward and backward (stored mask and seeded), torch's own
``F.dropout``, our torch function, and a plain copy of the array (the floor any dropout must pay:
read x, write out). Every ratio compares two timings from this process, so the verdicts do not
depend on how fast the machine is today.

    python bench/bench_dropout.py                 # numpy and torch on the CPU
    python bench/bench_dropout.py --device cuda   # torch on a GPU (numpy rows still on the CPU)
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from dropout_course import dropout as np_dropout
from dropout_course.torch import dropout as torch_dropout


def best_time(run: Callable[[], object], repeats: int, sync: Callable[[], None]) -> float:
    """Smallest wall time (seconds) of ``repeats`` calls after one warm-up call."""
    run()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="torch device: cpu or cuda")
    parser.add_argument("--n", type=int, default=10_000_000, help="elements (float32)")
    parser.add_argument("--p", type=float, default=0.5, help="drop probability")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda was asked for, but torch sees no CUDA device")

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    rng = np.random.default_rng(0)
    x = rng.standard_normal(args.n, dtype=np.float32)
    dout = rng.standard_normal(args.n, dtype=np.float32)
    xt = torch.from_numpy(x).to(device)
    generator = torch.Generator(device=device).manual_seed(0)
    mask_rng = np.random.default_rng(1)

    def time_of(run: Callable[[], object], *, on_device: bool = False) -> float:
        return best_time(run, args.repeats, sync if on_device else lambda: None)

    _, stored_cache = np_dropout.dropout_forward(x, args.p, train=True, rng=mask_rng)
    _, seeded_cache = np_dropout.seeded_dropout_forward(x, args.p, train=True, seed=7)
    _, torch_cache = torch_dropout.dropout_forward(xt, args.p, train=True, generator=generator)
    _, torch_seeded_cache = torch_dropout.seeded_dropout_forward(xt, args.p, train=True, seed=7)

    rows = {
        "numpy copy (floor)": time_of(lambda: x.copy()),
        "numpy dropout_forward (rng)": time_of(
            lambda: np_dropout.dropout_forward(x, args.p, train=True, rng=mask_rng)
        ),
        "numpy dropout_backward": time_of(lambda: np_dropout.dropout_backward(dout, stored_cache)),
        "numpy seeded_dropout_forward": time_of(
            lambda: np_dropout.seeded_dropout_forward(x, args.p, train=True, seed=7)
        ),
        "numpy seeded_dropout_backward": time_of(
            lambda: np_dropout.seeded_dropout_backward(dout, seeded_cache)
        ),
        "torch CPU F.dropout": time_of(lambda: F.dropout(torch.from_numpy(x), args.p, True)),
        f"torch {device.type} copy (floor)": time_of(lambda: xt.clone(), on_device=True),
        f"torch {device.type} F.dropout": time_of(
            lambda: F.dropout(xt, args.p, True), on_device=True
        ),
        f"torch {device.type} dropout_forward": time_of(
            lambda: torch_dropout.dropout_forward(xt, args.p, train=True, generator=generator),
            on_device=True,
        ),
        f"torch {device.type} seeded_dropout_forward": time_of(
            lambda: torch_dropout.seeded_dropout_forward(xt, args.p, train=True, seed=7),
            on_device=True,
        ),
    }
    print(f"dropout on {args.n:,} float32 elements, p={args.p}, best of {args.repeats}")
    print(f"{'what':44s} {'ms':>9s}")
    for name, seconds in rows.items():
        print(f"{name:44s} {seconds * 1e3:9.2f}")

    copy = rows["numpy copy (floor)"]
    forward = rows["numpy dropout_forward (rng)"]
    backward = rows["numpy dropout_backward"]
    torch_cpu = rows["torch CPU F.dropout"]
    torch_copy = rows[f"torch {device.type} copy (floor)"]
    ours_torch = rows[f"torch {device.type} dropout_forward"]
    checks = [
        ("numpy forward speed-up over torch CPU F.dropout", torch_cpu / forward, ">=", 4.0),
        ("numpy forward time / copy time", forward / copy, "<=", 4.0),
        ("numpy backward time / copy time", backward / copy, "<=", 1.5),
        ("numpy stored-mask cache (bytes)", stored_cache.nbytes, "info", None),
        ("numpy seeded cache mask (bytes)", seeded_cache.nbytes, "==", 0),
        ("torch stored-mask cache (bytes)", torch_cache.nbytes, "info", None),
        ("torch seeded cache mask (bytes)", torch_seeded_cache.nbytes, "==", 0),
    ]
    if device.type == "cuda":
        checks.append(
            (
                "torch cuda dropout_forward share of copy bandwidth",
                torch_copy / ours_torch,
                ">=",
                0.8,
            )
        )
    print()
    print(f"{'check':52s} {'measured':>12s}  target")
    for name, value, op, target in checks:
        if op == "info":
            print(f"{name:52s} {value:12,.0f}")
            continue
        ok = {">=": value >= target, "<=": value <= target, "==": value == target}[op]
        shown = f"{value:12,.0f}" if "bytes" in name else f"{value:12.2f}"
        print(f"{name:52s} {shown}  {op} {target}  {'ok' if ok else 'MISSED'}")


if __name__ == "__main__":
    main()
