"""Sliders over precomputed results that work live in JupyterLab and static in the hosted book.

``slider(draw, p=[0.0, 0.25, 0.5])`` renders ``draw(p=v)`` once per slider position and returns
an object that Jupyter displays two ways from one output:

* in JupyterLab (a kernel and the ipywidgets manager are there), as ipywidgets sliders over an
  image widget that shows the frame of the chosen values: a move only swaps PNG bytes, so it
  answers at once, and ``draw`` never runs again after the frames are rendered;
* in the built book (no kernel, no network), as self-contained HTML: ``<input type="range">``
  elements, every frame as an embedded PNG, and a few lines of inline JavaScript that swap them.
  The book drops the widget view (``nb_mime_priority_overrides`` in ``_config.yml``) and loads no
  widget manager (``nb_ipywidgets_js: {}``), so nothing is fetched from a CDN.

Several keyword axes give several sliders over their Cartesian product (one frame per
combination). ``draw`` must only plot results computed beforehand.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

_NUMBERS = itertools.count()

MAX_FRAMES = 400
"""Most frames one slider may embed (each is a PNG of a few tens of kB in the page)."""


def figure_png(figure: Figure, dpi: int = 80) -> bytes:
    """PNG bytes of ``figure``; the figure is closed (frames are drawn once, then discarded)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def _check_axes(axes: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    if not axes:
        raise ValueError("slider needs at least one axis, e.g. slider(draw, p=[0.0, 0.5])")
    checked = {}
    for name, values in axes.items():
        values = list(values)
        if not values:
            raise ValueError(f"axis {name!r} must hold at least one value, but got none")
        checked[name] = values
    frames = 1
    for values in checked.values():
        frames *= len(values)
    if frames > MAX_FRAMES:
        raise ValueError(
            f"the sliders span {frames} frames; at most MAX_FRAMES={MAX_FRAMES} are allowed"
        )
    return checked


def _caption(value: Any, fmt: str | None) -> str:
    if fmt is not None:
        return fmt.format(value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _script_json(value: Any) -> str:
    """JSON for an inline script: ``<`` escaped, so no text can close the ``<script>`` element."""
    return json.dumps(value).replace("<", "\\u003c")


class Slider:
    """Sliders over precomputed frames; see the module docstring for how it displays."""

    def __init__(
        self,
        draw: Callable[..., Figure],
        axes: dict[str, list[Any]],
        labels: dict[str, str],
        formats: dict[str, str | None],
        initial: dict[str, Any],
        alt: str | None = None,
    ):
        self.draw, self.axes, self.labels, self.formats = draw, axes, labels, formats
        self.initial = initial
        self.number = next(_NUMBERS)  # tells apart identical sliders on one page
        combos = [
            dict(zip(axes, combo, strict=True)) for combo in itertools.product(*axes.values())
        ]
        self.frames = [figure_png(draw(**values)) for values in combos]
        self.alts = [self._describe(alt, values) for values in combos]
        self._widget = None

    def _describe(self, alt: str | None, values: dict[str, Any]) -> str:
        """The alt text of one frame: ``alt`` formatted with its values, or the values alone."""
        shown = ", ".join(
            f"{self.labels[name]} = {_caption(value, self.formats[name])}"
            for name, value in values.items()
        )
        return f"Figure for {shown}" if alt is None else alt.format(**values)

    def frame_index(self, **values: Any) -> int:
        """Index in ``self.frames`` of one combination of axis values (row-major order)."""
        index = 0
        for name, options in self.axes.items():
            index = index * len(options) + options.index(values[name])
        return index

    def _repr_html_(self) -> str:
        digest = hashlib.sha1(b"".join(self.frames) + repr(self.labels).encode()).hexdigest()
        uid = f"dc-slider-{digest[:12]}-{self.number}"
        sources = [f"data:image/png;base64,{base64.b64encode(f).decode()}" for f in self.frames]
        start = self.frame_index(**self.initial)
        first_alt = html.escape(self.alts[start])
        rows, captions, sizes = [], [], []
        for i, (name, options) in enumerate(self.axes.items()):
            texts = [_caption(v, self.formats[name]) for v in options]
            position = options.index(self.initial[name])
            label = html.escape(self.labels[name])
            rows.append(
                f'<div><label for="{uid}-{i}">{label} = '
                f'<output id="{uid}-{i}-value">{html.escape(texts[position])}</output></label>'
                f'<br><input id="{uid}-{i}" class="dc-slider-input" type="range" min="0" '
                f'max="{len(options) - 1}" step="1" value="{position}" aria-label="{label}" '
                f'style="width: 60%;"></div>'
            )
            captions.append(texts)
            sizes.append(len(options))
        return f"""<div class="dc-static-slider" id="{uid}">
{"".join(rows)}
<img id="{uid}-img" src="{sources[start]}" alt="{first_alt}" style="max-width: 100%;">
<script>
(function () {{
  var sources = {json.dumps(sources)};
  var alts = {_script_json(self.alts)};
  var captions = {_script_json(captions)};
  var sizes = {json.dumps(sizes)};
  var image = document.getElementById("{uid}-img");
  function show() {{
    var index = 0;
    for (var i = 0; i < sizes.length; i++) {{
      var position = Number(document.getElementById("{uid}-" + i).value);
      document.getElementById("{uid}-" + i + "-value").textContent = captions[i][position];
      index = index * sizes[i] + position;
    }}
    image.src = sources[index];
    image.alt = alts[index];
  }}
  for (var i = 0; i < sizes.length; i++) {{
    var input = document.getElementById("{uid}-" + i);
    input.addEventListener("input", show);
    input.addEventListener("change", show);
  }}
}})();
</script>
</div>"""

    def widget(self):
        """The live view: ipywidgets sliders over an image that shows the matching frame."""
        if self._widget is None:
            self._widget = self._build_widget()
        return self._widget

    def _build_widget(self):
        import ipywidgets  # only the live view needs it

        controls = {
            name: ipywidgets.SelectionSlider(
                options=[(_caption(v, self.formats[name]), v) for v in options],
                value=self.initial[name],
                description=self.labels[name],
                style={"description_width": "initial"},
                layout=ipywidgets.Layout(width="70%"),
                continuous_update=True,
            )
            for name, options in self.axes.items()
        }
        image = ipywidgets.Image(value=self.frames[self.frame_index(**self.initial)], format="png")
        image.add_class("dc-live-slider-frame")

        def show(change: dict | None = None) -> None:
            image.value = self.frames[self.frame_index(**{n: c.value for n, c in controls.items()})]

        for control in controls.values():
            control.observe(show, names="value")
        return ipywidgets.VBox([*controls.values(), image])

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, Any]:
        bundle = {"text/html": self._repr_html_()}
        try:
            bundle.update(self.widget()._repr_mimebundle_())
        except ImportError:  # no ipywidgets: the static view is all there is
            pass
        bundle["text/plain"] = repr(self)
        return bundle

    def __repr__(self) -> str:
        axes = ", ".join(f"{name}={len(values)} values" for name, values in self.axes.items())
        return f"Slider({axes}, {len(self.frames)} frames)"


def slider(
    draw: Callable[..., Figure],
    *,
    labels: Mapping[str, str] | None = None,
    formats: Mapping[str, str] | None = None,
    initial: Mapping[str, Any] | None = None,
    alt: str | None = None,
    **axes: Sequence[Any],
) -> Slider:
    """Sliders over ``axes`` showing ``draw(**values)``: live in JupyterLab, static in the book.

    Args:
        draw: returns a matplotlib Figure for one value per axis, e.g. ``draw(p=0.5)``; it should
            only plot precomputed results. Each figure is closed after rendering.
        labels: text beside each slider (default: the axis name).
        formats: ``str.format`` pattern per axis for the value shown (default ``{:g}``).
        initial: the value each slider starts at (default: its first value).
        alt: what each frame shows, for screen readers: a ``str.format`` pattern over the axis
            names, e.g. ``"Validation accuracy against epochs at p = {p:.1f}"`` (default: the
            axis labels and values only).
        **axes: one keyword per slider, each a sequence of values, e.g. ``p=[0.0, 0.25, 0.5]``.

    Example:
        >>> slider(lambda p: plot_run(results[p]), p=[0.0, 0.2, 0.5])  # doctest: +SKIP
    """
    checked = _check_axes(axes)
    unknown = (set(labels or {}) | set(formats or {})) - set(checked)
    if unknown:
        raise ValueError(f"labels/formats name axes {sorted(unknown)} that are not slider axes")
    labels = {name: str((labels or {}).get(name, name)) for name in checked}
    formats = {name: (formats or {}).get(name) for name in checked}
    start = {name: values[0] for name, values in checked.items()}
    for name, value in (initial or {}).items():
        if name not in checked:
            raise ValueError(f"initial names axis {name!r}, which is not one of {list(checked)}")
        if value not in checked[name]:
            raise ValueError(f"initial[{name!r}] must be one of {checked[name]}, but got {value!r}")
        start[name] = value
    if alt is not None:
        try:
            alt.format(**start)
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(
                f"alt must be a str.format pattern over the axes {list(checked)}, but "
                f"alt={alt!r} fails: {error!r}"
            ) from None
    return Slider(draw, checked, labels, formats, start, alt)
