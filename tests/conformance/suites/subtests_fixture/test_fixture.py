def test_passing(subtests):
    for i in range(3):
        with subtests.test(msg="square", i=i):
            assert i * i >= 0


def test_mixed(subtests):
    for i in range(4):
        with subtests.test(i=i):
            assert i % 2 == 0


def test_no_subtests():
    assert 1 + 1 == 2
