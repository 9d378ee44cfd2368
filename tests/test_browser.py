"""The sliders work in a real browser: static in the built book, live in JupyterLab; and an
exercise notebook runs in JupyterLab as a student sees it.

Chromium (Debian's, through playwright) runs offline: every request that is not to ``file://`` or
this machine is aborted, and the tests assert that none was even attempted. Screenshots go to
``test-artifacts/`` (see ``browser.ARTIFACTS``). Without playwright or chromium these tests are
skipped, unless ``DC_REQUIRE_BROWSER=1`` (set by CI) makes that a failure.
"""

from __future__ import annotations

import base64
import json
import shutil
import time

import matplotlib.pyplot as plt
import pytest

from browser import (
    NOTEBOOK,
    ROOT,
    cell_errors,
    chromium,
    copy_for_lab,
    jupyter_lab,
    lab_command,
    offline_page,
    open_notebook,
    require_browser,
    run_all_cells,
    screenshot,
    wait_until_idle,
)
from dropout_course.widgets import slider
from wrong import Variant, submission

CHAPTER = "book/05_tuning"
THEME_PAGE_ERRORS = {"Identifier 'THEBE_JS_URL' has already been declared"}
"""Errors of the theme's own scripts, not the book's: sphinx-thebe and sphinx-book-theme both
inline ``const THEBE_JS_URL = ...`` into every page, so the second declaration throws."""


@pytest.fixture(scope="module")
def browser():
    """Chromium for this module's tests (skipped, or failed with DC_REQUIRE_BROWSER=1, if none)."""
    require_browser()
    with chromium() as running:
        yield running


def move(page, control, key: str) -> None:
    """Press ``key`` on a slider control (a range input or a noUiSlider handle), as a reader."""
    control.scroll_into_view_if_needed()
    control.focus()
    page.keyboard.press(key)


def step_key(value: float, maximum: float) -> str:
    """The arrow key that moves a slider away from its current end."""
    return "ArrowLeft" if value >= maximum else "ArrowRight"


LIVE_FRAME = "img.dc-live-slider-frame"
"""The image widget of ``dropout_course.widgets.slider`` in JupyterLab."""


def move_live_slider(page, name: str) -> float:
    """Move the first live slider of the notebook one step; return seconds until the image changed.

    Screenshots of the slider before and after are saved as ``<name>-before/after.png``.
    """
    boxes = page.locator(f"{NOTEBOOK} .widget-vbox").filter(has=page.locator(LIVE_FRAME))
    boxes.first.wait_for(timeout=30_000)
    box = boxes.first
    handle = box.locator(".noUi-handle").first
    image = box.locator(LIVE_FRAME).first
    image.wait_for(timeout=30_000)
    assert "Error displaying widget" not in page.locator(NOTEBOOK).inner_text()
    before = image.get_attribute("src")
    screenshot(box, f"{name}-before")
    key = step_key(
        float(handle.get_attribute("aria-valuenow")), float(handle.get_attribute("aria-valuemax"))
    )
    moved_at = time.perf_counter()
    move(page, handle, key)
    page.wait_for_function(
        """([box, selector, old]) => {
            const img = box.querySelector(selector);
            return img !== null && img.src !== old;
        }""",
        arg=[box.element_handle(), LIVE_FRAME, before],
        timeout=10_000,
    )
    seconds = time.perf_counter() - moved_at
    screenshot(box, f"{name}-after")
    after = image.get_attribute("src")
    assert after and after != before
    return seconds


def test_static_slider_javascript_picks_the_frame_python_indexes(browser, tmp_path):
    """The inline JavaScript indexes frames exactly as ``Slider.frame_index`` (row-major)."""

    def draw(p, width):
        figure, axes = plt.subplots(figsize=(2, 1))
        axes.bar([0], [p], width=width / 4)
        axes.set_ylim(0, 1)
        return figure

    view = slider(draw, p=[0.0, 0.5, 1.0], width=[1, 2, 3], initial={"p": 0.5, "width": 1})
    page_file = tmp_path / "slider.html"
    page_file.write_text(f"<!doctype html><html><body>{view._repr_html_()}</body></html>")
    offline = offline_page(browser)
    page = offline.page
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(page_file.as_uri())
    inputs = page.locator("input.dc-slider-input")
    image = page.locator("div.dc-static-slider img")

    def shown() -> bytes:
        return base64.b64decode(image.get_attribute("src").split(",", 1)[1])

    assert shown() == view.frames[view.frame_index(p=0.5, width=1)]
    move(page, inputs.nth(1), "ArrowRight")  # width 1 -> 2
    assert shown() == view.frames[view.frame_index(p=0.5, width=2)]
    move(page, inputs.nth(0), "ArrowRight")  # p 0.5 -> 1.0
    assert shown() == view.frames[view.frame_index(p=1.0, width=2)]
    assert page.locator("output").all_inner_texts() == ["1", "2"]
    assert not errors and not offline.blocked


def test_static_sliders_of_chapter_5_change_the_figure(browser, built_book, record_property):
    """Each static slider input of the built chapter page swaps the figure, offline."""
    path = built_book / f"{CHAPTER}.html"
    offline = offline_page(browser)
    page = offline.page
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    start = time.perf_counter()
    page.goto(path.as_uri())
    sliders = page.locator("div.dc-static-slider")
    assert sliders.count() >= 1, f"{path.name} has no static slider"
    moved = 0
    for s in range(sliders.count()):
        box = sliders.nth(s)
        image = box.locator("img")
        inputs = box.locator("input[type=range]")
        assert inputs.count() >= 1
        for i in range(inputs.count()):
            control = inputs.nth(i)
            control.scroll_into_view_if_needed()
            before = image.get_attribute("src")
            screenshot(box, f"static-slider{s}-input{i}-before")
            key = step_key(float(control.input_value()), float(control.get_attribute("max")))
            move(page, control, key)
            after = image.get_attribute("src")
            screenshot(box, f"static-slider{s}-input{i}-after")
            assert after != before, f"slider {s}, input {i}: {key} did not change the figure"
            assert after.startswith("data:image/png;base64,")
            moved += 1
    record_property("static_sliders_s", time.perf_counter() - start)
    errors = [error for error in errors if error not in THEME_PAGE_ERRORS]
    assert not errors, f"JavaScript errors on {path.name}: {errors}"
    assert not offline.blocked, f"{path.name} tried to reach the network: {offline.blocked}"
    assert moved == page.locator("div.dc-static-slider input[type=range]").count()


def test_chapter_5_runs_in_jupyterlab_and_its_live_slider_redraws(
    browser, tmp_path, record_property
):
    """Open the chapter as a notebook (jupytext), run all cells, move a live slider."""
    root = copy_for_lab({"book": ROOT / "book"}, tmp_path)
    start = time.perf_counter()
    with jupyter_lab(root) as lab:
        offline = offline_page(browser, height=1000)
        page = offline.page
        open_notebook(page, lab, f"{CHAPTER}.md")
        run_all_cells(page, timeout=600)
        record_property("lab_run_all_s", time.perf_counter() - start)
        screenshot(page, "lab-chapter-5-after-run-all")
        errors = cell_errors(page)
        assert not errors, "cells wrote errors or stderr in JupyterLab:\n" + "\n".join(errors)
        record_property("lab_redraw_s", move_live_slider(page, "lab-live-slider"))
        assert not offline.blocked, f"JupyterLab tried to reach the network: {offline.blocked}"


EXERCISE = "ch2_inverted_scaling"


def test_a_completed_exercise_runs_in_jupyterlab_and_its_slider_moves(
    browser, tmp_path, record_property
):
    """A student's finished exercise: every test cell passes in JupyterLab, the slider works."""
    (release,) = (ROOT / "exercises" / EXERCISE).glob("*.ipynb")
    (tmp_path / release.name).write_text(json.dumps(submission(EXERCISE, Variant("solution"))))
    start = time.perf_counter()
    with jupyter_lab(tmp_path, log_name="jupyterlab-exercise") as lab:
        offline = offline_page(browser, height=1000)
        page = offline.page
        open_notebook(page, lab, release.name)
        run_all_cells(page, timeout=300)
        record_property("exercise_run_all_s", time.perf_counter() - start)
        screenshot(page, "lab-exercise-completed")
        errors = cell_errors(page)
        assert not errors, "cells wrote errors or stderr in JupyterLab:\n" + "\n".join(errors)
        text = page.locator(NOTEBOOK).inner_text()
        silent = [g for g in grade_ids(release) if f"passed [{g}]" not in text]
        assert not silent, f"test cells that did not print 'passed': {silent}"
        record_property("exercise_redraw_s", move_live_slider(page, "lab-exercise-slider"))
        assert not offline.blocked, f"JupyterLab tried to reach the network: {offline.blocked}"


def test_an_untouched_exercise_says_what_to_write(browser, tmp_path):
    """Run All on the release stops at the first test cell, whose message says what to do."""
    (release,) = (ROOT / "exercises" / EXERCISE).glob("*.ipynb")
    shutil.copy(release, tmp_path / release.name)
    with jupyter_lab(tmp_path, log_name="jupyterlab-untouched") as lab:
        offline = offline_page(browser, height=1000)
        page = offline.page
        open_notebook(page, lab, release.name)
        lab_command(page, "notebook:run-all-cells")
        error = page.locator(
            f'{NOTEBOOK} .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
        ).first
        error.wait_for(timeout=120_000)
        wait_until_idle(page)
        error.scroll_into_view_if_needed()
        screenshot(page, "lab-exercise-untouched")
        first = grade_ids(release)[0]
        text = error.inner_text()
        assert f"[{first}]" in text and "is not written yet" in text, text
        assert "NotImplementedError()" in text  # the hint: what to replace
        assert not offline.blocked, f"JupyterLab tried to reach the network: {offline.blocked}"


def grade_ids(notebook) -> list[str]:
    """Grade ids of the autograded test cells of ``notebook``, in order."""
    cells = json.loads(notebook.read_text())["cells"]
    return [
        c["metadata"]["nbgrader"]["grade_id"]
        for c in cells
        if c["cell_type"] == "code"
        and c["metadata"].get("nbgrader", {}).get("grade")
        and not c["metadata"]["nbgrader"].get("solution")
    ]
