"""Shared pytest set-up: test helpers importable, and the torch devices to run on."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from browser import ARTIFACTS, BIN, ROOT

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


# --- The built book, shared by every book test ---------------------------------------------------


BOOK_OUTPUT_VARIABLE = "DC_BOOK_OUTPUT"
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
_BUILD_SECONDS: list[float] = []


@dataclass(frozen=True)
class BookBuild:
    """One run of ``jupyter-book build``: where it wrote, how it ended, what it printed."""

    build_dir: Path
    returncode: int
    log: str
    seconds: float

    @property
    def html(self) -> Path:
        return self.build_dir / "html"

    @property
    def warnings(self) -> list[str]:
        """The build's warning and error lines (``-W`` turns each into a failed build)."""
        return [
            line
            for line in self.log.splitlines()
            if re.search(r"\b(WARNING|ERROR|CRITICAL):", line)
        ]


@pytest.fixture(scope="session")
def book_build() -> BookBuild:
    """Build the whole book once per session, with the command of ``make book``.

    It writes into the repository's ``_build`` (as ``make book`` does), so the execution cache
    there makes a rerun fast when no chapter changed; ``DC_BOOK_OUTPUT=/some/dir`` builds into
    ``/some/dir/_build`` instead (``--path-output``). ``--all`` rereads every page: an
    incremental Sphinx build skips unchanged pages and so would not repeat their warnings, and a
    book that failed ``-W`` once would pass on the rerun. Notebooks still come from the cache.
    """
    command = [str(BIN / "jupyter-book"), "build", str(ROOT), "-W", "-n", "--keep-going", "--all"]
    output = os.environ.get(BOOK_OUTPUT_VARIABLE)
    build_dir = ROOT / "_build"
    if output:
        command += ["--path-output", output]
        build_dir = Path(output).resolve() / "_build"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    start = time.perf_counter()
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=900, check=False, cwd=ROOT
    )
    seconds = time.perf_counter() - start
    _BUILD_SECONDS.append(seconds)
    log = ANSI_ESCAPE.sub("", result.stdout + result.stderr)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "book-build.log").write_text(f"$ {' '.join(command)}\n{log}")
    return BookBuild(build_dir, result.returncode, log, seconds)


@pytest.fixture(scope="session")
def built_book(book_build: BookBuild) -> Path:
    """The HTML directory of the built book (fails when the build wrote no HTML at all)."""
    if not (book_build.html / "index.html").is_file():
        pytest.fail(
            f"the book build wrote no HTML (exit {book_build.returncode}):\n"
            f"{book_build.log[-4000:]}"
        )
    return book_build.html


def pytest_terminal_summary(terminalreporter) -> None:
    """Print how long the book build and the timed tests took, and where the artifacts are."""
    for seconds in _BUILD_SECONDS:
        terminalreporter.write_line(f"book build (jupyter-book build --all): {seconds:.1f} s")
    reports = [*terminalreporter.stats.get("passed", []), *terminalreporter.stats.get("failed", [])]
    for report in reports:
        for name, value in getattr(report, "user_properties", []):
            if name.endswith("_s"):
                terminalreporter.write_line(f"{report.nodeid} {name}: {value:.1f}")
    if ARTIFACTS.is_dir() and any(ARTIFACTS.iterdir()):
        terminalreporter.write_line(f"test artifacts (screenshots, logs): {ARTIFACTS}")
