"""Browser helpers for the tests: Debian's chromium through playwright, offline, and JupyterLab.

Everything here is for tests that look at the course the way a reader does:

* ``require_browser()`` skips a test when playwright or chromium is missing, or fails it when the
  environment sets ``DC_REQUIRE_BROWSER=1`` (CI does: there a missing browser is a broken set-up);
* ``chromium()`` launches the system chromium (no browser is downloaded) and ``offline_page()``
  opens a page that may reach only ``file://`` and this machine: every other request is aborted and
  recorded, so a test can assert that nothing tried to reach the network;
* ``jupyter_lab()`` starts a JupyterLab server on a free port with a random token and private
  settings, and ``open_notebook``, ``run_all_cells``, ``wait_until_idle``, ``cell_errors``,
  ``save_notebook`` and ``lab_command`` drive it.
  MyST Markdown (``.md``) files open as notebooks (jupytext's notebook factory is their default
  viewer in the private settings), so a book chapter runs exactly as a student would run it;
* ``screenshot()`` saves a full-page PNG under ``ARTIFACTS`` (``test-artifacts/`` by default,
  ``DC_TEST_ARTIFACTS`` overrides it).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ARTIFACTS = Path(os.environ.get("DC_TEST_ARTIFACTS", ROOT / "test-artifacts")).resolve()
CHROMIUM = Path(os.environ.get("DC_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOCAL_URL = re.compile(r"^(file:|data:|blob:|about:|https?://(localhost|127\.0\.0\.1)(:\d+)?/)")
"""URLs an offline page may load; everything else is aborted."""

LAB_SETTINGS: dict[str, dict[str, Any]] = {
    # Text notebooks (MyST Markdown) open as notebooks, not in the text editor.
    "@jupyterlab/docmanager-extension/plugin": {
        "defaultViewers": {"markdown": "Jupytext Notebook", "myst": "Jupytext Notebook"}
    },
    # Render every cell (no virtual scrolling), so outputs far down the page exist in the DOM.
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    # No news or update check (they would fetch from the internet and pop up a question).
    "@jupyterlab/apputils-extension/notification": {"checkForUpdates": False, "fetchNews": "false"},
}


def browser_unavailable() -> str | None:
    """Why the browser tests cannot run here, or None when playwright and chromium are there."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as error:
        return f"playwright is not installed ({error}); `make setup` installs it"
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        return f"no chromium at {CHROMIUM} (Debian: `apt-get install chromium`; or set DC_CHROMIUM)"
    return None


def require_browser() -> None:
    """Skip the calling test when no browser is available; fail instead if DC_REQUIRE_BROWSER=1."""
    reason = browser_unavailable()
    if reason is None:
        return
    if os.environ.get("DC_REQUIRE_BROWSER") == "1":
        pytest.fail(f"DC_REQUIRE_BROWSER=1 but the browser tests cannot run: {reason}")
    pytest.skip(reason)


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """The system chromium, headless, driven by playwright's sync API (closed on exit)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class OfflinePage:
    """A page that may load only local URLs; ``blocked`` lists every request that was aborted."""

    page: Page
    blocked: list[str] = field(default_factory=list)


def offline_page(browser: Browser, width: int = 1280, height: int = 900) -> OfflinePage:
    """A new page in its own context whose requests to anything but this machine are aborted."""
    context = browser.new_context(viewport={"width": width, "height": height})
    offline = OfflinePage(context.new_page())

    def guard(route) -> None:
        if LOCAL_URL.match(route.request.url):
            route.continue_()
        else:
            offline.blocked.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    return offline


def screenshot(target: Page | Locator, name: str) -> Path:
    """Save ``ARTIFACTS/<name>.png`` (a whole page, or one element) and return its path."""
    from playwright.sync_api import Locator

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    if isinstance(target, Locator):
        target.screenshot(path=str(path))
    else:
        target.screenshot(path=str(path), full_page=True)
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class JupyterLab:
    """A running JupyterLab server (see ``jupyter_lab``)."""

    root: Path
    port: int
    token: str
    log: Path
    process: subprocess.Popen = field(repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tree_url(self, path: str) -> str:
        """The URL that opens ``path`` (relative to ``root``) with its default viewer."""
        return f"{self.base_url}/lab/tree/{path}?token={self.token}"

    def api(self, endpoint: str, method: str = "GET") -> Any:
        """Call the server's REST API (``endpoint`` like ``status``); return the decoded JSON."""
        request = urllib.request.Request(
            f"{self.base_url}/api/{endpoint}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def _write_lab_settings(settings_dir: Path, settings: Mapping[str, Mapping[str, Any]]) -> None:
    for plugin, values in settings.items():
        path = settings_dir / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values, indent=2))


@contextlib.contextmanager
def jupyter_lab(
    root: Path,
    settings: Mapping[str, Mapping[str, Any]] = LAB_SETTINGS,
    log_name: str = "jupyterlab",
    startup_timeout: float = 90.0,
) -> Iterator[JupyterLab]:
    """Start ``jupyter lab`` on ``root`` at a free local port; stop it (kernels too) on exit.

    The server gets a random token and private config, runtime, settings and workspace
    directories (``settings`` are written as user settings), so neither the user's JupyterLab set-up
    nor a previous run changes what the test sees. Its log goes to ``ARTIFACTS/<log_name>.log``.
    """
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / f"{log_name}.log"
    port, token = free_port(), secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="dc-lab-") as private:
        private_dir = Path(private)
        _write_lab_settings(private_dir / "settings", settings)
        env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONNOUSERSITE": "1",
            "JUPYTER_CONFIG_DIR": str(private_dir / "config"),
            "JUPYTER_RUNTIME_DIR": str(private_dir / "runtime"),
            "JUPYTERLAB_SETTINGS_DIR": str(private_dir / "settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(private_dir / "workspaces"),
        }
        command = [
            str(BIN / "jupyter"),
            "lab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--LabApp.news_url=None",
            # window.jupyterapp: tests run commands (Run All Cells) as the menus do.
            "--LabApp.expose_app_in_browser=True",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.append("--allow-root")
        with log.open("w") as log_file:
            process = subprocess.Popen(
                command, env=env, stdout=log_file, stderr=subprocess.STDOUT, cwd=root
            )
        lab = JupyterLab(root=root, port=port, token=token, log=log, process=process)
        try:
            _wait_until_serving(lab, startup_timeout)
            yield lab
        finally:
            _stop(lab)


def _wait_until_serving(lab: JupyterLab, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lab.process.poll() is not None:
            pytest.fail(f"jupyter lab exited with {lab.process.returncode}:\n{lab.log_tail()}")
        with contextlib.suppress(OSError):
            lab.api("status")
            return
        time.sleep(0.25)
    pytest.fail(f"jupyter lab did not answer within {timeout:.0f} s:\n{lab.log_tail()}")


def _stop(lab: JupyterLab) -> None:
    """Shut the server down through its API (it stops its kernels), then make sure it is gone."""
    if lab.process.poll() is None:
        with contextlib.suppress(OSError):
            lab.api("shutdown", method="POST")
        try:
            lab.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            lab.process.terminate()
            try:
                lab.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                lab.process.kill()
                lab.process.wait()


def copy_for_lab(sources: Mapping[str, Path], destination: Path) -> Path:
    """Copy files or folders into ``destination`` (a JupyterLab root the test may dirty)."""
    for name, source in sources.items():
        target = destination / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns(".*", "__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


# --- Driving a notebook in JupyterLab -----------------------------------------------------------

NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden)"
"""The notebook panel in the main area that is on show."""

_KERNEL_IDLE = """(selector) => {
    const widget = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    const context = widget && widget.sessionContext;
    const kernel = context && context.isReady && context.session && context.session.kernel;
    if (!kernel || kernel.connectionStatus !== "connected" || kernel.status !== "idle") {
        return false;
    }
    const prompts = document.querySelectorAll(selector + " .jp-InputArea-prompt");
    return Array.from(prompts).every((prompt) => !prompt.textContent.includes("*"));
}"""


def open_notebook(page: Page, lab: JupyterLab, path: str, timeout: float = 90.0) -> None:
    """Open ``path`` (relative to the lab root) as a notebook; wait until its kernel is idle.

    ``.ipynb`` files are notebooks by default; MyST Markdown files become notebooks through
    jupytext (the default viewer that ``LAB_SETTINGS`` sets for Markdown).
    """
    page.goto(lab.tree_url(path), timeout=timeout * 1000)
    page.locator(f"{NOTEBOOK} .jp-Notebook").wait_for(timeout=timeout * 1000)
    wait_until_idle(page, timeout)


def wait_until_idle(page: Page, timeout: float = 120.0) -> None:
    """Wait until the notebook's kernel is connected and idle, and no cell shows ``[*]``."""
    page.wait_for_function(_KERNEL_IDLE, arg=NOTEBOOK, timeout=timeout * 1000, polling=250)


def lab_command(
    page: Page, command: str, args: Mapping[str, Any] | None = None, timeout: float | None = None
) -> None:
    """Run a JupyterLab command as its menu item would (through ``window.jupyterapp``).

    With ``timeout`` (seconds), wait until the command has finished; without it, only start it
    (Run All Cells finishes when the last cell has run: ``run_all_cells`` waits for that).
    """
    page.evaluate(
        """async ([command, args, milliseconds]) => {
            const running = window.jupyterapp.commands.execute(command, args);
            if (milliseconds === null) return;
            const late = new Promise((_, reject) => setTimeout(
                () => reject(new Error(command + " did not finish in time")), milliseconds));
            await Promise.race([running, late]);
        }""",
        [command, dict(args or {}), None if timeout is None else timeout * 1000],
    )


def save_notebook(page: Page, timeout: float = 30.0) -> None:
    """Save the notebook on show (File > Save) and wait until the file is written."""
    lab_command(page, "docmanager:save", timeout=timeout)
    page.wait_for_function(
        "() => !window.jupyterapp.shell.currentWidget.context.model.dirty",
        timeout=timeout * 1000,
    )


def run_all_cells(page: Page, timeout: float = 300.0) -> None:
    """Run every cell of the notebook on show (Run > Run All Cells); wait until all have run."""
    wait_until_idle(page, timeout)
    lab_command(page, "notebook:run-all-cells")
    # Every code cell gets an execution count once the kernel has run it.
    page.wait_for_function(
        """(selector) => {
            const prompts = document.querySelectorAll(
                selector + " .jp-CodeCell .jp-InputArea-prompt"
            );
            return prompts.length > 0
                && Array.from(prompts).every((prompt) => /\\[[0-9]+\\]/.test(prompt.textContent));
        }""",
        arg=NOTEBOOK,
        timeout=timeout * 1000,
        polling=250,
    )
    wait_until_idle(page, timeout)


def cell_errors(page: Page) -> list[str]:
    """Texts of every error or stderr output in the open notebook (an empty list when clean)."""
    selector = f'{NOTEBOOK} .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
    return page.locator(selector).all_inner_texts()
