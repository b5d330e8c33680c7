def test_uses_plugin_fixture(greeting):
    assert greeting == "hello"


def test_flagged_fails():
    assert 0
