"""The worker process of the audit: runs one student's code, answers calls over a pipe.

Started by :class:`dropout_grading.sandbox.Worker` as ``python -m
dropout_grading.worker <checks module> <read fd> <write fd> <memory MB>``. It limits its
own address space, imports the assignment's checks module (which captures the reference
handles before any student code runs), then serves requests until its pipe closes:

* ``("hello",)``: ready;
* ``("run_cell", source)``: execute a notebook cell in the notebook namespace;
* ``("bind", name)``: wrap the notebook's function ``name`` for grading (static reference scan);
* ``("call", handle, args, kwargs)``: call a bound function, reply with the result and the
  final state of every mutable argument (arrays, generators).

Replies are ``("ok", ...)``, ``("error", text)`` for a failed cell, or ``("fail", failure class,
message)``. SIGINT interrupts the request being served (the audit's timeout), like a kernel
interrupt; between requests it is ignored.
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

from .framework import CheckFailure
from .notebook import python_source
from .sandbox import Handle, from_wire, mutable_states, read_frame, to_wire, write_message


class _NoShell:
    """Stands in for ``get_ipython()``: magics and shell commands do nothing in the worker."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


class Server:
    """Serves the requests of one audit (see the module docstring)."""

    def __init__(self, checks_module: str):
        self.assignment = importlib.import_module(checks_module).ASSIGNMENT
        self.namespace: dict[str, Any] = {
            "__name__": "__main__",
            "__builtins__": builtins,
            "get_ipython": _NoShell,
            "display": lambda *args, **kwargs: None,
        }
        self.store: dict[int, Any] = {}
        self.busy = False

    def interrupt(self, signum: int, frame: Any) -> None:
        """SIGINT handler: interrupt a request being served, ignore it otherwise."""
        if self.busy:
            raise KeyboardInterrupt

    def run_cell(self, source: str) -> tuple[Any, ...]:
        output = io.StringIO()
        try:
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
        self, function: Handle, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Any, ...]:
        args = from_wire(args, self.store)
        kwargs = {name: from_wire(value, self.store) for name, value in kwargs.items()}
        result = from_wire(function, self.store)(*args, **kwargs)
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
