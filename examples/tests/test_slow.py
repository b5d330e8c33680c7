import time

import pytest


@pytest.mark.parametrize("seconds", [2.0, 1.2, 0.8, 0.5])
def test_batch_job(seconds):
    time.sleep(seconds)


def test_quick():
    assert "farm".upper() == "FARM"


@pytest.mark.xfail(reason="known bug, shows an expected failure")
def test_known_bug():
    assert 1 + 1 == 3
