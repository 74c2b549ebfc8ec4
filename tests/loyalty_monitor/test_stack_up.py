"""``loyalty up``: the Airflow UI listens on this machine only unless told otherwise, and its admin
password is in a private file, never in a log.

Starting the whole stack (broker, consumer, airflow standalone) takes minutes; these tests build the
same environment ``up`` starts Airflow with, and ask the installed Airflow itself what it makes of it.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

from loyalty_core.settings import load_settings
from loyalty_monitor import stack

AIRFLOW = str(Path(sys.executable).parent / "airflow")


def _airflow_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


def test_up_binds_the_airflow_api_server_to_loopback_unless_told_otherwise(data_dir):
    settings = load_settings(data_dir=data_dir)
    env = stack.standalone_environment(settings, "127.0.0.1:9092", port=8123)
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1" and env["AIRFLOW__API__PORT"] == "8123"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:8123/execution/"
    # the installed Airflow reads the address from this variable (the api-server's --host default)
    asked = subprocess.run([AIRFLOW, "config", "get-value", "api", "host"], env=env, capture_output=True,
                           text=True, timeout=300)
    assert asked.returncode == 0, asked.stderr
    assert asked.stdout.strip() == "127.0.0.1"

    everywhere = stack.standalone_environment(settings, "127.0.0.1:9092", host="0.0.0.0", port=8123)
    assert everywhere["AIRFLOW__API__HOST"] == "0.0.0.0"
    assert everywhere["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:8123/execution/"
    from_settings = load_settings(data_dir=data_dir, airflow_host="10.1.2.3")
    assert stack.standalone_environment(from_settings, "b:1")["AIRFLOW__API__HOST"] == "10.1.2.3"


def test_the_admin_password_file_is_private_and_airflow_does_not_print_the_password(data_dir, monkeypatch):
    # as `loyalty up` starts from a shell: a user-set AIRFLOW_HOME wins, and the test modules that
    # ran before this one set one for their in-process DAG runs
    for name in ("AIRFLOW_HOME", "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(data_dir=data_dir)
    env = stack.standalone_environment(settings, "127.0.0.1:9092")
    path = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    assert path.parent == data_dir / "airflow"
    old_umask = os.umask(0o022)  # even with a permissive umask
    try:
        assert stack.ensure_admin_password(path) == path
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    password = json.loads(path.read_text())["admin"]
    assert len(password) >= 20
    path.chmod(0o644)  # a file left by an older version
    stack.ensure_admin_password(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and json.loads(path.read_text())["admin"] == password

    # What `airflow standalone` does at start: with the file present it neither generates nor
    # prints a password (without it, it prints "Password for user 'admin': ..." into its log).
    shown = _airflow_python(
        "from airflow.cli.commands.standalone_command import StandaloneCommand as S\n"
        "S().find_user_info()\n"
        "from airflow.api_fastapi.app import create_auth_manager\n"
        "create_auth_manager().init()\n", env)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert password not in shown.stdout + shown.stderr
    assert "previously generated" in shown.stdout
    assert json.loads(path.read_text()) == {"admin": password}


def test_up_says_where_the_password_is_without_showing_it(data_dir, monkeypatch):
    """``up`` with the processes it starts replaced: what it prints and where the file is."""
    from loyalty_monitor import broker

    class Running:
        bootstrap_servers, pid = "127.0.0.1:1", 1

    monkeypatch.setattr(broker, "start", lambda settings: Running())
    monkeypatch.setattr(stack, "ensure_migrated", lambda home, env, progress: 0.0)
    started: list[dict] = []
    monkeypatch.setattr(stack, "_start_background",
                        lambda name, argv, env, settings: started.append(env) or (2, Path("x.log"), True))
    lines: list[str] = []
    info = stack.up(load_settings(data_dir=data_dir), port=8124, progress=lines.append)
    password = json.loads(Path(info["password_file"]).read_text())["admin"]
    assert info["ui"] == "http://127.0.0.1:8124" and info["host"] == "127.0.0.1"
    assert all(env["AIRFLOW__API__HOST"] == "127.0.0.1" for env in started)
    assert any(info["password_file"] in line and "readable by you only" in line for line in lines)
    assert not any(password in line for line in lines)


def test_up_starts_the_account_managers_web_app_and_down_stops_it_first(data_dir, monkeypatch):
    """Issue 15: `loyalty up` starts the web app (`loyalty web`) with the consumer and Airflow and
    says where it is; `loyalty down` stops it before the others."""
    from loyalty_monitor import broker

    class Running:
        bootstrap_servers, pid = "127.0.0.1:1", 1

    monkeypatch.setattr(broker, "start", lambda settings: Running())
    monkeypatch.setattr(broker, "stop", lambda settings: True)
    monkeypatch.setattr(stack, "ensure_migrated", lambda home, env, progress: 0.0)
    started: dict[str, list[str]] = {}
    monkeypatch.setattr(stack, "_start_background",
                        lambda name, argv, env, settings: started.update({name: argv}) or (2, Path("x.log"), True))
    stopped: list[str] = []
    monkeypatch.setattr(stack, "_stop_background", lambda name, settings: stopped.append(name) or True)
    settings = load_settings(data_dir=data_dir, web_port=18123)
    lines: list[str] = []
    stack.up(settings, port=8124, progress=lines.append)
    assert set(started) == {"consumer", "airflow", "web"}
    assert started["web"][1:] == ["-m", "loyalty_monitor.web"]  # its module entry point, not the CLI
    assert any(line.startswith("web app: http://127.0.0.1:18123") for line in lines), lines
    stack.down(settings, progress=lines.append)
    assert stopped[0] == "web"


def test_down_waits_for_every_process_of_the_group_not_only_its_leader(data_dir):
    """`loyalty down` said "airflow: stopped" while airflow standalone's scheduler, triggerer and
    dag-processor still ran for another 15 s (the leader exits first). A real process group here:
    the leader dies at once on SIGTERM, its child takes 2 s to finish."""
    settings = load_settings(data_dir=data_dir)
    ready = data_dir / "child-ready"
    child = (f"import signal, sys, time, pathlib\n"
             f"signal.signal(signal.SIGTERM, lambda *a: (time.sleep(2), sys.exit(0)))\n"
             f"pathlib.Path({str(ready)!r}).touch()\n"
             f"time.sleep(60)\n")
    leader = f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', {child!r}])\ntime.sleep(60)\n"
    pid, _log, started = stack._start_background("grouptest", [sys.executable, "-c", leader], dict(os.environ),
                                                 settings)
    assert started
    deadline = time.monotonic() + 30
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready.exists()
    assert stack._stop_background("grouptest", settings)
    # what ps sees of the group: nothing, or zombies waiting for their parent to reap them
    states = subprocess.run(["ps", "-o", "stat=", "-g", str(pid)], capture_output=True, text=True).stdout.split()
    assert all(state.startswith("Z") for state in states), f"a process of the stopped group still runs: {states}"


def _stack_environment(data_dir, monkeypatch) -> tuple[object, dict[str, str]]:
    for name in list(os.environ):
        if name.startswith("AIRFLOW"):  # as from a shell: the stack's own AIRFLOW_HOME under data_dir
            monkeypatch.delenv(name)
    settings = load_settings(data_dir=data_dir)
    return settings, stack.standalone_environment(settings, "127.0.0.1:9092")


def test_up_unpauses_the_dags_an_in_process_run_registered_paused(data_dir, monkeypatch):
    """Issue 14: after `make demo` (dag.test registers the DAGs paused) `loyalty up` must schedule
    both DAGs; DAGS_ARE_PAUSED_AT_CREATION=False applies only to DAGs Airflow has not seen. Real
    metadata database, DAGs registered paused by the installed Airflow from the repository's dags/."""
    from loyalty_monitor import broker, pipeline

    settings, env = _stack_environment(data_dir, monkeypatch)
    stack.prepare_dbt_manifest(settings)
    stack.ensure_migrated(Path(env["AIRFLOW_HOME"]), env)
    assert stack.unpause_dags(env) == {pipeline.DAG_ID: "not registered yet",
                                       pipeline.REPORT_DAG_ID: "not registered yet"}
    registered = subprocess.run([AIRFLOW, "dags", "reserialize"], capture_output=True, text=True, timeout=600,
                                env={**env, "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True"})
    assert registered.returncode == 0, registered.stderr[-2000:]

    class Running:
        bootstrap_servers, pid = "127.0.0.1:9092", 1

    monkeypatch.setattr(broker, "start", lambda settings: Running())
    started: list[str] = []
    monkeypatch.setattr(stack, "_start_background",
                        lambda name, argv, env, settings: started.append(name) or (2, Path("x.log"), True))
    lines: list[str] = []
    info = stack.up(settings, progress=lines.append)
    assert info["dags"] == {pipeline.DAG_ID: "unpaused", pipeline.REPORT_DAG_ID: "unpaused"}
    assert f"DAGs: {pipeline.DAG_ID} unpaused, {pipeline.REPORT_DAG_ID} unpaused" in lines, lines
    import sqlite3

    database = sqlite3.connect(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"][len("sqlite:///"):])
    paused = dict(database.execute("select dag_id, is_paused from dag"))
    database.close()
    assert paused[pipeline.DAG_ID] == paused[pipeline.REPORT_DAG_ID] == 0, paused
    assert stack.unpause_dags(env)[pipeline.DAG_ID] == "already unpaused"


def test_up_waits_until_the_ui_answers_and_says_where_the_password_is(data_dir, monkeypatch):
    """`loyalty up` returns once the UI answers HTTP (a real server on the UI's port stands in for the
    api-server that `airflow standalone` starts), or says after --wait seconds that it did not."""
    import http.server
    import threading

    from loyalty_monitor import broker

    settings, _ = _stack_environment(data_dir, monkeypatch)

    class Running:
        bootstrap_servers, pid = "127.0.0.1:9092", 1

    monkeypatch.setattr(broker, "start", lambda settings: Running())
    monkeypatch.setattr(stack, "ensure_migrated", lambda home, env, progress: 0.0)
    monkeypatch.setattr(stack, "_start_background", lambda name, argv, env, settings: (2, Path(f"{name}.log"), True))

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            self.send_response(200 if self.path == "/api/v2/monitor/health" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        lines: list[str] = []
        info = stack.up(settings, port=server.server_address[1], progress=lines.append, wait_s=60)
    finally:
        server.shutdown()
        server.server_close()
    assert info["ui_answers"] is True
    answered = [line for line in lines if line.startswith(f"Airflow UI: {info['ui']} (user admin; ")]
    assert answered and info["password_file"] in answered[0] and "it answered after" in answered[0], lines

    closed = broker.free_port()  # nothing listens: the UI never answers
    lines = []
    started = time.monotonic()
    info = stack.up(settings, port=closed, progress=lines.append, wait_s=2)
    assert info["ui_answers"] is False and time.monotonic() - started < 30
    assert any("did not answer within 2 s" in line and "airflow.log" in line and info["password_file"] in line
               for line in lines), lines


def test_a_new_home_starts_from_the_first_migrated_database_and_airflow_finds_it_complete(tmp_path, monkeypatch):
    """The first ``airflow db migrate`` of an installation keeps its empty database; a new data
    directory copies it instead of migrating again, and the installed Airflow finds every migration
    applied and works on it (its default pool there, a pool written)."""
    template = tmp_path / "template" / "airflow.db"
    monkeypatch.setattr(stack, "migrated_template", lambda version: template)
    said: list[str] = []
    _, first = _stack_environment(tmp_path / "first", monkeypatch)
    stack.ensure_migrated(Path(first["AIRFLOW_HOME"]), first, said.append)
    assert template.is_file() and any("preparing the Airflow metadata database" in s for s in said), said

    said.clear()
    _, second = _stack_environment(tmp_path / "second", monkeypatch)
    home = Path(second["AIRFLOW_HOME"])
    stack.ensure_migrated(home, second, said.append)
    assert said == [] and (home / "airflow.db").is_file()
    assert stat.S_IMODE((home / "airflow.db").stat().st_mode) == 0o600  # it will hold the pipeline's runs
    assert (home / stack.MIGRATED_STAMP).read_text().strip() == stack._airflow_version()
    checked = subprocess.run([AIRFLOW, "db", "check-migrations", "--migration-wait-timeout", "1"], env=second,
                             capture_output=True, text=True, timeout=300)
    assert checked.returncode == 0, checked.stderr[-2000:]
    made = subprocess.run([AIRFLOW, "pools", "set", "loyalty_test", "3", "written on the copy"], env=second,
                          capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr[-2000:]
    pools = subprocess.run([AIRFLOW, "pools", "list", "-o", "plain"], env=second, capture_output=True, text=True,
                           timeout=300)
    assert pools.returncode == 0, pools.stderr[-2000:]
    assert "default_pool" in pools.stdout and "loyalty_test" in pools.stdout, pools.stdout
    assert "loyalty_test" not in template.read_bytes().decode("latin-1")  # the copy is the home's own

    # a home that already has a database of its own is never overwritten by the template
    template.write_bytes(b"not a database")
    (home / stack.MIGRATED_STAMP).unlink()
    stack.ensure_migrated(home, second, said.append)
    assert any("preparing" in s for s in said)
