"""All runtime configuration of Loyalty Monitor, in one place.

Values come from, in rising priority: the defaults below, a TOML file (``loyalty.toml`` in the
working directory, or the path in ``LOYALTY_CONFIG``), and ``LOYALTY_<FIELD>`` environment
variables (upper-case field name, e.g. ``LOYALTY_BOOTSTRAP_SERVERS``). Scoring weights, thresholds
and alert-rule parameters are not settings: they live in the user-edited ``config/scoring.yml``.

This module imports nothing of the project: everything else imports it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

#: The repository root when the package runs from a checkout (the normal case: ``pip install -e``).
PROJECT_ROOT = Path(__file__).resolve().parent.parent

ENV_PREFIX = "LOYALTY_"

# Fields whose values must never be printed or logged: they hold a :class:`Secret`.
SECRET_FIELDS = frozenset({"sasl_password", "smtp_password", "slack_webhook_url", "webhook_url",
                           "web_signing_keys", "pg_password", "spark_token"})
#: Keys of the TOML file's unknown entries that are masked as well by ``redacted()``.
SECRET_NAME_HINTS = ("password", "secret", "token", "fernet", "webhook", "credential", "_key")


class Secret:
    """A secret string (password, webhook URL: its path is the credential) whose ``str`` and ``repr``
    hide it, so that printing settings, a channel or a traceback's locals never shows it. Only
    :meth:`reveal` gives the value, at the one place that sends it."""

    __slots__ = ("_value",)

    def __init__(self, value: "str | Secret | None" = "") -> None:
        self._value = value.reveal() if isinstance(value, Secret) else ("" if value is None else str(value))

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        import hmac

        if isinstance(other, Secret):
            return hmac.compare_digest(self._value.encode(), other._value.encode())
        return NotImplemented

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __str__(self) -> str:
        return "***" if self._value else ""

    def __repr__(self) -> str:
        return f"Secret({str(self)!r})"


def reveal(value: "str | Secret | None") -> str:
    """The clear text of a secret (or of a plain string, for values that did not come from settings)."""
    return value.reveal() if isinstance(value, Secret) else ("" if value is None else str(value))


@dataclass(frozen=True)
class Settings:
    # --- where things live -------------------------------------------------------------------
    data_dir: Path = PROJECT_ROOT / "data"
    #: fsspec URL of the Parquet landing zone; empty means ``<data_dir>/landing``.
    landing_url: str = ""
    #: DuckDB warehouse file; empty means ``<data_dir>/warehouse.duckdb``.
    warehouse_path: str = ""
    scoring_file: Path = PROJECT_ROOT / "config" / "scoring.yml"
    dbt_project_dir: Path = PROJECT_ROOT / "dbt_project"
    #: dbt target in dbt_project/profiles.yml (``duckdb`` embedded default, ``postgres``, ``spark``).
    dbt_target: str = "duckdb"
    #: The PostgreSQL warehouse (``dbt_target = "postgres"``; docs/warehouse.md "Engines"): the dbt
    #: profile, the landing load and the marts readers all connect with these.
    pg_host: str = "localhost"
    pg_port: int = 5432
    pg_user: str = "loyalty"
    pg_password: Secret = Secret()
    pg_database: str = "loyalty"
    #: DuckDB's memory limit in dbt builds (DuckDB's own syntax: ``4GB``, ``500MB``); what does not
    #: fit spills to ``<warehouse>.tmp``. Empty: DuckDB's default, 80 % of the machine's RAM
    #: (docs/warehouse.md "Performance").
    duckdb_memory_limit: str = "4GB"
    #: A full refresh on DuckDB builds the customer-day tables (one row per customer and day) in
    #: batches of customers of at most about this many rows each, so that its memory does not grow
    #: with the number of customers (docs/warehouse.md "Performance"). 0: one batch.
    customer_batch_rows: int = 2_000_000
    #: Apache Spark (``dbt_target = "spark"``; docs/warehouse.md "Engines"). ``session`` runs Spark
    #: in this process in local mode (tests, the embedded run: the metastore and the tables live in
    #: ``spark_dir``); ``thrift`` and ``http`` reach a Spark Thrift server or Databricks at
    #: ``spark_host``/``spark_port`` (``spark_token``, ``spark_cluster``/``spark_endpoint`` for http).
    spark_method: str = "session"
    spark_master: str = "local[2]"
    spark_driver_memory: str = "2g"
    spark_shuffle_partitions: int = 4
    #: metastore and table files of the session method; empty means ``<data_dir>/spark``
    spark_dir: str = ""
    spark_host: str = "localhost"
    spark_port: int = 10000
    spark_user: str = ""
    spark_token: Secret = Secret()
    spark_cluster: str = ""
    spark_endpoint: str = ""

    # --- Kafka -------------------------------------------------------------------------------
    #: Comma-separated host:port list. Empty means: the embedded broker's address if it runs
    #: (recorded by ``loyalty broker start``), else ``127.0.0.1:9092``.
    bootstrap_servers: str = ""
    security_protocol: str = "PLAINTEXT"  # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    sasl_mechanism: str = ""  # PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
    sasl_username: str = ""
    sasl_password: Secret = Secret()
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""

    topic_touchpoints: str = "touchpoints"
    topic_customers: str = "customers"
    topic_dead_letter: str = "loyalty.dead-letter"
    topic_batches: str = "loyalty.batches-landed"
    #: Contract 1.2: what account managers do with churn-risk cases (acknowledge, snooze, close, feedback).
    topic_case_events: str = "case-events"
    partitions_touchpoints: int = 6
    partitions_customers: int = 3
    partitions_case_events: int = 3
    consumer_group: str = "loyalty-landing"

    # --- consumer ----------------------------------------------------------------------------
    batch_max_records: int = 20_000
    #: A batch is also flushed once its messages add up to this many bytes: memory is bounded by
    #: bytes, not only by count (300 one-MiB events made a 1 GB batch).
    batch_max_bytes: int = 64 * 1024 * 1024
    batch_max_wait_s: float = 2.0
    max_message_bytes: int = 1_048_576
    #: The contract's accepted instants: not before this date (UTC) and not later than the
    #: receiver's clock plus this skew. Anything outside is dead-lettered as ``bad_timestamp``.
    earliest_event_date: str = "2000-01-01"
    max_clock_skew_hours: float = 24.0
    #: Kept short: a group's first join waits for the rebalance timeout (see README).
    max_poll_interval_ms: int = 10_000
    session_timeout_ms: int = 10_000
    metrics_port: int = 0  # 0 = no HTTP metrics endpoint; metrics are still written to data_dir

    # --- embedded broker ---------------------------------------------------------------------
    broker_port: int = 0  # 0 = pick a free port

    # --- alert delivery (secrets only from env or a private config file) ---------------------
    alert_channels: str = "file"  # comma-separated: file, smtp, slack, webhook
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_username: str = ""
    smtp_password: Secret = Secret()
    smtp_starttls: bool = False
    smtp_from: str = "loyalty-monitor@localhost"
    slack_webhook_url: Secret = Secret()
    webhook_url: Secret = Secret()
    #: Who hears about failed runs and failed quality gates (comma-separated e-mail addresses).
    data_engineer_emails: str = "data-engineers@localhost"
    #: Delivery attempts per alert and channel within one dispatch; waits double from the first.
    alert_max_attempts: int = 3
    alert_backoff_s: float = 2.0
    #: Overall deadline of one delivery attempt (connect, TLS, send, answer), not only a socket
    #: timeout: a server that drips one byte at a time cannot hold dispatch longer than this.
    alert_timeout_s: float = 10.0
    #: A channel that fails this many attempts in a row is paused for the rest of the dispatch
    #: run; its remaining messages stay pending for the next run (0 = never pause).
    alert_channel_failure_limit: int = 3
    #: One message per account manager listing all of that manager's new alerts.
    alert_digest: bool = False
    #: Each account manager's weekly digest (open cases by value at risk, who went quiet, what was
    #: closed), sent Monday morning by the weekly report DAG (alerting/weekly.py).
    alert_weekly_digest: bool = True

    # --- Airflow -----------------------------------------------------------------------------
    #: Address the Airflow UI/API of ``loyalty up`` listens on: this machine only unless told
    #: otherwise (``0.0.0.0`` for every interface).
    airflow_host: str = "127.0.0.1"
    #: The asset watcher (Airflow triggerer) on the batches-landed topic: how long one poll waits
    #: for a message (it returns as soon as one arrives), and how long it pauses after a message
    #: that starts no run (malformed). Event-to-alert latency: docs/operations.md.
    asset_watcher_poll_timeout_s: float = 1.0
    asset_watcher_poll_interval_s: float = 1.0
    #: Retries of a failed pipeline task; the wait starts at task_retry_delay_s and doubles.
    task_retries: int = 2
    task_retry_delay_s: float = 60.0
    #: Deadline of one pipeline task (Airflow execution_timeout) and of a whole run (dagrun_timeout):
    #: a hung server or a lock never holds the pipeline for ever.
    task_timeout_s: float = 3600.0
    dagrun_timeout_s: float = 21600.0
    #: How long a pipeline run (or a quality gate) waits for another one on the same data
    #: directory to finish before it gives up with a message naming the holder.
    lock_timeout_s: float = 900.0

    # --- the account managers' web app (docs/web.md) -----------------------------------------
    #: ``loyalty web`` listens here: this machine only unless told otherwise.
    web_host: str = "127.0.0.1"
    web_port: int = 8050
    #: The address people open (behind a reverse proxy: its public URL); alert messages link to
    #: ``<web_base_url>/cases/<case_id>``. Empty: ``http://<web_host>:<web_port>``.
    web_base_url: str = ""
    #: Comma-separated keys that sign sign-in links and session cookies: links are signed with the
    #: first, any of them is accepted (add a new key first, drop the old one later). Empty: a key
    #: generated once into ``<data_dir>/run/web-signing-key`` (private to its owner).
    web_signing_keys: str = ""
    #: How long a sign-in link and a session last.
    web_link_days: float = 14.0
    web_session_hours: float = 12.0
    #: Comma-separated e-mail addresses that see every customer (leadership); the data engineers
    #: (``data_engineer_emails``) do too. Everyone else sees the customers they manage.
    web_leadership_emails: str = ""
    #: Trust the ``X-Forwarded-Email`` header set by an authenticating reverse proxy (OIDC):
    #: only when the app is reachable through that proxy alone.
    web_trust_proxy_header: bool = False

    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # dataclasses.replace(settings, smtp_password="...") and Settings(...) get a Secret too
        for name in SECRET_FIELDS:
            if not isinstance(getattr(self, name), Secret):
                object.__setattr__(self, name, Secret(getattr(self, name)))

    # --- derived -----------------------------------------------------------------------------
    @property
    def landing(self) -> str:
        return self.landing_url or str(self.data_dir / "landing")

    @property
    def warehouse(self) -> Path:
        return Path(self.warehouse_path) if self.warehouse_path else self.data_dir / "warehouse.duckdb"

    @property
    def web_url(self) -> str:
        """The web app's address as people open it (alert messages link into it)."""
        return (self.web_base_url or f"http://{self.web_host}:{self.web_port}").rstrip("/")

    @property
    def broker_state_file(self) -> Path:
        return self.data_dir / "run" / "broker.json"

    @property
    def bootstrap(self) -> str:
        if self.bootstrap_servers:
            return self.bootstrap_servers
        try:
            state = json.loads(self.broker_state_file.read_text())
            return state["bootstrap_servers"]
        except (OSError, ValueError, KeyError):
            return "127.0.0.1:9092"

    def kafka_client_config(self) -> dict[str, Any]:
        """Connection and security keyword arguments for kafka-python clients (pass-through)."""
        cfg: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap.split(","),
            "security_protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            cfg.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password.reveal(),
            )
        for ours, theirs in (("ssl_cafile", "ssl_cafile"), ("ssl_certfile", "ssl_certfile"),
                             ("ssl_keyfile", "ssl_keyfile")):
            if getattr(self, ours):
                cfg[theirs] = getattr(self, ours)
        return cfg

    def confluent_client_config(self) -> dict[str, Any]:
        """The same connection settings in librdkafka (confluent-kafka) spelling."""
        cfg: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": self.security_protocol.lower(),
        }
        if self.sasl_mechanism:
            cfg.update({"sasl.mechanism": self.sasl_mechanism, "sasl.username": self.sasl_username,
                        "sasl.password": self.sasl_password.reveal()})
        if self.ssl_cafile:
            cfg["ssl.ca.location"] = self.ssl_cafile
        if self.ssl_certfile:
            cfg["ssl.certificate.location"] = self.ssl_certfile
        if self.ssl_keyfile:
            cfg["ssl.key.location"] = self.ssl_keyfile
        return cfg

    def redacted(self) -> dict[str, Any]:
        """Settings as a dict with secrets masked: safe to print or log."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in SECRET_FIELDS:
                value = str(value)  # "***" when set
            elif f.name == "extra":
                value = {k: "***" if v and any(h in k.lower() for h in SECRET_NAME_HINTS) else v
                         for k, v in value.items()}
            out[f.name] = str(value) if isinstance(value, Path) else value
        return out


def _coerce(kind: Any, raw: Any) -> Any:
    kind = kind if isinstance(kind, type) else {"Path": Path, "int": int, "float": float,
                                                "bool": bool, "str": str, "Secret": Secret}.get(str(kind), str)
    if kind is bool and isinstance(raw, str):
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if kind is Path:
        return Path(raw).expanduser()
    return kind(raw)


def load_settings(**overrides: Any) -> Settings:
    """Build Settings from defaults, the TOML file, ``LOYALTY_*`` variables and ``overrides``."""
    values: dict[str, Any] = {}
    known = {f.name: f for f in fields(Settings) if f.name != "extra"}
    config_path = Path(os.environ.get(ENV_PREFIX + "CONFIG", "loyalty.toml"))
    extra: dict[str, Any] = {}
    if config_path.is_file():
        with config_path.open("rb") as fh:
            for key, raw in tomllib.load(fh).items():
                if key in known:
                    values[key] = _coerce(known[key].type, raw)
                else:
                    extra[key] = raw
    for name, f in known.items():
        env = os.environ.get(ENV_PREFIX + name.upper())
        if env is not None and env != "":
            values[name] = _coerce(f.type, env)
    for name, value in overrides.items():
        if value is not None:
            values[name] = _coerce(known[name].type, value) if name in known else value
    return dataclasses.replace(Settings(), extra=extra, **values)
