"""An overall deadline for one network exchange (an SMTP session, an HTTP POST).

A socket timeout bounds each read, not the exchange: a server that sends one byte every 2 s
restarts a 3 s timeout with every byte (one held a "3 s" webhook call for 24 s). Here the exchange
runs in a worker thread while the caller waits at most ``seconds``; when the deadline passes, the
sockets the exchange registered are shut down (which wakes a blocked read at once) and the caller
gets :class:`DeadlineExceeded` at the latest ``GRACE_S`` later, whatever the worker is stuck in (a
TLS handshake, a DNS lookup). A worker that still has not noticed is left behind as a daemon
thread; whatever it finishes afterwards is ignored, and the message counts as not delivered (so it
is sent again later: delivery stays at least once).
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Callable, TypeVar

T = TypeVar("T")

#: After the deadline: how long the caller waits for the worker to notice its socket was shut.
GRACE_S = 1.0


class DeadlineExceeded(TimeoutError):
    """The exchange did not finish within its overall deadline."""

    def __init__(self, seconds: float):
        super().__init__(f"no complete exchange within the overall deadline of {seconds:g} s")
        self.seconds = seconds


class Deadline:
    """What an exchange registers its sockets with (``watch``), so that they can be shut in time."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._getters: list[Callable[[], Any]] = []
        self._lock = threading.Lock()
        self._expired = threading.Event()

    @property
    def expired(self) -> bool:
        return self._expired.is_set()

    def watch(self, sock: Callable[[], Any] | Any) -> None:
        """Register a socket, or a callable returning the exchange's current socket (or None): a
        connection object swaps its socket for a TLS one, the callable always finds the current one."""
        getter = sock if callable(sock) and not isinstance(sock, socket.socket) else (lambda: sock)
        with self._lock:
            self._getters.append(getter)
        if self.expired:  # registered after the deadline: shut at once
            self.shut()

    def expire(self) -> None:
        self._expired.set()
        self.shut()

    def shut(self) -> None:
        with self._lock:
            getters = list(self._getters)
        for getter in getters:
            try:
                sock = getter()
                if sock is not None:
                    # the plain socket's shutdown, also for an SSLSocket: acts on the descriptor
                    # without touching the TLS state another thread is reading with
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except (OSError, ValueError, TypeError, AttributeError):
                pass  # not connected yet, already closed, or detached by a TLS wrap


def call_with_deadline(seconds: float, exchange: Callable[[Deadline], T], name: str = "exchange") -> T:
    """Run ``exchange(deadline)`` and return its result within ``seconds`` (+ at most ``GRACE_S``),
    or raise :class:`DeadlineExceeded`. Exceptions of the exchange reach the caller unchanged."""
    deadline = Deadline(seconds)
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            outcome["value"] = exchange(deadline)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            outcome["error"] = exc
        finally:
            done.set()

    worker = threading.Thread(target=work, name=f"loyalty-deadline-{name}", daemon=True)
    worker.start()
    if not done.wait(max(0.0, seconds)):
        deadline.expire()
        give_up = time.monotonic() + GRACE_S
        while not done.wait(0.05) and time.monotonic() < give_up:
            deadline.shut()  # a socket created meanwhile (connect finished, TLS swapped) is shut too
        if "value" in outcome:  # it finished just in time after all
            return outcome["value"]
        raise DeadlineExceeded(seconds)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
