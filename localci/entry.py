"""The `localci` command's entry point: imports the CLI with the garbage collector paused.

Importing localci creates ~70 dataclasses and many small objects; collections triggered while
importing cost ~20 ms of a ~150 ms `localci list`, for cycles that do not exist yet.
"""

from __future__ import annotations

import gc


def main() -> None:
    gc.disable()
    try:
        from localci.cli import main as cli_main
    finally:
        gc.enable()
    cli_main()
