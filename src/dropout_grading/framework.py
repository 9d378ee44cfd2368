"""One registry of checks per assignment, declared as a table, and how student functions are called.

A *check* takes the student's functions (as callables) and parameters, and raises
``CheckFailure`` (an ``AssertionError``) whose message names the property that failed and gives a
hint. An assignment declares its checks as a table of ``Row``s (a property from
:mod:`dropout_grading.properties` with its visible defaults and the sentence printed on a pass);
a test cell of the notebook, whose nbgrader ``grade_id`` is the row's key, runs it with::

    ch2.check("forward_inverted_train", dropout_forward=dropout_forward)

and its hidden part runs the same check on other inputs (``p=0.35, dtype="float32"``). The
instructor audit runs the very same registry out of process, with proxies in place of the
student's functions, so both grade with one code path.

Every call of a student function goes through ``LocalFunction``: it refuses functions that reach
the reference implementation (see :mod:`dropout_grading.provenance`), silences warnings
and output (nbgrader gives 0 points to a test cell that writes to stderr), and turns any exception
the student's code raises into a ``StudentError`` that says which call failed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import importlib.util
import io
import types
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .provenance import Forbidden, call_guarded, reference_uses


class CheckFailure(AssertionError):
    """A property of the student's code does not hold; the message names it and gives a hint."""


class ReferenceUsed(CheckFailure):
    """The student's function calls (or reaches) the course's reference implementation."""


class StudentError(CheckFailure):
    """The student's function raised an exception or returned something unusable."""


FAILURES: dict[str, type[CheckFailure]] = {
    cls.__name__: cls for cls in (CheckFailure, ReferenceUsed, StudentError)
}
"""Failure classes by name (the audit's worker sends the name across the process boundary)."""


class BoundFunction:
    """A student's function as checks see it: callable, with the name used in the notebook.

    ``LocalFunction`` (in this process) and the audit's ``RemoteFunction`` (in a worker process)
    are the two kinds.
    """

    name: str

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def drive(self, driver: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``driver(function, *args, **kwargs)``: see ``LocalFunction.drive``."""
        raise NotImplementedError


MAX_DESCRIPTION = 80
"""Longest description of one argument in a message (longer ones are cut with ``...``)."""


def describe_value(value: Any) -> str:
    """Short text for an argument in a message.

    Arrays by shape and dtype, ``rng`` for a generator, functions by name, dataclasses (a
    network's parameters) by type, dicts by their keys (a dict of parameters would fill the
    message), tuples and lists item by item while short; at most ``MAX_DESCRIPTION`` characters.
    """
    if isinstance(value, np.ndarray):
        return f"array(shape={value.shape}, dtype={value.dtype})"
    if isinstance(value, np.random.Generator):
        return "rng"
    if type(value).__module__ == "torch" and type(value).__name__ == "Generator":
        return "generator"
    if type(value).__module__ == "torch" and hasattr(value, "device"):  # a tensor
        return f"tensor(shape={tuple(value.shape)}, dtype={value.dtype}, device={value.device})"
    if isinstance(value, types.FunctionType | functools.partial):
        return "forward" if isinstance(value, functools.partial) else value.__name__
    if dataclasses.is_dataclass(value) and not isinstance(value, type):  # e.g. a TinyMLP
        text = f"{type(value).__name__}(...)"
    elif isinstance(value, dict):
        text = f"dict(keys={', '.join(map(str, value))})"
    elif type(value) in (tuple, list) and len(value) <= 4:
        items = ", ".join(describe_value(item) for item in value)
        text = (
            f"({items}{',' if len(value) == 1 else ''})"
            if isinstance(value, tuple)
            else f"[{items}]"
        )
    elif type(value) in (tuple, list):
        text = f"{type(value).__name__} of {len(value)} items"
    else:
        text = repr(value)
    return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 3] + "..."


def describe_call(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """``name(arg, ..., key=value)`` with each argument described by ``describe_value``."""
    parts = [describe_value(a) for a in args] + [
        f"{k}={describe_value(v)}" for k, v in kwargs.items()
    ]
    return f"{name}({', '.join(parts)})"


def _code_of(value: Any) -> types.CodeType | None:
    """The code a function argument runs (through ``functools.partial``), else None."""
    function = value.func if isinstance(value, functools.partial) else value
    return function.__code__ if isinstance(function, types.FunctionType) else None


class LocalFunction(BoundFunction):
    """A student's function in this process, called under the grading rules.

    Creating it runs the static reference scan (``ReferenceUsed`` at once if the function reaches
    the reference); each call runs under the dynamic guard, with warnings, stdout and stderr
    captured, and floating-point errors silenced.
    """

    def __init__(self, name: str, function: Any, forbidden: Forbidden):
        self.name, self.function, self.forbidden = name, function, forbidden
        if not callable(function):
            raise StudentError(
                f"{name} must be a function, but it is {type(function).__name__}: "
                f"define it with `def {name}(...):`"
            )
        path = reference_uses(function, forbidden)
        if path is not None:
            raise ReferenceUsed(
                f"{name} uses the course's reference implementation ({path}); this part earns "
                "no marks until you write it yourself with numpy"
            )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._guarded(self.function, args, kwargs, describe_call(self.name, args, kwargs))

    def drive(self, driver: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``driver(function, *args, **kwargs)`` as one guarded call of the student's code.

        For what a plain call cannot exercise, such as an ``nn.Module`` class: a trusted,
        module-level, self-contained ``driver`` of the checks module constructs it, switches
        ``train()``/``eval()`` and calls it, and returns plain values (tensors, numbers).
        """
        call = f"{self.name} in {describe_call(driver.__name__, args, kwargs)}"
        allowed = frozenset({driver.__code__})
        return self._guarded(driver, (self.function, *args), kwargs, call, allowed)

    def _guarded(
        self,
        function: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        call: str,
        allowed: frozenset[types.CodeType] = frozenset(),
    ) -> Any:
        """``function(*args, **kwargs)`` under the grading rules; ``call`` words the messages."""
        allowed |= frozenset(_code_of(value) for value in (*args, *kwargs.values())) - {None}
        output = io.StringIO()
        with (
            warnings.catch_warnings(),
            np.errstate(all="ignore"),
            contextlib.redirect_stdout(output),
            contextlib.redirect_stderr(output),
        ):
            warnings.simplefilter("ignore")
            try:
                result, report = call_guarded(function, args, kwargs, self.forbidden, allowed)
            except NotImplementedError:
                raise StudentError(
                    f"{self.name} is not written yet: {call} raised NotImplementedError "
                    "(replace `raise NotImplementedError()`, in it or in a function it calls, "
                    "with your code)"
                ) from None
            except (Exception, SystemExit) as error:
                raise StudentError(f"{call} raised {type(error).__name__}: {error}") from None
        if report.tampered:
            raise CheckFailure(
                f"{call} changed the interpreter's profile hook, which grading relies on"
            )
        if report.reference is not None:
            raise ReferenceUsed(
                f"{call} ran the course's reference implementation ({report.reference}); this "
                "part earns no marks until you write it yourself with numpy"
            )
        return result


@dataclass(frozen=True)
class Check:
    """One registered check: the function, the student functions it takes, what it verifies."""

    name: str
    function: Callable[..., None]
    student_functions: tuple[str, ...]
    summary: str
    """The property it verifies, printed when the check passes."""


@dataclass(frozen=True)
class Row:
    """One row of an assignment's table of checks (see ``Assignment.declare``).

    ``check(functions, **parameters)`` gets the student's ``functions`` by notebook name and the
    parameters: the row's ``defaults`` (the visible test), updated with the test cell's keywords
    (a hidden test).
    """

    summary: str
    check: Callable[..., None]
    functions: tuple[str, ...]
    defaults: Mapping[str, Any]

    def __call__(self, **arguments: Any) -> None:
        functions = {name: arguments.pop(name) for name in self.functions}
        self.check(functions, **{**self.defaults, **arguments})


class Assignment:
    """The checks of one assignment, keyed by the ``grade_id`` of the test cell that runs them.

    Args:
        assignment_id: nbgrader assignment name, e.g. "ch2_inverted_scaling".
        notebook: notebook name without ``.ipynb``, e.g. "inverted_scaling".
        forbidden_modules: modules the student's functions must not use (call ``seal`` at the end
            of the assignment's module to capture them, before any student code runs).
        allowed_modules: per student function, forbidden modules it may use all the same (its
            own part is something else: a forward pass may draw its mask with the library).
        partly_open: forbidden modules that also provide building blocks, each mapped to the
            names in it that stay forbidden (the exercise's functions and their machinery).
    """

    def __init__(
        self,
        assignment_id: str,
        notebook: str,
        forbidden_modules: Iterable[str],
        allowed_modules: Mapping[str, tuple[str, ...]] | None = None,
        partly_open: Mapping[str, tuple[str, ...]] | None = None,
    ):
        self.assignment_id, self.notebook = assignment_id, notebook
        self.forbidden_modules = tuple(forbidden_modules)
        self.allowed_modules = dict(allowed_modules or {})
        self.partly_open = dict(partly_open or {})
        self.forbidden: Forbidden | None = None
        self.checks: dict[str, Check] = {}

    def _add(self, check: Check) -> None:
        if check.name in self.checks:
            raise ValueError(f"check {check.name!r} is registered twice")
        self.checks[check.name] = check

    def declare(self, table: Mapping[str, Row]) -> None:
        """Register each row of ``table`` under its key, the ``grade_id`` of its test cell."""
        for name, row in table.items():
            self._add(Check(name, row, row.functions, row.summary))

    def seal(self) -> None:
        """Capture the handles on the reference code (the module's import runs this).

        The course's numpy modules among ``forbidden_modules`` are imported first, those that
        exist, so their functions are captured object by object (the torch twins are forbidden by
        name: importing torch would cost every notebook seconds).
        """
        for name in self.forbidden_modules:
            if (
                name.startswith("dropout_course.")
                and not name.startswith("dropout_course.torch")
                and importlib.util.find_spec(name) is not None
            ):
                importlib.import_module(name)
        forbidden = Forbidden.capture(self.forbidden_modules)
        for module, parts in self.partly_open.items():
            forbidden = forbidden.open_except(module, parts)
        self.forbidden = forbidden

    def bind(self, name: str, function: Any) -> BoundFunction:
        """Wrap a student's function for a check (an audit proxy is already wrapped)."""
        if isinstance(function, BoundFunction):
            return function
        return LocalFunction(name, function, self.forbidden_for(name))

    def forbidden_for(self, name: str) -> Forbidden:
        """The reference handles student function ``name`` must not reach."""
        if self.forbidden is None:
            raise RuntimeError(f"assignment {self.assignment_id} was not sealed")
        return self.forbidden.without(self.allowed_modules.get(name, ()))

    def run(self, name: str, /, **arguments: Any) -> None:
        """Run check ``name``: student functions by keyword, parameters by keyword.

        Raises ``CheckFailure`` when the property does not hold.
        """
        if name not in self.checks:
            raise KeyError(f"{self.assignment_id} has no check {name!r}: {sorted(self.checks)}")
        check = self.checks[name]
        missing = [f for f in check.student_functions if f not in arguments]
        if missing:
            raise TypeError(f"check {name!r} needs the student's {', '.join(missing)}")
        bound = {f: self.bind(f, arguments.pop(f)) for f in check.student_functions}
        with warnings.catch_warnings(), np.errstate(all="ignore"):  # a test cell's stderr is fatal
            warnings.simplefilter("ignore")
            check.function(**bound, **arguments)

    def check(self, name: str, /, **arguments: Any) -> None:
        """What a test cell calls: run check ``name`` and say it passed, or fail with the hint.

        The failure is raised afresh here so the notebook shows a short traceback that ends in the
        message.
        """
        try:
            self.run(name, **arguments)
        except CheckFailure as failure:
            raise type(failure)(f"[{name}] {failure}") from None
        print(f"passed [{name}]: {self.checks[name].summary}")
