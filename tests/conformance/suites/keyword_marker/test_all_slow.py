import pytest

pytestmark = pytest.mark.slow


def test_alpha_marked_by_module():
    pass


def test_other_marked_by_module():
    pass
