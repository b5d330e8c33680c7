from test_helpers_only import helper


def test_helper():
    assert helper() == 1
