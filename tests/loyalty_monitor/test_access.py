"""Sign-in keys (loyalty_monitor/access.py, docs/web.md "Keys and rotation"): a key that is empty or
short is never used, and the generated key file is made whole before anyone reads it. On real files
and real threads; tokens are signed and checked by the real code."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import stat
import threading

import pytest

from loyalty_core.settings import Settings, load_settings
from loyalty_monitor import access as auth
from loyalty_monitor.web import create_app

EMAIL = "mallory@example.com"


def _forged(key: bytes, purpose: str, payload: bytes) -> str:
    """A token signed the way access.py signs, with a key the attacker knows."""
    signature = hmac.new(key, purpose.encode() + b"|" + payload, hashlib.sha256).digest()
    return ".".join(base64.urlsafe_b64encode(part).decode().rstrip("=") for part in (payload, signature))


@pytest.fixture()
def settings(tmp_path, monkeypatch) -> Settings:
    for key in list(os.environ):
        if key.startswith("LOYALTY_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return load_settings(data_dir=tmp_path / "data")


@pytest.mark.parametrize("content, says", [(b"", "is empty"), (b"\n", "is empty"),
                                           (b"abc\n", "holds a key of 3 bytes, fewer than 16")])
def test_an_empty_or_short_key_file_signs_nothing_and_accepts_no_forged_link(settings, content, says):
    """Tester: with <data_dir>/run/web-signing-key empty, a token forged with an empty HMAC key
    signed in any address and showed every customer."""
    path = auth.key_file(settings)
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    forged = _forged(content.strip(), "login", f"{EMAIL}|{2**40}".encode())
    with pytest.raises(auth.SigningKeyError) as caught:
        auth.email_from_link(settings, forged)
    message = str(caught.value)
    assert message.startswith(f"the web signing key file {path} {says}: "), message
    assert "delete the file to have a new key made" in message and "LOYALTY_WEB_SIGNING_KEYS" in message
    with pytest.raises(auth.SigningKeyError):
        auth.user_from_request(settings, {auth.SESSION_COOKIE: _forged(b"", "session", b'{"e":"x","x":1,"s":"s"}')})
    with pytest.raises(auth.SigningKeyError):
        auth.link_token(settings, EMAIL)
    with pytest.raises(auth.SigningKeyError):  # `loyalty web` refuses to start, not a 500 on each page
        create_app(settings)
    path.unlink()  # what the message says to do: a new key is made, and works
    token = auth.link_token(settings, EMAIL)
    assert auth.email_from_link(settings, token) == EMAIL
    assert len(path.read_bytes().strip()) >= 32 and stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_short_configured_key_is_refused_even_in_settings_built_without_validation(settings):
    # model_copy does not validate: the check in access.py still holds
    weak = settings.model_copy(update={"web_signing_keys": "0123456789abcdef0,"})
    assert auth.signing_keys(weak) == [b"0123456789abcdef0"]
    for value in (" , ", "0123456789abcdef0,short"):
        with pytest.raises(auth.SigningKeyError, match=r"^web_signing_keys \(LOYALTY_WEB_SIGNING_KEYS\) "):
            auth.signing_keys(settings.model_copy(update={"web_signing_keys": value}))


def test_processes_starting_at_once_all_use_the_one_key_that_was_made(settings):
    """The key file was created empty and written after: a second process reading it in between
    signed with an empty key. Four threads at once, 50 fresh data directories."""
    for round_ in range(50):
        fresh = settings.replace(data_dir=settings.data_dir / str(round_))
        barrier = threading.Barrier(4)
        keys: list[object] = []
        threads = [threading.Thread(target=_start, args=(fresh, barrier, keys)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len({repr(k) for k in keys}) == 1 and isinstance(keys[0], bytes) and len(keys[0]) >= 32, keys


def _start(settings: Settings, barrier: threading.Barrier, keys: list[object]) -> None:
    """One process starting: its signing key, or what it raised."""
    barrier.wait()
    try:
        keys.append(auth.signing_keys(settings)[0])
    except Exception as exc:  # noqa: BLE001 - handed to the test thread
        keys.append(exc)
