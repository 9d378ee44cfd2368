"""Parallel autograding (``make autograde JOBS=N``) grades exactly as serial ``nbgrader autograde``.

One course directory is generated (chapter 2's assignment) and given a class: the solution, the
untouched release, a wrong variant, a submission whose answer cell raises, a runaway loop and a
file that is not a notebook. Two copies of it are graded, one by ``nbgrader autograde`` and one
by ``python -m dropout_grading.parallel --jobs 2``; the gradebooks (every table), the autograded
scores and comments and the generated feedback must agree, and the parallel run must report its
progress and name the runaway, the crash and the broken file in its summary.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import sqlite3
import warnings
from pathlib import Path

import nbformat
import pytest

from dropout_grading.parallel import main
from test_nbgrader import CELL_TIMEOUT_S, first_function, max_points, run, students
from wrong import ROOT, Variant, submission, variants

pytestmark = pytest.mark.slow

ASSIGNMENT = "ch2_inverted_scaling"
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?")


def the_class() -> list[Variant]:
    """Correct, unanswered, wrong, crashing and runaway submissions of ``ASSIGNMENT``."""
    crash = {first_function(ASSIGNMENT): "raise RuntimeError('the answer cell crashes')"}
    wrong = next(v for v in variants(ASSIGNMENT) if v.name.startswith("wrong_"))
    runaway = next(s for s in students(ASSIGNMENT) if s.name == "runaway")
    return [
        Variant("solution"),
        Variant("untouched", base="release"),
        wrong,
        Variant("crash", prepend=crash),
        runaway,
    ]


@pytest.fixture(scope="module")
def courses(tmp_path_factory) -> dict:
    """Two copies of one submitted class, graded serially and in parallel, with feedback.

    Keys: the course directories "serial" and "parallel", and each grading command's result.
    """
    root = tmp_path_factory.mktemp("parallel-autograde")
    source = root / "source"
    source.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", source)
    shutil.copytree(ROOT / "solutions" / ASSIGNMENT, source / "solutions" / ASSIGNMENT)
    with (source / "nbgrader_config.py").open("a") as config:
        config.write(f"\nc.Execute.timeout = {CELL_TIMEOUT_S}\n")
    run(source, "nbgrader", "generate_assignment", ASSIGNMENT, "--force")
    (release,) = (ROOT / "exercises" / ASSIGNMENT).glob("*.ipynb")
    for student in the_class():
        folder = source / "submitted" / student.name / ASSIGNMENT
        folder.mkdir(parents=True)
        (folder / release.name).write_text(json.dumps(submission(ASSIGNMENT, student)))
    broken = source / "submitted" / "broken" / ASSIGNMENT
    broken.mkdir(parents=True)
    (broken / release.name).write_text("{not a notebook")

    courses = {way: shutil.copytree(source, root / way) for way in ("serial", "parallel")}
    courses["serial_run"] = run(courses["serial"], "nbgrader", "autograde", "*", check=False)
    courses["parallel_run"] = run(
        courses["parallel"], "python", "-m", "dropout_grading.parallel", "--jobs", "2", check=False
    )
    for way in ("serial", "parallel"):
        run(courses[way], "nbgrader", "generate_feedback", "*", check=False)
    return courses


def gradebook_tables(course: Path) -> dict[str, int]:
    """Table -> number of rows in the course's SQLite gradebook."""
    with contextlib.closing(sqlite3.connect(course / "gradebook.db")) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for table in tables
        }


def gradebook_contents(course: Path) -> dict[str, dict]:
    """student -> everything the gradebook holds about their submission (ids left out)."""
    from nbgrader.api import Gradebook

    contents = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SQLAlchemy's warnings about nbgrader's sessions
        with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "dropout-hands-on") as gradebook:
            for sub in gradebook.find_assignment(ASSIGNMENT).submissions:
                student = sub.student
                contents[student.id] = {
                    "student": (student.first_name, student.last_name, student.email),
                    "submission": (sub.timestamp, sub.extension),
                    "notebooks": {
                        nb.name: {
                            "flags": (nb.flagged, nb.late_submission_penalty),
                            "grades": {
                                g.name: (
                                    g.auto_score,
                                    g.manual_score,
                                    g.extra_credit,
                                    g.needs_manual_grade,
                                )
                                for g in nb.grades
                            },
                            "comments": {
                                c.name: (c.auto_comment, c.manual_comment) for c in nb.comments
                            },
                        }
                        for nb in sub.notebooks
                    },
                }
    return contents


def merged_streams(outputs: list[dict]) -> list[dict]:
    """``outputs`` with each run of consecutive stream outputs of one name made one output."""
    merged: list[dict] = []
    for output in outputs:
        previous = merged[-1] if merged else {}
        if output["output_type"] == "stream" and previous.get("name", "") == output.get("name"):
            merged[-1] = {**previous, "text": previous["text"] + output["text"]}
        else:
            merged.append(dict(output))
    return merged


def autograded_notebooks(course: Path) -> dict[str, list[dict]]:
    """Relative path -> cells of every autograded notebook, as a reader sees them.

    Left out: the kernel's execution timestamps, and how the kernel split a cell's printed text
    into stream messages (timing-dependent even between two serial runs; merged here).
    """
    notebooks = {}
    for path in sorted((course / "autograded").rglob("*.ipynb")):
        cells = nbformat.read(path, as_version=4).cells
        for cell in cells:
            cell.metadata.pop("execution", None)
            cell.outputs = merged_streams(cell.get("outputs", []))
        notebooks[str(path.relative_to(course))] = cells
    return notebooks


def feedback_text(course: Path) -> dict[str, str]:
    """Relative path -> visible text of every feedback page (tags and timestamps left out).

    The tags are left out for the same reason: each stream message is a block of its own.
    """
    return {
        str(path.relative_to(course)): " ".join(
            TIMESTAMP.sub("<time>", re.sub(r"<[^>]*>", " ", path.read_text())).split()
        )
        for path in sorted((course / "feedback").rglob("*.html"))
    }


def test_the_gradebooks_agree_table_by_table(courses):
    assert gradebook_tables(courses["serial"]) == gradebook_tables(courses["parallel"])
    serial = gradebook_contents(courses["serial"])
    assert set(serial) == {s.name for s in the_class()} | {"broken"}
    assert gradebook_contents(courses["parallel"]) == serial


def test_the_scores_are_the_expected_ones(courses):
    contents = gradebook_contents(courses["parallel"])
    points = max_points(ASSIGNMENT)
    for student in the_class():
        if student.name in ("solution", "runaway") or student.name.startswith("wrong_"):
            (notebook,) = contents[student.name]["notebooks"].values()
            scores = {cell: notebook["grades"][cell][0] for cell in points}
            assert scores == {c: 0.0 if c in student.loses else p for c, p in points.items()}


def test_autograded_notebooks_and_feedback_are_identical(courses):
    for read in (autograded_notebooks, feedback_text):
        serial = read(courses["serial"])
        assert len(serial) == len(the_class())
        assert read(courses["parallel"]) == serial


def test_both_report_the_broken_submission_and_the_parallel_summary_names_the_rest(courses):
    serial, parallel = courses["serial_run"], courses["parallel_run"]
    assert serial.returncode == parallel.returncode == 1
    (line,) = [line for line in parallel.stdout.splitlines() if line.startswith("autograde:")]
    assert "5 graded, 1 failed (broken/" in line
    assert re.search(r"1 timed out \(runaway/", line)
    assert re.search(r"1 raised outside the tests \(crash/", line)
    assert re.search(r"\b6/6\b", parallel.stderr), parallel.stderr[-2000:]


def test_graded_submissions_are_left_alone_unless_forced(courses):
    course, before = courses["parallel"], gradebook_contents(courses["parallel"])
    grade = ("python", "-m", "dropout_grading.parallel", "--jobs", "2", "--student", "s*")
    assert "nothing to grade" in run(course, *grade).stdout
    forced = run(course, *grade, "--force", ASSIGNMENT).stdout
    assert "autograde: 1 graded, 0 failed" in forced
    assert gradebook_contents(course) == before


@pytest.mark.parametrize("jobs", ["0", "-1", "two"])
def test_jobs_must_be_a_positive_integer(jobs: str, capsys):
    with pytest.raises(SystemExit):
        main(["--jobs", jobs])
    assert "--jobs must be an integer >= 1" in capsys.readouterr().err
