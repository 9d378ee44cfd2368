"""Benchmark: how long nbgrader takes to autograde one submission, and a class of N.

    python bench/bench_autograde.py [--assignment ch2_inverted_scaling ...] [--students 50]

In a temporary course directory (the repository's ``nbgrader_config.py`` and ``solutions/``), it
generates the assignment, submits the instructor's solution for N students (the release with its
answer cells filled in, built by ``tests/wrong``), then times, each as one command as an
instructor runs it: ``nbgrader autograde`` of one student (nbgrader start, kernel start, every
cell), of the whole class, and the out-of-process audit of the class. Targets on a 2-core
machine: one submission <= 10 s, a class of 50 <= 120 s. Every assignment in ``solutions/`` is
measured unless ``--assignment`` names some.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "tests"))

from wrong import Variant, submission  # noqa: E402  (tests/ holds the submission builder)

TARGETS_S = {"one submission": 10.0, "class of 50": 120.0}


def timed(course: Path, *command: str) -> float:
    """Seconds ``command`` (a program of the course's environment) takes, run in ``course``."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    started = time.perf_counter()
    result = subprocess.run(
        [str(BIN / command[0]), *command[1:]], cwd=course, env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if result.returncode not in (0, 1):  # the audit exits 1 when it flags a submission
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return seconds


def bench(assignment: str, students: int) -> list[tuple[str, float, float | None]]:
    """Rows (what, seconds, target or None) for one assignment and a class of ``students``."""
    with tempfile.TemporaryDirectory(prefix="bench-autograde-") as scratch:
        course = Path(scratch)
        shutil.copy(ROOT / "nbgrader_config.py", course)
        shutil.copytree(ROOT / "solutions", course / "solutions")
        generate = timed(course, "nbgrader", "generate_assignment", assignment, "--force")
        (release,) = (ROOT / "exercises" / assignment).glob("*.ipynb")
        answers = json.dumps(submission(assignment, Variant("solution")))
        for index in range(students):
            folder = course / "submitted" / f"student{index:03d}" / assignment
            folder.mkdir(parents=True)
            (folder / release.name).write_text(answers)

        one = timed(course, "nbgrader", "autograde", assignment, "--student", "student000")
        everyone = timed(course, "nbgrader", "autograde", assignment, "--force")
        audit = timed(course, "python", "-m", "dropout_grading.audit", "--assignment", assignment)
    return [
        ("generate_assignment", generate, None),
        ("one submission", one, TARGETS_S["one submission"]),
        (f"class of {students}", everyone, TARGETS_S["class of 50"] * students / 50),
        (f"  per submission (class of {students})", everyone / students, None),
        (f"audit of {students} (out of process)", audit, None),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    everything = sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir())
    parser.add_argument("--assignment", nargs="+", choices=everything, default=everything)
    parser.add_argument("--students", type=int, default=50)
    args = parser.parse_args()
    for assignment in args.assignment:
        rows = bench(assignment, args.students)
        print(f"autograde benchmark: {assignment}, {os.cpu_count()} CPUs", flush=True)
        for name, seconds, target in rows:
            verdict = (
                ""
                if target is None
                else f"  target <= {target:.0f} s: {'ok' if seconds <= target else 'MISSED'}"
            )
            print(f"{name:<36} {seconds:8.1f} s{verdict}", flush=True)


if __name__ == "__main__":
    main()
