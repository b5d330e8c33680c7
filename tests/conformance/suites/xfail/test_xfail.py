import pytest


@pytest.mark.xfail(reason="known bug")
def test_xfail_fails():
    assert 0


@pytest.mark.xfail(reason="fixed meanwhile")
def test_xfail_passes():
    pass


@pytest.mark.xfail(strict=True, reason="must fail")
def test_strict_xpass():
    pass


@pytest.mark.xfail(strict=True, reason="must fail")
def test_strict_xfail():
    assert 0


@pytest.mark.xfail(run=False, reason="would crash")
def test_not_run():
    raise SystemExit(1)


def test_imperative_xfail():
    pytest.xfail("gave up here")


@pytest.mark.xfail(raises=KeyError, reason="wrong error")
def test_xfail_wrong_exception():
    raise ValueError("not a KeyError")
