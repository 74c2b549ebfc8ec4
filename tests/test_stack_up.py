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
from pathlib import Path

from loyalty_monitor import stack
from loyalty_monitor.settings import load_settings

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
    assert [Path(started["web"][0]).name, *started["web"][1:]] == ["loyalty", "web"]
    assert any(line.startswith("web app: http://127.0.0.1:18123") for line in lines), lines
    stack.down(settings, progress=lines.append)
    assert stopped[0] == "web"
