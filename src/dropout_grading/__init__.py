"""Graded assignments, beside the library: checks with feedback, and the instructor's audit.

This package imports ``dropout_course`` (the reference, its gradient check and statistical bounds);
the library never imports it. Each assignment has a checks module (``ch2`` for
``ch2_inverted_scaling``) holding an ``Assignment``: a table from test-cell id to a property of
the student's functions, built from the kit in ``properties``. The notebook's read-only first
cell imports that module before any student code runs; each test cell calls
``ch2.check("<test cell id>", <student functions>, <parameters>)``. The audit
(``python -m dropout_grading.audit``) reruns the same checks from a process that runs no
student code, with the reference modules replaced by tripwires. See ``README.md`` in this
package for how to write an assignment.

Modules: ``framework`` (the table, calling student code), ``properties`` (the kit: subjects,
properties, statistical tests, hints), ``provenance`` (detecting use of the reference: static
scan, in-kernel guard, the audit's tripwires), ``notebook`` (reading test cells), ``sandbox`` and
``worker`` (the audit's worker process), ``audit`` (the command).
"""

from __future__ import annotations

import importlib

from .framework import Assignment, CheckFailure, ReferenceUsed, StudentError

ASSIGNMENT_MODULES = {
    "ch2_inverted_scaling": "dropout_grading.ch2",
    "ch4_dropconnect": "dropout_grading.ch4",
    "ch5_tuning": "dropout_grading.ch5",
    "ch3_ensembles": "dropout_grading.ch3",
    "ch1_coadaptation": "dropout_grading.ch1",
    "ch6_beyond_dense": "dropout_grading.ch6",
    "ch7_modern_architectures": "dropout_grading.ch7",
    "ch8_recurrent": "dropout_grading.ch8",
    "ch9_uncertainty": "dropout_grading.ch9",
}
"""nbgrader assignment id -> module of its checks (add a line per new assignment)."""


def load_assignment(assignment_id: str) -> Assignment:
    """The ``Assignment`` registry of ``assignment_id`` (imports its checks module)."""
    return importlib.import_module(ASSIGNMENT_MODULES[assignment_id]).ASSIGNMENT


__all__ = [
    "ASSIGNMENT_MODULES",
    "Assignment",
    "CheckFailure",
    "ReferenceUsed",
    "StudentError",
    "load_assignment",
]
