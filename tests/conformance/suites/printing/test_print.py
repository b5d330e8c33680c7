import sys


def test_prints_and_passes():
    print("to stdout")
    print("to stderr", file=sys.stderr)


def test_prints_and_fails():
    print("before the failure")
    assert 1 == 2


def test_prints_unicode():
    print("ünïcødé ✓")
