"""Tests that fail once and then pass, tests that always fail, and tests a retry
does not touch: farm --retries 1 against pytest-rerunfailures --reruns 1."""

from pathlib import Path

import pytest

STATE = Path(__file__).parent / ".attempts"


def attempt(name: str) -> int:
    """This run's attempt number of ``name``; the folder is emptied between runs."""
    STATE.mkdir(exist_ok=True)
    marker = STATE / name
    count = len(marker.read_text()) + 1 if marker.exists() else 1
    marker.write_text("x" * count)
    return count


@pytest.fixture
def setup_fails_once():
    if attempt("setup") == 1:
        raise RuntimeError("setup failed on the first attempt")


def test_passes():
    pass


def test_fails_once():
    assert attempt("call") > 1, "failed on the first attempt"


def test_setup_error_once(setup_fails_once):
    pass


def test_always_fails():
    assert 1 == 2


@pytest.mark.parametrize("n", [1, 2, 3])
def test_params(n):
    assert n


@pytest.mark.parametrize("n", [1, 2])
def test_param_fails_once(n):
    assert attempt(f"param{n}") > 1


def test_skipped():
    pytest.skip("not here")


@pytest.mark.xfail(reason="known")
def test_xfail():
    assert False


class TestKept:
    def test_method_fails_once(self):
        assert attempt("method") > 1

    def test_method_passes(self):
        pass
