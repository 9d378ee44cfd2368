"""The grading framework without nbgrader: checks, reference detection, audit worker and parsing.

Each assignment's checks run on the instructor's solution, on correct alternatives and on the
classic mistakes of ``tests/wrong/<assignment>.py``, directly in this process (the answer cells
executed in a dict, then every test cell's ``check`` calls, hidden tests included).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
import pickle
import sys
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from dropout_course import dropout as reference_dropout
from dropout_course import masks as reference_masks
from dropout_course.bounds import FALSE_FAIL, binomial_tolerance
from dropout_course.ensembles import init_tiny_mlp
from dropout_grading import (
    ASSIGNMENT_MODULES,
    CheckFailure,
    ReferenceUsed,
    StudentError,
    load_assignment,
)
from dropout_grading.framework import describe_value
from dropout_grading.notebook import (
    AutogradedCell,
    CodeCell,
    SourceCell,
    audit_plan,
    check_calls,
    red_flags,
)
from dropout_grading.provenance import Forbidden, call_guarded, reference_uses
from dropout_grading.sandbox import (
    Handle,
    RemoteFunction,
    TensorValue,
    Worker,
    WorkerDied,
    from_wire,
    load_untrusted,
    to_wire,
)
from wrong import ROOT, Variant, namespace, notebook_path, variants

ASSIGNMENTS = sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir())


def test_every_assignment_in_solutions_has_checks():
    assert ASSIGNMENTS and set(ASSIGNMENTS) <= set(ASSIGNMENT_MODULES)


def _nbgrader(cell):
    return cell.get("metadata", {}).get("nbgrader", {})


def grade_cells(assignment: str) -> dict[str, tuple[float, list]]:
    """grade id -> (points, check calls) of every autograded test cell of the source notebook."""
    import json

    cells = json.loads(notebook_path("solutions", assignment).read_text())["cells"]
    return {
        _nbgrader(c)["grade_id"]: (float(_nbgrader(c)["points"]), check_calls("".join(c["source"])))
        for c in cells
        if c["cell_type"] == "code"
        and _nbgrader(c).get("grade")
        and not _nbgrader(c).get("solution")
    }


def failures(assignment: str, variant: Variant) -> dict[str, CheckFailure]:
    """Failure of each test cell that fails for ``variant`` (cells run as in the notebook)."""
    checks, scope = load_assignment(assignment), namespace(assignment, variant)
    failed = {}
    for grade_id, (_, calls) in grade_cells(assignment).items():
        for call in calls:
            functions = {arg: scope[name] for arg, name in call.functions.items()}
            try:
                checks.run(call.name, **functions, **call.parameters)
            except CheckFailure as failure:
                failed[grade_id] = failure
                break
    return failed


CASES = [
    pytest.param(a, v, id=f"{a}-{v.name}")
    for a in ASSIGNMENTS
    for v in [Variant("solution"), *variants(a)]
]


@pytest.mark.parametrize(("assignment", "variant"), CASES)
def test_checks_take_exactly_the_expected_cells(assignment, variant):
    failed = failures(assignment, variant)
    assert set(failed) == set(variant.loses), {k: str(v)[:200] for k, v in failed.items()}
    if variant.hint:
        assert any(variant.hint in str(f) for f in failed.values()), [
            str(f) for f in failed.values()
        ]
    assert all(isinstance(f, AssertionError) for f in failed.values())


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_unanswered_release_fails_every_test_cell(assignment):
    failed = failures(assignment, Variant("untouched", base="release"))
    assert set(failed) == set(grade_cells(assignment))
    assert all("not written yet" in str(f) for f in failed.values())


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_test_cells_use_registered_checks_named_after_them(assignment):
    checks = load_assignment(assignment)
    used = set()
    for grade_id, (points, calls) in grade_cells(assignment).items():
        assert points > 0 and calls and calls[0].name == grade_id
        for call in calls:
            assert call.name in checks.checks
            assert set(call.functions) == set(checks.checks[call.name].student_functions)
            used.add(call.name)
    assert used == set(checks.checks), "a registered check no test cell runs"


AUTOGRADED = {  # assignment -> (autograded points, autograded test cells); + 4 by hand each
    "ch1_coadaptation": (14, 9),
    "ch2_inverted_scaling": (16, 10),
    "ch3_ensembles": (16, 8),
    "ch4_dropconnect": (18, 11),
    "ch5_tuning": (12, 9),
    "ch6_beyond_dense": (20, 14),
    "ch7_modern_architectures": (17, 10),
    "ch8_recurrent": (18, 15),
    "ch9_uncertainty": (18, 13),
}


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_points_per_assignment(assignment):
    """The points the book's exercise page and the README announce."""
    points = [p for p, _ in grade_cells(assignment).values()]
    assert (sum(points), len(points)) == AUTOGRADED[assignment]


# A submission's functions may print, warn and divide by zero: the check must stay silent.
def noisy_keep_mask(shape, p, rng):
    print("debugging", file=sys.stderr)
    np.log(np.zeros(1))
    np.float64(0.0) / np.float64(0.0)
    return rng.random(shape) >= p


def test_a_check_writes_nothing_to_stderr(capfd):
    load_assignment("ch2_inverted_scaling").check("keep_mask_values", keep_mask=noisy_keep_mask)
    captured = capfd.readouterr()
    assert captured.err == "" and "passed [keep_mask_values]" in captured.out


def test_a_failed_check_is_an_assertion_with_the_cell_name():
    checks = load_assignment("ch2_inverted_scaling")
    with pytest.raises(AssertionError, match=r"^\[keep_mask_values\] keep_mask\(.*must keep"):
        checks.check("keep_mask_values", keep_mask=lambda shape, p, rng: rng.random(shape) < p)


def test_student_errors_are_reported_as_such():
    checks = load_assignment("ch2_inverted_scaling")
    with pytest.raises(StudentError, match="raised ZeroDivisionError"):
        checks.run("keep_mask_values", keep_mask=lambda shape, p, rng: 1 / 0)
    with pytest.raises(StudentError, match="must be a function"):
        checks.run("keep_mask_values", keep_mask=3)


# Statistical bounds -----------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "q"), [(4000, 0.3), (4000, 0.95), (5000, 0.2), (100, 0.5)])
def test_binomial_tolerance_is_a_safe_tail_bound(n, q):
    sd = math.sqrt(n * q * (1 - q))
    t = binomial_tolerance(n, q)
    # The normal tail at 1e-9 is 6.1 sd; Bernstein is more careful, but not by much.
    assert 6.1 * sd < t < 7.5 * sd + 20
    assert binomial_tolerance(n, q, FALSE_FAIL * 10) < t


def test_binomial_tolerance_covers_simulated_counts():
    rng = np.random.default_rng(0)
    counts = rng.binomial(4000, 0.3, size=200_000)
    assert np.max(np.abs(counts - 1200)) < binomial_tolerance(4000, 0.3)


# Reference detection ----------------------------------------------------------------------------

FORBIDDEN = load_assignment("ch2_inverted_scaling").forbidden_for("dropout_forward")


def in_notebook(source: str, name: str, **scope):
    """Define ``name`` by executing ``source`` as a notebook cell would (module ``__main__``)."""
    namespace_ = {"__name__": "__main__", "np": np, **scope}
    exec(compile(source, "<cell>", "exec"), namespace_)
    return namespace_[name]


REF = reference_dropout.dropout_forward
REFERENCE_USES = {  # case -> (notebook source, name of the function, variables the cell sees)
    "direct": ("f = ref", "f", {}),
    "alias": (
        "from dropout_course.dropout import dropout_forward as df\n"
        "def f(x, p, **k):\n    return df(x, p, **k)",
        "f",
        {},
    ),
    "helper": (
        "def helper(*a, **k):\n    return ref(*a, **k)\n"
        "def f(x, p, **k):\n    return helper(x, p, **k)",
        "f",
        {},
    ),
    "module_chain": (
        "import dropout_course.dropout\n"
        "def f(x, p, **k):\n    return dropout_course.dropout.dropout_forward(x, p, **k)",
        "f",
        {},
    ),
    "closure": (
        "def make(g):\n    def f(x, p, **k):\n        return g(x, p, **k)\n    return f\n"
        "f = make(ref)",
        "f",
        {},
    ),
    "default_argument": ("def f(x, p, _impl=ref, **k):\n    return _impl(x, p, **k)", "f", {}),
    "partial": ("f = partial(ref, scaling='inverted')", "f", {"partial": functools.partial}),
    "container": (
        "IMPL = {'f': ref}\ndef f(x, p, **k):\n    return IMPL['f'](x, p, **k)",
        "f",
        {},
    ),
    "callable_object": (
        "class F:\n    def __call__(self, x, p, **k):\n        return ref(x, p, **k)\nf = F()",
        "f",
        {},
    ),
    "import_by_string": (
        "import importlib\ndef f(x, p, **k):\n"
        "    return importlib.import_module('dropout_course.dropout').dropout_forward(x, p, **k)",
        "f",
        {},
    ),
    "reused_code": (
        "f = FunctionType(ref.__code__, ref.__globals__)",
        "f",
        {"FunctionType": types.FunctionType},
    ),
    "recompiled_copy": (inspect.getsource(reference_dropout.output_scales), "output_scales", {}),
    "torch": (
        "import torch\ndef f(x, p, **k):\n"
        "    return torch.nn.functional.dropout(torch.as_tensor(x), p).numpy(), None",
        "f",
        {},
    ),
    "grader": (
        "from dropout_grading import ch2\n"
        "def f(x, p, **k):\n    return ch2.trusted_forward(x, p, **k)",
        "f",
        {},
    ),
    "fast_path": (
        "from dropout_course.fast import dropout_forward as fast\n"
        "def f(x, p, **k):\n    return fast(x, p, **k)",
        "f",
        {},
    ),
}


@pytest.mark.parametrize("case", sorted(REFERENCE_USES))
def test_static_scan_finds_the_reference(case):
    source, name, scope = REFERENCE_USES[case]
    function = in_notebook(source, name, ref=REF, **scope, **vars(reference_dropout))
    assert reference_uses(function, FORBIDDEN) is not None


def test_static_scan_accepts_own_numpy_code_and_allowed_modules():
    source = (
        '"""Like dropout_course.dropout.dropout_forward, but mine."""\n'
        "from dropout_course.masks import keep_mask\n"
        "def scale(p):\n    return 1 / (1 - p)\n"
        "def f(x, p, *, train, rng=None, mask=None, scaling='inverted'):\n"
        "    m = keep_mask(x.shape, p, rng) if mask is None else mask\n"
        "    return x * m * scale(p), np.sum(m)\n"
    )
    assert reference_uses(in_notebook(source, "f"), FORBIDDEN) is None  # masks are allowed here
    keep_mask_rules = load_assignment("ch2_inverted_scaling").forbidden_for("keep_mask")
    assert reference_uses(in_notebook(source, "f"), keep_mask_rules) is not None


def test_dynamic_guard_catches_names_built_at_run_time():
    source = (
        "def f(x, p, **k):\n"
        "    module = __import__('.'.join(['dropout_course', 'dropout']), fromlist=['_'])\n"
        "    return getattr(module, 'dropout_' + 'forward')(x, p, **k)\n"
    )
    function = in_notebook(source, "f")
    assert reference_uses(function, FORBIDDEN) is None  # invisible before it runs
    checks = load_assignment("ch2_inverted_scaling")
    with pytest.raises(ReferenceUsed, match="ran the course's reference"):
        checks.run("forward_inverted_eval", dropout_forward=function)


def test_dynamic_guard_ignores_a_generator_resumed_during_the_call():
    """A check that fails inside a loop over its own generator leaves it suspended; the garbage
    collector may close it in the middle of a later student call, which is no use of it."""
    scope = {"__name__": "dropout_grading.ch2"}
    exec("def runs():\n    yield 1\n    yield 2", scope)
    started, fresh = scope["runs"](), scope["runs"]()
    next(started)
    for finalise in (started.close, fresh.close):
        assert call_guarded(finalise, (), {}, FORBIDDEN)[1].reference is None
    start = functools.partial(next, scope["runs"]())
    assert call_guarded(start, (), {}, FORBIDDEN)[1].reference == "dropout_grading.ch2.runs"


def test_captured_handles_survive_monkeypatching(monkeypatch):
    forbidden = Forbidden.capture(["dropout_course.masks"])
    original = reference_masks.keep_mask
    monkeypatch.setattr(reference_masks, "keep_mask", lambda *a: None)
    assert forbidden.name_of(original) == "dropout_course.masks.keep_mask"


# Audit pieces -----------------------------------------------------------------------------------


def test_check_calls_parse_visible_and_hidden_tests():
    source = (
        'ch2.check("a", keep_mask=keep_mask)\n### BEGIN HIDDEN TESTS\n'
        'ch2.check("a", keep_mask=keep_mask, shape=(2, 3), p=0.5)\n### END HIDDEN TESTS'
    )
    first, second = check_calls(source)
    assert first.functions == {"keep_mask": "keep_mask"} and first.parameters == {}
    assert second.parameters == {"shape": (2, 3), "p": 0.5}
    with pytest.raises(ValueError, match="may only call"):
        check_calls("assert keep_mask((2,), 0.5, rng).shape == (2,)")


def test_audit_plan_restores_read_only_cells_and_missing_tests():
    source_cells = {
        "setup": SourceCell("import numpy as np", locked=True, is_test=False),
        "answer": SourceCell("def f(): ...", locked=False, is_test=False),
        "t1": SourceCell("ch.check('t1', f=f)", locked=True, is_test=True),
        "t2": SourceCell("ch.check('t2', f=f)", locked=True, is_test=True),
    }
    cells = [
        {
            "cell_type": "code",
            "source": "import os",
            "metadata": {"nbgrader": {"grade_id": "setup"}},
        },
        {
            "cell_type": "code",
            "source": "def f(): return 1",
            "metadata": {"nbgrader": {"grade_id": "answer"}},
        },
        {"cell_type": "code", "source": "pass", "metadata": {"nbgrader": {"grade_id": "t1"}}},
        {"cell_type": "markdown", "source": "text", "metadata": {}},
    ]
    assert audit_plan(cells, source_cells) == [
        CodeCell("import numpy as np", editable=False),
        CodeCell("def f(): return 1", editable=True),
        AutogradedCell("t1"),
        AutogradedCell("t2"),
    ]


def test_red_flags_name_monkeypatching_and_reference_imports():
    cells = [
        CodeCell("import numpy as np\nfrom dropout_grading import ch2", editable=False),
        CodeCell("np.all = lambda *a: True\nsetattr(ch2, 'check', print)", editable=True),
        CodeCell(
            "import sys\nsys.setprofile(None)\nfrom dropout_course.dropout import x", editable=True
        ),
        CodeCell("%matplotlib inline\ny = np.ones(3)", editable=True),
    ]
    flags = red_flags(cells, ["dropout_course.dropout", "dropout_grading"])
    assert sorted(flags) == [
        "cell 1: calls setattr on ch2",
        "cell 1: changes np.all",
        "cell 2: calls sys.setprofile",
        "cell 2: imports dropout_course.dropout",
    ]


class Opaque:
    pass


def test_wire_sends_values_and_keeps_other_objects_as_handles():
    store = {}
    cache = Opaque()
    wire = to_wire((np.ones(2), [1.5, "x"], cache, np.float32(2)), store)
    value = load_untrusted(pickle.dumps(wire, protocol=5))
    assert isinstance(value[2], Handle) and from_wire(value[2], store) is cache
    np.testing.assert_array_equal(value[0], np.ones(2))
    assert value[1] == [1.5, "x"] and value[3] == np.float32(2)


def test_wire_sends_tensors_by_value_and_refuses_malformed_ones():
    torch = pytest.importorskip("torch")
    wire = to_wire((torch.arange(6, dtype=torch.int16).view(2, 3), torch.ones(2).bool()), {})
    tensor, flags = load_untrusted(pickle.dumps(wire, protocol=5))
    assert (tensor.dtype, tensor.device) == ("torch.int16", "cpu")
    np.testing.assert_array_equal(tensor.array, np.arange(6).reshape(2, 3))
    assert flags.dtype == "torch.bool" and flags.array.tolist() == [True, True]
    with pytest.raises(pickle.UnpicklingError, match="malformed tensor"):
        load_untrusted(pickle.dumps(TensorValue(np.ones(2), 3, "cpu")))  # dtype not text


def test_worker_syncs_torch_generators_and_tensors_back(tmp_path: Path):
    torch = pytest.importorskip("torch")
    module = ASSIGNMENT_MODULES["ch7_modern_architectures"]
    with Worker(module, cwd=str(tmp_path), timeout=10, memory_mb=4096) as worker:
        worker.run_cell(
            "import torch\n"
            "def draw(x, generator):\n"
            "    x.mul_(2)\n"
            "    return torch.rand(3, generator=generator)"
        )
        generator, x = torch.Generator().manual_seed(4), torch.ones(2)
        drawn = worker.function("draw")(x, generator)
    expected = torch.Generator().manual_seed(4)
    np.testing.assert_array_equal(drawn.array, torch.rand(3, generator=expected).numpy())
    assert torch.equal(torch.rand(2, generator=generator), torch.rand(2, generator=expected))
    assert x.tolist() == [2.0, 2.0]


def test_untrusted_pickles_cannot_run_code():
    class Exploit:
        def __reduce__(self):
            return (print, ("owned",))

    with pytest.raises(pickle.UnpicklingError, match="forbidden"):
        load_untrusted(pickle.dumps(("ok", Exploit())))
    with pytest.raises(pickle.UnpicklingError, match="dtype object"):
        load_untrusted(pickle.dumps(np.array([None, 1], dtype=object)))


@pytest.fixture
def worker(tmp_path: Path):
    with Worker(
        ASSIGNMENT_MODULES["ch2_inverted_scaling"], cwd=str(tmp_path), timeout=3, memory_mb=2048
    ) as w:
        yield w


def test_worker_calls_functions_and_syncs_mutable_arguments(worker):
    assert (
        worker.run_cell(
            "import numpy as np\ndef draw(shape, rng):\n    return rng.random(shape), object()"
        )
        is None
    )
    draw = worker.function("draw")
    rng = np.random.default_rng(3)
    values, cache = draw((2, 2), rng)
    np.testing.assert_array_equal(values, np.random.default_rng(3).random((2, 2)))
    assert isinstance(cache, Handle)
    np.testing.assert_array_equal(rng.random(2), np.random.default_rng(3).random(6)[4:])


def test_worker_syncs_arrays_even_when_numpy_is_patched(worker):
    """A student who replaces numpy's comparisons in the worker cannot hide an in-place edit."""
    worker.run_cell(
        "import numpy as np\n"
        "np.array_equal = lambda *a, **k: True\n"
        "np.array = lambda a, *args, **kwargs: a\n"
        "def scale(x):\n"
        "    x *= 2\n"
        "    return x"
    )
    x = np.ones(3)
    worker.function("scale")(x)
    np.testing.assert_array_equal(x, [2.0, 2.0, 2.0])


def test_parsing_from_many_threads_agrees_with_one():
    sources = [f"def f{i}(x):\n    return x + {i}\n%time f{i}(1)\n" for i in range(200)]
    cells = [CodeCell(source, editable=True) for source in sources]
    with ThreadPoolExecutor(8) as pool:
        flags = list(pool.map(lambda cell: red_flags([cell], ()), cells))
        calls = list(pool.map(check_calls, ['ch.check("a", f=g, p=0.5)'] * 200))
    assert flags == [[]] * 200 and all(c[0].parameters == {"p": 0.5} for c in calls)


def test_describe_value_keeps_messages_short():
    params = {f"W{i}": np.zeros((100, 100)) for i in range(50)}
    assert describe_value(params).startswith("dict(keys=W0, W1")
    assert len(describe_value(params)) <= 80
    assert describe_value(list(range(1000))) == "list of 1000 items"
    assert describe_value((3, 4)) == "(3, 4)" and describe_value((5,)) == "(5,)"
    assert describe_value(np.zeros((2, 3), np.float32)) == "array(shape=(2, 3), dtype=float32)"
    network = init_tiny_mlp((4, 8, 3), dropped_layer=1, rng=np.random.default_rng(0))
    assert describe_value(network) == "TinyMLP(...)"


def test_partly_open_module_keeps_only_the_exercise_forbidden():
    forbidden = load_assignment("ch3_ensembles").forbidden
    from dropout_course import ensembles

    assert (
        forbidden.name_of(ensembles.enumerate_masks) == "dropout_course.ensembles.enumerate_masks"
    )
    assert forbidden.name_of(ensembles.init_tiny_mlp) is None
    assert not forbidden.module_is_forbidden("dropout_course.ensembles")


def test_worker_refuses_reference_code_like_the_kernel(worker):
    worker.run_cell("from dropout_course.dropout import dropout_forward as f")
    with pytest.raises(ReferenceUsed):
        worker.function("f")
    with pytest.raises(StudentError, match="not defined"):
        worker.function("missing")


def test_worker_trips_on_reference_code_run_by_another_thread(worker):
    """The kernel's profile hook misses a thread started before the call; the worker's tripwires
    see every thread, and still let a function use what its rules allow (ch2's forward pass may
    draw the library's mask) and the notebook's own cells use the library."""
    server = (
        "import queue, threading\n"
        "import numpy as np\n"
        "from dropout_course import masks\n"
        "jobs, results = queue.Queue(), queue.Queue()\n"
        "def serve():\n"
        "    while True:\n"
        "        results.put(masks.keep_mask(*jobs.get()))\n"
        "threading.Thread(target=serve, daemon=True).start()\n"
        "def dropout_forward(x, p, *, train, rng):\n"
        "    jobs.put((x.shape, p, rng))\n"
        "    return x * results.get() / (1 - p), None\n"
        "def keep_mask(shape, p, rng):\n"
        "    jobs.put((shape, p, rng))\n"
        "    return results.get()\n"
    )
    assert worker.run_cell(server) is None
    assert worker.run_cell("mask = masks.keep_mask((3,), 0.5, np.random.default_rng(0))") is None
    rng = np.random.default_rng(0)
    out, _ = worker.function("dropout_forward")(np.ones((2, 3)), 0.5, train=True, rng=rng)
    assert set(np.unique(out)) <= {0.0, 2.0}
    with pytest.raises(ReferenceUsed, match=r"ran the course's reference .*masks\.keep_mask"):
        worker.function("keep_mask")((2, 3), 0.5, rng)


def test_worker_runs_the_notebooks_own_ipython_code(worker):
    """Magics, ``!`` commands and ``get_ipython()`` run as in the kernel (a stub would break the
    cell, and the functions it defines would lose their marks)."""
    cells = [
        "%matplotlib inline",
        "from IPython import get_ipython\n"
        "get_ipython().run_line_magic('config', \"InlineBackend.figure_format = 'svg'\")",
        "%%time\ndef f(x):\n    return 2 * x",
        "listing = !echo hello\n%time y = f(1)",
    ]
    assert [worker.run_cell(cell) for cell in cells] == [None] * len(cells)
    assert worker.function("f")(np.ones(2)).tolist() == [2.0, 2.0]


def test_worker_survives_a_runaway_cell_and_a_huge_allocation(worker):
    assert "KeyboardInterrupt" in worker.run_cell("while True:\n    pass")
    assert "MemoryError" in worker.run_cell("block = bytearray(8 * 2**30)")
    assert worker.run_cell("def f():\n    return 1") is None and worker.function("f")() == 1
    assert any("interrupted" in note for note in worker.notes)


def test_a_worker_that_ignores_interrupts_is_killed(tmp_path: Path):
    with Worker(
        ASSIGNMENT_MODULES["ch2_inverted_scaling"], cwd=str(tmp_path), timeout=1, memory_mb=2048
    ) as w:
        w.run_cell("import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)")
        with pytest.raises(WorkerDied):
            w.run_cell("while True:\n    pass")
        assert not w.alive
        with pytest.raises(WorkerDied):
            RemoteFunction(w, "f")


def test_each_checks_module_captures_the_reference_at_import():
    for module in ASSIGNMENT_MODULES.values():
        assignment = importlib.import_module(module).ASSIGNMENT
        assert assignment.forbidden is not None and assignment.forbidden.codes


def test_partial_of_trusted_forward_runs_inside_student_code():
    checks = load_assignment("ch2_inverted_scaling")
    scope = namespace("ch2_inverted_scaling", Variant("solution"))
    forward = functools.partial(
        sys.modules[ASSIGNMENT_MODULES["ch2_inverted_scaling"]].trusted_forward, gain=2.0
    )
    means, _ = checks.bind("train_output_moments", scope["train_output_moments"])(
        forward, [0.5], 1000, "inverted", np.random.default_rng(0)
    )
    assert abs(means[0] - 2.0) < 0.3
