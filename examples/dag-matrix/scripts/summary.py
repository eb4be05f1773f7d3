"""Print a one-line summary of the pipeline from the build output and CI variables."""

import json
import os
import sys
from pathlib import Path

info = json.loads((Path(sys.argv[1]) / "build.json").read_text())
pipeline = os.environ.get("CI_PIPELINE_ID", "?")
print(f"summary: version {info['version']} from {info['ref']} (pipeline {pipeline})")
