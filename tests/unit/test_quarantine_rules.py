"""The pure quarantine rules: a run's letter, and when a test enters or leaves."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from farm.core.domain import Outcome
from farm.core.errors import UsageError
from farm.core.quarantine import (
    QuarantineAction,
    QuarantineDecision,
    QuarantineRules,
    decide,
    flaky_in_window,
    run_letter,
)
from farm.core.settings import Settings

RULES = QuarantineRules(flaky_runs=3, window_runs=10, clean_runs=5)
NOW = 1000.0


@dataclass(frozen=True)
class Entry:
    automatic: bool
    until_at: float | None = None


P, F, S, X = Outcome.PASSED, Outcome.FAILED, Outcome.SKIPPED, Outcome.XFAILED


@pytest.mark.parametrize(
    ("outcomes", "letter"),
    [
        ([P], "p"),
        ([X], "p"),
        ([Outcome.XPASSED], "p"),
        ([F, P], "k"),
        ([Outcome.TIMEOUT, Outcome.CRASHED, P], "k"),
        ([P, F], "k"),  # repeats of a new test that disagreed
        ([F], "f"),
        ([F, Outcome.ERROR], "f"),
        ([F, S], "f"),  # a skipped retry says nothing
        ([S, P], "p"),
        ([S], None),
        ([S, S], None),
        ([], None),
    ],
)
def test_run_letter(outcomes: list[Outcome], letter: str | None) -> None:
    assert run_letter(outcomes) == letter


def test_flaky_in_window_counts_only_the_last_runs() -> None:
    assert flaky_in_window("kkpppp", 4) == (0, 4)
    assert flaky_in_window("kkpppk", 4) == (1, 4)
    assert flaky_in_window("kk", 30) == (2, 2)
    assert flaky_in_window("", 30) == (0, 0)


def test_a_test_flaky_often_enough_enters() -> None:
    decision = decide(RULES, recent_outcomes="pkpfkpk", clean_streak=0, entry=None, now=NOW)
    assert decision == QuarantineDecision(
        QuarantineAction.ENTERED, "flaky in 3 of its last 7 runs", "farm"
    )
    full = "kpk" + "p" * 6 + "k"
    decision = decide(RULES, recent_outcomes=full, clean_streak=0, entry=None, now=NOW)
    assert decision is not None and decision.reason == "flaky in 3 of its last 10 runs"


def test_failures_and_old_flaky_runs_do_not_count() -> None:
    assert decide(RULES, recent_outcomes="ffffkk", clean_streak=0, entry=None, now=NOW) is None
    # Three flaky runs, but the first of them fell out of the window of 10.
    old = "k" + "kp" + "p" * 7 + "k"
    assert decide(RULES, recent_outcomes=old, clean_streak=0, entry=None, now=NOW) is None
    inside = "kk" + "p" * 7 + "k"
    assert decide(RULES, recent_outcomes=inside, clean_streak=0, entry=None, now=NOW) is not None


def test_a_test_clean_long_enough_does_not_enter_only_to_leave() -> None:
    # Rules tightened after the fact: three flaky runs in the window, but 5 clean since.
    outcomes = "kkk" + "p" * 5
    assert decide(RULES, recent_outcomes=outcomes, clean_streak=5, entry=None, now=NOW) is None
    decision = decide(RULES, recent_outcomes=outcomes, clean_streak=4, entry=None, now=NOW)
    assert decision is not None and decision.action is QuarantineAction.ENTERED


def test_an_automatic_entry_leaves_after_enough_clean_runs() -> None:
    entry = Entry(automatic=True)
    assert decide(RULES, recent_outcomes="kkkpppp", clean_streak=4, entry=entry, now=NOW) is None
    decision = decide(RULES, recent_outcomes="kkkppppp", clean_streak=5, entry=entry, now=NOW)
    assert decision == QuarantineDecision(QuarantineAction.LEFT, "5 clean runs in a row", "farm")


def test_a_quarantined_test_does_not_enter_again() -> None:
    for entry in (Entry(automatic=True), Entry(automatic=False)):
        assert decide(RULES, recent_outcomes="kkkk", clean_streak=0, entry=entry, now=NOW) is None


def test_a_manual_entry_never_leaves_by_clean_runs() -> None:
    entry = Entry(automatic=False, until_at=NOW + 1)
    assert decide(RULES, recent_outcomes="p" * 10, clean_streak=500, entry=entry, now=NOW) is None


@pytest.mark.parametrize("automatic", [True, False])
def test_any_entry_leaves_when_its_expiry_comes(automatic: bool) -> None:
    entry = Entry(automatic=automatic, until_at=NOW)
    decision = decide(RULES, recent_outcomes="kkk", clean_streak=0, entry=entry, now=NOW)
    assert decision == QuarantineDecision(QuarantineAction.LEFT, "expired", "farm")
    early = decide(RULES, recent_outcomes="kkk", clean_streak=0, entry=entry, now=NOW - 0.5)
    assert early is None


def test_rules_come_from_settings_and_are_checked() -> None:
    settings = Settings(quarantine_flaky_runs=2, quarantine_window_runs=7, quarantine_clean_runs=9)
    assert QuarantineRules.from_settings(settings) == QuarantineRules(2, 7, 9)
    assert QuarantineRules.from_settings(Settings()) == QuarantineRules(3, 30, 30)
    with pytest.raises(UsageError, match="flaky_runs must be at least 1"):
        QuarantineRules(0, 5, 5)
    with pytest.raises(UsageError, match=r"flaky_runs \(6\) must be at most window_runs \(5\)"):
        QuarantineRules(6, 5, 5)
