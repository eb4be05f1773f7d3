import os
import unittest

from greeter import greet


class GreetTest(unittest.TestCase):
    def test_uses_greeting_variable(self):
        self.assertEqual(greet("Ada"), f"{os.environ.get('GREETING', 'Hi')}, Ada!")
