"""``dropout_course.widgets.slider``: axis checks, frame order, static HTML and the live widget."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from matplotlib.figure import Figure

from dropout_course.widgets import MAX_FRAMES, figure_png, slider

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
ROOT = Path(__file__).resolve().parent.parent


def draw_bar(p: float, width: int = 1) -> Figure:
    """A small figure that differs for every (p, width): a bar of height p and that width."""
    figure, axes = plt.subplots(figsize=(3, 2))
    axes.bar([0], [p], width=width / 4)
    axes.set_title(f"p={p} width={width}")
    axes.set_ylim(0, 1)
    return figure


def data_uri(png: bytes) -> str:
    return f"data:image/png;base64,{base64.b64encode(png).decode()}"


@pytest.mark.parametrize(
    ("axes", "message"),
    [
        ({}, "at least one axis"),
        ({"p": []}, "axis 'p' must hold at least one value"),
        ({"p": range(MAX_FRAMES + 1)}, f"at most MAX_FRAMES={MAX_FRAMES}"),
        ({"p": range(30), "width": range(30)}, "span 900 frames"),
    ],
)
def test_bad_axes_are_refused_with_a_message(axes, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        slider(draw_bar, **axes)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"labels": {"q": "rate"}}, "labels/formats name axes ['q']"),
        ({"formats": {"q": "{:.1f}"}}, "labels/formats name axes ['q']"),
        ({"initial": {"q": 0.5}}, "initial names axis 'q', which is not one of ['p']"),
        ({"initial": {"p": 0.3}}, "initial['p'] must be one of [0.0, 0.5], but got 0.3"),
    ],
)
def test_options_that_name_no_axis_or_value_are_refused(options, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        slider(draw_bar, p=[0.0, 0.5], **options)


def test_one_frame_per_combination_in_row_major_order():
    calls = []

    def draw(p, width):
        calls.append((p, width))
        return draw_bar(p, width)

    ps, widths = [0.0, 0.5], [1, 2, 3]
    view = slider(draw, p=ps, width=widths)
    assert calls == [(p, w) for p in ps for w in widths]  # the last axis varies fastest
    assert len(view.frames) == len(ps) * len(widths)
    for p in ps:
        for w in widths:
            index = view.frame_index(p=p, width=w)
            assert index == ps.index(p) * len(widths) + widths.index(w)
            assert view.frames[index] == figure_png(draw_bar(p, w))
    assert len(set(view.frames)) == len(view.frames)


def test_every_drawn_figure_is_closed():
    plt.close("all")
    slider(draw_bar, p=[0.0, 0.25, 0.5])
    assert plt.get_fignums() == []


def test_static_html_has_one_range_input_per_axis_and_every_frame():
    ps, widths = [0.0, 0.25, 0.5], [1, 2]
    view = slider(
        draw_bar,
        p=ps,
        width=widths,
        labels={"p": "rate <p>"},
        formats={"p": "{:.2f}"},
        initial={"p": 0.25, "width": 2},
    )
    page = view._repr_html_()
    assert page.startswith('<div class="dc-static-slider"')
    inputs = re.findall(r"<input [^>]*>", page)
    assert len(inputs) == 2
    assert all('type="range"' in tag and 'min="0"' in tag for tag in inputs)
    assert [re.search(r'max="(\d+)"', tag)[1] for tag in inputs] == ["2", "1"]
    assert [re.search(r'value="(\d+)"', tag)[1] for tag in inputs] == ["1", "1"]
    assert "rate &lt;p&gt; = " in page and "rate <p>" not in page  # the label is escaped
    assert '["0.00", "0.25", "0.50"]' in page  # captions in the given format
    for frame in view.frames:
        assert data_uri(frame) in page
    start = view.frame_index(p=0.25, width=2)
    image = re.search(r'<img [^>]*src="([^"]+)"', page)[1]
    assert image == data_uri(view.frames[start])
    assert "<script src" not in page and "http" not in page  # nothing is fetched


def test_static_html_is_deterministic_and_ids_are_unique_on_a_page():
    view = slider(draw_bar, p=[0.0, 0.5], initial={"p": 0.5})
    assert view._repr_html_() == view._repr_html_()
    twin = slider(draw_bar, p=[0.0, 0.5], initial={"p": 0.5})
    other = slider(draw_bar, p=[0.0, 0.75], initial={"p": 0.75})
    element_id = re.compile(r'id="(dc-slider-[0-9a-f]+)-(\d+)"')
    ids = [element_id.search(v._repr_html_()).groups() for v in (view, twin, other)]
    assert ids[0][0] == ids[1][0] != ids[2][0]  # the content digest: same frames, same digest
    assert len({f"{digest}-{n}" for digest, n in ids}) == 3  # yet no two share an element id
    # The same slider in a new process (a rebuild of the book) gives the same page.
    script = (
        "import matplotlib; matplotlib.use('Agg'); import sys; sys.path.insert(0, 'tests');"
        "from test_widgets import draw_bar; from dropout_course.widgets import slider;"
        "print(slider(draw_bar, p=[0.0, 0.5], initial={'p': 0.5})._repr_html_())"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
        ).stdout
        for _ in range(2)
    ]
    assert runs[0] == runs[1] and "dc-static-slider" in runs[0]


def test_mime_bundle_has_the_static_html_and_the_live_widget_view():
    view = slider(draw_bar, p=[0.0, 0.5])
    bundle = view._repr_mimebundle_()
    assert bundle["text/html"] == view._repr_html_()
    assert bundle[WIDGET_VIEW]["model_id"] == view.widget().model_id
    assert repr(view) == "Slider(p=2 values, 2 frames)"


def test_live_widget_shows_the_precomputed_frame_without_drawing_again():
    """A move swaps in the frame rendered beforehand: it never calls ``draw``, so it is instant."""
    calls: list[tuple[float, int]] = []

    def counted_draw(p: float, width: int = 1) -> Figure:
        calls.append((p, width))
        return draw_bar(p, width)

    view = slider(counted_draw, p=[0.0, 0.25, 0.5], width=[1, 2])
    assert len(calls) == 6  # one frame per combination, rendered once
    *controls, image = view.widget().children
    assert image.value == view.frames[view.frame_index(p=0.0, width=1)]
    for p, width in [(0.25, 1), (0.5, 2), (0.0, 2)]:
        controls[0].value, controls[1].value = p, width
        assert image.value == view.frames[view.frame_index(p=p, width=width)]
    assert len(calls) == 6
    assert plt.get_fignums() == []


def test_widget_is_built_once_with_a_slider_per_axis():
    view = slider(draw_bar, p=[0.0, 0.5], width=[1, 2], initial={"width": 2})
    box = view.widget()
    assert view.widget() is box
    controls = box.children[:-1]
    assert [c.value for c in controls] == [0.0, 2]
    assert [c.index for c in controls] == [0, 1]
    assert [c.options for c in controls] == [(("0", 0.0), ("0.5", 0.5)), (("1", 1), ("2", 2))]


def test_every_frame_has_its_own_alt_text_in_the_static_view():
    view = slider(
        draw_bar, p=[0.0, 0.5], width=[1, 2], alt="Bar of height {p:.1f} and width {width}"
    )
    assert view.alts == [f"Bar of height {p:.1f} and width {w}" for p in (0.0, 0.5) for w in (1, 2)]
    page = view._repr_html_()
    assert re.search(r'<img [^>]*alt="Bar of height 0\.0 and width 1"', page)
    assert json.dumps(view.alts) in page  # the script swaps the alt text with the frame
    default = slider(draw_bar, p=[0.5], labels={"p": "rate"}, formats={"p": "{:.2f}"})
    assert default.alts == ["Figure for rate = 0.50"]


def test_an_alt_pattern_that_names_no_axis_is_refused():
    with pytest.raises(ValueError, match=r"alt must be a str.format pattern over the axes \['p'\]"):
        slider(draw_bar, p=[0.0, 0.5], alt="height {q}")
