"""pytest-timeout's limit from the ini file (``timeout = 1``), and markers overriding it
both ways."""

import time

import pytest


def test_fast():
    pass


def test_past_the_limit():
    time.sleep(2.5)


@pytest.mark.timeout(0.5)
def test_marker_gives_shorter():
    time.sleep(1)


@pytest.mark.timeout(4)
def test_marker_gives_longer():
    time.sleep(1.5)


class TestInAClass:
    def test_past_the_limit(self):
        time.sleep(2.5)

    def test_within(self):
        time.sleep(0.1)
