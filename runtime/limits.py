"""Run limits of ``aotrun``: --timeout and --max-memory, and their exit statuses.

Exit statuses (documented in docs/kvm.md):

* 124: the guest ran longer than ``--timeout`` seconds (as coreutils ``timeout``).
* 125: the guest's initial memory (segments + stack) already exceeds
  ``--max-memory``.  Later growth beyond the limit is not fatal: brk fails and
  mmap/mremap return -ENOMEM, so the guest sees an ordinary out-of-memory.
"""

from __future__ import annotations

from aotc.errors import AotcError

TIMEOUT_EXIT = 124
MEMORY_LIMIT_EXIT = 125


class GuestTimeout(AotcError):
    """The guest did not finish within the --timeout limit."""

    exit_code = TIMEOUT_EXIT

    def __init__(self, seconds: float) -> None:
        super().__init__(f"guest timed out after {seconds:g} s (--timeout)")
        self.seconds = seconds


class MemoryLimitExceeded(AotcError):
    """The guest's memory would exceed the --max-memory limit from the start."""

    exit_code = MEMORY_LIMIT_EXIT

    def __init__(self, needed: int, limit: int) -> None:
        super().__init__(f"guest needs {needed} bytes of memory at start, over the "
                         f"--max-memory limit of {limit} bytes")
        self.needed = needed
        self.limit = limit


class ExitWatchdog:
    """``--timeout`` for the translated engines (AOT, JIT, interpreter).

    Translated guest code runs in native code that only returns to Python at
    system calls, misses and faults, and a guest spinning in a loop never
    does.  This thread therefore ends the whole process when the time is up:
    it writes the timeout line to stderr and calls ``os._exit(124)``, as
    coreutils ``timeout`` would kill the command.  Output the guest already
    wrote (straight to its file descriptors) stays; ``--stats`` is not
    printed.  The KVM engine has its own, graceful watchdog.
    """

    def __init__(self, seconds: float) -> None:
        import threading

        self.seconds = seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="aotrun-timeout", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        import os

        if self._stop.wait(self.seconds):
            return
        os.write(2, f"aotrun: error: {GuestTimeout(self.seconds)}\n".encode())
        os._exit(TIMEOUT_EXIT)

    def cancel(self) -> None:
        self._stop.set()
        self._thread.join()
