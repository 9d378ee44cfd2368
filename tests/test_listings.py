"""The book shows the code it runs: ``show_source`` and the listings of every chapter.

``listed_objects`` reads which library objects a chapter lists; ``test_book_html.py`` checks that
the built pages show exactly their current source.
"""

from __future__ import annotations

import ast
import inspect
import json
import textwrap
from pathlib import Path

import jupytext
import pytest

from browser import ROOT
from dropout_course import dropout, masks
from dropout_course.listing import code_fence, show_source
from dropout_course.torch.dropout import Dropout

CHAPTER_FILES = sorted((ROOT / "book").glob("0[1-9]_*.md"))


def _code_cells(chapter: Path) -> list:
    return [cell for cell in jupytext.read(chapter).cells if cell.cell_type == "code"]


def _bound_names(node: ast.ImportFrom) -> set[str]:
    return {alias.asname or alias.name for alias in node.names}


def listed_objects(chapter: Path) -> list[tuple[str, object, list[str]]]:
    """``(expression, object, cell tags)`` for every argument of a ``show_source`` call.

    Each expression is evaluated with the chapter's last import of its name from
    ``dropout_course`` before the call (and nothing else), so a name the chapter defined itself,
    or imported from elsewhere, fails here.
    """
    imports: list[ast.ImportFrom] = []
    listed = []
    for cell in _code_cells(chapter):
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dropout_"):
                imports.append(node)
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "show_source":
                for argument in node.args:
                    expression = ast.unparse(argument)
                    root = expression.split(".")[0]
                    binding = [i for i in imports if root in _bound_names(i)]
                    assert binding, f"{chapter.name}: {root} is not imported from dropout_course"
                    namespace: dict[str, object] = {}
                    exec(compile(ast.Module([binding[-1]], []), str(chapter), "exec"), namespace)
                    value = eval(expression, namespace)
                    listed.append((expression, value, cell.metadata.get("tags", [])))
    return listed


def current_source(obj: object) -> str:
    """The object's source as the library file holds it now, dedented."""
    return textwrap.dedent(inspect.getsource(obj)).rstrip("\n")


def test_show_source_displays_the_source_as_a_captioned_python_block():
    listing = show_source(masks.keep_mask)
    lines, first = inspect.getsourcelines(masks.keep_mask)
    markdown = listing._repr_markdown_()
    assert markdown == (
        f"`dropout_course/masks.py`, lines {first}-{first + len(lines) - 1}\n\n"
        f"```python\n{current_source(masks.keep_mask)}\n```"
    )
    assert repr(listing).endswith(current_source(masks.keep_mask))


def test_consecutive_objects_of_one_file_share_a_block():
    listing = show_source(dropout.dropout_forward, dropout.dropout_backward, masks.keep_mask)
    assert [block.path for block in listing.blocks] == [
        "dropout_course/dropout.py",
        "dropout_course/masks.py",
    ]
    first = listing.blocks[0]
    assert len(first.lines) == 2 and first.line_ranges.count("-") == 2
    assert first.source == "\n\n\n".join(
        current_source(f) for f in (dropout.dropout_forward, dropout.dropout_backward)
    )


def test_a_method_is_listed_dedented():
    source = show_source(Dropout.forward).blocks[0].source
    assert source.startswith("def forward(self")


def test_code_fence_is_longer_than_any_run_of_backticks():
    assert code_fence("x = 1") == "```"
    assert code_fence('text = """```python"""') == "````"


@pytest.mark.parametrize(
    ("objects", "error", "message"),
    [
        ((), ValueError, r"show_source needs at least one function or class"),
        ((1.5,), TypeError, r"objects\[0\] must be a function or class of dropout_course"),
        (
            (masks.keep_mask, json.dumps),
            ValueError,
            r"objects\[1\] must be defined in dropout_course .* dumps comes from",
        ),
    ],
)
def test_show_source_rejects_what_is_not_library_code(objects, error, message):
    with pytest.raises(error, match=message):
        show_source(*objects)


@pytest.mark.parametrize("chapter", CHAPTER_FILES, ids=lambda path: path.stem)
def test_every_chapter_lists_library_code_from_a_cell_that_hides_its_input(chapter):
    listed = listed_objects(chapter)
    assert listed, f"{chapter.name} shows no source listing (show_source)"
    for expression, obj, tags in listed:
        assert obj.__module__.startswith("dropout_course."), f"{expression} is not the library's"
        assert "remove-input" in tags, (
            f"{chapter.name}: the cell listing {expression} shows its input"
        )
