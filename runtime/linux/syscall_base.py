"""What every module of the emulated kernel shares: the handler registry
(``syscall``), the exceptions handlers raise, and small integer helpers.

The kernel is one class, ``LinuxKernel`` (runtime/linux/kernel.py), put
together from mixins, one per area (files and memory in kernel.py, waiting
on descriptors in io_calls.py, processes in process_calls.py, threads and
signals in threads.py and signals.py).  A mixin's methods register with
``@syscall(name, *strace_kinds)``; ``LinuxKernel`` binds every registered
name the ISA's ``SyscallAbi`` numbers.
"""

from __future__ import annotations

import ctypes
import errno as _errno
from collections.abc import Callable

MASK64 = (1 << 64) - 1


class GuestExit(Exception):
    """The guest called exit/exit_group; ``status`` is the low 8 bits."""

    def __init__(self, status: int) -> None:
        super().__init__(f"guest exited with status {status}")
        self.status = status


class GuestKilled(Exception):
    """A signal the guest sent itself terminated it (default action); the caller adds the pc."""

    def __init__(self, signal: int) -> None:
        super().__init__(f"guest killed by signal {signal}")
        self.signal = signal


class Errno(Exception):
    """Raised inside handlers to return ``-errno``."""

    def __init__(self, err: int) -> None:
        self.err = err


def s32(x: int) -> int:
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x & 0x80000000 else x


def s64(x: int) -> int:
    x &= MASK64
    return x - (1 << 64) if x & (1 << 63) else x


def host_check(ret: int) -> int:
    """A libc call's result, or ``Errno`` from its errno (ctypes use_errno)."""
    if ret < 0:
        raise Errno(ctypes.get_errno() or _errno.EIO)
    return ret


# Handler registry: name → (method name, strace argument kinds, result kind)
# --------------------------------------------------------------------------
# Argument kinds for strace: d=signed int, u=unsigned, x=hex, p=pointer,
# fd, dirfd, path, oflags, mode (octal), wbuf (buffer printed using next arg),
# sig, prot, mflags.  Result kinds: "d" (default), "x" (pointer results).
SYSCALLS: dict[str, tuple[str, tuple[str, ...], str]] = {}


def syscall(name: str, *kinds: str, result: str = "d", aliases: tuple[str, ...] = ()):
    """Register the decorated kernel method as the handler of ``name``."""
    def deco(fn: Callable) -> Callable:
        for n in (name, *aliases):
            SYSCALLS[n] = (fn.__name__, kinds, result)
        return fn
    return deco
