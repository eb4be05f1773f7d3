"""The `localci` command line. `main` is the console script: it answers `--version` without
importing click or the CLI (scripts and version checks call it and should not wait), and
imports the CLI (localci.cli.root) with the garbage collector paused; it freezes the heap
before the interpreter exits.

Importing localci creates ~70 dataclasses and many small objects; collections triggered while
importing cost ~20 ms of a ~150 ms `localci list`, for cycles that do not exist yet.

Until the CLI takes over signals, Ctrl-C or SIGTERM ends localci at once with the documented
130 and no traceback: nothing has been started or written yet that would need cleaning up.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

_INTERRUPTED = b"interrupted\n"


def _exit_interrupted(signum: int, frame: object) -> None:
    os.write(2, _INTERRUPTED)
    os._exit(130)


def _print_version() -> None:
    # The output click's version_option prints, without importing click and the CLI for it.
    from localci import __version__

    with contextlib.suppress(BrokenPipeError):  # `localci --version | head -c1` is no error
        os.write(1, f"localci, version {__version__}\n".encode())


def main() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _exit_interrupted)
    if sys.argv[1:] == ["--version"]:
        _print_version()
        return
    import gc

    gc.disable()
    try:
        from localci.cli.root import run_and_exit
    finally:
        gc.enable()
    try:
        run_and_exit()
    finally:
        # The process ends here. Its last collections would traverse every object localci
        # made (~4% of a `localci list`) for cycles nothing waits on; what must happen at exit
        # (atexit, reference counting) does not depend on them.
        gc.freeze()
