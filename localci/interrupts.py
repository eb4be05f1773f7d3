"""Ctrl-C and SIGTERM as one request to stop, remembered as well as raised.

A KeyboardInterrupt raised by a signal handler can be lost: when the handler runs inside a
`__del__` or a weakref callback (the garbage collector runs them at arbitrary moments), Python
prints "Exception ignored" and carries on. So the handlers also note the request here, and the
places a run passes through regularly (pipeline start, the scheduler's loop) raise it again.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

_requested = threading.Event()


def requested() -> bool:
    """Whether Ctrl-C or SIGTERM arrived since the last reset()."""
    return _requested.is_set()


def reset() -> None:
    _requested.clear()


def note_and_raise(signum: int, frame: FrameType | None) -> None:
    """Signal handler: remember the request, then interrupt the main thread."""
    _requested.set()
    raise KeyboardInterrupt


def raise_if_requested() -> None:
    """Raise a request whose KeyboardInterrupt may have been swallowed, in the main thread
    only: other threads (a child pipeline's scheduler) are stopped by their cancel event, which
    the main thread sets when it handles the interrupt."""
    if _requested.is_set() and threading.current_thread() is threading.main_thread():
        raise KeyboardInterrupt


def install() -> None:
    """SIGINT and SIGTERM both note and raise (main thread only: elsewhere Python refuses)."""
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, note_and_raise)
