import unittest


class Subtests(unittest.TestCase):
    def test_all_pass(self):
        for i in range(3):
            with self.subTest(i=i):
                self.assertGreaterEqual(i, 0)

    def test_one_fails(self):
        for i in range(3):
            with self.subTest(i=i):
                self.assertNotEqual(i, 1)

    def test_all_fail(self):
        for i in range(2):
            with self.subTest(i=i):
                self.assertLess(i, 0)

    def test_plain(self):
        self.assertTrue(True)
