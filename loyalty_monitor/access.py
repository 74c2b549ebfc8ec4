"""Who is signed in to the web app, and what they may see (docs/web.md, "Signing in"). Below the
web app and the alert messages, which both hand out sign-in links: it imports only the settings.

- **Sign-in links**: ``/login?token=...[&next=/cases/...]`` where the token is the manager's e-mail address and an
  expiry, signed with HMAC-SHA256. Keys come from the setting ``web_signing_keys`` (a
  comma-separated list: new links are signed with the first key, any listed key is accepted, so a
  key is rotated by putting a new one first and dropping the old one once its links have expired).
  Without the setting, a key is generated once into ``<data_dir>/run/web-signing-key``. A key
  (setting or file) shorter than 16 bytes, or empty, is an error: nothing is signed or accepted.
- **Sessions**: opening a valid link sets a signed session cookie (HttpOnly, SameSite=Lax,
  Secure when the app's URL is https) that expires after ``web_session_hours``.
- **CSRF**: every form carries a token that is an HMAC of the session's random id; a POST without
  the right one, or from another origin, is refused.
- **Behind an authenticating proxy** (OIDC at the proxy): with ``web_trust_proxy_header`` the
  ``X-Forwarded-Email`` header names the user instead of the cookie.
- **Roles**: the addresses in ``web_leadership_emails`` and ``data_engineer_emails`` see every
  customer; everybody else the customers whose account manager they are.

Each signature is domain-separated (``login|``, ``session|``, ``csrf|``) so that one kind of
token can never be replayed as another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from loyalty_core.files import create_once
from loyalty_core.settings import MIN_SIGNING_KEY_BYTES, Settings, signing_key_list, signing_keys_problem

SESSION_COOKIE = "lm_session"
PROXY_HEADER = "x-forwarded-email"
ROLES = ("manager", "leadership", "data_engineer")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def key_file(settings: Settings) -> Path:
    return settings.data_dir / "run" / "web-signing-key"


class SigningKeyError(ValueError):
    """A signing key that is empty or too short: the app would accept forged sign-in links."""


def signing_keys(settings: Settings) -> list[bytes]:
    """The configured keys, first = the one that signs; else the generated one (created once, 0600).

    A key shorter than ``MIN_SIGNING_KEY_BYTES`` is refused, never used: with an empty key anyone
    could sign a link for any address. The generated key is written whole before any process can
    read it (``create_once``): two processes starting at once share the one that was made first.
    """
    problem = signing_keys_problem(settings.web_signing_keys)
    if problem:  # the settings refuse it when they load; settings built without validation too
        raise SigningKeyError(f"web_signing_keys (LOYALTY_WEB_SIGNING_KEYS) {problem}")
    keys = signing_key_list(settings.web_signing_keys)
    if keys:
        return [k.encode() for k in keys]
    path = key_file(settings)
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        made = (secrets.token_urlsafe(32) + "\n").encode()
        key = made if create_once(path, made) else path.read_bytes()  # else another process made it first
    key = key.strip()
    if len(key) < MIN_SIGNING_KEY_BYTES:
        what = "is empty" if not key else f"holds a key of {len(key)} bytes, fewer than {MIN_SIGNING_KEY_BYTES}"
        raise SigningKeyError(
            f"the web signing key file {path} {what}: with it anyone could sign in with a forged link, so nothing "
            "is signed or accepted; delete the file to have a new key made (sign-in links and sessions made "
            "before stop working: send new links with `loyalty web link EMAIL`), or set web_signing_keys "
            f"(LOYALTY_WEB_SIGNING_KEYS) to a key of at least {MIN_SIGNING_KEY_BYTES} bytes (docs/web.md)")
    return [key]


def _sign(key: bytes, purpose: str, payload: bytes) -> bytes:
    return hmac.new(key, purpose.encode() + b"|" + payload, hashlib.sha256).digest()


def _seal(keys: list[bytes], purpose: str, payload: bytes) -> str:
    return f"{_b64(payload)}.{_b64(_sign(keys[0], purpose, payload))}"


def _open(keys: list[bytes], purpose: str, token: str) -> bytes | None:
    """The payload of a token signed with any of ``keys`` for ``purpose``, else None."""
    try:
        payload_part, signature_part = token.split(".", 1)
        payload, signature = _unb64(payload_part), _unb64(signature_part)
    except (ValueError, TypeError):
        return None
    if any(hmac.compare_digest(_sign(key, purpose, payload), signature) for key in keys):
        return payload
    return None


def normalise_email(email: str) -> str:
    return email.strip().lower()


def link_token(settings: Settings, email: str, days: float | None = None, now: float | None = None) -> str:
    expires = int((now or time.time()) + 86400 * (settings.web_link_days if days is None else days))
    payload = f"{normalise_email(email)}|{expires}".encode()
    return _seal(signing_keys(settings), "login", payload)


def sign_in_link(settings: Settings, email: str, days: float | None = None, next_path: str | None = None) -> str:
    """A link that signs ``email`` in until it expires (``web_link_days`` by default), and then
    opens ``next_path`` (a path of the app, e.g. ``/cases/<id>``) instead of the queue."""
    query = {"token": link_token(settings, email, days)}
    if next_path and is_local_path(next_path):
        query["next"] = next_path
    return f"{settings.web_url}/login?{urlencode(query)}"


def is_local_path(path: str) -> bool:
    """A path of this app (``/cases/x``), never another site (``//evil.example``, ``https:...``):
    where a sign-in link may lead after signing in."""
    return path.startswith("/") and not path.startswith("//") and "\\" not in path and ":" not in path.split("?")[0]


def email_from_link(settings: Settings, token: str, now: float | None = None) -> str | None:
    payload = _open(signing_keys(settings), "login", token or "")
    if payload is None:
        return None
    try:
        email, expires = payload.decode().rsplit("|", 1)
        if int(expires) < (now or time.time()):
            return None
    except ValueError:
        return None
    return email or None


@dataclass(frozen=True)
class User:
    email: str
    role: str
    session_id: str  # the CSRF token is bound to it

    @property
    def sees_everyone(self) -> bool:
        return self.role in ("leadership", "data_engineer")


def _listed(addresses: str, email: str) -> bool:
    return email in {normalise_email(a) for a in addresses.split(",") if a.strip()}


def role_of(settings: Settings, email: str) -> str:
    if _listed(settings.web_leadership_emails, email):
        return "leadership"
    if _listed(settings.data_engineer_emails, email):
        return "data_engineer"
    return "manager"


def session_cookie(settings: Settings, email: str, now: float | None = None) -> tuple[str, int]:
    """The session cookie's value and max-age for a freshly signed-in ``email``."""
    max_age = int(settings.web_session_hours * 3600)
    payload = json.dumps({"e": normalise_email(email), "x": int((now or time.time()) + max_age),
                          "s": secrets.token_urlsafe(16)}, separators=(",", ":")).encode()
    return _seal(signing_keys(settings), "session", payload), max_age


def user_from_request(settings: Settings, cookies: dict[str, str], headers: dict[str, str] | None = None,
                      now: float | None = None) -> User | None:
    if settings.web_trust_proxy_header and headers and headers.get(PROXY_HEADER):
        email = normalise_email(headers[PROXY_HEADER])
        return User(email, role_of(settings, email), "proxy:" + email)
    payload = _open(signing_keys(settings), "session", cookies.get(SESSION_COOKIE, ""))
    if payload is None:
        return None
    try:
        data = json.loads(payload)
        email, expires, session_id = str(data["e"]), int(data["x"]), str(data["s"])
    except (ValueError, KeyError, TypeError):
        return None
    if expires < (now or time.time()) or not email:
        return None
    return User(email, role_of(settings, email), session_id)


def csrf_token(settings: Settings, user: User) -> str:
    return _b64(_sign(signing_keys(settings)[0], "csrf", user.session_id.encode()))


def csrf_ok(settings: Settings, user: User, token: str) -> bool:
    try:
        given = _unb64(token or "")
    except (ValueError, TypeError):
        return False
    return any(hmac.compare_digest(_sign(key, "csrf", user.session_id.encode()), given)
               for key in signing_keys(settings))
