"""The store's contract for pytest-randomly's ``last``: the seed of the project's
latest run that used the plugin, read from the options each run recorded."""

from __future__ import annotations

from store_fakes import FakeClock

from farm.core.pytest_options import PytestOptions
from farm.store import ResultStore


class TestLastSeedContract:
    def test_the_last_seed_is_the_latest_runs_that_used_pytest_randomly(
        self, store: ResultStore, clock: FakeClock
    ) -> None:
        def run(project: str, options: PytestOptions | None) -> None:
            facts = None if options is None else options.to_facts()
            store.create_run(project=project, trigger="cli", settings={"pytest_options": facts})
            clock.now += 1

        assert store.last_seed("proj") is None
        run("proj", PytestOptions(randomly_seed="default", seed=5))
        assert store.last_seed("proj") == 5
        run("proj", PytestOptions(randomly_seed="9", seed=5))  # the user's own seed
        run("proj", PytestOptions(random_order_seed="default", seed=3))  # another plugin
        run("proj", PytestOptions())  # no shuffling plugin
        run("proj", None)  # a collection that failed: no options
        store.create_run(project="proj", trigger="cli", settings={"workers": 2})  # older runs
        run("other", PytestOptions(randomly_seed="last", seed=1))
        assert store.last_seed("proj") == 9
        assert store.last_seed("other") == 1
        assert store.last_seed("none") is None
