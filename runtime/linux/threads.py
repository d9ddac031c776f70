"""Guest threads as the emulated kernel sees them.

Every guest thread runs on a host thread of its own (runtime/machine.py);
``LinuxKernel.current`` is the ``GuestThread`` of the host thread making a
system call.  What Linux keeps per thread lives here: the tid, the signal
mask, thread-directed pending signals, the alternate signal stack,
clear_child_tid and the robust list.  A thread that blocks in a system call
waits on its ``wake_fd`` too (an eventfd), so a signal sent to it, from any
thread or from outside, interrupts the wait.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

SS_DISABLE = 2


@dataclass(eq=False)
class GuestThread:
    tid: int
    state: object = None                  # the thread's GuestState (ctypes), set by the Machine
    sigmask: int = 0
    pending: int = 0                      # signals sent to this thread (bit sig-1)
    altstack: tuple[int, int, int] = (0, SS_DISABLE, 0)
    clear_child_tid: int = 0
    robust_list: tuple[int, int] = (0, 0)
    exited: bool = False
    wake_fd: int = field(default=-1)

    def __post_init__(self) -> None:
        if self.wake_fd < 0:
            self.wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.lock = threading.Lock()

    def notify(self) -> None:
        """Make ``wake_fd`` readable: a blocked system call of this thread returns."""
        try:
            os.eventfd_write(self.wake_fd, 1)
        except OSError:
            pass

    def clear_wake(self) -> None:
        try:
            os.eventfd_read(self.wake_fd)
        except OSError:
            pass

    def close(self) -> None:
        if self.wake_fd >= 0:
            os.close(self.wake_fd)
            self.wake_fd = -1
