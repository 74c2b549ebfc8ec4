"""A real headless Chromium driven by Playwright, kept open across pages (the web app tests).

Built on report_browser (the system Chromium, same arguments); adds navigation, form submission,
cookies and a running record of every request, response status, console message and uncaught
exception.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from playwright.sync_api import Error, sync_playwright
from report_browser import console_entry, exception_entry, launch


class Browser:
    def __init__(self, profile_dir: Path, width: int = 1400, height: int = 1800):
        self.requests: list[str] = []
        self.responses: dict[str, int] = {}
        self.console: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self._playwright = sync_playwright().start()
        try:
            self.context = launch(self._playwright, profile_dir, width, height)
        except BaseException:
            self._playwright.stop()
            raise
        self.page = self.context.pages[0] if self.context.pages else self.context.new_page()
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("response", lambda response: self.responses.__setitem__(response.url, response.status))
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda error: self.errors.append(exception_entry(error)))

    def _on_console(self, message: Any) -> None:
        entry = console_entry(message)
        self.console.append(entry)
        if entry["type"] in ("error", "assert"):
            self.errors.append(entry)

    def _navigating(self, start: Callable[[], Any]) -> None:
        """Run ``start()`` (which makes the page navigate) and wait until the new page has loaded."""
        with self.page.expect_navigation(wait_until="load", timeout=60_000):
            start()
        self.page.wait_for_timeout(300)  # late requests and errors

    def goto(self, url: str) -> None:
        self.page.goto(url, wait_until="load", timeout=60_000)
        self.page.wait_for_timeout(300)

    def eval(self, expression: str) -> Any:
        try:
            return self.page.evaluate(expression)
        except Error as exc:
            raise RuntimeError(f"{expression}: {exc.message}") from exc

    def submit(self, form_selector: str, fields: dict[str, str] | None = None, button: str = "button") -> None:
        """Fill ``fields`` (name -> value) of the form and click its button, as a person would."""
        form = self.page.locator(form_selector)
        if form.count() == 0:
            raise RuntimeError(f"no form {form_selector}")
        if fields:
            # elements[name].value also picks the radio button of that value (a RadioNodeList)
            form.first.evaluate("(f, fields) => { for (const [k, v] of Object.entries(fields)) f.elements[k].value = v; }",
                                fields)
        self._navigating(lambda: form.first.locator(button).first.click())

    @property
    def url(self) -> str:
        return self.page.url

    def text(self, selector: str = "body") -> str:
        return self.page.evaluate("(s) => (document.querySelector(s) || {}).innerText || ''", selector)

    def cookies(self) -> list[dict[str, Any]]:
        return [dict(c) for c in self.context.cookies()]

    def clear_cookies(self) -> None:
        self.context.clear_cookies()

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), timeout=60_000)

    def close(self) -> None:
        try:
            self.context.close()
        finally:
            self._playwright.stop()
