"""Where a failure is, from its traceback (farm.report.failure_location)."""

from __future__ import annotations

import pytest

from farm.report.failure_location import failure_location

# pytest's separator between the entries of a long traceback (with its trailing blank).
SEPARATOR = "_ " * 40
# pytest's long style: the test calls a helper of the repository; the innermost frame
# inside the repository is the helper's assert. An entry's place line that only
# leads on to the next entry ends in a blank, as pytest prints it.
LONG = f"""\
def test_total():
>       check_total(cart, 3)

tests/test_cart.py:12:{" "}
{SEPARATOR}

cart = [], expected = 3

    def check_total(cart, expected):
>       assert len(cart) == expected
E       assert 0 == 3
E        +  where 0 = len([])

tests/helpers/carts.py:4: AssertionError
"""

# The failure is raised inside an installed package: the test's own line is the place.
INTO_A_LIBRARY = f"""\
    def test_fetch():
>       requests.get("http://localhost:1")

tests/test_net.py:7:{" "}
{SEPARATOR}
.venv/lib/python3.12/site-packages/requests/api.py:73: in get
    return request("get", url, params=params, **kwargs)
/usr/lib/python3.12/socket.py:850: in create_connection
    raise exceptions[0]
E   ConnectionRefusedError: [Errno 111] Connection refused
../outside/conftest.py:3: ConnectionRefusedError
"""

# --tb=short and a collection error's report.
COLLECTION = """\
ImportError while importing test module '/src/shop/tests/test_cart.py'.
Hint: make sure your test modules/packages have valid Python names.
Traceback:
/usr/lib/python3.12/importlib/__init__.py:126: in import_module
    return _bootstrap._gcd_import(name[level:], package)
tests/test_cart.py:1: in <module>
    import cartlib
E   ModuleNotFoundError: No module named 'cartlib'
"""

# --tb=native, and a syntax error: Python's frames, with absolute paths.
NATIVE = """\
Traceback (most recent call last):
  File "/src/shop/tests/test_cart.py", line 9, in test_total
    helper()
  File "/usr/lib/python3.12/json/__init__.py", line 346, in loads
    return _default_decoder.decode(s)
json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)
"""
SYNTAX = """\
E     File "/src/shop/tests/test_cart.py", line 3
E       def test_(:
E               ^
E   SyntaxError: invalid syntax
"""


@pytest.mark.parametrize(
    ("node_id", "traceback", "where"),
    [
        ("tests/test_cart.py::test_total", LONG, ("tests/helpers/carts.py", 4)),
        ("tests/test_net.py::test_fetch", INTO_A_LIBRARY, ("tests/test_net.py", 7)),
        ("tests/test_cart.py", COLLECTION, ("tests/test_cart.py", 1)),
        ("tests/test_cart.py::test_total", NATIVE, ("tests/test_cart.py", 9)),
        ("tests/test_cart.py", SYNTAX, ("tests/test_cart.py", 3)),
        (
            "test_x.py::test_fail",
            "test_x.py:8: \n\nE  boom\n\ntest_x.py:2: AssertionError",
            ("test_x.py", 2),
        ),
        ("./tests/t.py::test_a", "./tests/t.py:5: in test_a", ("tests/t.py", 5)),
    ],
)
def test_the_innermost_frame_inside_the_repository(
    node_id: str, traceback: str, where: tuple[str, int]
) -> None:
    assert failure_location(node_id, traceback) == where


@pytest.mark.parametrize(
    "traceback",
    [
        "",
        "timed out after 60s",  # farm's own report of a timeout: no frame
        "E   AssertionError: at tests/test_cart.py:12: it broke",  # the error's text
        "Hint: see 3:4: here",  # a message line, not a path
        '  File "<frozen importlib._bootstrap>", line 1204, in _gcd_import',
        '  File "/elsewhere/test_cart.py", line 3, in x',  # another file of that name
    ],
)
def test_without_a_frame_the_node_ids_file(traceback: str) -> None:
    assert failure_location("tests/test_cart.py::TestCart::test_total[1]", traceback) == (
        "tests/test_cart.py",
        None,
    )
