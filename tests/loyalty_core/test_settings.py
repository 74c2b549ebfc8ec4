"""The typed settings model (issue 14): unknown keys rejected with a "did you mean", errors that name
the setting and its source, secrets never shown, ``loyalty config`` showing where each value came
from, Kafka client properties passed through, and ``Settings.replace`` validating again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loyalty_core.settings import OTHER_ENV_VARS, PROJECT_ROOT, Secret, Settings, SettingsError, load_settings, reveal

SECRET = "hunter2-do-not-print"


@pytest.fixture()
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No ambient LOYALTY_* variables and no loyalty.toml in the working directory."""
    for key in list(os.environ):
        if key.startswith("LOYALTY_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def config_file(tmp_path: Path, env: pytest.MonkeyPatch, text: str) -> Path:
    path = tmp_path / "loyalty.toml"
    path.write_text(text)
    env.setenv("LOYALTY_CONFIG", str(path))
    return path


# --- unknown keys -------------------------------------------------------------------------------

def test_unknown_key_in_the_file_names_the_file_and_the_closest_setting(tmp_path, env):
    path = config_file(tmp_path, env, f'alert_chanels = "smtp"\nsmtp_password = "{SECRET}"\n')
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "alert_chanels" in message and str(path.resolve()) in message
    assert "did you mean 'alert_channels'?" in message
    assert SECRET not in message


def test_unknown_key_in_a_table_of_the_file(tmp_path, env):
    config_file(tmp_path, env, "[quality]\nfeed_stale_day = 4\n")
    with pytest.raises(SettingsError, match=r"quality\.feed_stale_day .*did you mean 'quality\.feed_stale_days'"):
        load_settings()


def test_unknown_environment_variable_is_rejected_with_a_did_you_mean(env):
    env.setenv("LOYALTY_SMTP_PASWORD", SECRET)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "LOYALTY_SMTP_PASWORD (environment)" in message
    assert "did you mean 'LOYALTY_SMTP_PASSWORD'?" in message
    assert SECRET not in message


def test_unknown_nested_environment_variable_is_rejected(env):
    env.setenv("LOYALTY_QUALITY__FEED_STAL_DAYS", "4")
    with pytest.raises(SettingsError, match="did you mean 'LOYALTY_QUALITY__FEED_STALE_DAYS'"):
        load_settings()


def test_variables_the_project_uses_for_other_purposes_are_not_settings_and_not_errors(env):
    for name in OTHER_ENV_VARS:
        if name != "LOYALTY_CONFIG":
            env.setenv(name, "1")
    env.setenv("LOYALTY_QUALITY__FEED_STALE_DAYS", "9")
    settings = load_settings()
    assert settings.quality.feed_stale_days == 9
    assert settings.sources()["quality.feed_stale_days"] == "LOYALTY_QUALITY__FEED_STALE_DAYS"


def test_every_loyalty_variable_in_the_repository_is_a_setting_or_allowed():
    """The allow-list is complete: no LOYALTY_* name the project itself uses can trip the check."""
    import re

    known = {"LOYALTY_" + name.upper() for name in Settings.model_fields} | set(OTHER_ENV_VARS)
    used: set[str] = set()
    for folder in ("loyalty_monitor", "streaming", "expectations", "dags", "dbt_project", "docker", "scripts",
                   "bench", "tests"):
        for path in (PROJECT_ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in {".py", ".sql", ".yml", ".yaml", ".sh", ".toml"} \
                    and path.name != "test_settings.py":  # this file misspells names on purpose
                used |= set(re.findall(r"\bLOYALTY_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(errors="replace")))
    for path in (PROJECT_ROOT / "docker-compose.yml", PROJECT_ROOT / "Makefile", PROJECT_ROOT / ".env.example"):
        if path.exists():
            used |= set(re.findall(r"\bLOYALTY_[A-Z0-9_]*[A-Z0-9]\b", path.read_text()))
    nested = {name for name in used if "__" in name}  # LOYALTY_QUALITY__..., LOYALTY_KAFKA__...
    prefixes = {name for name in used if name in {"LOYALTY_PG", "LOYALTY_SPARK", "LOYALTY_SMTP", "LOYALTY_SSL",
                                                  "LOYALTY_SASL"}}  # prose: "LOYALTY_PG_*"
    assert used - known - nested - prefixes == set()


# --- invalid values -----------------------------------------------------------------------------

def test_a_bad_integer_in_the_environment_names_the_variable(env):
    env.setenv("LOYALTY_SMTP_PORT", "abc")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value) == "LOYALTY_SMTP_PORT (environment): 'abc' is not an integer"


def test_a_bad_value_in_the_file_names_the_setting_and_the_file(tmp_path, env):
    path = config_file(tmp_path, env, 'batch_max_records = "many"\nsmtp_starttls = "maybe"\n')
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert f"batch_max_records (in {path.resolve()}): 'many' is not an integer" in message
    assert f"smtp_starttls (in {path.resolve()}): 'maybe' is not a boolean" in message


@pytest.mark.parametrize("name, value, says", [
    ("LOYALTY_QUALITY__QUARANTINE_MAX_SHARE", "2", "'2' must be less than or equal to 1"),
    ("LOYALTY_QUALITY__UNKNOWN_CUSTOMER_TOLERANCE", "-0.1", "'-0.1' must be greater than or equal to 0"),
    ("LOYALTY_QUALITY__FEED_STALE_DAYS", "-1", "'-1' must be greater than or equal to 0"),
    ("LOYALTY_MAX_CLOCK_SKEW_HOURS", "-3", "'-3' must be greater than or equal to 0"),
    ("LOYALTY_BATCH_MAX_RECORDS", "-5", "'-5' must be greater than 0"),
    ("LOYALTY_BATCH_MAX_WAIT_S", "nan", "'nan' must be a finite number"),
    ("LOYALTY_TASK_TIMEOUT_S", "0", "'0' must be greater than 0"),
    ("LOYALTY_EARLIEST_EVENT_DATE", "yesterday", "'yesterday' is not a date (YYYY-MM-DD)"),
    ("LOYALTY_LOG_FORMAT", "xml", "'xml' must be 'auto', 'console' or 'json'"),
    ("LOYALTY_LANDING_URL", "gcs2://bucket/landing", "'gcs2://bucket/landing' has an unknown scheme 'gcs2': a "
     "directory or an fsspec URL such as s3://bucket/landing"),
    ("LOYALTY_LANDING_URL", "abfs://container/landing", "'abfs://container/landing' needs a package that is not "
     "installed: Install adlfs to access Azure Datalake Gen2 and Azure Blob Storage"),
    ("LOYALTY_PIPELINE_SCHEDULE", "0 0 * *", "'0 0 * *' is not a cron expression: five fields, minute hour "
     "day-of-month month day-of-week, in UTC (e.g. '0 0 * * *' daily at midnight)"),
    # durations have an upper bound: 1e308 hours passed here and overflowed in land-offline's timedelta
    ("LOYALTY_MAX_CLOCK_SKEW_HOURS", "1e308", "'1e308' must be less than or equal to 8760 hours (a year)"),
    ("LOYALTY_QUALITY__CLOCK_SKEW_MINUTES", "1e9", "'1e9' must be less than or equal to 525600 minutes (a year)"),
    ("LOYALTY_QUALITY__MAX_EVENT_AGE_DAYS", "99999999999",
     ("'99999999999' must be less than or equal to 36500 days (a hundred years)")),
    ("LOYALTY_TASK_RETRY_DELAY_S", "1e308",
     ("'1e308' must be less than or equal to 3153600000 seconds (a hundred years)")),
    ("LOYALTY_WEB_SESSION_HOURS", "1e308", "'1e308' must be less than or equal to 876000 hours (a hundred years)"),
    ("LOYALTY_MAX_POLL_INTERVAL_MS", "3000000000", "'3000000000' must be less than or equal to 2147483647"),
])
def test_a_value_out_of_range_names_the_variable_and_what_is_allowed(env, name, value, says):
    # these were taken as they were: a share of 2 let a whole broken feed into the quarantine
    # instead of stopping the run, a negative clock skew dead-lettered every fresh event
    env.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value) == f"{name} (environment): {says}"


def test_a_data_dir_that_exists_and_is_not_a_directory_is_named_when_the_settings_load(env, tmp_path):
    # was "[Errno 17] File exists" from the first command that created a directory in it
    env.setenv("LOYALTY_DATA_DIR", "/dev/null")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value) == ("LOYALTY_DATA_DIR (environment): '/dev/null' exists and is not a directory: name a "
                                 "directory (one that does not exist yet is created)")
    a_file = tmp_path / "data.txt"
    a_file.write_text("")
    with pytest.raises(SettingsError, match="exists and is not a directory"):
        load_settings(data_dir=a_file)
    assert load_settings(data_dir=tmp_path / "not-yet").data_dir == tmp_path / "not-yet"  # created when needed


@pytest.mark.parametrize("value, says", [
    (" , ", ""),  # no address: an installation told through Slack, a webhook or the outbox only
    ("   ", None),  # blank: the variable is ignored, the default stays
    ("", None),
    ("oncall@example.com, nobody", "'oncall@example.com, nobody' has 'nobody', not an e-mail address (name@domain)"),
    ("a@@example.com", "has 'a@@example.com', not an e-mail address"),
    ("@example.com", "has '@example.com', not an e-mail address"),
])
def test_data_engineer_emails_are_addresses_or_none(env, value, says):
    # " , " was taken for an address list: every failure notice then went to nobody while the run said
    # it had been sent; now it is no address (and the run says no one was e-mailed: test_pipeline)
    env.setenv("LOYALTY_DATA_ENGINEER_EMAILS", value)
    if says is None:
        assert load_settings().data_engineer_emails in ("data-engineers@localhost", "")
        return
    if says == "":
        assert load_settings().data_engineer_emails == ""
        return
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(f"LOYALTY_DATA_ENGINEER_EMAILS (environment): {says}" if says.startswith("'")
                              else "LOYALTY_DATA_ENGINEER_EMAILS (environment): "), message
    assert says in message and "comma-separated (e.g. oncall@example.com)" in message
    assert load_settings(data_engineer_emails="oncall@example.com, lead@example.com,").data_engineer_emails


@pytest.mark.parametrize("value, says", [
    (" , ", "names no key (only separators)"),
    ("short", "its key has 5 bytes, fewer than 16"),
    ("a-long-enough-key-0123,short", "its second key has 5 bytes, fewer than 16"),
    (["a-long-enough-key-0123", ""], None),  # an empty list item is no key, the other is fine
])
def test_an_empty_or_short_web_signing_key_is_refused_without_showing_it(env, value, says):
    # an empty key let anyone forge a sign-in link for any address and see every customer
    if says is None:
        assert load_settings(web_signing_keys=value).web_signing_keys
        return
    with pytest.raises(SettingsError) as caught:
        load_settings(web_signing_keys=value)
    message = str(caught.value)
    assert message.startswith(f"web_signing_keys (load_settings()): {says}"), message
    assert "secrets.token_urlsafe(32)" in message and "short'" not in message and "0123" not in message
    env.setenv("LOYALTY_WEB_SIGNING_KEYS", "")  # empty: not set, a key is generated (docs/web.md)
    assert not load_settings().web_signing_keys


def _duration_fields():
    """(model, field name, unit, days per unit) of every duration setting, by its name's unit."""
    from loyalty_core.settings import QualitySettings

    units = {"_s": ("seconds", 1 / 86400), "_minutes": ("minutes", 1 / 1440), "_hours": ("hours", 1 / 24),
             "_days": ("days", 1), "_weeks": ("weeks", 7)}
    for model in (Settings, QualitySettings):
        for name in model.model_fields:
            unit = next((u for u in units if name.endswith(u)), None)
            if unit:
                yield model, name, *units[unit]


@pytest.mark.parametrize("model, name, unit, days_each", list(_duration_fields()),
                         ids=[name for _, name, _, _ in _duration_fields()])
def test_every_duration_has_an_upper_bound_that_time_arithmetic_can_take(model, name, unit, days_each):
    """A duration without an upper bound let 1e308 through to a timedelta far from the setting.
    Each one has a bound, and the longest duration it allows still gives a date either side of now."""
    import datetime as dt

    bounds = [m.le for m in model.model_fields[name].metadata if getattr(m, "le", None) is not None]
    assert bounds, f"{name} has no upper bound"
    span = dt.timedelta(**{unit: bounds[0]})  # no OverflowError
    assert abs(span.total_seconds() / 86400 - bounds[0] * days_each) < 1
    now = dt.datetime.now(dt.UTC)
    assert now - span < now < now + span  # no OverflowError either


def test_land_offline_names_a_clock_skew_too_large_instead_of_overflowing(tmp_path):
    """Tester: LOYALTY_MAX_CLOCK_SKEW_HOURS=1e308 passed `loyalty config`, then `loyalty land-offline`
    failed with "Python int too large to convert to C int". Refused when the settings load, naming
    the variable; the largest skew allowed lands."""
    from streaming import samples

    events = tmp_path / "touchpoints.jsonl"
    events.write_text(json.dumps(samples.touchpoint(1)) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    env.update(PYTHONPATH=str(PROJECT_ROOT), LOYALTY_DATA_DIR=str(tmp_path / "data"))
    cli = [sys.executable, "-m", "loyalty_monitor.cli", "land-offline", "--touchpoints", str(events)]
    refused = subprocess.run(cli, env={**env, "LOYALTY_MAX_CLOCK_SKEW_HOURS": "1e308"}, cwd=tmp_path,
                             capture_output=True, text=True, timeout=120, check=False)
    assert refused.returncode == 1 and refused.stderr == (
        "loyalty land-offline: error: LOYALTY_MAX_CLOCK_SKEW_HOURS (environment): '1e308' must be less than or "
        "equal to 8760 hours (a year)\n"), refused.stderr
    landed = subprocess.run(cli, env={**env, "LOYALTY_MAX_CLOCK_SKEW_HOURS": "8760"}, cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, check=False)
    assert landed.returncode == 0 and "1 landed" in landed.stdout, landed.stderr


# --- topics ----------------------------------------------------------------------------------------

def test_a_dead_letter_topic_that_is_an_input_topic_is_refused_naming_both(env):
    """Tester: LOYALTY_TOPIC_DEAD_LETTER=touchpoints was accepted, and `consume --until-idle` then read
    its own dead letters and dead-lettered them again, for ever."""
    env.setenv("LOYALTY_TOPIC_DEAD_LETTER", "touchpoints")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value) == (
        "topic_touchpoints (default) and LOYALTY_TOPIC_DEAD_LETTER (environment) both name the topic "
        "'touchpoints': the topic settings must differ, each topic has one purpose (an input read by the "
        "consumer, its dead letters, the landed-batch signal, the case events); give one of them another name")


@pytest.mark.parametrize("first, second", [
    ("touchpoints", "customers"), ("customers", "case_events"), ("dead_letter", "batches"),
    ("batches", "touchpoints"), ("case_events", "dead_letter")])
def test_any_two_topic_settings_naming_one_topic_are_refused(tmp_path, env, first, second):
    """Two inputs on one topic landed every message twice, as a touchpoint and as a customer record;
    every topic setting (each field named topic_*) names a topic of its own, wherever it was set."""
    path = config_file(tmp_path, env, f'topic_{first} = "shared"\n')
    env.setenv(f"LOYALTY_TOPIC_{second.upper()}", "shared")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert f"topic_{first} (in {path.resolve()})" in message and f"LOYALTY_TOPIC_{second.upper()} (environment)" \
        in message and "both name the topic 'shared'" in message and "must differ" in message, message


def test_every_topic_setting_is_checked_and_replace_checks_again(env):
    topics = [name for name in Settings.model_fields if name.startswith("topic_")]
    assert {"topic_touchpoints", "topic_customers", "topic_case_events", "topic_dead_letter",
            "topic_batches"} <= set(topics)
    settings = load_settings(**{name: f"t-{i}" for i, name in enumerate(topics)})
    with pytest.raises(SettingsError) as caught:
        settings.replace(**{name: "one" for name in topics})
    assert str(caught.value).startswith(", ".join(f"{name} (set in code)" for name in topics[:-1])
                                        + f" and {topics[-1]} (set in code) all name the topic 'one'")
    with pytest.raises(ValueError, match="both name the topic 'customers'"):
        Settings(topic_batches="customers")  # also without load_settings


def test_a_share_above_one_in_the_file_names_the_table_key_and_the_file(tmp_path, env):
    path = config_file(tmp_path, env, "[quality]\nquarantine_max_share = 1.5\n")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value) == (f"quality.quarantine_max_share (in {path.resolve()}): 1.5 must be less than "
                                 "or equal to 1")


def test_a_bad_secret_value_is_not_quoted(env):
    env.setenv("LOYALTY_SMTP_PASSWORD", SECRET)
    env.setenv("LOYALTY_WEB_PORT", "99999")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "LOYALTY_WEB_PORT (environment)" in str(caught.value) and SECRET not in str(caught.value)


def test_the_cli_prints_a_bad_setting_as_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    env.update(LOYALTY_SMTP_PORT="abc", PYTHONPATH=str(PROJECT_ROOT))
    done = subprocess.run([sys.executable, "-m", "loyalty_monitor.cli", "config"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr == "loyalty config: error: LOYALTY_SMTP_PORT (environment): 'abc' is not an integer\n"


# --- loyalty config ------------------------------------------------------------------------------

def test_loyalty_config_shows_sources_and_never_a_secret(tmp_path):
    data_dir = tmp_path / "data"
    (data_dir / "run").mkdir(parents=True)
    # what `loyalty broker start` records: config shows the embedded broker's address, not ""
    (data_dir / "run" / "broker.json").write_text(json.dumps(
        {"pid": 1, "port": 45678, "bootstrap_servers": "127.0.0.1:45678", "log_file": "x", "started_at": 0}))
    path = tmp_path / "private.toml"
    path.write_text(f'smtp_password = "{SECRET}"\nalert_channels = "file,smtp"\n'
                    f'[quality]\nexamples = 7\n[kafka]\n"ssl.key.password" = "{SECRET}-key"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    env.update(LOYALTY_CONFIG=str(path), LOYALTY_DATA_DIR=str(data_dir), LOYALTY_SLACK_WEBHOOK_URL=f"https://x/{SECRET}",
               LOYALTY_SMTP_PORT="2525", PYTHONPATH=str(PROJECT_ROOT))
    run = [sys.executable, "-m", "loyalty_monitor.cli", "config"]
    text = subprocess.run(run, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    as_json = subprocess.run(run + ["--format", "json"], env=env, cwd=tmp_path, capture_output=True, text=True,
                             timeout=120)
    for done in (text, as_json):
        assert done.returncode == 0, done.stderr
        assert SECRET not in done.stdout + done.stderr
    rows = {row["name"]: row for row in json.loads(as_json.stdout)}
    assert rows["smtp_password"] == {"name": "smtp_password", "value": "***", "source": f"file {path.resolve()}"}
    assert rows["slack_webhook_url"]["value"] == "***"
    assert rows["kafka.ssl.key.password"]["value"] == "***"
    assert rows["smtp_port"] == {"name": "smtp_port", "value": 2525, "source": "environment LOYALTY_SMTP_PORT"}
    assert rows["quality.examples"]["value"] == 7 and rows["quality.examples"]["source"] == f"file {path.resolve()}"
    assert rows["quality.feed_stale_days"]["source"] == "default"
    assert rows["topic_touchpoints"] == {"name": "topic_touchpoints", "value": "touchpoints", "source": "default"}
    assert rows["bootstrap_servers"]["value"] == "127.0.0.1:45678"
    assert rows["bootstrap_servers"]["source"].startswith("embedded broker")
    line = next(line for line in text.stdout.splitlines() if line.startswith("smtp_port "))
    assert "2525" in line and "[environment LOYALTY_SMTP_PORT]" in line


# --- Kafka pass-through ----------------------------------------------------------------------------

def test_kafka_properties_pass_through_to_the_confluent_clients(tmp_path, env):
    from loyalty_monitor.pipeline import kafka_connection
    from streaming.consumer import consumer_config

    config_file(tmp_path, env, '[kafka]\n"socket.keepalive.enable" = true\n"statistics.interval.ms" = 5000\n')
    env.setenv("LOYALTY_KAFKA__CLIENT__RACK", "eu-west-1a")
    settings = load_settings()
    assert settings.kafka == {"socket.keepalive.enable": True, "statistics.interval.ms": 5000,
                              "client.rack": "eu-west-1a"}
    assert settings.sources()["kafka.client.rack"] == "LOYALTY_KAFKA__CLIENT__RACK"
    for cfg in (settings.confluent_client_config(), consumer_config(settings), kafka_connection(settings)["extra"]):
        assert cfg["client.rack"] == "eu-west-1a" and cfg["socket.keepalive.enable"] is True
        assert cfg["statistics.interval.ms"] == 5000
    assert "client.rack" not in settings.kafka_client_config()  # kafka-python clients: typed settings only


def test_the_landing_consumer_accepts_the_passed_through_properties(tmp_path, env):
    """librdkafka itself accepts the merged configuration (no broker needed to construct a client)."""
    from confluent_kafka import Consumer

    from streaming.consumer import consumer_config

    env.setenv("LOYALTY_KAFKA__CLIENT__RACK", "eu-west-1a")
    env.setenv("LOYALTY_KAFKA__SOCKET__KEEPALIVE__ENABLE", "true")
    consumer = Consumer(consumer_config(load_settings(bootstrap_servers="127.0.0.1:1")))
    consumer.close()


@pytest.mark.parametrize("variable, wanted", [
    ("LOYALTY_KAFKA__BOOTSTRAP__SERVERS", "set bootstrap_servers instead"),
    ("LOYALTY_KAFKA__GROUP__ID", "set consumer_group instead"),
    ("LOYALTY_KAFKA__ENABLE__AUTO__COMMIT", "set by Loyalty Monitor's Kafka clients themselves"),
])
def test_kafka_properties_with_a_setting_or_set_by_the_clients_are_refused(env, variable, wanted):
    env.setenv(variable, "x")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert variable in str(caught.value) and wanted in str(caught.value)


# --- replace, Secret, defaults ---------------------------------------------------------------------

def test_replace_validates_again_and_keeps_secrets(env):
    settings = load_settings(smtp_password=SECRET)
    changed = settings.replace(smtp_port="2525", quality={"examples": 9})
    assert changed.smtp_port == 2525 and changed.quality.examples == 9
    assert changed.quality.feed_stale_days == settings.quality.feed_stale_days  # a partial table merges
    assert changed.smtp_password.reveal() == SECRET
    assert changed.sources()["smtp_port"] == "set in code"
    assert settings.smtp_port == 25  # frozen: the original is untouched
    with pytest.raises(SettingsError, match=r"smtp_port \(set in code\): 'abc' is not an integer"):
        settings.replace(smtp_port="abc")
    with pytest.raises(SettingsError, match="did you mean 'smtp_port'"):
        settings.replace(smtp_prot=1)
    with pytest.raises(SettingsError, match="quality.examples"):
        settings.replace(quality={"examples": "many"})
    with pytest.raises(Exception):
        settings.smtp_port = 1  # type: ignore[misc]


def test_secrets_are_hidden_everywhere_but_reveal(env):
    settings = load_settings(smtp_password=SECRET, web_signing_keys=["new-key-0123456789", "old-key-0123456789"])
    assert isinstance(settings.smtp_password, Secret)
    assert SECRET not in repr(settings) and SECRET not in str(settings)
    assert SECRET not in json.dumps(settings.redacted()) and SECRET not in settings.model_dump_json()
    assert reveal(settings.smtp_password) == SECRET and settings.smtp_password.reveal() == SECRET
    assert settings.web_signing_keys.reveal() == "new-key-0123456789,old-key-0123456789"
    from pydantic import SecretStr

    assert reveal(SecretStr("x")) == "x" and load_settings(pg_password=SecretStr("pw")).pg_password.reveal() == "pw"


def test_settings_alone_are_the_defaults_and_paths_are_inside_the_project(env):
    env.setenv("LOYALTY_SMTP_PORT", "2525")
    assert Settings().smtp_port == 25  # Settings() reads no source; load_settings() does
    assert load_settings().smtp_port == 2525
    # the documented default: <project root>/data, wherever the command runs
    assert Settings().data_dir == PROJECT_ROOT / "data" and Path.cwd() != PROJECT_ROOT
    env.setenv("LOYALTY_DATA_DIR", "~/loyalty-data")
    assert load_settings().data_dir == Path.home() / "loyalty-data"


def test_a_missing_file_named_by_loyalty_config_is_an_error(tmp_path, env):
    env.setenv("LOYALTY_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(SettingsError, match="LOYALTY_CONFIG"):
        load_settings()


def test_the_shipped_schedules_are_settings(env):
    env.setenv("LOYALTY_PIPELINE_SCHEDULE", "30 1 * * *")
    settings = load_settings()
    assert settings.pipeline_schedule == "30 1 * * *" and settings.weekly_report_schedule == "0 6 * * 1"
    assert settings.report_follow_up_days == 14 and settings.task_max_retry_delay_s == 1800.0


def test_every_variable_the_dbt_project_reads_is_derived_from_the_settings(tmp_path, env):
    """profiles.yml and the models read LOYALTY_* variables; each is exported by warehouse.dbt_env
    from Settings (LOYALTY_AS_OF_DATE by run_dbt from the run's as-of date), so dbt has no setting
    of its own and `loyalty config` shows everything."""
    import re

    from loyalty_monitor import warehouse

    read = set()
    for path in (PROJECT_ROOT / "dbt_project").rglob("*"):
        if path.is_file() and path.suffix in {".yml", ".sql"} and "target" not in path.parts:
            read |= set(re.findall(r"env_var\(\s*['\"](LOYALTY_[A-Z0-9_]+)['\"]", path.read_text()))
    settings = load_settings(data_dir=tmp_path / "data", pg_host="db.example", pg_password=SECRET)
    exported = set(warehouse.dbt_env(settings)) | set(warehouse.spark_env(settings.replace(dbt_target="spark")))
    assert read and read - exported == {"LOYALTY_AS_OF_DATE"}
    pg = warehouse.pg_env(settings)
    assert pg["LOYALTY_PG_HOST"] == "db.example" and pg["LOYALTY_PG_PASSWORD"] == SECRET


def test_without_a_running_embedded_broker_the_address_is_the_port_it_would_take(tmp_path):
    """User trial: with LOYALTY_BROKER_PORT=19392 and the broker stopped, the web app's error named
    127.0.0.1:9092, an address nothing of this configuration uses."""
    on_port = load_settings(data_dir=tmp_path, broker_port=19392)
    assert on_port.bootstrap_with_source() == ("127.0.0.1:19392", "default (no embedded broker running)")
    assert load_settings(data_dir=tmp_path).bootstrap == "127.0.0.1:9092"
