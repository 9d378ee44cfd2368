"""nbgrader end to end, in a temporary course directory copied from the repository.

``nbgrader generate_assignment`` reproduces the committed ``exercises/``; ``nbgrader validate``
passes every solution and fails every test of every release; then a class of submissions per
assignment (the solution, the untouched release, the correct alternatives and classic mistakes
of ``tests/wrong``, two cheats and a runaway loop) goes through ``nbgrader autograde``, and the
audit must agree with it except on the cheats. Assignments are found in ``solutions/``; a new one
plugs in through its ``tests/wrong/<assignment>.py``.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from wrong import ROOT, Variant, answers, submission, variants

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
ASSIGNMENTS = sorted(
    p.name
    for p in (ROOT / "solutions").iterdir()
    if p.is_dir() and p.name in os.environ.get("DC_ASSIGNMENTS", p.name).split(",")
)
"""Every assignment; ``DC_ASSIGNMENTS=ch2_inverted_scaling,...`` limits a run while iterating."""
CELL_TIMEOUT_S = 8  # the temporary course's c.Execute.timeout: what the runaway costs
GRADER_CHEAT = """
import sys
for _name, _module in list(sys.modules.items()):
    if _name.startswith("dropout_grading.") and hasattr(_module, "check"):
        _module.check = lambda *args, **kwargs: None
"""


def run(course: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command of the course's environment in ``course``."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        cwd=course,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def first_function(assignment: str) -> str:
    """Name of the first function the students write (the runaway loop follows it)."""
    for source in answers(assignment, Variant("solution")).values():
        for node in ast.parse(source).body if "def " in source else ():
            if isinstance(node, ast.FunctionDef):
                return node.name
    raise AssertionError(f"{assignment} has no answer cell with a function")


def students(assignment: str) -> list[Variant]:
    """The class submitted for ``assignment``: every variant, two cheats and a runaway."""
    first = first_function(assignment)
    return [
        Variant("solution"),
        Variant("untouched", base="release"),
        *variants(assignment),
        *variants(assignment, "CHEATS"),
        Variant("cheat_patches_grader", base="release", append={first: GRADER_CHEAT}),
        Variant("runaway", append={first: "while True:\n    pass"}),
    ]


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A course directory with the repository's config and sources, assignments generated."""
    root = tmp_path_factory.mktemp("course")
    shutil.copy(ROOT / "nbgrader_config.py", root)
    shutil.copytree(ROOT / "solutions", root / "solutions")
    with (root / "nbgrader_config.py").open("a") as config:
        config.write(f"\nc.Execute.timeout = {CELL_TIMEOUT_S}\n")
    run(root, "nbgrader", "generate_assignment", "*", "--force")
    return root


def read_scores(course: Path) -> dict[tuple[str, str], dict[str, float | None]]:
    """(assignment, student) -> {test cell: autograde score} from the course's gradebook."""
    from nbgrader.api import Gradebook

    scores: dict[tuple[str, str], dict[str, float | None]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SQLAlchemy's warnings about nbgrader's sessions
        with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "dropout-hands-on") as gradebook:
            for assignment in ASSIGNMENTS:
                for sub in gradebook.find_assignment(assignment).submissions:
                    scores[assignment, sub.student.id] = {
                        grade.name: grade.auto_score
                        for notebook in sub.notebooks
                        for grade in notebook.grades
                        if grade.cell_type == "code"
                    }
    return scores


def max_points(assignment: str) -> dict[str, float]:
    """Test cell -> points, from the source notebook."""
    (path,) = (ROOT / "solutions" / assignment).glob("*.ipynb")
    points = {}
    for cell in json.loads(path.read_text())["cells"]:
        meta = cell["metadata"].get("nbgrader", {})
        if cell["cell_type"] == "code" and meta.get("grade") and not meta.get("solution"):
            points[meta["grade_id"]] = float(meta["points"])
    return points


@pytest.fixture(scope="module")
def graded(course: Path) -> dict[tuple[str, str], dict[str, float | None]]:
    """Submit the class of every assignment and autograde all of it with one command."""
    for assignment in ASSIGNMENTS:
        for student in students(assignment):
            folder = course / "submitted" / student.name / assignment
            folder.mkdir(parents=True)
            (path,) = (ROOT / "exercises" / assignment).glob("*.ipynb")
            (folder / path.name).write_text(json.dumps(submission(assignment, student)))
    run(course, "nbgrader", "autograde", "*")
    return read_scores(course)


def test_release_reproduces_the_committed_exercises(course: Path):
    for assignment in ASSIGNMENTS:
        generated = sorted(
            p.relative_to(course / "exercises")
            for p in (course / "exercises" / assignment).rglob("*")
        )
        committed = sorted(
            p.relative_to(ROOT / "exercises") for p in (ROOT / "exercises" / assignment).rglob("*")
        )
        assert generated == committed, "run `make release` and commit exercises/"
        for relative in committed:
            assert (course / "exercises" / relative).read_bytes() == (
                ROOT / "exercises" / relative
            ).read_bytes()


def _regions(source: str, begin: str, end: str) -> list[str]:
    """Non-empty lines between ``begin`` and ``end`` markers."""
    lines, inside = [], False
    for line in source.splitlines():
        if begin in line or end in line:
            inside = begin in line
        elif inside and line.strip():
            lines.append(line.strip())
    return lines


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_hides_solutions_and_hidden_tests(assignment: str):
    (source_path,) = (ROOT / "solutions" / assignment).glob("*.ipynb")
    (release_path,) = (ROOT / "exercises" / assignment).glob("*.ipynb")
    source = {c["id"]: "".join(c["source"]) for c in json.loads(source_path.read_text())["cells"]}
    released = json.loads(release_path.read_text())["cells"]
    assert [c["id"] for c in released] == list(source)
    for cell in released:
        text = "".join(cell["source"])
        assert "SOLUTION" not in text and "HIDDEN TESTS" not in text
        hidden = _regions(source[cell["id"]], "BEGIN SOLUTION", "END SOLUTION")
        hidden += _regions(source[cell["id"]], "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
        assert not [line for line in hidden if line in text], cell["id"]
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


def test_validate_passes_every_solution(course: Path):
    notebooks = sorted(str(p) for p in (course / "solutions").glob("*/*.ipynb"))
    result = run(course, "nbgrader", "validate", *notebooks)
    assert result.stdout.count("Success! Your notebook passes all the tests.") == len(notebooks)


def test_validate_invert_fails_every_test_of_the_release(course: Path):
    notebooks = sorted(str(p) for p in (course / "exercises").glob("*/*.ipynb"))
    result = run(course, "nbgrader", "validate", "--invert", *notebooks)
    assert result.stdout.count("Success! The notebook does not pass any tests.") == len(notebooks)


CLASS = [pytest.param(a, s, id=f"{a}-{s.name}") for a in ASSIGNMENTS for s in students(a)]


@pytest.mark.parametrize(("assignment", "student"), CLASS)
def test_autograde_scores_each_submission_as_expected(graded, assignment: str, student: Variant):
    points = max_points(assignment)
    if student.name == "untouched":
        expected = dict.fromkeys(points, 0.0)
    elif student.name.startswith("cheat"):
        expected = points  # the cheat fools the in-kernel checks (the audit catches it)
    else:  # the runaway's functions are defined before its loop times out
        expected = {cell: 0.0 if cell in student.loses else p for cell, p in points.items()}
    assert graded[assignment, student.name] == expected


def test_autograde_is_deterministic(course: Path, graded):
    run(course, "nbgrader", "autograde", "*", "--force", "--student", "alternative_*")
    again = read_scores(course)
    rerun = [key for key in graded if key[1].startswith("alternative_")]
    assert rerun and all(again[key] == graded[key] for key in rerun)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_a_runaway_cell_times_out_alone(course: Path, graded, assignment: str):
    (path,) = (course / "autograded" / "runaway" / assignment).glob("*.ipynb")
    (looping,) = [
        c for c in json.loads(path.read_text())["cells"] if "while True" in "".join(c["source"])
    ]
    errors = {o.get("ename") for o in looping["outputs"] if o["output_type"] == "error"}
    assert errors & {"KeyboardInterrupt", "CellTimeoutError"}
    assert all(score is not None for score in graded[assignment, "runaway"].values())


def audit_rows(output: str) -> dict[str, str]:
    """student -> "ok" or "FLAGGED", from the audit's table."""
    rows = {}
    for line in output.splitlines():
        fields = line.split()
        if len(fields) == 5 and fields[-1] in ("ok", "FLAGGED"):
            rows[fields[0]] = fields[-1]
    return rows


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_audit_flags_exactly_the_cheats(course: Path, graded, assignment: str):
    result = run(
        course,
        "python",
        "-m",
        "dropout_grading.audit",
        "--assignment",
        assignment,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    rows = audit_rows(result.stdout)
    assert set(rows) == {s.name for s in students(assignment)}
    cheats = {s.name for s in students(assignment) if s.name.startswith("cheat")}
    assert {name for name, verdict in rows.items() if verdict == "FLAGGED"} == cheats
    for cheat in variants(assignment, "CHEATS"):
        differing = {
            line.split(":")[1].split("/")[1]
            for line in result.stdout.splitlines()
            if line.startswith(f"  {cheat.name}: ") and "autograde" in line
        }
        assert differing == set(cheat.loses)
    assert "runaway: note:" in result.stdout and "interrupted" in result.stdout


def test_feedback_is_generated(course: Path, graded):
    run(course, "nbgrader", "generate_feedback", "*", "--student", "solution")
    for assignment in ASSIGNMENTS:
        assert list((course / "feedback" / "solution" / assignment).glob("*.html"))
