"""The course package as users install it, and the launch paths that install it.

* ``python -m build`` makes the sdist and, from it, the wheel; ``twine check`` validates their
  metadata as PyPI would; the wheel goes into a fresh virtual environment (not editable) that sees
  this environment's packages only for the dependencies (numpy, torch, ...), and a small example
  runs there against the installed copy.
* Colab: a chapter's notebook (``book/NN_name.ipynb``, the Colab button's target) runs top to
  bottom in a fresh virtual environment that holds only what Colab preinstalls and the course
  relies on; its first cell installs the course, served from the wheel built here.
* Binder: a fresh virtual environment installed from exactly ``binder/requirements.txt`` (plus
  the kernel and runner that Binder's image provides) runs a chapter's notebook.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

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


def run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
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


# --- launch paths --------------------------------------------------------------------------------

CHAPTER = "02_inverted_scaling"
"""The chapter the launch tests run: its notebook executes in about 20 s."""

COLAB_PREINSTALLED = [
    *("numpy", "torch", "matplotlib", "ipywidgets", "scikit-learn", "scipy", "pandas", "tqdm"),
    *("ipykernel", "nbclient"),  # Colab's kernel; nbclient runs the notebook here
]
"""What Colab preinstalls that the course relies on (the rest, its first cell installs)."""

RUN_NOTEBOOK = """
import sys
import nbclient, nbformat
notebook = nbformat.read(sys.argv[1], as_version=4)
nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3").execute()
nbformat.write(notebook, sys.argv[1])
"""


def required(distribution: importlib.metadata.Distribution) -> list[str]:
    """The distributions ``distribution`` requires here (no extras; markers evaluated)."""
    requirements = map(Requirement, distribution.requires or ())
    return [r.name for r in requirements if not r.marker or r.marker.evaluate({"extra": ""})]


def expose(distributions: list[str], site: Path) -> int:
    """Symlink into ``site`` the files of ``distributions`` and of everything they require."""
    site.mkdir()
    todo, seen = list(distributions), set()
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen:
            continue
        seen.add(name)
        distribution = importlib.metadata.distribution(name)
        todo += required(distribution)
        base = Path(distribution.locate_file(""))
        for top in {Path(f).parts[0] for f in distribution.files or () if f.parts[0] != ".."}:
            if not (site / top).exists() and (base / top).exists():
                (site / top).symlink_to(base / top)
    return len(seen)


def fresh_venv(path: Path) -> Path:
    """A new virtual environment with pip (``%pip`` needs it); returns its python."""
    run(sys.executable, "-m", "venv", path, cwd=path.parent)
    return path / "bin" / "python"


def run_chapter(python: Path, workdir: Path, env: dict[str, str] | None = None) -> dict:
    """Execute the chapter's launch notebook in ``workdir`` with ``python``; the executed JSON."""
    notebook = workdir / f"{CHAPTER}.ipynb"
    shutil.copy(ROOT / "book" / notebook.name, notebook)
    run(python, "-c", RUN_NOTEBOOK, notebook, cwd=workdir, env=env)
    return json.loads(notebook.read_text())


def assert_ran_clean(executed: dict) -> None:
    code = [cell for cell in executed["cells"] if cell["cell_type"] == "code"]
    assert all(cell["execution_count"] for cell in code), "a code cell did not run"
    errors = [o for cell in code for o in cell["outputs"] if o["output_type"] == "error"]
    assert not errors, errors


def pip_env(*find_links: Path) -> dict[str, str]:
    """This environment with ``find_links`` searched before pip's own configured places."""
    configured = os.environ.get("PIP_FIND_LINKS", "")
    return os.environ | {"PIP_FIND_LINKS": " ".join([*map(str, find_links), configured]).strip()}


@pytest.mark.slow
def test_chapter_notebook_installs_the_course_and_runs_as_on_colab(dist, tmp_path):
    python = fresh_venv(tmp_path / "venv")
    assert expose(COLAB_PREINSTALLED, tmp_path / "colab") > len(COLAB_PREINSTALLED)
    fresh_site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))",
                          cwd=tmp_path).strip())  # fmt: skip
    (fresh_site / "colab.pth").write_text(f"{tmp_path / 'colab'}\n")
    missing = "import importlib.util as u; print(u.find_spec('dropout_course') is None)"
    assert run(python, "-c", missing, cwd=tmp_path).strip() == "True"
    content = tmp_path / "content"  # Colab's working directory: no file of the repository
    content.mkdir()
    executed = run_chapter(python, content, env=pip_env(dist))
    assert_ran_clean(executed)
    assert "install" in executed["cells"][0]["metadata"]["tags"]
    installed = run(python, "-c", "import dropout_course; print(dropout_course.__file__)",
                    cwd=tmp_path)  # fmt: skip
    assert Path(installed.strip()).is_relative_to(fresh_site)


@pytest.mark.slow
def test_binder_configuration_runs_a_chapter(tmp_path):
    python = fresh_venv(tmp_path / "venv")
    # Offline, PyTorch's index in the file cannot be reached: no retries (pip's default retries
    # cost seconds per package), so the CPU torch comes from pip's other places at once.
    env = os.environ | {"PIP_RETRIES": "0"}
    install = (python, "-m", "pip", "install", "--quiet")
    run(*install, "-r", "binder/requirements.txt", cwd=ROOT, env=env)
    run(*install, "ipykernel", "nbclient", cwd=ROOT)  # what Binder's image has
    assert_ran_clean(run_chapter(python, tmp_path))
    version = "import torch, dropout_course; print(torch.__version__, dropout_course.__file__)"
    torch_version, installed = run(python, "-c", version, cwd=tmp_path).split()
    assert torch_version.endswith("+cpu") and "site-packages" in installed


def test_launch_notebooks_are_current_and_pinned_to_this_release():
    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    import notebooks

    version = notebooks.release_version()
    chapters = notebooks.notebook_sources()
    assert len(chapters) >= 10
    for source in chapters:
        target = source.with_suffix(".ipynb")
        assert target.is_file(), f"{target.name} is missing: run make book and commit it"
        expected = notebooks.notebook_text(notebooks.chapter_notebook(source, version))
        assert target.read_text() == expected, f"{target.name} is stale: run make book, commit it"
        first = json.loads(expected)["cells"][0]
        assert f'"dropout_course[notebook]=={version}"' in "".join(first["source"])
