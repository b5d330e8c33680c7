"""One test of each kind pytest's end-of-run sections show."""

import sys
import warnings

import pytest


def test_pass():
    pass


def test_fail():
    assert 1 == 2


def test_error(broken):
    pass


def test_warn():
    warnings.warn("careful", UserWarning)


@pytest.mark.parametrize("i", [1, 2])
def test_warn_twice(i):
    warnings.warn(DeprecationWarning("old api"))


def test_skip():
    pytest.skip("nah")


@pytest.mark.skip(reason="marked")
def test_skip_mark():
    pass


@pytest.mark.xfail(reason="known")
def test_xfail():
    assert 0


@pytest.mark.xfail(reason="maybe")
def test_xpass():
    pass


@pytest.mark.xfail(strict=True, reason="strictly")
def test_xpass_strict():
    pass


def test_imperative_xfail():
    pytest.xfail("not now")


@pytest.mark.slow
def test_slow_prints():
    print("hello out")
    sys.stderr.write("hello err\n")


@pytest.mark.unregistered
def test_unknown_mark():
    pass


class TestGroup:
    def test_fail_then_teardown_error(self, bad_teardown):
        print("in call")
        assert False, "call failed"

    def test_teardown_error(self, bad_teardown):
        pass


def test_multiline_message():
    raise ValueError("line one\nline two")


def test_long_message():
    assert "a" * 100 == "b" * 100
