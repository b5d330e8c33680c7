"""Terms shared by every part of farm: outcomes, verdicts, exit codes, test results.

A *node id* is pytest's id of one test relative to the suite's rootdir
(``tests/test_x.py::TestA::test_b[1]``). A *shard* is an ordered list of node ids
run by one pytest process on one worker. An *attempt* is one execution of one
test; a test's *final result* is its last attempt in a run.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from farm.core.coverage_result import CoverageResult
from farm.core.pytest_options import PytestOptions
from farm.core.pytest_report import ResultDetail


class Outcome(str, enum.Enum):
    """What one attempt of one test ended as."""

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    XFAILED = "xfailed"
    XPASSED = "xpassed"
    ERROR = "error"  # setup or teardown raised, or the worker could not run the test
    TIMEOUT = "timeout"
    CRASHED = "crashed"

    @property
    def is_failure(self) -> bool:
        return self in _FAILURES


_FAILURES = frozenset({Outcome.FAILED, Outcome.ERROR, Outcome.TIMEOUT, Outcome.CRASHED})


class Verdict(str, enum.Enum):
    """What a whole run decided."""

    PASSED = "passed"
    FAILED = "failed"
    FLAKY = "flaky"  # passed, but only after retries
    ERROR = "error"  # collection error or infrastructure failure: no trustworthy answer
    NO_TESTS = "no_tests"
    INTERRUPTED = "interrupted"


class FlakyPolicy(str, enum.Enum):
    """What a test that failed and then passed on a retry does to the verdict."""

    PASS = "pass"  # the verdict is flaky, exit 0: the failure was the test's, not the change's
    FAIL = "fail"  # the verdict is failed, for teams that treat flakiness as breakage


class RunState(str, enum.Enum):
    """Where a run is in its life."""

    PENDING = "pending"
    RUNNING = "running"
    FINISHED = "finished"
    ABANDONED = "abandoned"


class ExitCode(enum.IntEnum):
    """Process exit codes; pytest's meanings are kept where pytest has one."""

    OK = 0
    TESTS_FAILED = 1
    INTERRUPTED = 2  # Ctrl-C, or a collection error (as pytest reports it)
    INFRA_ERROR = 3  # broker, database or workers failed: the run has no answer
    USAGE_ERROR = 4
    NO_TESTS = 5


VERDICT_EXIT_CODES: dict[Verdict, ExitCode] = {
    Verdict.PASSED: ExitCode.OK,
    Verdict.FLAKY: ExitCode.OK,
    Verdict.FAILED: ExitCode.TESTS_FAILED,
    Verdict.INTERRUPTED: ExitCode.INTERRUPTED,
    Verdict.ERROR: ExitCode.INFRA_ERROR,
    Verdict.NO_TESTS: ExitCode.NO_TESTS,
}


@dataclass(frozen=True)
class TestResult:
    """One attempt of one test, as a worker reported it.

    ``duration_s`` is setup + call + teardown of the test itself; when the test was
    the first of its module in a shard, the module-scoped setup it paid is split off
    into ``module_setup_s`` so that history learns both costs apart.
    """

    __test__ = False  # not a pytest test class

    run_id: str
    shard_id: int
    lease: int
    node_id: str
    outcome: Outcome
    duration_s: float
    module_setup_s: float = 0.0
    worker: str = ""
    attempt: int = 1
    longrepr: str = ""  # traceback or skip reason, truncated
    output: str = ""  # captured stdout/stderr/log, truncated
    started_at: float = 0.0  # unix time the test started
    finished_at: float = 0.0  # unix time its report was made
    tally: Tally = ()  # pytest's summary categories of its reports; () when farm made it
    machine: str = ""  # the machine the worker slot runs on ("" when not known)
    # What pytest's end-of-run sections show of it (None: farm made it, or an older
    # worker sent it, or the store gave it back: the store does not keep it).
    detail: ResultDetail | None = None
    # The modules whose tests ran before this one in its test process, in the order
    # they ran (its own module left out; the nearest MODULES_BEFORE_LIMIT): sent only
    # for failing results and attempts after the first, None when not recorded.
    modules_before: tuple[str, ...] | None = None
    # The process's other modules, whose tests ran after this one: pytest imports
    # every module it collects before running any test, so these were imported too.
    modules_after: tuple[str, ...] = ()


Tally = tuple[tuple[str, int], ...]
"""How one test counts in pytest's summary line: ``(("failed", 1), ("error", 1))``
for a test that failed and then errored in teardown, ``(("passed", 1),
("subtests passed", 3))`` with subtests under ``-v``. pytest counts reports, not
tests; the test process names each report's category with pytest's own hook."""


def module_of(node_id: str) -> str:
    """The module part of a node id: the file path before the first ``::``."""
    return node_id.split("::", 1)[0]


def is_test(node_id: str) -> bool:
    """Whether ``node_id`` names a test, not a collector that skipped itself (a module
    or folder: a test's node id always names its file first, then ``::``)."""
    return "::" in node_id


@dataclass(frozen=True)
class History:
    """What the store knows of past runs of one project, for estimating.

    ``test_duration_s`` maps node id to its expected duration (setup + call +
    teardown, without module-scoped setup); ``module_setup_s`` maps a module path to
    the expected cost of its module-scoped fixtures, paid once per shard that runs
    any of its tests.
    """

    test_duration_s: dict[str, float]
    module_setup_s: dict[str, float]


@dataclass(frozen=True)
class ShardTimeline:
    """Where and when one shard ran: ``worker`` is the slot (``name:pid``) on ``machine``;
    times are unix seconds, 0 when unknown (never started, or lost)."""

    shard_id: int
    tests: int
    worker: str
    machine: str
    started_at: float
    finished_at: float


@dataclass(frozen=True)
class CodeInfo:
    """The snapshot a run tested, and what publishing it cost the submitter."""

    digest: str
    size_bytes: int
    uploaded_bytes: int
    pack_s: float
    upload_s: float


@dataclass(frozen=True)
class ChangeRef:
    """The change a run tests: one commit of one repository.

    ``repository`` names it as its remote does (or the checkout's folder when it has
    no remote); ``pull_request`` and ``author`` are "" when not known.
    """

    repository: str
    commit_sha: str
    branch: str = ""
    pull_request: str = ""
    author: str = ""


@dataclass(frozen=True)
class MachineSuspect:
    """A test whose failures all came from one machine while it passed on others:
    the machine, not the test, is the likely cause."""

    node_id: str
    machine: str
    failures: int  # failing attempts of the test, all of them on ``machine``
    passes_elsewhere: int  # passing attempts on other machines

    def sentence(self) -> str:
        return (
            f"{self.failures} of {self.failures} failures of {self.node_id} on "
            f"{self.machine}, {self.passes_elsewhere} passes elsewhere"
        )


class OrderSign(str, enum.Enum):
    """Why a test may depend on the order its process ran modules in."""

    FLAKY = "flaky"  # a retry passed in a process that ran other modules before it
    REGRESSED = "regressed"  # failed here, passed in the change's previous run


@dataclass(frozen=True)
class AttemptOrder:
    """One attempt of a test, where it ran and which modules ran before it in its
    process, and which it imported but ran after it (see
    :attr:`TestResult.modules_before`; None: not known). ``planned``: read from its
    shard's plan, as its process did not report it."""

    run_id: str
    attempt: int
    outcome: Outcome
    worker: str
    machine: str
    modules_before: tuple[str, ...] | None
    modules_after: tuple[str, ...] = ()
    planned: bool = False

    @property
    def process_modules(self) -> tuple[str, ...]:
        """Every other module of its process, in the order their tests ran."""
        return (*(self.modules_before or ()), *self.modules_after)

    @classmethod
    def of(cls, result: TestResult) -> AttemptOrder:
        return cls(
            result.run_id,
            result.attempt,
            result.outcome,
            result.worker,
            result.machine,
            result.modules_before,
            result.modules_after,
        )


@dataclass(frozen=True)
class OrderSuspect:
    """A test whose outcome changed with the modules run before it: its attempts,
    oldest first (the change's previous run first, for ``REGRESSED``)."""

    node_id: str
    sign: OrderSign
    attempts: tuple[AttemptOrder, ...]


@dataclass(frozen=True)
class Retries:
    """What a run spent on retrying failed tests.

    ``budget`` is how many retries the run could spend; ``spent`` how many it did;
    ``denied`` the failed tests left without a retry because the budget ran out.
    """

    allowed: int = 0  # more attempts per failed test (``--retries``)
    budget: int = 0
    spent: int = 0
    denied: tuple[str, ...] = ()

    @property
    def exhausted(self) -> bool:
        return bool(self.denied)


@dataclass(frozen=True)
class StepwiseMark:
    """Where a ``--sw`` run left off, as pytest's stepwise cache keeps it: the test the
    next ``--sw`` run starts from (None: the first), and how many tests it counted
    (another count next time means the suite changed, and the run starts over)."""

    last_failed: str | None
    test_count: int


@dataclass(frozen=True)
class RunFindings:
    """What a finished run found, by test, kept with the run so that a change's
    verdict can be computed from its runs without reading every attempt again.

    ``failed`` failed on every attempt and count against the verdict;
    ``quarantined_failures`` failed too but were quarantined; ``flaky`` failed and
    then passed; ``new_flaky`` are tests never seen before whose repeats disagreed;
    ``order_dependent`` failed after other modules than those that ran before a
    passing attempt (see :class:`OrderSuspect`), so they may depend on order.
    """

    failed: tuple[str, ...] = ()
    flaky: tuple[str, ...] = ()
    quarantined_failures: tuple[str, ...] = ()
    new_flaky: tuple[str, ...] = ()
    retries: Retries = Retries()
    first_failure_s: float | None = None
    order_dependent: tuple[str, ...] = ()  # outcome changed with the modules before it
    stepwise: StepwiseMark | None = None  # where a --sw run left off


@dataclass(frozen=True)
class RunSummary:
    """Everything the end-of-run reports need: the verdict and one final result per test.

    ``results`` holds the final result of every test that reported, in collection
    order; ``missing`` the node ids that never got one (lost, so never a pass).
    """

    run_id: str
    verdict: Verdict
    collected: int
    results: tuple[TestResult, ...]
    missing: tuple[str, ...]
    makespan_s: float
    estimated_makespan_s: float
    workers: int
    message: str = ""  # why the verdict is error or interrupted
    started_at: float = 0.0
    finished_at: float = 0.0
    shards: tuple[ShardTimeline, ...] = ()
    code: CodeInfo | None = None  # None when workers read the submitter's disk
    deselected: int = 0  # left out by -k, -m or --deselect
    collect_warnings: int = 0  # warnings raised while collecting, not by a test
    options: PytestOptions = field(default_factory=PytestOptions)
    stopped_after: int = 0  # failures that stopped the run (-x, --maxfail); 0: not stopped
    # Modules that failed to collect: the run stopped before running anything, and its
    # results are one error per such module, as pytest reports them.
    collection_errors: int = 0
    # Every attempt that is not a test's final result (failed attempts a retry
    # followed, repeats of new tests), in the order they finished.
    earlier_attempts: tuple[TestResult, ...] = ()
    flaky: tuple[str, ...] = ()  # failed, then passed on a retry (collection order)
    quarantined_failures: tuple[str, ...] = ()  # failed, but quarantined: not held against it
    new_flaky: tuple[str, ...] = ()  # tests never seen before whose repeats disagreed
    retries: Retries = Retries()
    first_failure_s: float | None = None  # run start to its first failing result
    suspects: tuple[MachineSuspect, ...] = ()
    change: ChangeRef | None = None
    # Where pytest ran on the submitter: node ids and paths are shown relative to
    # ``invocation_dir``, as pytest shows them ("" for both: as they are).
    rootdir: str = ""
    invocation_dir: str = ""
    collection_warnings: tuple[CollectWarning, ...] = ()  # raised while collecting
    order_suspects: tuple[OrderSuspect, ...] = ()  # tests that may depend on order
    # Why the run stopped early other than -x/--maxfail, in pytest's words (--sw:
    # "Test failed, continuing from this test next run."); pytest exits 2 then.
    stop_reason: str = ""
    coverage: CoverageResult | None = None  # a run under --cov: what pytest-cov would say


@dataclass(frozen=True)
class Collection:
    """What pytest collected: node ids relative to ``rootdir``, in collection order.

    ``inifile`` is the configuration file pytest used ("" for none); ``modules`` are
    the test files seen, in order, with or without tests (empty when not known).
    A module that skipped itself while being collected (``pytest.importorskip`` at
    module level) is one entry of ``node_ids``, named by its own node id, as pytest
    counts and reports it. ``deselected`` counts the tests ``-k``, ``-m`` or
    ``--deselect`` left out, ``warnings`` those raised while collecting.
    """

    rootdir: str
    inifile: str
    node_ids: tuple[str, ...]
    modules: tuple[str, ...] = ()
    deselected: int = 0
    warnings: int = 0
    options: PytestOptions = field(default_factory=PytestOptions)
    warnings_shown: tuple[CollectWarning, ...] = ()  # the ``warnings``, as pytest shows them


@dataclass(frozen=True)
class CollectWarning:
    """A warning raised while collecting, as pytest's warnings summary shows it: its
    ``location`` (a node id, or ``path:line`` relative to the invocation folder) and
    pytest's ``message`` of it."""

    location: str
    message: str
