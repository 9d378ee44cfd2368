"""Does a student's function merely call the course's reference implementation?

A grader that only measures behaviour gives full marks to ``def dropout_forward(*a, **k): return
library.dropout_forward(*a, **k)``. Two independent detectors stop that:

* a static scan (``reference_uses``) walks what a function can reach before it runs: the global
  names its code (and nested code: lambdas, comprehensions, inner functions) reads, its closure
  cells, default arguments, ``functools.partial``/``__wrapped__``/bound-method targets, classes
  and callable objects defined in the notebook, containers those names hold, and attributes read
  from modules (``dc.dropout.dropout_forward``). It descends into any function defined in the
  notebook (helper functions, aliases), never into libraries. It reports a reference object
  (identity), a function running a reference code object (``FunctionType(ref.__code__, ...)``),
  a byte-for-byte recompiled copy of a reference function, a module of the reference, and a string
  constant that names one (``importlib.import_module("dropout_course.dropout")``);
* a dynamic guard (``call_guarded``) records, while the student's function runs, every Python
  frame that executes reference code or code of a forbidden module (``sys.setprofile``, also
  installed for new threads), and every C function a forbidden module exports. This catches what
  the scan cannot see: names built at run time (``getattr(module, "drop" + "out_forward")``).

What neither can catch: a copy of the reference's source text with edits (a similarity tool or a
human catches plagiarism), reference code run in a process or thread pool started before the
call, and code that deliberately disables the detectors from inside the same process (removing
the profile hook is reported; patching this module is not). The last is why the instructor audit
(:mod:`dropout_grading.audit`) measures behaviour from a process that runs no student code
and scans the answer cells' source for monkeypatching.
"""

from __future__ import annotations

import functools
import re
import sys
import threading
import types
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

_DOTTED_NAME = re.compile(r"[A-Za-z_][\w.]*")
_MIN_FINGERPRINT_BYTES = 48  # shorter functions (one-line properties) are too generic to compare
_SCAN_LIMIT = 20_000  # objects visited before the scan gives up (the dynamic guard still runs)


def _nested_codes(code: types.CodeType) -> Iterator[types.CodeType]:
    """``code`` and every code object nested in its constants (lambdas, comprehensions, defs)."""
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _nested_codes(const)


def _fingerprint(code: types.CodeType) -> tuple[Any, ...]:
    """What a recompiled copy of the same source shares with the original code object."""
    consts = tuple(c for c in code.co_consts if not isinstance(c, types.CodeType))
    return code.co_code, code.co_names, code.co_varnames, repr(consts)


def _defined_objects(module: types.ModuleType) -> Iterator[tuple[str, Any]]:
    """(qualified name, object) of functions and classes defined in ``module``, and methods."""
    for value in list(vars(module).values()):
        if getattr(value, "__module__", None) != module.__name__:
            continue
        name = f"{module.__name__}.{getattr(value, '__qualname__', '?')}"
        yield name, value
        if isinstance(value, type):
            for member in vars(value).values():
                function = getattr(member, "__func__", None) or getattr(member, "fget", member)
                if isinstance(function, types.FunctionType):
                    yield f"{module.__name__}.{function.__qualname__}", function


@dataclass(frozen=True)
class Forbidden:
    """Handles on the reference code, captured before any student code runs.

    Attributes:
        prefixes: module names whose code a student's function must not use (a prefix covers
            its submodules: "torch" covers "torch.nn.functional").
        objects: id -> (qualified name, object) of every captured function and class (the object
            is kept so the id stays valid).
        codes: code object -> qualified name, nested code included.
        fingerprints: bytecode fingerprint -> qualified name, to spot recompiled copies.
    """

    prefixes: tuple[str, ...]
    objects: dict[int, tuple[str, Any]]
    codes: dict[types.CodeType, str]
    fingerprints: dict[tuple[Any, ...], str]

    @classmethod
    def capture(cls, prefixes: Iterable[str]) -> Forbidden:
        """Capture the functions and classes of every imported module under ``prefixes``.

        Only the course's own modules (``dropout_course...``) are captured object by object;
        other prefixes (``torch``) and modules not imported yet are forbidden by name.
        """
        prefixes = tuple(prefixes)
        own = tuple(p for p in prefixes if _matches(p, ("dropout_course",)))
        objects: dict[int, tuple[str, Any]] = {}
        codes: dict[types.CodeType, str] = {}
        fingerprints: dict[tuple[Any, ...], str] = {}
        for module_name, module in list(sys.modules.items()):
            if module is None or not _matches(module_name, own):
                continue
            for name, value in _defined_objects(module):
                objects[id(value)] = (name, value)
                if isinstance(value, types.FunctionType):
                    for code in _nested_codes(value.__code__):
                        codes[code] = name
                        if len(code.co_code) >= _MIN_FINGERPRINT_BYTES:
                            fingerprints[_fingerprint(code)] = name
        return cls(prefixes, objects, codes, fingerprints)

    def without(self, allowed: Iterable[str]) -> Forbidden:
        """The same handles minus those of the ``allowed`` modules (and their submodules)."""
        allowed = tuple(allowed)
        if not allowed:
            return self

        def keep(name: str) -> bool:
            return not _matches(name, allowed)

        return Forbidden(
            tuple(p for p in self.prefixes if keep(p)),
            {k: v for k, v in self.objects.items() if keep(v[0])},
            {k: v for k, v in self.codes.items() if keep(v)},
            {k: v for k, v in self.fingerprints.items() if keep(v)},
        )

    def open_except(self, module: str, parts: Iterable[str]) -> Forbidden:
        """The same handles with ``module`` opened to student code, except its names ``parts``.

        For a module that is both the exercise and a source of building blocks: it stops being a
        forbidden prefix, and only ``parts`` (functions, and their private machinery) stay
        forbidden, by object (static scan), by code object (the dynamic guard sees every call
        into them, nested ones included) and by bytecode fingerprint (recompiled copies).
        """
        closed = tuple(f"{module}.{name}" for name in parts)

        def keep(name: str) -> bool:
            return not _matches(name, (module,)) or _matches(name, closed)

        return Forbidden(
            tuple(prefix for prefix in self.prefixes if prefix != module),
            {k: v for k, v in self.objects.items() if keep(v[0])},
            {k: v for k, v in self.codes.items() if keep(v)},
            {k: v for k, v in self.fingerprints.items() if keep(v)},
        )

    def module_is_forbidden(self, module_name: str) -> bool:
        """True if ``module_name`` is one of the prefixes or inside one."""
        return _matches(module_name, self.prefixes)

    def name_of(self, obj: Any) -> str | None:
        """The reference name ``obj`` stands for, or None if it is not reference code.

        A string that names a forbidden module or one of its attributes counts as well.
        """
        if isinstance(obj, str):
            named = _DOTTED_NAME.fullmatch(obj) and self.module_is_forbidden(obj)
            return f"the name {obj!r}" if named else None
        if id(obj) in self.objects and self.objects[id(obj)][1] is obj:
            return self.objects[id(obj)][0]
        if isinstance(obj, types.ModuleType):
            return obj.__name__ if self.module_is_forbidden(obj.__name__) else None
        code = getattr(obj, "__code__", None)
        if isinstance(code, types.CodeType):
            if code in self.codes:
                return self.codes[code]
            if _fingerprint(code) in self.fingerprints:
                return f"a copy of {self.fingerprints[_fingerprint(code)]}"
        module = getattr(obj, "__module__", None)
        if isinstance(module, str) and callable(obj) and self.module_is_forbidden(module):
            return f"{module}.{getattr(obj, '__qualname__', type(obj).__name__)}"
        return None


def _matches(module_name: str, prefixes: tuple[str, ...]) -> bool:
    return any(module_name == p or module_name.startswith(p + ".") for p in prefixes)


def _is_notebook_code(obj: Any, notebook_globals: dict[str, Any]) -> bool:
    """True for functions and classes defined in the notebook (not in an installed library)."""
    if isinstance(obj, types.FunctionType):
        return obj.__globals__ is notebook_globals or obj.__module__ == "__main__"
    return isinstance(obj, type) and obj.__module__ == "__main__"


def _children(obj: Any, names: frozenset[str], notebook_globals: dict[str, Any]):
    """(label, child, names) for what ``obj`` can reach; ``names`` resolve module attributes."""
    if isinstance(obj, types.FunctionType) and _is_notebook_code(obj, notebook_globals):
        codes = list(_nested_codes(obj.__code__))
        read = frozenset(n for code in codes for n in code.co_names)
        for code in codes:
            for const in code.co_consts:
                if isinstance(const, str):
                    yield f"the string {const!r}", const, read
        for name in sorted(read):
            if name in obj.__globals__:
                yield f"global {name!r}", obj.__globals__[name], read
        for cell in obj.__closure__ or ():
            try:
                yield "a closure variable", cell.cell_contents, read
            except ValueError:  # an empty cell (a variable assigned later)
                continue
        for value in (obj.__defaults__ or ()) + tuple((obj.__kwdefaults__ or {}).values()):
            yield "a default argument", value, read
        if hasattr(obj, "__wrapped__"):
            yield "__wrapped__", obj.__wrapped__, read
    elif isinstance(obj, types.ModuleType):
        for name in sorted(names):
            value = getattr(obj, name, None)
            if value is not None:
                yield f"attribute {name!r}", value, names
    elif isinstance(obj, types.MethodType):
        yield "the bound function", obj.__func__, names
        yield "the bound object", obj.__self__, names
    elif isinstance(obj, functools.partial):
        yield "the partial's function", obj.func, names
        for value in obj.args + tuple(obj.keywords.values()):
            yield "a partial argument", value, names
    elif isinstance(obj, type) and _is_notebook_code(obj, notebook_globals):
        for attr, member in vars(obj).items():
            target = getattr(member, "__func__", None) or getattr(member, "fget", member)
            yield f"method {attr!r}", target, names
    elif isinstance(obj, (tuple, list, set, frozenset)):
        for value in list(obj)[:1000]:
            yield "an item", value, names
    elif isinstance(obj, dict):
        for value in list(obj.values())[:1000]:
            yield "a value", value, names
    elif _is_notebook_code(type(obj), notebook_globals):  # a callable object from the notebook
        yield "its class", type(obj), names
        for value in vars(obj).values() if hasattr(obj, "__dict__") else ():
            yield "an attribute", value, names


def reference_uses(function: Callable[..., Any], forbidden: Forbidden) -> str | None:
    """How ``function`` can reach reference code, as a readable path, or None if it cannot.

    Example result: ``"global 'helper' -> global 'ref' = dropout_course.dropout.dropout_forward"``.
    """
    notebook_globals = getattr(function, "__globals__", {})
    stack: list[tuple[Any, str, frozenset[str]]] = [(function, "itself", frozenset())]
    seen: set[int] = set()
    while stack and len(seen) < _SCAN_LIMIT:
        obj, path, names = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if (name := forbidden.name_of(obj)) is not None:
            return f"{path} = {name}"
        for label, child, child_names in _children(obj, names, notebook_globals):
            stack.append((child, label if obj is function else f"{path} -> {label}", child_names))
    return None


@dataclass
class GuardReport:
    """What the dynamic guard saw during one call."""

    reference: str | None = None
    tampered: bool = False


def call_guarded(
    function: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    forbidden: Forbidden,
    allowed: frozenset[types.CodeType] = frozenset(),
) -> tuple[Any, GuardReport]:
    """Call ``function(*args, **kwargs)`` while recording any use of reference code.

    ``allowed`` holds code the caller itself passed in (a trusted helper handed to the student's
    function as an argument), which may run. Returns the result and a ``GuardReport``; exceptions
    from ``function`` propagate.
    """
    report = GuardReport()

    def hook(frame: types.FrameType, event: str, arg: Any) -> None:
        if report.reference is not None:
            return
        if event == "call":
            code = frame.f_code
            if code in allowed:
                return
            name = forbidden.codes.get(code)
            module = frame.f_globals.get("__name__", "")
            if name is None and isinstance(module, str) and forbidden.module_is_forbidden(module):
                name = f"{module}.{code.co_qualname}"
            report.reference = name
        elif event == "c_call":
            module = getattr(arg, "__module__", None)
            if isinstance(module, str) and forbidden.module_is_forbidden(module):
                report.reference = f"{module}.{getattr(arg, '__qualname__', '?')}"

    threading.setprofile(hook)
    sys.setprofile(hook)
    try:
        result = function(*args, **kwargs)
    finally:
        report.tampered = sys.getprofile() is not hook
        sys.setprofile(None)
        threading.setprofile(None)
    return result, report
