"""Benchmark: the clean build of the book, and a rebuild with nothing changed.

    python bench/bench_book.py            # the committed HEAD, cloned into a temporary directory
    python bench/bench_book.py --keep     # keep the temporary clone (its path is printed)

"Clean" means nothing cached anywhere: a fresh clone has no ``_build`` (so no execution cache),
and ``TMPDIR`` points at an empty directory, so the sweep cache that chapter 5 keeps in the
system's temporary directory is empty too. The build is ``make book``'s command; the rebuild runs
it again. Printed: each notebook's execution time (from myst-nb's records), both wall times and
the budgets (clean build of the whole book <= 9 minutes on 2 cores, issues 11 and 12; rebuild
<= 30 s).
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CLEAN_BUDGET_S = 540.0
REBUILD_BUDGET_S = 30.0


def build(clone: Path, tmpdir: Path) -> float:
    """Wall seconds of ``jupyter-book build`` (as ``make book`` runs it) in ``clone``."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "TMPDIR": str(tmpdir)}
    command = [str(BIN / "jupyter-book"), "build", ".", "-W", "-n", "--keep-going"]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=clone, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"the book build failed (exit {result.returncode}):\n{result.stdout[-3000:]}")
    return seconds


def execution_times(clone: Path) -> dict[str, float]:
    """Seconds myst-nb recorded for executing each notebook page."""
    with (clone / "_build" / ".doctrees" / "environment.pickle").open("rb") as file:
        environment = pickle.load(file)
    return {
        page: (meta.get("exec_data") or {}).get("runtime") or 0.0
        for page, meta in sorted(environment.nb_metadata.items())
        if meta.get("exec_data")
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary clone")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-book-"))
    clone, tmpdir = workdir / "course", workdir / "tmp"
    tmpdir.mkdir()
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    try:
        clean = build(clone, tmpdir)
        times = execution_times(clone)
        rebuild = build(clone, tmpdir)
    finally:
        if args.keep:
            print(f"clone kept in {clone}")
        else:
            shutil.rmtree(workdir)
    print(f"{os.cpu_count()} CPUs; notebook execution times in the clean build:")
    for page, seconds in times.items():
        print(f"  {page:28} {seconds:6.1f} s")
    print(f"  {'all notebooks':28} {sum(times.values()):6.1f} s")
    for name, seconds, budget in [
        ("clean build", clean, CLEAN_BUDGET_S),
        ("rebuild, nothing changed", rebuild, REBUILD_BUDGET_S),
    ]:
        verdict = "within" if seconds <= budget else "OVER"
        print(f"{name:26} {seconds:6.1f} s  ({verdict} the budget of {budget:.0f} s)")


if __name__ == "__main__":
    main()
