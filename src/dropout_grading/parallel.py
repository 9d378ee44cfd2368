"""Parallel autograding: nbgrader autograde in N worker processes, with progress and a summary.

``python -m dropout_grading.parallel --jobs 2 [--force] [--student GLOB] [assignment ...]``
(``make autograde JOBS=2``), run in the course directory after ``nbgrader generate_assignment``.

Design. The parent lists the submissions in ``submitted/<student>/<assignment>/`` that
``nbgrader autograde`` would grade (not graded yet, or submitted again since; all of them with
``--force``) and hands them out, one submission per task, to N worker processes. Each worker is
an ``AutogradeApp`` loaded with the course's own configuration (per-cell timeout included) that
grades with nbgrader's ``Autograde`` converter, exactly as the serial command does, with one
change: ``CourseDirectory.db_url`` points at the worker's private copy of the gradebook (a
snapshot taken before the run), so no two processes ever write the same SQLite file. After each
submission the worker reads back what autograde wrote for it (submission timestamp, late
penalties, every grade's ``auto_score`` and ``needs_manual_grade``, every comment's
``auto_comment``) and the parent, the only writer of the course's gradebook, applies it there
through ``nbgrader.api``. The autograded notebooks are written by the workers straight to
``autograded/``, as serial grading writes them.

Student code runs in the kernel each worker starts, so a submission that raises or loops costs
only its own cells (the timeout) and never the other submissions. ``--jobs 1`` runs
``nbgrader autograde`` itself. The exit status is 1 when a submission could not be graded.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import multiprocessing
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from tqdm import tqdm

TIMEOUT_ERRORS = frozenset({"CellTimeoutError", "KeyboardInterrupt"})
"""Error names nbgrader's Execute leaves in a cell it stopped at ``c.Execute.timeout``."""
SQLITE_PREFIX = "sqlite:///"

CellKey = tuple[str, str]
"""(notebook, cell name) of one grade or comment."""


@dataclass(frozen=True)
class SubmissionRecord:
    """What ``nbgrader autograde`` writes to the gradebook for one submission."""

    timestamp: datetime | None
    late_penalties: dict[str, float | None]
    grades: dict[CellKey, tuple[float | None, bool]]
    """(auto_score, needs_manual_grade) per grade."""
    comments: dict[CellKey, str | None]
    """auto_comment per comment."""


@dataclass(frozen=True)
class Outcome:
    """How grading one submission went, as a worker reports it to the parent."""

    assignment: str
    student: str
    graded: bool
    record: SubmissionRecord | None
    timed_out: bool = False
    raised: bool = False
    log: str = ""


@dataclass
class Tally:
    """Submissions per outcome, for the summary line."""

    graded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    timed_out: list[str] = field(default_factory=list)
    raised: list[str] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        """Count ``outcome`` under every heading it belongs to."""
        name = f"{outcome.student}/{outcome.assignment}"
        (self.graded if outcome.graded else self.failed).append(name)
        if outcome.timed_out:
            self.timed_out.append(name)
        if outcome.raised:
            self.raised.append(name)


# --- The course and its submissions ---------------------------------------------------------------


def usable_cores() -> int:
    """Cores this process may run on (the default number of workers, as ``nproc`` counts)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def load_app(root: Path, db_url: str | None = None):
    """An ``AutogradeApp`` configured as ``nbgrader autograde`` run in ``root`` would be.

    ``db_url`` replaces the gradebook the configuration names (a worker's private copy).
    """
    from nbgrader.apps.autogradeapp import AutogradeApp

    app = AutogradeApp()
    app.initialize([], root=str(root))
    if db_url is not None:
        app.coursedir.db_url = db_url
    return app


def gradebook_path(db_url: str) -> Path:
    """The SQLite file of ``db_url``; other databases are refused (run with ``--jobs 1``)."""
    if not db_url.startswith(SQLITE_PREFIX):
        raise SystemExit(
            f"parallel autograding merges per-worker SQLite gradebooks, but the course's "
            f"CourseDirectory.db_url is {db_url!r}: grade with --jobs 1 (JOBS=1)"
        )
    path = Path(db_url.removeprefix(SQLITE_PREFIX))
    if not path.is_file():
        raise SystemExit(f"no gradebook at {path}: run `make release` first")
    return path


def needs_grading(coursedir, assignment: str, student: str, force: bool) -> bool:
    """Whether ``nbgrader autograde`` would grade this submission (its ``init_destination``).

    Yes when it has not been graded, with ``force``, or when it was submitted again after grading
    (the ``timestamp.txt`` in ``submitted/`` is newer than the one in ``autograded/``).
    """
    if student in coursedir.student_id_exclude.split(","):
        return False
    graded = coursedir.format_path(coursedir.autograded_directory, student, assignment)
    if force or not os.path.exists(graded):
        return True
    submitted = coursedir.format_path(coursedir.submitted_directory, student, assignment)
    new, old = coursedir.get_existing_timestamp(submitted), coursedir.get_existing_timestamp(graded)
    return new is not None and old is not None and new > old


def pending_submissions(
    coursedir, assignments: Sequence[str], student_glob: str, force: bool
) -> list[tuple[str, str]]:
    """(assignment, student) of every submission to grade, in the order nbgrader grades them.

    ``assignments`` and ``student_glob`` are shell patterns, as nbgrader's arguments are; a
    submission folder without a notebook is skipped, as nbgrader skips it.
    """
    step = coursedir.submitted_directory
    pattern = re.compile(
        coursedir.format_path(step, "(?P<student>[^/]+)", "(?P<assignment>[^/]+)", escape=True)
    )
    found = set()
    for assignment in assignments:
        for folder in glob.glob(coursedir.format_path(step, student_glob, assignment)):
            match = pattern.fullmatch(folder)
            if match and glob.glob(os.path.join(folder, "*.ipynb")):
                found.add((folder, match["assignment"], match["student"]))
    return [
        (assignment, student)
        for _, assignment, student in sorted(found)
        if needs_grading(coursedir, assignment, student, force)
    ]


def snapshot(gradebook: Path, destination: Path) -> Path:
    """A consistent copy of the SQLite ``gradebook`` at ``destination`` (SQLite's backup API)."""
    with (
        contextlib.closing(sqlite3.connect(gradebook)) as source,
        contextlib.closing(sqlite3.connect(destination)) as copy,
    ):
        source.backup(copy)
    return destination


# --- Workers --------------------------------------------------------------------------------------

_worker_app = None
"""The worker process's ``AutogradeApp`` (set by ``start_worker``)."""


def start_worker(root: str, gradebook_snapshot: str, scratch: str) -> None:
    """Set up a worker process: its own copy of the gradebook and an app that writes to it.

    The terminal belongs to the parent's progress bar: the worker's stderr (SQLAlchemy's
    warnings about nbgrader's sessions, its kernels' start-up messages) goes to a file in
    ``scratch``; what nbgrader logs about a submission is reported with its outcome.
    """
    global _worker_app
    private = Path(scratch) / f"gradebook-{os.getpid()}.db"
    shutil.copyfile(gradebook_snapshot, private)
    with open(Path(scratch) / f"worker-{os.getpid()}.log", "w") as log:
        os.dup2(log.fileno(), sys.stderr.fileno())
    _worker_app = load_app(Path(root), f"{SQLITE_PREFIX}{private}")
    for handler in list(_worker_app.log.handlers):  # the parent shows progress on the terminal
        _worker_app.log.removeHandler(handler)


def grade_submission(assignment: str, student: str, force: bool) -> Outcome:
    """Autograde one submission in this worker (nbgrader's converter) and report how it went."""
    from nbgrader.converters import Autograde
    from nbgrader.utils import capture_log

    app = _worker_app
    app.coursedir.assignment_id, app.coursedir.student_id = assignment, student
    converter = Autograde(coursedir=app.coursedir, parent=app)
    converter.force = force
    result = capture_log(converter)
    record = read_record(app.coursedir.db_url, app.coursedir.course_id, assignment, student)
    log = result.get("log", "") + result.get("error", "")
    if not result["success"]:
        return Outcome(assignment, student, graded=False, record=record, log=log)
    folder = app.coursedir.format_path(app.coursedir.autograded_directory, student, assignment)
    timed_out, raised = cell_errors(sorted(Path(folder).glob("*.ipynb")))
    return Outcome(assignment, student, True, record, timed_out, raised, log)


def cell_errors(notebooks: Sequence[Path]) -> tuple[bool, bool]:
    """(a cell was stopped at the timeout, a cell other than a test cell raised) in ``notebooks``.

    A test cell (grade, not solution) that raises is an ordinary failed test; an answer or
    read-only cell that raises means the student's code crashed.
    """
    timed_out = raised = False
    for path in notebooks:
        for cell in json.loads(path.read_text())["cells"]:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            is_test = meta.get("grade", False) and not meta.get("solution", False)
            for output in cell.get("outputs", []):
                if output["output_type"] != "error":
                    continue
                if output["ename"] in TIMEOUT_ERRORS:
                    timed_out = True
                elif not is_test:
                    raised = True
    return timed_out, raised


# --- The gradebook --------------------------------------------------------------------------------


@contextlib.contextmanager
def open_gradebook(db_url: str, course_id: str) -> Iterator:
    """nbgrader's ``Gradebook`` at ``db_url``, with SQLAlchemy's warnings about its sessions off."""
    from nbgrader.api import Gradebook

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Gradebook(db_url, course_id) as gradebook:
            yield gradebook


def read_record(
    db_url: str, course_id: str, assignment: str, student: str
) -> SubmissionRecord | None:
    """What the gradebook at ``db_url`` holds for one submission (None if it has none)."""
    from nbgrader.api import MissingEntry

    with open_gradebook(db_url, course_id) as gradebook:
        try:
            submission = gradebook.find_submission(assignment, student)
        except MissingEntry:
            return None
        return SubmissionRecord(
            timestamp=submission.timestamp,
            late_penalties={nb.name: nb.late_submission_penalty for nb in submission.notebooks},
            grades={
                (nb.name, grade.name): (grade.auto_score, grade.needs_manual_grade)
                for nb in submission.notebooks
                for grade in nb.grades
            },
            comments={
                (nb.name, comment.name): comment.auto_comment
                for nb in submission.notebooks
                for comment in nb.comments
            },
        )


def merge_record(gradebook, assignment: str, student: str, record: SubmissionRecord) -> None:
    """Write one submission's autograde results into ``gradebook`` (an open nbgrader Gradebook).

    The same calls serial autograde makes: the student and the submission are created if new
    (the submission with a row per grade and comment), then the values autograde sets are copied.
    """
    gradebook.update_or_create_student(student)
    extra = {"timestamp": record.timestamp} if record.timestamp is not None else {}
    submission = gradebook.update_or_create_submission(assignment, student, **extra)
    for notebook in submission.notebooks:
        notebook.late_submission_penalty = record.late_penalties[notebook.name]
        for grade in notebook.grades:
            grade.auto_score, grade.needs_manual_grade = record.grades[notebook.name, grade.name]
        for comment in notebook.comments:
            comment.auto_comment = record.comments[notebook.name, comment.name]
    gradebook.db.commit()


# --- The run --------------------------------------------------------------------------------------


def summary(tally: Tally, seconds: float, jobs: int) -> str:
    """The line printed at the end: counts, and the submissions behind the worrying ones."""

    def named(names: list[str]) -> str:
        return f" ({', '.join(names)})" if names else ""

    return (
        f"autograde: {len(tally.graded)} graded, {len(tally.failed)} failed{named(tally.failed)}, "
        f"{len(tally.timed_out)} timed out{named(tally.timed_out)}, "
        f"{len(tally.raised)} raised outside the tests{named(tally.raised)}; "
        f"{len(tally.graded) + len(tally.failed)} submissions in {seconds:.1f} s "
        f"with {jobs} workers"
    )


def grade_in_parallel(
    coursedir, submissions: Sequence[tuple[str, str]], jobs: int, force: bool
) -> Tally:
    """Grade ``submissions`` in ``jobs`` workers, merging each into the course's gradebook."""
    main_gradebook = gradebook_path(coursedir.db_url)
    with tempfile.TemporaryDirectory(prefix="autograde-") as scratch:
        copy = snapshot(main_gradebook, Path(scratch) / "snapshot.db")
        pool = ProcessPoolExecutor(
            max_workers=jobs,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=start_worker,
            initargs=(coursedir.root, str(copy), scratch),
        )
        with pool, open_gradebook(coursedir.db_url, coursedir.course_id) as gradebook:
            try:
                return merge_as_they_finish(pool, gradebook, submissions, force)
            except KeyboardInterrupt:
                pool.shutdown(wait=False, cancel_futures=True)
                raise


def merge_as_they_finish(
    pool: ProcessPoolExecutor, gradebook, submissions: Sequence[tuple[str, str]], force: bool
) -> Tally:
    """Hand ``submissions`` to ``pool``; merge each outcome into ``gradebook`` as it arrives.

    The progress bar (stderr) shows done/total, the rate and the time left; a submission that
    could not be graded is reported above it with nbgrader's log.
    """
    futures = {pool.submit(grade_submission, a, s, force): (a, s) for a, s in submissions}
    tally = Tally()
    with tqdm(total=len(futures), desc="autograde", unit="submission") as progress:
        for future in as_completed(futures):
            outcome = collect(future, *futures[future])
            if outcome.record is not None:
                merge_record(gradebook, outcome.assignment, outcome.student, outcome.record)
            if not outcome.graded:
                progress.write(f"{outcome.student}/{outcome.assignment}: FAILED\n{outcome.log}")
            tally.add(outcome)
            progress.update()
    return tally


def collect(future: Future, assignment: str, student: str) -> Outcome:
    """The worker's outcome, or a failed one if its worker process died."""
    try:
        return future.result()
    except BrokenProcessPool as error:
        return Outcome(assignment, student, graded=False, record=None, log=repr(error))


def grade_serially(assignments: Sequence[str], student_glob: str, force: bool) -> int:
    """``nbgrader autograde`` itself, once per assignment pattern; its exit status."""
    nbgrader = shutil.which("nbgrader") or "nbgrader"
    status = 0
    for assignment in assignments:
        command = [nbgrader, "autograde", assignment, "--student", student_glob]
        status |= subprocess.run(command + (["--force"] if force else []), check=False).returncode
    return status


def jobs_argument(text: str) -> int:
    """``--jobs``: an integer >= 1."""
    try:
        jobs = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--jobs must be an integer >= 1, got {text!r}") from None
    if jobs < 1:
        raise argparse.ArgumentTypeError(f"--jobs must be an integer >= 1, got {jobs}")
    return jobs


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m dropout_grading.parallel", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--jobs",
        type=jobs_argument,
        default=usable_cores(),
        help="worker processes, >= 1 (default: the number of cores); 1 runs nbgrader autograde",
    )
    parser.add_argument("--force", action="store_true", help="regrade submissions already graded")
    parser.add_argument("--student", default="*", help="students to grade (pattern, default *)")
    parser.add_argument("assignments", nargs="*", default=["*"], help="assignments (default *)")
    args = parser.parse_args(argv)
    if any(os.sep in name for name in [*args.assignments, args.student]):
        parser.error("assignment and student patterns name folders, without a path separator")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Grade the course in the current directory; 1 if a submission could not be graded."""
    args = parse_args(argv)
    if args.jobs == 1:
        return grade_serially(args.assignments, args.student, args.force)
    coursedir = load_app(Path.cwd()).coursedir
    submissions = pending_submissions(coursedir, args.assignments, args.student, args.force)
    if not submissions:
        print("autograde: nothing to grade (every submission is graded; --force regrades)")
        return 0
    jobs = min(args.jobs, len(submissions))
    started = time.perf_counter()
    tally = grade_in_parallel(coursedir, submissions, jobs, args.force)
    print(summary(tally, time.perf_counter() - started, jobs), flush=True)
    return 1 if tally.failed else 0


if __name__ == "__main__":
    sys.exit(main())
