"""Shared fixtures. Area-specific fixtures live in the area's own test modules.

``tests/`` mirrors the packages (``tests/streaming/`` tests ``streaming/``, ...); the real servers,
clusters and data builders several areas share are modules in ``tests/helpers/``, imported by name.

Every test runs against real parts: a real Tansu broker process, real files, real dbt/GX/Airflow.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from loyalty_core.settings import Settings, load_settings
from loyalty_monitor.broker import EmbeddedBroker

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
sys.path.insert(0, str(Path(__file__).resolve().parent / "helpers"))  # the shared helpers, by module name

# pytest-xdist's workers run under `python -c` (execnet), whose __main__ has neither __spec__ nor
# __file__: pyspark.sql.connect, imported by Great Expectations, then takes itself for a doctest run
# without its test dependencies and calls sys.exit(0). A worker's main module names an empty file
# instead (a real one: process pools started with spawn run the main module again in each child).
_main = sys.modules["__main__"]
if getattr(_main, "__spec__", None) is None and not hasattr(_main, "__file__"):
    _main.__file__ = str(Path(__file__).resolve().parent / "helpers" / "worker_main.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files with a test marked `slow` first (the parity module, the DAG runs, the demo: minutes
    each), then the rest in the usual order. pytest-xdist gives each worker whole files in collection
    order (--dist loadfile with the Makefile's --no-loadscope-reorder; by default it sorts files by
    their number of tests, which put the one-test demo last), so a long file does not start when
    the other worker has nothing left to do."""
    slow = {item.nodeid.split("::", 1)[0] for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.nodeid.split("::", 1)[0] not in slow)  # stable: files stay whole


@pytest.fixture(scope="module", autouse=True)
def _restore_environment():
    """Put os.environ back after each test module: in-process pipeline runs export Airflow and
    dbt variables (AIRFLOW_HOME, LOYALTY_WAREHOUSE_PATH, ...) that must not leak into the next module."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def broker() -> EmbeddedBroker:
    """One real Tansu broker for the session (topics are created per test settings)."""
    with EmbeddedBroker(create_topics=False) as running:
        yield running


@pytest.fixture()
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated data directory; also exported so subprocesses (the CLI) use it."""
    path = tmp_path / "data"
    path.mkdir()
    monkeypatch.setenv("LOYALTY_DATA_DIR", str(path))
    return path


@pytest.fixture()
def settings(data_dir: Path, broker: EmbeddedBroker, monkeypatch: pytest.MonkeyPatch,
             request: pytest.FixtureRequest) -> Settings:
    """Settings on the session broker with topic names unique to this test, topics created."""
    from streaming.topics import ensure_topics

    suffix = f"{abs(hash(request.node.nodeid)) % 10**8}"
    env = {
        "LOYALTY_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "LOYALTY_TOPIC_TOUCHPOINTS": f"touchpoints-{suffix}",
        "LOYALTY_TOPIC_CUSTOMERS": f"customers-{suffix}",
        "LOYALTY_TOPIC_CASE_EVENTS": f"case-events-{suffix}",
        "LOYALTY_TOPIC_DEAD_LETTER": f"dead-letter-{suffix}",
        "LOYALTY_TOPIC_BATCHES": f"batches-{suffix}",
        "LOYALTY_CONSUMER_GROUP": f"landing-{suffix}",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    current = load_settings()
    ensure_topics(current)
    return current


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
