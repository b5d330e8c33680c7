"""When a test enters or leaves quarantine on its own: pure rules over its recent runs.

A quarantined test still runs and is still reported, but its failures do not fail
a run's verdict. Tests enter *automatically* when they were flaky in
``flaky_runs`` of their last ``window_runs`` runs, and such automatic entries end
after ``clean_runs`` clean runs in a row. People quarantine tests by hand too
(with a reason, an owner and maybe an expiry): clean runs never end those, only
their expiry or a person does. Any entry whose expiry has come ends.

A test's recent runs are written one letter a run, oldest first (see
:data:`CLEAN`, :data:`FLAKY`, :data:`FAILED`); the store keeps that string and
the count of clean runs in a row, and asks :func:`decide` after each run.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from farm.core.domain import Outcome
from farm.core.errors import UsageError
from farm.core.settings import Settings

# One letter per run of a test, in its recent outcomes.
CLEAN = "p"  # it ran and no attempt failed
FLAKY = "k"  # its attempts disagreed: one failed, another passed
FAILED = "f"  # it failed on every attempt

ACTOR = "farm"  # who quarantine events made by these rules name
EXPIRED = "expired"  # the reason of a quarantine that ended because its expiry came


class QuarantineAction(str, enum.Enum):
    """What a quarantine event did to a test."""

    ENTERED = "entered"
    LEFT = "left"


@dataclass(frozen=True)
class QuarantineRules:
    """Flaky in ``flaky_runs`` of the last ``window_runs`` runs: quarantined; then
    ``clean_runs`` clean runs in a row: out again."""

    flaky_runs: int
    window_runs: int
    clean_runs: int

    def __post_init__(self) -> None:
        for name in ("flaky_runs", "window_runs", "clean_runs"):
            if getattr(self, name) < 1:
                raise UsageError(f"quarantine {name} must be at least 1, not {getattr(self, name)}")
        if self.flaky_runs > self.window_runs:
            raise UsageError(
                f"quarantine flaky_runs ({self.flaky_runs}) must be at most "
                f"window_runs ({self.window_runs})"
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> QuarantineRules:
        return cls(
            flaky_runs=settings.quarantine_flaky_runs,
            window_runs=settings.quarantine_window_runs,
            clean_runs=settings.quarantine_clean_runs,
        )


class Standing(Protocol):
    """What the rules read of a test's current quarantine entry."""

    @property
    def automatic(self) -> bool: ...

    @property
    def until_at(self) -> float | None: ...


@dataclass(frozen=True)
class QuarantineDecision:
    """A test enters or leaves quarantine, by ``actor``, for ``reason``."""

    action: QuarantineAction
    reason: str
    actor: str = ACTOR


def run_letter(outcomes: Iterable[Outcome]) -> str | None:
    """The letter of one run of a test, from its attempts' outcomes in that run.

    Skipped attempts say nothing (the test did not really run): a run of skips only
    has no letter and leaves the test's recent outcomes and clean streak as they
    were. Any other outcome that is not a failure (passed, xfailed, xpassed) is a
    pass. Failing and passing attempts in one run, in either order (a retry that
    passed, repeats of a new test that disagreed), make it flaky.
    """
    failed = passed = False
    for outcome in outcomes:
        if outcome is Outcome.SKIPPED:
            continue
        if outcome.is_failure:
            failed = True
        else:
            passed = True
    if failed:
        return FLAKY if passed else FAILED
    return CLEAN if passed else None


def flaky_in_window(recent_outcomes: str, window_runs: int) -> tuple[int, int]:
    """How many of the last ``window_runs`` runs were flaky, and how many runs that is."""
    window = recent_outcomes[-window_runs:]
    return window.count(FLAKY), len(window)


def expired(entry: Standing, now: float) -> bool:
    """Whether the entry's expiry has come at ``now``."""
    return entry.until_at is not None and entry.until_at <= now


def decide(
    rules: QuarantineRules,
    *,
    recent_outcomes: str,
    clean_streak: int,
    entry: Standing | None,
    now: float,
) -> QuarantineDecision | None:
    """Whether one test enters or leaves quarantine now; None if it stays as it is.

    ``recent_outcomes`` are its runs' letters, newest last; ``clean_streak`` its
    clean runs in a row (not capped by the window); ``entry`` its quarantine now.
    A test already clean for ``clean_runs`` in a row does not enter, or an
    automatic entry would end at the next run and the test would come and go.
    """
    if entry is not None:
        if expired(entry, now):
            return QuarantineDecision(QuarantineAction.LEFT, EXPIRED)
        if entry.automatic and clean_streak >= rules.clean_runs:
            return QuarantineDecision(QuarantineAction.LEFT, f"{clean_streak} clean runs in a row")
        return None
    flaky, runs = flaky_in_window(recent_outcomes, rules.window_runs)
    if flaky >= rules.flaky_runs and clean_streak < rules.clean_runs:
        return QuarantineDecision(
            QuarantineAction.ENTERED, f"flaky in {flaky} of its last {runs} runs"
        )
    return None
