import time

import pytest


@pytest.fixture(scope="module")
def server():
    time.sleep(0.3)  # a costly module-scoped resource
    return {"status": "up"}


def test_server_is_up(server):
    assert server["status"] == "up"


@pytest.mark.parametrize("n", range(20))
def test_square(n, server):
    assert n * n == n**2


def test_slow_report(server):
    time.sleep(1.5)
    assert True
