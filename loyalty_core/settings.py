"""All runtime configuration of Loyalty Monitor, in one typed model.

Values come from, in rising priority:

1. the defaults below;
2. a TOML file: ``loyalty.toml`` in the *working directory*, or the path in ``LOYALTY_CONFIG``
   (top-level keys are the field names; the tables ``[quality]`` (the quality gate's thresholds,
   :class:`QualitySettings`) and ``[kafka]`` (Kafka client properties passed through));
3. ``LOYALTY_<FIELD>`` environment variables (upper-case field name, e.g.
   ``LOYALTY_BOOTSTRAP_SERVERS``; nested: ``LOYALTY_QUALITY__FEED_STALE_DAYS``,
   ``LOYALTY_KAFKA__CLIENT__RACK`` for the Kafka client property ``client.rack``);
4. keyword arguments of :func:`load_settings` (tests, ``--port`` style CLI options).

Scoring weights, thresholds and alert-rule parameters are not settings: they live in the
user-edited ``config/scoring.yml``.

Paths: defaults are inside the project (``PROJECT_ROOT``, the checkout): the data directory is
``<project root>/data`` wherever the command runs. A relative path given in the file or the
environment is taken relative to the working directory, as any command-line path is.

Strictness (issue 14): a key in the TOML file that is no setting, and a ``LOYALTY_*`` environment
variable that is neither a setting nor on :data:`OTHER_ENV_VARS` (variables the project sets or reads
for other purposes: dbt's profile, the CLI, test helpers), is an error naming the key, where it came
from and the closest setting ("did you mean ...?"). Unknown environment variables are rejected, not
only warned about, because a mistyped ``LOYALTY_SMTP_PASSWORD`` (one S missing) would otherwise send mail
without a password; the allow-list below is the complete list of other ``LOYALTY_*`` names used in
this repository (``grep -rhoI "LOYALTY_[A-Z0-9_]*"``), so a variable the project itself exports never
trips it. Invalid values are errors naming the setting and its source
(``LOYALTY_SMTP_PORT (environment): 'abc' is not an integer``).

The model is a pydantic-settings ``BaseSettings`` whose only own source is its keyword arguments:
``Settings()`` is the defaults (tests rely on that); :func:`load_settings` reads the TOML file and the
environment with pydantic-settings' ``TomlConfigSettingsSource`` and ``EnvSettingsSource``, checks
names, records where each value came from (:meth:`Settings.sources`, shown by ``loyalty config``)
and validates. Secrets are :class:`Secret` values: their ``str``/``repr`` and JSON form are masked.
Settings are frozen: derive changed ones with :meth:`Settings.replace`, which validates again.

This module imports nothing of the project: everything else imports it.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hmac
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, PrivateAttr, SecretStr,
                      StrictBool, ValidationError, field_validator, model_validator)
from pydantic_core import PydanticCustomError, core_schema
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

#: The repository root when the package runs from a checkout (the normal case: ``pip install -e``).
PROJECT_ROOT = Path(__file__).resolve().parent.parent

ENV_PREFIX = "LOYALTY_"
#: Separates a table from its key in environment variables: ``LOYALTY_QUALITY__FEED_STALE_DAYS``.
NESTED_DELIMITER = "__"

#: ``LOYALTY_*`` environment variables that are not settings but legitimately present: they are
#: neither read as settings nor rejected. Keep in step with the code that uses them.
OTHER_ENV_VARS: dict[str, str] = {
    "LOYALTY_CONFIG": "the settings file to read (this module)",
    "LOYALTY_DEBUG": "the CLI shows tracebacks (loyalty_monitor/cli)",
    "LOYALTY_AS_OF_DATE": "the as-of date dbt reads (warehouse.run_dbt and the DAG's dbt tasks set it for dbt)",
    "LOYALTY_DBT_PARSE_DIR": "where the DAG's dbt tasks parse the project (pipeline.dbt_run_environment)",
    "LOYALTY_LANDING": "the landing zone dbt reads (warehouse.dbt_env, from landing_url)",
    "LOYALTY_QUARANTINE": "the quarantine file dbt reads (warehouse.dbt_env)",
    "LOYALTY_QUARANTINE_EXISTS": "whether it exists, for dbt on Spark (warehouse.spark_env)",
    "LOYALTY_ERASED_CHURN": "erased customers' churn counts dbt reads (warehouse.dbt_env)",
    "LOYALTY_FEED_STALE_DAYS": "dbt source freshness (warehouse.dbt_env, from quality.feed_stale_days)",
    "LOYALTY_LANDING_DATASETS": "landed datasets, for dbt on Spark (warehouse.spark_env)",
    "LOYALTY_DATASETS_DIR": "where the CDNOW validation data set is (loyalty_monitor/drift/cdnow.py)",
    "LOYALTY_IMAGE_TAG": "the image tag docker compose uses (.env)",
    "LOYALTY_TEST_AIRFLOW_HOME": "tests only (tests/helpers/alerting_servers.py)",
}

Port = Annotated[int, Field(ge=0, le=65535)]
#: The alert channels there are (loyalty_monitor/alerting/channels.py builds them).
ALERT_CHANNEL_NAMES = ("file", "smtp", "slack", "webhook")
#: Durations, sizes and factors: a negative, infinite or NaN value is refused when the settings load
#: (naming the setting and what is allowed), not met later as a silent misbehaviour (a negative clock
#: skew dead-letters every event, a NaN wait never flushes a batch).
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
#: A share of rows: 0 to 1 (a share above 1 would, e.g., quarantine a whole broken feed instead of
#: stopping the run).
Share = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
#: Durations have an upper bound too: a hundred years (a clock skew: one year). Beyond it a value is
#: a slip (an exponent, a unit mixed up) and the time arithmetic it feeds overflows far from the
#: setting: ``LOYALTY_MAX_CLOCK_SKEW_HOURS=1e308`` passed ``loyalty config`` and failed
#: ``loyalty land-offline`` with "Python int too large to convert to C int".
CENTURY_DAYS = 36_500
YEAR_DAYS = 365
#: A duration's unit and its length in days, by the setting's name ending (for the bound's message).
_UNITS = {"_s": ("seconds", 1 / 86400), "_minutes": ("minutes", 1 / 1440), "_hours": ("hours", 1 / 24),
          "_days": ("days", 1), "_weeks": ("weeks", 7)}
Seconds = Annotated[float, Field(ge=0, le=CENTURY_DAYS * 86400, allow_inf_nan=False)]
PositiveSeconds = Annotated[float, Field(gt=0, le=CENTURY_DAYS * 86400, allow_inf_nan=False)]
Days = Annotated[int, Field(ge=0, le=CENTURY_DAYS)]
PositiveDays = Annotated[int, Field(gt=0, le=CENTURY_DAYS)]
#: Kafka's timeouts in milliseconds are 32-bit integers on the wire.
KafkaMillis = Annotated[int, Field(gt=0, le=2**31 - 1)]


class SettingsError(ValueError):
    """A setting that is unknown or has an invalid value; the message names it and its source."""


class Secret:
    """A secret string (password, webhook URL: its path is the credential) whose ``str``, ``repr``
    and JSON form hide it, so that printing settings, a channel or a traceback's locals never shows
    it. Only :meth:`reveal` gives the value, at the one place that sends it. A pydantic type: a
    settings field of this type accepts a string, a ``Secret`` or a pydantic ``SecretStr``."""

    __slots__ = ("_value",)

    def __init__(self, value: "str | Secret | SecretStr | None" = "") -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        elif isinstance(value, SecretStr):
            value = value.get_secret_value()
        self._value = "" if value is None else str(value)

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            return hmac.compare_digest(self._value.encode(), other._value.encode())
        return NotImplemented

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __str__(self) -> str:
        return "***" if self._value else ""

    def __repr__(self) -> str:
        return f"Secret({str(self)!r})"

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> core_schema.CoreSchema:
        def validate(value: Any) -> "Secret":
            if isinstance(value, (Secret, SecretStr, str)) or value is None:
                return cls(value)
            if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
                return cls(",".join(value))  # web_signing_keys = ["new", "old"] in TOML
            raise ValueError("is not a string")

        return core_schema.no_info_plain_validator_function(
            validate, serialization=core_schema.plain_serializer_function_ser_schema(str, when_used="json"))


def reveal(value: "str | Secret | SecretStr | None") -> str:
    """The clear text of a secret (or of a plain string, for values that did not come from settings)."""
    if isinstance(value, Secret):
        return value.reveal()
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return "" if value is None else str(value)


#: The fewest bytes a web signing key may have: an empty key let anyone forge a sign-in link for any
#: address, and a short one can be guessed.
MIN_SIGNING_KEY_BYTES = 16
#: How ``loyalty web`` tells to make a key (docs/web.md).
MAKE_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
_ORDINALS = {1: "first", 2: "second", 3: "third"}


def signing_key_list(value: str | Secret | SecretStr | None) -> list[str]:
    """The keys of a ``web_signing_keys`` value, in order (comma-separated; a TOML list's brackets
    and quotes tolerated); empty when the setting is not set."""
    text = reveal(value).strip().strip("[]")
    return [key.strip().strip("'\"") for key in text.split(",") if key.strip().strip("'\"")]


def signing_keys_problem(value: str | Secret | SecretStr | None) -> str | None:
    """What is wrong with a ``web_signing_keys`` value, in words (never the key itself); None when
    it is fine or not set (an empty setting: a key is generated into ``<data_dir>/run/web-signing-key``)."""
    if not reveal(value).strip():
        return None
    keys = signing_key_list(value)
    if not keys:
        return (f"names no key (only separators): give keys of at least {MIN_SIGNING_KEY_BYTES} bytes, "
                f"comma-separated (make one with `{MAKE_KEY}`), or leave it unset to have one generated")
    for number, key in enumerate(keys, 1):
        size = len(key.encode("utf-8"))
        if size < MIN_SIGNING_KEY_BYTES:
            which = f"its {_ORDINALS.get(number, f'{number}th')} key" if len(keys) > 1 else "its key"
            return (f"{which} has {size} bytes, fewer than {MIN_SIGNING_KEY_BYTES}: a short key can be guessed and "
                    f"anyone could sign in with a forged link; set a longer one (make one with `{MAKE_KEY}`)")
    return None


def email_list_problem(value: str) -> str | None:
    """What is wrong with a comma-separated list of e-mail addresses, in words; None when each entry
    looks like ``name@domain`` and there is at least one."""
    addresses = [entry.strip() for entry in value.split(",") if entry.strip()]
    if not addresses:
        return "names no e-mail address"
    bad = [entry for entry in addresses
           if entry.count("@") != 1 or not all(entry.split("@")) or any(c.isspace() or c in "<>;" for c in entry)]
    if bad:
        return f"has {', '.join(map(repr, bad))}, not an e-mail address (name@domain)"
    return None


class QualitySettings(BaseModel):
    """Thresholds of the quality gate (``[quality]`` in loyalty.toml, ``LOYALTY_QUALITY__<NAME>``).
    ``expectations.config.GateConfig`` is this model with the gate's own helpers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: occurred_at / updated_at may lie this far in the future (producers' clocks drift).
    clock_skew_minutes: Annotated[float, Field(ge=0, le=YEAR_DAYS * 1440, allow_inf_nan=False)] = 10.0
    #: Older events are "absurdly old" (epoch-zero or default-date bugs), not late.
    max_event_age_days: PositiveDays = 1830
    #: Share of touchpoint rows whose customer is not (yet) in master data before it is critical.
    #: Master data may arrive a little after a new customer's first touchpoint.
    unknown_customer_tolerance: Share = 0.02
    #: ... but never fewer than this many rows: an event-driven run over a batch of nine rows with
    #: two new customers is a new customer arriving, not a broken feed.
    unknown_customer_floor_rows: NonNegativeInt = 5
    #: The touchpoint feed is stale (critical) when its newest event is more than this many days
    #: before the last closed day: a producer or the landing consumer has stopped.
    feed_stale_days: Days = 3
    #: Share of exact re-sends in a batch above which a warning is raised (staging dedups them).
    resend_warning_share: Share = 0.05
    #: Daily volume band: learned from the same weekday of this many trailing weeks.
    volume_history_weeks: Annotated[int, Field(gt=0, le=CENTURY_DAYS // 7)] = 4
    #: Fewer same-weekday samples than this and the band is not enforced yet.
    volume_min_history_days: PositiveDays = 2
    #: Band = [median * low_factor - sigmas * sqrt(median), median * high_factor + sigmas * sqrt(median)].
    volume_low_factor: NonNegativeFloat = 0.5
    volume_high_factor: NonNegativeFloat = 2.0
    volume_poisson_sigmas: NonNegativeFloat = 3.0
    #: New touchpoint files are validated in chunks of about this much Parquet (bounded memory on
    #: a first run over a long history).
    chunk_mb: PositiveFloat = 64.0
    #: Without explicit dates, daily volume is judged for closed days of the last this many days
    #: (older days are history, not a broken feed now; pass --dates to audit them).
    volume_recent_days: PositiveDays = 31
    #: How many failing values each finding quotes.
    examples: NonNegativeInt = 5
    #: Rows that fail a row-level critical expectation (a null key, a value outside its set or
    #: range, an unknown customer, an event id with two contents) are set aside in the quarantine
    #: and the rest of the batch goes on, unless more than this share of a batch's rows fail: that
    #: is a broken producer or feed, and the run stops (systemic). 0 turns quarantine off: any
    #: failing row stops the run.
    quarantine_max_share: Share = 0.01
    #: ... but up to this many failing rows of a batch are always set aside, whatever the share (one
    #: bad row in an event-driven batch of nine is a bad row, not a broken feed).
    quarantine_floor_rows: NonNegativeInt = 5


#: Kafka properties that have a typed setting: refused in the ``[kafka]`` pass-through, so that one
#: value has one place (librdkafka name -> setting).
KAFKA_PROPERTIES_WITH_SETTINGS = {
    "bootstrap.servers": "bootstrap_servers", "metadata.broker.list": "bootstrap_servers",
    "security.protocol": "security_protocol", "sasl.mechanism": "sasl_mechanism",
    "sasl.mechanisms": "sasl_mechanism", "sasl.username": "sasl_username", "sasl.password": "sasl_password",
    "ssl.ca.location": "ssl_cafile", "ssl.certificate.location": "ssl_certfile",
    "ssl.key.location": "ssl_keyfile", "group.id": "consumer_group",
    "max.poll.interval.ms": "max_poll_interval_ms", "session.timeout.ms": "session_timeout_ms",
    "message.max.bytes": "max_message_bytes",
}
#: Kafka properties the project's clients set themselves (their delivery and commit guarantees and
#: memory bounds depend on them: streaming/consumer.py ``consumer_config``, the dead-letter and
#: case-event producers): refused in the pass-through rather than silently overridden.
KAFKA_PROPERTIES_SET_BY_CLIENTS = frozenset({
    "client.id", "enable.auto.commit", "enable.auto.offset.store", "auto.offset.reset", "acks",
    "enable.idempotence", "heartbeat.interval.ms", "fetch.max.bytes", "max.partition.fetch.bytes",
    "receive.message.max.bytes", "fetch.wait.max.ms", "queued.max.messages.kbytes", "linger.ms",
    "message.timeout.ms", "logger",
})


def _secret_kafka_property(name: str) -> bool:
    return any(hint in name for hint in ("password", "secret", "token", "key.pem", "oauthbearer.config",
                                         "credential"))


def _kafka_refusal(name: str) -> str | None:
    """Why the Kafka property ``name`` cannot be passed through, or None when it can."""
    if name in KAFKA_PROPERTIES_WITH_SETTINGS:
        return f"has its own setting, set {KAFKA_PROPERTIES_WITH_SETTINGS[name]} instead"
    if name in KAFKA_PROPERTIES_SET_BY_CLIENTS:
        return "is set by Loyalty Monitor's Kafka clients themselves and cannot be passed through"
    return None


class Settings(BaseSettings):
    """Every runtime setting (see the module docstring for where values come from)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter=NESTED_DELIMITER, env_nested_max_split=1,
        env_ignore_empty=True, case_sensitive=False, extra="forbid", frozen=True,
        coerce_numbers_to_str=True, validate_default=False)

    # --- where things live -------------------------------------------------------------------
    data_dir: Path = PROJECT_ROOT / "data"
    #: fsspec URL of the Parquet landing zone; empty means ``<data_dir>/landing``.
    landing_url: str = ""
    #: DuckDB warehouse file; empty means ``<data_dir>/warehouse.duckdb``.
    warehouse_path: str = ""
    scoring_file: Path = PROJECT_ROOT / "config" / "scoring.yml"
    dbt_project_dir: Path = PROJECT_ROOT / "dbt_project"
    #: dbt target in dbt_project/profiles.yml (``duckdb`` embedded default, ``postgres``, ``spark``).
    dbt_target: Literal["duckdb", "postgres", "spark"] = "duckdb"
    #: The PostgreSQL warehouse (``dbt_target = "postgres"``; docs/warehouse.md "Engines"): the dbt
    #: profile, the landing load and the marts readers all connect with these.
    pg_host: str = "localhost"
    pg_port: Port = 5432
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
    customer_batch_rows: NonNegativeInt = 2_000_000
    #: Apache Spark (``dbt_target = "spark"``; docs/warehouse.md "Engines"). ``session`` runs Spark
    #: in this process in local mode (tests, the embedded run: the metastore and the tables live in
    #: ``spark_dir``); ``thrift`` and ``http`` reach a Spark Thrift server or Databricks at
    #: ``spark_host``/``spark_port`` (``spark_token``, ``spark_cluster``/``spark_endpoint`` for http).
    spark_method: Literal["session", "thrift", "http"] = "session"
    spark_master: str = "local[2]"
    spark_driver_memory: str = "2g"
    spark_shuffle_partitions: PositiveInt = 4
    #: dbt threads on Spark: how many models and tests dbt sends at once. Each statement costs
    #: Spark a job's planning and scheduling, so a few at a time keep a cluster (or local mode's
    #: cores) busy between them.
    spark_threads: PositiveInt = 1
    #: metastore and table files of the session method; empty means ``<data_dir>/spark``
    spark_dir: str = ""
    spark_host: str = "localhost"
    spark_port: Port = 10000
    spark_user: str = ""
    spark_token: Secret = Secret()
    spark_cluster: str = ""
    spark_endpoint: str = ""

    # --- Kafka -------------------------------------------------------------------------------
    #: Comma-separated host:port list. Empty means: the embedded broker's address if it runs
    #: (recorded by ``loyalty broker start``), else ``127.0.0.1:<broker_port>`` (9092 when 0).
    bootstrap_servers: str = ""
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str = ""  # PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
    sasl_username: str = ""
    sasl_password: Secret = Secret()
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    #: Any other Kafka client property, passed through to every confluent-kafka (librdkafka)
    #: client: the landing consumer, its dead-letter producer, the case-event producer, the broker
    #: probe and the Airflow asset watcher. In librdkafka spelling: ``[kafka]`` table in
    #: loyalty.toml (``"socket.keepalive.enable" = true``) or ``LOYALTY_KAFKA__CLIENT__RACK=eu-1a``
    #: (dots as ``__``). Refused: properties that have a setting above (use the setting) and those
    #: the clients set themselves (KAFKA_PROPERTIES_SET_BY_CLIENTS). kafka-python clients (``loyalty
    #: produce``, dead-letter tools, topic admin) get only the typed connection settings.
    kafka: dict[str, Union[StrictBool, int, float, str, Secret]] = Field(default_factory=dict)

    topic_touchpoints: str = "touchpoints"
    topic_customers: str = "customers"
    topic_dead_letter: str = "loyalty.dead-letter"
    topic_batches: str = "loyalty.batches-landed"
    #: Contract 1.2: what account managers do with churn-risk cases (acknowledge, snooze, close, feedback).
    topic_case_events: str = "case-events"
    partitions_touchpoints: PositiveInt = 6
    partitions_customers: PositiveInt = 3
    partitions_case_events: PositiveInt = 3
    consumer_group: str = "loyalty-landing"

    # --- consumer ----------------------------------------------------------------------------
    batch_max_records: PositiveInt = 20_000
    #: A batch is also flushed once its messages add up to this many bytes: memory is bounded by
    #: bytes, not only by count (300 one-MiB events made a 1 GB batch).
    batch_max_bytes: PositiveInt = 64 * 1024 * 1024
    batch_max_wait_s: Seconds = 2.0
    max_message_bytes: PositiveInt = 1_048_576
    #: The contract's accepted instants: not before this date (UTC) and not later than the
    #: receiver's clock plus this skew. Anything outside is dead-lettered as ``bad_timestamp``.
    earliest_event_date: str = "2000-01-01"
    max_clock_skew_hours: Annotated[float, Field(ge=0, le=YEAR_DAYS * 24, allow_inf_nan=False)] = 24.0
    #: Kept short: a group's first join waits for the rebalance timeout (see README).
    max_poll_interval_ms: KafkaMillis = 10_000
    session_timeout_ms: KafkaMillis = 10_000
    metrics_port: Port = 0  # 0 = no HTTP metrics endpoint; metrics are still written to data_dir
    #: Where the endpoint listens: this machine only by default; ``0.0.0.0`` in a container, so that
    #: a Prometheus on the same network can scrape it (compose publishes no port for it).
    metrics_host: str = "127.0.0.1"

    # --- logging (loyalty_core/logs.py) ----------------------------------------------------
    #: How log lines look: ``console`` (aligned, coloured on a terminal), ``json`` (one object per
    #: line, for log collectors), ``auto`` = console when stderr is a terminal, JSON otherwise.
    log_format: Literal["auto", "console", "json"] = "auto"

    # --- embedded broker ---------------------------------------------------------------------
    broker_port: Port = 0  # 0 = pick a free port

    # --- alert delivery (secrets only from env or a private config file) ---------------------
    alert_channels: str = "file"  # comma-separated: file, smtp, slack, webhook
    smtp_host: str = "localhost"
    smtp_port: Port = 25
    smtp_username: str = ""
    smtp_password: Secret = Secret()
    smtp_starttls: bool = False
    smtp_from: str = "loyalty-monitor@localhost"
    slack_webhook_url: Secret = Secret()
    webhook_url: Secret = Secret()
    #: Who hears about failed runs and failed quality gates (comma-separated e-mail addresses).
    data_engineer_emails: str = "data-engineers@localhost"
    #: Delivery attempts per alert and channel within one dispatch; waits double from the first.
    alert_max_attempts: PositiveInt = 3
    alert_backoff_s: Seconds = 2.0
    #: Overall deadline of one delivery attempt (connect, TLS, send, answer), not only a socket
    #: timeout: a server that drips one byte at a time cannot hold dispatch longer than this.
    alert_timeout_s: PositiveSeconds = 10.0
    #: A channel that fails this many attempts in a row is paused for the rest of the dispatch
    #: run; its remaining messages stay pending for the next run (0 = never pause).
    alert_channel_failure_limit: NonNegativeInt = 3
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
    asset_watcher_poll_timeout_s: Seconds = 1.0
    asset_watcher_poll_interval_s: Seconds = 1.0
    #: Retries of a failed pipeline task; the wait starts at task_retry_delay_s and doubles.
    task_retries: NonNegativeInt = 2
    task_retry_delay_s: Seconds = 60.0
    #: The longest wait between two retries of a task (the doubling stops here).
    task_max_retry_delay_s: Seconds = 1800.0
    #: When the daily pipeline runs without new data (cron, UTC): it also runs as soon as a
    #: batch lands (the batches-landed asset). The weekly report DAG: Mondays 06:00 UTC by
    #: default, for the week that just ended. Read when the DAG files are parsed.
    pipeline_schedule: str = "0 0 * * *"
    weekly_report_schedule: str = "0 6 * * 1"
    #: Deadline of one pipeline task (Airflow execution_timeout) and of a whole run (dagrun_timeout):
    #: a hung server or a lock never holds the pipeline for ever.
    task_timeout_s: PositiveSeconds = 3600.0
    dagrun_timeout_s: PositiveSeconds = 21600.0
    #: How long a pipeline run (or a quality gate) waits for another one on the same data
    #: directory to finish before it gives up with a message naming the holder.
    lock_timeout_s: Seconds = 900.0

    # --- the account managers' web app (docs/web.md) -----------------------------------------
    #: ``loyalty web`` listens here: this machine only unless told otherwise.
    web_host: str = "127.0.0.1"
    web_port: Port = 8050
    #: The address people open (behind a reverse proxy: its public URL); alert messages link to
    #: ``<web_base_url>/cases/<case_id>``. Empty: ``http://<web_host>:<web_port>``.
    web_base_url: str = ""
    #: Comma-separated keys that sign sign-in links and session cookies: links are signed with the
    #: first, any of them is accepted (add a new key first, drop the old one later). Empty: a key
    #: generated once into ``<data_dir>/run/web-signing-key`` (private to its owner). Each key has at
    #: least ``MIN_SIGNING_KEY_BYTES`` (16) bytes: an empty or short one is refused.
    web_signing_keys: Secret = Secret()
    #: How long a sign-in link and a session last.
    web_link_days: Annotated[float, Field(gt=0, le=CENTURY_DAYS, allow_inf_nan=False)] = 14.0
    web_session_hours: Annotated[float, Field(gt=0, le=CENTURY_DAYS * 24, allow_inf_nan=False)] = 12.0
    #: Comma-separated e-mail addresses that see every customer (leadership); the data engineers
    #: (``data_engineer_emails``) do too. Everyone else sees the customers they manage.
    web_leadership_emails: str = ""
    #: Trust the ``X-Forwarded-Email`` header set by an authenticating reverse proxy (OIDC):
    #: only when the app is reachable through that proxy alone.
    web_trust_proxy_header: bool = False


    # --- reporting -----------------------------------------------------------------------------
    #: An alert counts as followed up when a two-way dialogue with the customer happened within
    #: this many days (the leadership report's alert follow-up section).
    report_follow_up_days: PositiveDays = 14

    # --- tables -----------------------------------------------------------------------------------
    #: The quality gate's thresholds (``[quality]``; docs/quality.md "Thresholds").
    quality: QualitySettings = Field(default_factory=QualitySettings)

    _sources: dict[str, str] = PrivateAttr(default_factory=dict)

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: Any, env_settings: Any,
                                   dotenv_settings: Any, file_secret_settings: Any) -> tuple[Any, ...]:
        # Only keyword arguments: load_settings() reads the file and the environment itself, to check
        # names and record sources; Settings() alone is the defaults.
        return (init_settings,)

    @model_validator(mode="after")
    def _topics_differ(self) -> Settings:
        # A dead-letter topic that is an input topic had `consume --until-idle` read its own dead
        # letters and dead-letter them again, for ever; two inputs on one topic land each message
        # as a touchpoint and as a customer record. Every topic setting names a topic of its own.
        clashes = topic_clashes({name: getattr(self, name) for name in type(self).model_fields
                                 if name.startswith(TOPIC_PREFIX)})
        if clashes:
            raise PydanticCustomError("topic_clash", "{text}", {"text": "; ".join(
                _clash_words(names, topic, {}) for topic, names in clashes), "clashes": clashes})
        return self

    @field_validator("data_dir", "scoring_file", "dbt_project_dir", mode="after")
    @classmethod
    def _expand_user(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("data_dir", mode="after")
    @classmethod
    def _a_directory(cls, value: Path) -> Path:
        # checked here, not met as "[Errno 17] File exists" when a command first creates it
        if value.exists() and not value.is_dir():
            raise ValueError("exists and is not a directory: name a directory (one that does not exist yet is "
                             "created)")
        return value

    @field_validator("data_engineer_emails", mode="after")
    @classmethod
    def _engineer_addresses(cls, value: str) -> str:
        # Empty (or only commas and spaces) is allowed: an installation that tells its data engineers
        # through Slack, a webhook or the outbox only (the run then says no one was e-mailed). An entry
        # that is no address is refused: the notice went to nobody while the run said it was sent.
        if not value.replace(",", "").strip():
            return ""
        problem = email_list_problem(value)
        if problem:
            raise ValueError(f"{problem}: the data engineers hear about failed runs and quality gates at these "
                             "addresses, comma-separated (e.g. oncall@example.com), or none (empty)")
        return value

    @field_validator("web_signing_keys", mode="after")
    @classmethod
    def _signing_keys(cls, value: Secret) -> Secret:
        problem = signing_keys_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("earliest_event_date", mode="after")
    @classmethod
    def _iso_date(cls, value: str) -> str:
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError("is not a date (YYYY-MM-DD)") from None
        return value

    @field_validator("landing_url", mode="after")
    @classmethod
    def _landing_filesystem(cls, value: str) -> str:
        # fsspec only when a landing URL is set (the default is the local data directory): an
        # unknown scheme or a missing filesystem package is named with the setting here, not met
        # later as fsspec's bare "Protocol not known" / "Install s3fs" in the consumer or the gate
        import fsspec
        from fsspec.core import split_protocol

        protocol = split_protocol(value)[0] if value else None
        if protocol:
            try:
                fsspec.get_filesystem_class(protocol)
            except ValueError:
                raise ValueError(f"has an unknown scheme {protocol!r}: a directory or an fsspec URL such as "
                                 "s3://bucket/landing") from None
            except ImportError as exc:
                raise ValueError(f"needs a package that is not installed: {exc}") from None
        return value

    @field_validator("alert_channels", mode="after")
    @classmethod
    def _channels(cls, value: str) -> str:
        # checked here, when any command starts, not first by the alert dispatch at the end of a
        # pipeline run (which retried it for minutes as if the channel were down)
        unknown = [n.strip() for n in value.split(",") if n.strip() and n.strip().lower() not in ALERT_CHANNEL_NAMES]
        if unknown:
            raise ValueError(f"has no channel {', '.join(map(repr, unknown))}; the channels are "
                             f"{', '.join(ALERT_CHANNEL_NAMES)} (comma-separated)")
        if not any(n.strip() for n in value.split(",")):
            raise ValueError(f"names no channel; the channels are {', '.join(ALERT_CHANNEL_NAMES)} (comma-separated)")
        return value

    @field_validator("pipeline_schedule", "weekly_report_schedule", mode="after")
    @classmethod
    def _cron(cls, value: str) -> str:
        # croniter (installed with Airflow, which reads these schedules) only when a schedule is set:
        # defaults are not validated, and most commands never set one
        from croniter import croniter

        if not croniter.is_valid(value):
            raise ValueError("is not a cron expression: five fields, minute hour day-of-month month "
                             "day-of-week, in UTC (e.g. '0 0 * * *' daily at midnight)")
        return value

    @field_validator("dbt_target", "spark_method", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("security_protocol", "sasl_mechanism", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("kafka", mode="before")
    @classmethod
    def _kafka_properties(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        out = {}
        for key, item in value.items():
            name = str(key).strip().lower().replace(NESTED_DELIMITER, ".")
            why = _kafka_refusal(name)
            if why:
                raise ValueError(f"{name!r} {why}")
            # ssl.key.password, sasl.oauthbearer.client.secret, ...: held as Secret, masked when shown
            out[name] = Secret(item) if _secret_kafka_property(name) and isinstance(item, str) else item
        return out

    # --- changing and inspecting ----------------------------------------------------------------
    def replace(self, **changes: Any) -> "Settings":
        """A copy with ``changes`` applied and validated again (``model_copy`` would not validate);
        ``quality`` and ``kafka`` may be given as partial dicts, merged into the current tables."""
        unknown = [name for name in changes if name not in type(self).model_fields]
        if unknown:
            raise SettingsError("; ".join(_unknown_message(name, "Settings.replace()", type(self).model_fields)
                                          for name in unknown))
        values = {name: getattr(self, name) for name in type(self).model_fields}
        for name, value in changes.items():
            if name == "quality" and isinstance(value, dict):
                value = {**self.quality.model_dump(), **value}
            elif name == "kafka" and isinstance(value, dict):
                value = {**self.kafka, **value}
            values[name] = value
        origins = {name: "set in code" for name in changes}
        for table in _TABLES:
            if isinstance(changes.get(table), dict):
                origins.update({f"{table}.{_table_key(table, k)}": "set in code" for k in changes[table]})
        return _validated(values, {**self._sources, **origins})

    def __eq__(self, other: object) -> bool:
        # values only, as the former dataclass: where a value came from does not make it differ
        if not isinstance(other, Settings):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in type(self).model_fields)

    __hash__ = None  # type: ignore[assignment]  # holds dicts (kafka), like the former dataclass

    def sources(self) -> dict[str, str]:
        """Where each setting's value came from: ``default``, ``<file path>`` or ``LOYALTY_<NAME>``
        (environment), or ``load_settings(...)``/``set in code``. Table entries appear as
        ``quality.<name>`` and ``kafka.<property>``."""
        out = {name: self._sources.get(name, "default") for name in type(self).model_fields}
        out.update({k: v for k, v in self._sources.items() if "." in k})
        return out

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
        return self.bootstrap_with_source()[0]

    def bootstrap_with_source(self) -> tuple[str, str]:
        """The Kafka bootstrap address every client uses and where it comes from: the setting, else
        the embedded broker's address recorded by ``loyalty broker start``, else ``127.0.0.1:<broker_port>``
        (9092 when 0)."""
        if self.bootstrap_servers:
            return self.bootstrap_servers, self._sources.get("bootstrap_servers", "default")
        try:
            state = json.loads(self.broker_state_file.read_text())
            return state["bootstrap_servers"], f"embedded broker, recorded in {self.broker_state_file}"
        except (OSError, ValueError, KeyError):
            # the port an embedded broker of this configuration would take (named in errors while it is down)
            return f"127.0.0.1:{self.broker_port or 9092}", "default (no embedded broker running)"

    def kafka_client_config(self) -> dict[str, Any]:
        """Connection and security keyword arguments for kafka-python clients. The ``kafka``
        pass-through properties are librdkafka's and are not given to kafka-python clients."""
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
        """The connection settings in librdkafka (confluent-kafka) spelling, plus every ``kafka``
        pass-through property. Callers add their client's own keys (``group.id``, ``client.id``) on top."""
        cfg: dict[str, Any] = {name: reveal(value) if isinstance(value, Secret) else value
                               for name, value in self.kafka.items()}
        cfg.update({
            "bootstrap.servers": self.bootstrap,
            "security.protocol": self.security_protocol.lower(),
        })
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
        return self.model_dump(mode="json")

    def described(self) -> list[dict[str, Any]]:
        """Each effective value (secrets masked) with where it came from, for ``loyalty config``.
        ``bootstrap_servers`` shows the address clients use (the embedded broker's when it runs)."""
        values = self.redacted()
        sources = self.sources()
        rows = []
        for name in type(self).model_fields:
            if name in ("quality", "kafka"):
                for key, value in values[name].items():
                    rows.append({"name": f"{name}.{key}", "value": value,
                                 "source": _source_label(sources.get(f"{name}.{key}", "default"))})
                continue
            value, source = values[name], sources[name]
            if name == "bootstrap_servers":
                value, source = self.bootstrap_with_source()
            rows.append({"name": name, "value": value, "source": _source_label(source)})
        return rows


def _source_label(source: str) -> str:
    if source.startswith(ENV_PREFIX):
        return f"environment {source}"
    if source.startswith(("default", "embedded broker", "load_settings()", "set in code", "environment")):
        return source
    return f"file {source}"


# --- loading ---------------------------------------------------------------------------------------

def config_path() -> Path:
    """The settings file: ``$LOYALTY_CONFIG``, else ``loyalty.toml`` in the working directory."""
    return Path(os.environ.get(ENV_PREFIX + "CONFIG") or "loyalty.toml")


def load_settings(**overrides: Any) -> Settings:
    """Build Settings from defaults, the TOML file, ``LOYALTY_*`` variables and ``overrides``
    (``None`` overrides are ignored). Raises :class:`SettingsError` naming every unknown key or
    invalid value and its source."""
    fields = Settings.model_fields
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    problems: list[str] = []

    path = config_path()
    if path.is_file():
        shown = str(path.resolve())
        try:
            data = TomlConfigSettingsSource(Settings, toml_file=path).toml_data
        except ValueError as exc:  # tomllib.TOMLDecodeError
            raise SettingsError(f"{shown}: not valid TOML: {exc}") from exc
        for key, raw in data.items():
            if key not in fields:
                problems.append(_unknown_message(key, shown, fields))
                continue
            values[key] = raw
            origins[key] = shown
            if key in _TABLES and isinstance(raw, dict):
                problems += _check_table(key, raw, shown)
                origins.update({f"{key}.{_table_key(key, k)}": shown for k in raw})
    elif ENV_PREFIX + "CONFIG" in os.environ and os.environ[ENV_PREFIX + "CONFIG"]:
        raise SettingsError(f"LOYALTY_CONFIG (environment): no settings file at {path}")

    problems += _check_environment(fields)
    env = EnvSettingsSource(Settings)()
    for key, raw in env.items():
        variable = ENV_PREFIX + key.upper()
        if key in _TABLES and isinstance(raw, dict):
            problems += [problem.replace(f"{key}.{_table_key(key, k)} ", f"{variable}{NESTED_DELIMITER}{k.upper()} ", 1)
                         for k in raw for problem in _check_table(key, {k: raw[k]}, "environment")]
            current = values.get(key)
            values[key] = {**(current if isinstance(current, dict) else {}), **raw}
            for k in raw:
                origins[f"{key}.{_table_key(key, k)}"] = f"{variable}{NESTED_DELIMITER}{k.upper()}"
            origins.setdefault(key, "environment")
        else:
            values[key] = raw
            origins[key] = variable
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in fields:
            problems.append(_unknown_message(key, "load_settings()", fields))
            continue
        values[key] = value
        origins[key] = "load_settings()"
    if problems:
        raise SettingsError("; ".join(problems))
    return _validated(values, origins)


_TABLES = {"quality": QualitySettings.model_fields, "kafka": None}

#: The settings that name Kafka topics: each must name a different one (Settings._topics_differ).
TOPIC_PREFIX = "topic_"


def topic_clashes(topics: dict[str, str]) -> list[tuple[str, list[str]]]:
    """(topic, the settings naming it) for every topic that more than one of ``topics`` (setting ->
    topic name) names."""
    named: dict[str, list[str]] = {}
    for name, topic in topics.items():
        named.setdefault(topic, []).append(name)
    return [(topic, names) for topic, names in named.items() if len(names) > 1]


def _clash_words(names: list[str], topic: str, origins: dict[str, str]) -> str:
    """Settings naming one topic, as the error says it: which, where from, and what to do."""
    labels = [_label(name, origins) for name in names]
    two = len(labels) == 2
    return (f"{', '.join(labels[:-1])} and {labels[-1]} {'both' if two else 'all'} name the topic {topic!r}: the "
            "topic settings must differ, each topic has one purpose (an input read by the consumer, its dead "
            "letters, the landed-batch signal, the case events); give "
            f"{'one of them' if two else 'all but one of them'} another name")


def _table_key(table: str, key: str) -> str:
    return key.lower().replace(NESTED_DELIMITER, ".") if table == "kafka" else key


def _check_table(table: str, raw: dict[str, Any], where: str) -> list[str]:
    known = _TABLES[table]
    if known is None:  # kafka: any property, but not one that has a setting of its own
        problems = []
        for key in raw:
            name = _table_key(table, key)
            why = _kafka_refusal(name)
            if why:
                problems.append(f"{table}.{name} ({_where(where)}): {why}")
        return problems
    return [_unknown_message(f"{table}.{key}", where, {f"{table}.{k}" for k in known})
            for key in raw if key not in known]


def _check_environment(fields: Any) -> list[str]:
    problems = []
    names = {ENV_PREFIX + name.upper() for name in fields}
    quality = {f"{ENV_PREFIX}QUALITY{NESTED_DELIMITER}{name.upper()}" for name in QualitySettings.model_fields}
    kafka = f"{ENV_PREFIX}KAFKA{NESTED_DELIMITER}"
    for variable in os.environ:
        upper = variable.upper()
        if not upper.startswith(ENV_PREFIX) or upper in names or upper in OTHER_ENV_VARS or upper in quality:
            continue
        if upper.startswith(kafka) and len(upper) > len(kafka):
            continue
        problems.append(_unknown_message(variable, "environment", names | quality | set(OTHER_ENV_VARS)))
    return problems


def _unknown_message(key: str, where: str, known: Any) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    if not close and where == "environment":
        close = [n for n in difflib.get_close_matches(key.upper(), list(known), n=1, cutoff=0.6)]
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{key} ({_where(where)}): unknown setting{hint}"


def _where(where: str) -> str:
    return where if where in ("environment", "load_settings()", "Settings.replace()") else f"in {where}"


_MESSAGES = {
    "int_parsing": "is not an integer", "int_from_float": "is not an integer", "int_type": "is not an integer",
    "float_parsing": "is not a number", "float_type": "is not a number",
    "bool_parsing": "is not a boolean (true/false, yes/no, on/off, 1/0)", "bool_type": "is not a boolean",
    "string_type": "is not a string", "dict_type": "is not a table", "model_type": "is not a table",
    "extra_forbidden": "unknown setting",
}


def _validated(values: dict[str, Any], origins: dict[str, str]) -> Settings:
    try:
        settings = Settings(**values)
    except ValidationError as exc:
        raise SettingsError("; ".join(_describe(error, origins) for error in exc.errors())) from None
    settings._sources = dict(origins)
    return settings


def _label(name: str, origins: dict[str, str]) -> str:
    """A setting as a message names it: its variable, or its name and where its value came from."""
    source = origins.get(name) or origins.get(name.split(".")[0], "default")
    if source.startswith(ENV_PREFIX):
        return f"{source} (environment)"
    if source in ("load_settings()", "set in code", "default", "environment"):
        return f"{name} ({source})"
    return f"{name} (in {source})"


def _bound_words(name: str, bound: Any) -> str:
    """`` hours (a year)`` after the upper bound of a duration setting; empty for other settings."""
    unit = next((u for u in _UNITS if name.endswith(u)), None)
    if unit is None:
        return ""
    word, days_each = _UNITS[unit]
    years = round(float(bound) * days_each / YEAR_DAYS)
    return f" {word} ({ {1: 'a year', 100: 'a hundred years'}.get(years, f'{years} years') })"


def _describe(error: Any, origins: dict[str, str]) -> str:
    loc = [str(part) for part in error.get("loc", ())]
    name = ".".join(loc[:2]) if loc and loc[0] in _TABLES else (loc[0] if loc else "settings")
    kind = error.get("type", "")
    if kind == "topic_clash":
        return "; ".join(_clash_words(names, topic, origins) for topic, names in error["ctx"]["clashes"])
    label = _label(name, origins)
    what = _MESSAGES.get(kind)
    if what is None:
        what = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        what = what[:1].lower() + what[1:]
        what = what.replace("input should be", "must be", 1)  # pydantic's words for a bound or a choice
    if kind == "less_than_equal":
        what += _bound_words(name, error["ctx"]["le"])
    value = error.get("input")
    shown = "" if kind == "extra_forbidden" or isinstance(value, (dict, Secret)) or _secret_name(name) \
        else f"{value!r} "
    return f"{label}: {shown}{what}"


def _secret_name(name: str) -> bool:
    field = Settings.model_fields.get(name.split(".")[0])
    return bool(field and field.annotation in (Secret, "Secret")) or any(
        hint in name.lower() for hint in ("password", "secret", "token", "key"))
