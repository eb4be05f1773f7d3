"""Check the build output from the `build` job; report the interpreter this instance asked for."""

import json
import platform
import sys
from pathlib import Path

dist, wanted = Path(sys.argv[1]), sys.argv[2]
info = json.loads((dist / "build.json").read_text())
assert info["version"].count(".") == 2, info
got = platform.python_version()
note = "" if got.startswith(wanted + ".") else " (not installed here: ran on the default)"
print(f"checked build {info['version']} on Python {wanted}: running {got}{note}")
