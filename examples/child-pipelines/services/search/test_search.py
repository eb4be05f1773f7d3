import unittest


def search(words, prefix):
    return [w for w in words if w.startswith(prefix)]


class SearchTest(unittest.TestCase):
    def test_prefix(self):
        self.assertEqual(search(["apple", "banana", "apricot"], "ap"), ["apple", "apricot"])


if __name__ == "__main__":
    unittest.main()
