"""Does a student's function merely call the course's reference implementation?

A grader that only measures behaviour gives full marks to ``def dropout_forward(*a, **k): return
library.dropout_forward(*a, **k)``. Two independent detectors stop that in the kernel, and a third
in the audit's worker process:

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
  the scan cannot see: names built at run time (``getattr(module, "drop" + "out_forward")``);
* tripwires (``Tripwires``, installed by the audit's worker): the reference functions, in the
  course's modules, replaced by stand-ins that fail the call when a student's function reaches
  one, from whatever thread. The profile hook only sees the threads that start during the call,
  so a thread the notebook started beforehand escapes it, and the kernel.

What none can catch: a copy of the reference's source text with edits (a similarity tool or a
human catches plagiarism), reference code run in another process, and code that deliberately
digs the original functions out or disables the detectors from inside the same process (removing
the profile hook is reported; patching this module is not). That is why the instructor audit
(:mod:`dropout_grading.audit`) measures behaviour from a process that runs no student code
and scans the answer cells' source for monkeypatching.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.machinery
import inspect
import opcode
import re
import signal
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


_SUSPENDABLE = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR
_NOT_A_START = frozenset({opcode.opmap["YIELD_VALUE"], opcode.opmap["RETURN_GENERATOR"]})


def _resumed(frame: types.FrameType) -> bool:
    """True for a generator (or coroutine) frame that does not start running its code here.

    Starting one (the first ``next``) is a use the guard sees. Resuming it at a ``yield``, or
    finalising it (``close``, when the garbage collector collects a generator that a failed check
    left behind, started or not), may happen in the middle of anyone's call.
    """
    code, lasti = frame.f_code, frame.f_lasti
    return bool(code.co_flags & _SUSPENDABLE) and lasti >= 0 and code.co_code[lasti] in _NOT_A_START


_MODULE_GLOBALS = globals()


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
            # this module's own frames: the audit worker's tripwires and import hook run inside
            # a student's call (and call the functions they stand for in frames of their own)
            if code in allowed or _resumed(frame) or frame.f_globals is _MODULE_GLOBALS:
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


@dataclass
class TripReport:
    """The first reference function a stand-in saw called while armed, if any."""

    reference: str | None = None


class ReferenceBlocked(RuntimeError):
    """What a tripwire raises: reference code was called while a student's function was graded."""


class Tripwires:
    """Stand-ins for the reference functions, which fail loudly while a student's function runs.

    The third detector, for the audit's worker process: it does not rely on the profile hook,
    which sees only the threads that start during the call, so it also sees a thread the
    notebook started beforehand and code that switched the hook off. ``install`` replaces, in
    every module of the course's ``packages`` (but the ``spared`` ones: the grading machinery that
    runs around a student's call), each function ``forbidden`` names by a stand-in, and gives the
    modules imported later theirs as they are imported. Outside ``armed`` a stand-in runs the
    original, so the notebook's own cells may use the library; inside, from whatever thread, it
    records the use in the ``TripReport`` and raises ``ReferenceBlocked`` (interrupting the main
    thread too, which may be waiting for the other one), unless the rules of the student's
    function being called allow that function.

    Limits: a stand-in replaces a name, not the function object, so code that digs the original
    out of the stand-in, of the checks' own tables or of the garbage collector and runs it on a
    thread of its own stays unseen, as does a reference call entered before the student's
    function was called.
    """

    def __init__(self, forbidden: Forbidden, packages: tuple[str, ...], spared: Iterable[str]):
        self.forbidden, self.packages, self.spared = forbidden, packages, frozenset(spared)
        self.originals: dict[int, Callable[..., Any]] = {}  # id(stand-in) -> original
        self.stand_ins: dict[int, Callable[..., Any]] = {}  # id(original) -> stand-in
        self.rules: Forbidden | None = None
        self.report = TripReport()
        self.main_thread = threading.get_ident()

    def install(self) -> None:
        """Put stand-ins in every loaded module of the packages, and in those imported later."""
        for module in list(sys.modules.values()):
            self.patch(module)
        sys.meta_path.insert(0, _PatchOnImport(self))

    def covers(self, module_name: str) -> bool:
        """True for the modules that get stand-ins."""
        return _matches(module_name, self.packages) and module_name not in self.spared

    def patch(self, module: types.ModuleType) -> None:
        """Replace the forbidden functions among ``module``'s names by their stand-ins."""
        name = getattr(module, "__name__", None)
        if not isinstance(name, str) or not self.covers(name):
            return
        for attribute, value in list(vars(module).items()):
            stand_in = self.stand_in(value)
            if stand_in is not None:
                setattr(module, attribute, stand_in)

    def stand_in(self, original: Any) -> Callable[..., Any] | None:
        """The stand-in for ``original`` if it is a forbidden function (made once), else None."""
        if not isinstance(original, types.FunctionType) or id(original) in self.originals:
            return None
        if id(original) in self.stand_ins:
            return self.stand_ins[id(original)]
        name = self.forbidden.name_of(original)
        if name is None or original.__module__ in self.spared:
            return None

        def stand_in(*args: Any, **kwargs: Any) -> Any:
            rules = self.rules  # read once: the main thread may disarm meanwhile
            if rules is not None and rules.name_of(original) is not None:
                self.trip(name)
            return original(*args, **kwargs)

        for attribute in ("__name__", "__qualname__", "__module__", "__doc__"):
            setattr(stand_in, attribute, getattr(original, attribute))
        self.originals[id(stand_in)], self.stand_ins[id(original)] = original, stand_in
        # the static scan names a stand-in as it names its original (a partly open module is no
        # forbidden prefix: only its closed functions are forbidden, by identity)
        self.forbidden.objects[id(stand_in)] = (name, stand_in)
        return stand_in

    def trip(self, name: str) -> None:
        """Record a use of ``name`` during a student's call and fail it."""
        first = self.report.reference is None
        if first:
            self.report.reference = name
        if first and threading.get_ident() != self.main_thread:
            # the main thread may be blocked waiting for this one: a real signal wakes it
            signal.pthread_kill(self.main_thread, signal.SIGINT)
        raise ReferenceBlocked(f"{name} is the course's reference implementation: write your own")

    @contextlib.contextmanager
    def armed(self, rules: Forbidden) -> Iterator[TripReport]:
        """While the ``with`` lasts, stand-ins of functions ``rules`` names trip."""
        self.report, self.rules = TripReport(), rules
        try:
            yield self.report
        finally:
            self.rules = None

    def unwrap(self, value: Any) -> Any:
        """``value`` with a stand-in (or a partial of one) replaced by the original function.

        For the trusted helpers a check passes to a student's function: they arrive, unpickled by
        name, as their stand-ins, and run as the originals (the dynamic guard lets their code
        run).
        """
        if isinstance(value, functools.partial):
            return functools.partial(self.unwrap(value.func), *value.args, **value.keywords)
        return self.originals.get(id(value), value) if callable(value) else value


class _PatchOnImport:
    """Meta path finder: the course's modules imported after ``Tripwires.install`` get stand-ins
    as soon as they have run (the other finders find them; their loaders are wrapped)."""

    def __init__(self, tripwires: Tripwires):
        self.tripwires = tripwires

    def find_spec(
        self, name: str, path: Any, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not self.tripwires.covers(name):
            return None
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            if isinstance(finder, _PatchOnImport) or find_spec is None:
                continue
            spec = find_spec(name, path, target)
            if spec is not None:
                if hasattr(spec.loader, "exec_module"):
                    spec.loader = _PatchingLoader(spec.loader, self.tripwires.patch)
                return spec
        return None


class _PatchingLoader:
    """A module loader that patches the module once it has run (anything else: the wrapped one)."""

    def __init__(self, loader: Any, patch: Callable[[types.ModuleType], None]):
        self.loader, self.patch = loader, patch

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self.loader.exec_module(module)
        self.patch(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)
