"""Sphinx extension: keep a runnable ``.ipynb`` beside every chapter, for Colab, Binder and hubs.

The chapters (and the introduction) are MyST Markdown notebooks (``book/NN_name.md``), which
JupyterLab opens through jupytext but Colab cannot open at all. The book theme's launch buttons link to
``book/NN_name.ipynb`` whenever that file exists beside the source, so this extension writes it at
the start of every build: the chapter's cells (outputs empty, as in the source) after one first
cell that installs the course's library where it is missing, pinned to the release the book was
built from (``version`` in ``pyproject.toml``). The file is rewritten only when its content
changes; ``_config.yml`` excludes the notebooks from the book itself, and a test checks that the
committed ones are current.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import jupytext
import nbformat
from sphinx.application import Sphinx

ROOT = Path(__file__).resolve().parents[2]
BOOK = ROOT / "book"

INSTALL_CELL = """\
# Where the course's library is missing (Colab, Binder, a hub), install the release this book was
# built from, with what the chapters need beside it (live sliders, myst-nb's glue for numbers).
import importlib.util

if importlib.util.find_spec("dropout_course") is None:
    %pip install --quiet "dropout_course[notebook]=={version}"
"""


def release_version(root: Path = ROOT) -> str:
    """The package's version, from ``pyproject.toml``."""
    with open(root / "pyproject.toml", "rb") as file:
        return tomllib.load(file)["project"]["version"]


def notebook_sources(book: Path = BOOK) -> list[Path]:
    """The book's pages that are notebooks: MyST Markdown with a kernelspec (intro, chapters)."""
    return [page for page in sorted(book.glob("*.md")) if "kernelspec:" in page.read_text()[:2000]]


def chapter_notebook(source: Path, version: str) -> nbformat.NotebookNode:
    """The notebook of the chapter ``source`` (.md): an install cell, then the chapter's cells.

    Cell ids are numbered, so that the same source always gives the same file.
    """
    notebook = jupytext.read(source)
    notebook.metadata.pop("jupytext", None)
    install = nbformat.v4.new_code_cell(INSTALL_CELL.format(version=version).rstrip("\n"))
    install.metadata["tags"] = ["install"]
    notebook.cells.insert(0, install)
    for number, cell in enumerate(notebook.cells):
        cell.id = f"cell-{number}"
    return notebook


def notebook_text(notebook: nbformat.NotebookNode) -> str:
    """The ``.ipynb`` file's text: nbformat's JSON with a final newline."""
    return nbformat.writes(notebook) + "\n"


def write_notebooks(book: Path = BOOK, version: str | None = None) -> list[Path]:
    """Write ``NN_name.ipynb`` beside every chapter whose notebook changed; return those written."""
    version = version or release_version(book.parent)
    written = []
    for source in notebook_sources(book):
        target = source.with_suffix(".ipynb")
        text = notebook_text(chapter_notebook(source, version))
        if not target.is_file() or target.read_text() != text:
            target.write_text(text)
            written.append(target)
    return written


def _builder_inited(app: Sphinx) -> None:
    write_notebooks()


def setup(app: Sphinx) -> dict[str, object]:
    app.connect("builder-inited", _builder_inited)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
