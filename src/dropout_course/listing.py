"""Code listings for the book: the library's own source, read when the cell runs.

``show_source(keep_mask, dropout_forward)`` returns a ``SourceListing``, which Jupyter displays
as a Markdown code block of Python: highlighted in the built book (myst-nb renders Markdown
outputs) and in JupyterLab or Colab alike. A chapter therefore shows the code it imports, never a
copy that can drift from it; each block is captioned with the file and lines it comes from.

Presentation only, like :mod:`dropout_course.widgets`: no reference module imports it.
"""

from __future__ import annotations

import inspect
import re
import textwrap
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
"""The ``dropout_course`` directory: only objects defined below it are listed."""


@dataclass(frozen=True)
class SourceBlock:
    """Source of consecutive listed objects of one file.

    Attributes:
        path: file, relative to the directory that holds ``dropout_course``.
        lines: ``(first, last)`` line numbers (1-based, inclusive) of each object.
        source: the objects' source text, separated by blank lines.
    """

    path: str
    lines: tuple[tuple[int, int], ...]
    source: str

    @property
    def line_ranges(self) -> str:
        """The line numbers as text, e.g. ``"12-30, 45-60"``."""
        return ", ".join(f"{first}-{last}" for first, last in self.lines)


@dataclass(frozen=True, repr=False)
class SourceListing:
    """What ``show_source`` returns: displays as Python code blocks, one per file."""

    blocks: tuple[SourceBlock, ...]

    def _repr_markdown_(self) -> str:
        parts = []
        for block in self.blocks:
            fence = code_fence(block.source)
            caption = f"`{block.path}`, lines {block.line_ranges}"
            parts.append(f"{caption}\n\n{fence}python\n{block.source}\n{fence}")
        return "\n\n".join(parts)

    def __repr__(self) -> str:
        return "\n\n".join(
            f"# {block.path}, lines {block.line_ranges}\n{block.source}" for block in self.blocks
        )


def code_fence(source: str) -> str:
    """A Markdown fence of backticks longer than any run of backticks in ``source`` (>= 3)."""
    longest = max((len(run) for run in re.findall(r"`+", source)), default=0)
    return "`" * max(3, longest + 1)


def _located_source(obj: object, name: str) -> tuple[Path, tuple[int, int], str]:
    """``(file, (first, last) line, source)`` of a function or class of ``dropout_course``.

    The source is dedented, so a method reads like a function.
    """
    if not (inspect.isfunction(obj) or inspect.isclass(obj) or inspect.ismethod(obj)):
        raise TypeError(
            f"{name} must be a function or class of dropout_course, but got {type(obj).__name__}"
        )
    path = Path(inspect.getsourcefile(obj) or "").resolve()
    if not path.is_relative_to(PACKAGE):
        raise ValueError(
            f"{name} must be defined in dropout_course (show_source lists the library's own "
            f"code), but {obj.__qualname__} comes from {path}"
        )
    lines, first = inspect.getsourcelines(obj)
    return path, (first, first + len(lines) - 1), textwrap.dedent("".join(lines)).rstrip("\n")


def show_source(*objects: object) -> SourceListing:
    """The source of library functions or classes, to display in a notebook cell.

    Args:
        objects: one or more functions or classes defined in ``dropout_course``, listed in the
            order given; consecutive objects of one file share a code block.

    Returns:
        A ``SourceListing``: Jupyter shows it as captioned Python code blocks (Markdown); its
        ``repr`` is the plain source.
    """
    if not objects:
        raise ValueError("show_source needs at least one function or class of dropout_course")
    located = [_located_source(obj, f"objects[{i}]") for i, obj in enumerate(objects)]
    blocks = []
    for path, group in groupby(located, key=lambda item: item[0]):
        _, lines, sources = zip(*group, strict=True)
        blocks.append(
            SourceBlock(
                path=path.relative_to(PACKAGE.parent).as_posix(),
                lines=lines,
                source="\n\n\n".join(sources),
            )
        )
    return SourceListing(tuple(blocks))
