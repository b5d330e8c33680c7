"""The deployment files under deploy/ agree with the code they start.

No container engine or cluster is needed: the files are parsed, and every farm
command line in them is checked against the real click commands, so renaming or
removing an option breaks these tests rather than a deployment.
"""

from __future__ import annotations

import configparser
import json
import re
import shlex
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
import yaml

from farm.cli.main import cli
from farm.core.server_config import parse_server_config

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"
UNIT = DEPLOY / "systemd" / "farm-worker.service"

# A worker stopped sooner than this is killed mid-shard; the container defaults
# (10 s in Docker, 30 s in Kubernetes) are too short.
MIN_STOP_GRACE_S = 60

Doc = dict[str, Any]


def yaml_files() -> list[Path]:
    return sorted({*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")})


def load_docs(path: Path) -> list[Any]:
    return list(yaml.safe_load_all(path.read_text(encoding="utf-8")))


def pyproject() -> dict[str, Any]:
    data: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return data


def console_script() -> str:
    """The name pyproject.toml installs for ``farm.cli.main:main``."""
    scripts = pyproject()["project"]["scripts"]
    names = [str(name) for name, target in scripts.items() if target == "farm.cli.main:main"]
    assert len(names) == 1, f"expected one console script for farm.cli.main:main, got {scripts}"
    return names[0]


def seconds(value: object) -> float:
    """A duration as compose, Kubernetes or systemd write it: 300, "300s", "5m", "1h30min"."""
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if text.isdigit():
        return float(text)
    units = {"h": 3600, "min": 60, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*(ms|min|h|m|s)", text)
    assert parts and "".join(n + u for n, u in parts) == text.replace(" ", ""), (
        f"cannot read the duration {value!r}"
    )
    return sum(float(number) * units[unit] for number, unit in parts)


def option_value(args: Sequence[str], flag: str) -> str | None:
    """The value after ``flag`` (or in ``flag=value``) in an argument list."""
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def check_farm_args(args: Sequence[str]) -> click.Command:
    """Assert ``args`` (what follows the program name) is a real farm command line.

    The subcommand must exist, every option must be a visible option of that
    subcommand, and every option that takes a value must get one.
    """
    assert args, "no farm subcommand given"
    name, *rest = args
    command = cli.commands.get(name)
    assert command is not None, f"{name!r} is not a farm subcommand: {sorted(cli.commands)}"
    assert not isinstance(command, click.Group), f"farm {name} needs a subcommand of its own"
    options = {
        opt: param
        for param in command.params
        if isinstance(param, click.Option)
        for opt in (*param.opts, *param.secondary_opts)
    }
    takes_arguments = any(isinstance(param, click.Argument) for param in command.params)
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg == "--":
            break
        if arg.startswith("-") and arg != "-":
            flag, has_value = arg.split("=", 1)[0], "=" in arg
            assert flag in options, f"farm {name} has no option {flag}: {sorted(options)}"
            param = options[flag]
            assert not param.hidden, f"farm {name} {flag} is internal, not for deployments"
            if not param.is_flag and not has_value:
                assert i + 1 < len(rest), f"farm {name} {flag} needs a value"
                i += 1
                value = rest[i]
                if not isinstance(param.type, click.Path):  # paths exist only where deployed
                    try:
                        param.type.convert(value, param, None)
                    except click.BadParameter as e:
                        pytest.fail(f"farm {name} {flag} {value!r}: {e.format_message()}")
        else:
            assert takes_arguments, f"farm {name} takes no argument, got {arg!r}"
        i += 1
    return command


def env_of(entries: Mapping[str, Any] | Sequence[str] | None) -> dict[str, str]:
    """A compose ``environment``, written as a mapping or as ``KEY=value`` lines."""
    if entries is None:
        return {}
    if isinstance(entries, Mapping):
        return {str(key): "" if value is None else str(value) for key, value in entries.items()}
    return {key: value for key, _, value in (entry.partition("=") for entry in entries)}


def image_name(image: str) -> str:
    """The repository part of an image reference, without tag or digest."""
    image = image.split("@", 1)[0]
    last = image.rsplit("/", 1)[-1]
    return image[: len(image) - len(last)] + last.split(":", 1)[0]


# --- every YAML file ---------------------------------------------------------


def test_there_are_yaml_files() -> None:
    assert COMPOSE in yaml_files()
    assert K8S / "kustomization.yaml" in yaml_files()


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_parses_into_non_empty_documents(path: Path) -> None:
    docs = load_docs(path)
    assert docs, f"{path} holds no document"
    for index, doc in enumerate(docs):
        assert doc, f"{path}: document {index} is empty"


# --- compose -----------------------------------------------------------------


def compose() -> Doc:
    doc = load_docs(COMPOSE)[0]
    assert isinstance(doc, dict)
    return doc


def compose_command(service: Doc) -> list[str]:
    command = service.get("command")
    assert command, "service has no command"
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def compose_worker() -> Doc:
    worker: Doc = compose()["services"]["worker"]
    return worker


def test_compose_worker_command_is_a_real_farm_worker_command_line() -> None:
    command = compose_command(compose_worker())
    assert command[0] == "worker"
    check_farm_args(command)


def test_compose_worker_gets_the_broker_from_its_environment_not_its_command() -> None:
    worker = compose_worker()
    assert "--broker" not in " ".join(compose_command(worker))
    broker = env_of(worker.get("environment"))["FARM_BROKER_URL"]
    assert urlsplit(broker).hostname in compose()["services"]


def test_compose_worker_gets_no_database_url() -> None:
    worker = compose_worker()
    env = env_of(worker.get("environment"))
    assert "FARM_DATABASE_URL" not in env
    assert not any(v.startswith(("postgres", "sqlite")) for v in env.values()), env
    # A file's contents could not be checked here.
    assert "env_file" not in worker
    assert "postgres" not in (worker.get("depends_on") or {})


def test_compose_worker_waits_for_a_healthy_redis() -> None:
    services = compose()["services"]
    depends_on = compose_worker()["depends_on"]
    assert depends_on["redis"]["condition"] == "service_healthy"
    assert services["redis"]["healthcheck"]["test"]


def test_compose_worker_is_replicated_and_stopped_gracefully() -> None:
    worker = compose_worker()
    assert int(worker["deploy"]["replicas"]) >= 1
    assert seconds(worker["stop_grace_period"]) >= MIN_STOP_GRACE_S
    assert "ports" not in worker, "workers only connect out"


def test_compose_worker_is_built_from_the_dockerfile() -> None:
    build = compose_worker()["build"]
    context = (COMPOSE.parent / build["context"]).resolve()
    assert context == ROOT
    assert (context / build["dockerfile"]).resolve() == DOCKERFILE


def test_compose_redis_keeps_nothing_and_never_evicts() -> None:
    command = compose_command(compose()["services"]["redis"])
    assert option_value(command, "--maxmemory-policy") == "noeviction"
    assert option_value(command, "--maxmemory"), "noeviction only acts under a maxmemory"
    assert option_value(command, "--save") == ""
    assert option_value(command, "--appendonly") == "no"


def test_compose_postgres_keeps_its_data_and_reports_health() -> None:
    compose_doc = compose()
    postgres = compose_doc["services"]["postgres"]
    volume = postgres["volumes"][0].split(":", 1)[0]
    assert volume in compose_doc["volumes"], "the data must be in a named volume"
    assert postgres["healthcheck"]["test"]


def test_compose_publishes_ports_on_a_chosen_address_only() -> None:
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            # "6379:6379" would publish on every interface of the host.
            host, _published, _target = str(port).rsplit(":", 2)
            assert host, f"{name} publishes {port!r} on every interface"


# --- the server in compose ---------------------------------------------------

# The server's stop: uvicorn answers the requests it holds (a forge never sends a
# failed delivery again), then the conductors end. The defaults (10 s in Docker,
# 30 s in Kubernetes) leave a slow request and a conductor's exit no margin.
SERVER_MIN_STOP_GRACE_S = 30
SERVER_CONFIG = DEPLOY / "server.toml"
ENV_EXAMPLE = DEPLOY / "env.example"
HEALTH_PATH = "/api/health"
# Variables that hold secrets must come from deploy/.env or a Secret, never inline.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN")


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


# --- Kubernetes --------------------------------------------------------------


def kustomization() -> Doc:
    doc = load_docs(K8S / "kustomization.yaml")[0]
    assert isinstance(doc, dict)
    return doc


def k8s_docs() -> list[Doc]:
    return [doc for name in kustomization()["resources"] for doc in load_docs(K8S / name)]


def of_kind(kind: str) -> list[Doc]:
    return [doc for doc in k8s_docs() if doc["kind"] == kind]


def workloads() -> list[Doc]:
    return [doc for doc in k8s_docs() if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet")]


def k8s_worker() -> Doc:
    found = [doc for doc in of_kind("Deployment") if doc["metadata"]["name"] == "farm-worker"]
    assert len(found) == 1
    return found[0]


def containers(workload: Doc) -> list[Doc]:
    result: list[Doc] = workload["spec"]["template"]["spec"]["containers"]
    return result


def worker_container() -> Doc:
    (container,) = containers(k8s_worker())
    return container


def test_kustomization_lists_every_manifest_and_only_existing_ones() -> None:
    listed = kustomization()["resources"]
    for name in listed:
        assert (K8S / name).is_file(), f"kustomization.yaml lists a missing {name}"
    present = {p.name for p in K8S.iterdir() if p.suffix in (".yaml", ".yml")}
    assert present - {"kustomization.yaml"} == set(listed)


def test_every_manifest_has_api_version_kind_and_name() -> None:
    for doc in k8s_docs():
        assert doc.get("apiVersion"), doc
        assert doc.get("kind"), doc
        assert doc.get("metadata", {}).get("name"), doc


def test_worker_image_is_the_compose_image_and_the_one_kustomize_rewrites() -> None:
    image = worker_container()["image"]
    assert image_name(image) == image_name(compose_worker()["image"])
    assert image_name(image) in {entry["name"] for entry in kustomization().get("images", [])}


def test_worker_args_are_a_real_farm_worker_command_line() -> None:
    container = worker_container()
    args = [str(a) for a in container["args"]]
    assert "command" not in container, "the image's entrypoint is farm"
    assert args[0] == "worker"
    check_farm_args(args)
    assert "--broker" not in args


def test_worker_gets_the_broker_url_and_no_database_url() -> None:
    env = {entry["name"]: entry for entry in worker_container()["env"]}
    assert "FARM_BROKER_URL" in env
    assert "FARM_DATABASE_URL" not in env
    # Secrets handed to the container by name: tests lose only FARM_* variables.
    for name, entry in env.items():
        if "valueFrom" in entry:
            assert name.startswith("FARM_"), f"{name} would reach the test processes"


def test_worker_stops_gracefully_unprivileged_with_a_cache_volume() -> None:
    pod = k8s_worker()["spec"]["template"]["spec"]
    container = worker_container()
    assert pod["terminationGracePeriodSeconds"] >= MIN_STOP_GRACE_S
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["resources"]["requests"]
    cache = option_value([str(a) for a in container["args"]], "--cache")
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert cache in mounts, "the --cache folder must be a volume"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts[cache]]


def test_redis_manifest_keeps_nothing_and_never_evicts() -> None:
    (redis,) = (d for d in of_kind("Deployment") if d["metadata"]["name"] == "farm-redis")
    (container,) = containers(redis)
    args = [str(a) for a in container.get("command", []) + container["args"]]
    assert option_value(args, "--maxmemory-policy") == "noeviction"
    assert option_value(args, "--maxmemory")
    assert option_value(args, "--save") == ""
    assert option_value(args, "--appendonly") == "no"


def test_workload_selectors_match_their_own_pods() -> None:
    for workload in workloads():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        selector = workload["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items(), workload["metadata"]["name"]


def test_every_service_selects_a_workload_with_its_target_ports() -> None:
    for service in of_kind("Service"):
        selector = service["spec"]["selector"]
        selected = [
            w
            for w in workloads()
            if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        name = service["metadata"]["name"]
        assert selected, f"Service {name} selects no pod"
        port_names = {
            port.get("name")
            for workload in selected
            for container in containers(workload)
            for port in container.get("ports", [])
        }
        for port in service["spec"]["ports"]:
            target = port.get("targetPort")
            if isinstance(target, str):
                assert target in port_names, f"Service {name}: no container port {target}"


def test_statefulsets_name_an_existing_service() -> None:
    services = {s["metadata"]["name"] for s in of_kind("Service")}
    for statefulset in of_kind("StatefulSet"):
        assert statefulset["spec"]["serviceName"] in services


def secret_refs(node: object) -> Iterator[dict[str, str]]:
    """Every ``secretKeyRef`` (name and key) below ``node``."""
    if isinstance(node, dict):
        if "secretKeyRef" in node:
            yield node["secretKeyRef"]
        for value in node.values():
            yield from secret_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from secret_refs(value)


def test_secrets_referenced_are_declared_and_no_password_is_inline() -> None:
    declared = {s["metadata"]["name"] for s in of_kind("Secret")}
    for workload in workloads():
        referenced = {ref["name"] for ref in secret_refs(workload)}
        assert referenced <= declared, workload["metadata"]["name"]
        for container in containers(workload):
            for entry in container.get("env", []):
                if SECRET_NAME.search(entry["name"]):
                    assert "valueFrom" in entry, f"{entry['name']} is inline"


def secret_declared_keys() -> dict[str, set[str]]:
    return {
        secret["metadata"]["name"]: {*secret.get("stringData", {}), *secret.get("data", {})}
        for secret in of_kind("Secret")
    }


def test_secret_keys_referenced_exist() -> None:
    declared = secret_declared_keys()
    for workload in workloads():
        for ref in secret_refs(workload):
            assert ref["key"] in declared[ref["name"]], f"Secret {ref['name']} has no {ref['key']}"


def test_env_references_name_variables_defined_before_them() -> None:
    # Kubernetes expands $(NAME) only for a variable listed earlier; otherwise the
    # text stays as it is, and the URL holds "$(NAME)" for a password.
    for workload in workloads():
        for container in containers(workload):
            defined: set[str] = set()
            for entry in container.get("env", []):
                for name in re.findall(r"\$\((\w+)\)", str(entry.get("value", ""))):
                    assert name in defined, f"{entry['name']} uses $({name}) before it is set"
                defined.add(entry["name"])


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


# --- Dockerfile --------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, rest) pairs, continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, rest = (pending + stripped).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends in a continuation line"
    return instructions


def last(keyword: str) -> str:
    found = [rest for key, rest in dockerfile() if key == keyword]
    assert found, f"the Dockerfile has no {keyword}"
    return found[-1]


def exec_form(keyword: str) -> list[str]:
    # The shell form would make sh PID 1, and SIGTERM would never reach farm.
    value = json.loads(last(keyword))
    assert isinstance(value, list) and all(isinstance(a, str) for a in value), value
    return value


def copied_sources() -> list[str]:
    sources: list[str] = []
    for keyword, rest in dockerfile():
        if keyword == "COPY" and "--from=" not in rest:
            sources.extend(rest.split()[:-1])
    return sources


def test_dockerfile_entrypoint_is_the_console_script() -> None:
    assert exec_form("ENTRYPOINT") == [console_script()]


def test_dockerfile_cmd_is_a_real_farm_command_line() -> None:
    cmd = exec_form("CMD")
    assert cmd[0] == "worker"
    check_farm_args(cmd)


def test_dockerfile_cache_folder_is_a_volume() -> None:
    cache = option_value(exec_form("CMD"), "--cache")
    assert cache
    volumes = [v for key, rest in dockerfile() if key == "VOLUME" for v in json.loads(rest)]
    assert cache in volumes


def final_stage() -> list[tuple[str, str]]:
    """The instructions of the image that is shipped: from the last FROM on."""
    instructions = dockerfile()
    starts = [i for i, (key, _) in enumerate(instructions) if key == "FROM"]
    assert starts, "the Dockerfile has no FROM"
    return instructions[starts[-1] :]


def test_dockerfile_installs_the_server_and_postgres_extras() -> None:
    installs = [rest for key, rest in dockerfile() if key == "RUN" and "pip install" in rest]
    extras = {
        extra.strip()
        for rest in installs
        for group in re.findall(r"\.\[([^\]]*)\]", rest)
        for extra in group.split(",")
    }
    assert {"server", "postgres"} <= extras, extras
    assert extras <= pyproject()["project"]["optional-dependencies"].keys(), extras


def test_dockerfile_installs_git_in_the_shipped_image() -> None:
    # Conductors fetch the repositories they test with git; the build stage's
    # packages are not in the shipped image.
    packages = {
        word
        for key, rest in final_stage()
        if key == "RUN"
        for command in rest.split("&&")
        if re.search(r"\bapt-get\s+install\b", command)
        for word in command.split()
        if not word.startswith("-")
    }
    assert "git" in packages, packages


def test_dockerfile_runs_as_a_numeric_non_root_user() -> None:
    user = last("USER").split(":", 1)[0]
    # Numeric, so Kubernetes can check runAsNonRoot against the image.
    assert user.isdigit() and int(user) != 0, user


def test_dockerfile_copies_what_the_package_build_needs_and_nothing_ignored() -> None:
    sources = copied_sources()
    assert pyproject()["project"]["readme"] in sources, "setuptools reads the readme"
    for source in sources:
        assert (ROOT / source).exists(), source
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    # Everything is left out of the context first (.venv, .farm, .git, deploy/.env),
    # then what the image is built from is let back in.
    assert patterns[0] == "*"
    for source in sources:
        assert f"!{source.rstrip('/')}" in patterns, f"{source} is left out of the context"


# --- systemd -----------------------------------------------------------------


def unit() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text(encoding="utf-8"))
    return parser


def exec_start() -> list[str]:
    return shlex.split(unit()["Service"]["ExecStart"])


def test_unit_starts_the_console_script_with_a_real_worker_command_line() -> None:
    argv = exec_start()
    program = Path(argv[0])
    assert program.is_absolute()
    assert program.name == console_script()
    assert argv[1] == "worker"
    check_farm_args(argv[1:])
    assert "--broker" not in argv


def test_unit_reads_the_broker_from_a_file_and_stops_gracefully() -> None:
    service = unit()["Service"]
    assert service["EnvironmentFile"].lstrip("-") == "/etc/farm/worker.env"
    assert service["KillSignal"] == "SIGTERM"
    # Only the worker gets SIGTERM; its test processes are its to stop.
    assert service["KillMode"] == "mixed"
    assert seconds(service["TimeoutStopSec"]) >= MIN_STOP_GRACE_S
    assert service["Restart"] == "on-failure"


def test_unit_is_unprivileged_and_can_write_its_cache() -> None:
    service = unit()["Service"]
    assert service["User"] not in ("", "root", "0")
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["PrivateTmp"] == "yes"
    cache = option_value(exec_start(), "--cache")
    assert cache in service["ReadWritePaths"].split()
