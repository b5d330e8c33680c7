import sys

import pytest


@pytest.mark.skip(reason="not today")
def test_skipped():
    pass


@pytest.mark.skipif(sys.version_info > (3,), reason="always on Python 3")
def test_skipif_true():
    pass


@pytest.mark.skipif(sys.version_info < (3,), reason="never on Python 3")
def test_skipif_false():
    pass


def test_skip_inside():
    pytest.skip("decided at run time")


class TestSkippedClass:
    pytestmark = pytest.mark.skip(reason="whole class")

    def test_a(self):
        pass

    def test_b(self):
        pass
