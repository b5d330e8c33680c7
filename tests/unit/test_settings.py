from pathlib import Path

import pytest

from farm.core.errors import SettingsError
from farm.core.settings import Settings, load_settings, make_state_dir


def write_pyproject(folder: Path, body: str) -> None:
    (folder / "pyproject.toml").write_text(body)


def test_defaults_without_any_source(tmp_path: Path) -> None:
    settings = load_settings({}, {}, tmp_path)
    assert settings.broker_url is None
    assert settings.workers >= 1
    assert settings.database_url_or_default.startswith("sqlite:///")


def test_flags_beat_env_beat_pyproject(tmp_path: Path) -> None:
    write_pyproject(tmp_path, '[tool.farm]\nworkers = 3\nstrategy = "modules"\nqueue = "q1"\n')
    env = {"FARM_WORKERS": "5", "FARM_QUEUE": "q2"}
    settings = load_settings({"workers": 7, "strategy": None}, env, tmp_path)
    assert settings.workers == 7  # flag
    assert settings.queue == "q2"  # env over pyproject
    assert settings.strategy == "modules"  # pyproject, flag unset


def test_pyproject_found_above_cwd_and_state_dir_relative_to_it(tmp_path: Path) -> None:
    write_pyproject(tmp_path, '[tool.farm]\nstate-dir = "var/farm"\n')
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    settings = load_settings({}, {}, sub)
    assert settings.state_dir == tmp_path / "var" / "farm"


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        ({"workers": 0}, {}, "workers must be at least 1"),
        ({}, {"FARM_WORKERS": "many"}, "workers must be a whole number"),
        ({}, {"FARM_BROKER_TIMEOUT_S": "-1"}, "broker_timeout_s must be above 0"),
    ],
)
def test_invalid_values_name_the_setting(
    tmp_path: Path, flags: dict[str, object], env: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(flags, env, tmp_path)


def test_unknown_pyproject_key_is_refused(tmp_path: Path) -> None:
    write_pyproject(tmp_path, "[tool.farm]\nworkerz = 3\n")
    with pytest.raises(SettingsError, match="unknown key 'workerz'"):
        load_settings({}, {}, tmp_path)


def test_broken_pyproject_is_one_error(tmp_path: Path) -> None:
    write_pyproject(tmp_path, "[tool.farm\n")
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings({}, {}, tmp_path)


def test_settings_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Settings().workers = 3  # type: ignore[misc]


def test_setup_settings_from_pyproject_and_env(tmp_path: Path) -> None:
    write_pyproject(
        tmp_path,
        '[tool.farm]\nsetup-command = "pip install -e .[test]"\n'
        'setup-files = ["pyproject.toml", "requirements/*.txt"]\n',
    )
    settings = load_settings({}, {"FARM_CACHE_MAX_BYTES": "1000"}, tmp_path)
    assert settings.setup_command == "pip install -e .[test]"
    assert settings.setup_files == ("pyproject.toml", "requirements/*.txt")
    assert settings.cache_max_bytes == 1000
    from_env = load_settings({}, {"FARM_SETUP_FILES": "a.txt, b.lock"}, tmp_path)
    assert from_env.setup_files == ("a.txt", "b.lock")


@pytest.mark.parametrize(
    ("snapshot", "broker", "rev", "on"),
    [
        ("auto", None, None, False),  # local workers share the disk
        ("auto", "redis://h:6379/0", None, True),
        ("off", "redis://h:6379/0", None, False),
        ("on", None, None, True),
        ("auto", None, "HEAD~1", True),  # a commit exists nowhere on disk
    ],
)
def test_when_runs_pack_their_code(
    tmp_path: Path, snapshot: str, broker: str | None, rev: str | None, on: bool
) -> None:
    settings = load_settings({"snapshot": snapshot, "broker_url": broker}, {}, tmp_path)
    assert settings.snapshots_on(rev=rev) is on


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"snapshot": "maybe"}, "snapshot must be auto, on or off"),
        ({"setup_files": "/etc/passwd"}, "must be relative to the project"),
        ({"setup_files": "../up.txt"}, "must be relative to the project"),
        ({"artifacts": "ftp://host/x"}, "artifacts"),
        ({"artifacts": "relative/dir"}, "artifacts"),
    ],
)
def test_invalid_snapshot_settings_name_the_problem(
    tmp_path: Path, flags: dict[str, object], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(flags, {}, tmp_path)


def test_a_state_folder_farm_creates_ignores_itself(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "repo" / ".farm")
    assert settings.database_url_or_default.endswith("/repo/.farm/farm.db")
    lines = (tmp_path / "repo" / ".farm" / ".gitignore").read_text().splitlines()
    assert lines[0].startswith("#") and lines[1:] == ["*"]


def test_an_existing_state_folder_is_left_as_it_is(tmp_path: Path) -> None:
    assert make_state_dir(tmp_path) == tmp_path
    assert not (tmp_path / ".gitignore").exists()
