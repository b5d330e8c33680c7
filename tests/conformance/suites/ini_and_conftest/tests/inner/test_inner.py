import pytest


def test_inner_level(level, base):
    assert level == "inner" and base == 10


def test_inner_fails(level):
    assert level == "outer"


@pytest.mark.skip(reason="shown by -ra")
def test_inner_skipped():
    pass
