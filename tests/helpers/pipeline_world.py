"""The environment of an end-to-end pipeline test: a run of `loyalty ...` subprocesses and
in-process DAG runs on the session's broker, with topics, consumer group and data directory of
its own (tests/dags/test_dags_pipeline.py, tests/test_faults.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loyalty_core.settings import Settings, load_settings
from loyalty_monitor import pipeline
from streaming.topics import ensure_topics


def loyalty(env: dict[str, str], *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the `loyalty` CLI of this venv; with ``check``, fail the test with its output."""
    proc = subprocess.run([str(Path(sys.executable).parent / "loyalty"), *args], env=env, capture_output=True,
                          text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, f"loyalty {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def enter(mp: pytest.MonkeyPatch, broker, data_dir: Path, scoring: Path, suffix: str,
          **variables: str) -> tuple[Settings, dict[str, str]]:
    """Set this test's LOYALTY_* variables (topics and group named by ``suffix``, no task retries,
    short alert back-off; ``variables`` add or override) and the asset watcher's Kafka connection,
    create the topics, and return the settings and the environment for `loyalty` subprocesses."""
    env = {
        "LOYALTY_DATA_DIR": str(data_dir), "LOYALTY_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "LOYALTY_TOPIC_TOUCHPOINTS": f"touchpoints-{suffix}", "LOYALTY_TOPIC_CUSTOMERS": f"customers-{suffix}",
        "LOYALTY_TOPIC_DEAD_LETTER": f"dead-letter-{suffix}", "LOYALTY_TOPIC_BATCHES": f"batches-{suffix}",
        "LOYALTY_TOPIC_CASE_EVENTS": f"case-events-{suffix}",
        "LOYALTY_CONSUMER_GROUP": f"landing-{suffix}", "LOYALTY_SCORING_FILE": str(scoring),
        "LOYALTY_ALERT_BACKOFF_S": "0.05", "LOYALTY_TASK_RETRIES": "0", **variables,
    }
    for key, value in env.items():
        mp.setenv(key, value)
    settings = load_settings()
    mp.setenv(f"AIRFLOW_CONN_{pipeline.KAFKA_CONNECTION_ID.upper()}", json.dumps(pipeline.kafka_connection(settings)))
    ensure_topics(settings)
    return settings, dict(os.environ)
