import time


def test_pass_a():
    pass


def test_pass_b():
    pass


def test_fail_1():
    time.sleep(0.3)
    assert 0


def test_fail_2():
    time.sleep(0.6)
    assert 0


def test_fail_3():
    time.sleep(3.0)
    assert 0
