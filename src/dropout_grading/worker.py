"""The worker process of the audit: runs one student's code, answers calls over a pipe.

Started by :class:`dropout_grading.sandbox.Worker` as ``python -m
dropout_grading.worker <checks module> <read fd> <write fd> <memory MB>``. It limits its
own address space, imports the assignment's checks module (which captures the reference
handles before any student code runs), then serves requests until its pipe closes:

* ``("hello",)``: ready;
* ``("run_cell", source)``: execute a notebook cell in the notebook namespace;
* ``("bind", name)``: wrap the notebook's function ``name`` for grading (static reference scan);
* ``("call", handle, args, kwargs)``: call a bound function, reply with the result and the
  final state of every mutable argument (arrays, tensors, generators);
* ``("drive", handle, args, kwargs, driver)``: the same for ``driver(function, *args,
  **kwargs)``, a trusted function of the checks module (``BoundFunction.drive``).

Replies are ``("ok", ...)``, ``("error", text)`` for a failed cell, or ``("fail", failure class,
message)``. SIGINT interrupts the request being served (the audit's timeout), like a kernel
interrupt; between requests it is ignored.

Before any cell runs, the reference functions in the course's modules are replaced by tripwires
(``provenance.Tripwires``): during a call they fail, and fail the call, when the student's function
reaches one it may not use, from any thread. Cells run as in the kernel: one that uses IPython
(magics, ``get_ipython()``) gets a real IPython shell on the notebook's namespace.
"""

from __future__ import annotations

import builtins
import contextlib
import importlib
import io
import pickle
import resource
import signal
import sys
import traceback
from typing import Any

from . import framework, notebook, provenance, sandbox
from .framework import CheckFailure, ReferenceUsed
from .notebook import ipython_shell, python_source, uses_ipython
from .provenance import Tripwires
from .sandbox import Handle, from_wire, mutable_states, read_frame, to_wire, write_message

COURSE_PACKAGES = ("dropout_course", "dropout_grading")
"""Packages whose modules get tripwires in place of the reference functions they hold."""
MACHINERY = (
    f"{__package__}",
    f"{__package__}.worker",
    framework.__name__,
    notebook.__name__,
    provenance.__name__,
    sandbox.__name__,
)
"""Modules left alone: the grading machinery that runs around a student's call."""


class Server:
    """Serves the requests of one audit (see the module docstring)."""

    def __init__(self, checks_module: str):
        self.assignment = importlib.import_module(checks_module).ASSIGNMENT
        self.tripwires = Tripwires(self.assignment.forbidden, COURSE_PACKAGES, MACHINERY)
        self.tripwires.install()
        self.namespace: dict[str, Any] = {
            "__name__": "__main__",
            "__builtins__": builtins,
            "get_ipython": self.ipython,
            "display": lambda *args, **kwargs: None,
        }
        self.shell: Any = None
        self.shell_context = contextlib.ExitStack()  # open as long as the worker runs
        self.store: dict[int, Any] = {}
        self.busy = False

    def ipython(self) -> Any:
        """The notebook's IPython shell, started on first use."""
        if self.shell is None:
            self.shell = self.shell_context.enter_context(ipython_shell(self.namespace))
        return self.shell

    def interrupt(self, signum: int, frame: Any) -> None:
        """SIGINT handler: interrupt a request being served, ignore it otherwise."""
        if self.busy:
            raise KeyboardInterrupt

    def run_cell(self, source: str) -> tuple[Any, ...]:
        output = io.StringIO()
        try:
            if uses_ipython(source):  # before the cell runs: it may import IPython's get_ipython
                self.ipython()
            with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
                code = compile(python_source(source), "<cell>", "exec")
                exec(code, self.namespace)
        except BaseException as error:  # a cell's error is the student's, whatever it is
            return ("error", "".join(traceback.format_exception_only(error)).strip())
        return ("ok", None)

    def bind(self, name: str) -> tuple[Any, ...]:
        if name not in self.namespace:
            return ("fail", "StudentError", f"{name} is not defined: run the cell that defines it")
        function = self.assignment.bind(name, self.namespace[name])
        return ("ok", to_wire(function, self.store))

    def call(
        self,
        function: Handle,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        driver: Any = None,
    ) -> tuple[Any, ...]:
        function = from_wire(function, self.store)
        args = tuple(self.tripwires.unwrap(from_wire(value, self.store)) for value in args)
        kwargs = {k: self.tripwires.unwrap(from_wire(v, self.store)) for k, v in kwargs.items()}
        driver = self.tripwires.unwrap(driver)
        with self.tripwires.armed(self.assignment.forbidden_for(function.name)) as trips:
            try:
                if driver is None:
                    result = function(*args, **kwargs)
                else:
                    result = function.drive(driver, *args, **kwargs)
            except BaseException:  # whatever the tripwire's exception became in the student's code
                if trips.reference is None:
                    raise
        if trips.reference is not None:
            raise ReferenceUsed(
                f"{function.name} ran the course's reference implementation ({trips.reference}) "
                "while it was graded; this part earns no marks until you write it yourself with "
                "numpy"
            )
        # Every mutable argument's final state goes back, changed or not: the audit compares it
        # with its own copy, so no comparison runs here, where the student's code could have
        # replaced numpy's functions.
        return ("ok", to_wire(result, self.store), mutable_states(args, kwargs))

    def handle(self, request: tuple[Any, ...]) -> tuple[Any, ...]:
        kind, *arguments = request
        try:
            self.busy = True
            if kind == "hello":
                return ("ok", None)
            if kind == "run_cell":
                return self.run_cell(*arguments)
            if kind == "bind":
                return self.bind(*arguments)
            return self.call(*arguments)
        except CheckFailure as failure:
            return ("fail", type(failure).__name__, str(failure))
        except KeyboardInterrupt:
            return ("fail", "StudentError", "interrupted: the call ran past the time limit")
        except BaseException as error:  # anything else the student's code causes
            return ("fail", "StudentError", f"{type(error).__name__}: {error}")
        finally:
            self.busy = False


def main(argv: list[str]) -> None:
    checks_module, read_fd, write_fd, memory_mb = argv
    limit = int(memory_mb) * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    server = Server(checks_module)
    signal.signal(signal.SIGINT, server.interrupt)
    while (frame := read_frame(int(read_fd))) is not None:
        write_message(int(write_fd), server.handle(pickle.loads(frame)))


if __name__ == "__main__":
    main(sys.argv[1:])
