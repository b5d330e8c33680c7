import pytest


def test_alpha():
    pass


def test_beta():
    pass


@pytest.mark.slow
def test_alpha_slow():
    pass


@pytest.mark.slow
def test_gamma_slow():
    pass
