def double(x):
    """Twice ``x``.

    >>> double(2)
    4
    """
    return 2 * x


def broken(x):
    """Claims too much.

    >>> broken(1)
    3
    """
    return x
