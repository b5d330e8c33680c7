"""What the tests of deploy/ read: the deployment files, parsed, and farm's command lines.

No container engine or cluster is needed: the files are parsed, and every farm
command line in them is checked against the real click commands (:func:`check_farm_args`).
"""

from __future__ import annotations

import configparser
import json
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

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


# Variables that hold secrets must come from deploy/.env or a Secret, never inline.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN")


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


def final_stage() -> list[tuple[str, str]]:
    """The instructions of the image that is shipped: from the last FROM on."""
    instructions = dockerfile()
    starts = [i for i, (key, _) in enumerate(instructions) if key == "FROM"]
    assert starts, "the Dockerfile has no FROM"
    return instructions[starts[-1] :]


# --- systemd -----------------------------------------------------------------


def unit() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text(encoding="utf-8"))
    return parser


def exec_start() -> list[str]:
    return shlex.split(unit()["Service"]["ExecStart"])
