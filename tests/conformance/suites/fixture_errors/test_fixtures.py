import pytest


@pytest.fixture
def depends_on_missing(no_such_fixture):
    return no_such_fixture


def test_missing_fixture(no_such_fixture):
    pass


def test_missing_indirectly(depends_on_missing):
    pass


@pytest.fixture(params=[1, 2])
def number(request):
    if request.param == 2:
        raise ValueError("bad param")
    return request.param


def test_param_fixture(number):
    assert number == 1
