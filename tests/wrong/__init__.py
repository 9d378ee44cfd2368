"""Implementations of the assignments, right and wrong, and how to turn them into submissions.

``tests/wrong/<assignment id>.py`` defines ``VARIANTS``: each ``Variant`` takes the instructor's
solution and swaps some of its functions for other implementations, then names the test cells
(nbgrader grade ids) that must lose their points; every other test cell must keep full marks.
Correct alternatives (loops, other generators, float32) lose nothing. The same variant feeds the
unit tests (``namespace``: the answer cells executed in a dict, checks called directly) and the
end-to-end autograde (``submission``: the released notebook with the answers filled in).
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import inspect
import json
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dropout_grading.notebook import ipython_shell, python_source, uses_ipython

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Variant:
    """A submission: the solution with some functions replaced, and the cells it must lose.

    Attributes:
        name: used as the student id in end-to-end runs.
        functions: notebook function name -> implementation (its ``def`` is renamed to the key).
        loses: grade ids of the test cells that must score 0.
        helpers: functions and classes the implementations use (same names in the notebook);
            they go into the cell of the first replaced function.
        append: notebook function name -> code appended to the cell that defines it.
        prepend: notebook function name -> code put first in the cell that defines it (a cell
            magic such as ``%%time``, IPython set-up).
        hint: text that one of the failure messages must contain (what the student reads).
        base: start from the instructor's "solution" or from the "release" (unanswered stubs).
    """

    name: str
    functions: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    loses: frozenset[str] = frozenset()
    helpers: tuple[Any, ...] = ()
    append: Mapping[str, str] = field(default_factory=dict)
    prepend: Mapping[str, str] = field(default_factory=dict)
    hint: str = ""
    base: str = "solution"


def variants(assignment: str, kind: str = "VARIANTS") -> list[Variant]:
    """The variants of ``assignment`` (none if it has no ``tests/wrong`` module yet).

    ``kind="CHEATS"`` gives the submissions that fool the in-kernel checks: ``loses`` then names
    the cells the audit must take away although autograde gave them full marks.
    """
    try:
        module = importlib.import_module(f"wrong.{assignment}")
    except ModuleNotFoundError:
        return []
    return list(getattr(module, kind, []))


def notebook_path(directory: str, assignment: str) -> Path:
    """The single notebook of ``assignment`` in ``solutions`` or ``exercises``."""
    (path,) = (ROOT / directory / assignment).glob("*.ipynb")
    return path


def _cells(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text())["cells"]


def _source(cell: dict[str, Any]) -> str:
    source = cell["source"]
    return "".join(source) if isinstance(source, list) else source


def _nbgrader(cell: dict[str, Any]) -> dict[str, Any]:
    return cell.get("metadata", {}).get("nbgrader", {})


def solution_answers(assignment: str, base: str = "solution") -> dict[str, tuple[str, str]]:
    """grade id -> (cell type, answer) per answer cell: the instructor's (solution markers
    removed) or, with ``base="release"``, the stub students start from."""
    directory = "exercises" if base == "release" else "solutions"
    result = {}
    for cell in _cells(notebook_path(directory, assignment)):
        if _nbgrader(cell).get("solution"):
            lines = [line for line in _source(cell).splitlines() if "SOLUTION" not in line]
            result[_nbgrader(cell)["grade_id"]] = (cell["cell_type"], "\n".join(lines))
    return result


def _definition(obj: Any, name: str) -> ast.stmt:
    """The ``def`` (or ``class``) of ``obj`` from its source, renamed to ``name``."""
    (node,) = ast.parse(textwrap.dedent(inspect.getsource(obj))).body
    node.name = name
    return node


def answers(assignment: str, variant: Variant) -> dict[str, str]:
    """grade id -> answer-cell source of ``variant``: the solution with its swaps applied."""
    result = {}
    helpers_placed = False
    for grade_id, (cell_type, source) in solution_answers(assignment, variant.base).items():
        if cell_type != "code":  # a written answer
            result[grade_id] = source
            continue
        module = ast.parse(source)
        defined = [n.name for n in module.body if isinstance(n, ast.FunctionDef | ast.ClassDef)]
        body: list[ast.stmt] = []
        for node in module.body:
            name = getattr(node, "name", None)
            if name in variant.functions:
                if not helpers_placed:
                    body += [_definition(h, h.__name__) for h in variant.helpers]
                    helpers_placed = True
                body.append(_definition(variant.functions[name], name))
            else:
                body.append(node)
        text = (
            ast.unparse(ast.Module(body=body, type_ignores=[])) if body != module.body else source
        )
        for name in defined:
            if name in variant.append:
                text += "\n" + variant.append[name]
            if name in variant.prepend:
                text = variant.prepend[name] + "\n" + text
        result[grade_id] = text
    return result


def submission(assignment: str, variant: Variant) -> dict[str, Any]:
    """The released notebook of ``assignment`` with ``variant``'s answers filled in."""
    notebook = json.loads(notebook_path("exercises", assignment).read_text())
    filled = answers(assignment, variant)
    for cell in notebook["cells"]:
        grade_id = _nbgrader(cell).get("grade_id")
        if _nbgrader(cell).get("solution") and grade_id in filled:
            cell["source"] = filled[grade_id]
    return notebook


def namespace(assignment: str, variant: Variant) -> dict[str, Any]:
    """The notebook's namespace after its read-only and answer code cells ran (not test cells).

    Cells that use IPython run with a real IPython shell on the namespace, as in the kernel.
    """
    filled = answers(assignment, variant)
    scope: dict[str, Any] = {"__name__": "__main__"}
    with contextlib.ExitStack() as shell:
        for cell in _cells(notebook_path("solutions", assignment)):
            meta = _nbgrader(cell)
            if cell["cell_type"] != "code" or meta.get("grade") or not meta:
                continue
            source = filled.get(meta["grade_id"], _source(cell))
            if uses_ipython(source) and "get_ipython" not in scope:
                shell.enter_context(ipython_shell(scope))
            exec(compile(python_source(source), meta["grade_id"], "exec"), scope)
    return scope
