"""A real headless Chromium driven over the DevTools protocol, kept open across pages (the web app tests).

Built on report_browser (same flags, same protocol session); adds navigation, form submission,
cookies and a running record of every request, console message and uncaught exception.
"""

from __future__ import annotations

import base64
import subprocess
import time
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

from report_browser import CHROMIUM_FLAGS, _Session, chromium_binary


class Browser:
    def __init__(self, profile_dir: Path, width: int = 1400, height: int = 1800):
        profile_dir.mkdir(parents=True, exist_ok=True)
        port_file = profile_dir / "DevToolsActivePort"
        port_file.unlink(missing_ok=True)
        self.proc = subprocess.Popen([chromium_binary(), *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}",
                                      f"--window-size={width},{height}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError("Chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        port, path = port_file.read_text().splitlines()[:2]
        self.ws = connect(f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=20)
        self.session = _Session(self.ws)
        target = self.session.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.sid = self.session.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Network", "Runtime", "Log", "Page"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        self.requests: list[str] = []
        self.responses: dict[str, int] = {}
        self.console: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float = 30.0) -> dict[str, Any]:
        return self.session.call(method, params, session_id=self.sid, timeout=timeout)

    def _record(self) -> None:
        for event in self.session.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Network.requestWillBeSent":
                self.requests.append(params["request"]["url"])
            elif method == "Network.responseReceived":
                self.responses[params["response"]["url"]] = params["response"]["status"]
            elif method == "Runtime.consoleAPICalled":
                entry = {"type": params.get("type"), "args": [a.get("value") for a in params.get("args", [])]}
                self.console.append(entry)
                if entry["type"] in ("error", "assert"):
                    self.errors.append(entry)
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                self.errors.append(params["entry"])
            elif method == "Runtime.exceptionThrown":
                self.errors.append(params.get("exceptionDetails", {}))
        self.session.events.clear()

    def _navigating(self, start: Any) -> None:
        """Run ``start()`` (which makes the page navigate) and wait until the new page has loaded."""
        self._record()
        start()
        self.session.wait_for("Page.loadEventFired")
        self.session.drain(0.3)
        self._record()

    def goto(self, url: str) -> None:
        self._navigating(lambda: self.call("Page.navigate", {"url": url}))

    def eval(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def submit(self, form_selector: str, fields: dict[str, str] | None = None, button: str = "button") -> None:
        """Fill ``fields`` (name -> value) of the form and click its button, as a person would."""
        import json

        script = (f"(() => {{ const f = document.querySelector({json.dumps(form_selector)});"
                  f" if (!f) throw new Error('no form ' + {json.dumps(form_selector)});"
                  f" for (const [k, v] of Object.entries({json.dumps(fields or {})})) f.elements[k].value = v;"
                  f" f.querySelector({json.dumps(button)}).click(); }})()")
        self._navigating(lambda: self.eval(script))

    @property
    def url(self) -> str:
        return self.eval("location.href")

    def text(self, selector: str = "body") -> str:
        import json

        return self.eval(f"(document.querySelector({json.dumps(selector)}) || {{}}).innerText || ''")

    def cookies(self) -> list[dict[str, Any]]:
        return self.call("Network.getCookies")["cookies"]

    def clear_cookies(self) -> None:
        self.call("Network.clearBrowserCookies")

    def screenshot(self, path: Path) -> None:
        shot = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False}, timeout=60)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        try:
            if getattr(self, "ws", None) is not None:
                self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
