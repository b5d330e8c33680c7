import time


def test_fails_last():
    time.sleep(1.0)
    assert 0
