"""Reading assignment notebooks: test-cell calls, cells to run, red flags, and an IPython shell.

Test cells of the course's assignments contain only calls ``<module>.check("<check>", ...)``:
keyword arguments that are plain names are the student's functions (looked up in the notebook),
the others are literal parameters. ``check_calls`` turns a test cell's source (hidden tests
included) into those calls, which is how the audit reruns exactly what the cell runs.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import re
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

_PROFILERS = {("sys", "setprofile"), ("sys", "settrace"), ("threading", "setprofile")}


@dataclass(frozen=True)
class CheckCall:
    """One ``check`` call of a test cell."""

    name: str
    functions: dict[str, str] = field(default_factory=dict)
    """Check argument -> name of the student's function in the notebook."""
    parameters: dict[str, Any] = field(default_factory=dict)
    """Other arguments, as literals."""


def check_calls(source: str) -> list[CheckCall]:
    """The ``check`` calls of a test cell, in order.

    Raises ValueError if the cell holds anything else (the audit could not reproduce it).
    """
    calls = []
    for statement in parse(source).body:
        call = statement.value if isinstance(statement, ast.Expr) else None
        if not (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr == "check"
            and len(call.args) == 1
            and isinstance(call.args[0], ast.Constant)
            and isinstance(call.args[0].value, str)
        ):
            raise ValueError(
                f"a test cell may only call <module>.check('<name>', ...), but it has: "
                f"{ast.unparse(statement)}"
            )
        functions, parameters = {}, {}
        for keyword in call.keywords:
            if keyword.arg is None:
                raise ValueError(f"**kwargs are not allowed in a test cell: {ast.unparse(call)}")
            if isinstance(keyword.value, ast.Name):
                functions[keyword.arg] = keyword.value.id
            else:
                parameters[keyword.arg] = ast.literal_eval(keyword.value)
        calls.append(CheckCall(call.args[0].value, functions, parameters))
    return calls


@dataclass(frozen=True)
class SourceCell:
    """What the gradebook knows about a cell of the instructor's source notebook."""

    source: str
    locked: bool
    is_test: bool  # an autograded test cell (graded, not a solution cell)


@dataclass(frozen=True)
class CodeCell:
    """A code cell the audit runs in the worker, and whether the student could edit it."""

    source: str
    editable: bool


@dataclass(frozen=True)
class AutogradedCell:
    """A test cell: the audit reruns its source's checks at this point of the notebook."""

    grade_id: str


def audit_plan(
    cells: Iterable[Mapping[str, Any]], source_cells: Mapping[str, SourceCell]
) -> list[CodeCell | AutogradedCell]:
    """The steps of a submission in notebook order, as nbgrader's autograde runs them.

    Read-only cells are replaced by their source version and test cells by the source's checks
    (as nbgrader's OverwriteCells does); test cells the student deleted come at the end (nbgrader
    puts them back, ``OverwriteCells.add_missing_cells``).
    """
    plan: list[CodeCell | AutogradedCell] = []
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        known = source_cells.get(grade_id) if grade_id else None
        if known is not None and known.is_test:
            plan.append(AutogradedCell(grade_id))
        elif known is not None and known.locked:
            plan.append(CodeCell(known.source, editable=False))
        else:
            source = cell.get("source", "")
            plan.append(CodeCell("".join(source) if isinstance(source, list) else source, True))
    present = {step.grade_id for step in plan if isinstance(step, AutogradedCell)}
    plan += [AutogradedCell(g) for g, c in source_cells.items() if c.is_test and g not in present]
    return plan


_IPYTHON_SYNTAX = re.compile(r"^\s*[%!]|^[^#\n]*=\s*[%!]|\?\s*$", re.MULTILINE)
"""Lines IPython transforms: magics, ``!`` commands (also ``files = !ls``), ``name?`` help."""


_PARSE_LOCK = threading.Lock()
"""The audit reads submissions from several threads; parsing and IPython's transformer run one
at a time (CPython 3.11's parser raised SystemError when two threads parsed at once)."""


def python_source(source: str) -> str:
    """A cell as plain Python: IPython magics and ``!`` commands become ``get_ipython()`` calls."""
    if not _IPYTHON_SYNTAX.search(source):
        return source
    from IPython.core.inputtransformer2 import TransformerManager

    with _PARSE_LOCK:
        return TransformerManager().transform_cell(source)


def uses_ipython(source: str) -> bool:
    """True if a cell needs an IPython shell: magics, ``!`` commands, ``get_ipython()``,
    ``import IPython`` (a mention in a comment counts too: that only costs starting one)."""
    return bool(_IPYTHON_SYNTAX.search(source)) or "ipython" in source.lower()


@contextlib.contextmanager
def ipython_shell(namespace: dict[str, Any]) -> Iterator[Any]:
    """A real IPython shell whose user namespace is ``namespace``, while the ``with`` lasts.

    ``get_ipython()`` (and ``IPython.get_ipython()``) return it, so magics, ``!`` commands and
    ``%%time`` cells run in ``namespace`` as in the notebook's kernel. It keeps no history file and
    starts no GUI event loop (``%matplotlib inline`` needs none); the process's ``__main__`` and
    builtins are left as they were.
    """
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    class NotebookShell(InteractiveShell):
        def enable_gui(self, gui: str | None = None) -> None:
            """Nothing to start: no front end, no GUI event loop."""

    config = Config()
    config.HistoryManager.enabled = False
    main, builtin_names = sys.modules.get("__main__"), set(vars(builtins))
    InteractiveShell.clear_instance()
    shell = NotebookShell.instance(user_ns=namespace, config=config)
    if main is not None:
        sys.modules["__main__"] = main  # the shell made the namespace's module __main__
    try:
        yield shell
    finally:
        InteractiveShell.clear_instance()
        for name in set(vars(builtins)) - builtin_names:  # __IPYTHON__, display
            delattr(builtins, name)


def parse(source: str) -> ast.Module:
    """``ast.parse`` of a cell (IPython syntax allowed), safe to call from several threads."""
    source = python_source(source)
    with _PARSE_LOCK:
        return ast.parse(source)


def _root_name(node: ast.expr) -> str | None:
    """``np`` for ``np.random.seed``; None if the chain does not start at a name."""
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _dotted(node: ast.expr) -> str:
    return ast.unparse(node)


def red_flags(
    cells: Iterable[CodeCell | AutogradedCell], forbidden_modules: Iterable[str]
) -> list[str]:
    """What the editable cells do that tampers with shared state or imports the reference.

    Reported by the audit beside the scores, for an instructor to read: assignments to (or
    ``setattr``/``del`` on) attributes of imported modules (``np.all = ...``, ``ch2.check =
    ...``), profiler changes, and imports of ``forbidden_modules``. The scan only reads source;
    code built at run time (``exec`` of a string) shows up as the ``exec`` call itself.
    """
    forbidden = tuple(forbidden_modules)
    cells = [cell for cell in cells if isinstance(cell, CodeCell)]
    trees: list[ast.Module | None] = []
    for cell in cells:
        try:
            trees.append(parse(cell.source))
        except SyntaxError:
            trees.append(None)
    modules = {"builtins"}
    for tree in filter(None, trees):
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                modules.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    flags = []
    for index, (cell, tree) in enumerate(zip(cells, trees, strict=True)):
        if not cell.editable:
            continue
        if tree is None:
            flags.append(f"cell {index}: does not parse")
            continue
        for node in ast.walk(tree):
            flags.extend(f"cell {index}: {text}" for text in _node_flags(node, modules, forbidden))
    return flags


def _node_flags(node: ast.AST, modules: set[str], forbidden: tuple[str, ...]) -> list[str]:
    flags = []
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, ast.AugAssign | ast.AnnAssign):
        targets = [node.target]
    elif isinstance(node, ast.Delete):
        targets = node.targets
    for target in targets:
        if isinstance(target, ast.Attribute) and _root_name(target) in modules:
            flags.append(f"changes {_dotted(target)}")
    if isinstance(node, ast.Call):
        name = _dotted(node.func)
        if name in ("setattr", "delattr") and node.args and _root_name(node.args[0]) in modules:
            flags.append(f"calls {name} on {_dotted(node.args[0])}")
        if isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name):
            if (node.func.value.id, node.func.attr) in _PROFILERS:
                flags.append(f"calls {name}")
        if name in ("exec", "eval", "compile", "__import__"):
            flags.append(f"calls {name}")
    if isinstance(node, ast.Import | ast.ImportFrom):
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom):
            names += [f"{node.module}.{alias.name}" for alias in node.names]
        for module in names:
            if any(module == p or module.startswith(p + ".") for p in forbidden):
                flags.append(f"imports {module}")
                break
    return flags
