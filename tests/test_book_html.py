"""Checks of the HTML the book build writes, read with the standard library's ``html.parser``.

Every page of the table of contents is there; chapters show figures and static sliders and the
current source of the library code they list; every image has alt text that describes it, and
each chapter's key figures are numbered, captioned and referred to by number; no cell printed an
error; every citation links into the references page; no page loads a script from the network;
the download, launch and search features of the theme are there.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from browser import ROOT
from test_book import notebook_pages, toc_files
from test_listings import current_source, listed_objects

PAGES = toc_files()
CHAPTERS = [page for page in PAGES if re.fullmatch(r"book/0[1-9]_\w+", page)]
KEY_FIGURES_PER_CHAPTER = 2
NOTEBOOKS = notebook_pages()
REMOTE = re.compile(r"^(https?:)?//", re.IGNORECASE)
ERROR_OUTPUT_CLASSES = {"stderr", "traceback", "error"}
"""myst-nb writes a cell's stderr as ``div.output.stderr`` and an exception as
``div.output.traceback``; docutils marks markup it could not handle ``system-message`` and
``problematic``."""
CITE_ROLE = re.compile(r"\{cite(?::\w+)?\}`[^`]+`")
VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}


@dataclass(eq=False)
class Element:
    """One start tag of a page, the elements it sits in (outermost first) and its text."""

    tag: str
    attrs: dict[str, str]
    ancestors: tuple[Element, ...]
    text: list[str] = field(default_factory=list, repr=False)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def within(self, other: Element) -> bool:
        return any(ancestor is other for ancestor in self.ancestors)

    def within_class(self, name: str) -> bool:
        return any(name in ancestor.classes for ancestor in self.ancestors)


class Page(HTMLParser):
    """The elements and the visible text (no scripts or styles) of one HTML file."""

    def __init__(self, path: Path):
        super().__init__(convert_charrefs=True)
        self.path = path
        self.elements: list[Element] = []
        self._open: list[Element] = []
        self._text: list[str] = []
        self.feed(path.read_text(encoding="utf-8"))
        self.close()
        self.text = "".join(self._text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs}, tuple(self._open))
        self.elements.append(element)
        if tag not in VOID_TAGS:
            self._open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(Element(tag, {k: v or "" for k, v in attrs}, tuple(self._open)))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self._open) - 1, -1, -1):
            if self._open[depth].tag == tag:
                del self._open[depth:]
                return

    def handle_data(self, data: str) -> None:
        if any(element.tag in {"script", "style"} for element in self._open):
            return
        self._text.append(data)
        for element in self._open:
            element.text.append(data)

    def select(self, tag: str | None = None, cls: str | None = None) -> list[Element]:
        return [
            e
            for e in self.elements
            if (tag is None or e.tag == tag) and (cls is None or cls in e.classes)
        ]

    def target(self, href: str) -> Path:
        """The file a relative link of this page points to."""
        return (self.path.parent / unquote(urlsplit(href).path)).resolve()


@functools.cache
def parse(path: Path) -> Page:
    return Page(path)


def page_of(built_book: Path, docname: str) -> Page:
    path = built_book / f"{docname}.html"
    assert path.is_file(), f"{docname} is in _toc.yml but the build wrote no {path.name}"
    return parse(path)


def snippet(element: Element, chars: int = 300) -> str:
    return " ".join("".join(element.text).split())[:chars]


@pytest.mark.parametrize("docname", PAGES)
def test_every_toc_page_is_built(built_book, docname):
    page = page_of(built_book, docname)
    assert page.select("h1"), f"{docname}.html has no title (h1)"


@pytest.mark.parametrize("docname", CHAPTERS)
def test_chapter_shows_figures_from_its_cells(built_book, docname):
    page = page_of(built_book, docname)
    figures = []
    for image in page.select("img"):
        source = image.attrs.get("src", "")
        if not image.within_class("cell_output"):
            continue
        if source.startswith("data:image/png") or (
            "_images/" in source and source.endswith(".png") and page.target(source).is_file()
        ):
            figures.append(source)
    assert figures, f"{docname}: no cell output shows a PNG figure (data: or _images/)"


@pytest.mark.parametrize("docname", PAGES)
def test_no_error_output_or_traceback(built_book, docname):
    page = page_of(built_book, docname)
    errors = [
        f"<{e.tag} class={e.attrs['class']!r}>: {snippet(e)}"
        for e in page.elements
        if ("output" in e.classes and e.classes & ERROR_OUTPUT_CLASSES)
        or e.classes & {"system-message", "problematic"}
    ]
    if "Traceback" in page.text:
        at = page.text.index("Traceback")
        errors.append(f"'Traceback' in the text: ...{page.text[max(0, at - 150) : at + 150]}...")
    assert not errors, f"{docname} shows error output:\n" + "\n".join(errors)


def source_citations(docname: str) -> int:
    """How many ``{cite}`` roles the page's source has (outside ``code spans`` and fences)."""
    source = (ROOT / f"{docname}.md").read_text()
    source = re.sub(r"^(```|~~~).*?^\1", "", source, flags=re.MULTILINE | re.DOTALL)
    source = re.sub(r"``.+?``", "", source)
    return len(CITE_ROLE.findall(source))


@pytest.mark.parametrize("docname", PAGES)
def test_every_citation_links_into_the_references(built_book, docname):
    page = page_of(built_book, docname)
    references = (built_book / "book" / "references.html").resolve()
    citations = page.select("span", "bibtex-citation")
    links = [a for a in page.select("a") if "href" in a.attrs]
    problems = []
    for citation in citations:
        targets = [a.attrs["href"] for a in links if a.within(citation)]
        if not targets:
            problems.append(f"unresolved citation {snippet(citation)!r} (no link)")
        for href in targets:
            anchor = urlsplit(href).fragment
            if page.target(href) != references:
                problems.append(f"citation {snippet(citation)!r} links to {href}, not references")
            elif anchor not in {e.attrs.get("id") for e in parse(references).elements}:
                problems.append(f"citation {snippet(citation)!r}: no #{anchor} in references")
    roles = source_citations(docname)
    if len(citations) < roles:
        problems.append(f"{roles} {{cite}} roles in the source, {len(citations)} citations")
    assert not problems, f"{docname}:\n" + "\n".join(problems)


PATH_LIKE = re.compile(r"\.(png|jpe?g|svg|gif)\b|^data:|_images/|^\S*/\S*$", re.IGNORECASE)
"""A file name, a data URI or a lone path: what Sphinx writes as alt text when none is given."""


@pytest.mark.parametrize("docname", NOTEBOOKS)
def test_every_image_has_alt_text_that_describes_it(built_book, docname):
    """Sphinx writes an image's path as its alt text when none is given; sliders wrote "frame N"."""
    page = page_of(built_book, docname)
    problems = []
    for image in page.select("img"):
        if not image.within_class("cell_output"):
            continue  # the theme's logo and icons
        alt = image.attrs.get("alt", "").strip()
        if PATH_LIKE.search(alt) or re.fullmatch(r"frame \d+", alt) or len(alt.split()) < 4:
            problems.append(f"alt={alt[:80]!r} (src {image.attrs.get('src', '')[:60]}...)")
    assert not problems, f"{docname}: images without a description as alt text:\n" + "\n".join(
        problems
    )


@pytest.mark.parametrize("docname", CHAPTERS)
def test_key_figures_are_numbered_captioned_and_referred_to(built_book, docname):
    page = page_of(built_book, docname)
    numbered, short = [], []
    for figure in (f for f in page.select("figure") if f.attrs.get("id")):
        inside = [e for e in page.elements if e.within(figure)]
        captions = [e for e in inside if e.tag == "figcaption"]
        if not any("caption-number" in e.classes for e in inside):
            continue
        if not any(e.tag == "img" for e in inside):
            continue
        numbered.append(figure.attrs["id"])
        caption = " ".join(snippet(c) for c in captions)
        if len(caption.split()) < 10:
            short.append(f"#{figure.attrs['id']}: {caption!r}")
    assert len(numbered) >= KEY_FIGURES_PER_CHAPTER, (
        f"{docname} has {len(numbered)} numbered figures with an image; at least "
        f"{KEY_FIGURES_PER_CHAPTER} are expected"
    )
    assert not short, f"{docname}: captions too short to say what to see: {short}"
    links = {urlsplit(a.attrs["href"]).fragment for a in page.select("a") if "href" in a.attrs}
    unreferenced = [name for name in numbered if name not in links]
    assert not unreferenced, f"{docname}: the text never refers to figures {unreferenced} by number"


@pytest.mark.parametrize("docname", CHAPTERS)
def test_chapter_has_a_static_slider(built_book, docname):
    page = page_of(built_book, docname)
    sliders = page.select("div", "dc-static-slider")
    assert sliders, f"{docname} has no static slider (div.dc-static-slider from widgets.slider)"
    for slider in sliders:
        inputs = [e for e in page.select("input") if e.within(slider)]
        images = [e for e in page.select("img") if e.within(slider)]
        assert inputs and all(e.attrs.get("type") == "range" for e in inputs), snippet(slider)
        assert len(images) == 1 and images[0].attrs["src"].startswith("data:image/png")


@pytest.mark.parametrize("docname", CHAPTERS)
def test_chapter_listings_show_the_current_library_source(built_book, docname):
    """Each ``show_source`` listing shows, in a code block, the object's source as it is now."""
    page = page_of(built_book, docname)
    shown = " ".join(" ".join("".join(pre.text).split()) for pre in page.select("pre"))
    stale = [
        f"{expression} ({obj.__module__}.{obj.__qualname__})"
        for expression, obj, _ in listed_objects(ROOT / f"{docname}.md")
        if " ".join(current_source(obj).split()) not in shown
    ]
    assert not stale, (
        f"{docname} does not show the current source of {stale}: a listing that is not the "
        "library's, or outputs from before the library changed (an execution cache that "
        "predates the change: remove _build/.jupyter_cache)"
    )


def test_no_page_loads_a_script_or_stylesheet_from_the_network(built_book):
    remote = []
    for path in sorted(built_book.rglob("*.html")):
        for element in parse(path).elements:
            if element.tag == "script":
                url = element.attrs.get("src", "")
            elif element.tag == "link" and "stylesheet" in element.attrs.get("rel", ""):
                url = element.attrs.get("href", "")
            else:
                continue
            if REMOTE.match(url):
                remote.append(f"{path.relative_to(built_book)}: <{element.tag}> {url}")
    assert not remote, "pages that load from the network:\n" + "\n".join(remote)


def expected_launch_buttons() -> list[str]:
    """The launch buttons ``_config.yml`` asks sphinx-book-theme for (button titles)."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text()).get("launch_buttons", {})
    names = {"binderhub_url": "Binder", "jupyterhub_url": "JupyterHub", "colab_url": "Colab"}
    return [f"Launch on {name}" for key, name in names.items() if config.get(key)]


@pytest.mark.parametrize("docname", NOTEBOOKS)
def test_download_and_launch_buttons(built_book, docname):
    page = page_of(built_book, docname)
    for button, suffix in [
        ("btn-download-notebook-button", ".ipynb"),
        ("btn-download-source-button", ".md"),
    ]:
        links = page.select("a", button)
        assert links, f"{docname}: no {suffix} download button ({button})"
        href = links[0].attrs["href"]
        assert href.endswith(f"{docname}{suffix}") and page.target(href).is_file(), href
    launchers = [e for e in page.select("a") if e.within_class("dropdown-launch-buttons")]
    titles = {e.attrs.get("title"): e.attrs.get("href", "") for e in launchers}
    expected = expected_launch_buttons()
    assert sorted(titles) == sorted(expected), f"{docname}: launch buttons {sorted(titles)}"
    for title in expected:  # each opens the chapter's notebook, a file of the repository
        assert f"{docname}.ipynb" in unquote(titles[title]), f"{title} opens {titles[title]}"
    assert (ROOT / f"{docname}.ipynb").is_file()
    if "Launch on Binder" in titles:  # JupyterLab on the chapter's notebook
        assert f"urlpath=lab/tree/{docname}.ipynb" in unquote(titles["Launch on Binder"])


def test_search_page_and_index(built_book):
    search = parse(built_book / "search.html")
    assert search.select("form"), "search.html has no search form"
    assert any(e.attrs.get("src", "").endswith("searchindex.js") for e in search.select("script"))
    index = (built_book / "searchindex.js").read_text()
    missing = [page for page in PAGES if f'"{page}"' not in index]
    assert not missing, f"pages missing from the search index: {missing}"


def test_exercises_page_offers_every_release_notebook(built_book):
    """Each assignment's student notebook is downloadable from the book, exactly as released."""
    page = page_of(built_book, "book/exercises")
    targets = [page.target(a.attrs["href"]) for a in page.select("a") if "href" in a.attrs]
    offered = {path.name: path for path in targets if path.suffix == ".ipynb" and path.is_file()}
    releases = sorted((ROOT / "exercises").glob("*/*.ipynb"))
    assert releases
    for release in releases:
        assert release.name in offered, f"book/exercises.md does not link {release.name}"
        assert offered[release.name].read_bytes() == release.read_bytes(), release.name
