"""One seed per run for the shuffling plugins: read from pytest's options, fixed once,
given back to every process, shown and kept."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path

import pytest

from farm.core.domain import Collection
from farm.core.pytest_options import PytestOptions
from farm.core.seeds import (
    RANDOM_ORDER,
    RANDOMLY,
    apply_seed,
    given_seeds,
    plugin_seeds,
    randomly_seed,
    reorders,
    seed_args,
    seed_lines,
    with_seed,
)
from farm.core.settings import Settings
from farm.run.records import settings_record, shard_template
from farm.run.request import RunRequest

BOTH = {RANDOMLY, RANDOM_ORDER}


def parsed(**options: object) -> Namespace:
    """pytest's parsed options as the two plugins leave them before their configure."""
    defaults: dict[str, object] = {
        "randomly_seed": "default",
        "randomly_reorganize": True,
        "random_order_enabled": False,
        "random_order_bucket": "default:module",
        "random_order_seed": "default:123456",
    }
    return Namespace(**{**defaults, **options})


@pytest.mark.parametrize(
    ("options", "plugins", "facts"),
    [
        ({}, set(), ("", "")),
        ({}, BOTH, ("default", "")),  # random-order installed but not asked for
        ({"randomly_seed": "last"}, {RANDOMLY}, ("last", "")),
        ({"randomly_seed": 42}, {RANDOMLY}, ("42", "")),
        ({"random_order_enabled": True}, {RANDOM_ORDER}, ("", "default")),
        ({"random_order_bucket": "class"}, {RANDOM_ORDER}, ("", "default")),
        ({"random_order_seed": "7"}, {RANDOM_ORDER}, ("", "7")),  # a seed enables it
        ({"random_order_seed": "7"}, set(), ("", "")),
    ],
)
def test_the_facts_say_which_plugin_is_active_and_how_its_seed_was_given(
    options: dict[str, object], plugins: set[str], facts: tuple[str, str]
) -> None:
    given = given_seeds(parsed(**options), plugins)
    assert (given["randomly_seed"], given["random_order_seed"]) == facts


def test_the_runs_seed_goes_where_the_user_left_it_to_chance() -> None:
    for chance in ("default", "last"):
        option = parsed(randomly_seed=chance)
        apply_seed(option, 99)
        assert (option.randomly_seed, option.random_order_seed) == (99, "default:99")
    option = parsed(randomly_seed=5, random_order_seed="abc")
    apply_seed(option, 99)
    assert (option.randomly_seed, option.random_order_seed) == (5, "abc")


def test_only_an_active_reordering_plugin_reorders() -> None:
    assert reorders(parsed(), {RANDOMLY})
    assert not reorders(parsed(randomly_reorganize=False), {RANDOMLY})  # it reseeds only
    assert not reorders(parsed(), {RANDOM_ORDER})
    assert reorders(parsed(random_order_enabled=True), {RANDOM_ORDER})
    assert not reorders(parsed(random_order_enabled=True), set())


def test_the_run_takes_a_new_seed_the_last_one_or_none() -> None:
    randomly = PytestOptions(randomly_seed="default")
    assert with_seed(randomly, new=7, last=3).seed == 7
    assert with_seed(PytestOptions(randomly_seed="last"), new=7, last=3).seed == 3
    # pytest-randomly too draws a new seed when it has no last one.
    assert with_seed(PytestOptions(randomly_seed="last"), new=7, last=None).seed == 7
    assert with_seed(PytestOptions(random_order_seed="default"), new=7).seed == 7
    # No plugin needs one: none, so no stale seed survives in a cached collection.
    assert with_seed(PytestOptions(seed=5), new=7).seed is None


def test_each_plugin_shows_the_seed_it_uses() -> None:
    both = PytestOptions(randomly_seed="last", random_order_seed="default", seed=11)
    assert plugin_seeds(both) == {"--randomly-seed": "11", "--random-order-seed": "11"}
    assert seed_lines(both) == ["Using --randomly-seed=11", "Using --random-order-seed=11"]
    assert seed_args(both) == ("--farm-seed=11",)
    assert randomly_seed(both) == 11
    # The user's own seeds are in their options already: shown, not added again.
    given = PytestOptions(randomly_seed="5", random_order_seed="x", seed=11)
    assert plugin_seeds(given) == {"--randomly-seed": "5", "--random-order-seed": "x"}
    assert seed_args(given) == ()
    assert randomly_seed(given) == 5
    assert randomly_seed(PytestOptions(random_order_seed="default", seed=11)) is None
    assert (plugin_seeds(PytestOptions()), seed_lines(PytestOptions())) == ({}, [])


def test_the_facts_round_trip_and_old_entries_read_without_them() -> None:
    options = PytestOptions(
        timeout_s=1.5,
        timeout_method="thread",
        timeout_func_only=True,
        randomly_seed="last",
        random_order_seed="default",
        seed=2**32 - 1,
    )
    assert PytestOptions.from_facts(options.to_facts()) == options
    old = PytestOptions.from_facts({"maxfail": 1, "reportchars": "fE"})
    assert (old.timeout_s, old.randomly_seed, old.seed) == (None, "", None)


def test_every_shard_and_the_record_carry_the_runs_seed_and_timeout(tmp_path: Path) -> None:
    options = PytestOptions(randomly_seed="default", seed=77, timeout_s=2.0)
    collection = Collection("/r", "", ("t.py::a",), options=options)
    task = shard_template(Settings(), "run", ("-x",), collection, None)
    assert task.pytest_args == ("-x", "--farm-seed=77")
    assert task.pytest_timeout_s == 2.0
    request = RunRequest(paths=(), pytest_args=("-x",), cwd=tmp_path, env={})
    record = settings_record(Settings(), request, collection, None)
    assert record["pytest_args"] == ["-x"]  # the request's, as the user gave them
    assert record["pytest_options"] == options.to_facts()
