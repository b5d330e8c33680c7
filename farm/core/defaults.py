"""Every default farm has, written once.

Settings (:mod:`farm.core.settings`), the wire messages' optional fields
(:mod:`farm.core.messages`), the worker's configuration and the planners all take
their defaults from here, so a default is changed in one place.
"""

from __future__ import annotations

from farm.core.domain import FlakyPolicy

# Names farm gives what it shares with other users of one Redis server.
KEY_PREFIX = "farm:"  # every Redis key farm writes starts with it (Celery's queues too)
QUEUE = "farm"  # the Celery queue shards go on
RUN_TTL_S = 24 * 3600  # every Redis key of a run expires after this
STATE_DIR = ".farm"  # the submitter's folder for the embedded Redis and SQLite, never packed

# Planning.
STRATEGY = "lpt"
SHARD_OVERHEAD_S = 0.3  # what starting a test process for a shard costs
EWMA_ALPHA = 0.3  # weight of the newest duration in a test's history

# Retries, flaky tests and quarantine (the README justifies the quarantine numbers).
RETRIES = 1  # more attempts a failed test gets, each on another worker slot
RETRY_BUDGET = 0.05  # retries a run may spend, as a share of its tests (at least 1)
FLAKY = FlakyPolicy.PASS  # what a flaky test does to the verdict: pass (exit 0) or fail
NEW_TESTS_REPEAT = 0  # runs of a test never seen before; 0 or 1: run it once
QUARANTINE_FLAKY_RUNS = 3  # flaky in this many of its last QUARANTINE_WINDOW_RUNS: quarantined
QUARANTINE_WINDOW_RUNS = 30
QUARANTINE_CLEAN_RUNS = 30  # clean runs in a row that take a test out of quarantine
DURATION_WINDOW = 20  # recent durations kept per test for p50 and p90
# A slot that declines a retry stays busy this long, so the pool hands the retry,
# sent again at once, to another slot rather than straight back to it.
FOLLOW_UP_DECLINE_HOLD_S = 1.0  # on average: each hold is 0.5 to 1.5 times this
FOLLOW_UP_DECLINE_DELAY_S = 0.0  # a declined retry is sent again after this
# A retry declined for this long may run anywhere: the slots the registry counted
# are gone, or stay busy. Each decline sends it to the back of the queue, so on a
# busy farm it waits for the queue to drain, not for a fixed number of declines.
FOLLOW_UP_DECLINE_WAIT_S = 30.0

# What a test process may send and use.
RESULT_LIMIT_BYTES = 64 * 1024  # per traceback and per captured output
TEST_TIMEOUT_S = 900.0  # per test, unless its timeout marker says otherwise
# A test pytest-timeout times in its own process (its signal method) is stopped by
# farm only this long after its limit: pytest-timeout fails it first, as under pytest.
PYTEST_TIMEOUT_GRACE_S = 5.0
# pytest-randomly's ``last``: the seed of the latest of the project's last this many
# runs that used the plugin.
SEED_LOOKBACK_RUNS = 100
TEST_MEMORY_LIMIT_BYTES = 0  # address space of a test process; 0 is no limit
SPARE_IDLE_S = 120.0  # a spare test process nobody gives a shard exits after this
# Who a worker running as root runs its tests as, unless told (see farm.core.test_user).
ROOT_TEST_USER = "nobody"
# A shard's coverage data (pytest-cov), as its test processes dumped it (compressed):
# more is refused and the run's coverage reported incomplete. The data of a suite of
# some thousand source files takes a few MiB.
COVERAGE_LIMIT_BYTES = 64 * 1024 * 1024
# Modules a result names as having run before it in its process: the nearest ones.
MODULES_BEFORE_LIMIT = 500

# Liveness: how often things say they are alive, and how long silence is tolerated.
HEARTBEAT_S = 5.0  # a worker's heartbeat per running shard
LEASE_S = 30.0  # a shard whose lease is not renewed this long is handed out again
RUN_HEARTBEAT_S = 5.0  # the scheduler's heartbeat in its run's database row
RUN_DEADLINE_S = 60.0  # a run whose scheduler is silent this long is abandoned
WORKER_ANNOUNCE_S = 5.0  # a worker's entry in the registry is refreshed this often
WORKER_SEEN_S = 30.0  # registry entries older than this are not live workers
STALL_TIMEOUT_S = 120.0  # no event and no live worker this long ends the run
REDIS_OUTAGE_S = 120.0  # how long the scheduler waits for Redis to come back
WORKER_START_TIMEOUT_S = 60.0  # a run no worker takes in this long ends
BROKER_TIMEOUT_S = 5.0  # the broker must answer a PING within this
MAX_REISSUES = 3  # a shard handed out this many times more ends with error results
WORKER_MAX_FAILURES = 3  # shards in a row a worker may fail for its own reasons

# Code snapshots and the tests' environments.
SNAPSHOT_MAX_BYTES = 1 << 30  # unpacked size a worker accepts
CACHE_MAX_BYTES = 10 << 30  # unpacked snapshots a worker keeps
SETUP_TIMEOUT_S = 1800.0

# The submitter's terminal.
PROGRESS_INTERVAL_S = 5.0  # plain progress lines when not on a terminal

# The CI trigger and its server.
STATUS_CONTEXT = "farm"  # the one commit status (or check run) a change gets
WEBHOOK_MAX_BODY_BYTES = 5 * 1024 * 1024  # a larger webhook body is refused (413)
CONDUCTORS = 2  # server-triggered runs a `farm serve` (or `farm conductor`) conducts at once
METRICS_WINDOW_S = 3600.0  # /metrics: run durations, verdicts and flaky rate over this
SESSION_MAX_AGE_S = 7 * 24 * 3600.0  # a dashboard sign-in lasts this long

# Telling a forge (GitHub, GitLab) what a change's runs decided.
FORGE_TIMEOUT_S = 10.0  # each request to a forge's API: connecting, sending, reading
FORGE_RETRIES = 2  # further tries after a 5xx answer or a failed connection
FORGE_BACKOFF_S = 1.0  # the wait before the first retry, doubled before each next one
GITHUB_APP_JWT_S = 540  # a GitHub App's JWT lives this long (GitHub allows 600 s)
# An installation token (an hour on GitHub) is fetched anew this long before it
# expires, so no request carries one that expires on the way.
INSTALLATION_TOKEN_MARGIN_S = 300.0
# Failures a check run annotates; the rest are listed in its summary, since every
# 50 annotations cost one more request.
CHECK_RUN_ANNOTATIONS_LIMIT = 500

# The conductor's mirrors of the repositories server-triggered runs test.
GIT_FETCH_TIMEOUT_S = 600.0  # one git call over the network: a fetch, a listing of branches
GIT_LOCAL_TIMEOUT_S = 300.0  # one git call on local disk: a clone from the mirror, a checkout
MIRROR_LOCK_WAIT_S = 1800.0  # the wait for another conductor fetching the same repository

# farm ci, one step of a CI job.
CI_JUNIT_XML = "farm-junit.xml"  # where farm ci writes JUnit XML, in the working folder
# GitHub shows 10 error annotations per step; a few more are printed for the log, and
# one notice counts the rest.
CI_ERROR_ANNOTATIONS = 50
