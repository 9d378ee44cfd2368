"""Dropout speed and memory, measured against peers in the same run.

Prints one table: the readable numpy forward and backward (``dropout_course.dropout``), the fast
ones (``dropout_course.fast``: stored mask and seeded), torch's own ``F.dropout``, our torch
functions (readable and fast), and a plain copy of the array (the floor any dropout must pay: read
x, write out). Every ratio compares two timings from this process, so the verdicts do not depend
on how fast the machine is today. The targets apply to the fast module; the readable one is there
to show what the speed tricks buy.

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

from dropout_course import dropout as np_readable
from dropout_course import fast as np_fast
from dropout_course.torch import dropout as torch_readable
from dropout_course.torch import fast as torch_fast


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
    xt, doutt = torch.from_numpy(x).to(device), torch.from_numpy(dout).to(device)
    generator = torch.Generator(device=device).manual_seed(0)
    mask_rng = np.random.default_rng(1)
    dev = f"torch {device.type}"

    def time_of(run: Callable[[], object], *, on_device: bool = False) -> float:
        return best_time(run, args.repeats, sync if on_device else lambda: None)

    np_args = {"x": x, "p": args.p, "train": True, "rng": mask_rng}
    torch_args = {"x": xt, "p": args.p, "train": True, "generator": generator}
    _, readable_cache = np_readable.dropout_forward(**np_args)
    _, stored_cache = np_fast.dropout_forward(**np_args)
    _, seeded_cache = np_fast.seeded_dropout_forward(x, args.p, train=True, seed=7)
    _, torch_cache = torch_readable.dropout_forward(**torch_args)
    _, torch_seeded_cache = torch_fast.seeded_dropout_forward(xt, args.p, train=True, seed=7)

    rows = {
        "numpy copy (floor)": time_of(lambda: x.copy()),
        "numpy readable dropout_forward (rng)": time_of(
            lambda: np_readable.dropout_forward(**np_args)
        ),
        "numpy readable dropout_backward": time_of(
            lambda: np_readable.dropout_backward(dout, readable_cache)
        ),
        "numpy fast dropout_forward (rng)": time_of(lambda: np_fast.dropout_forward(**np_args)),
        "numpy fast dropout_backward": time_of(
            lambda: np_fast.dropout_backward(dout, stored_cache)
        ),
        "numpy fast seeded_dropout_forward": time_of(
            lambda: np_fast.seeded_dropout_forward(x, args.p, train=True, seed=7)
        ),
        "numpy fast seeded_dropout_backward": time_of(
            lambda: np_fast.seeded_dropout_backward(dout, seeded_cache)
        ),
        "torch CPU F.dropout": time_of(lambda: F.dropout(torch.from_numpy(x), args.p, True)),
        f"{dev} copy (floor)": time_of(lambda: xt.clone(), on_device=True),
        f"{dev} F.dropout": time_of(lambda: F.dropout(xt, args.p, True), on_device=True),
        f"{dev} readable dropout_forward": time_of(
            lambda: torch_readable.dropout_forward(**torch_args), on_device=True
        ),
        f"{dev} readable dropout_backward": time_of(
            lambda: torch_readable.dropout_backward(doutt, torch_cache), on_device=True
        ),
        f"{dev} fast dropout_forward": time_of(
            lambda: torch_fast.dropout_forward(**torch_args), on_device=True
        ),
        f"{dev} fast dropout_backward": time_of(
            lambda: torch_fast.dropout_backward(doutt, torch_cache), on_device=True
        ),
        f"{dev} fast seeded_dropout_forward": time_of(
            lambda: torch_fast.seeded_dropout_forward(xt, args.p, train=True, seed=7),
            on_device=True,
        ),
        f"{dev} fast seeded_dropout_backward": time_of(
            lambda: torch_fast.seeded_dropout_backward(doutt, torch_seeded_cache), on_device=True
        ),
    }
    print(f"dropout on {args.n:,} float32 elements, p={args.p}, best of {args.repeats}")
    print(f"{'what':48s} {'ms':>9s}")
    for name, seconds in rows.items():
        print(f"{name:48s} {seconds * 1e3:9.2f}")

    copy = rows["numpy copy (floor)"]
    forward_fast = rows["numpy fast dropout_forward (rng)"]
    backward_fast = rows["numpy fast dropout_backward"]
    forward_readable = rows["numpy readable dropout_forward (rng)"]
    backward_readable = rows["numpy readable dropout_backward"]
    torch_stored = rows[f"{dev} readable dropout_forward"]
    torch_fast_stored = rows[f"{dev} fast dropout_forward"]
    torch_seeded = rows[f"{dev} fast seeded_dropout_forward"]
    checks = [
        (
            "numpy fast forward speed-up over torch CPU F.dropout",
            rows["torch CPU F.dropout"] / forward_fast,
            ">=",
            4.0,
        ),
        ("numpy fast forward time / copy time", forward_fast / copy, "<=", 4.0),
        ("numpy fast backward time / copy time", backward_fast / copy, "<=", 1.5),
        ("numpy readable / fast forward time", forward_readable / forward_fast, "info", None),
        ("numpy readable / fast backward time", backward_readable / backward_fast, "info", None),
        ("numpy stored-mask cache (bytes)", stored_cache.nbytes, "info", None),
        ("numpy seeded cache mask (bytes)", seeded_cache.nbytes, "==", 0),
        (f"{dev} seeded / stored-mask forward time", torch_seeded / torch_stored, "<=", 1.0),
        (
            f"{dev} seeded / fast stored-mask forward time",
            torch_seeded / torch_fast_stored,
            "info",
            None,
        ),
        (f"{dev} readable / fast forward time", torch_stored / torch_fast_stored, "info", None),
        ("torch stored-mask cache (bytes)", torch_cache.nbytes, "info", None),
        ("torch seeded cache mask (bytes)", torch_seeded_cache.nbytes, "==", 0),
    ]
    if device.type == "cuda":
        checks.append(
            (
                "torch cuda fast dropout_forward share of copy bandwidth",
                rows[f"{dev} copy (floor)"] / torch_fast_stored,
                ">=",
                0.8,
            )
        )
    print()
    print(f"{'check':56s} {'measured':>12s}  target")
    for name, value, op, target in checks:
        shown = f"{value:12,.0f}" if "bytes" in name else f"{value:12.2f}"
        if op == "info":
            print(f"{name:56s} {shown}")
            continue
        ok = {">=": value >= target, "<=": value <= target, "==": value == target}[op]
        print(f"{name:56s} {shown}  {op} {target}  {'ok' if ok else 'MISSED'}")


if __name__ == "__main__":
    main()
