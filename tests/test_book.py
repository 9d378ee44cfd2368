"""The book builds like ``make book`` (warnings are errors) and every chapter runs.

Each notebook's execution time goes to ``test-artifacts/execution-times.txt``: speed is reported,
not asserted (a timed test would fail on a busy machine for no fault of the code).

The build itself is the session fixture ``book_build`` in ``conftest.py``; the checks of the HTML
it writes are in ``test_book_html.py`` and ``test_browser.py``. The book's Sphinx extension
``book/_ext/fresh_outputs.py`` (execute again after a library change) is tested here too.
"""

from __future__ import annotations

import importlib.util
import pickle
import re
from pathlib import Path

import yaml

from browser import ARTIFACTS, ROOT


def toc_files(toc: Path = ROOT / "_toc.yml") -> list[str]:
    """Every page the table of contents names (``book/intro``, ...), in reading order."""

    def walk(node) -> list[str]:
        if isinstance(node, dict):
            own = [node["file"]] if "file" in node else []
            return own + [
                f for key in ("parts", "chapters", "sections") for f in walk(node.get(key))
            ]
        if isinstance(node, list):
            return [f for item in node for f in walk(item)]
        return []

    data = yaml.safe_load(toc.read_text())
    return [data["root"], *walk(data)]


def notebook_pages() -> list[str]:
    """The table-of-contents pages that are notebooks (MyST Markdown with a kernelspec)."""
    return [f for f in toc_files() if "kernelspec:" in (ROOT / f"{f}.md").read_text()[:2000]]


def test_book_builds_without_warnings(book_build):
    warnings = "\n".join(book_build.warnings) or book_build.log[-3000:]
    assert book_build.returncode == 0, (
        f"`jupyter-book build -W -n --keep-going` failed (exit {book_build.returncode}); "
        f"full log in {ARTIFACTS / 'book-build.log'}:\n{warnings}"
    )


def test_every_notebook_ran_from_the_cache(book_build, built_book):
    """myst-nb recorded a successful, cached execution of every notebook page."""
    with (book_build.build_dir / ".doctrees" / "environment.pickle").open("rb") as file:
        environment = pickle.load(file)
    executions = {
        page: environment.nb_metadata.get(page, {}).get("exec_data") for page in notebook_pages()
    }
    report = "\n".join(
        f"{page:32} {data['runtime'] or 0:7.1f} s  {data['method']}" if data else f"{page:32} never"
        for page, data in executions.items()
    )
    (ARTIFACTS / "execution-times.txt").write_text(report + "\n")
    failed = {
        page: (data or {}).get("error") or "never executed"
        for page, data in executions.items()
        if not (data and data["succeeded"])
    }
    assert not failed, f"notebooks that did not run cleanly: {failed}\n{report}"
    uncached = [page for page, data in executions.items() if data["method"] != "cache"]
    assert not uncached, f"not executed through the jupyter-cache (execute_notebooks): {uncached}"
    assert not list((built_book / "reports").rglob("*.log")), "myst-nb wrote error reports"


def test_intro_shows_outputs_of_the_library(built_book):
    intro = (built_book / "book" / "intro.html").read_text()
    # An output of an executed cell (its source has a format field, not a number there).
    assert re.search(r"mean over a million units: [01]\.\d{4}\b", intro)


def _fresh_outputs():
    spec = importlib.util.spec_from_file_location(
        "fresh_outputs", ROOT / "book" / "_ext" / "fresh_outputs.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_execution_cache_is_emptied_when_the_library_changes(tmp_path):
    fresh = _fresh_outputs()
    assert (fresh.LIBRARY / "listing.py").is_file()
    library, cache = tmp_path / "library", tmp_path / "cache"
    (library / "torch").mkdir(parents=True)
    (library / "torch" / "masks.py").write_text("P = 0.5\n")
    (cache / "executed").mkdir(parents=True)
    digest = fresh.library_digest(library)
    assert fresh.refresh_cache(cache, digest), "a cache of unknown origin is emptied"
    assert not (cache / "executed").exists()
    (cache / "executed").mkdir()
    assert not fresh.refresh_cache(cache, digest), "the same library keeps the cache"
    assert (cache / "executed").is_dir()
    (library / "torch" / "masks.py").write_text("P = 0.25\n")
    changed = fresh.library_digest(library)
    assert changed != digest
    assert fresh.refresh_cache(cache, changed), "a changed library empties the cache"
    assert not (cache / "executed").exists()
