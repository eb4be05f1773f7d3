import unittest


def total(prices):
    return round(sum(prices), 2)


class BillingTest(unittest.TestCase):
    def test_total(self):
        self.assertEqual(total([1.10, 2.20]), 3.3)


if __name__ == "__main__":
    unittest.main()
