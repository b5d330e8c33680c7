"""Failure signatures and groups (farm.core.failure_signature).

The tracebacks are pytest's own output (9.x, long and short styles) for small failing
tests, as farm stores them in a result's ``longrepr``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from farm.core.domain import Outcome, TestResult
from farm.core.failure_signature import (
    SIGNATURE_MAX_CHARS,
    failure_signature,
    group_failures,
    normalise,
)

ASSERT = """\
def test_assert():
>       assert len([1]) == 3
E       assert 1 == 3
E        +  where 1 = len([1])

test_demo.py:3: AssertionError
"""
ASSERT_MESSAGE = """\
def test_assert_msg():
        x = 5
>       assert x == 1, f"bad value {x} at {object()}"
E       AssertionError: bad value 5 at <object object at 0x7f86c6da5800>
E       assert 5 == 1

test_demo.py:6: AssertionError
"""
# The short style names no type after the E lines.
ASSERT_SHORT = """\
test_demo.py:3: in test_assert
    assert len([1]) == 3
E   assert 1 == 3
E    +  where 1 = len([1])
"""


def refused(port: int, path: str = "tests/test_api.py") -> str:
    return f"""\
def test_conn():
>       s = socket.socket(); s.connect(("127.0.0.1", {port}))
                             ^^^^^^^^^^^^^^^^^^^^^^^^^^^
E       ConnectionRefusedError: [Errno 111] Connection refused

{path}:8: ConnectionRefusedError
"""


def key_error(key: str) -> str:
    return f"""\
def test_key():
>       users["{key}"]
E       KeyError: '{key}'

tests/test_users.py:10: KeyError
"""


CHAINED = """\
def test_chain():
        try:
>           {}["a"]
E           KeyError: 'a'

test_demo.py:13: KeyError

During handling of the above exception, another exception occurred:

    def test_chain():
        try:
            {}["a"]
        except KeyError:
>           raise ValueError("converted 12")
E           ValueError: converted 12

test_demo.py:15: ValueError
"""
CAUSED = """\
>           1/0
E           ZeroDivisionError: division by zero

test_demo.py:18: ZeroDivisionError

The above exception was the direct cause of the following exception:

>           raise RuntimeError("wrapped") from e
E           RuntimeError: wrapped

test_demo.py:20: RuntimeError
"""
GROUP = """\
+ Exception Group Traceback (most recent call last):
  |   File "/tmp/sigdemo/test_demo.py", line 22, in test_group
  |     raise ExceptionGroup("two errors", [ValueError("a 1"), TypeError("b 2")])
  | ExceptionGroup: two errors (2 sub-exceptions)
  +-+---------------- 1 ----------------
    | ValueError: a 1
    +---------------- 2 ----------------
    | TypeError: b 2
    +------------------------------------
"""
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
MULTILINE = """\
>       raise ValueError("first line 3\\nsecond line")
E       ValueError: first line 3
E       second line

test_demo.py:26: ValueError
"""
# A qualified type on the E line; the place line names the class alone.
QUALIFIED = """\
E   requests.exceptions.ConnectionError: HTTPConnectionPool(host='localhost', port=8080)

tests/test_http.py:4: ConnectionError
"""
PYTEST_TIMEOUT = """\
>       time.sleep(100)
E       Failed: Timeout >60.0s

tests/test_slow.py:5: Failed
"""
# farm's own reports: a timeout with faulthandler's stacks, a crash with the log's end.
FARM_TIMEOUT = """\
timed out after 61.2s (limit 60s marker)

Thread 0x00007f0c2a5fe700 (most recent call first):
  File "/src/tests/test_slow.py", line 5 in test_sleep
"""
FARM_CRASH = """\
the test process killed by signal 9 during this test; its last output:
E   AssertionError: from an earlier test's output
"""


@pytest.mark.parametrize(
    ("longrepr", "signature", "exception_type", "message"),
    [
        (ASSERT, "AssertionError: assert <n> == <n>", "AssertionError", "assert 1 == 3"),
        (
            ASSERT_MESSAGE,
            "AssertionError: bad value <n> at <object object at <addr>>",
            "AssertionError",
            "bad value 5 at <object object at 0x7f86c6da5800>",
        ),
        (ASSERT_SHORT, "AssertionError: assert <n> == <n>", "AssertionError", "assert 1 == 3"),
        (
            refused(5432),
            "ConnectionRefusedError: [Errno <n>] Connection refused",
            "ConnectionRefusedError",
            "[Errno 111] Connection refused",
        ),
        (key_error("user-1234"), "KeyError: 'user-<n>'", "KeyError", "'user-1234'"),
        (CHAINED, "ValueError: converted <n>", "ValueError", "converted 12"),
        (CAUSED, "RuntimeError: wrapped", "RuntimeError", "wrapped"),
        (
            GROUP,
            "ExceptionGroup: two errors (<n> sub-exceptions)",
            "ExceptionGroup",
            "two errors (2 sub-exceptions)",
        ),
        (
            NATIVE,
            "json.decoder.JSONDecodeError: Expecting value: line <n> column <n> (char <n>)",
            "json.decoder.JSONDecodeError",
            "Expecting value: line 1 column 1 (char 0)",
        ),
        (SYNTAX, "SyntaxError: invalid syntax", "SyntaxError", "invalid syntax"),
        (MULTILINE, "ValueError: first line <n>", "ValueError", "first line 3"),
        (
            QUALIFIED,
            "requests.exceptions.ConnectionError: HTTPConnectionPool(host='localhost', port=<n>)",
            "requests.exceptions.ConnectionError",
            "HTTPConnectionPool(host='localhost', port=8080)",
        ),
        (PYTEST_TIMEOUT, "Failed: Timeout ><n>s", "Failed", "Timeout >60.0s"),
        (
            "E   ValueError: héllo wörld ✓ 42\n\nt.py:2: ValueError",
            "ValueError: héllo wörld ✓ <n>",
            "ValueError",
            "héllo wörld ✓ 42",
        ),
        (
            "test_x.py:8: \n\nE  boom\n\ntest_x.py:2: AssertionError",
            "AssertionError: boom",
            "AssertionError",
            "boom",
        ),
        ("tests/t.py:4: KeyError", "KeyError", "KeyError", ""),
    ],
)
def test_the_exception_that_failed_the_test(
    longrepr: str, signature: str, exception_type: str, message: str
) -> None:
    found = failure_signature(longrepr)
    assert (found.text, found.exception_type, found.message) == (
        signature,
        exception_type,
        message,
    )


@pytest.mark.parametrize(
    ("longrepr", "outcome", "signature"),
    [
        (FARM_TIMEOUT, Outcome.TIMEOUT, "timeout"),
        (
            FARM_CRASH,
            Outcome.CRASHED,
            "crashed: the test process killed by signal <n> during this test; its last output:",
        ),
        ("", Outcome.FAILED, "failed"),
        ("\n  \n", Outcome.ERROR, "error"),
        ("[XPASS(strict)] issue 42", Outcome.FAILED, "failed: [XPASS(strict)] issue <n>"),
        (
            "no result from the worker: worker-3 lost at 2024-05-01 12:30:45",
            "error",
            "error: no result from the worker: worker-<n> lost at <time>",
        ),
    ],
)
def test_without_an_exception_the_outcome(longrepr: str, outcome: str, signature: str) -> None:
    found = failure_signature(longrepr, outcome)
    assert (found.text, found.exception_type) == (signature, "")


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("object at 0x7f3a2b1c4d90 and 0XDEADBEEF", "object at <addr> and <addr>"),
        ("No such file: '/tmp/pytest-of-root/pytest-12/test_up0/a.txt'", "No such file: '<path>'"),
        (
            "open tests/unit/test_x.py and ./build/out and ../x/y",
            "open <path> and <path> and <path>",
        ),
        ("yes and/or no", "yes and/or no"),  # a slash between words is not a path
        (r"C:\Users\bob\AppData\Local\Temp\tmpx1\f.txt missing", "<path> missing"),
        (r"'C:\\Users\\bob\\x.py'", "'<path>'"),  # a repr doubles backslashes
        (r"share \\server\share\dir\f.txt", "share <path>"),
        ("run 123e4567-e89b-12d3-a456-426614174000 done", "run <uuid> done"),
        ("commit 3f2a9c1e0b7d4e5f not found", "commit <hash> not found"),
        ("at 2024-05-01T12:30:45.123Z, then 12:03:04", "at <time>, then <time>"),
        ("at 2024-05-01 12:30:45+02:00 ok", "at <time> ok"),
        ("file tmpab12cd_x gone", "file <tmp> gone"),
        ("int32 sha256 user_1234 x-42 3.14e-5", "int32 sha256 user_<n> x-<n> <n>"),
        ("connect 127.0.0.1:5432 port=8080", "connect <n>:<n> port=<n>"),
        ("  many \t blanks\n\nhere  ", "many blanks here"),
        ("deadbeef is a word", "deadbeef is a word"),  # hex letters without a digit
    ],
)
def test_noise_is_normalised(text: str, normalised: str) -> None:
    assert normalise(text) == normalised


def test_a_signature_is_bounded() -> None:
    found = failure_signature(f"E   ValueError: {'word ' * 500}\n\nt.py:1: ValueError")
    assert len(found.text) == SIGNATURE_MAX_CHARS
    assert found.text.endswith("…")
    assert len(found.message) <= SIGNATURE_MAX_CHARS


@dataclass(frozen=True)
class Failure:
    node_id: str
    longrepr: str
    outcome: Outcome = Outcome.FAILED


def test_messages_that_differ_only_in_noise_group_together() -> None:
    failures = [
        Failure("tests/test_api.py::test_a", refused(5432)),
        Failure("tests/test_users.py::test_b", key_error("user-1")),
        Failure("tests/test_api.py::test_c", refused(6379, "tests/sub/test_other.py")),
        Failure("tests/test_users.py::test_d", key_error("user-99")),
        Failure("tests/test_api.py::test_e", refused(80)),
        Failure("tests/test_slow.py::test_f", FARM_TIMEOUT, Outcome.TIMEOUT),
        Failure(
            "tests/test_x.py::test_g",
            "E   OSError: cannot open /tmp/7/a.txt at 0x7f0007\n\nx.py:1: OSError",
        ),
        Failure("tests/test_x.py::test_h", "E   OSError: cannot open C:\\t\\b.txt at 0x1\n"),
    ]
    groups = group_failures(failures)
    assert [(g.signature, g.count) for g in groups] == [
        ("ConnectionRefusedError: [Errno <n>] Connection refused", 3),
        ("KeyError: 'user-<n>'", 2),
        ("OSError: cannot open <path> at <addr>", 2),
        ("timeout", 1),
    ]
    first = groups[0]
    assert first.node_ids == (
        "tests/test_api.py::test_a",
        "tests/test_api.py::test_c",
        "tests/test_api.py::test_e",
    )
    assert first.exception_type == "ConnectionRefusedError"
    assert first.example_message == "[Errno 111] Connection refused"
    assert groups[1].example_message == "'user-1'"  # the first one's, as written
    assert first.headline() == (
        "3 tests failed with ConnectionRefusedError: [Errno <n>] Connection refused"
    )
    assert groups[3].headline() == "1 test failed with timeout"


def test_groups_of_one_size_keep_the_order_their_first_failure_came_in() -> None:
    names = ["Zeta", "Alpha", "Mid"]
    failures = [Failure(f"t.py::test_{n}", f"E   {n}Error: x\n") for n in names]
    assert [g.exception_type for g in group_failures(failures)] == [f"{n}Error" for n in names]
    assert [g.exception_type for g in group_failures(reversed(failures))] == [
        f"{n}Error" for n in reversed(names)
    ]


def test_a_test_failing_twice_with_one_signature_counts_once() -> None:
    failures = [Failure("t.py::test_a", refused(1)), Failure("t.py::test_a", refused(2))]
    (group,) = group_failures(failures)
    assert (group.node_ids, group.count) == (("t.py::test_a",), 1)


def test_results_as_the_store_gives_them_back_group_too() -> None:
    results = [
        TestResult("run", 1, 1, f"t.py::test_{n}", outcome, 0.1, longrepr=text)
        for n, (outcome, text) in enumerate(
            [
                (Outcome.ERROR, refused(1)),
                (Outcome.CRASHED, FARM_CRASH),
                (Outcome.ERROR, refused(2)),
            ]
        )
    ]
    groups = group_failures(results)
    assert [(g.exception_type, g.node_ids) for g in groups] == [
        ("ConnectionRefusedError", ("t.py::test_0", "t.py::test_2")),
        ("", ("t.py::test_1",)),
    ]
    assert groups[1].signature.startswith("crashed: the test process killed by signal <n>")


def test_nothing_to_group() -> None:
    assert group_failures([]) == []


def test_never_raises_on_any_text() -> None:
    rng = random.Random(20261130)
    pieces = [
        "E   ",
        "E",
        "Error: ",
        ":",
        "\n",
        "  | ",
        "+-",
        "Traceback (most recent call last):\n",
        "Exception Group Traceback",
        _CHAIN,
        "tests/t.py:3: ",
        "0x7f",
        "C:\\",
        "\\\\",
        "/tmp/",
        "'",
        '"',
        "é✓\x00\u202e",
        "assert ",
        "123",
        " ",
    ]
    outcomes = [o.value for o in Outcome] + ["", "weird"]
    for _ in range(3000):
        text = "".join(
            rng.choice(pieces) if rng.random() < 0.6 else chr(rng.randrange(1, 0x2FFF))
            for _ in range(rng.randrange(0, 40))
        )
        found = failure_signature(text, rng.choice(outcomes))
        assert found.text and len(found.text) <= SIGNATURE_MAX_CHARS
        assert "\n" not in found.text


_CHAIN = "\nDuring handling of the above exception, another exception occurred:\n"
