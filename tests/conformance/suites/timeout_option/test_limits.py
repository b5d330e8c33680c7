"""pytest-timeout's limit from the command line (``--timeout=1``): a test past it fails
with pytest-timeout's own message and the run goes on; markers override it."""

import time

import pytest


@pytest.fixture
def slow_setup():
    time.sleep(1.5)
    yield


def test_fast():
    pass


def test_past_the_limit():
    time.sleep(2.5)


@pytest.mark.timeout(5)
def test_marker_gives_longer():
    time.sleep(1.5)


@pytest.mark.timeout(0)
def test_marker_gives_none():
    time.sleep(1.5)


@pytest.mark.timeout(1, func_only=True)
def test_only_the_call_is_timed(slow_setup):
    pass


def test_after():
    pass
