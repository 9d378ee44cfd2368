"""Sphinx extension: run the chapters again whenever the library they import has changed.

myst-nb's execution cache (``execute_notebooks: cache`` in ``_config.yml``) keys a notebook on its
code cells only. After an edit of ``src/dropout_course`` it would serve the outputs of the old
library: old numbers, old figures, and source listings (``dropout_course.listing``) of code that
no longer exists. So this extension keeps a digest of the library's source beside the cache; when
the digest differs, it empties the cache and marks every page outdated, and the build executes the
chapters afresh. A build with nothing changed still takes every notebook from the cache.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment

LIBRARY = Path(__file__).resolve().parents[2] / "src" / "dropout_course"
DIGEST_FILE = "dropout_course.sha256"
"""Name of the file, inside the execution cache, that holds the digest of the cached library."""


def library_digest(library: Path = LIBRARY) -> str:
    """SHA-256 over the relative paths and contents of the library's Python files."""
    digest = hashlib.sha256()
    for path in sorted(library.rglob("*.py")):
        digest.update(path.relative_to(library).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def refresh_cache(cache_dir: Path, digest: str) -> bool:
    """Empty ``cache_dir`` unless it was filled by the library of ``digest``; True if emptied."""
    record = cache_dir / DIGEST_FILE
    if record.is_file() and record.read_text() == digest:
        return False
    shutil.rmtree(cache_dir, ignore_errors=True)
    cache_dir.mkdir(parents=True)
    record.write_text(digest)
    return True


def _outdated_pages(
    app: Sphinx, env: BuildEnvironment, added: set, changed: set, removed: set
) -> list[str]:
    """Every page when the library changed since the cache was filled (Sphinx re-reads them)."""
    if refresh_cache(Path(env.mystnb_config.execution_cache_path), library_digest()):
        return sorted(env.found_docs)
    return []


def setup(app: Sphinx) -> dict[str, object]:
    app.connect("env-get-outdated", _outdated_pages)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
