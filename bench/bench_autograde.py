"""Benchmark: how long nbgrader takes to autograde one submission, and a class of N.

    python bench/bench_autograde.py [--assignment ch2_inverted_scaling ...] [--students 50]
    python bench/bench_autograde.py --parallel 2 [--students 100] [--assignment ...]

In a temporary course directory (the repository's ``nbgrader_config.py`` and ``solutions/``), it
generates the assignment, submits the instructor's solution for N students (the release with its
answer cells filled in, built by ``tests/wrong``), then times, each as one command as an
instructor runs it: ``nbgrader autograde`` of one student (nbgrader start, kernel start, every
cell), of the whole class, and the out-of-process audit of the class. Targets on a 2-core
machine: one submission <= 10 s, a class of 50 <= 120 s. Every assignment in ``solutions/`` is
measured unless ``--assignment`` names some.

``--parallel JOBS`` instead grades one class (default 100: three copies of the solution for each
wrong variant of ``tests/wrong``) twice, in two copies of the course: serially with
``nbgrader autograde`` and with ``python -m dropout_grading.parallel --jobs JOBS`` (what
``make autograde JOBS=...`` runs), and prints both times, the speed-up (target >= 1.6x with 2
workers on 2 cores) and whether the two gradebooks hold the same total score.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "tests"))

from wrong import Variant, submission, variants  # noqa: E402  (tests/ holds the builder)

TARGETS_S = {"one submission": 10.0, "class of 50": 120.0}
TARGET_SPEED_UP = 1.6


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


def course_with_class(course: Path, assignment: str, students: list[Variant]) -> float:
    """Set up ``course`` with ``assignment`` generated and ``students`` submitted (student000,
    student001, ...); returns the seconds ``nbgrader generate_assignment`` took."""
    course.mkdir(exist_ok=True)
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "solutions", course / "solutions")
    generate = timed(course, "nbgrader", "generate_assignment", assignment, "--force")
    (release,) = (ROOT / "exercises" / assignment).glob("*.ipynb")
    notebooks = {v.name: json.dumps(submission(assignment, v)) for v in students}
    for index, student in enumerate(students):
        folder = course / "submitted" / f"student{index:03d}" / assignment
        folder.mkdir(parents=True)
        (folder / release.name).write_text(notebooks[student.name])
    return generate


def bench(assignment: str, students: int) -> list[tuple[str, float, float | None]]:
    """Rows (what, seconds, target or None) for one assignment and a class of ``students``."""
    with tempfile.TemporaryDirectory(prefix="bench-autograde-") as scratch:
        course = Path(scratch)
        generate = course_with_class(course, assignment, [Variant("solution")] * students)
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


def mixed_class(assignment: str, students: int) -> list[Variant]:
    """``students`` submissions: three copies of the solution, then a wrong variant, in turn."""
    wrong = [v for v in variants(assignment) if v.loses] or [Variant("solution")]
    return [
        wrong[(index // 4) % len(wrong)] if index % 4 == 3 else Variant("solution")
        for index in range(students)
    ]


def total_auto_score(course: Path) -> float:
    """Sum of every autograde score in the course's gradebook (a cheap equality check)."""
    with contextlib.closing(sqlite3.connect(course / "gradebook.db")) as db:
        return db.execute("SELECT COALESCE(SUM(auto_score), 0) FROM grade").fetchone()[0]


def children_cpu_s() -> float:
    """CPU seconds (user + system) used so far by this process's finished child processes.

    Divided by a run's wall time it gives the cores the run kept busy: fewer than ``--parallel``
    on a machine shared with other work explains a speed-up below the number of workers.
    """
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench_parallel(assignment: str, students: int, jobs: int) -> None:
    """Print the serial and parallel times of one class, and the speed-up."""
    with tempfile.TemporaryDirectory(prefix="bench-autograde-") as scratch:
        serial, parallel = Path(scratch) / "serial", Path(scratch) / "parallel"
        course_with_class(serial, assignment, mixed_class(assignment, students))
        shutil.copytree(serial, parallel)
        serial_cpu = children_cpu_s()
        serial_s = timed(serial, "nbgrader", "autograde", assignment)
        parallel_cpu = children_cpu_s()
        parallel_s = timed(
            parallel, "python", "-m", "dropout_grading.parallel", "--jobs", str(jobs), assignment
        )
        serial_cpu, parallel_cpu = parallel_cpu - serial_cpu, children_cpu_s() - parallel_cpu
        same = total_auto_score(serial) == total_auto_score(parallel)
    speed_up = serial_s / parallel_s
    verdict = "ok" if speed_up >= TARGET_SPEED_UP else "MISSED"
    print(f"parallel autograde benchmark: {assignment}, class of {students}, {os.cpu_count()} CPUs")
    for name, seconds, cpu in (
        ("serial (nbgrader autograde)", serial_s, serial_cpu),
        (f"parallel, {jobs} workers", parallel_s, parallel_cpu),
    ):
        print(f"{name:<36} {seconds:8.1f} s  ({cpu / seconds:.2f} cores busy)")
    print(f"{'speed-up':<36} {speed_up:8.2f} x  target >= {TARGET_SPEED_UP}x: {verdict}")
    print(f"{'same total score in both gradebooks':<36} {'yes' if same else 'NO'}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    everything = sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir())
    parser.add_argument("--assignment", nargs="+", choices=everything, default=everything)
    parser.add_argument("--students", type=int, help="class size (default 50; 100 with --parallel)")
    parser.add_argument("--parallel", type=int, metavar="JOBS", help="compare serial and parallel")
    args = parser.parse_args()
    if args.students is not None and args.students < 1:
        parser.error(f"--students must be >= 1, got {args.students}")
    if args.parallel is not None and args.parallel < 1:
        parser.error(f"--parallel must be >= 1 workers, got {args.parallel}")
    for assignment in args.assignment:
        if args.parallel is not None:
            bench_parallel(assignment, args.students or 100, args.parallel)
            continue
        rows = bench(assignment, args.students or 50)
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
