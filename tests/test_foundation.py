"""The foundation: settings precedence, the embedded broker CLI, and the direction of dependencies."""

from __future__ import annotations

import ast
import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loyalty_core.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def clean_env(monkeypatch):
    """No ambient LOYALTY_* variables: these tests set exactly what they check."""
    for key in list(os.environ):
        if key.startswith("LOYALTY_"):
            monkeypatch.delenv(key)
    return monkeypatch


def test_settings_precedence_defaults_file_env_overrides(tmp_path, clean_env):
    monkeypatch = clean_env
    config = tmp_path / "loyalty.toml"
    config.write_text('topic_touchpoints = "from-file"\nbatch_max_records = 7\nsasl_password = "s3cret"\n')
    monkeypatch.setenv("LOYALTY_CONFIG", str(config))
    monkeypatch.setenv("LOYALTY_BATCH_MAX_RECORDS", "11")
    monkeypatch.setenv("LOYALTY_SMTP_STARTTLS", "yes")
    settings = load_settings(consumer_group="from-override")
    assert settings.topic_touchpoints == "from-file"          # file beats default
    assert settings.batch_max_records == 11                   # env beats file, coerced to int
    assert settings.smtp_starttls is True
    assert settings.consumer_group == "from-override"         # explicit override beats env
    assert settings.redacted()["sasl_password"] == "***"      # secrets never printed
    assert load_settings(data_dir=str(tmp_path)).warehouse == tmp_path / "warehouse.duckdb"
    # issue 14: an unknown key is an error (it used to be kept in ``extra``, printed in clear)
    config.write_text(config.read_text() + 'custom_key = "kept"\n')
    with pytest.raises(SettingsError, match="custom_key"):
        load_settings()


def test_kafka_security_settings_pass_through(clean_env):
    monkeypatch = clean_env
    monkeypatch.setenv("LOYALTY_BOOTSTRAP_SERVERS", "k1:9093,k2:9093")
    monkeypatch.setenv("LOYALTY_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("LOYALTY_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("LOYALTY_SASL_USERNAME", "svc")
    monkeypatch.setenv("LOYALTY_SASL_PASSWORD", "pw")
    monkeypatch.setenv("LOYALTY_SSL_CAFILE", "/etc/ca.pem")
    cfg = load_settings().kafka_client_config()
    assert cfg["bootstrap_servers"] == ["k1:9093", "k2:9093"]
    assert cfg["security_protocol"] == "SASL_SSL"
    assert cfg["sasl_mechanism"] == "SCRAM-SHA-512"
    assert cfg["sasl_plain_username"] == "svc" and cfg["sasl_plain_password"] == "pw"
    assert cfg["ssl_cafile"] == "/etc/ca.pem"
    rd = load_settings().confluent_client_config()
    assert rd["bootstrap.servers"] == "k1:9093,k2:9093" and rd["security.protocol"] == "sasl_ssl"


def _loyalty(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "loyalty_monitor.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_broker_cli_start_status_stop(tmp_path):
    env = {**os.environ, "LOYALTY_DATA_DIR": str(tmp_path)}
    started = _loyalty("broker", "start", env=env)
    try:
        assert started.returncode == 0, started.stderr
        assert "in-memory" in started.stdout
        # waiting for the new broker logs nothing: no client's "Connection failed ... ECONNREFUSED"
        assert "ECONNREFUSED" not in started.stderr and '"level": "error"' not in started.stderr, started.stderr
        status = _loyalty("broker", "status", env=env)
        assert status.returncode == 0, status.stderr
        assert '"running": true' in status.stdout
        for topic in ("touchpoints", "customers", "loyalty.dead-letter", "loyalty.batches-landed"):
            assert topic in status.stdout
        again = _loyalty("broker", "start", env=env)          # idempotent: reuses the running one
        assert again.returncode == 0 and started.stdout.split("pid ")[1] == again.stdout.split("pid ")[1]
    finally:
        stopped = _loyalty("broker", "stop", env=env)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    after = _loyalty("broker", "status", env=env)
    assert after.returncode == 1 and '"running": false' in after.stdout


def test_broker_start_on_a_port_another_process_holds_is_refused_not_recorded_as_running(tmp_path):
    """User trial: with an untracked broker on LOYALTY_BROKER_PORT, `broker start` reported a pid that
    had died at once (AddrInUse in its log: the ready check was answered by the other one), and
    `broker stop` then said none was running."""
    import socket

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    env = {**os.environ, "LOYALTY_DATA_DIR": str(tmp_path), "LOYALTY_BROKER_PORT": str(port)}
    try:
        refused = _loyalty("broker", "start", env=env)
    finally:
        holder.close()
    assert refused.returncode == 1, refused.stdout
    assert f"port {port} (LOYALTY_BROKER_PORT) is already taken by a process this data directory did not start" in (
        refused.stderr), refused.stderr
    assert _loyalty("broker", "status", env=env).returncode == 1  # nothing recorded as running


def test_the_embedded_broker_removes_its_log_after_a_clean_stop_and_keeps_it_when_it_did_not_start(
        tmp_path, monkeypatch):
    """A real Tansu each time: stopped by its ``with``, nothing of it stays (no process, no tansu-*
    directory); when starting fails (here: topics it cannot create), it is stopped too, and its log,
    the only account of why, is kept."""
    from loyalty_monitor import broker as broker_module

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(broker_module.tempfile, "tempdir", None)  # TMPDIR read again
    with broker_module.EmbeddedBroker(create_topics=False) as running:
        proc, log_dir = running.proc, running.log_dir
        assert proc.poll() is None and (log_dir / "broker.log").exists()
    assert proc.poll() is not None and not log_dir.exists() and list(tmp_path.iterdir()) == []

    def refuse(*_args, **_kwargs):
        raise broker_module.BrokerError("cannot create the topics")

    monkeypatch.setattr(broker_module, "ensure_topics", refuse)
    failing = broker_module.EmbeddedBroker(load_settings(data_dir=tmp_path / "data"), create_topics=True)
    with pytest.raises(broker_module.BrokerError):
        failing.__enter__()
    assert failing.proc.poll() is not None, "a broker that failed to start must not run on"
    assert (failing.log_dir / "broker.log").exists()


def test_what_the_cli_writes_is_readable_by_its_owner_only(tmp_path):
    data = tmp_path / "data"
    env = {**os.environ, "LOYALTY_DATA_DIR": str(data)}
    result = _loyalty("generate", "--customers", "5", "--start", "2026-01-01", "--end", "2026-01-31", env=env)
    assert result.returncode == 0, result.stderr
    written = [data, *data.rglob("*")]
    assert len(written) >= 4
    assert all(path.stat().st_mode & 0o077 == 0 for path in written), \
        [(str(p), oct(p.stat().st_mode)) for p in written if p.stat().st_mode & 0o077]


def test_cli_reports_errors_in_one_line(tmp_path):
    env = {**os.environ, "LOYALTY_DATA_DIR": str(tmp_path), "LOYALTY_BATCH_MAX_RECORDS": "many"}
    result = _loyalty("config", env=env)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr


# --- architecture: dependencies point one way --------------------------------------------------
def _project_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


LIBRARY_FILES = [p for folder in ("loyalty_monitor", "streaming", "expectations")
                 for p in (ROOT / folder).rglob("*.py")
                 if "cli" not in p.relative_to(ROOT).parts and not any(part.startswith(".") for part in p.parts)]


@pytest.mark.parametrize("path", LIBRARY_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_library_module_imports_a_face(path):
    bad = {name for name in _project_imports(path)
           if name.startswith(("loyalty_monitor.cli", "dags")) or name == "dags"}
    assert not bad, f"{path.relative_to(ROOT)} imports a face (CLI or DAG file): {bad}"


@pytest.mark.parametrize("module", ["loyalty_core/settings.py", "loyalty_core/contract/__init__.py"])
def test_bottom_layer_imports_nothing_of_the_project(module):
    names = _project_imports(ROOT / module)
    assert not {n for n in names if n.split(".")[0] in {"loyalty_monitor", "streaming", "expectations", "dags"}}


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make demo" in readme
    assert "make test" in ci.splitlines()[-1]


def test_a_second_pipeline_run_waits_then_fails_naming_the_one_that_runs(tmp_path):
    """Two `loyalty run` at once (same or different dates) must not write the same warehouse: the
    second waits for the pipeline lock and, past its deadline, fails with one line naming the
    holder; nothing of it ran. The lock dies with its holder."""
    from loyalty_core.locks import LockTimeout
    from loyalty_monitor import stack

    settings = load_settings(data_dir=tmp_path, lock_timeout_s=1.0)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from loyalty_core.locks import exclusive\n"
        f"with exclusive(Path({str(tmp_path / 'pipeline.lock')!r}), 'the pipeline', 5):\n"
        "    print('holding', flush=True); time.sleep(30)")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        started = time.monotonic()
        with pytest.raises(LockTimeout, match=rf"the pipeline is busy: held by pid {holder.pid} since"):
            stack.run_dates(settings, [dt.date(2026, 3, 12)], progress=lambda _: None)
        assert 0.9 <= time.monotonic() - started < 10
        assert not (tmp_path / "airflow").exists()  # nothing of the second run started
    finally:
        holder.kill()
        holder.wait()
    from loyalty_core.locks import exclusive  # the kernel released the killed holder's lock
    with exclusive(tmp_path / "pipeline.lock", "the pipeline", 2):
        pass
