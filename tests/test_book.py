"""The book builds with ``jupyter-book build -W`` (warnings are errors) and executes its code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def built_book(tmp_path_factory) -> Path:
    """Build the whole book once into a temporary directory; return its HTML directory."""
    out = tmp_path_factory.mktemp("book")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        [BIN / "jupyter-book", "build", ROOT, "-W", "-n", "--keep-going", "--path-output", out],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return out / "_build" / "html"


def test_book_builds_and_runs_the_library(built_book):
    intro = (built_book / "book" / "intro.html").read_text()
    assert "mean over" in intro  # an output of an executed cell, not only its source
    assert "Traceback" not in intro and "Error" not in intro
    assert (built_book / "index.html").exists() and (built_book / "search.html").exists()
