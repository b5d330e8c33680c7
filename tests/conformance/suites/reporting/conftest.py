import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a test -m can leave out")


@pytest.fixture
def broken():
    raise RuntimeError("setup boom")


@pytest.fixture
def bad_teardown():
    yield
    print("tearing down")
    raise ValueError("teardown boom")
