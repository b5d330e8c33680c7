import pytest


@pytest.fixture
def broken_setup():
    raise RuntimeError("setup broke")


@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("teardown broke")


def test_setup_error(broken_setup):
    pass


def test_pass_then_teardown_error(broken_teardown):
    pass


def test_fail_then_teardown_error(broken_teardown):
    assert 0


def test_clean():
    pass
