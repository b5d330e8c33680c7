import pytest

CALLS = []


@pytest.fixture(scope="module")
def resource():
    CALLS.append("module")
    yield "resource"
    CALLS.append("module-end")


class TestWithClassFixture:
    @pytest.fixture(scope="class")
    @classmethod
    def shared(cls):
        return {"made": len(CALLS)}

    def test_first(self, shared, resource):
        assert "made" in shared

    def test_second(self, shared, resource):
        assert resource == "resource"


def test_module_fixture_once_per_process(resource):
    assert CALLS.count("module") == 1


@pytest.fixture(autouse=True)
def everywhere():
    yield
