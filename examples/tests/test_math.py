import math
import time

import pytest


class TestTrig:
    def test_sin(self):
        assert math.sin(0) == 0

    def test_cos(self):
        assert math.cos(0) == 1

    def test_slow_series(self):
        time.sleep(1.0)
        assert sum(1 / 2**k for k in range(60)) == pytest.approx(2)


@pytest.mark.parametrize("x", [1, 4, 9, 16, 25])
def test_sqrt(x):
    assert math.isqrt(x) ** 2 == x


@pytest.mark.skip(reason="shows how a skip is reported")
def test_skipped():
    raise AssertionError("never runs")
