"""Instructor audit: regrade every submission out of process and compare with the gradebook.

``python -m dropout_grading.audit --assignment ch2_inverted_scaling`` (``make audit``),
run in the course directory after ``nbgrader autograde``.

Why: autograding runs the checks inside the student's own kernel, where a student's cell can
replace ``numpy`` functions or the grader itself (``ch2.check = lambda *a, **k: None``) and pass
every test. The audit runs no student code in its own process. For each submission in
``submitted/<student>/<assignment>/`` it starts a fresh worker process (memory-limited, every
request under nbgrader's per-cell timeout), executes there the submission's code cells in
notebook order (read-only cells from the instructor's source, as nbgrader restores them), and at
each test cell reruns that cell's ``check`` calls (from the source stored in the gradebook, hidden
tests included) in the audit process, calling the student's functions through proxies. A test
cell scores its points if all its checks pass, as in nbgrader. The scores are compared with the
autograde scores in the gradebook; any difference, and any submission the gradebook lacks, is
flagged and makes the command exit with status 1. Beside the scores the audit lists red flags in
the editable cells' source (monkeypatching of imported modules, profiler changes, imports of the
reference) for an instructor to read.

A runaway submission (infinite loop, huge allocation) only costs its own cells: its worker is
interrupted at the timeout and killed if it does not recover, and the other submissions are
audited as usual. The audit only reads the gradebook.
"""

from __future__ import annotations

import argparse
import functools
import glob
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from . import ASSIGNMENT_MODULES, load_assignment
from .framework import Assignment, CheckFailure
from .notebook import (
    AutogradedCell,
    CheckCall,
    CodeCell,
    SourceCell,
    audit_plan,
    check_calls,
    red_flags,
)
from .sandbox import Worker, WorkerDied

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MEMORY_MB = 4096


@dataclass(frozen=True)
class NotebookSpec:
    """One notebook of the assignment as the gradebook stores its source."""

    name: str
    source_cells: dict[str, SourceCell]
    points: dict[str, float]  # test cell -> max score
    calls: dict[str, list[CheckCall]]  # test cell -> its check calls (hidden tests included)


@dataclass
class CellScore:
    """A test cell's score from autograde (None: not in the gradebook) and from the audit."""

    notebook: str
    grade_id: str
    points: float
    autograde: float | None
    audit: float = 0.0
    failure: str | None = None

    @property
    def differs(self) -> bool:
        return self.autograde is None or abs(self.autograde - self.audit) > 1e-9


@dataclass
class SubmissionAudit:
    """The audit of one student's submission."""

    student: str
    cells: list[CellScore] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def flagged(self) -> bool:
        return any(cell.differs for cell in self.cells)

    def total(self, which: str) -> float | None:
        scores = [getattr(cell, which) for cell in self.cells]
        return None if any(s is None for s in scores) else sum(scores)


def read_gradebook(
    db_url: str, course_id: str, assignment_id: str, students: Sequence[str]
) -> tuple[list[NotebookSpec], dict[tuple[str, str, str], float | None]]:
    """The assignment's notebooks (source cells, test cells) and every autograde test score.

    Scores are keyed by (student, notebook, grade_id); a missing grade maps to None.
    """
    from nbgrader.api import Gradebook, MissingEntry  # only the instructor's side needs nbgrader

    specs, scores = [], {}
    with Gradebook(db_url, course_id) as gradebook:
        assignment = gradebook.find_assignment(assignment_id)
        for notebook in assignment.notebooks:
            solutions = {cell.name for cell in notebook.solution_cells}
            points = {
                cell.name: float(cell.max_score)
                for cell in notebook.grade_cells
                if cell.cell_type == "code" and cell.name not in solutions
            }
            source_cells = {
                cell.name: SourceCell(cell.source, bool(cell.locked), cell.name in points)
                for cell in notebook.source_cells
            }
            calls = {name: check_calls(source_cells[name].source) for name in points}
            specs.append(NotebookSpec(notebook.name, source_cells, points, calls))
            for student in students:
                for grade_id in points:
                    try:
                        grade = gradebook.find_grade(
                            grade_id, notebook.name, assignment_id, student
                        )
                        score = grade.auto_score
                    except MissingEntry:
                        score = None
                    scores[student, notebook.name, grade_id] = score
    return specs, scores


def run_test_cell(assignment: Assignment, worker: Worker, calls: Sequence[CheckCall]) -> str | None:
    """Rerun a test cell's checks against the worker's functions; the failure text, or None."""
    worker.deadline = time.monotonic() + worker.timeout
    try:
        for call in calls:
            functions = {arg: worker.function(name) for arg, name in call.functions.items()}
            assignment.run(call.name, **functions, **call.parameters)
    except CheckFailure as failure:
        return f"{type(failure).__name__}: {failure}"
    except Exception as error:  # a check tripped over an odd value the student returned
        return f"{type(error).__name__}: {error}"
    finally:
        worker.deadline = None
    return None


def audit_notebook(
    assignment: Assignment,
    checks_module: str,
    spec: NotebookSpec,
    cells: Sequence[dict],
    *,
    workdir: str,
    timeout: float,
    memory_mb: int,
) -> tuple[dict[str, str | None], list[str]]:
    """Audit one submitted notebook: failure (or None) per test cell, and notes."""
    plan = audit_plan(cells, spec.source_cells)
    notes = red_flags(plan, assignment.forbidden_modules)
    failures: dict[str, str | None] = {}
    with Worker(checks_module, cwd=workdir, timeout=timeout, memory_mb=memory_mb) as worker:
        for step in plan:
            if isinstance(step, AutogradedCell):
                failures[step.grade_id] = run_test_cell(
                    assignment, worker, spec.calls[step.grade_id]
                )
            elif isinstance(step, CodeCell) and worker.alive:
                try:
                    worker.run_cell(step.source)
                except WorkerDied:
                    pass  # its test cells fail; the note says why
        notes += worker.notes
    return failures, notes


def audit_submission(
    student: str,
    submission_dir: Path,
    specs: Sequence[NotebookSpec],
    scores: dict[tuple[str, str, str], float | None],
    assignment: Assignment,
    checks_module: str,
    *,
    timeout: float,
    memory_mb: int,
) -> SubmissionAudit:
    """Audit every notebook of one student's submission (a missing one scores 0)."""
    started = time.monotonic()
    result = SubmissionAudit(student)
    with tempfile.TemporaryDirectory(prefix=f"audit-{student}-") as scratch:
        workdir = shutil.copytree(submission_dir, Path(scratch) / "work")
        for spec in specs:
            path = submission_dir / f"{spec.name}.ipynb"
            failures: dict[str, str | None] = {}
            try:
                cells = json.loads(path.read_text())["cells"]
            except (OSError, ValueError, KeyError) as error:
                result.notes.append(f"{spec.name}.ipynb cannot be read ({error})")
            else:
                failures, notes = audit_notebook(
                    assignment,
                    checks_module,
                    spec,
                    cells,
                    workdir=str(workdir),
                    timeout=timeout,
                    memory_mb=memory_mb,
                )
                result.notes += [f"{spec.name}: {note}" for note in notes]
            for grade_id, points in spec.points.items():
                failure = failures.get(grade_id, "not run")
                cell = CellScore(spec.name, grade_id, points, scores[student, spec.name, grade_id])
                cell.audit, cell.failure = (points, None) if failure is None else (0.0, failure)
                result.cells.append(cell)
    result.seconds = time.monotonic() - started
    return result


def _fmt(score: float | None, points: float) -> str:
    return f"{'-' if score is None else f'{score:g}'}/{points:g}"


def report(audits: Sequence[SubmissionAudit], assignment_id: str) -> str:
    """The per-student table, then the differences and notes of each student."""
    lines = [
        f"Audit of {assignment_id}: {len(audits)} submission(s), test cells rerun out of process",
        f"{'student':<24} {'autograde':>10} {'audit':>10} {'seconds':>8}  result",
    ]
    for audit in audits:
        points = sum(cell.points for cell in audit.cells)
        lines.append(
            f"{audit.student:<24} {_fmt(audit.total('autograde'), points):>10} "
            f"{_fmt(audit.total('audit'), points):>10} {audit.seconds:>8.1f}  "
            f"{'FLAGGED' if audit.flagged else 'ok'}"
        )
    for audit in audits:
        for cell in audit.cells:
            if cell.differs:
                lines.append(
                    f"  {audit.student}: {cell.notebook}/{cell.grade_id}: autograde "
                    f"{_fmt(cell.autograde, cell.points)}, audit {_fmt(cell.audit, cell.points)}"
                    + (f" ({cell.failure.splitlines()[0][:160]})" if cell.failure else "")
                )
        lines += [f"  {audit.student}: note: {note}" for note in audit.notes]
    return "\n".join(lines)


def course_settings(root: Path):
    """nbgrader's CourseDirectory and the cell timeout, from ``nbgrader_config.py`` in ``root``."""
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    coursedir = CourseDirectory(config=config, root=str(root.resolve()))
    timeout = config.Execute.timeout if "timeout" in config.Execute else DEFAULT_TIMEOUT_S
    return coursedir, float(timeout)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignment", required=True, choices=sorted(ASSIGNMENT_MODULES))
    parser.add_argument("--course-dir", type=Path, default=Path.cwd())
    parser.add_argument("--student", default="*", help="student id or glob (default: all)")
    parser.add_argument("--timeout", type=float, help="seconds per cell (default: nbgrader's)")
    parser.add_argument("--memory-mb", type=int, default=DEFAULT_MEMORY_MB)
    parser.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1))
    args = parser.parse_args(argv)

    coursedir, config_timeout = course_settings(args.course_dir)
    timeout = args.timeout or config_timeout
    pattern = coursedir.format_path(coursedir.submitted_directory, args.student, args.assignment)
    submissions = {Path(path).parent.name: Path(path) for path in sorted(glob.glob(pattern))}
    if not submissions:
        print(f"no submissions match {pattern}", file=sys.stderr)
        return 2
    checks_module = ASSIGNMENT_MODULES[args.assignment]
    assignment = load_assignment(args.assignment)
    specs, scores = read_gradebook(
        coursedir.db_url, coursedir.course_id, args.assignment, list(submissions)
    )
    audit = functools.partial(
        audit_submission,
        specs=specs,
        scores=scores,
        assignment=assignment,
        checks_module=checks_module,
        timeout=timeout,
        memory_mb=args.memory_mb,
    )
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        audits = list(pool.map(audit, submissions, submissions.values()))
    print(report(audits, args.assignment))
    return 1 if any(audit.flagged for audit in audits) else 0


if __name__ == "__main__":
    sys.exit(main())
