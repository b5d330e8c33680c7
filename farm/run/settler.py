"""The warm path of a run: settle shards dispatched from a guess on the real collection.

The loop steps the run's session (results keep flowing in and being stored) while
three things happen beside it, in the pool's threads: discovery of the test files,
a direct collection of the modules no worker will report on, and the workers'
own reports of what they collected. See :mod:`farm.scheduler.settle` for the rules.

The settler asks the run it settles for three things only (:class:`SettleHost`):
the result of a collection (a failed one ends the run), shards for tests the
guess lacked, and the end of the run when a worker could not collect a module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, NoReturn, Protocol

from farm.core.domain import Collection, Verdict, module_of
from farm.core.errors import CollectionError
from farm.core.messages import CollectFailed
from farm.run.request import RunRequest
from farm.scheduler.collect import collect, discover
from farm.scheduler.session import RunSession
from farm.scheduler.settle import Settlement


class SettleHost(Protocol):
    """What a settler needs of the run it settles."""

    def collected(self, collecting: Future[Collection]) -> Collection:
        """The collection ``collecting`` made; if it failed, the run ends and this raises."""
        ...

    def dispatch_more(self, node_ids: Sequence[str], where: Collection) -> None:
        """Plan and dispatch ``node_ids``, tests of ``where`` no shard holds yet."""
        ...

    def end(self, verdict: Verdict, message: str) -> None:
        """End the run now with ``verdict``."""
        ...


class CollectPool(Protocol):
    """Where collections run beside the settling loop (a thread pool)."""

    def submit(
        self, fn: Callable[..., Collection], /, *args: Any, **kwargs: Any
    ) -> Future[Collection]: ...


class Settler:
    """Steps one warm run's session until its collection is settled."""

    def __init__(
        self,
        host: SettleHost,
        request: RunRequest,
        session: RunSession,
        guess: Collection,
        pool: CollectPool,
        *,
        narrow: Callable[[Collection], Collection] | None = None,
    ) -> None:
        self.host = host
        # What the run owes of a collection (--lf, --sw, ...: see farm.run.rerun); None:
        # all of it. Tests the guess lacked then wait for the settled collection.
        self.narrow = narrow
        self.request = request
        self.session = session
        self.guess = guess
        self.pool = pool
        self.settlement = Settlement(guess.node_ids)
        self.discovering: Future[Collection] | None = pool.submit(
            discover,
            request.paths,
            request.pytest_args,
            cwd=request.cwd,
            env=request.env,
            test_user=request.test_user,
            seed=guess.options.seed,
        )
        self.collecting: Future[Collection] | None = None
        self.asked: list[str] = []
        # Only modules no worker will report are collected directly, so these
        # counts never meet a worker's count of the same module.
        self.direct_deselected = 0
        self.options = guess.options

    def settle(self) -> Collection:
        """Step the run until its collection is known; returns that collection."""
        while not self.settlement.ready:
            if self.session.tracker.stopped:  # -x or --maxfail: what ran is the run
                return dataclasses.replace(self.guess, node_ids=tuple(self.session.tracker.final))
            for event in self.session.step():
                if isinstance(event, CollectFailed):
                    self._fail(event)
                else:
                    self._learn(event.module, event.node_ids, event.deselected)
            if self.discovering is not None and self.discovering.done():
                found = self.host.collected(self.discovering)
                self.discovering = None
                if (found.rootdir, found.inifile) != (self.guess.rootdir, self.guess.inifile):
                    return self._start_over()
                self.options = found.options  # the ini file's addopts as they are now
                self._collect_directly(self.settlement.discovered(found.modules))
            if self.collecting is not None and self.collecting.done():
                self._learn_collected()
            idle = self.discovering is None and self.collecting is None
            if idle and not self.settlement.ready and self.session.tracker.shards_left == 0:
                # Every shard has ended, yet some modules were never reported (their
                # shards were lost or cancelled): collect those here.
                self._collect_directly(self.settlement.waiting())
        collected = self.settlement.collected()
        collection = Collection(
            self.guess.rootdir,
            self.guess.inifile,
            collected,
            modules=self.settlement.modules or (),
            deselected=self.settlement.deselected() + self.direct_deselected,
            # Warnings raised while importing test modules are only counted by a
            # collection of the whole suite: the last one's count stands.
            warnings=self.guess.warnings,
            options=self.options,
            warnings_shown=self.guess.warnings_shown,
        )
        self.session.settle(self._owed(collection, self.guess))
        return collection

    def _owed(self, collection: Collection, where: Collection) -> tuple[str, ...]:
        """The tests of ``collection`` the run owes, each in a shard (planned now if
        the run has none for it yet)."""
        if self.narrow is None:
            return collection.node_ids
        owed = self.narrow(collection).node_ids
        planned = self.session.tracker.shard_of
        unplanned = [node_id for node_id in owed if node_id not in planned]
        if unplanned:
            self.host.dispatch_more(unplanned, where)
        return owed

    def _learn(self, module: str, node_ids: Sequence[str], deselected: int = 0) -> None:
        extra = self.settlement.learn(module, node_ids, deselected)
        if extra and self.narrow is None:
            self.host.dispatch_more(extra, self.guess)

    def _collect_directly(self, modules: list[str]) -> None:
        if not modules:
            return
        rootdir = self.guess.rootdir
        args = [*self.request.pytest_args, "--rootdir", rootdir]
        if self.guess.inifile:
            args += ["-c", self.guess.inifile]
        self.asked = modules
        self.collecting = self.pool.submit(
            collect,
            modules,
            args,
            cwd=Path(rootdir),
            env=self.request.env,
            test_user=self.request.test_user,
            seed=self.guess.options.seed,  # the run's, for the plugins that shuffle tests
            # Files with no test left (none written, or all deselected) owe nothing;
            # that is no end of the run, which still owes what its shards run.
            require_tests=False,
        )

    def _learn_collected(self) -> None:
        collecting, self.collecting = self.collecting, None
        assert collecting is not None
        collection = self.host.collected(collecting)
        found = collection.node_ids
        self.direct_deselected += collection.deselected
        by_module: dict[str, list[str]] = {module: [] for module in self.asked}
        for node_id in found:
            by_module.setdefault(module_of(node_id), []).append(node_id)
        for module, node_ids in by_module.items():
            self._learn(module, node_ids)

    def _fail(self, event: CollectFailed) -> NoReturn:
        headline = event.longrepr.strip().splitlines()[-1] if event.longrepr.strip() else "?"
        error = CollectionError(
            f"collection error on a worker; first: {event.where}: {headline}",
            f"{event.where}:\n{event.longrepr}",
            ((event.where, event.longrepr),),
        )
        self.host.end(Verdict.ERROR, str(error))
        raise error

    def _start_over(self) -> Collection:
        """The rootdir moved: the guess names other tests. Collect and plan everything."""
        self.session.tracker.drop_shards(list(self.session.tracker.shards))
        request = self.request
        future = self.pool.submit(
            collect,
            request.paths,
            request.pytest_args,
            cwd=request.cwd,
            env=request.env,
            test_user=request.test_user,
            seed=self.guess.options.seed,
        )
        while not future.done():
            self.session.step()
        collection = self.host.collected(future)
        if self.narrow is None:
            self.host.dispatch_more(collection.node_ids, collection)
        self.session.settle(self._owed(collection, collection))
        return collection
