"""Open an HTML file in real headless Chromium with Playwright and record what happened.

Records every network request the page makes, console messages (Chromium's own log entries, such
as "Failed to load resource", arrive among them), uncaught exceptions, the rendered DOM, a
screenshot, a PDF print and the result of JavaScript probes. Used by the report tests to prove the
report is self-contained and that injected markup stays text.

The browser is the system's Chromium (``executable_path``), not one Playwright downloads:
``playwright install`` needs a download site this project's machines do not reach, and
scripts/install-test-deps.sh installs Chromium from the distribution.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import BrowserContext, ConsoleMessage, Error, Page, Playwright, sync_playwright

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic", "--no-first-run",
    "--disable-component-update", "--disable-sync", "--disable-extensions", "--disable-default-apps",
    "--mute-audio",
]


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise RuntimeError("Chromium is not installed: run scripts/install-test-deps.sh "
                       "(apt-get install -y chromium)")


def launch(playwright: Playwright, profile_dir: Path, width: int, height: int) -> BrowserContext:
    """A headless system Chromium with its profile in ``profile_dir`` and a ``width`` x ``height`` viewport."""
    profile_dir.mkdir(parents=True, exist_ok=True)
    return playwright.chromium.launch_persistent_context(
        str(profile_dir), executable_path=chromium_binary(), headless=True, args=CHROMIUM_ARGS,
        viewport={"width": width, "height": height}, device_scale_factor=1, timeout=60_000)


def console_entry(message: ConsoleMessage) -> dict[str, Any]:
    """A console message as ``{"type", "text", "args"}``; ``args`` are the JSON values passed to console.*."""
    try:
        args = [a.json_value() for a in message.args]
    except Error:  # a value that is not JSON-serialisable, or a handle gone with its page
        args = []
    return {"type": message.type, "text": message.text, "args": args}


def exception_entry(error: Error) -> dict[str, Any]:
    return {"name": error.name, "message": error.message, "stack": error.stack}


@dataclass
class PageVisit:
    requests: list[str] = field(default_factory=list)
    console: list[dict[str, Any]] = field(default_factory=list)
    #: Kept for callers: Playwright reports Chromium's log entries as console messages (``console``).
    log_entries: list[dict[str, Any]] = field(default_factory=list)
    exceptions: list[dict[str, Any]] = field(default_factory=list)
    dom: str = ""
    probes: dict[str, Any] = field(default_factory=dict)

    @property
    def console_errors(self) -> list[dict[str, Any]]:
        return ([c for c in self.console if c.get("type") in ("error", "assert")]
                + [e for e in self.log_entries if e.get("level") == "error"] + self.exceptions)


def record(page: Page, visit_: PageVisit) -> None:
    page.on("request", lambda request: visit_.requests.append(request.url))
    page.on("console", lambda message: visit_.console.append(console_entry(message)))
    page.on("pageerror", lambda error: visit_.exceptions.append(exception_entry(error)))


def visit(html_file: Path, profile_dir: Path, screenshot: Path | None = None,
          probes: dict[str, str] | None = None, width: int = 1280, height: int = 4000,
          fragment: str = "", media: str | None = None, pdf: Path | None = None) -> PageVisit:
    """Load ``html_file`` in a fresh headless Chromium and report what the page did.

    ``media="print"`` evaluates the probes (and takes the screenshot) with the print stylesheet;
    ``pdf`` prints the page to that file (A4, backgrounds on), as a reader's "Print" would."""
    result = PageVisit()
    with sync_playwright() as playwright:
        context = launch(playwright, profile_dir, width, height)
        try:
            page = context.pages[0] if context.pages else context.new_page()
            if media:
                page.emulate_media(media=media)  # type: ignore[arg-type]
            record(page, result)
            page.goto(html_file.resolve().as_uri() + fragment, wait_until="load", timeout=60_000)
            page.wait_for_timeout(500)  # late requests and errors
            result.dom = page.evaluate("document.documentElement.outerHTML")
            for name, expression in (probes or {}).items():
                result.probes[name] = page.evaluate(expression)
            if pdf is not None:
                pdf.parent.mkdir(parents=True, exist_ok=True)
                page.pdf(path=str(pdf), width="8.27in", height="11.69in", print_background=True,
                         prefer_css_page_size=True)
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), timeout=60_000)
        finally:
            context.close()
    return result


#: The report's sections and what the tests ask Chromium about a rendered page.
SECTIONS = ("summary", "portfolio", "movers", "health-by", "coverage", "platform", "matrix", "activity",
            "at-risk", "alerts", "quality")
PROBES = {
    "not_pwned": "window.__pwned === undefined",
    "scripts": "document.scripts.length",
    "injected_elements": "document.querySelectorAll('img, a[href^=\"http\"], iframe, object, embed, "
                         "section b').length",
    "text": "document.body.innerText",
}


def assert_self_contained(page, html_file: Path) -> None:
    """The page loaded only itself: no network, no console errors, no script at all."""
    assert page.requests == [html_file.resolve().as_uri()], page.requests
    assert page.console_errors == []
    assert page.probes["scripts"] == 0
