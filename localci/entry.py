"""The `localci` command's entry point: imports the CLI with the garbage collector paused.

Importing localci creates ~70 dataclasses and many small objects; collections triggered while
importing cost ~20 ms of a ~150 ms `localci list`, for cycles that do not exist yet.

Until the CLI takes over signals, Ctrl-C or SIGTERM ends localci at once with the documented
130 and no traceback: nothing has been started or written yet that would need cleaning up.
"""

from __future__ import annotations

import os
import signal

_INTERRUPTED = b"interrupted\n"


def _exit_interrupted(signum: int, frame: object) -> None:
    os.write(2, _INTERRUPTED)
    os._exit(130)


for _sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(_sig, _exit_interrupted)


def main() -> None:
    import gc

    gc.disable()
    try:
        from localci.cli import main as cli_main
    finally:
        gc.enable()
    cli_main()
