import os
import unittest


class IntegrationTest(unittest.TestCase):
    @unittest.skipUnless(os.environ.get("RUN_INTEGRATION"), "set RUN_INTEGRATION=1")
    def test_remote_service(self):
        # The service this would call does not exist locally: the test fails on purpose.
        self.assertEqual("reachable", "unreachable")
