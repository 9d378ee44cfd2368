"""The audit's side of a worker process that runs one student's code, and the wire between them.

The audit never executes student code. It starts ``python -m dropout_grading.worker`` (a
fresh process, memory-limited with ``resource.setrlimit``), sends it the submission's code cells,
then calls the student's functions through ``RemoteFunction`` proxies: arguments travel to the
worker pickled over a pipe, results come back the same way. Values that checks read come back by
value (numpy arrays and scalars, numbers, strings, tuples and lists of them); anything else the
student returns (a ``cache`` object, say) stays in the worker and comes back as a ``Handle`` that
the audit can pass back in a later call. Torch tensors come back as ``TensorValue`` (the values
as a numpy array, the dtype and the device type), so checks of torch code read them in both
processes. Mutable arguments (arrays, tensors, numpy and torch generators) are synchronised back
after each call, so a check sees its generator advance and its inputs modified exactly as it
would in the notebook.

What comes back is untrusted: it is read by ``RestrictedUnpickler``, which only rebuilds numpy
arrays and scalars of numeric dtypes, complex numbers, handles and ``TensorValue``s, so a hostile
worker cannot make the audit process run code. Every request has a deadline; a worker that misses
it is interrupted (SIGINT, as nbgrader interrupts a kernel), and killed if it does not answer
within a grace period.
"""

from __future__ import annotations

import io
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .framework import FAILURES, BoundFunction, CheckFailure, StudentError

_HEADER = struct.Struct(">Q")
MAX_MESSAGE_BYTES = 1 << 30
"""Largest message either side accepts (a bigger one is a protocol error)."""
INTERRUPT_GRACE_S = 5.0
"""Seconds a worker gets to answer after SIGINT before it is killed."""
_NUMERIC_KINDS = "biufc"
_PLAIN = (bool, int, float, complex, str, type(None))


@dataclass(frozen=True)
class Handle:
    """Reference to an object that stays in the worker (key into the worker's table)."""

    key: int


@dataclass(frozen=True)
class TensorValue:
    """A torch tensor as it crosses the wire: its values, its dtype and device type as text."""

    array: np.ndarray
    dtype: str
    device: str


def _torch() -> Any:
    """The torch module if something imported it (a checks module of torch code), else None."""
    return sys.modules.get("torch")


def tensor_value(tensor: Any) -> TensorValue:
    """``tensor``'s values on the CPU (float32 for dtypes numpy lacks), dtype and device type."""
    values = tensor.detach().cpu()
    try:
        array = values.numpy()
    except TypeError:  # bfloat16 and friends
        array = values.float().numpy()
    return TensorValue(np.array(array, subok=False), str(tensor.dtype), tensor.device.type)


class WorkerDied(CheckFailure):
    """The worker process stopped answering (killed after a timeout, or crashed)."""


def write_message(fd: int, message: Any) -> None:
    """Send ``message`` pickled, with an 8-byte length header, on file descriptor ``fd``."""
    data = pickle.dumps(message, protocol=5)
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exactly(fd: int, size: int, deadline: float | None) -> bytes | None:
    """``size`` bytes from ``fd``; None at EOF or when ``deadline`` (monotonic) passes."""
    chunks, remaining = [], size
    while remaining:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                return None
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int, deadline: float | None = None) -> bytes | None:
    """One message's pickled bytes from ``fd``; None at EOF or past ``deadline``."""
    header = _read_exactly(fd, _HEADER.size, deadline)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > MAX_MESSAGE_BYTES:
        raise WorkerDied(f"the worker sent a message of {size} bytes, more than allowed")
    return _read_exactly(fd, size, deadline)


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for untrusted data: numeric numpy arrays and scalars, complex, ``Handle``."""

    ALLOWED = frozenset(
        {
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "scalar"),
            ("numpy._core.numeric", "_frombuffer"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("builtins", "complex"),
            (__name__, "Handle"),
            (__name__, "TensorValue"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"the worker sent a forbidden object {module}.{name}")
        return super().find_class(module, name)


def _require_plain(value: Any) -> None:
    """Raise unless ``value`` is made only of what ``to_wire`` may produce."""
    if isinstance(value, np.ndarray | np.generic):
        if value.dtype.kind not in _NUMERIC_KINDS:
            raise pickle.UnpicklingError(f"the worker sent an array of dtype {value.dtype}")
    elif type(value) in (tuple, list):
        for item in value:
            _require_plain(item)
    elif type(value) is dict:  # generator states
        for key, item in value.items():
            _require_plain(key)
            _require_plain(item)
    elif type(value) is TensorValue:
        texts = (type(value.dtype), type(value.device))
        if type(value.array) is not np.ndarray or texts != (str, str):
            raise pickle.UnpicklingError("the worker sent a malformed tensor")
        _require_plain(value.array)
    elif not isinstance(value, Handle) and type(value) not in _PLAIN:
        raise pickle.UnpicklingError(f"the worker sent a {type(value).__name__}")


def load_untrusted(data: bytes) -> Any:
    """Unpickle a worker's reply, allowing only plain values (see ``RestrictedUnpickler``)."""
    value = RestrictedUnpickler(io.BytesIO(data)).load()
    _require_plain(value)
    return value


def to_wire(value: Any, store: dict[int, Any], depth: int = 0) -> Any:
    """``value`` as sent to the audit: plain data by value, anything else as a ``Handle``."""
    if isinstance(value, np.ndarray) and value.dtype.kind in _NUMERIC_KINDS:
        return np.array(value, subok=False)
    if isinstance(value, np.generic) and value.dtype.kind in _NUMERIC_KINDS:
        return value
    if type(value) in _PLAIN:
        return value
    torch = _torch()
    if torch is not None and isinstance(value, torch.Tensor):
        return tensor_value(value)
    if type(value) in (tuple, list) and depth < 4:
        return type(value)(to_wire(item, store, depth + 1) for item in value)
    key = len(store)
    store[key] = value
    return Handle(key)


def from_wire(value: Any, store: dict[int, Any]) -> Any:
    """Replace each ``Handle`` in ``value`` (and in its tuples and lists) by the stored object."""
    if isinstance(value, Handle):
        return store[value.key]
    if type(value) in (tuple, list):
        return type(value)(from_wire(item, store) for item in value)
    return value


_GENERATOR, _NDARRAY = np.random.Generator, np.ndarray
"""Captured at import, before any student code: the worker's student may rebind numpy's names."""


def mutable_states(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[Any, Any]:
    """States of the mutable arguments (arrays, generators), keyed by position or keyword.

    Copies are made with the array type's own method (student code can rebind ``np.array`` in a
    worker, not a method of a built-in type). A torch generator's state is its byte tensor, a
    tensor's its values, both as numpy arrays.
    """
    states = {}
    torch = _torch()
    for key, value in (*enumerate(args), *kwargs.items()):
        if isinstance(value, _GENERATOR):
            states[key] = value.bit_generator.state
        elif isinstance(value, _NDARRAY) and value.dtype.kind in _NUMERIC_KINDS:
            states[key] = _NDARRAY.copy(value)
        elif torch is not None and isinstance(value, torch.Generator):
            states[key] = tensor_value(value.get_state()).array
        elif torch is not None and isinstance(value, torch.Tensor):
            states[key] = tensor_value(value).array
    return states


def _restore_states(args: tuple[Any, ...], kwargs: dict[str, Any], states: dict[Any, Any]) -> None:
    """Write the worker's final argument states back into the audit's own arguments."""
    torch = _torch()
    for key, state in states.items():
        value = args[key] if isinstance(key, int) else kwargs[key]
        if isinstance(value, np.random.Generator) and isinstance(state, dict):
            value.bit_generator.state = state
        elif isinstance(value, np.ndarray) and isinstance(state, np.ndarray):
            if state.shape == value.shape and not np.array_equal(state, value):
                np.copyto(value, state, casting="unsafe")
        elif torch is not None and isinstance(value, torch.Generator):
            value.set_state(torch.from_numpy(np.array(state, dtype=np.uint8)))
        elif torch is not None and isinstance(value, torch.Tensor):
            if tuple(state.shape) == tuple(value.shape) and not np.array_equal(
                state, tensor_value(value).array
            ):
                with torch.no_grad():
                    value.copy_(torch.from_numpy(state))


class Worker:
    """A worker process running one submission's code for the audit.

    Args:
        assignment_module: module of the assignment's checks (imported in the worker before any
            student code, so it captures its reference handles first).
        cwd: directory the student's code runs in (a scratch copy of the submission).
        timeout: seconds per notebook cell, as nbgrader's ``Execute.timeout``.
        memory_mb: address-space limit of the worker (``RLIMIT_AS``).
    """

    def __init__(self, assignment_module: str, *, cwd: str, timeout: float, memory_mb: int):
        self.timeout = timeout
        self.deadline: float | None = None
        self.notes: list[str] = []
        to_worker_read, self._to_worker = os.pipe()
        self._from_worker, from_worker_write = os.pipe()
        env = {
            **os.environ,
            "NBGRADER_EXECUTION": "autograde",  # what the kernel sees under nbgrader autograde
            "MPLBACKEND": "Agg",
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
        }
        command = [sys.executable, "-m", "dropout_grading.worker", assignment_module]
        command += [str(to_worker_read), str(from_worker_write), str(memory_mb)]
        self.process = subprocess.Popen(
            command,
            pass_fds=(to_worker_read, from_worker_write),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        os.close(to_worker_read)
        os.close(from_worker_write)
        self.alive = True
        self.request(("hello",), timeout=max(60.0, timeout))

    def request(self, message: tuple[Any, ...], timeout: float | None = None) -> tuple[Any, ...]:
        """Send ``message``, return the reply; interrupt, then kill, a worker past its deadline.

        The deadline is ``timeout`` seconds from now, or ``self.deadline`` (set per test cell).
        """
        if not self.alive:
            raise WorkerDied("the worker was stopped earlier (timeout or crash)")
        if timeout is not None or self.deadline is None:
            deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        else:
            deadline = self.deadline
        try:
            write_message(self._to_worker, message)
        except OSError:
            self.close()
            raise WorkerDied("the worker exited") from None
        frame = read_frame(self._from_worker, deadline)
        if frame is None and self.process.poll() is None:
            what = "a cell" if message[0] == "run_cell" else f"a call ({message[0]})"
            self.notes.append(f"{what} ran past the {self.timeout:g} s limit and was interrupted")
            os.kill(self.process.pid, signal.SIGINT)
            frame = read_frame(self._from_worker, time.monotonic() + INTERRUPT_GRACE_S)
        if frame is None:
            self.close()
            self.notes.append("the worker was killed (no answer, or it crashed)")
            raise WorkerDied(f"the worker did not answer {message[0]!r}; it was stopped")
        return load_untrusted(frame)

    def close(self) -> None:
        """Kill the worker (and anything it started) and close the pipes."""
        if self.alive:
            self.alive = False
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()
            os.close(self._to_worker)
            os.close(self._from_worker)

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def run_cell(self, source: str) -> str | None:
        """Execute one code cell in the worker; return its error text, or None if it ran."""
        reply = self.request(("run_cell", source), timeout=self.timeout)
        return None if reply[0] == "ok" else str(reply[1])

    def function(self, name: str) -> RemoteFunction:
        """Proxy for the notebook's function ``name`` (raises the failure the worker reports)."""
        return RemoteFunction(self, name)


def _raise_failure(reply: tuple[Any, ...]) -> None:
    """Raise the failure a ``("fail", class name, message)`` reply describes."""
    raise FAILURES.get(str(reply[1]), StudentError)(str(reply[2]))


class RemoteFunction(BoundFunction):
    """A student's function living in a worker, called like the local one."""

    def __init__(self, worker: Worker, name: str):
        self.worker, self.name = worker, name
        reply = worker.request(("bind", name))
        if reply[0] != "ok":
            _raise_failure(reply)
        self.key = reply[1]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._result(self.worker.request(("call", self.key, args, kwargs)), args, kwargs)

    def drive(self, driver: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``driver(function, *args, **kwargs)`` in the worker (the driver travels by name)."""
        request = ("drive", self.key, args, kwargs, driver)
        return self._result(self.worker.request(request), args, kwargs)

    @staticmethod
    def _result(reply: tuple[Any, ...], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The value of a call's reply, after the worker's argument states are written back."""
        if reply[0] != "ok":
            _raise_failure(reply)
        _, value, states = reply
        _restore_states(args, kwargs, states)
        return value
