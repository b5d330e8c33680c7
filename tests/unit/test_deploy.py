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
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import yaml

from farm.cli.main import cli

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


def secret_refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        if "secretKeyRef" in node:
            yield node["secretKeyRef"]["name"]
        for value in node.values():
            yield from secret_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from secret_refs(value)


def test_secrets_referenced_are_declared_and_no_password_is_inline() -> None:
    declared = {s["metadata"]["name"] for s in of_kind("Secret")}
    for workload in workloads():
        assert set(secret_refs(workload)) <= declared, workload["metadata"]["name"]
        for container in containers(workload):
            for entry in container.get("env", []):
                if "PASSWORD" in entry["name"]:
                    assert "valueFrom" in entry, f"{entry['name']} is inline"


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
