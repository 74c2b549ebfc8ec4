"""The Kafka cluster as the pipeline's clients need it: the topics it uses (names, partitions,
configs), creating them, and whether a broker answers at all (``probe``: one clear line within
seconds instead of a client's half-minute of retries).

Any Kafka: the embedded Tansu broker (``loyalty_monitor.broker`` starts it) or the user's cluster.
"""

from __future__ import annotations

import difflib
import logging
import re
import socket
import time
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from loyalty_core.settings import Settings


class BrokerError(RuntimeError):
    pass


class BrokerUnreachable(BrokerError):
    """No Kafka broker answers at the configured address (raised by :func:`probe`)."""

#: How long commands wait for the broker to answer before they give up (seconds).
PROBE_TIMEOUT_S = 5.0


def input_topics(settings: Settings) -> dict[str, str]:
    """The topics the landing consumer reads, each with the kind of message the event contract
    decodes from it (``loyalty_core.contract.decode``)."""
    return {settings.topic_touchpoints: "touchpoint", settings.topic_customers: "customer",
            settings.topic_case_events: "case_event"}


#: The setting that names each input topic, by the kind of message it carries.
INPUT_TOPIC_SETTINGS = {"touchpoint": "LOYALTY_TOPIC_TOUCHPOINTS", "customer": "LOYALTY_TOPIC_CUSTOMERS",
                        "case_event": "LOYALTY_TOPIC_CASE_EVENTS"}


def require_input_topics(settings: Settings, existing: list[str]) -> None:
    """ValueError naming each input topic the broker does not have (``existing``: ``probe``'s
    answer): a consumer subscribed to a mistyped topic found nothing, said "caught up" and exited 0."""
    missing = [(topic, kind) for topic, kind in input_topics(settings).items() if topic not in existing]
    if not missing:
        return
    words = []
    for topic, kind in missing:
        near = difflib.get_close_matches(topic, existing, n=1)
        words.append(f"{topic!r} ({INPUT_TOPIC_SETTINGS[kind]}" + (f"; did you mean {near[0]!r}?" if near else "") + ")")
    raise ValueError(f"the broker at {settings.bootstrap} has no topic {', '.join(words)}: check the setting, or "
                     "create the topic (`loyalty broker start` creates the embedded broker's; on Apache Kafka, "
                     "docs/deployment.md)")


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
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    host, port = _host_port(bootstrap.split(",")[0])
    while time.monotonic() < deadline:
        # First until the port accepts a connection: a Kafka client refused on a starting broker
        # logs each refusal at level error, which a user starting the broker reads as a failure.
        try:
            socket.create_connection((host, port), timeout=1.0).close()
        except OSError as exc:
            last = exc
            time.sleep(0.1)
            continue
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


def _refused_property(settings: Settings, exc: KafkaException) -> str:
    """librdkafka's refusal of a passed-through property (unknown name, bad value), with where the
    property came from (``[kafka]`` in loyalty.toml or a ``LOYALTY_KAFKA__*`` variable)."""
    error = exc.args[0] if exc.args else exc
    text = getattr(error, "str", lambda: str(error))()
    sources = {d["name"]: d["source"] for d in settings.described()}
    source = next((sources[f"kafka.{quoted}"] for quoted in re.findall(r'"([^"]+)"', text)
                   if f"kafka.{quoted}" in sources), None)
    where = (f" (from {source})" if source else
             " (in the [kafka] pass-through: loyalty.toml [kafka] or LOYALTY_KAFKA__* variables)")
    return (f"the Kafka clients refuse a passed-through property{where}: {text}; fix or remove it "
            "(librdkafka's property names and values: its CONFIGURATION.md)")


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
    try:
        admin = AdminClient({**settings.confluent_client_config(), "client.id": "loyalty-probe", "logger": quiet})
    except KafkaException as exc:  # a property librdkafka refuses: raised before any connection
        raise ValueError(_refused_property(settings, exc)) from None
    try:
        metadata = admin.list_topics(timeout=max(0.5, deadline - time.monotonic()))
    except KafkaException as exc:
        error = exc.args[0] if exc.args else exc
        raise _unreachable(settings, getattr(error, "str", lambda: str(error))()) from None
    return sorted(name for name in metadata.topics if not name.startswith("__"))


def create_topic(settings: Settings, name: str, partitions: int | None = None) -> None:
    """Create one topic: a configured topic with its partitions and configs (``topic_specs``),
    any other with ``partitions`` (default 1)."""
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
