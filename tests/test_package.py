"""The course package as a user installs it: built, checked, and installed from its wheel.

``python -m build`` makes the sdist and, from it, the wheel; ``twine check`` validates their
metadata as PyPI would; the wheel goes into a fresh virtual environment (not editable) that sees
this environment's packages only for the dependencies (numpy, torch, ...), and a small example
runs there against the installed copy.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

EXAMPLE = """
import numpy as np
import torch
import dropout_course
from dropout_course.dropout import dropout_forward
from dropout_course.torch.dropout import Dropout
from dropout_grading import ch2

x = np.ones((1000, 50))
out, cache = dropout_forward(x, 0.25, train=True, rng=np.random.default_rng(0))
assert set(np.unique(out)) <= {0.0, 4 / 3}, np.unique(out)
assert abs(out.mean() - 1) < 0.02, out.mean()
layer = Dropout(0.25, generator=torch.Generator().manual_seed(0)).eval()
assert torch.equal(layer(torch.ones(3, 4)), torch.ones(3, 4))
print(dropout_course.__file__)
"""


def run(*command: str | Path, cwd: Path) -> str:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and the wheel built from it, as ``python -m build`` makes them for a release."""
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT, cwd=out)
    return out


def the_wheel(dist: Path) -> Path:
    (wheel,) = dist.glob("dropout_course-*-py3-none-any.whl")
    return wheel


def test_sdist_and_wheel_pass_twine_check(dist):
    artefacts = sorted(dist.iterdir())
    assert [path.name for path in artefacts] == [
        "dropout_course-0.1.0-py3-none-any.whl",
        "dropout_course-0.1.0.tar.gz",
    ]
    output = run(BIN / "twine", "check", "--strict", *artefacts, cwd=dist)
    assert output.count("PASSED") == 2


def test_wheel_holds_the_library_and_the_checks_only(dist):
    names = zipfile.ZipFile(the_wheel(dist)).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"dropout_course", "dropout_grading", "dropout_course-0.1.0.dist-info"}
    assert "dropout_course/torch/dropout.py" in names
    assert "dropout_course-0.1.0.dist-info/licenses/LICENSE" in names
    # The checks module of each assignment ships (students' notebooks import it), the solutions
    # and the hidden tests' inputs do not: they live in solutions/, outside the package.
    assert "dropout_grading/ch2.py" in names
    assert not any("solution" in name or name.endswith(".ipynb") for name in names)
    metadata = zipfile.ZipFile(the_wheel(dist)).read("dropout_course-0.1.0.dist-info/METADATA")
    for field in (b"License-Expression: MIT", b"Project-URL: Source,", b"Requires-Dist: torch"):
        assert field in metadata


def test_wheel_installs_into_a_fresh_venv_and_runs(dist, tmp_path):
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps",
        "--no-index", the_wheel(dist), cwd=tmp_path)  # fmt: skip
    # The dependencies come from this environment's site-packages, appended after the fresh
    # venv's own: a .pth line adds the directory without running its .pth files, so the editable
    # install of the course living there stays invisible.
    fresh_site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))",
                          cwd=tmp_path).strip())  # fmt: skip
    (fresh_site / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    installed = Path(run(python, "-c", EXAMPLE, cwd=tmp_path).strip())
    assert installed.is_relative_to(fresh_site), installed
