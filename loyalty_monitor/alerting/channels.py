"""Delivery channels: local file sink (the embedded default), e-mail over SMTP, Slack, JSON webhook.

Configuration comes from settings (``LOYALTY_ALERT_CHANNELS``, ``LOYALTY_SMTP_*``,
``LOYALTY_SLACK_WEBHOOK_URL``, ``LOYALTY_WEBHOOK_URL``). Inside Airflow, the connections
``loyalty_smtp``, ``loyalty_slack`` and ``loyalty_webhook`` override them when defined, so that
secrets can live in Airflow's secrets backend. URLs are logged redacted (webhook URLs are secrets),
and the SMTP password and webhook URLs are held as :class:`~loyalty_core.settings.Secret`.

Every network exchange has an overall deadline (``alert_timeout_s``, see ``deadline.py``), not only
a socket timeout. Errors say whether they are the channel's (:class:`DeliveryError`: retried, and
counted by dispatch's circuit breaker), the recipient's (:class:`RecipientError`: retried next run)
or the message's own (:class:`MessageError`: it can never be sent; recorded once).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import smtplib
import ssl
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from loyalty_core.files import replace_text
from loyalty_core.settings import ALERT_CHANNEL_NAMES, Secret, Settings, reveal
from loyalty_monitor.alerting.deadline import Deadline, DeadlineExceeded, call_with_deadline
from loyalty_monitor.alerting.messages import Message, one_line

log = logging.getLogger(__name__)

CHANNEL_NAMES = ALERT_CHANNEL_NAMES  # the settings check LOYALTY_ALERT_CHANNELS against them
AIRFLOW_CONNECTIONS = {"smtp": "loyalty_smtp", "slack": "loyalty_slack", "webhook": "loyalty_webhook"}


class DeliveryError(RuntimeError):
    """A channel could not deliver a message (the text is safe to log: no secrets)."""


class RecipientError(DeliveryError):
    """This message has no usable recipient on this channel (e.g. no account-manager e-mail): not
    the channel's fault, and pointless to retry at once; the next run retries (the data may be fixed)."""


class MessageError(DeliveryError):
    """This message can never be sent (it cannot be rendered or encoded for the channel): a
    permanent failure, recorded once and never retried."""


#: At most this much of a webhook's answer is read: only the status matters.
MAX_ANSWER_BYTES = 64 * 1024


class Channel(Protocol):
    name: str

    def describe(self) -> str: ...

    def recipient(self, message: Message) -> str: ...

    def send(self, message: Message) -> None: ...


def redact_url(url: str | Secret) -> str:
    """``https://hooks.slack.com/services/T0/B0/XYZ`` -> ``https://hooks.slack.com/***``.

    Never raises and never shows more than scheme, host and port, whatever the input: a malformed
    URL (``htp:/x/SECRET``, a space, a bad port) must not carry its secret path into a log."""
    url = reveal(url)
    if not url:
        return ""
    try:
        parts = urlsplit(url.strip())
        scheme = parts.scheme if re.fullmatch(r"[a-z][a-z0-9+.-]{0,15}", parts.scheme or "") else "?"
        host = parts.hostname or ""
        if re.fullmatch(r"[0-9a-f:.]+", host) and ":" in host:  # IPv6, brackets stripped by urlsplit
            host = f"[{host}]"
        elif not re.fullmatch(r"[A-Za-z0-9.-]{1,253}", host):
            host = "?"
        try:
            port = f":{parts.port}" if parts.port else ""
        except ValueError:
            port = ":?"
    except ValueError:
        scheme, host, port = "?", "?", ""
    return f"{scheme}://{host}{port}/***"


def check_url(url: str | Secret, what: str) -> None:
    """Raise ValueError (naming only the redacted URL) unless ``url`` is a usable http(s) URL."""
    text = reveal(url)
    problem = None
    try:
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https"):
            problem = "it does not start with http:// or https://"
        elif not parts.hostname:
            problem = "it has no host"
        elif re.search(r"[\x00-\x20\x7f]", text):
            problem = "it contains a space or a control character"
        else:
            parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        problem = "it cannot be parsed"
    if problem:
        raise ValueError(f"{what} is not a valid webhook URL ({redact_url(text)}): {problem}")


def scrub(text: str, *secrets: str | Secret) -> str:
    """``text`` with every secret (and a URL's path, the secret part of a webhook URL) replaced by ***."""
    for secret in secrets:
        value = reveal(secret)
        if not value:
            continue
        candidates = {value}
        if "://" in value:
            path = value.split("://", 1)[1].partition("/")[2]
            if len(path) >= 4:
                candidates.add(path)
        for candidate in sorted(candidates, key=len, reverse=True):
            text = text.replace(candidate, "***")
    return text


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
    for name, value in getattr(message, "headers", {}).items():  # the alert ids (messages.ALERT_ID_HEADER)
        mail[name] = one_line(value)
    mail.set_content(message.text)
    if message.html:
        mail.add_alternative(message.html, subtype="html")
    return mail


def _email_for(message: Message, sender: str) -> EmailMessage:
    """The MIME message, or MessageError if this message cannot be encoded as e-mail (a header
    value with a line break, say): no retry can change that."""
    try:
        return email_message(message, sender)
    except (ValueError, TypeError, UnicodeError) as exc:
        raise MessageError(f"cannot render the e-mail: {type(exc).__name__}: {exc}") from None


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
        mail = _email_for(message, self.sender).as_string()
        try:
            self.outbox.mkdir(parents=True, exist_ok=True)
            base = self.outbox / _safe_name(message.key)
            record = {"subject": message.subject, "to": message.to, "text": message.text,
                      **message.payload}
            for suffix, content in ((".json", json.dumps(record, indent=2, default=str)),
                                    (".eml", mail),
                                    (".html", message.html or "")):
                replace_text(base.with_name(base.name + suffix), content)
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
    password: Secret = field(default_factory=Secret)
    starttls: bool = False
    #: Overall deadline of one SMTP session (connect, TLS, login, send), see deadline.py.
    timeout_s: float = 10.0
    name: str = "smtp"

    def __post_init__(self) -> None:
        self.password = Secret(self.password)

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
            raise RecipientError("no e-mail recipient (account manager e-mail missing)")
        if self.username and not (self.starttls or self.implicit_tls):
            # credentials in clear text would cross the network readable by anyone on the path
            raise DeliveryError(f"SMTP {self.host}:{self.port}: refusing to send the SMTP password without "
                                f"TLS: set LOYALTY_SMTP_STARTTLS=true, or use port {SMTPS_PORT} (implicit TLS)")
        if any(re.search(r"[\x00-\x1f\x7f]", address) for address in message.to):
            raise MessageError("cannot render the e-mail: a recipient address contains a control character")
        mail = _email_for(message, self.sender)
        try:
            call_with_deadline(self.timeout_s, lambda deadline: self._session(deadline, mail, message.to),
                               name="smtp")
        except DeadlineExceeded as exc:
            raise DeliveryError(f"SMTP {self.host}:{self.port}: {exc}") from None
        except smtplib.SMTPRecipientsRefused as exc:
            refused = "; ".join(f"{who}: {code}" for who, (code, _text) in exc.recipients.items())
            raise RecipientError(f"SMTP {self.host}:{self.port}: recipient refused ({refused})") from None
        except (OSError, smtplib.SMTPException) as exc:
            text = scrub(f"{type(exc).__name__}: {exc}", self.password)
            raise DeliveryError(f"SMTP {self.host}:{self.port}: {text}") from exc

    def _session(self, deadline: Deadline, mail: EmailMessage, to: list[str]) -> None:
        """One SMTP session; its socket is the deadline's to shut."""
        if self.implicit_tls:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(timeout=self.timeout_s, context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(timeout=self.timeout_s)
        deadline.watch(lambda: smtp.sock)
        try:
            smtp.connect(self.host, self.port)
            if self.starttls and not self.implicit_tls:
                smtp.starttls(context=ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self.password.reveal())
            smtp.send_message(mail, self.sender, to)
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                pass  # the server accepted the message: a failed goodbye does not undo that
        finally:
            smtp.close()


def _watched(connection_class: type, deadline: Deadline) -> Any:
    """An http.client connection factory whose connections hand their socket to ``deadline``."""

    def connect(*args: Any, **kwargs: Any) -> Any:
        conn = connection_class(*args, **kwargs)
        deadline.watch(lambda: conn.sock)
        return conn

    return connect


class _WatchedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: Deadline):
        super().__init__()
        self.deadline = deadline

    def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
        return super().do_open(_watched(http_class, self.deadline), req, **kwargs)


class _WatchedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: Deadline):
        super().__init__()
        self.deadline = deadline

    def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
        return super().do_open(_watched(http_class, self.deadline), req, **kwargs)


def post_json(url: str | Secret, body: dict[str, Any], timeout_s: float,
              headers: dict[str, str] | None = None) -> None:
    """POST ``body`` as JSON; the whole exchange (connect, TLS, send, answer) within ``timeout_s``.

    Errors name the URL redacted only: the exception texts of urllib and http.client may contain
    the URL, whose path is the secret of a Slack webhook."""
    shown = redact_url(url)
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if any(re.search(r"[\x00-\x1f\x7f]", str(value)) for value in all_headers.values()):
        raise MessageError(f"POST {shown}: cannot render the request: a header value contains a control character")
    data = json.dumps(body, default=str).encode()
    try:
        request = urllib.request.Request(reveal(url), data=data, method="POST", headers=all_headers)
    except ValueError:
        raise DeliveryError(f"POST {shown} failed: not a valid URL") from None

    def exchange(deadline: Deadline) -> None:
        opener = urllib.request.build_opener(_WatchedHTTPHandler(deadline), _WatchedHTTPSHandler(deadline))
        with opener.open(request, timeout=timeout_s) as response:
            response.read(MAX_ANSWER_BYTES)

    try:
        call_with_deadline(timeout_s, exchange, name="http")
    except DeadlineExceeded as exc:
        raise DeliveryError(f"POST {shown} failed: {exc}") from None
    except urllib.error.HTTPError as exc:
        exc.close()
        raise DeliveryError(f"POST {shown} answered HTTP {exc.code}") from None
    except (OSError, ValueError, http.client.HTTPException) as exc:
        # The exception text may contain the URL: never log it, only its redacted form.
        reason = getattr(exc, "reason", None) or type(exc).__name__
        raise DeliveryError(f"POST {shown} failed: {scrub(str(reason), url)}") from None


@dataclass
class SlackChannel:
    url: Secret
    timeout_s: float = 10.0
    name: str = "slack"

    def __post_init__(self) -> None:
        self.url = Secret(self.url)

    def describe(self) -> str:
        return f"Slack webhook {redact_url(self.url)}"

    def recipient(self, message: Message) -> str:
        who = message.payload.get("recipient", {})
        return who.get("account_manager_email") or who.get("account_manager_id") or "slack"

    def send(self, message: Message) -> None:
        post_json(self.url, {"text": message.slack_text or message.text}, self.timeout_s)


@dataclass
class WebhookChannel:
    url: Secret
    timeout_s: float = 10.0
    name: str = "webhook"

    def __post_init__(self) -> None:
        self.url = Secret(self.url)

    def describe(self) -> str:
        return f"JSON webhook {redact_url(self.url)}"

    def recipient(self, message: Message) -> str:
        who = message.payload.get("recipient", {})
        return who.get("account_manager_email") or who.get("account_manager_id") or ", ".join(message.to)

    def send(self, message: Message) -> None:
        body = {"subject": message.subject, "text": message.text, **message.payload}
        post_json(self.url, body, self.timeout_s, headers={"Idempotency-Key": message.key})


def channel_secrets(channel: Any) -> list[Secret]:
    """The secrets a channel holds (to scrub them from any error text)."""
    return [value for value in (getattr(channel, "url", None), getattr(channel, "password", None))
            if isinstance(value, Secret)]


def _airflow_connection(conn_id: str) -> Any | None:
    """The Airflow connection ``conn_id`` when running inside Airflow (or defined by env), else None."""
    if "airflow.sdk" not in sys.modules and f"AIRFLOW_CONN_{conn_id.upper()}" not in os.environ:
        return None
    try:
        # Airflow: only inside a run, never when this module is imported
        from airflow.sdk import Connection

        return Connection.get(conn_id)
    except Exception:  # noqa: BLE001 - not defined / not in a task: fall back to settings
        return None


def _url_from_connection(conn: Any) -> Secret:
    """Slack/webhook connections: the full URL in ``host`` (or ``password``, the secret field)."""
    for candidate in (conn.password, conn.host):
        if candidate and "://" in candidate:
            return Secret(candidate)
    if conn.host:
        scheme = conn.schema or "https"
        port = f":{conn.port}" if conn.port else ""
        return Secret(f"{scheme}://{conn.host}{port}")
    return Secret()


class ChannelConfigError(ValueError):
    """The alert channels' configuration is wrong (an unknown channel, a missing or malformed URL):
    a retry cannot help, the settings or the Airflow connection must be fixed."""


def build_channels(settings: Settings, names: str | None = None) -> list[Channel]:
    """The configured channels, in order. Raises ChannelConfigError (a ValueError) naming what is
    misconfigured."""
    wanted = [n.strip().lower() for n in (names if names is not None else settings.alert_channels).split(",")
              if n.strip()]
    if not wanted:
        raise ChannelConfigError("no alert channel configured (LOYALTY_ALERT_CHANNELS is empty)")
    channels: list[Channel] = []
    for name in wanted:
        if name not in CHANNEL_NAMES:
            raise ChannelConfigError(f"unknown alert channel {name!r}; choose from {', '.join(CHANNEL_NAMES)}")
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
                password=Secret(conn.password if conn is not None and conn.password else settings.smtp_password),
                starttls=bool(extra.get("starttls", settings.smtp_starttls)),
                timeout_s=settings.alert_timeout_s))
        else:
            url = _url_from_connection(conn) if conn is not None else Secret()
            url = url or Secret(settings.slack_webhook_url if name == "slack" else settings.webhook_url)
            variable = f"LOYALTY_{name.upper()}{'_WEBHOOK' if name == 'slack' else ''}_URL"
            if not url:
                raise ChannelConfigError(f"alert channel {name!r} needs {variable} or the Airflow connection "
                                         f"{AIRFLOW_CONNECTIONS[name]}")
            try:
                check_url(url, variable if conn is None else f"the Airflow connection {AIRFLOW_CONNECTIONS[name]}")
            except ValueError as exc:
                raise ChannelConfigError(str(exc)) from None
            cls = SlackChannel if name == "slack" else WebhookChannel
            channels.append(cls(url=url, timeout_s=settings.alert_timeout_s))
    return channels
