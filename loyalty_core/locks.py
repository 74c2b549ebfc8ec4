"""File locks with a deadline: one pipeline run, one quality gate at a time per data directory.

Imports nothing of the project (a bottom-layer utility). A lock is an advisory ``flock`` on a
file; its holder writes its pid and start time into it, so whoever waits in vain can say who holds
it. The kernel releases the lock when its holder dies, so a killed run never leaves it stuck.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import time
from pathlib import Path
from typing import Iterator


class LockTimeout(RuntimeError):
    """The lock stayed held by someone else for longer than we were willing to wait."""


@contextlib.contextmanager
def exclusive(path: Path, what: str, timeout_s: float, poll_s: float = 0.2) -> Iterator[None]:
    """Hold the lock ``path`` for the block; wait at most ``timeout_s`` for it, then raise
    ``LockTimeout`` naming ``what`` is locked and who holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "another process"
                    raise LockTimeout(f"{what} is busy: held by {holder} (lock {path}); waited "
                                      f"{timeout_s:.0f} s. Wait for it to finish, or stop it, and "
                                      "run again") from None
                time.sleep(poll_s)
        try:
            handle.seek(0)
            handle.truncate()
            started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
            handle.write(f"pid {os.getpid()} since {started}")
            handle.flush()
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)
