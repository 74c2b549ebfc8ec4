"""Open an HTML file in real headless Chromium over the DevTools protocol and record what happened.

Records every network request the page makes, console messages, log entries and uncaught
exceptions, the rendered DOM, a full-page screenshot, and the result of JavaScript probes. Used by
the report tests to prove the report is self-contained and that injected markup stays text.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
    "--no-first-run", "--disable-component-update", "--disable-sync", "--disable-extensions",
    "--disable-default-apps", "--mute-audio", "--remote-debugging-port=0",
]


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise RuntimeError("Chromium is not installed: run scripts/install-test-deps.sh "
                       "(apt-get install -y chromium)")


@dataclass
class PageVisit:
    requests: list[str] = field(default_factory=list)
    console: list[dict[str, Any]] = field(default_factory=list)
    log_entries: list[dict[str, Any]] = field(default_factory=list)
    exceptions: list[dict[str, Any]] = field(default_factory=list)
    dom: str = ""
    probes: dict[str, Any] = field(default_factory=dict)

    @property
    def console_errors(self) -> list[dict[str, Any]]:
        return ([c for c in self.console if c.get("type") in ("error", "assert")]
                + [e for e in self.log_entries if e.get("level") == "error"] + self.exceptions)


class _Session:
    def __init__(self, ws: Any):
        self.ws = ws
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, params: dict[str, Any] | None = None, session_id: str | None = None,
             timeout: float = 30.0) -> dict[str, Any]:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session_id:
            msg["sessionId"] = session_id
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout
        while True:
            reply = json.loads(self.ws.recv(timeout=max(deadline - time.monotonic(), 0.01)))
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method:
                return event
        deadline = time.monotonic() + timeout
        while True:
            event = json.loads(self.ws.recv(timeout=max(deadline - time.monotonic(), 0.01)))
            self.events.append(event)
            if event.get("method") == method:
                return event

    def drain(self, quiet_s: float = 0.5) -> None:
        """Collect events until the page has been quiet for ``quiet_s`` (late requests, errors)."""
        while True:
            try:
                self.events.append(json.loads(self.ws.recv(timeout=quiet_s)))
            except TimeoutError:
                return


def visit(html_file: Path, profile_dir: Path, screenshot: Path | None = None,
          probes: dict[str, str] | None = None, width: int = 1280, height: int = 4000,
          fragment: str = "", media: str | None = None, pdf: Path | None = None) -> PageVisit:
    """Load ``html_file`` in a fresh headless Chromium and report what the page did.

    ``media="print"`` evaluates the probes (and takes the screenshot) with the print stylesheet;
    ``pdf`` prints the page to that file (A4, backgrounds on), as a reader's "Print" would."""
    profile_dir.mkdir(parents=True, exist_ok=True)
    port_file = profile_dir / "DevToolsActivePort"
    port_file.unlink(missing_ok=True)  # a stale one from an earlier run points at a dead port
    proc = subprocess.Popen([chromium_binary(), *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}",
                             f"--window-size={width},{height}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("Chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        port, path = port_file.read_text().splitlines()[:2]
        with connect(f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=20) as ws:
            browser = _Session(ws)
            target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            sid = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Network", "Runtime", "Log", "Page"):
                browser.call(f"{domain}.enable", session_id=sid)
            browser.call("Emulation.setDeviceMetricsOverride",
                         {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                         session_id=sid)
            if media:
                browser.call("Emulation.setEmulatedMedia", {"media": media}, session_id=sid)
            browser.events.clear()
            browser.call("Page.navigate", {"url": html_file.resolve().as_uri() + fragment}, session_id=sid)
            browser.wait_for("Page.loadEventFired")
            browser.drain()
            result = PageVisit()
            for event in browser.events:
                method, params = event.get("method"), event.get("params", {})
                if method == "Network.requestWillBeSent":
                    result.requests.append(params["request"]["url"])
                elif method == "Runtime.consoleAPICalled":
                    result.console.append({"type": params.get("type"),
                                           "args": [a.get("value") for a in params.get("args", [])]})
                elif method == "Log.entryAdded":
                    result.log_entries.append(params.get("entry", {}))
                elif method == "Runtime.exceptionThrown":
                    result.exceptions.append(params.get("exceptionDetails", {}))
            result.dom = browser.call("Runtime.evaluate", {
                "expression": "document.documentElement.outerHTML", "returnByValue": True},
                session_id=sid)["result"]["value"]
            for name, expression in (probes or {}).items():
                result.probes[name] = browser.call("Runtime.evaluate", {
                    "expression": expression, "returnByValue": True}, session_id=sid)["result"].get("value")
            if pdf is not None:
                printed = browser.call("Page.printToPDF", {"paperWidth": 8.27, "paperHeight": 11.69,
                                                           "printBackground": True, "preferCSSPageSize": True},
                                       session_id=sid, timeout=120)
                pdf.parent.mkdir(parents=True, exist_ok=True)
                pdf.write_bytes(base64.b64decode(printed["data"]))
            if screenshot is not None:
                shot = browser.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False},
                                    session_id=sid, timeout=60)
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                screenshot.write_bytes(base64.b64decode(shot["data"]))
            return result
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
