"""Static checks of the production stack (docker-compose.yml, docker/Dockerfile, .env.example).

There is no Docker engine on the development machine, so the stack is checked as data: it parses,
has its services, pins its images, health-checks what runs long, mounts the DAGs and the project
read-only, keeps every secret in .env (which ships none, and which never reaches a container),
publishes ports on 127.0.0.1 only, lets Kafka clients from outside in over SASL_SSL only, and every
setting it passes is one the project or Airflow knows. Its two scripts run for real: the start-up
check refuses empty and example secrets, the TLS script makes a certificate a client can verify.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import setuptools
import yaml

from loyalty_core.settings import PROJECT_ROOT, Settings, SettingsError, load_settings

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
ENV_EXAMPLE = PROJECT_ROOT / ".env.example"
DOCKERFILE = PROJECT_ROOT / "docker" / "Dockerfile"
CHECK_SECRETS = PROJECT_ROOT / "docker" / "check-secrets.sh"
KAFKA_TLS = PROJECT_ROOT / "docker" / "kafka-tls.sh"
# found without importing Airflow (slow): the installed version's own list of options
AIRFLOW_CONFIG = Path(importlib.util.find_spec("airflow").origin).parent / "config_templates" / "config.yml"

AIRFLOW_SERVICES = {"airflow-apiserver": "api-server", "airflow-scheduler": "scheduler",
                    "airflow-dag-processor": "dag-processor", "airflow-triggerer": "triggerer"}
ONE_SHOT = {"preflight", "kafka-init", "airflow-init"}
#: the warehouse at scale (profile "scale"): PostgreSQL and a standalone Spark with its Thrift server
SCALE = {"warehouse-db", "spark-master", "spark-worker", "spark-thrift"}
REQUIRED = {"kafka", "postgres", "consumer", "web", *AIRFLOW_SERVICES, *ONE_SHOT, *SCALE}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|WEBHOOK_URL|SQL_ALCHEMY_CONN|_KEYS?$")
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
    assert command_text(services["web"]).split()[:2] == ["loyalty", "web"]


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
    assert built == {"preflight", "consumer", "web", "airflow-init", *AIRFLOW_SERVICES}
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
        "TOPIC_CASE_EVENTS": (defaults.topic_case_events, defaults.partitions_case_events, False),
    }
    for variable, (topic, partitions, compacted) in expected.items():
        assert env[variable].endswith(f":-{topic}}}"), (variable, env[variable])
        line = next(line for line in script.splitlines() if f'"$${variable}"' in line)
        assert f"--partitions {partitions}" in line, line
        assert ("cleanup.policy=compact" in line) == compacted, line
    assert "--if-not-exists" in script and "--create" in script


def test_topic_init_sets_the_retention_and_compaction_that_erasure_relies_on(services: dict) -> None:
    """docs/operations.md ("Erasure") bounds how long an erased customer's records stay in Kafka
    by each topic's retention and compaction; the stack creates its topics with exactly those."""
    script = command_text(services["kafka-init"])
    table = (PROJECT_ROOT / "docs" / "operations.md").read_text()
    rows = {"TOPIC_TOUCHPOINTS": "| `touchpoints`", "TOPIC_CUSTOMERS": "| `customers` (compacted)",
            "TOPIC_DEAD_LETTER": "| `loyalty.dead-letter`"}
    for variable, row_start in rows.items():
        row = next(line for line in table.splitlines() if line.startswith(row_start))
        documented = set(re.findall(r"`([a-z.]+=\d+|cleanup\.policy=\w+|message\.timestamp\.type=\w+)`",
                                    row.split("|")[2]))
        line = next(line for line in script.splitlines() if f'"$${variable}"' in line)
        configured = set(re.findall(r"--config (\S+)", line)) | (
            set() if "cleanup.policy" in line else {"cleanup.policy=delete"})
        assert documented and configured == documented, (variable, configured, documented)
    case_events = next(line for line in script.splitlines() if '"$$TOPIC_CASE_EVENTS"' in line)
    assert "--config retention.ms=604800000" in case_events  # keyed by customer, like touchpoints
    customers = next(line for line in script.splitlines() if '"$$TOPIC_CUSTOMERS"' in line)
    assert "--config message.timestamp.type=LogAppendTime" in customers  # erasure orders by the broker's clock


#: The parts of the checkout the containers run, mounted read-only over the image's copy.
PROJECT_PARTS = ("loyalty_core", "loyalty_monitor", "streaming", "expectations", "dbt_project", "config", "dags")


def short_mounts(service: dict[str, Any]) -> list[list[str]]:
    """``source:target[:mode]`` mounts, split; long-syntax (dict) mounts are left out."""
    return [m.split(":") for m in service.get("volumes") or [] if isinstance(m, str)]


def test_dags_and_project_are_mounted_where_airflow_looks(services: dict) -> None:
    for name in [*AIRFLOW_SERVICES, "airflow-init", "consumer", "web"]:
        service = services[name]
        mounts = {m[1]: m[0] for m in short_mounts(service)}
        modes = {m[1]: m[2:] for m in short_mounts(service)}
        for part in PROJECT_PARTS:
            assert mounts.get(f"/opt/loyalty/{part}") == f"./{part}", f"{name}: {part}/ not mounted"
            assert modes[f"/opt/loyalty/{part}"] == ["ro"], f"{name}: {part}/ is not mounted read-only"
        assert mounts.get("/data", "").startswith("loyalty-data"), f"{name}: no shared data volume"
        assert environment(service)["LOYALTY_BOOTSTRAP_SERVERS"] == "kafka:9092", name
        if name not in ("consumer", "web"):
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
            if isinstance(mount, dict):
                if mount.get("type") != "volume":
                    continue
                source = mount["source"]
            else:
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
    required = {m.group(1) for m in REFERENCE.finditer(raw) if m.group(2) in (":?", "?")}
    assert {"POSTGRES_PASSWORD", "AIRFLOW_ADMIN_PASSWORD", "AIRFLOW_FERNET_KEY", "KAFKA_CLIENT_PASSWORD",
            "KAFKA_SSL_KEYSTORE_PASSWORD"} <= required
    for variable in required:
        assert env_example[variable] == "", f".env.example ships a value for the required secret {variable}"
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    for variable in used:  # each variable has a comment near it saying what it is for
        block = text[: text.index(f"\n{variable}=")].rsplit("\n\n", 1)[-1]
        assert "#" in block, f".env.example: explain {variable}"


def test_project_settings_passed_to_containers_exist(services: dict, env_example: dict[str, str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    fields = set(Settings.model_fields)
    for name, service in services.items():
        for key in environment(service):
            if key.startswith("LOYALTY_"):
                assert key[len("LOYALTY_"):].lower() in fields, f"{name}: {key} is no Loyalty Monitor setting"
    # ... and each service's values, as .env.example (secrets filled in) makes them, are valid settings
    values = {**env_example, **{k: "s3cr3t-" + "0" * 40 for k, v in env_example.items() if SECRET_NAME.search(k)}}

    def resolved(text: str) -> str:
        return REFERENCE.sub(lambda m: values.get(m.group(1)) or (m.group(3) if m.group(2) in (":-", "-") else ""),
                             text)

    for name, service in services.items():
        loyalty = {k: resolved(v) for k, v in environment(service).items() if k.startswith("LOYALTY_")}
        if not loyalty:
            continue
        with monkeypatch.context() as env:
            for key in [k for k in os.environ if k.startswith("LOYALTY_")]:
                env.delenv(key)
            for key, value in loyalty.items():
                env.setenv(key, value)
            try:
                load_settings()
            except SettingsError as exc:
                pytest.fail(f"{name}: {exc}")


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
    # An editable install maps only the packages present when it runs: a package copied after it
    # is not importable (loyalty_core was not, so every command of the image failed at import).
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    # [tool.setuptools.packages.find] finds namespace packages too (loyalty_core has no __init__.py)
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p for p in setuptools.find_namespace_packages(str(PROJECT_ROOT), include=include) if "." not in p}
    assert "loyalty_core" in packages
    before_install = text[: re.search(r"^RUN pip install .*-e \.", text, flags=re.M).start()]
    copied = {Path(part).name for source in re.findall(r"^COPY (.+) \S+$", before_install, flags=re.M)
              for part in source.split() if not part.startswith("--")}
    assert packages <= copied, f"copy {sorted(packages - copied)} before the editable install"
    assert packages <= set(PROJECT_PARTS), "mount every package read-only over the image's copy"


# --- nobody gets in who should not -----------------------------------------------------------------

def defaults_of(text: str) -> str:
    """``text`` with each ${VAR:-default} replaced by its default (what an unset .env gives)."""
    return REFERENCE.sub(lambda m: m.group(3) if m.group(2) in (":-", "-") else f"<{m.group(1)}>", text)


def test_published_ports_listen_on_loopback_unless_told_otherwise(services: dict,
                                                                   env_example: dict[str, str]) -> None:
    published = {}
    for name, service in services.items():
        for port in service.get("ports") or []:
            assert isinstance(port, str), f"{name}: {port!r}"
            parts = defaults_of(port).split(":")
            assert len(parts) == 3, f"{name}: {port!r} names no host address"
            address, host_port, container_port = parts
            assert address == "127.0.0.1", f"{name}: {port!r} listens on {address!r} by default"
            variable = REFERENCE.match(port).group(1)
            assert env_example[variable] == "127.0.0.1", f".env.example: {variable} should be 127.0.0.1"
            published[name] = container_port
    assert published == {"kafka": "29092", "airflow-apiserver": "8080", "web": "8050"}


def test_kafka_lets_outside_clients_in_over_sasl_ssl_only(services: dict) -> None:
    kafka = services["kafka"]
    env = environment(kafka)
    listeners = dict(item.split("://") for item in env["KAFKA_LISTENERS"].split(","))
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    published = {defaults_of(p).rsplit(":", 1)[1] for p in kafka["ports"]}
    by_port = {address.rsplit(":", 1)[1]: listener for listener, address in listeners.items()}
    # every published port is a SASL_SSL listener; PLAINTEXT and the controller stay inside
    assert published == {"29092"}
    assert {protocols[by_port[port]] for port in published} == {"SASL_SSL"}
    assert protocols["PLAINTEXT"] == "PLAINTEXT" and "9092" not in published and "9093" not in published
    advertised = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    assert advertised["PLAINTEXT"] == "kafka:9092"  # a name only the compose network resolves
    # the apache/kafka image's start script expects its own keystore variables when a listener name
    # contains "SSL"; named EXTERNAL, the listener takes its settings from the variables below
    assert "SSL://" not in env["KAFKA_ADVERTISED_LISTENERS"]
    external = "KAFKA_LISTENER_NAME_EXTERNAL_"
    assert env[external + "SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    assert env[external + "SCRAM___SHA___512_SASL_JAAS_CONFIG"].startswith(
        "org.apache.kafka.common.security.scram.ScramLoginModule required")
    assert env[external + "SSL_KEYSTORE_TYPE"] == "PKCS12"
    keystore = env[external + "SSL_KEYSTORE_LOCATION"]
    for key in ("SSL_KEYSTORE_PASSWORD", "SSL_KEY_PASSWORD"):
        assert REFERENCE.fullmatch(env[external + key]).group(1) == "KAFKA_SSL_KEYSTORE_PASSWORD"
    bind = [m for m in kafka["volumes"] if isinstance(m, dict) and m["target"] == keystore]
    assert bind and bind[0]["source"] == "./docker/kafka-tls/broker.p12" and bind[0]["read_only"]
    assert bind[0]["bind"]["create_host_path"] is False
    # kafka-init creates the SCRAM user the external clients log in as, from .env
    init = services["kafka-init"]
    assert "kafka-configs.sh --bootstrap-server kafka:9092 --alter --entity-type users" in command_text(init)
    assert "SCRAM-SHA-512=[iterations=8192,password=$$KAFKA_CLIENT_PASSWORD]" in command_text(init)
    assert REFERENCE.fullmatch(environment(init)["KAFKA_CLIENT_PASSWORD"]).group(2) == ":?"
    # the project's own services stay on the internal listener
    for name, service in services.items():
        if "LOYALTY_BOOTSTRAP_SERVERS" in environment(service):
            assert environment(service)["LOYALTY_BOOTSTRAP_SERVERS"] == "kafka:9092", name


def test_env_example_ships_no_usable_secret(env_example: dict[str, str]) -> None:
    secrets = {name for name in env_example if SECRET_NAME.search(name)}
    assert {"AIRFLOW_ADMIN_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_API_SECRET_KEY", "AIRFLOW_JWT_SECRET",
            "POSTGRES_PASSWORD", "KAFKA_CLIENT_PASSWORD", "KAFKA_SSL_KEYSTORE_PASSWORD",
            "LOYALTY_SMTP_PASSWORD"} <= secrets
    for name in secrets:
        assert env_example[name] == "", f".env.example ships a value for {name}"


def test_env_file_never_reaches_a_container(compose: dict, services: dict) -> None:
    """No env_file, no mount of the checkout (it holds .env), no .env in the image."""
    raw = COMPOSE_FILE.read_text(encoding="utf-8")
    assert "env_file" not in raw
    for name, service in services.items():
        for mount in service.get("volumes") or []:
            source = mount["source"] if isinstance(mount, dict) else mount.split(":")[0]
            assert source.rstrip("/") not in (".", "./.env", ".env"), f"{name} mounts {source}"
            if source.startswith("./") and not isinstance(mount, dict):
                assert mount.endswith(":ro"), f"{name}: {mount} is writable from the container"
    build_ignore = (PROJECT_ROOT / "docker" / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    classic_ignore = (PROJECT_ROOT / ".dockerignore").read_text(encoding="utf-8")
    assert build_ignore == classic_ignore, "keep .dockerignore equal to docker/Dockerfile.dockerignore"
    rules = [line.strip() for line in build_ignore.splitlines() if line.strip() and not line.startswith("#")]
    for excluded in (".env", ".env.*", "docker/kafka-tls"):
        assert excluded in rules, f"the image build context includes {excluded}"
    assert ".env" not in [r for r in rules if r.startswith("!")]


def test_each_service_gets_only_the_secrets_it_needs(services: dict) -> None:
    def secrets(name: str) -> set[str]:
        return {key for key in environment(services[name]) if SECRET_NAME.search(key) and not key.endswith("_FILE")}

    assert secrets("consumer") == set()  # it lands events: no database, Airflow or alert secret
    assert secrets("kafka-init") == {"KAFKA_CLIENT_PASSWORD"}
    assert secrets("postgres") == {"POSTGRES_PASSWORD"}
    assert {"LOYALTY_SMTP_PASSWORD", "AIRFLOW__CORE__FERNET_KEY"} <= secrets("airflow-scheduler")
    assert not any(key.startswith("KAFKA_") for key in secrets("airflow-scheduler"))


def test_preflight_runs_before_anything_else_starts(services: dict) -> None:
    def upstream(name: str) -> set[str]:
        direct = set(services[name].get("depends_on") or {})
        return direct.union(*(upstream(d) for d in direct)) if direct else set()

    for name in services:
        if name != "preflight":
            assert "preflight" in upstream(name), f"{name} can start before the secrets are checked"
    for name in ("kafka", "postgres"):
        assert services[name]["depends_on"]["preflight"]["condition"] == "service_completed_successfully"
    preflight = services["preflight"]
    assert command_text(preflight) == "/bin/sh /opt/loyalty/docker/check-secrets.sh"
    assert "./docker/check-secrets.sh:/opt/loyalty/docker/check-secrets.sh:ro" in preflight["volumes"]
    checked = set(re.findall(r"^check (\w+)", CHECK_SECRETS.read_text(), flags=re.M)) | {"AIRFLOW_FERNET_KEY"}
    assert checked <= set(environment(preflight)), "preflight does not receive every secret it checks"


GOOD = {
    "AIRFLOW_ADMIN_PASSWORD": "3f9c0e4b7a21d6e8", "POSTGRES_PASSWORD": "b7e1f0c29d3a4e56",
    "AIRFLOW_API_SECRET_KEY": "9a" * 32, "AIRFLOW_JWT_SECRET": "4c" * 32,
    "KAFKA_CLIENT_PASSWORD": "e2d4c6b8a0f1e3d5", "KAFKA_SSL_KEYSTORE_PASSWORD": "0f1e2d3c4b5a6978",
    "AIRFLOW_FERNET_KEY": "hX0oT9mXoN3JTkq5L1YbW6Gq4Zt8sVb2cR7dUe1fA3g=",
    "LOYALTY_WEB_SIGNING_KEYS": "7d" * 32,
}
#: what .env.example shipped before it shipped no secrets: a copied old .env must not start
SHIPPED_BEFORE = {
    "AIRFLOW_ADMIN_PASSWORD": "change-me-airflow-admin", "POSTGRES_PASSWORD": "change-me-postgres",
    "AIRFLOW_API_SECRET_KEY": "change-me-api-secret-key-0123456789abcdef",
    "AIRFLOW_JWT_SECRET": "change-me-jwt-secret-0123456789abcdef0123456789",
    "AIRFLOW_FERNET_KEY": "Qz5jA7MIE6L8YllXwgoS4Lgkktygp7-sK8tZoOsDOYk=",
    "LOYALTY_SMTP_PASSWORD": "change-me-smtp",
}


def run_check(values: dict[str, str]) -> subprocess.CompletedProcess:
    # /bin/sh, as in the container (dash on Debian, like the python:slim image)
    return subprocess.run(["/bin/sh", str(CHECK_SECRETS)], env={"PATH": os.environ["PATH"], **values},
                          capture_output=True, text=True, timeout=60)


def test_start_up_check_refuses_empty_and_example_secrets() -> None:
    ok = run_check(GOOD)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "preflight: secrets set"

    empty = run_check({})
    assert empty.returncode == 1
    for name in GOOD:
        assert f"preflight: {name}: is empty" in empty.stderr, name
    assert "refusing to start the stack: 8 secret(s)" in empty.stderr
    assert "LOYALTY_SMTP_PASSWORD" not in empty.stderr  # optional: empty means no SMTP login

    old = run_check({**GOOD, **SHIPPED_BEFORE})
    assert old.returncode == 1
    for name in SHIPPED_BEFORE:
        assert f"preflight: {name}: is" in old.stderr and "example" in old.stderr.split(f"{name}: ")[1].split("\n")[0]

    weak = run_check({**GOOD, "POSTGRES_PASSWORD": "short", "AIRFLOW_FERNET_KEY": "not-a-fernet-key",
                      "KAFKA_CLIENT_PASSWORD": "pass,word]0123456", "AIRFLOW_ADMIN_PASSWORD": "password"})
    assert weak.returncode == 1
    assert "POSTGRES_PASSWORD: is shorter than 12 characters" in weak.stderr
    assert "AIRFLOW_FERNET_KEY: is not a Fernet key" in weak.stderr
    assert "KAFKA_CLIENT_PASSWORD: must not contain" in weak.stderr
    assert "AIRFLOW_ADMIN_PASSWORD: is an example or placeholder value" in weak.stderr

    # the PostgreSQL warehouse's password: optional on DuckDB, required once the pipeline uses it
    # (its server refuses to initialise without one, and compose restarted it for ever)
    assert "WAREHOUSE_DB_PASSWORD" not in empty.stderr
    on_postgres = run_check({**GOOD, "LOYALTY_DBT_TARGET": "postgres"})
    assert on_postgres.returncode == 1
    assert "preflight: WAREHOUSE_DB_PASSWORD: is empty" in on_postgres.stderr
    assert "example" in run_check({**GOOD, "LOYALTY_DBT_TARGET": "postgres",
                                   "WAREHOUSE_DB_PASSWORD": "loyalty"}).stderr
    assert run_check({**GOOD, "LOYALTY_DBT_TARGET": "postgres",
                      "WAREHOUSE_DB_PASSWORD": "5e6f7a8b9c0d1e2f"}).returncode == 0
    assert "WAREHOUSE_DB_PASSWORD" in run_check({**GOOD, "WAREHOUSE_DB_PASSWORD": "short"}).stderr


def test_kafka_tls_script_makes_a_certificate_a_client_verifies(tmp_path: Path) -> None:
    """The keystore opens only with its password; a TLS client that trusts ca.pem accepts the
    broker's certificate for the external host name (what a producer with LOYALTY_SSL_CAFILE does)."""
    import socket
    import ssl
    import stat
    import threading

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    out = tmp_path / "tls"
    password = "0f1e2d3c4b5a6978"
    made = subprocess.run(["/bin/sh", str(KAFKA_TLS), "localhost", "127.0.0.1"], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], "KAFKA_TLS_DIR": str(out),
                               "KAFKA_SSL_KEYSTORE_PASSWORD": password}, timeout=120)
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE((out / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "broker.p12").stat().st_mode) == 0o644
    assert b"PRIVATE KEY" not in (out / "broker.p12").read_bytes()
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates((out / "broker.p12").read_bytes(), b"wrong password")
    key, cert, chain = pkcs12.load_key_and_certificates((out / "broker.p12").read_bytes(), password.encode())
    pem = tmp_path / "server.pem"  # for Python's TLS server only, inside the test's own directory
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
                    + cert.public_bytes(serialization.Encoding.PEM)
                    + b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain))

    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(pem)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        with server_context.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(b"ok")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client_context = ssl.create_default_context(cafile=str(out / "ca.pem"))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with client_context.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.recv(2) == b"ok"
    thread.join(5)
    listener.close()
    # a second run (new host name) keeps the CA, so producers keep trusting the broker
    ca_before = (out / "ca.pem").read_bytes()
    again = subprocess.run(["/bin/sh", str(KAFKA_TLS), "kafka.example.net"], capture_output=True, text=True,
                           env={"PATH": os.environ["PATH"], "KAFKA_TLS_DIR": str(out),
                                "KAFKA_SSL_KEYSTORE_PASSWORD": password}, timeout=120)
    assert again.returncode == 0 and (out / "ca.pem").read_bytes() == ca_before


def test_scale_profile_runs_the_warehouse_servers(services: dict) -> None:
    """PostgreSQL and Spark (master, worker, Thrift server) start only with `--profile scale`, each
    health-checked, and the pipeline's services reach them by the settings the engines read."""
    from loyalty_core.spark import SESSION_CONF

    for name in SCALE:
        assert services[name].get("profiles") == ["scale"], name
    assert not [n for n, s in services.items() if s.get("profiles") and n not in SCALE]
    assert services["warehouse-db"]["image"].startswith("postgres:")
    assert "warehouse-db-data:/var/lib/postgresql/data" in services["warehouse-db"]["volumes"]
    spark_images = {services[name]["image"] for name in SCALE - {"warehouse-db"}}
    assert len(spark_images) == 1 and spark_images.pop().startswith("apache/spark:4.")

    master = command_text(services["spark-master"])
    assert "org.apache.spark.deploy.master.Master" in master and "7077" in master
    worker = command_text(services["spark-worker"])
    assert "org.apache.spark.deploy.worker.Worker" in worker and worker.endswith("spark://spark-master:7077")
    assert services["spark-worker"]["depends_on"]["spark-master"]["condition"] == "service_healthy"
    thrift = command_text(services["spark-thrift"])
    assert "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2" in thrift
    assert "--master spark://spark-master:7077" in thrift and "hive.server2.thrift.port=10000" in thrift
    assert services["spark-thrift"]["depends_on"]["spark-worker"]["condition"] == "service_healthy"
    assert "beeline" in " ".join(services["spark-thrift"]["healthcheck"]["test"])
    # every session on the cluster runs with the settings the results depend on (UTC, NTZ timestamps ...)
    for key, value in SESSION_CONF.items():
        assert f"--conf {key}={value}" in thrift, key
    for name in ("spark-worker", "spark-thrift"):  # executors and driver read the landing zone, write tables
        assert "loyalty-data:/data:ro" in services[name]["volumes"], name
        assert any(v.startswith("spark-warehouse:") for v in services[name]["volumes"]), name
    assert "ports" not in services["spark-thrift"] and "ports" not in services["warehouse-db"]  # network-internal

    env = environment(services["airflow-scheduler"])
    assert env["LOYALTY_DBT_TARGET"] == "${LOYALTY_DBT_TARGET:-duckdb}"
    assert defaults_of(env["LOYALTY_PG_HOST"]) == "warehouse-db"
    assert defaults_of(env["LOYALTY_SPARK_HOST"]) == "spark-thrift" and defaults_of(env["LOYALTY_SPARK_METHOD"]) == "thrift"
    assert "LOYALTY_PG_PASSWORD" not in environment(services["consumer"])  # the consumer needs no warehouse
    # the web app reads the marts wherever the pipeline publishes them: the same engine and servers
    web = environment(services["web"])
    warehouse_keys = [k for k in env if k.startswith(("LOYALTY_DBT_", "LOYALTY_PG_", "LOYALTY_SPARK_"))]
    assert len(warehouse_keys) >= 10 and {k: web.get(k) for k in warehouse_keys} == {k: env[k] for k in warehouse_keys}
