"""docker-compose.yml is checked by structure: no Docker engine is assumed on CI.

It must start every process of the platform from a real module, configure each one only
with real settings, wire the gateway to the services it proxies, and order start-up by
health (PostgreSQL and Kafka before the services, the services before the gateway).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from shared.settings import DEFAULT_PORTS, SERVICES, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"

# compose service name → the module its container runs with ``python -m``
APP_MODULES = {name: f"services.{name}" for name in SERVICES} | {"gateway": "gateway"}
INFRA = ("postgres", "kafka")


# ---- helpers ------------------------------------------------------------------------------


def load_compose(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    assert path.is_file(), f"{path} is missing"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path.name}: top level must be a mapping"
    services = data.get("services")
    assert isinstance(services, dict) and services, f"{path.name}: no `services:` mapping"
    return data


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    """A service's ``environment`` as a dict, whether written as a mapping or a list."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, "") for item in env)
        return {k: v for k, v in pairs}
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


_INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
)


def interpolate(value: str, given: dict[str, str] | None = None) -> str:
    """Compose's variable substitution, with ``given`` standing for the operator's shell or
    .env file: ``${X:-default}``, ``${X-default}``, ``${X:?message}``, ``${X}``, ``$$``."""
    given = given or {}

    def replace(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group("name"), m.group("op"), m.group("arg")
        if name in given and (given[name] != "" or op in (None, "-", "?")):
            return given[name]
        if op in (":-", "-"):
            return arg
        if op in (":?", "?"):
            pytest.fail(f"${{{name}}} is required ({arg!r}) but the test did not supply it")
        return ""

    return _INTERPOLATION.sub(replace, value)


def resolved_environment(service: dict[str, Any], given: dict[str, str] | None = None) -> dict:
    return {k: interpolate(v, given) for k, v in environment_of(service).items()}


def hotline_field(variable: str) -> str:
    return variable.removeprefix("HOTLINE_").lower()


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The Settings a process would build from exactly this environment."""
    for key in list(os.environ):
        if key.upper().startswith("HOTLINE_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


# ---- the processes ------------------------------------------------------------------------


def test_every_process_and_the_infrastructure_is_defined(services: dict) -> None:
    missing = [name for name in (*APP_MODULES, *INFRA) if name not in services]
    assert not missing, f"docker-compose.yml lacks the service(s) {missing}"


@pytest.mark.parametrize("name", list(APP_MODULES))
def test_command_runs_the_process_module(services: dict, name: str) -> None:
    command = services[name].get("command")
    module = APP_MODULES[name]
    assert command == ["python", "-m", module], (
        f"{name}: command should be ['python', '-m', '{module}'] (exec form), got {command!r}"
    )


@pytest.mark.parametrize("name", list(APP_MODULES))
def test_command_module_exists_in_the_repo(services: dict, name: str) -> None:
    command = services[name].get("command") or []
    assert isinstance(command, list) and command[:2] == ["python", "-m"] and len(command) == 3, (
        f"{name}: command should be ['python', '-m', <module>], got {command!r}"
    )
    module = command[2]
    main = ROOT / (module.replace(".", "/") + "/__main__.py")
    assert main.is_file(), (
        f"{name}: `python -m {module}` needs {main.relative_to(ROOT)}, which does not exist"
    )


def test_all_processes_share_one_image_built_from_the_dockerfile(services: dict) -> None:
    images = {}
    for name in APP_MODULES:
        svc = services[name]
        build = svc.get("build")
        context = build if isinstance(build, str) else (build or {}).get("context")
        dockerfile = (
            "Dockerfile"
            if isinstance(build, str)
            else (build or {}).get("dockerfile", "Dockerfile")
        )
        assert context in (".", "./"), (
            f"{name}: should build the repo root (build: .), got {build!r}"
        )
        assert (ROOT / dockerfile).is_file(), f"{name}: build names {dockerfile}, which is missing"
        images[name] = svc.get("image")
    assert len(set(images.values())) == 1 and None not in images.values(), (
        f"every process should reuse one image name, got {images}"
    )


@pytest.mark.parametrize("name", list(APP_MODULES))
def test_restart_policy(services: dict, name: str) -> None:
    restart = services[name].get("restart")
    assert restart == "unless-stopped", f"{name}: restart should be unless-stopped, got {restart!r}"


# ---- configuration ------------------------------------------------------------------------


def test_every_hotline_variable_is_a_setting(services: dict) -> None:
    fields = set(Settings.model_fields)
    unknown = {
        f"{name}.{var}": hotline_field(var)
        for name, svc in services.items()
        for var in environment_of(svc)
        if var.upper().startswith("HOTLINE_") and hotline_field(var) not in fields
    }
    assert not unknown, (
        f"HOTLINE_ variables that are no field of shared.settings.Settings (a typo, or a "
        f"setting that was renamed or removed): {unknown}"
    )


@pytest.mark.parametrize("name", list(APP_MODULES))
def test_port_is_the_process_default(services: dict, name: str) -> None:
    env = resolved_environment(services[name])
    assert "HOTLINE_PORT" in env, f"{name}: HOTLINE_PORT is not set"
    assert env["HOTLINE_PORT"] == str(DEFAULT_PORTS[name]), (
        f"{name}: HOTLINE_PORT is {env['HOTLINE_PORT']!r}, but shared.settings.DEFAULT_PORTS "
        f"gives {name} port {DEFAULT_PORTS[name]}"
    )


@pytest.mark.parametrize("name", list(APP_MODULES))
def test_listens_on_all_interfaces_and_uses_postgres_and_kafka(services: dict, name: str) -> None:
    env = resolved_environment(services[name])
    assert env.get("HOTLINE_HOST") == "0.0.0.0", (
        f"{name}: HOTLINE_HOST should be 0.0.0.0 (127.0.0.1 is unreachable from other "
        f"containers), got {env.get('HOTLINE_HOST')!r}"
    )
    db = urlsplit(env.get("HOTLINE_DB_URL", ""))
    assert db.scheme == "postgresql+asyncpg" and db.hostname == "postgres", (
        f"{name}: HOTLINE_DB_URL should be postgresql+asyncpg://…@postgres:5432/…, "
        f"got {env.get('HOTLINE_DB_URL')!r}"
    )
    bus = env.get("HOTLINE_BUS_URL", "")
    assert bus.startswith("kafka://") and all(
        h.split(":")[0] == "kafka" for h in bus.removeprefix("kafka://").split(",")
    ), f"{name}: HOTLINE_BUS_URL should be kafka://kafka:9092, got {bus!r}"


@pytest.mark.parametrize("name", list(APP_MODULES))
def test_database_url_matches_the_postgres_container(services: dict, name: str) -> None:
    for given in ({}, {"POSTGRES_USER": "ops", "POSTGRES_PASSWORD": "s3cret"}):
        db = urlsplit(resolved_environment(services[name], given)["HOTLINE_DB_URL"])
        pg = resolved_environment(services["postgres"], given)
        expected = (pg.get("POSTGRES_USER", "postgres"), pg.get("POSTGRES_PASSWORD"))
        assert (db.username, db.password) == expected, (
            f"{name}: HOTLINE_DB_URL logs in as {db.username}:{db.password} but the postgres "
            f"container creates {expected[0]}:{expected[1]} (operator set {given or 'nothing'})"
        )
        database = pg.get("POSTGRES_DB") or expected[0]
        assert db.path.lstrip("/") == database and (db.port or 5432) == 5432, (
            f"{name}: HOTLINE_DB_URL names database {db.path!r} on port {db.port}, but the "
            f"postgres container creates {database!r} on 5432"
        )


def test_bus_url_is_a_listener_kafka_advertises(services: dict) -> None:
    advertised = resolved_environment(services["kafka"]).get("KAFKA_ADVERTISED_LISTENERS", "")
    hosts = {urlsplit(listener).netloc for listener in advertised.split(",")}
    for name in APP_MODULES:
        bus = resolved_environment(services[name])["HOTLINE_BUS_URL"].removeprefix("kafka://")
        for host in bus.split(","):
            assert host in hosts, (
                f"{name}: HOTLINE_BUS_URL bootstraps from {host}, which Kafka does not "
                f"advertise (KAFKA_ADVERTISED_LISTENERS={advertised!r})"
            )


@pytest.mark.parametrize("name", list(APP_MODULES))
def test_environment_builds_valid_settings(
    services: dict, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As shipped (dev defaults) and as an operator runs it in production (real secrets)."""
    production = {
        "HOTLINE_ENV": "production",
        "HOTLINE_SERVICE_SECRET": "s" * 64,
        "HOTLINE_JWT_SECRET": "j" * 64,
    }
    for given in ({}, production):
        env = resolved_environment(services[name], given)
        try:
            settings = settings_from(env, monkeypatch)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            case = f"the operator setting {sorted(given)}" if given else "the shipped defaults"
            pytest.fail(f"{name}: Settings rejects its environment with {case}: {exc}")
        assert settings.port_for(name) == DEFAULT_PORTS[name], f"{name}: wrong effective port"
        if given:
            assert settings.env == "production", (
                f"{name}: HOTLINE_ENV from the operator's environment is not passed through"
            )


def test_gateway_points_at_every_service(services: dict) -> None:
    env = resolved_environment(services["gateway"])
    for svc in SERVICES:
        var = f"HOTLINE_{svc.upper()}_URL"
        assert var in env, f"gateway: {var} is not set, so it would proxy to 127.0.0.1"
        url = urlsplit(env[var])
        port = resolved_environment(services[svc]).get("HOTLINE_PORT")
        assert url.scheme == "http" and url.hostname == svc, (
            f"gateway: {var}={env[var]!r} should name the compose service {svc!r}"
        )
        assert str(url.port) == port, (
            f"gateway: {var}={env[var]!r} uses port {url.port}, but {svc} listens on "
            f"HOTLINE_PORT={port}"
        )


def test_gateway_port_is_published(services: dict) -> None:
    ports = [interpolate(str(p)) for p in services["gateway"].get("ports") or []]
    container_ports = {p.rsplit(":", 1)[-1].split("/")[0] for p in ports}
    assert str(DEFAULT_PORTS["gateway"]) in container_ports, (
        f"gateway: container port {DEFAULT_PORTS['gateway']} is not published (ports={ports})"
    )
    for name in SERVICES:
        assert not services[name].get("ports"), (
            f"{name}: should not publish ports; clients go through the gateway"
        )


# ---- health and start-up order ------------------------------------------------------------


def healthcheck_test(services: dict, name: str) -> str:
    check = services[name].get("healthcheck") or {}
    test = check.get("test")
    assert test and not check.get("disable"), f"{name}: has no healthcheck"
    assert not (isinstance(test, list) and test[0] == "NONE"), f"{name}: healthcheck is NONE"
    return test if isinstance(test, str) else " ".join(test)


@pytest.mark.parametrize("name", list(APP_MODULES))
def test_process_healthcheck_asks_readyz_with_python(services: dict, name: str) -> None:
    test = healthcheck_test(services, name)
    assert "/readyz" in test, f"{name}: healthcheck should request /readyz, it runs {test!r}"
    assert "urllib" in test and "curl" not in test and "wget" not in test, (
        f"{name}: healthcheck should use python's urllib (the slim image has no curl/wget): "
        f"{test!r}"
    )
    check = services[name]["healthcheck"]["test"]
    if isinstance(check, list) and "-c" in check:
        code = check[check.index("-c") + 1]
        try:
            compile(code, f"{name} healthcheck", "exec")
        except SyntaxError as exc:
            pytest.fail(f"{name}: the healthcheck's python code does not compile: {exc}")
    port = resolved_environment(services[name])["HOTLINE_PORT"]
    assert "HOTLINE_PORT" in test or f":{port}/" in test, (
        f"{name}: healthcheck does not target the process's port {port}: {test!r}"
    )


def test_infrastructure_has_healthchecks(services: dict) -> None:
    assert "pg_isready" in healthcheck_test(services, "postgres"), (
        "postgres: healthcheck should use pg_isready"
    )
    kafka = healthcheck_test(services, "kafka")
    assert "kafka-broker-api-versions.sh" in kafka or "kafka-topics.sh" in kafka, (
        f"kafka: healthcheck should ask the broker (kafka-broker-api-versions.sh), got {kafka!r}"
    )


def depends_on(services: dict, name: str) -> dict[str, Any]:
    deps = services[name].get("depends_on") or {}
    assert isinstance(deps, dict), (
        f"{name}: depends_on is a list, which waits only for start, not health; use "
        f"`<service>: {{condition: service_healthy}}`"
    )
    return deps


@pytest.mark.parametrize("name", list(APP_MODULES))
def test_start_order_waits_for_health(services: dict, name: str) -> None:
    deps = depends_on(services, name)
    wanted = set(SERVICES) if name == "gateway" else set(INFRA)
    missing = wanted - set(deps)
    assert not missing, f"{name}: depends_on lacks {sorted(missing)}"
    for dep, spec in deps.items():
        condition = (spec or {}).get("condition")
        assert condition == "service_healthy", (
            f"{name}: depends_on.{dep} has condition {condition!r}, should be service_healthy"
        )
        assert dep in services and services[dep].get("healthcheck"), (
            f"{name}: waits for {dep} to be healthy, but {dep} has no healthcheck (it never "
            f"would be)"
        )
