import warnings


def test_user_warning():
    warnings.warn("careful", UserWarning)


def test_two_warnings():
    warnings.warn("first", UserWarning)
    warnings.warn("second", DeprecationWarning)


def test_quiet():
    pass
