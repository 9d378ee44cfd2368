"""Graded assignments: checks with feedback, and the instructor's out-of-process audit.

Each assignment has a checks module (``ch2`` for ``ch2_inverted_scaling``) holding an
``Assignment``: a registry from test-cell id to check function. The notebook's read-only first cell
imports that module before any student code runs; each test cell calls
``ch2.check("<test cell id>", <student functions>, <parameters>)``. The audit
(``python -m dropout_grading.audit``) reruns the same checks from a process that runs no
student code. See ``README.md`` in this package for how to write an assignment.

Modules: ``framework`` (checks, registry, calling student code), ``properties`` (building blocks
for checks), ``bounds`` (statistical tolerances), ``provenance`` (detecting use of the reference
implementation), ``notebook`` (reading test cells), ``sandbox`` and ``worker`` (the audit's worker
process), ``audit`` (the command).
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
