import pytest


@pytest.mark.parametrize("value", ["café", "日本", "a b", "[x]", "a::b", "tab\there", "slash/x"])
def test_text(value):
    assert value


@pytest.mark.parametrize("n", [1, 2, 3], ids=["one", "two words", "brackets[]"])
def test_named(n):
    assert n != 2


@pytest.mark.parametrize("a,b", [(1, 1), (2, 3)])
@pytest.mark.parametrize("c", [True, False])
def test_stacked(a, b, c):
    assert a == b or c
