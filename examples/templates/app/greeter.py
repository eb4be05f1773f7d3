"""Greets by name; the greeting comes from $GREETING."""

import os
import sys


def greet(name: str) -> str:
    return f"{os.environ.get('GREETING', 'Hi')}, {name}!"


if __name__ == "__main__":
    print(greet(sys.argv[1] if len(sys.argv) > 1 else "world"))
