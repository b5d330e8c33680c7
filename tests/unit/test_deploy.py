"""The deployment files under deploy/ agree with the code they start: every YAML file,
the compose and Kubernetes workers, Redis and PostgreSQL, what the Kubernetes manifests
say of each other, the Dockerfile and the systemd unit.

No container engine or cluster is needed: the files are parsed, and every farm
command line in them is checked against the real click commands, so renaming or
removing an option breaks these tests rather than a deployment. The server's
deployment is checked in test_deploy_server.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from deploy_files import (
    COMPOSE,
    DEPLOY,
    DOCKERFILE,
    DOCKERIGNORE,
    K8S,
    MIN_STOP_GRACE_S,
    ROOT,
    SECRET_NAME,
    check_farm_args,
    compose,
    compose_command,
    compose_worker,
    console_script,
    containers,
    copied_sources,
    dockerfile,
    env_of,
    exec_form,
    exec_start,
    final_stage,
    image_name,
    k8s_docs,
    k8s_worker,
    kustomization,
    last,
    load_docs,
    of_kind,
    option_value,
    pyproject,
    seconds,
    unit,
    worker_container,
    workloads,
    yaml_files,
)

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


# --- Dockerfile --------------------------------------------------------------


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
