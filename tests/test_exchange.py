"""nbgrader's exchange end to end, as on a shared JupyterHub: one Unix account per person.

JupyterHub's default spawner starts each user's server as that user's Unix account, and the
assignment list and formgrader call the same exchange code as the command line. So the test
creates three accounts (an instructor, two students), an exchange directory that everyone can
write to (mode 1777: nbgrader's docs ask for ``chmod ugo+rw``; the sticky bit also stops a
student from renaming the course's directory away), a course directory owned by the instructor
with the repository's ``nbgrader_config.py``, and runs every ``nbgrader`` command as the account
that would run it on the hub: release, fetch, submit (one correct and one wrong notebook of
``tests/wrong``), collect, autograde, generate and release feedback, fetch feedback.

What nbgrader 0.9.6 protects with permissions, and what with secret names (see
``nbgrader/exchange/default``): ``inbound`` is ``rwx-wx-wx`` plus setgid (students drop
submissions in but cannot list them) and ``feedback`` is ``rwx--x--x``; each submission is a
directory ``<student>+<assignment>+<timestamp>+<random>`` and each released feedback file is
named by the MD5 of a 128-hex-digit secret written at submission, which only the instructor and
the submitting student (in their nbgrader cache at home) hold. Anyone who knew such a name could
read the file: the protection is that nobody else can list the directories or read the secret.
Hence the homes here are ``0700``: a home others can read would leak the secret.

The accounts must run the course's environment: the venv, the interpreter it was made from
(here ``/root/.pyenv/...``) and the repository (the editable install). When one of those lies
below a directory other users cannot enter (``/root`` is ``0700``), each command runs in a private
mount namespace (``unshare --mount``) where that directory is replaced by an empty ``tmpfs`` into
which only the needed trees are bind-mounted back at their own paths. The machine's permissions
are never changed, nothing outlives the command, and the accounts see nothing else of ``/root``.
The accounts are removed at the end, even when a step fails. The test needs root (CI runs as
root); elsewhere it skips, unless ``DC_REQUIRE_EXCHANGE_TEST=1`` turns the skip into a failure.
"""

from __future__ import annotations

import json
import os
import pwd
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from test_nbgrader import max_points
from wrong import ROOT, Variant, notebook_path, submission, variants

pytestmark = pytest.mark.slow

ASSIGNMENT = "ch2_inverted_scaling"
WRONG = "wrong_not_rescaled"  # the wrong student's variant in tests/wrong/ch2_inverted_scaling.py
BIN = Path(sys.executable).parent
TOOLS = ("useradd", "userdel", "runuser", "unshare", "mount")
REQUIRE_VARIABLE = "DC_REQUIRE_EXCHANGE_TEST"
INSTRUCTOR_STEPS = ("collect", "autograde", "generate_feedback", "release_feedback")


def tool(name: str) -> str:
    """The full path of a system command (the accounts' PATH lacks the sbin directories)."""
    return shutil.which(name) or name


def unavailable(reason: str) -> None:
    """Skip (or fail, where ``DC_REQUIRE_EXCHANGE_TEST=1``, as CI should set) with ``reason``."""
    if os.environ.get(REQUIRE_VARIABLE) == "1":
        pytest.fail(f"{reason} ({REQUIRE_VARIABLE}=1)")
    pytest.skip(reason)


def course_id() -> str:
    """The course id of the repository's ``nbgrader_config.py`` (students' configs must match)."""
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    return config.CourseDirectory.course_id


# --- Running a command as another account ---------------------------------------------------------


def hidden_ancestor(path: Path) -> Path | None:
    """The topmost directory above ``path`` that other users cannot enter (no ``o+x``)."""
    for parent in reversed(path.parents):
        if not parent.stat().st_mode & stat.S_IXOTH:
            return parent
    return None


def environment_trees() -> list[Path]:
    """The directories the course's Python needs: venv, base interpreter, import path."""
    trees = {Path(sys.prefix), Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}
    trees |= {Path(p).resolve() for p in sys.path if p and Path(p).is_dir()}
    return sorted(t for t in trees if not any(o != t and o in t.parents for o in trees))


def namespace_script(stage: Path) -> list[str]:
    """Shell lines that make the environment visible to other users in a private namespace.

    Each needed tree below a hidden directory is bind-mounted to ``stage``, the hidden directory
    is covered by an empty ``tmpfs`` (mode 0755), and the trees are moved back to their paths.
    """
    hidden = {tree: hidden_ancestor(tree) for tree in environment_trees()}
    staged = {tree: stage / str(i) for i, tree in enumerate(t for t, top in hidden.items() if top)}
    commands = []
    for tree, staging in staged.items():
        commands += [[tool("mkdir"), "-p", staging], [tool("mount"), "--bind", tree, staging]]
    for top in sorted({hidden[tree] for tree in staged}):
        commands.append([tool("mount"), "-t", "tmpfs", "-o", "mode=0755", "dc-exchange", top])
    for tree, staging in staged.items():
        commands += [[tool("mkdir"), "-p", tree], [tool("mount"), "--move", staging, tree]]
    return [shlex.join(map(str, command)) for command in commands]


@dataclass(frozen=True)
class Account:
    """A Unix account created for the test, and how to run commands as it."""

    name: str
    home: Path
    mounts: tuple[str, ...]  # namespace_script's lines; empty when no mount is needed

    def run(self, *command: str, cwd: Path | None = None) -> str:
        """Run ``command`` as this account in ``cwd`` (its home by default); stdout + stderr."""
        as_user = [tool("runuser"), "-u", self.name, "--", *command]
        if self.mounts:
            script = "\n".join([*self.mounts, 'exec "$@"'])
            namespace = [tool("unshare"), "--mount", "--propagation", "private", "sh", "-ec"]
            as_user = [*namespace, script, "sh", *as_user]
        env = {
            "HOME": str(self.home),
            "USER": self.name,
            "LOGNAME": self.name,
            "PATH": os.pathsep.join([str(BIN), "/usr/local/bin", "/usr/bin", "/bin"]),
            "LANG": "C.UTF-8",
        }
        result = subprocess.run(
            as_user,
            cwd=cwd or self.home,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"{self.name}: {shlex.join(command)}\n{output[-4000:]}"
        return output

    def nbgrader(self, *args: str, cwd: Path | None = None) -> str:
        return self.run(str(BIN / "nbgrader"), *args, cwd=cwd)

    def probe(self, attempts: dict[str, tuple[str, str]]) -> dict[str, str]:
        """Try each ``name: (operation, path)`` as this account; name -> "ok" or the error.

        Operations: ``list`` (a directory), ``read`` (a file), ``copytree``, ``rename`` (the
        path to a sibling).
        """
        output = self.run(str(BIN / "python"), "-c", PROBE, json.dumps(attempts))
        (line,) = [line for line in output.splitlines() if line.startswith("PROBE ")]
        return json.loads(line.removeprefix("PROBE "))


PROBE = """
import json, os, shutil, sys, tempfile
def attempt(operation, path):
    if operation == "list":
        os.listdir(path)
    elif operation == "read":
        open(path, "rb").read()
    elif operation == "copytree":
        shutil.copytree(path, os.path.join(tempfile.mkdtemp(), "copy"))
    elif operation == "rename":
        os.rename(path, path + "-moved")
results = {}
for name, (operation, path) in json.loads(sys.argv[1]).items():
    try:
        attempt(operation, path)
        results[name] = "ok"
    except OSError as error:
        results[name] = type(error).__name__
print("PROBE", json.dumps(results))
"""


# --- The term -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Term:
    """Where the term happened and what its commands printed."""

    exchange: Path
    course: Path
    instructor: Account
    students: dict[str, Variant]  # account name -> what the student submitted
    accounts: dict[str, Account]
    outputs: dict[tuple[str, str], str]  # (account name, step) -> output


@pytest.fixture(scope="module")
def base_dir() -> Iterator[Path]:
    """A temporary directory all accounts can enter: in ``/tmp`` (``1777``), not ``$TMPDIR``."""
    if os.geteuid() != 0:
        unavailable("needs root to create Unix accounts (CI runs the test suite as root)")
    missing = [command for command in TOOLS if shutil.which(command) is None]
    if missing:
        unavailable(f"needs {', '.join(missing)} to create accounts and run commands as them")
    base = Path(tempfile.mkdtemp(prefix="dc-exchange-", dir="/tmp"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base)


@pytest.fixture(scope="module")
def accounts(base_dir: Path) -> Iterator[dict[str, Account]]:
    """An instructor and two students with private homes; removed again at the end."""
    mounts = tuple(namespace_script(base_dir / "stage"))
    if mounts and subprocess.run([tool("unshare"), "--mount", "true"], check=False).returncode:
        hidden = sorted({str(top) for t in environment_trees() if (top := hidden_ancestor(t))})
        unavailable(
            f"the course's environment lies below {', '.join(hidden)}, which other users cannot "
            "enter, and this machine allows no mount namespace (unshare --mount) to expose it"
        )
    created: list[str] = []  # only accounts this test made are removed
    try:
        accounts = {}
        for role in ("teach", "alice", "bob"):
            name = f"dc{role}{os.getpid()}"
            subprocess.run(
                [tool("useradd"), "--create-home", "--shell", "/bin/sh", name], check=True
            )
            created.append(name)
            home = Path(pwd.getpwnam(name).pw_dir)
            home.chmod(0o700)
            accounts[role] = Account(name, home, mounts)
        yield accounts
    finally:
        for name in created:
            remove = [tool("userdel"), "--force", "--remove", name]
            subprocess.run(remove, capture_output=True, check=False)  # no mail spool: a warning


def hand_over(account: Account, *paths: Path) -> None:
    """Make ``account`` the owner of ``paths`` (files root wrote on the account's behalf)."""
    entry = pwd.getpwnam(account.name)
    for path in paths:
        os.chown(path, entry.pw_uid, entry.pw_gid)


def write_config(account: Account, lines: list[str]) -> None:
    """The account's ``~/.jupyter/nbgrader_config.py`` (as a hub's image or admin would set)."""
    config = account.home / ".jupyter" / "nbgrader_config.py"
    config.parent.mkdir()
    config.write_text("c = get_config()  # noqa: F821\n" + "\n".join(lines) + "\n")
    hand_over(account, config.parent, config)


@pytest.fixture(scope="module")
def term(base_dir: Path, accounts: dict[str, Account]) -> Term:
    """Release, fetch, fill in, submit, collect, autograde, give feedback, fetch it.

    The two students act at the same time (as on a hub), which also halves their share of the
    run time; the instructor's steps run in order.
    """
    exchange, course = base_dir / "exchange", base_dir / "course"
    exchange.mkdir()
    exchange.chmod(0o1777)
    course.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "solutions" / ASSIGNMENT, course / "solutions" / ASSIGNMENT)
    instructor = accounts["teach"]
    subprocess.run([tool("chown"), "-R", f"{instructor.name}:", str(course)], check=True)
    write_config(instructor, [f"c.Exchange.root = {str(exchange)!r}"])
    (wrong,) = [v for v in variants(ASSIGNMENT) if v.name == WRONG]
    students = {accounts["alice"].name: Variant("solution"), accounts["bob"].name: wrong}
    student_accounts = [accounts["alice"], accounts["bob"]]
    for student in student_accounts:
        config = [
            f"c.Exchange.root = {str(exchange)!r}",
            f"c.CourseDirectory.course_id = {course_id()!r}",
        ]
        write_config(student, config)
    outputs: dict[tuple[str, str], str] = {}

    def as_instructor(*steps: str) -> None:
        for step in steps:
            outputs[instructor.name, step] = instructor.nbgrader(*step.split(), cwd=course)

    def fetch_fill_submit(student: Account) -> None:
        outputs[student.name, "list"] = student.nbgrader("list")
        outputs[student.name, "fetch_assignment"] = student.nbgrader("fetch_assignment", ASSIGNMENT)
        notebook = student.home / ASSIGNMENT / notebook_path("exercises", ASSIGNMENT).name
        notebook.write_text(json.dumps(submission(ASSIGNMENT, students[student.name])))
        hand_over(student, notebook)
        outputs[student.name, "submit"] = student.nbgrader("submit", ASSIGNMENT)

    def list_submissions(student: Account) -> None:
        for listing in ("--inbound", "--cached"):
            outputs[student.name, f"list {listing}"] = student.nbgrader("list", listing)

    def fetch_feedback(student: Account) -> None:
        outputs[student.name, "fetch_feedback"] = student.nbgrader("fetch_feedback", ASSIGNMENT)

    as_instructor(f"generate_assignment {ASSIGNMENT}", f"release_assignment {ASSIGNMENT}")
    with ThreadPoolExecutor(len(student_accounts)) as pool:
        for phase in (fetch_fill_submit, list_submissions):
            list(pool.map(phase, student_accounts))  # list() re-raises a student's failure
        as_instructor("list --inbound")
        as_instructor(*(f"{step} {ASSIGNMENT}" for step in INSTRUCTOR_STEPS))
        list(pool.map(fetch_feedback, student_accounts))
    by_name = {account.name: account for account in accounts.values()}
    return Term(exchange, course, instructor, students, by_name, outputs)


# --- What the term must show --------------------------------------------------------------------


def gradebook_scores(course: Path, student: str) -> tuple[dict[str, float | None], float, float]:
    """(test cell -> autograde score, notebook score, notebook max score) from the gradebook."""
    from nbgrader.api import Gradebook

    notebook_id = notebook_path("exercises", ASSIGNMENT).stem
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SQLAlchemy's warnings about nbgrader's sessions
        with Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id()) as gradebook:
            notebook = gradebook.find_submission_notebook(notebook_id, ASSIGNMENT, student)
            cells = {g.name: g.auto_score for g in notebook.grades if g.cell_type == "code"}
            return cells, notebook.score, notebook.max_score


def fetched_feedback(term: Term, student: str) -> list[Path]:
    """The feedback files the student's ``fetch_feedback`` put in their assignment folder."""
    return sorted((term.accounts[student].home / ASSIGNMENT / "feedback").glob("*/*.html"))


def submission_secret(term: Term, student: str) -> str:
    """The secret of the student's submission, from their nbgrader cache (read as root)."""
    cache = term.accounts[student].home / ".local/share/jupyter/nbgrader_cache" / course_id()
    (secret,) = cache.glob(f"{student}+{ASSIGNMENT}+*/submission_secret.txt")
    return secret.read_text()


def test_each_student_sees_the_release_and_only_their_own_submission(term: Term):
    for student in term.students:
        assert f"{course_id()} {ASSIGNMENT}" in term.outputs[student, "list"]
        (other,) = set(term.students) - {student}
        inbound = term.outputs[student, "list --inbound"]
        assert ASSIGNMENT not in inbound.split("Submitted assignments:")[-1], inbound
        cached = term.outputs[student, "list --cached"]
        assert f"{student} {ASSIGNMENT}" in cached and other not in cached, cached
    instructor_view = term.outputs[term.instructor.name, "list --inbound"]
    assert all(f"{student} {ASSIGNMENT}" in instructor_view for student in term.students)


def test_the_gradebook_scores_the_correct_and_the_wrong_submission(term: Term):
    points = max_points(ASSIGNMENT)
    for student, variant in term.students.items():
        cells, _, _ = gradebook_scores(term.course, student)
        assert variant.name == "solution" or variant.loses
        assert cells == {cell: 0.0 if cell in variant.loses else p for cell, p in points.items()}


def test_each_student_fetches_feedback_showing_their_own_score(term: Term):
    notebook_id = notebook_path("exercises", ASSIGNMENT).stem
    headers = {}
    for student in term.students:
        _, score, max_score = gradebook_scores(term.course, student)
        headers[student] = f"{notebook_id} (Score: {round(score, 2)} / {round(max_score, 2)})"
        assert list((term.course / "feedback" / student / ASSIGNMENT).glob("*.html"))
    assert len(set(headers.values())) == 2, "the two submissions must score differently"
    for student, header in headers.items():
        (feedback,) = fetched_feedback(term, student)
        html = feedback.read_text()
        (other,) = set(headers) - {student}
        assert header in html and headers[other] not in html


def test_released_feedback_is_keyed_by_each_submissions_secret(term: Term):
    from nbgrader.utils import notebook_hash

    notebook_id = notebook_path("exercises", ASSIGNMENT).stem
    released = {p.name for p in (term.exchange / course_id() / "feedback").iterdir()}
    expected = {
        f"{notebook_hash(secret=submission_secret(term, s), notebook_id=notebook_id)}.html"
        for s in term.students
    }
    assert released == expected


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def owner(path: Path) -> str:
    return pwd.getpwuid(path.stat().st_uid).pw_name


def test_the_exchange_has_the_modes_nbgrader_sets(term: Term):
    course = term.exchange / course_id()
    assert mode(term.exchange) == 0o1777  # release_assignment accepts it and keeps the sticky bit
    instructor = term.instructor.name
    expected = {"": 0o755, "outbound": 0o755, "inbound": 0o2733, "feedback": 0o711}
    for name, bits in expected.items():
        assert (mode(course / name), owner(course / name)) == (bits, instructor), name
    release = course / "outbound" / ASSIGNMENT
    assert mode(release) == 0o755
    assert all(mode(p) == 0o644 for p in release.iterdir())
    submissions = sorted((course / "inbound").iterdir())
    assert sorted(owner(p) for p in submissions) == sorted(term.students)
    for path in submissions:
        assert mode(path) == 0o777  # so that the instructor can delete it; hidden by its name
        assert all(mode(p) == 0o644 for p in path.iterdir())


def test_no_student_can_list_or_take_what_belongs_to_the_other(term: Term):
    course = term.exchange / course_id()
    for student in term.students:
        (other,) = set(term.students) - {student}
        other_home = term.accounts[other].home
        (other_secret,) = (other_home / ".local/share/jupyter/nbgrader_cache").rglob(
            "submission_secret.txt"
        )
        results = term.accounts[student].probe(
            {
                "list inbound": ("list", str(course / "inbound")),
                "copy all feedback": ("copytree", str(course / "feedback")),
                "list the other's home": ("list", str(other_home)),
                "read the other's secret": ("read", str(other_secret)),
                "copy the other's assignment": ("copytree", str(other_home / ASSIGNMENT)),
                "rename the course away": ("rename", str(course)),
                "read the release": ("read", str(next((course / "outbound").rglob("*.ipynb")))),
            }
        )
        assert results == {
            "list inbound": "PermissionError",
            "copy all feedback": "PermissionError",
            "list the other's home": "PermissionError",
            "read the other's secret": "PermissionError",
            "copy the other's assignment": "PermissionError",
            "rename the course away": "PermissionError",
            "read the release": "ok",
        }


def test_fetch_feedback_for_the_other_student_brings_nothing_of_theirs(term: Term):
    alice, bob = term.students
    before = {p: p.read_bytes() for p in fetched_feedback(term, bob)}
    output = term.accounts[bob].nbgrader("fetch_feedback", ASSIGNMENT, "--student", alice)
    assert {p: p.read_bytes() for p in fetched_feedback(term, bob)} == before, output
    assert not list(term.accounts[bob].home.rglob(f"*{alice}*"))
