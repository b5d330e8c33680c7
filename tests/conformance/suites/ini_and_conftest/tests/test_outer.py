def test_outer_level(level, base):
    assert level == "outer" and base == 10
