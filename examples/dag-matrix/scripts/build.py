"""Write the build output: dist/build.json with the version and commit."""

import json
import os
import sys
from pathlib import Path

out = Path(sys.argv[1] if len(sys.argv) > 1 else "dist")
out.mkdir(parents=True, exist_ok=True)
info = {
    "version": os.environ.get("APP_VERSION", "0.0.0"),
    "commit": os.environ.get("CI_COMMIT_SHORT_SHA", "unknown"),
    "ref": os.environ.get("CI_COMMIT_REF_NAME", "unknown"),
}
(out / "build.json").write_text(json.dumps(info, indent=2) + "\n")
print(f"built {info['version']} at {info['commit']} into {out}/")
