"""Dependencies point one way: the library knows nothing of grading, widgets or the book.

The rules of ``../shared/CONVENTIONS.md``, checked on the import statements of the sources:
``dropout_course`` (and its tests) never import ``dropout_grading``; the reference modules never
import ``widgets``, ``plots`` or ``listing``; the readable modules never import the fast path.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "src" / "dropout_course"
PRESENTATION = {"dropout_course.widgets", "dropout_course.plots", "dropout_course.listing"}


def imported_modules(path: Path) -> set[str]:
    """Absolute names of the modules ``path`` imports (relative imports resolved)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    package = ".".join(parts[1:-1] if parts[0] == "src" else parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def test_import_helper_resolves_relative_imports():
    names = imported_modules(LIBRARY / "torch" / "dropout.py")
    assert "dropout_course._validate" in names and "torch" in names


@pytest.mark.parametrize(
    "path",
    sorted(LIBRARY.rglob("*.py")) + sorted((ROOT / "tests").glob("test_*.py")),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_library_and_its_tests_never_import_grading(path):
    grading_tests = {"test_grading.py", "test_nbgrader.py", "test_parallel_autograde.py"}
    if path.name in grading_tests | {"test_architecture.py"}:
        pytest.skip("grading's own tests")
    assert not any(name.startswith("dropout_grading") for name in imported_modules(path))


@pytest.mark.parametrize(
    "path",
    [p for p in sorted(LIBRARY.rglob("*.py")) if p.stem not in {"widgets", "plots", "listing"}],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_reference_modules_never_import_presentation(path):
    assert not imported_modules(path) & PRESENTATION


READABLE = [
    f"{prefix}{name}.py"
    for prefix in ("", "torch/")
    for name in (
        "masks",
        "dropout",
        "dropconnect",
        "ensembles",
        "coadaptation",
        "variants",
        "residual",
        "dropblock",
        "attention",
        "recurrent",
        "calibration",
        "concrete",
    )
]
"""The modules whose functions students write: each reads like its chapter's formula."""


@pytest.mark.parametrize("name", READABLE)
def test_readable_modules_never_import_the_fast_path(name):
    # The readable reference stands alone; dropout_course.fast is checked against it.
    fast = {"dropout_course.fast", "dropout_course.torch.fast"}
    imported = imported_modules(LIBRARY / name)
    assert not {n for n in imported if n in fast or n.rsplit(".", 1)[0] in fast}


def test_fast_path_builds_on_the_readable_one():
    # fast.py takes its cache type and scale factors from dropout.py; the torch twin's import of
    # the numpy fast module also shows the rule above would see such an import.
    assert {"dropout_course.dropout.DropoutCache", "dropout_course.dropout.output_scales"} <= (
        imported_modules(LIBRARY / "fast.py")
    )
    assert "dropout_course.fast" in imported_modules(LIBRARY / "torch" / "fast.py")
