"""Delivery channels: local file sink (the embedded default), e-mail over SMTP, Slack, JSON webhook.

Configuration comes from settings (``LOYALTY_ALERT_CHANNELS``, ``LOYALTY_SMTP_*``,
``LOYALTY_SLACK_WEBHOOK_URL``, ``LOYALTY_WEBHOOK_URL``). Inside Airflow, the connections
``loyalty_smtp``, ``loyalty_slack`` and ``loyalty_webhook`` override them when defined, so that
secrets can live in Airflow's secrets backend. URLs are logged redacted (webhook URLs are secrets).
"""

from __future__ import annotations

import json
import logging
import os
import re
import smtplib
import ssl
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from loyalty_monitor.alerting.messages import Message, one_line
from loyalty_monitor.settings import Settings

log = logging.getLogger(__name__)

CHANNEL_NAMES = ("file", "smtp", "slack", "webhook")
AIRFLOW_CONNECTIONS = {"smtp": "loyalty_smtp", "slack": "loyalty_slack", "webhook": "loyalty_webhook"}


class DeliveryError(RuntimeError):
    """A channel could not deliver a message (the text is safe to log: no secrets)."""


class Channel(Protocol):
    name: str

    def describe(self) -> str: ...

    def recipient(self, message: Message) -> str: ...

    def send(self, message: Message) -> None: ...


def redact_url(url: str) -> str:
    """``https://hooks.slack.com/services/T0/B0/XYZ`` -> ``https://hooks.slack.com/***``."""
    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/***"


def _safe_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", key)[:180]


def email_message(message: Message, sender: str) -> EmailMessage:
    """A MIME message with a plain-text part and (when present) an HTML alternative."""
    mail = EmailMessage()
    mail["Subject"] = one_line(message.subject)
    mail["From"] = one_line(sender)
    mail["To"] = ", ".join(one_line(address) for address in message.to)
    mail["Date"] = formatdate(localtime=False, usegmt=True)
    mail["Message-ID"] = make_msgid(domain="loyalty-monitor")
    mail["X-Loyalty-Idempotency-Key"] = message.key
    mail.set_content(message.text)
    if message.html:
        mail.add_alternative(message.html, subtype="html")
    return mail


@dataclass
class FileChannel:
    """Writes one ``.json`` and one ``.eml`` (plus ``.html``) per message into the outbox folder."""

    outbox: Path
    sender: str
    name: str = "file"

    def describe(self) -> str:
        return f"file sink {self.outbox}"

    def recipient(self, message: Message) -> str:
        return ", ".join(message.to) or "(outbox)"

    def send(self, message: Message) -> None:
        try:
            self.outbox.mkdir(parents=True, exist_ok=True)
            base = self.outbox / _safe_name(message.key)
            record = {"subject": message.subject, "to": message.to, "text": message.text,
                      **message.payload}
            for suffix, content in ((".json", json.dumps(record, indent=2, default=str)),
                                    (".eml", email_message(message, self.sender).as_string()),
                                    (".html", message.html or "")):
                tmp = base.with_name(base.name + suffix + ".tmp")
                tmp.write_text(content, encoding="utf-8")
                tmp.replace(base.with_name(base.name + suffix))
        except OSError as exc:
            raise DeliveryError(f"cannot write to outbox {self.outbox}: {exc}") from exc


#: SMTP submission over implicit TLS.
SMTPS_PORT = 465


@dataclass
class SmtpChannel:
    host: str
    port: int
    sender: str
    username: str = ""
    password: str = ""
    starttls: bool = False
    timeout_s: float = 10.0
    name: str = "smtp"

    def describe(self) -> str:
        auth = f" as {self.username}" if self.username else ""
        tls = " TLS" if self.implicit_tls else " STARTTLS" if self.starttls else ""
        return f"SMTP {self.host}:{self.port}{tls}{auth}"

    def recipient(self, message: Message) -> str:
        return ", ".join(message.to)

    @property
    def implicit_tls(self) -> bool:
        """Port 465 speaks TLS from the first byte (RFC 8314)."""
        return self.port == SMTPS_PORT

    def send(self, message: Message) -> None:
        if not message.to:
            raise DeliveryError("no e-mail recipient (account manager e-mail missing)")
        if self.username and not (self.starttls or self.implicit_tls):
            # credentials in clear text would cross the network readable by anyone on the path
            raise DeliveryError(f"SMTP {self.host}:{self.port}: refusing to send the SMTP password without "
                                f"TLS: set LOYALTY_SMTP_STARTTLS=true, or use port {SMTPS_PORT} (implicit TLS)")
        connect = smtplib.SMTP_SSL if self.implicit_tls else smtplib.SMTP
        extra = {"context": ssl.create_default_context()} if self.implicit_tls else {}
        try:
            with connect(self.host, self.port, timeout=self.timeout_s, **extra) as smtp:
                if self.starttls and not self.implicit_tls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password)
                smtp.send_message(email_message(message, self.sender), self.sender, message.to)
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"SMTP {self.host}:{self.port}: {type(exc).__name__}: {exc}") from exc


def post_json(url: str, body: dict[str, Any], timeout_s: float, headers: dict[str, str] | None = None) -> None:
    data = json.dumps(body, default=str).encode()
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"POST {redact_url(url)} answered HTTP {exc.code}") from None
    except (OSError, ValueError) as exc:
        # The exception text may contain the URL: never log it, only its redacted form.
        reason = getattr(exc, "reason", None) or type(exc).__name__
        raise DeliveryError(f"POST {redact_url(url)} failed: {reason}") from None


@dataclass
class SlackChannel:
    url: str
    timeout_s: float = 10.0
    name: str = "slack"

    def describe(self) -> str:
        return f"Slack webhook {redact_url(self.url)}"

    def recipient(self, message: Message) -> str:
        who = message.payload.get("recipient", {})
        return who.get("account_manager_email") or who.get("account_manager_id") or "slack"

    def send(self, message: Message) -> None:
        post_json(self.url, {"text": message.slack_text or message.text}, self.timeout_s)


@dataclass
class WebhookChannel:
    url: str
    timeout_s: float = 10.0
    name: str = "webhook"

    def describe(self) -> str:
        return f"JSON webhook {redact_url(self.url)}"

    def recipient(self, message: Message) -> str:
        who = message.payload.get("recipient", {})
        return who.get("account_manager_email") or who.get("account_manager_id") or ", ".join(message.to)

    def send(self, message: Message) -> None:
        body = {"subject": message.subject, "text": message.text, **message.payload}
        post_json(self.url, body, self.timeout_s, headers={"Idempotency-Key": message.key})


def _airflow_connection(conn_id: str) -> Any | None:
    """The Airflow connection ``conn_id`` when running inside Airflow (or defined by env), else None."""
    if "airflow.sdk" not in sys.modules and f"AIRFLOW_CONN_{conn_id.upper()}" not in os.environ:
        return None
    try:
        from airflow.sdk import Connection

        return Connection.get(conn_id)
    except Exception:  # noqa: BLE001 - not defined / not in a task: fall back to settings
        return None


def _url_from_connection(conn: Any) -> str:
    """Slack/webhook connections: the full URL in ``host`` (or ``password``, the secret field)."""
    for candidate in (conn.password, conn.host):
        if candidate and "://" in candidate:
            return candidate
    if conn.host:
        scheme = conn.schema or "https"
        port = f":{conn.port}" if conn.port else ""
        return f"{scheme}://{conn.host}{port}"
    return ""


def build_channels(settings: Settings, names: str | None = None) -> list[Channel]:
    """The configured channels, in order. Raises ValueError naming what is misconfigured."""
    wanted = [n.strip().lower() for n in (names if names is not None else settings.alert_channels).split(",")
              if n.strip()]
    if not wanted:
        raise ValueError("no alert channel configured (LOYALTY_ALERT_CHANNELS is empty)")
    channels: list[Channel] = []
    for name in wanted:
        if name not in CHANNEL_NAMES:
            raise ValueError(f"unknown alert channel {name!r}; choose from {', '.join(CHANNEL_NAMES)}")
        conn = _airflow_connection(AIRFLOW_CONNECTIONS[name]) if name in AIRFLOW_CONNECTIONS else None
        if name == "file":
            channels.append(FileChannel(settings.data_dir / "alerts" / "outbox", settings.smtp_from))
        elif name == "smtp":
            extra = conn.extra_dejson if conn is not None else {}
            channels.append(SmtpChannel(
                host=(conn.host if conn is not None and conn.host else settings.smtp_host),
                port=int(conn.port if conn is not None and conn.port else settings.smtp_port),
                sender=extra.get("from", settings.smtp_from),
                username=(conn.login if conn is not None and conn.login else settings.smtp_username),
                password=(conn.password if conn is not None and conn.password else settings.smtp_password),
                starttls=bool(extra.get("starttls", settings.smtp_starttls)),
                timeout_s=settings.alert_timeout_s))
        else:
            url = _url_from_connection(conn) if conn is not None else ""
            url = url or (settings.slack_webhook_url if name == "slack" else settings.webhook_url)
            if not url:
                raise ValueError(f"alert channel {name!r} needs LOYALTY_{name.upper()}"
                                 f"{'_WEBHOOK' if name == 'slack' else ''}_URL or the Airflow connection "
                                 f"{AIRFLOW_CONNECTIONS[name]}")
            cls = SlackChannel if name == "slack" else WebhookChannel
            channels.append(cls(url=url, timeout_s=settings.alert_timeout_s))
    return channels
