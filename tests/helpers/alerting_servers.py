"""Real loopback servers for alert tests: an aiosmtpd SMTP server and a JSON webhook HTTP server."""

from __future__ import annotations

import email
import email.policy
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from loyalty_monitor.alerting.channels import SmtpChannel
from loyalty_monitor.broker import free_port


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: email.message.EmailMessage

    @property
    def text(self) -> str:
        return self.message.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")

    @property
    def html(self) -> str:
        return self.message.get_body(preferencelist=("html",)).get_content().replace("\r\n", "\n")


class _Handler:
    def __init__(self, inbox: list[ReceivedMail]):
        self.inbox = inbox

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd hook name
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.inbox.append(ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 OK"


class SmtpServer:
    def __init__(self) -> None:
        self.inbox: list[ReceivedMail] = []
        self.port = free_port()
        self.controller = Controller(_Handler(self.inbox), hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> "SmtpServer":
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


@dataclass
class WebhookServer:
    """Records every POST; answers ``fail_first`` requests per path with HTTP 500, then 200."""

    fail_first: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)  # the 200-answered bodies
    requests: int = 0

    def __post_init__(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server hook name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer.lock:
                    outer.requests += 1
                    fail = outer.requests <= outer.fail_first
                    if not fail:
                        outer.received.append({"path": self.path, "headers": dict(self.headers),
                                               "json": json.loads(body)})
                self.send_response(500 if fail else 200)
                self.end_headers()
                self.wfile.write(b"boom" if fail else b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> "WebhookServer":
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def airflow_test_environment() -> str:
    """Point Airflow at a private home for this test process; call before anything imports airflow.

    Airflow fixes its configuration at first import, so every test module that touches Airflow
    calls this at import time; the first call wins and the others reuse it.
    """
    import os
    import tempfile

    from loyalty_core.settings import PROJECT_ROOT

    if "LOYALTY_TEST_AIRFLOW_HOME" not in os.environ:
        os.environ["LOYALTY_TEST_AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="loyalty-airflow-")
    home = os.environ["LOYALTY_TEST_AIRFLOW_HOME"]
    os.environ["AIRFLOW_HOME"] = home
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(PROJECT_ROOT / "dags")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__COSMOS__ENABLE_TELEMETRY"] = "False"
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{home}/airflow.db"
    return home


class DripServer:
    """A TCP server that answers one byte every ``interval_s`` seconds: each byte arrives well
    within a socket timeout, so only an overall deadline ends the exchange. ``read_http``: read the
    HTTP request first (a webhook receiver), else drip at once (an SMTP greeting). Each connection
    drips for at most ``max_s`` seconds, then closes; ``connections`` counts them."""

    def __init__(self, answer: bytes, interval_s: float = 2.0, read_http: bool = False, max_s: float = 40.0):
        import socket

        self.answer, self.interval_s, self.read_http, self.max_s = answer, interval_s, read_http, max_s
        self.connections = 0
        self.stop = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn) -> None:
        import time

        with conn:
            conn.settimeout(self.max_s)
            try:
                if self.read_http:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        data += conn.recv(65536) or b"\r\n\r\n"
                    head, _, body = data.partition(b"\r\n\r\n")
                    length = int(next((line.split(b":")[1] for line in head.split(b"\r\n")
                                       if line.lower().startswith(b"content-length:")), b"0"))
                    while len(body) < length:
                        body += conn.recv(65536) or b"x" * length
                ends = time.monotonic() + self.max_s
                for byte in self.answer:
                    if self.stop.wait(self.interval_s) or time.monotonic() > ends:
                        return
                    conn.sendall(bytes([byte]))
            except OSError:
                return

    def __enter__(self) -> "DripServer":
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(2)
        self.listener.close()


def smtp_channel(server: SmtpServer) -> SmtpChannel:
    return SmtpChannel(host="127.0.0.1", port=server.port, sender="monitor@example.com", timeout_s=5)
