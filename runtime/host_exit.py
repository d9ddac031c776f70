"""How aotrun itself ends when its guest process ends.

aotrun is the guest process as far as the host can tell: whoever waits for
it (a shell, a guest parent's wait4 in another aotrun) must see the guest's
exit status, or WIFSIGNALED with the signal that killed the guest.
"""

from __future__ import annotations

import os
import resource
import signal
import sys
from collections.abc import Callable

# Signals whose default action does not end a process.
_NOT_FATAL = {17, 18, 19, 20, 21, 22, 23, 28}   # CHLD CONT STOP TSTP TTIN TTOU URG WINCH


def die_by_signal(sig: int, status: int, exit: Callable[[int], object] = sys.exit) -> None:
    """End aotrun by the signal that ended the guest: default disposition,
    unblocked, no core file (RLIMIT_CORE 0).  ``exit(status)`` (128+signal)
    if the signal does not end the process."""
    if 0 < sig < 65 and sig not in _NOT_FATAL:
        try:
            resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
        except (ValueError, OSError):
            pass
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (ValueError, OSError):        # not Python's main thread
            from runtime import _native
            try:
                _native.host_signal(sig, 0)
            except (ValueError, OSError):
                pass
        try:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {sig})
            signal.raise_signal(sig)
            os.kill(os.getpid(), sig)
        except (ValueError, OSError):
            pass
    exit(status)


def flush_stdio() -> None:
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except (OSError, ValueError):
            pass
