"""The forge-neutral status and its mappings: verdicts to states, states to each
forge's words, and the cuts that keep a status within GitHub's limits."""

from __future__ import annotations

import pytest

from farm.core.domain import Verdict
from farm.core.errors import SettingsError
from farm.forge.github import CHECK_CONCLUSIONS, annotation_fields, owner_repo
from farm.forge.gitlab import GITLAB_STATES
from farm.forge.status import (
    ANNOTATIONS_PER_REQUEST,
    DESCRIPTION_LIMIT,
    SUMMARY_LIMIT,
    Annotation,
    StatusState,
    annotation_batches,
    cut_bytes,
    error_description,
    repository_path,
    short_description,
    split_annotations,
    state_for_verdict,
    summary_with_listed,
)


def failures(count: int, path: str = "tests/test_x.py") -> tuple[Annotation, ...]:
    return tuple(Annotation(path, i + 1, f"test_{i}", f"assert {i} == 0") for i in range(count))


@pytest.mark.parametrize(
    ("verdict", "state"),
    [
        (Verdict.PASSED, StatusState.SUCCESS),
        (Verdict.FLAKY, StatusState.SUCCESS),
        (Verdict.FAILED, StatusState.FAILURE),
        (Verdict.ERROR, StatusState.ERROR),
        (Verdict.NO_TESTS, StatusState.ERROR),
        (Verdict.INTERRUPTED, StatusState.ERROR),
    ],
)
def test_each_verdict_has_its_state(verdict: Verdict, state: StatusState) -> None:
    assert state_for_verdict(verdict) is state


def test_no_state_passes_a_change_that_was_not_shown_to_work() -> None:
    # Every forge word for error and failure blocks a merge: none is GitHub's "neutral".
    for state in (StatusState.FAILURE, StatusState.ERROR):
        assert CHECK_CONCLUSIONS[state] == "failure"
        assert GITLAB_STATES[state] == "failed"
    assert CHECK_CONCLUSIONS[StatusState.PENDING] is None  # stays in progress
    assert GITLAB_STATES[StatusState.PENDING] == "running"
    assert set(CHECK_CONCLUSIONS) == set(GITLAB_STATES) == set(StatusState)


def test_a_description_is_one_line_cut_to_140_characters() -> None:
    assert short_description("3 failed,\n 10 passed") == "3 failed, 10 passed"
    long = "é" * 200  # two bytes each: the limit counts characters
    cut = short_description(long)
    assert len(cut) == DESCRIPTION_LIMIT
    assert cut == "é" * (DESCRIPTION_LIMIT - 1) + "…"
    exact = "x" * DESCRIPTION_LIMIT
    assert short_description(exact) == exact


def test_an_error_says_so_where_the_forge_has_no_error_state() -> None:
    assert error_description(StatusState.ERROR, "workers lost") == "error: workers lost"
    assert error_description(StatusState.ERROR, "Error: no tests ran") == "Error: no tests ran"
    assert error_description(StatusState.ERROR, "") == "error"
    assert error_description(StatusState.FAILURE, "2 failed") == "2 failed"
    assert len(error_description(StatusState.ERROR, "y" * 300)) == DESCRIPTION_LIMIT


def test_a_message_is_cut_to_its_bytes_on_a_character_boundary() -> None:
    text = "€" * 30000  # three bytes each
    cut = cut_bytes(text, 64 * 1024)
    assert len(cut.encode("utf-8")) <= 64 * 1024
    assert cut.endswith("…") and set(cut[:-1]) == {"€"}
    assert len(cut.encode("utf-8")) > 64 * 1024 - 6  # nothing more than a character lost
    assert cut_bytes("short", 10) == "short"
    assert cut_bytes("E   b'\udcff'", 100) == "E   b'?'"  # a byte kept by surrogateescape


def test_annotations_go_fifty_to_a_request_in_order() -> None:
    batches = annotation_batches(failures(120))
    assert [len(b) for b in batches] == [50, 50, 20]
    assert [a for b in batches for a in b] == list(failures(120))
    assert annotation_batches(()) == ()
    assert len(annotation_batches(failures(ANNOTATIONS_PER_REQUEST))) == 1


def test_past_the_limit_and_without_a_path_failures_are_listed_instead() -> None:
    unplaced = Annotation("", None, "tests/test_y.py::test_setup", "error in setup")
    annotated, listed = split_annotations((*failures(7), unplaced), 5)
    assert annotated == failures(5)
    assert listed == (*failures(7)[5:], unplaced)
    summary = summary_with_listed("**2 failed**", listed)
    assert summary.startswith("**2 failed**\n\n3 more not annotated on their lines:")
    assert "- `tests/test_x.py:6` test_5" in summary
    assert summary.splitlines()[-1] == "- tests/test_y.py::test_setup"
    assert summary_with_listed("all passed", ()) == "all passed"


def test_a_long_summary_is_cut_to_githubs_limit() -> None:
    summary = summary_with_listed("s" * 70000, failures(3))
    assert len(summary) == SUMMARY_LIMIT and summary.endswith("…")


def test_an_annotation_as_github_takes_it() -> None:
    whole_file = Annotation("tests/test_x.py", None, "test_a\nsecond line", "")
    fields = annotation_fields(whole_file)
    assert fields == {
        "path": "tests/test_x.py",
        "start_line": 1,
        "end_line": 1,
        "annotation_level": "failure",
        "title": "test_a second line",
        "message": "test_a\nsecond line",  # GitHub needs a message: the title stands in
    }
    assert annotation_fields(failures(3)[2])["start_line"] == 3


@pytest.mark.parametrize(
    ("name", "parts", "path"),
    [
        ("github.com/acme/shop", 2, "acme/shop"),
        ("ghe.example.com/acme/shop", 2, "acme/shop"),
        ("gitlab.com/acme/tools/shop", None, "acme/tools/shop"),
    ],
)
def test_a_repository_path_is_what_follows_the_host(
    name: str, parts: int | None, path: str
) -> None:
    assert repository_path(name, parts=parts) == path


@pytest.mark.parametrize(
    "name", ["shop", "github.com/acme", "github.com/a/b/c", "/srv/git/shop", "github.com/a/../b"]
)
def test_a_name_github_cannot_take_is_a_settings_error(name: str) -> None:
    with pytest.raises(SettingsError, match="is not named host/owner/repo"):
        owner_repo(name)


def test_owner_and_repo_are_escaped_as_path_segments() -> None:
    assert owner_repo("github.com/acme/shop.py") == "acme/shop.py"
    assert owner_repo("github.com/acme/a?b") == "acme/a%3Fb"
