"""One seed per run for the plugins that shuffle tests: pytest-randomly and pytest-random-order.

pytest-randomly (active whenever installed, unless ``-p no:randomly``) shuffles the
tests and reseeds ``random`` (numpy, faker...) before each test from its seed;
pytest-random-order shuffles them when ``--random-order``,
``--random-order-bucket`` or ``--random-order-seed`` asks. Under farm every shard is
a pytest process of its own, which would draw a seed of its own: a run could never
be made again. So a run has one seed, fixed on the submitter:

- the user's, when an option names one (``--randomly-seed=N``,
  ``--random-order-seed=N``): it is in the pytest options every process gets;
- for pytest-randomly's ``last``, the seed the project's previous run used (farm's
  store keeps it: the workers' pytest has no cache to read it from);
- otherwise a new one (:func:`new_seed`).

The collection learns the seed from farm's collection plugin (:data:`SEED_OPTION`),
because before it nothing says which plugins are installed; it reports which are
active and how their seed options were given (:func:`given_seeds`), and the shards
get it the same way (:func:`seed_args`, applied by the worker's plugin); the
plugins' own options (:func:`seed_lines`) reproduce the run when given to ``farm
run`` or to pytest. The facts live in
:class:`~farm.core.pytest_options.PytestOptions` (``randomly_seed``,
``random_order_seed``, ``seed``); the collection cache keeps the first two, and
each run puts its own seed in (:func:`with_seed`), so a seed farm chose never
changes the request's cache key.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Container
from typing import Any

from farm.core.pytest_options import PytestOptions

SEED_OPTION = "--farm-seed"  # farm's collection and worker plugins: the run's seed
RANDOMLY = "randomly"  # the plugins' names to pytest's plugin manager
RANDOM_ORDER = "random_order"
_CHANCE = ("default", "last")  # pytest-randomly's values that name no seed
_RANDOM_ORDER_DEFAULT = "default:"  # how pytest-random-order marks a value not given


def new_seed() -> int:
    """A seed as pytest-randomly draws one: 32 random bits."""
    return random.Random().getrandbits(32)


def shufflers(plugin_manager: Any) -> set[str]:
    """The names of the shuffling plugins registered with pytest's ``plugin_manager``."""
    return {name for name in (RANDOMLY, RANDOM_ORDER) if plugin_manager.hasplugin(name)}


def given_seeds(option: Any, plugins: Container[str]) -> dict[str, str]:
    """The facts ``randomly_seed`` and ``random_order_seed`` of pytest's parsed options
    ``option`` (read before the plugins' ``pytest_configure`` replaces them), with
    ``plugins`` the names of the plugins registered."""
    facts = {"randomly_seed": "", "random_order_seed": ""}
    if RANDOMLY in plugins:
        facts["randomly_seed"] = str(getattr(option, "randomly_seed", "default"))
    if RANDOM_ORDER in plugins and _random_order_enabled(option):
        seed = str(getattr(option, "random_order_seed", _RANDOM_ORDER_DEFAULT))
        facts["random_order_seed"] = "default" if seed.startswith(_RANDOM_ORDER_DEFAULT) else seed
    return facts


def apply_seed(option: Any, seed: int) -> None:
    """Give the plugins ``seed`` in pytest's parsed options ``option``, wherever the
    user left theirs to chance (before their ``pytest_configure`` reads it)."""
    if getattr(option, "randomly_seed", None) in _CHANCE:
        option.randomly_seed = seed
    value = getattr(option, "random_order_seed", None)
    if isinstance(value, str) and value.startswith(_RANDOM_ORDER_DEFAULT):
        option.random_order_seed = f"{_RANDOM_ORDER_DEFAULT}{seed}"


def reorders(option: Any, plugins: Container[str]) -> bool:
    """Whether a plugin of ``plugins`` reorders the tests under pytest's options ``option``."""
    randomly = RANDOMLY in plugins and bool(getattr(option, "randomly_reorganize", True))
    return randomly or (RANDOM_ORDER in plugins and _random_order_enabled(option))


def _random_order_enabled(option: Any) -> bool:
    """pytest-random-order's own rule: asked for, or a bucket or a seed given."""
    given = (
        not str(getattr(option, name, _RANDOM_ORDER_DEFAULT)).startswith(_RANDOM_ORDER_DEFAULT)
        for name in ("random_order_bucket", "random_order_seed")
    )
    return bool(getattr(option, "random_order_enabled", False)) or any(given)


def uses_seed(options: PytestOptions) -> bool:
    """Whether a plugin that needs a seed is active."""
    return bool(options.randomly_seed or options.random_order_seed)


def wants_last(options: PytestOptions) -> bool:
    """Whether the seed is to be the previous run's (pytest-randomly's ``last``)."""
    return options.randomly_seed == "last"


def with_seed(options: PytestOptions, *, new: int, last: int | None = None) -> PytestOptions:
    """``options`` with this run's seed: ``last`` for pytest-randomly's ``last`` when
    there is one (pytest-randomly too draws a new one when it has none), else ``new``;
    None when no plugin needs one."""
    if not uses_seed(options):
        return dataclasses.replace(options, seed=None)
    seed = last if wants_last(options) and last is not None else new
    return dataclasses.replace(options, seed=seed)


def plugin_seeds(options: PytestOptions) -> dict[str, str]:
    """Each active plugin's seed option and the seed it uses in this run."""
    chosen = "" if options.seed is None else str(options.seed)
    seeds = {}
    if options.randomly_seed:
        given = options.randomly_seed
        seeds["--randomly-seed"] = chosen if given in _CHANCE else given
    if options.random_order_seed:
        given = options.random_order_seed
        seeds["--random-order-seed"] = chosen if given == "default" else given
    return {name: seed for name, seed in seeds.items() if seed}


def randomly_seed(options: PytestOptions) -> int | None:
    """The seed pytest-randomly uses in the run: what a later ``last`` means."""
    seed = plugin_seeds(options).get("--randomly-seed")
    return int(seed) if seed is not None and seed.lstrip("-").isdigit() else None


def seed_lines(options: PytestOptions) -> list[str]:
    """The seeds as the plugins print them in pytest's header."""
    return [f"Using {name}={seed}" for name, seed in plugin_seeds(options).items()]


def seed_args(options: PytestOptions) -> tuple[str, ...]:
    """farm's own option that gives every shard the run's seed where the user's options
    left it to chance (a seed the user gave is in their options already).

    Not the plugins' options: a worker's test environment (a setup command's) may
    lack a plugin the submitter has, and pytest refuses an option no plugin declares;
    farm's plugin, in every test process, puts the seed in for a plugin that is there.
    """
    if options.seed is None:
        return ()
    if options.randomly_seed in _CHANCE or options.random_order_seed == "default":
        return (f"{SEED_OPTION}={options.seed}",)
    return ()
