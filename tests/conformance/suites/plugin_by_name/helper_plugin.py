import pytest


@pytest.fixture
def greeting():
    return "hello"


def pytest_collection_modifyitems(items):
    for item in items:
        if "flagged" in item.name:
            item.add_marker(pytest.mark.xfail(reason="flagged by the plugin", strict=True))
