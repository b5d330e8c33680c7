import pytest


@pytest.fixture
def level():
    return "outer"


@pytest.fixture
def base():
    return 10
