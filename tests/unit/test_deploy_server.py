"""The server's deployment files agree with farm serve: the compose service and the
Kubernetes Deployment run a real farm serve command line, take their URLs and secrets
from the environment, mount a valid configuration and check their health where the
server answers it (the compose health check is run against a real farm server).

No container engine or cluster is needed: the files are parsed, and the command lines
are checked against the real click commands.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
from deploy_files import (
    COMPOSE,
    DEPLOY,
    SECRET_NAME,
    Doc,
    check_farm_args,
    compose,
    compose_command,
    compose_worker,
    containers,
    dockerfile,
    env_of,
    of_kind,
    option_value,
    seconds,
    worker_container,
    workloads,
)

from farm.core.server_config import parse_server_config

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]


# --- the server in compose ---------------------------------------------------

# The server's stop: uvicorn answers the requests it holds (a forge never sends a
# failed delivery again), then the conductors end. The defaults (10 s in Docker,
# 30 s in Kubernetes) leave a slow request and a conductor's exit no margin.
SERVER_MIN_STOP_GRACE_S = 30
SERVER_CONFIG = DEPLOY / "server.toml"
ENV_EXAMPLE = DEPLOY / "env.example"
HEALTH_PATH = "/api/health"


def compose_server() -> Doc:
    server: Doc = compose()["services"]["server"]
    return server


def url_flags(command: click.Command) -> set[str]:
    """The options of ``command`` that take the broker's or the database's URL."""
    return {
        opt
        for param in command.params
        if param.name in ("broker_url", "database_url")
        for opt in (*param.opts, *param.secondary_opts)
    }


def check_serve_args(args: Sequence[str]) -> None:
    """A ``farm serve`` command line that listens beyond its container, with no URL in it."""
    assert args[0] == "serve"
    command = check_farm_args(args)
    flags = url_flags(command)
    assert flags, "farm serve lost its --broker and --db options: update this test"
    given = {arg.split("=", 1)[0] for arg in args}
    assert not given & flags, f"URLs (with their passwords) on the command line: {given & flags}"
    assert option_value(args, "--config"), "farm serve needs its configuration file"
    # 127.0.0.1 (the default) would be unreachable from outside the container.
    assert option_value(args, "--host") == "0.0.0.0"
    assert option_value(args, "--port")


def compose_variables(value: str) -> list[str]:
    """The variables a compose value interpolates: ${NAME}, ${NAME:-default}, ..."""
    return re.findall(r"\$\{(\w+)(?:[:?\-+][^}]*)?\}", value)


def env_example() -> dict[str, str]:
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    return env_of([line for line in lines if line.strip() and not line.startswith("#")])


def named_variables(config: Mapping[str, Any]) -> set[str]:
    """Every environment variable a server configuration names (``*_env`` keys)."""
    tables = [config.get("server", {}), *config.get("repository", [])]
    return {str(v) for table in tables for k, v in table.items() if k.endswith("_env")}


def check_server_config(text: str, env_names: set[str]) -> None:
    """The configuration parses as farm serve reads it, given the variables it gets."""
    config = tomllib.loads(text)
    named = named_variables(config)
    assert named, "the example names no variable: the test would prove nothing"
    assert named <= env_names, f"the server does not get {sorted(named - env_names)}"
    # Values of the server's own: the parser only needs them set.
    parsed = parse_server_config(config, {name: "value" for name in env_names})
    assert parsed.repositories, "the example configures no repository"
    assert parsed.api_token, "POST /api/changes would be closed"
    for name in named:
        # farm keeps FARM_ variables from tested code wherever it runs (workers drop
        # them; conductors pass only an allow-list), so a secret is safe by its name.
        assert name.startswith("FARM_"), f"{name} would reach the tested code"


def compose_health_code() -> str:
    test = [str(part) for part in compose_server()["healthcheck"]["test"]]
    # The image has python and no curl; CMD (not CMD-SHELL) needs no shell either.
    assert test[:3] == ["CMD", "python", "-c"], test
    return test[3]


def test_compose_server_command_is_a_real_farm_serve_command_line() -> None:
    check_serve_args(compose_command(compose_server()))


def test_compose_server_gets_the_broker_and_database_from_its_environment() -> None:
    services = compose()["services"]
    env = env_of(compose_server().get("environment"))
    broker, database = urlsplit(env["FARM_BROKER_URL"]), urlsplit(env["FARM_DATABASE_URL"])
    assert broker.scheme == "redis" and broker.hostname == "redis"
    assert database.scheme.startswith("postgres") and database.hostname == "postgres"
    assert database.path.lstrip("/") == services["postgres"]["environment"]["POSTGRES_DB"]
    assert database.username == services["postgres"]["environment"]["POSTGRES_USER"]
    # The passwords are the ones Redis and PostgreSQL were given, from deploy/.env.
    redis_password = compose_variables(str(services["redis"]["environment"]["REDISCLI_AUTH"]))
    postgres_password = compose_variables(services["postgres"]["environment"]["POSTGRES_PASSWORD"])
    assert compose_variables(broker.password or "") == redis_password
    assert compose_variables(database.password or "") == postgres_password


def test_compose_server_secrets_come_from_the_env_file() -> None:
    env = env_of(compose_server().get("environment"))
    documented = env_example()
    secrets = [name for name in env if SECRET_NAME.search(name)]
    assert len(secrets) >= 3, secrets
    for name in secrets:
        variables = compose_variables(env[name])
        assert variables, f"{name} is inline in compose.yaml"
        assert set(variables) <= documented.keys(), f"env.example lacks {variables}"
    assert "env_file" not in compose_server(), "a file's variables could not be checked here"


def test_compose_server_config_is_mounted_read_only_and_valid() -> None:
    server = compose_server()
    config = option_value(compose_command(server), "--config")
    mounts = {}
    for volume in server["volumes"]:
        source, target, *mode = str(volume).split(":")
        mounts[target] = (source, mode)
    assert config in mounts, f"{config} is not mounted"
    source, mode = mounts[config]
    assert mode == ["ro"], "the server has no business writing its configuration"
    assert (COMPOSE.parent / source).resolve() == SERVER_CONFIG
    env_names = set(env_of(server.get("environment")))
    check_server_config(SERVER_CONFIG.read_text(encoding="utf-8"), env_names)


def test_compose_server_keeps_state_and_cache_on_a_named_volume() -> None:
    server = compose_server()
    env = env_of(server.get("environment"))
    named = {}
    for volume in server["volumes"]:
        source, target, *_ = str(volume).split(":")
        if source in (compose().get("volumes") or {}):
            named[target] = source
    for variable in ("FARM_STATE_DIR", "FARM_CACHE_DIR"):
        path = Path(env[variable])
        assert any(path.is_relative_to(mount) for mount in named), f"{variable} is not kept"
    # A new named volume takes its owner from the image's folder: the image's VOLUME
    # folder is its user's, so the server (not root) can write there.
    image_volumes = {v for key, rest in dockerfile() if key == "VOLUME" for v in json.loads(rest)}
    assert set(named) <= image_volumes


def test_compose_server_waits_for_healthy_redis_and_postgres() -> None:
    depends_on = compose_server()["depends_on"]
    for name in ("redis", "postgres"):
        assert depends_on[name]["condition"] == "service_healthy"


def test_compose_server_is_published_on_its_port_and_checked_on_its_health_path() -> None:
    server = compose_server()
    port = option_value(compose_command(server), "--port")
    published = {str(p).rsplit(":", 2)[2] for p in server["ports"]}
    assert port in published
    urls = re.findall(r"https?://[^\s'\"]+", compose_health_code())
    assert urls == [f"http://127.0.0.1:{port}{HEALTH_PATH}"]


def test_compose_server_restarts_and_stops_gracefully_from_the_worker_image() -> None:
    server = compose_server()
    assert server["restart"] == "unless-stopped"
    assert seconds(server["stop_grace_period"]) >= SERVER_MIN_STOP_GRACE_S
    assert server["init"] is True, "nothing would reap what collected code leaves behind"
    assert server["image"] == compose_worker()["image"]
    assert server.get("build", compose_worker()["build"]) == compose_worker()["build"]


@pytest.fixture
def farm_server_port(tmp_path: Path) -> Iterator[int]:
    """The port of farm's real web application, served by uvicorn on loopback."""
    import uvicorn

    from farm.core.server_config import ServerConfig
    from farm.server.app import ServerParts, create_app
    from farm.store import ResultStore

    with ResultStore.open(f"sqlite:///{tmp_path / 'farm.db'}") as store:
        # Nothing is queued: a health check sends no change.
        app = create_app(ServerParts(ServerConfig(), store.deliveries, lambda change: None))
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            thread = threading.Thread(target=server.run, args=([listener],), daemon=True)
            thread.start()
            deadline = time.monotonic() + 10
            while not server.started:
                assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.01)
            try:
                yield int(listener.getsockname()[1])
            finally:
                server.should_exit = True
                thread.join(10)


def run_health_check(port: int) -> int:
    compose_port = option_value(compose_command(compose_server()), "--port")
    code = compose_health_code()
    assert code.count(f":{compose_port}/") == 1
    check = [sys.executable, "-c", code.replace(f":{compose_port}/", f":{port}/")]
    return subprocess.run(check, capture_output=True, timeout=30).returncode


def test_compose_server_health_check_passes_on_a_serving_farm(farm_server_port: int) -> None:
    assert run_health_check(farm_server_port) == 0


def test_compose_server_health_check_fails_when_nothing_answers() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = int(unused.getsockname()[1])  # bound, never listening: connections refused
        assert run_health_check(port) != 0


# --- the server in Kubernetes ------------------------------------------------


def k8s_server() -> Doc:
    found = [doc for doc in of_kind("Deployment") if doc["metadata"]["name"] == "farm-server"]
    assert len(found) == 1
    return found[0]


def server_container() -> Doc:
    (container,) = containers(k8s_server())
    return container


def server_args() -> list[str]:
    return [str(a) for a in server_container()["args"]]


def server_env() -> dict[str, Doc]:
    return {entry["name"]: entry for entry in server_container()["env"]}


def container_port(container: Doc, port: int | str) -> int:
    """A probe's or a Service's port, by number or by the container port's name."""
    if isinstance(port, int):
        return port
    (number,) = (p["containerPort"] for p in container["ports"] if p.get("name") == port)
    return int(number)


def mount_of(container: Doc, path: str) -> Doc:
    """The volume mount ``path`` lies in."""
    found = [m for m in container["volumeMounts"] if Path(path).is_relative_to(m["mountPath"])]
    assert found, f"{path} is on no volume"
    return max(found, key=lambda m: len(m["mountPath"]))


def pod_volume(name: str) -> Doc:
    volumes: list[Doc] = k8s_server()["spec"]["template"]["spec"]["volumes"]
    (volume,) = (v for v in volumes if v["name"] == name)
    return volume


def test_server_args_are_a_real_farm_serve_command_line() -> None:
    assert "command" not in server_container(), "the image's entrypoint is farm"
    check_serve_args(server_args())
    assert option_value(server_args(), "--port") == option_value(
        compose_command(compose_server()), "--port"
    )


def test_server_image_is_the_workers_image() -> None:
    assert server_container()["image"] == worker_container()["image"]


def test_server_gets_the_broker_and_database_urls_from_its_environment() -> None:
    env = server_env()
    services = {
        s["metadata"]["name"]: {int(p["port"]) for p in s["spec"]["ports"]}
        for s in of_kind("Service")
    }
    for name, scheme in (("FARM_BROKER_URL", "redis"), ("FARM_DATABASE_URL", "postgres")):
        url = urlsplit(env[name]["value"])
        assert url.scheme.startswith(scheme), url
        assert url.port in services[str(url.hostname)], f"{name}: no Service {url.netloc}"
        (password,) = re.findall(r"^\$\((\w+)\)$", url.password or "")
        assert "secretKeyRef" in env[password]["valueFrom"], f"{password} is not from a Secret"


def test_server_secrets_are_referenced_with_farm_names() -> None:
    env = server_env()
    secrets = [name for name in env if SECRET_NAME.search(name)]
    assert {"FARM_API_TOKEN", "FARM_WEBHOOK_SECRET", "FARM_FORGE_TOKEN"} <= set(secrets)
    for name in secrets:
        assert "valueFrom" in env[name], f"{name} is inline"
    for name, entry in env.items():
        if "valueFrom" in entry:
            assert name.startswith("FARM_"), f"{name} would reach the tested code"


def test_server_config_is_mounted_read_only_from_its_config_map_and_valid() -> None:
    config = Path(option_value(server_args(), "--config") or "")
    mount = mount_of(server_container(), str(config))
    assert mount.get("readOnly") is True
    assert config.parent == Path(mount["mountPath"]), "a ConfigMap mounts its keys as files"
    map_name = pod_volume(mount["name"])["configMap"]["name"]
    assert map_name == "farm-server-config"
    (config_map,) = (m for m in of_kind("ConfigMap") if m["metadata"]["name"] == map_name)
    check_server_config(config_map["data"][config.name], set(server_env()))


def test_server_keeps_state_and_cache_on_a_volume() -> None:
    env = server_env()
    for variable in ("FARM_STATE_DIR", "FARM_CACHE_DIR"):
        mount = mount_of(server_container(), env[variable]["value"])
        assert not mount.get("readOnly"), f"{variable} must be writable"
        volume = pod_volume(mount["name"])
        assert "emptyDir" in volume or "persistentVolumeClaim" in volume, volume


def test_server_probes_check_its_health_on_its_port() -> None:
    container = server_container()
    port = int(option_value(server_args(), "--port") or 0)
    for probe in ("readinessProbe", "livenessProbe"):
        check = container[probe]["httpGet"]
        assert check["path"] == HEALTH_PATH, probe
        assert container_port(container, check["port"]) == port, probe


def test_server_service_selects_the_server_pods_on_its_port() -> None:
    (service,) = (s for s in of_kind("Service") if s["metadata"]["name"] == "farm-server")
    selector = service["spec"]["selector"]
    selected = [
        w["metadata"]["name"]
        for w in workloads()
        if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
    ]
    assert selected == ["farm-server"]
    port = int(option_value(server_args(), "--port") or 0)
    container = server_container()
    targets = [container_port(container, p["targetPort"]) for p in service["spec"]["ports"]]
    assert targets == [port]


def test_server_is_unprivileged_without_an_api_token_and_stops_gracefully() -> None:
    pod = k8s_server()["spec"]["template"]["spec"]
    container = server_container()
    assert k8s_server()["spec"]["replicas"] == 1
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert pod["terminationGracePeriodSeconds"] >= SERVER_MIN_STOP_GRACE_S
    assert container["resources"]["requests"]
