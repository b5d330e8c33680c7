from pathlib import Path

from farm.worker.envs import code_path, env_key

PATTERNS = ("pyproject.toml", "requirements*.txt", "requirements/*.txt")


def tree(tmp_path: Path, name: str, files: dict[str, str]) -> Path:
    root = tmp_path / name
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_code_changes_share_an_environment(tmp_path: Path) -> None:
    a = tree(tmp_path, "a", {"pyproject.toml": "[project]", "pkg/m.py": "x = 1"})
    b = tree(tmp_path, "b", {"pyproject.toml": "[project]", "pkg/m.py": "x = 2"})
    assert env_key(a, "pip install .", PATTERNS) == env_key(b, "pip install .", PATTERNS)


def test_dependency_files_and_the_command_make_the_key(tmp_path: Path) -> None:
    base = {"pyproject.toml": "[project]", "requirements/dev.txt": "pytest"}
    a = tree(tmp_path, "a", base)
    b = tree(tmp_path, "b", {**base, "requirements/dev.txt": "pytest==8"})
    c = tree(tmp_path, "c", {**base, "requirements-extra.txt": ""})
    keys = {
        env_key(a, "pip install .", PATTERNS),
        env_key(b, "pip install .", PATTERNS),
        env_key(c, "pip install .", PATTERNS),
        env_key(a, "pip install -e .", PATTERNS),
    }
    assert len(keys) == 4


def test_a_file_moved_between_names_changes_the_key(tmp_path: Path) -> None:
    a = tree(tmp_path, "a", {"requirements-a.txt": "x"})
    b = tree(tmp_path, "b", {"requirements-b.txt": "x"})
    assert env_key(a, "c", PATTERNS) != env_key(b, "c", PATTERNS)


def test_a_src_layout_puts_src_first(tmp_path: Path) -> None:
    flat = tree(tmp_path, "flat", {"pkg/__init__.py": ""})
    src = tree(tmp_path, "src-layout", {"src/pkg/__init__.py": ""})
    assert code_path(flat) == str(flat)
    assert code_path(src) == str(src / "src")
