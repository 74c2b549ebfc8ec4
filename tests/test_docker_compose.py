"""Static checks of the production stack (docker-compose.yml, docker/Dockerfile, .env.example).

There is no Docker engine on the development machine, so the stack is checked as data: it parses,
has its services, pins its images, health-checks what runs long, mounts the DAGs and the project,
keeps every secret in .env, and every setting it passes is one the project or Airflow knows.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from loyalty_monitor.settings import PROJECT_ROOT, Settings

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
ENV_EXAMPLE = PROJECT_ROOT / ".env.example"
DOCKERFILE = PROJECT_ROOT / "docker" / "Dockerfile"
# found without importing Airflow (slow): the installed version's own list of options
AIRFLOW_CONFIG = Path(importlib.util.find_spec("airflow").origin).parent / "config_templates" / "config.yml"

AIRFLOW_SERVICES = {"airflow-apiserver": "api-server", "airflow-scheduler": "scheduler",
                    "airflow-dag-processor": "dag-processor", "airflow-triggerer": "triggerer"}
ONE_SHOT = {"kafka-init", "airflow-init"}
REQUIRED = {"kafka", "postgres", "consumer", *AIRFLOW_SERVICES, *ONE_SHOT}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|WEBHOOK_URL|SQL_ALCHEMY_CONN|_KEY$")
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}; $${...} is an escaped $
REFERENCE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f".env.example: not NAME=value: {line!r}"
            values[name.strip()] = value.strip()
    return values


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def command_text(service: dict[str, Any]) -> str:
    parts = []
    for key in ("entrypoint", "command"):
        value = service.get(key) or []
        parts.extend(value if isinstance(value, list) else [value])
    return " ".join(str(p) for p in parts)


def test_compose_file_has_the_services_of_the_stack(services: dict) -> None:
    assert REQUIRED <= set(services), REQUIRED - set(services)
    for name, subcommand in AIRFLOW_SERVICES.items():
        assert command_text(services[name]).split()[:2] == ["airflow", subcommand], name
    assert "airflow db migrate" in command_text(services["airflow-init"])
    assert command_text(services["consumer"]).split() == ["loyalty", "consume"]


def test_every_image_is_pinned_or_built(services: dict) -> None:
    for name, service in services.items():
        if "build" in service:
            assert service["build"]["dockerfile"] == "docker/Dockerfile" and service["build"]["context"] == "."
            continue
        image = service.get("image", "")
        repository, _, tag = image.rpartition(":")
        assert repository and tag, f"{name}: image {image!r} has no tag"
        assert tag != "latest" and re.search(r"\d+\.\d+", tag), f"{name}: image {image!r} is not pinned"
    assert services["kafka"]["image"].startswith("apache/kafka:3.9.")
    assert services["postgres"]["image"].startswith("postgres:")


def test_project_services_share_the_project_image(services: dict) -> None:
    built = {name for name, s in services.items() if "build" in s}
    assert built == {"consumer", "airflow-init", *AIRFLOW_SERVICES}
    assert len({services[name]["image"] for name in built}) == 1


def test_long_running_services_have_health_checks_and_one_shots_do_not_restart(services: dict) -> None:
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service.get("restart") == "no", name
            continue
        check = service.get("healthcheck")
        assert check and not check.get("disable") and check.get("test"), f"{name} has no health check"
        assert check["test"][0] in ("CMD", "CMD-SHELL") and len(check["test"]) > 1, name
        assert service.get("restart") == "unless-stopped", name
    waits_for = {dep: cond["condition"] for dep, cond in services["airflow-scheduler"]["depends_on"].items()}
    assert waits_for == {"postgres": "service_healthy", "airflow-init": "service_completed_successfully",
                         "kafka-init": "service_completed_successfully"}
    for name, service in services.items():
        for dependency in service.get("depends_on") or {}:
            assert dependency in services, f"{name} depends on unknown service {dependency}"


def test_kafka_runs_in_kraft_mode(services: dict) -> None:
    env = environment(services["kafka"])
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] and "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert not any("ZOOKEEPER" in key for key in env)
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_topic_init_creates_the_topics_with_the_projects_partition_counts(services: dict) -> None:
    init = services["kafka-init"]
    script = command_text(init)
    env = environment(init)
    defaults = Settings()
    expected = {
        "TOPIC_TOUCHPOINTS": (defaults.topic_touchpoints, defaults.partitions_touchpoints, False),
        "TOPIC_CUSTOMERS": (defaults.topic_customers, defaults.partitions_customers, True),
        "TOPIC_DEAD_LETTER": (defaults.topic_dead_letter, 1, False),
        "TOPIC_BATCHES": (defaults.topic_batches, 1, False),
    }
    for variable, (topic, partitions, compacted) in expected.items():
        assert env[variable].endswith(f":-{topic}}}"), (variable, env[variable])
        line = next(line for line in script.splitlines() if f'"$${variable}"' in line)
        assert f"--partitions {partitions}" in line, line
        assert ("cleanup.policy=compact" in line) == compacted, line
    assert "--if-not-exists" in script and "--create" in script


def test_dags_and_project_are_mounted_where_airflow_looks(services: dict) -> None:
    for name in [*AIRFLOW_SERVICES, "airflow-init", "consumer"]:
        service = services[name]
        mounts = {m.split(":")[1]: m.split(":")[0] for m in service["volumes"]}
        assert mounts.get("/opt/loyalty") == ".", f"{name}: project not mounted"
        assert mounts.get("/data", "").startswith("loyalty-data"), f"{name}: no shared data volume"
        assert environment(service)["LOYALTY_BOOTSTRAP_SERVERS"] == "kafka:9092", name
        if name != "consumer":
            dags_folder = environment(service)["AIRFLOW__CORE__DAGS_FOLDER"]
            assert mounts.get(dags_folder) == "./dags", f"{name}: dags/ not mounted at {dags_folder}"
            assert environment(service)["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
            assert environment(service)["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == \
                "http://airflow-apiserver:8080/execution/"
    assert (PROJECT_ROOT / "dags").is_dir()


def test_named_volumes_are_declared_and_used(compose: dict, services: dict) -> None:
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, service in services.items():
        for mount in service.get("volumes") or []:
            source = mount.split(":")[0]
            if not source.startswith((".", "/", "~")):
                assert source in declared, f"{name}: volume {source} is not declared"
                used.add(source)
    assert declared == used and {"kafka-data", "postgres-data", "loyalty-data"} <= declared


def test_no_secret_is_written_in_the_compose_file(services: dict) -> None:
    for name, service in services.items():
        for key, value in environment(service).items():
            if not SECRET_NAME.search(key) or key.endswith("_FILE"):
                continue
            references = REFERENCE.findall(value)
            assert references, f"{name}: {key} is written in plain text"
            for variable, operator, default in references:
                if SECRET_NAME.search(variable):
                    assert operator in ("", ":?", "?") or default == "", \
                        f"{name}: {key} has a built-in default for secret {variable}"
            if key.endswith("SQL_ALCHEMY_CONN"):
                masked = REFERENCE.sub(lambda m: f"<{m.group(1)}>", value)
                password = re.search(r"://[^:/@]+:([^@]*)@", masked).group(1)
                assert password == "<POSTGRES_PASSWORD>", f"{name}: database password {password!r}"
    raw = COMPOSE_FILE.read_text(encoding="utf-8")
    assert not re.search(r"(?i)change-me|password\s*[:=]\s*[\"']?\w", raw.replace("PASSWORD:", "")), \
        "a literal password in docker-compose.yml"


def test_every_variable_is_documented_in_env_example(env_example: dict[str, str]) -> None:
    raw = COMPOSE_FILE.read_text(encoding="utf-8")
    used = {m.group(1): m.group(2) for m in REFERENCE.finditer(raw)}
    assert used, "the compose file takes its settings from variables"
    undocumented = set(used) - set(env_example)
    assert not undocumented, f"add to .env.example: {sorted(undocumented)}"
    unused = set(env_example) - set(used)
    assert not unused, f".env.example documents variables the stack does not use: {sorted(unused)}"
    required = {v for v, op in used.items() if op in (":?", "?")}
    assert {"POSTGRES_PASSWORD", "AIRFLOW_ADMIN_PASSWORD", "AIRFLOW_FERNET_KEY"} <= required
    for variable in required:
        assert env_example[variable], f".env.example: give {variable} an example value"
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    for variable in used:  # each variable has a comment near it saying what it is for
        block = text[: text.index(f"\n{variable}=")].rsplit("\n\n", 1)[-1]
        assert "#" in block, f".env.example: explain {variable}"


def test_project_settings_passed_to_containers_exist(services: dict) -> None:
    fields = {f.name for f in dataclasses.fields(Settings)}
    for name, service in services.items():
        for key in environment(service):
            if key.startswith("LOYALTY_"):
                assert key[len("LOYALTY_"):].lower() in fields, f"{name}: {key} is no Loyalty Monitor setting"


def test_airflow_settings_exist_in_the_installed_airflow(services: dict) -> None:
    config = yaml.safe_load(AIRFLOW_CONFIG.read_text(encoding="utf-8"))
    for name, service in services.items():
        for key in environment(service):
            if key.startswith("AIRFLOW__"):
                section, option = key[len("AIRFLOW__"):].lower().split("__", 1)
                assert option in config.get(section, {}).get("options", {}), \
                    f"{name}: {key} is not an option of Airflow {section}/{option}"


def test_dockerfile_builds_the_project_from_the_lock_file() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    base = re.search(r"^FROM (\S+)", text, flags=re.M).group(1)
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", base), base
    assert re.search(r"pip install -c requirements\.lock -e \.", text)
    for source in re.findall(r"^COPY (.+) \S+$", text, flags=re.M):
        for path in (part for part in source.split() if not part.startswith("--")):
            assert (PROJECT_ROOT / path).exists() or path == ".", f"COPY of missing {path}"
    assert re.search(r"^USER \d+", text, flags=re.M), "the image does not run as root"
