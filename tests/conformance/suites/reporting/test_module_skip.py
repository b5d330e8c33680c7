import pytest

pytest.importorskip("no_such_module_for_this_suite")


def test_never():
    pass
