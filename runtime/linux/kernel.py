"""An emulated Linux kernel for one single-threaded guest process.

``LinuxKernel.syscall(nr, args)`` implements the system calls a static guest
program makes, on top of ``GuestMemory`` and the host's own system calls.
It is ISA-independent: numbers and struct layouts come from a ``SyscallAbi``.

Conventions, as in the real kernel:

* The return value is what goes into the guest's return register: a result,
  or ``-errno``.  A ``GuestMemoryError`` inside a handler becomes ``-EFAULT``;
  a host ``OSError`` becomes ``-errno``.
* Guest file descriptors are the guest's own numbers.  Each maps to a host fd
  that this table owns (0/1/2 start as dups of the host's 0/1/2), so a guest
  can never name or close a host fd it was not given.
* ``exit``/``exit_group`` raise ``GuestExit``; a signal whose default action
  terminates the process, sent by the guest to itself, raises ``GuestKilled``
  (the caller turns it into a ``GuestFault`` with the guest pc).
* Signal handlers are recorded but never run; a signal with a handler that is
  raised while unblocked stays pending (``pending_signals``).
* futex: the process is single-threaded, so nobody can ever wake a waiter.
  FUTEX_WAIT on a matching value with a timeout sleeps out the timeout and
  returns -ETIMEDOUT; without a timeout it would deadlock forever, so it returns
  -EAGAIN instead (callers retry or the program's own logic reports the bug).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno as _errno
import fcntl as _fcntl
import os
import resource as _resource
import stat as _stat
import select
import struct
import threading
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from aotc.errors import GuestMemoryError
from runtime.guest_memory import (PAGE, PROT_EXEC, PROT_READ, PROT_WRITE, GuestMemory,
                                  page_down, page_up)
from runtime.host_libc import load_libc
from runtime.linux.abi import SyscallAbi
from runtime.linux.cpus import cpumask_size, current_cpu, guest_cpu_count, online_mask
from runtime.linux.hwprobe import HwprobeCalls
from runtime.linux.io_calls import IoCalls
from runtime.linux.misc_calls import MiscCalls
from runtime.linux.process_calls import JOB_CONTROL_IOCTLS, ProcessCalls
from runtime.linux.procfs import ProcView
from runtime.linux.signals import ERESTARTSYS, SIGPIPE, ResumeGuest, SignalCalls
from runtime.linux.threads import ThreadCalls, ThreadExit
from runtime.linux.syscall_base import (MASK64, SYSCALLS, Errno, GuestExit, GuestKilled, host_check,
                                        s32, s64, syscall)

__all__ = ["LinuxKernel", "GuestExit", "GuestKilled", "FdTable"]

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_REMOVEDIR = 0x200
AT_EACCESS = 0x200
AT_SYMLINK_FOLLOW = 0x400
AT_EMPTY_PATH = 0x1000

O_ACCMODE = 3
O_CREAT = 0o100
O_NONBLOCK = 0o4000
O_CLOEXEC = 0o2000000
O_DIRECT_HOST = 0o40000

F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL = 0, 1, 2, 3, 4
F_DUPFD_CLOEXEC = 1030
# Record locks (struct flock: the same 32-byte layout on riscv64, aarch64 and
# x86_64 — l_type, l_whence, l_start, l_len, l_pid — and the same numbers),
# passed to the host: they are the host file's locks, shared with every
# other process as on Linux.
F_GETLK, F_SETLK, F_SETLKW = 5, 6, 7
F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW = 36, 37, 38
_LOCK_CMDS = frozenset((F_GETLK, F_SETLK, F_SETLKW, F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW))
_FLOCK_SIZE = 32
F_SETPIPE_SZ, F_GETPIPE_SZ, F_ADD_SEALS, F_GET_SEALS = 1031, 1032, 1033, 1034
FD_CLOEXEC = 1

PROT_MASK = PROT_READ | PROT_WRITE | PROT_EXEC
MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE = 1, 2, 3
MAP_TYPE = 0xF
MAP_FIXED = 0x10
MAP_ANONYMOUS = 0x20
MAP_FIXED_NOREPLACE = 0x100000
MREMAP_MAYMOVE, MREMAP_FIXED, MREMAP_DONTUNMAP = 1, 2, 4
MADV_DONTNEED = 4

TCGETS, TIOCGWINSZ = 0x5401, 0x5413
FUTEX_WAIT, FUTEX_WAKE, FUTEX_REQUEUE, FUTEX_CMP_REQUEUE = 0, 1, 3, 4
FUTEX_WAKE_OP, FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET = 5, 9, 10
FUTEX_CMD_MASK = 0x7F
SIG_DFL, SIG_IGN = 0, 1
SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK = 0, 1, 2
SIGKILL, SIGSTOP = 9, 19
NSIG = 64
# Default action "ignore" and "stop"; everything else terminates.
_SIG_DEFAULT_IGNORE = {17, 18, 23, 28}          # SIGCHLD SIGCONT SIGURG SIGWINCH
_SIG_DEFAULT_STOP = {19, 20, 21, 22}            # SIGSTOP SIGTSTP SIGTTIN SIGTTOU
SS_ONSTACK, SS_DISABLE = 1, 2
RLIM_INFINITY = MASK64
RLIMIT_STACK, RLIMIT_NOFILE = 3, 7
GRND_NONBLOCK, GRND_RANDOM, GRND_INSECURE = 1, 2, 4
TIMER_ABSTIME = 1

# Host (x86_64) syscall numbers used through libc's syscall().
_HOST_NR = {"getdents64": 217, "statx": 332, "renameat2": 316, "faccessat2": 439}

_libc = load_libc()
_libc.syscall.restype = ctypes.c_long
_libc.read.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
_libc.read.restype = ctypes.c_ssize_t
_libc.write.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
_libc.write.restype = ctypes.c_ssize_t
_libc.pread64.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int64]
_libc.pread64.restype = ctypes.c_ssize_t
_libc.pwrite64.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int64]
_libc.pwrite64.restype = ctypes.c_ssize_t
_libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
_libc.faccessat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_int]
_libc.sysinfo.argtypes = [ctypes.c_void_p]


_Errno = Errno
# Writes that raise SIGPIPE on EPIPE (unless MSG_NOSIGNAL, for the send calls).
_SIGPIPE_CALLS = frozenset({"write", "writev", "pwrite64", "pwritev", "pwritev2", "sendto", "sendmsg",
                            "sendmmsg", "sendfile", "splice", "copy_file_range"})
_MSG_NOSIGNAL = 0x4000
_s32, _s64, _host_check = s32, s64, host_check


# --------------------------------------------------------------------------
# File descriptor table
# --------------------------------------------------------------------------

class FdTable:
    """Guest fd → host fd (owned) plus the guest's FD_CLOEXEC bit."""

    def __init__(self, limit: int = 1024) -> None:
        self.limit = limit
        self._host: dict[int, int] = {}
        self._cloexec: dict[int, bool] = {}

    def install_std(self) -> None:
        for fd in (0, 1, 2):
            try:
                self._host[fd] = os.dup(fd)
                self._cloexec[fd] = False
            except OSError:
                pass

    def host(self, gfd: int) -> int:
        try:
            return self._host[gfd]
        except KeyError:
            raise _Errno(_errno.EBADF) from None

    def __contains__(self, gfd: int) -> bool:
        return gfd in self._host

    def guest_fds(self) -> list[int]:
        return sorted(self._host)

    def lowest_free(self, start: int = 0) -> int:
        fd = start
        while fd in self._host:
            fd += 1
        if fd >= self.limit:
            raise _Errno(_errno.EMFILE)
        return fd

    def add(self, host_fd: int, cloexec: bool = False, start: int = 0) -> int:
        try:
            gfd = self.lowest_free(start)
        except _Errno:
            os.close(host_fd)
            raise
        self._host[gfd] = host_fd
        self._cloexec[gfd] = cloexec
        return gfd

    def put(self, gfd: int, host_fd: int, cloexec: bool = False) -> None:
        old = self._host.get(gfd)
        self._host[gfd] = host_fd
        self._cloexec[gfd] = cloexec
        if old is not None:
            try:
                os.close(old)
            except OSError:
                pass

    def close(self, gfd: int) -> None:
        host = self._host.pop(gfd, None)
        if host is None:
            raise _Errno(_errno.EBADF)
        self._cloexec.pop(gfd, None)
        os.close(host)

    def cloexec(self, gfd: int) -> bool:
        self.host(gfd)
        return self._cloexec[gfd]

    def set_cloexec(self, gfd: int, value: bool) -> None:
        self.host(gfd)
        self._cloexec[gfd] = value

    def close_all(self) -> None:
        for gfd in list(self._host):
            try:
                self.close(gfd)
            except (OSError, _Errno):
                pass


# --------------------------------------------------------------------------
_SYSCALLS = SYSCALLS
_sys = syscall


_OFLAG_NAMES = [(0o100, "O_CREAT"), (0o200, "O_EXCL"), (0o400, "O_NOCTTY"),
                (0o1000, "O_TRUNC"), (0o2000, "O_APPEND"), (0o4000, "O_NONBLOCK"),
                (0o10000, "O_DSYNC"), (0o20000, "O_ASYNC"), (0o40000, "O_DIRECT"),
                (0o100000, "O_LARGEFILE"), (0o200000, "O_DIRECTORY"),
                (0o400000, "O_NOFOLLOW"), (0o1000000, "O_NOATIME"),
                (0o2000000, "O_CLOEXEC"), (0o4000000, "__O_SYNC"), (0o10000000, "O_PATH"),
                (0o20000000, "__O_TMPFILE")]


_FCNTL_NAMES = {F_DUPFD: "F_DUPFD", F_GETFD: "F_GETFD", F_SETFD: "F_SETFD", F_GETFL: "F_GETFL",
                F_SETFL: "F_SETFL", F_DUPFD_CLOEXEC: "F_DUPFD_CLOEXEC"}


def _fmt_oflags(flags: int) -> str:
    parts = [("O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE")[flags & 3]]
    rest = flags & ~3
    for bit, nm in _OFLAG_NAMES:
        if rest & bit:
            parts.append(nm)
            rest &= ~bit
    if rest:
        parts.append(hex(rest))
    return "|".join(parts)


def _fmt_prot(prot: int) -> str:
    if prot == 0:
        return "PROT_NONE"
    parts = [nm for bit, nm in ((1, "PROT_READ"), (2, "PROT_WRITE"), (4, "PROT_EXEC")) if prot & bit]
    if prot & ~7:
        parts.append(hex(prot & ~7))
    return "|".join(parts)


def _fmt_mflags(flags: int) -> str:
    parts = [{1: "MAP_SHARED", 2: "MAP_PRIVATE", 3: "MAP_SHARED_VALIDATE"}.get(flags & 0xF,
                                                                              hex(flags & 0xF))]
    rest = flags & ~0xF
    for bit, nm in ((0x10, "MAP_FIXED"), (0x20, "MAP_ANONYMOUS"), (0x100, "MAP_GROWSDOWN"),
                    (0x4000, "MAP_NORESERVE"), (0x8000, "MAP_POPULATE"), (0x20000, "MAP_STACK"),
                    (0x100000, "MAP_FIXED_NOREPLACE")):
        if rest & bit:
            parts.append(nm)
            rest &= ~bit
    if rest:
        parts.append(hex(rest))
    return "|".join(parts)


def _quote(data: bytes, limit: int = 32) -> str:
    out = []
    for b in data[:limit]:
        c = chr(b)
        if c == '"' or c == "\\":
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif 32 <= b < 127:
            out.append(c)
        else:
            out.append(f"\\x{b:02x}")
    return '"' + "".join(out) + '"' + ("..." if len(data) > limit else "")


# --------------------------------------------------------------------------
# The kernel
# --------------------------------------------------------------------------

# System calls that change the guest's memory map: one at a time (mm_lock),
# as Linux serialises them on mmap_lock.
MM_SYSCALLS: frozenset[str] = frozenset({
    "brk", "mmap", "munmap", "mprotect", "mremap", "madvise", "msync", "mlock", "mlock2",
    "munlock", "mlockall", "munlockall", "shmat", "shmdt", "pkey_mprotect",
})


class LinuxKernel(IoCalls, ProcessCalls, SignalCalls, ThreadCalls, MiscCalls, HwprobeCalls):
    """The emulated kernel state of one guest process and its syscall entry point."""

    def __init__(self, mem: GuestMemory, abi: SyscallAbi, *, brk_start: int, exe_path: str,
                 strace: TextIO | None = None, mmap_base_hint: int = 0xE000_0000,
                 mmap_min: int = 0x10000, stack_size: int = 8 << 20,
                 install_std_fds: bool = True) -> None:
        self.mem = mem
        self.abi = abi
        # Called by riscv_flush_icache: code bytes may have changed.
        self.on_icache_flush: Callable[[], None] | None = None
        # Called in the child after a guest fork (process_calls.py), by the Machine.
        self.on_fork_child: Callable[[], None] | None = None
        # Held by the memory-map system calls (MM_SYSCALLS) and across fork.
        self.mm_lock = threading.RLock()
        # The CPUs the guest sees (runtime/linux/cpus.py).
        self.ncpus = guest_cpu_count()
        # Held across os.fork by the forking thread (the Machine's JIT lock):
        # no other thread may be inside a compile, holding a lock or half
        # an update the child would inherit with no thread to finish it.
        self.fork_guard: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
        # --max-memory: mapped guest bytes may not grow beyond this (brk
        # fails, mmap/mremap return -ENOMEM, like an exhausted RLIMIT_AS).
        self.max_memory: int | None = None
        self.exe_path = os.path.abspath(exe_path)
        self.strace = strace
        self.brk_start = page_up(brk_start)
        self.brk_cur = self.brk_start
        self.mmap_top = min(page_down(mmap_base_hint), mem.limit)
        self.mmap_min = page_up(mmap_min)
        self.pid = os.getpid()
        # Guest threads (threads.py; ``current`` is the caller's) and signals (signals.py).
        self._init_threads()
        self._init_signals()
        self.rlimits: dict[int, tuple[int, int]] = {}
        for res in range(16):
            try:
                cur, mx = _resource.getrlimit(res)
            except (ValueError, OSError):
                continue
            self.rlimits[res] = (cur & MASK64, mx & MASK64)
        self.rlimits[RLIMIT_STACK] = (stack_size, self.rlimits.get(RLIMIT_STACK, (0, RLIM_INFINITY))[1])
        nofile_hard = self.rlimits.get(RLIMIT_NOFILE, (1024, 1024))[1]
        self.rlimits[RLIMIT_NOFILE] = (1024, max(1024, min(nofile_hard, 1 << 20)))
        self.fds = FdTable(limit=1024)
        if install_std_fds:
            self.fds.install_std()
        self.shared_ranges: list[tuple[int, int]] = []   # host-shared file mappings
        # The guest's /proc (runtime/linux/procfs.py): every path call asks it first.
        self.procfs = ProcView(self)
        self._handlers: dict[int, tuple[Callable[..., int], tuple[str, ...], str, str, int]] = {}
        for name, nr in abi.numbers.items():
            entry = _SYSCALLS.get(name)
            if entry is not None:
                meth, kinds, rkind = entry
                fn = getattr(self, meth)
                code = fn.__func__.__code__
                nargs = 6 if code.co_flags & 0x04 else code.co_argcount - 1
                if name in MM_SYSCALLS:
                    fn = self._under_mm_lock(fn)
                self._handlers[nr] = (fn, kinds, rkind, name, nargs)

    def _under_mm_lock(self, fn: Callable[..., int]) -> Callable[..., int]:
        """``fn`` holding ``mm_lock``: a memory-map call reads the layout, then
        changes it (pick a free range, then map it); two threads doing that at
        once could both pick the same range, and GuestMemory's bookkeeping is
        not safe against concurrent changes."""
        def locked(*a: int) -> int:
            with self.mm_lock:
                return fn(*a)
        return locked

    # -- entry point -------------------------------------------------------
    def syscall(self, nr: int, args: Sequence[int]) -> int:
        """Run syscall ``nr``; return the value for the guest's return register."""
        a = [int(x) & MASK64 for x in args]
        a += [0] * (6 - len(a))
        entry = self._handlers.get(nr)
        if entry is None:
            if self.strace is not None:
                name = self.abi.name_of(nr) or f"syscall_{nr:#x}"
                self._log(f"{name}(...)", -_errno.ENOSYS, "d")
            return -_errno.ENOSYS
        fn, kinds, rkind, name, nargs = entry
        line = self._fmt_call(name, kinds, a) if self.strace is not None else ""
        try:
            ret = fn(*a[:nargs])
        except _Errno as e:
            ret = -e.err
        except GuestMemoryError:
            ret = -_errno.EFAULT
        except OSError as e:
            ret = -(e.errno or _errno.EIO)
        except OverflowError:
            ret = -_errno.EINVAL
        except GuestExit as e:
            if self.strace is not None:
                self.strace.write(f"{line} = ?\n+++ exited with {e.status} +++\n")
                self.strace.flush()
            raise
        except GuestKilled as e:
            if self.strace is not None:
                self.strace.write(f"{line} = ?\n+++ killed by {self._signame(e.signal)} +++\n")
                self.strace.flush()
            raise
        except (ResumeGuest, ThreadExit):
            if self.strace is not None:
                self.strace.write(f"{line} = ?\n")
                self.strace.flush()
            raise
        if ret == -_errno.EPIPE and name in _SIGPIPE_CALLS and not (
                name.startswith("send") and a[3] & _MSG_NOSIGNAL):
            self.post_signal(SIGPIPE, thread=self.current)   # as Linux does on a broken pipe
        if self.strace is not None:
            self._log(line, ret, rkind)
        if (self.pending_signals or self.current.pending) and (sig := self.fatal_pending()):
            if self.strace is not None:
                self.strace.write(f"+++ killed by {self._signame(sig)} +++\n")
                self.strace.flush()
            raise GuestKilled(sig)
        return ret

    @property
    def current(self):
        """The guest thread making this system call (threads.py)."""
        return getattr(self._tls, "thread", self.main_thread)

    def handles(self, nr: int) -> bool:
        return nr in self._handlers

    def close(self) -> None:
        """Close every host fd the guest's table owns, and the threads' wake fds."""
        self.fds.close_all()
        for t in self.threads.values():
            t.close()

    # -- strace --------------------------------------------------------------
    @staticmethod
    def _signame(sig: int) -> str:
        import signal as _signal
        try:
            return _signal.Signals(sig).name
        except ValueError:
            return f"SIG{sig}"

    def _fmt_arg(self, kind: str, v: int, nxt: int) -> str:
        try:
            if kind == "d":
                return str(_s64(v))
            if kind == "fd":
                return str(_s32(v))
            if kind == "dirfd":
                return "AT_FDCWD" if _s32(v) == AT_FDCWD else str(_s32(v))
            if kind == "path":
                if v == 0:
                    return "NULL"
                s = self.mem.read_cstring(v, 4096)
                return _quote(s, 256)
            if kind == "wbuf":
                return _quote(self.mem.read(v, min(nxt, 33)), 32)
            if kind == "oflags":
                return _fmt_oflags(v & 0xFFFFFFFF)
            if kind == "mode":
                return oct(v & 0xFFFFFFFF).replace("0o", "0") if v else "0"
            if kind == "prot":
                return _fmt_prot(v & 0xFFFFFFFF)
            if kind == "mflags":
                return _fmt_mflags(v & 0xFFFFFFFF)
            if kind == "sig":
                return self._signame(_s32(v)) if 0 < _s32(v) < 32 else str(_s32(v))
            if kind == "fcntlcmd":
                return _FCNTL_NAMES.get(_s32(v), str(_s32(v)))
            if kind == "how":
                return ("SIG_BLOCK", "SIG_UNBLOCK", "SIG_SETMASK")[v] if v < 3 else str(_s32(v))
            if kind == "u":
                return str(v)
            if kind == "p":
                return "NULL" if v == 0 else hex(v)
        except GuestMemoryError:
            return hex(v)
        return hex(v)

    def _fmt_call(self, name: str, kinds: tuple[str, ...], a: list[int]) -> str:
        parts = [self._fmt_arg(k, a[i], a[i + 1] if i + 1 < len(a) else 0)
                 for i, k in enumerate(kinds)]
        return f"{name}({', '.join(parts)})"

    def _log(self, line: str, ret: int, rkind: str) -> None:
        if -4096 < ret < 0:
            res = f"{ret} {_errno.errorcode.get(-ret, '?')}"
        elif rkind == "x":
            res = hex(ret & MASK64)
        else:
            res = str(ret)
        assert self.strace is not None
        self.strace.write(f"{line} = {res}\n")

    # -- helpers -------------------------------------------------------------
    def _path(self, addr: int) -> bytes:
        if addr == 0:
            raise _Errno(_errno.EFAULT)
        s = self.mem.read_cstring(addr, 4096)
        if len(s) >= 4095:
            raise _Errno(_errno.ENAMETOOLONG)
        return s

    def _dirfd(self, dirfd: int, path: bytes = b"") -> int | None:
        """Guest dirfd → host dir_fd argument (None for AT_FDCWD or an absolute path);
        EACCES for a path that resolves into /proc (see ProcView.guard)."""
        d = _s32(dirfd)
        self.procfs.guard(d, path)
        if d == AT_FDCWD or path[:1] == b"/":
            return None
        return self.fds.host(d)

    def _dirfd_raw(self, dirfd: int, path: bytes = b"") -> int:
        d = self._dirfd(dirfd, path)
        return AT_FDCWD if d is None else d

    def _prefix(self, addr: int, length: int, prot: int) -> int:
        """Bytes from ``addr`` (up to ``length``) that are mapped with ``prot``, contiguously."""
        done = 0
        while done < length:
            m = self.mem.find_mapping(addr + done)
            if m is None or (m.prot & prot) != prot:
                break
            done = min(length, m.end - addr)
        return done

    def _access_ok(self, addr: int, length: int) -> None:
        """Linux's access_ok: a buffer that passes the top of a user address
        space (the ISA's TASK_SIZE, as the guest's kernel would have it) is
        -EFAULT as a whole, before any count is clamped, not a partial
        transfer of its mapped prefix; one below it transfers what is mapped."""
        if length and addr + length > self.abi.task_size:
            raise _Errno(_errno.EFAULT)

    def _need(self, addr: int, length: int, prot: int) -> None:
        if length and (addr + length > self.mem.limit or self._prefix(addr, length, prot) < length):
            raise _Errno(_errno.EFAULT)

    # ======================================================================
    # File I/O
    # ======================================================================
    def _wait_fd(self, host: int, write: bool) -> int:
        """Before a read or write that may block: while the guest catches
        signals, wait until ``host`` is ready or a signal arrives for this
        thread (→ -ERESTARTSYS: restarted or -EINTR, as Linux does); 0 to
        go on.  Without handlers nothing can interrupt the call: no wait."""
        if not self.catching:
            return 0
        event = select.POLLOUT if write else select.POLLIN
        p = select.poll()
        p.register(host, event)
        if p.poll(0):
            return 0
        t = self.current
        p.register(t.wake_fd, select.POLLIN)
        while True:
            t.clear_wake()
            if self.signal_pending():
                return -ERESTARTSYS
            if any(fd == host for fd, _ev in p.poll()):
                return 0

    @_sys("read", "fd", "p", "u")
    def sys_read(self, fd: int, buf: int, count: int) -> int:
        if self.signalfds and (sfd := self.signalfd_read(fd, buf, count)) is not None:
            return sfd                          # a signalfd (misc_calls.py)
        host = self.fds.host(_s32(fd))
        self._access_ok(buf, count)
        count = min(count, 0x7FFFF000)
        if count == 0:
            return _host_check(_libc.read(host, None, 0))
        n = self._prefix(buf, count, PROT_WRITE)
        if n == 0:
            return -_errno.EFAULT
        wait = self._wait_fd(host, write=False)
        if wait:
            return wait
        return _host_check(_libc.read(host, self.mem.host_address(buf), n))

    @_sys("write", "fd", "wbuf", "u")
    def sys_write(self, fd: int, buf: int, count: int) -> int:
        host = self.fds.host(_s32(fd))
        self._access_ok(buf, count)
        count = min(count, 0x7FFFF000)
        if count == 0:
            return _host_check(_libc.write(host, None, 0))
        n = self._prefix(buf, count, PROT_READ)
        if n == 0:
            return -_errno.EFAULT
        wait = self._wait_fd(host, write=True)
        if wait:
            return wait
        return _host_check(_libc.write(host, self.mem.host_address(buf), n))

    @_sys("pread64", "fd", "p", "u", "d")
    def sys_pread64(self, fd: int, buf: int, count: int, offset: int) -> int:
        host = self.fds.host(_s32(fd))
        if _s64(offset) < 0:
            return -_errno.EINVAL
        self._access_ok(buf, count)
        count = min(count, 0x7FFFF000)
        n = self._prefix(buf, count, PROT_WRITE) if count else 0
        if count and n == 0:
            return -_errno.EFAULT
        return _host_check(_libc.pread64(host, self.mem.host_address(buf) if n else None, n,
                                         _s64(offset)))

    @_sys("pwrite64", "fd", "wbuf", "u", "d")
    def sys_pwrite64(self, fd: int, buf: int, count: int, offset: int) -> int:
        host = self.fds.host(_s32(fd))
        if _s64(offset) < 0:
            return -_errno.EINVAL
        self._access_ok(buf, count)
        count = min(count, 0x7FFFF000)
        n = self._prefix(buf, count, PROT_READ) if count else 0
        if count and n == 0:
            return -_errno.EFAULT
        return _host_check(_libc.pwrite64(host, self.mem.host_address(buf) if n else None, n,
                                          _s64(offset)))

    def _iovecs(self, iov: int, iovcnt: int) -> list[tuple[int, int]]:
        cnt = _s32(iovcnt)
        if cnt < 0 or cnt > 1024:
            raise _Errno(_errno.EINVAL)
        raw = self.mem.read(iov, 16 * cnt)
        out = []
        total = 0
        for i in range(cnt):
            base, length = struct.unpack_from("<QQ", raw, 16 * i)
            if length > 0x7FFFFFFFFFFFFFFF:
                raise _Errno(_errno.EINVAL)
            total += length
            out.append((base, length))
        if total > 0x7FFFFFFFFFFFFFFF:
            raise _Errno(_errno.EINVAL)
        return out

    def _host_iovecs(self, iov: int, iovcnt: int, prot: int) -> tuple[ctypes.Array, int]:
        """The guest's iovec array as a host iovec array, after checking that
        every buffer is mapped with ``prot``."""
        vecs = self._iovecs(iov, iovcnt)
        for base, length in vecs:
            self._need(base, length, prot)
        arr = (ctypes.c_uint64 * (2 * len(vecs) or 2))()
        for i, (base, length) in enumerate(vecs):
            arr[2 * i] = self.mem.host_address(base) if length else 0
            arr[2 * i + 1] = length
        return arr, len(vecs)

    @_sys("readv", "fd", "p", "d")
    def sys_readv(self, fd: int, iov: int, iovcnt: int) -> int:
        host = self.fds.host(_s32(fd))
        arr, n = self._host_iovecs(iov, iovcnt, PROT_WRITE)
        return _host_check(_libc.readv(host, arr, n))

    @_sys("writev", "fd", "p", "d")
    def sys_writev(self, fd: int, iov: int, iovcnt: int) -> int:
        host = self.fds.host(_s32(fd))
        arr, n = self._host_iovecs(iov, iovcnt, PROT_READ)
        return _host_check(_libc.writev(host, arr, n))

    @_sys("lseek", "fd", "d", "d")
    def sys_lseek(self, fd: int, offset: int, whence: int) -> int:
        host = self.fds.host(_s32(fd))
        w = _s32(whence)
        if w < 0 or w > 4:
            return -_errno.EINVAL
        return os.lseek(host, _s64(offset), w)

    def _open(self, dirfd: int, path_addr: int, flags: int, mode: int) -> int:
        path = self._path(path_addr)
        flags &= 0xFFFFFFFF
        if not path:
            return -_errno.ENOENT
        host_flags = self.abi.open_flags_to_host(flags) | O_CLOEXEC
        hfd = self.procfs.open(_s32(dirfd), path, host_flags, mode & 0o7777)
        if hfd is None:
            host_dir = self._dirfd(dirfd, path)
            if host_dir is None:
                hfd = os.open(path, host_flags, mode & 0o7777)
            else:
                hfd = os.open(path, host_flags, mode & 0o7777, dir_fd=host_dir)
            self.procfs.check_host_fd(hfd)
        return self.fds.add(hfd, cloexec=bool(flags & O_CLOEXEC))

    @_sys("openat", "dirfd", "path", "oflags", "mode")
    def sys_openat(self, dirfd: int, path: int, flags: int, mode: int) -> int:
        return self._open(dirfd, path, flags, mode)

    @_sys("open", "path", "oflags", "mode")
    def sys_open(self, path: int, flags: int, mode: int) -> int:
        return self._open(AT_FDCWD, path, flags, mode)

    @_sys("creat", "path", "mode")
    def sys_creat(self, path: int, mode: int) -> int:
        return self._open(AT_FDCWD, path, 0o1101, mode)    # O_CREAT|O_WRONLY|O_TRUNC

    @_sys("close", "fd")
    def sys_close(self, fd: int) -> int:
        self.fds.close(_s32(fd))
        return 0

    # -- stat family -------------------------------------------------------
    def _stat_at(self, dirfd: int, path_addr: int, flags: int) -> os.stat_result:
        flags = _s32(flags)
        if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | 0x800):
            raise _Errno(_errno.EINVAL)
        path = self._path(path_addr)
        if not path:
            if not flags & AT_EMPTY_PATH:
                raise _Errno(_errno.ENOENT)
            st = self.procfs.stat_empty(_s32(dirfd))
            if st is not None:
                return st
            if _s32(dirfd) == AT_FDCWD:
                return os.stat(".")
            return os.fstat(self.fds.host(_s32(dirfd)))
        st = self.procfs.stat(_s32(dirfd), path, follow=not flags & AT_SYMLINK_NOFOLLOW)
        if st is not None:
            return st
        host_dir = self._dirfd(dirfd, path)
        return os.stat(path, dir_fd=host_dir, follow_symlinks=not flags & AT_SYMLINK_NOFOLLOW)

    def _put_stat(self, buf: int, st: os.stat_result) -> int:
        self.mem.write(buf, self.abi.pack_stat(st))
        return 0

    @_sys("newfstatat", "dirfd", "path", "p", "x")
    def sys_newfstatat(self, dirfd: int, path: int, buf: int, flags: int) -> int:
        self._need(buf, self.abi.stat_size, PROT_WRITE)
        return self._put_stat(buf, self._stat_at(dirfd, path, flags))

    @_sys("fstat", "fd", "p")
    def sys_fstat(self, fd: int, buf: int) -> int:
        host = self.fds.host(_s32(fd))
        self._need(buf, self.abi.stat_size, PROT_WRITE)
        return self._put_stat(buf, self.procfs.fstat(host) or os.fstat(host))

    @_sys("stat", "path", "p")
    def sys_stat(self, path: int, buf: int) -> int:
        self._need(buf, self.abi.stat_size, PROT_WRITE)
        return self._put_stat(buf, self._stat_at(AT_FDCWD, path, 0))

    @_sys("lstat", "path", "p")
    def sys_lstat(self, path: int, buf: int) -> int:
        self._need(buf, self.abi.stat_size, PROT_WRITE)
        return self._put_stat(buf, self._stat_at(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW))

    @_sys("statx", "dirfd", "path", "x", "x", "p")
    def sys_statx(self, dirfd: int, path_addr: int, flags: int, mask: int, buf: int) -> int:
        self._need(buf, 256, PROT_WRITE)
        path = self._path(path_addr)
        flags = _s32(flags)
        if path:
            view = self.procfs.stat(_s32(dirfd), path, follow=not flags & AT_SYMLINK_NOFOLLOW)
        else:
            view = self.procfs.stat_empty(_s32(dirfd)) if flags & AT_EMPTY_PATH else None
        if view is not None:
            self.mem.write(buf, self.procfs.pack_statx(view))
            return 0
        hdir = self._dirfd_raw(dirfd, path)
        if not path and _s32(dirfd) == AT_FDCWD and flags & AT_EMPTY_PATH:
            path = b"."
            flags &= ~AT_EMPTY_PATH
        out = ctypes.create_string_buffer(256)
        _host_check(_libc.syscall(_HOST_NR["statx"], ctypes.c_int(hdir), ctypes.c_char_p(path),
                                  ctypes.c_int(flags), ctypes.c_uint(mask & 0xFFFFFFFF), out))
        self.mem.write(buf, out.raw)
        return 0

    @_sys("getdents64", "fd", "p", "u")
    def sys_getdents64(self, fd: int, dirp: int, count: int) -> int:
        host = self.fds.host(_s32(fd))
        count = min(count & 0xFFFFFFFF, 1 << 20)
        self._need(dirp, count, PROT_WRITE)
        view = self.procfs.getdents64(host, count)
        if view is not None:
            self.mem.write(dirp, view)
            return len(view)
        out = ctypes.create_string_buffer(max(count, 1))
        n = _host_check(_libc.syscall(_HOST_NR["getdents64"], ctypes.c_int(host), out,
                                      ctypes.c_uint(count)))
        self.mem.write(dirp, out.raw[:n])
        return n

    # -- names ---------------------------------------------------------------
    def _rename(self, olddir: int, oldp: int, newdir: int, newp: int, flags: int) -> int:
        old, new = self._path(oldp), self._path(newp)
        hold = self._dirfd_raw(olddir, old)
        hnew = self._dirfd_raw(newdir, new)
        return _host_check(_libc.syscall(_HOST_NR["renameat2"], ctypes.c_int(hold),
                                         ctypes.c_char_p(old), ctypes.c_int(hnew),
                                         ctypes.c_char_p(new), ctypes.c_uint(flags & 0xFFFFFFFF)))

    @_sys("renameat", "dirfd", "path", "dirfd", "path")
    def sys_renameat(self, olddir: int, oldp: int, newdir: int, newp: int) -> int:
        return self._rename(olddir, oldp, newdir, newp, 0)

    @_sys("renameat2", "dirfd", "path", "dirfd", "path", "x")
    def sys_renameat2(self, olddir: int, oldp: int, newdir: int, newp: int, flags: int) -> int:
        return self._rename(olddir, oldp, newdir, newp, flags)

    @_sys("rename", "path", "path")
    def sys_rename(self, oldp: int, newp: int) -> int:
        return self._rename(AT_FDCWD, oldp, AT_FDCWD, newp, 0)

    @_sys("unlinkat", "dirfd", "path", "x")
    def sys_unlinkat(self, dirfd: int, path: int, flags: int) -> int:
        p = self._path(path)
        flags = _s32(flags)
        if flags & ~AT_REMOVEDIR:
            return -_errno.EINVAL
        hdir = self._dirfd(dirfd, p)
        if flags & AT_REMOVEDIR:
            os.rmdir(p, dir_fd=hdir)
        else:
            os.unlink(p, dir_fd=hdir)
        return 0

    @_sys("unlink", "path")
    def sys_unlink(self, path: int) -> int:
        return self.sys_unlinkat(AT_FDCWD & MASK64, path, 0)

    @_sys("rmdir", "path")
    def sys_rmdir(self, path: int) -> int:
        return self.sys_unlinkat(AT_FDCWD & MASK64, path, AT_REMOVEDIR)

    @_sys("mkdirat", "dirfd", "path", "mode")
    def sys_mkdirat(self, dirfd: int, path: int, mode: int) -> int:
        p = self._path(path)
        os.mkdir(p, mode & 0o7777, dir_fd=self._dirfd(dirfd, p))
        return 0

    @_sys("mkdir", "path", "mode")
    def sys_mkdir(self, path: int, mode: int) -> int:
        return self.sys_mkdirat(AT_FDCWD & MASK64, path, mode)

    @_sys("symlinkat", "path", "dirfd", "path")
    def sys_symlinkat(self, target: int, newdirfd: int, linkpath: int) -> int:
        link = self._path(linkpath)
        os.symlink(self._path(target), link, dir_fd=self._dirfd(newdirfd, link))
        return 0

    @_sys("symlink", "path", "path")
    def sys_symlink(self, target: int, linkpath: int) -> int:
        return self.sys_symlinkat(target, AT_FDCWD & MASK64, linkpath)

    @_sys("linkat", "dirfd", "path", "dirfd", "path", "x")
    def sys_linkat(self, olddir: int, oldp: int, newdir: int, newp: int, flags: int) -> int:
        old, new = self._path(oldp), self._path(newp)
        os.link(old, new, src_dir_fd=self._dirfd(olddir, old),
                dst_dir_fd=self._dirfd(newdir, new), follow_symlinks=bool(flags & AT_SYMLINK_FOLLOW))
        return 0

    @_sys("readlinkat", "dirfd", "path", "p", "d")
    def sys_readlinkat(self, dirfd: int, path: int, buf: int, bufsiz: int) -> int:
        p = self._path(path)
        size = _s32(bufsiz)
        if size <= 0:
            return -_errno.EINVAL
        target = self.procfs.readlink(_s32(dirfd), p) if p else None
        if target is None:
            target = os.readlink(p, dir_fd=self._dirfd(dirfd, p))
        data = target[:size]
        self.mem.write(buf, data)
        return len(data)

    @_sys("readlink", "path", "p", "d")
    def sys_readlink(self, path: int, buf: int, bufsiz: int) -> int:
        return self.sys_readlinkat(AT_FDCWD & MASK64, path, buf, bufsiz)

    def _access(self, dirfd: int, path: int, mode: int, flags: int) -> int:
        p = self._path(path)
        mode, flags = _s32(mode), _s32(flags)
        if mode & ~7:
            return -_errno.EINVAL
        if flags & ~(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
            return -_errno.EINVAL
        if p and self.procfs.access(_s32(dirfd), p, mode, follow=not flags & AT_SYMLINK_NOFOLLOW):
            return 0
        if not p and flags & AT_EMPTY_PATH and self.procfs.stat_empty(_s32(dirfd)) is not None:
            return -_errno.EACCES if mode & 2 else 0
        hdir = self._dirfd_raw(dirfd, p)
        if not p and flags & AT_EMPTY_PATH:
            if hdir == AT_FDCWD:
                p = b"."
            flags &= ~AT_EMPTY_PATH
        return _host_check(_libc.syscall(_HOST_NR["faccessat2"], ctypes.c_int(hdir),
                                         ctypes.c_char_p(p), ctypes.c_int(mode),
                                         ctypes.c_int(flags)))

    @_sys("faccessat", "dirfd", "path", "d")
    def sys_faccessat(self, dirfd: int, path: int, mode: int) -> int:
        return self._access(dirfd, path, mode, 0)

    @_sys("faccessat2", "dirfd", "path", "d", "x")
    def sys_faccessat2(self, dirfd: int, path: int, mode: int, flags: int) -> int:
        return self._access(dirfd, path, mode, flags)

    @_sys("access", "path", "d")
    def sys_access(self, path: int, mode: int) -> int:
        return self._access(AT_FDCWD & MASK64, path, mode, 0)

    @_sys("getcwd", "p", "u")
    def sys_getcwd(self, buf: int, size: int) -> int:
        cwd = self.procfs.getcwd() + b"\0"
        if len(cwd) > size:
            return -_errno.ERANGE
        self.mem.write(buf, cwd)
        return len(cwd)

    @_sys("chdir", "path")
    def sys_chdir(self, path: int) -> int:
        self.procfs.chdir(self._path(path))
        return 0

    @_sys("fchdir", "fd")
    def sys_fchdir(self, fd: int) -> int:
        self.procfs.fchdir(self.fds.host(_s32(fd)))
        return 0

    @_sys("fchmodat", "dirfd", "path", "mode")
    def sys_fchmodat(self, dirfd: int, path: int, mode: int) -> int:
        p = self._path(path)
        os.chmod(p, mode & 0o7777, dir_fd=self._dirfd(dirfd, p))
        return 0

    @_sys("fchmod", "fd", "mode")
    def sys_fchmod(self, fd: int, mode: int) -> int:
        os.fchmod(self.fds.host(_s32(fd)), mode & 0o7777)
        return 0

    @_sys("ftruncate", "fd", "d")
    def sys_ftruncate(self, fd: int, length: int) -> int:
        if _s64(length) < 0:
            return -_errno.EINVAL
        os.ftruncate(self.fds.host(_s32(fd)), _s64(length))
        return 0

    @_sys("fsync", "fd")
    def sys_fsync(self, fd: int) -> int:
        os.fsync(self.fds.host(_s32(fd)))
        return 0

    @_sys("fdatasync", "fd")
    def sys_fdatasync(self, fd: int) -> int:
        os.fdatasync(self.fds.host(_s32(fd)))
        return 0

    @_sys("umask", "mode")
    def sys_umask(self, mask: int) -> int:
        return os.umask(mask & 0o777)

    # -- ioctl / fcntl / dup / pipe -------------------------------------------
    @_sys("ioctl", "fd", "x", "p")
    def sys_ioctl(self, fd: int, request: int, arg: int) -> int:
        host = self.fds.host(_s32(fd))
        req = request & 0xFFFFFFFF
        if req in JOB_CONTROL_IOCTLS:       # TIOCGPGRP, TIOCSPGRP, TIOCGSID (process_calls.py)
            return self._job_control_ioctl(host, req, arg)
        size = {TCGETS: 36, TIOCGWINSZ: 8}.get(req)
        if size is None:
            return -_errno.ENOTTY
        if not os.isatty(host):
            return -_errno.ENOTTY
        self._need(arg, size, PROT_WRITE)
        out = _fcntl.ioctl(host, req, bytes(size))
        self.mem.write(arg, out[:size])
        return 0

    @_sys("fcntl", "fd", "fcntlcmd", "x")
    def sys_fcntl(self, fd: int, cmd: int, arg: int) -> int:
        gfd = _s32(fd)
        host = self.fds.host(gfd)
        cmd = _s32(cmd)
        if cmd in (F_DUPFD, F_DUPFD_CLOEXEC):
            start = _s32(arg)
            if start < 0 or start >= self.fds.limit:
                return -_errno.EINVAL
            self.fds.lowest_free(start)
            return self.fds.add(os.dup(host), cloexec=cmd == F_DUPFD_CLOEXEC, start=start)
        if cmd == F_GETFD:
            return FD_CLOEXEC if self.fds.cloexec(gfd) else 0
        if cmd == F_SETFD:
            self.fds.set_cloexec(gfd, bool(arg & FD_CLOEXEC))
            return 0
        if cmd == F_GETFL:
            return self.abi.open_flags_from_host(_fcntl.fcntl(host, _fcntl.F_GETFL)) & ~O_CLOEXEC
        if cmd == F_SETFL:
            _fcntl.fcntl(host, _fcntl.F_SETFL, self.abi.open_flags_to_host(arg & 0xFFFFFFFF))
            return 0
        if cmd in _LOCK_CMDS:
            raw = self.mem.read(arg, _FLOCK_SIZE)
            l_type, l_whence = struct.unpack_from("<hh", raw)
            if l_type not in (0, 1, 2) or l_whence not in (0, 1, 2):     # F_RDLCK..F_UNLCK, SEEK_*
                return -_errno.EINVAL
            # F_SETLKW waits with the GIL released; a guest signal does not
            # cut the wait short (a documented limit).
            out = _fcntl.fcntl(host, cmd, raw)
            if cmd in (F_GETLK, F_OFD_GETLK):
                self.mem.write(arg, out)
            return 0
        if cmd in (F_GETPIPE_SZ, F_SETPIPE_SZ, F_GET_SEALS):
            return _fcntl.fcntl(host, cmd, arg & 0x7FFFFFFF if cmd == F_SETPIPE_SZ else 0)
        if cmd == F_ADD_SEALS:
            return _fcntl.fcntl(host, cmd, arg & 0xFFFFFFFF)
        return -_errno.EINVAL

    @_sys("dup", "fd")
    def sys_dup(self, fd: int) -> int:
        host = self.fds.host(_s32(fd))
        self.fds.lowest_free()
        return self.fds.add(os.dup(host))

    @_sys("dup3", "fd", "fd", "oflags")
    def sys_dup3(self, oldfd: int, newfd: int, flags: int) -> int:
        old, new = _s32(oldfd), _s32(newfd)
        if flags & ~O_CLOEXEC:
            return -_errno.EINVAL
        host = self.fds.host(old)
        if old == new:
            return -_errno.EINVAL
        if new < 0 or new >= self.fds.limit:
            return -_errno.EBADF
        self.fds.put(new, os.dup(host), cloexec=bool(flags & O_CLOEXEC))
        return new

    @_sys("dup2", "fd", "fd")
    def sys_dup2(self, oldfd: int, newfd: int) -> int:
        old, new = _s32(oldfd), _s32(newfd)
        self.fds.host(old)
        if old == new:
            return new
        return self.sys_dup3(oldfd, newfd, 0)

    @_sys("pipe2", "p", "oflags")
    def sys_pipe2(self, fds: int, flags: int) -> int:
        flags = self.abi.open_flags_to_host(flags & 0xFFFFFFFF)
        if flags & ~(O_CLOEXEC | O_NONBLOCK | O_DIRECT_HOST):
            return -_errno.EINVAL
        self._need(fds, 8, PROT_WRITE)
        if len(self.fds.guest_fds()) + 2 > self.fds.limit:
            return -_errno.EMFILE
        r, w = os.pipe2(flags | O_CLOEXEC)
        gr = self.fds.add(r, cloexec=bool(flags & O_CLOEXEC))
        try:
            gw = self.fds.add(w, cloexec=bool(flags & O_CLOEXEC))
        except _Errno:
            self.fds.close(gr)
            raise
        self.mem.write(fds, struct.pack("<ii", gr, gw))
        return 0

    @_sys("pipe", "p")
    def sys_pipe(self, fds: int) -> int:
        return self.sys_pipe2(fds, 0)

    # ======================================================================
    # Memory
    # ======================================================================
    def _range_free(self, start: int, end: int) -> bool:
        return all(m.end <= start or m.start >= end for m in self.mem.mappings())

    def _over_limit(self, grow: int, start: int = 0, end: int = 0) -> bool:
        """Would mapping ``grow`` more bytes (fresh pages at [start, end),
        replacing what is mapped there) exceed --max-memory?"""
        if self.max_memory is None or grow <= 0:
            return False
        replaced = sum(max(0, min(m.end, end) - max(m.start, start)) for m in self.mem.mappings())
        return self.mem.mapped_bytes + grow - replaced > self.max_memory

    @_sys("brk", "p", result="x")
    def sys_brk(self, addr: int) -> int:
        new = addr
        if new < self.brk_start or new > self.mem.limit:
            return self.brk_cur
        old_top, new_top = page_up(self.brk_cur), page_up(new)
        if new_top > old_top:
            if not self._range_free(old_top, new_top) or new_top > self.mmap_top \
                    or self._over_limit(new_top - old_top):
                return self.brk_cur
            self.mem.map(old_top, new_top - old_top, PROT_READ | PROT_WRITE, name="[heap]")
        elif new_top < old_top:
            self.mem.unmap(new_top, old_top - new_top)
        self.brk_cur = new
        return self.brk_cur

    def _pick_addr(self, hint: int, length: int) -> int:
        if hint and page_down(hint) >= self.mmap_min:
            start = page_down(hint)
            if start + length <= self.mem.limit and self._range_free(start, start + length):
                return start
        got = self.mem.find_free(length, self.mmap_min, self.mmap_top)
        if got is None:
            got = self.mem.find_free(length, self.mmap_min, self.mem.limit)
        if got is None:
            raise _Errno(_errno.ENOMEM)
        return got

    def _forget_shared(self, start: int, end: int) -> None:
        out = []
        for s, e in self.shared_ranges:
            if e <= start or s >= end:
                out.append((s, e))
                continue
            if s < start:
                out.append((s, start))
            if e > end:
                out.append((end, e))
        self.shared_ranges = out

    @_sys("mmap", "p", "u", "prot", "mflags", "fd", "x", result="x")
    def sys_mmap(self, addr: int, length: int, prot: int, flags: int, fd: int, offset: int) -> int:
        prot &= 0xFFFFFFFF
        flags &= 0xFFFFFFFF
        if length == 0 or offset & (PAGE - 1):
            return -_errno.EINVAL
        mtype = flags & MAP_TYPE
        if mtype not in (MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE):
            return -_errno.EINVAL
        if prot & ~PROT_MASK:
            return -_errno.EINVAL
        size = page_up(length)
        if size > self.mem.limit or size == 0:
            return -_errno.ENOMEM
        anonymous = bool(flags & MAP_ANONYMOUS)
        host = None
        if not anonymous:
            host = self.fds.host(_s32(fd))
            st = os.fstat(host)
            acc = _fcntl.fcntl(host, _fcntl.F_GETFL) & O_ACCMODE
            if acc == os.O_WRONLY:
                return -_errno.EACCES
            if _stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 5:
                anonymous = True                 # /dev/zero
            elif not (_stat.S_ISREG(st.st_mode) or _stat.S_ISBLK(st.st_mode)):
                return -_errno.ENODEV
            shared_write = mtype != MAP_PRIVATE and prot & PROT_WRITE
            if shared_write and acc != os.O_RDWR:
                return -_errno.EACCES
        if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE):
            if addr & (PAGE - 1):
                return -_errno.EINVAL
            if addr + size > self.mem.limit:
                return -_errno.ENOMEM
            if flags & MAP_FIXED_NOREPLACE and not flags & MAP_FIXED \
                    and not self._range_free(addr, addr + size):
                return -_errno.EEXIST
            start = addr
        else:
            start = self._pick_addr(addr, size)
        if self._over_limit(size, start, start + size):
            return -_errno.ENOMEM
        self._forget_shared(start, start + size)
        if anonymous:
            self.mem.map(start, size, prot, name="")
            return start
        assert host is not None
        # A host mapping of the file, placed inside the arena (shared or
        # private, as asked): no copy, so a large mapping costs nothing until
        # touched and counts against --max-memory like any other; a page past
        # the file's end raises SIGBUS in the guest, as on Linux.
        self.mem.map_file(start, size, prot, host, offset, shared=mtype != MAP_PRIVATE)
        if mtype != MAP_PRIVATE:
            self.shared_ranges.append((start, start + size))
        return start

    @_sys("munmap", "p", "u")
    def sys_munmap(self, addr: int, length: int) -> int:
        if addr & (PAGE - 1) or length == 0:
            return -_errno.EINVAL
        end = page_up(addr + length)
        if end > self.mem.limit:
            return -_errno.EINVAL
        self.mem.unmap(addr, end - addr)
        self._forget_shared(addr, end)
        return 0

    @_sys("mprotect", "p", "u", "prot")
    def sys_mprotect(self, addr: int, length: int, prot: int) -> int:
        prot &= 0xFFFFFFFF
        if addr & (PAGE - 1):
            return -_errno.EINVAL
        if prot & ~(PROT_MASK | 0x01000000 | 0x02000000):     # PROT_GROWSDOWN/UP
            return -_errno.EINVAL
        if length == 0:
            return 0
        end = page_up(addr + length)
        if end > self.mem.limit or not self.mem.is_mapped(addr, end - addr):
            return -_errno.ENOMEM
        self.mem.protect(addr, end - addr, prot & PROT_MASK)
        return 0

    @_sys("mremap", "p", "u", "u", "x", "p", result="x")
    def sys_mremap(self, old: int, old_size: int, new_size: int, flags: int, new_addr: int) -> int:
        flags &= 0xFFFFFFFF
        if flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP):
            return -_errno.EINVAL
        if flags & MREMAP_FIXED and not flags & MREMAP_MAYMOVE:
            return -_errno.EINVAL
        if flags & MREMAP_DONTUNMAP:
            return -_errno.EINVAL
        if old & (PAGE - 1) or new_size == 0 or old_size == 0:
            return -_errno.EINVAL
        old_size, new_size = page_up(old_size), page_up(new_size)
        if self._over_limit(new_size - old_size):
            return -_errno.ENOMEM
        if old + old_size > self.mem.limit or new_size > self.mem.limit:
            return -_errno.EFAULT if old + old_size > self.mem.limit else -_errno.ENOMEM
        m = self.mem.find_mapping(old)
        if m is None or not self.mem.is_mapped(old, old_size):
            return -_errno.EFAULT
        prot, name = m.prot, m.name
        if any(p.prot != prot for p in self.mem.mappings() if p.start < old + old_size and p.end > old):
            return -_errno.EFAULT
        if not flags & MREMAP_FIXED:
            if new_size <= old_size:
                if new_size < old_size:
                    self.mem.unmap(old + new_size, old_size - new_size)
                    self._forget_shared(old + new_size, old + old_size)
                return old
            if old + new_size <= self.mem.limit and self._range_free(old + old_size, old + new_size):
                self.mem.map(old + old_size, new_size - old_size, prot, name=name)
                return old
            if not flags & MREMAP_MAYMOVE:
                return -_errno.ENOMEM
            dest = self._pick_addr(0, new_size)
        else:
            dest = new_addr
            if dest & (PAGE - 1) or dest + new_size > self.mem.limit:
                return -_errno.EINVAL
            if dest < old + old_size and old < dest + new_size:
                return -_errno.EINVAL
        shared = [(s, e) for s, e in self.shared_ranges if s < old + old_size and e > old]
        if self.mem.remap(old, old_size, new_size, dest):
            # The host moved the pages (a file mapping stays one).
            self._forget_shared(old, old + old_size)
            self._forget_shared(dest, dest + new_size)
            if shared:
                self.shared_ranges.append((dest, dest + new_size))
            return dest
        keep = min(old_size, new_size)
        self.mem.map(dest, new_size, PROT_READ | PROT_WRITE, name=name)
        try:
            if not prot & PROT_READ:
                self.mem.protect(old, keep, prot | PROT_READ)
            self.mem.move(dest, old, keep)
        except GuestMemoryError:
            self.mem.unmap(dest, new_size)
            raise
        self.mem.protect(dest, new_size, prot)
        self.mem.unmap(old, old_size)
        self._forget_shared(old, old + old_size)
        self._forget_shared(dest, dest + new_size)
        return dest

    @_sys("madvise", "p", "u", "d")
    def sys_madvise(self, addr: int, length: int, advice: int) -> int:
        if addr & (PAGE - 1):
            return -_errno.EINVAL
        if length == 0:
            return 0
        end = page_up(addr + length)
        if end > self.mem.limit:
            return -_errno.EINVAL
        if not self.mem.is_mapped(addr, end - addr):
            return -_errno.ENOMEM
        if _s32(advice) == MADV_DONTNEED:
            # Private pages drop to zero (as anonymous memory does); host-shared
            # file pages keep their data, exactly like the host kernel does.
            _libc.madvise(self.mem.host_address(addr), end - addr, MADV_DONTNEED)
        return 0

    # ======================================================================
    # Process, signals, identity
    # ======================================================================
    @_sys("rseq", "p", "u", "x", "x")
    def sys_rseq(self, *_a: int) -> int:
        return -_errno.ENOSYS

    @_sys("getpid")
    def sys_getpid(self) -> int:
        return self.pid

    @_sys("getppid")
    def sys_getppid(self) -> int:
        return os.getppid()

    @_sys("getuid")
    def sys_getuid(self) -> int:
        return os.getuid()

    @_sys("geteuid")
    def sys_geteuid(self) -> int:
        return os.geteuid()

    @_sys("getgid")
    def sys_getgid(self) -> int:
        return os.getgid()

    @_sys("getegid")
    def sys_getegid(self) -> int:
        return os.getegid()

    # getpgid, getpgrp, getsid, setsid, setpgid: process_calls.py.

    @_sys("uname", "p")
    def sys_uname(self, buf: int) -> int:
        node = os.uname().nodename
        self.mem.write(buf, self.abi.pack_utsname(nodename=node))
        return 0

    @_sys("sysinfo", "p")
    def sys_sysinfo(self, buf: int) -> int:
        self._need(buf, 112, PROT_WRITE)
        out = ctypes.create_string_buffer(112)
        _host_check(_libc.sysinfo(out))
        self.mem.write(buf, out.raw)
        return 0

    @_sys("getrusage", "d", "p")
    def sys_getrusage(self, who: int, buf: int) -> int:
        w = _s32(who)
        kinds = {0: _resource.RUSAGE_SELF, -1: _resource.RUSAGE_CHILDREN, 1: _resource.RUSAGE_SELF}
        if w not in kinds:
            return -_errno.EINVAL
        r = _resource.getrusage(kinds[w])

        def tv(t: float) -> tuple[int, int]:
            us = int(round(t * 1_000_000))
            return us // 1_000_000, us % 1_000_000
        rest = [r.ru_maxrss, r.ru_ixrss, r.ru_idrss, r.ru_isrss, r.ru_minflt, r.ru_majflt,
                r.ru_nswap, r.ru_inblock, r.ru_oublock, r.ru_msgsnd, r.ru_msgrcv, r.ru_nsignals,
                r.ru_nvcsw, r.ru_nivcsw]
        self.mem.write(buf, struct.pack("<4q14q", *tv(r.ru_utime), *tv(r.ru_stime), *rest))
        return 0

    @_sys("times", "p")
    def sys_times(self, buf: int) -> int:
        t = os.times()
        if buf:
            self.mem.write(buf, struct.pack("<4q", *(int(x * 100) for x in
                                                  (t.user, t.system, t.children_user,
                                                   t.children_system))))
        return int(time.monotonic() * 100) & 0x7FFFFFFFFFFFFFFF

    @_sys("getrandom", "p", "u", "x")
    def sys_getrandom(self, buf: int, count: int, flags: int) -> int:
        if flags & ~(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE) or \
                (flags & GRND_RANDOM and flags & GRND_INSECURE):
            return -_errno.EINVAL
        count = min(count, (1 << 25) - 1)
        if count == 0:
            return 0
        self._need(buf, count, PROT_WRITE)
        self.mem.write(buf, os.urandom(count))
        return count

    # -- limits / scheduling ------------------------------------------------
    def _rlimit(self, resource: int) -> tuple[int, int]:
        if resource < 0 or resource >= 16:
            raise _Errno(_errno.EINVAL)
        return self.rlimits.get(resource, (RLIM_INFINITY, RLIM_INFINITY))

    def _set_rlimit(self, resource: int, cur: int, mx: int) -> None:
        self._rlimit(resource)
        if cur > mx:
            raise _Errno(_errno.EINVAL)
        old_max = self.rlimits.get(resource, (RLIM_INFINITY, RLIM_INFINITY))[1]
        if mx > old_max and os.geteuid() != 0:
            raise _Errno(_errno.EPERM)
        self.rlimits[resource] = (cur, mx)
        if resource == RLIMIT_NOFILE:
            self.fds.limit = max(3, min(cur, 1 << 20))

    @_sys("prlimit64", "d", "d", "p", "p")
    def sys_prlimit64(self, pid: int, resource: int, new: int, old: int) -> int:
        if _s32(pid) not in (0, self.pid):
            return -_errno.ESRCH
        r = _s32(resource)
        cur = self._rlimit(r)
        newv = self.abi.unpack_rlimit(self.mem.read(new, 16)) if new else None
        if old:
            self._need(old, 16, PROT_WRITE)
        if newv is not None:
            self._set_rlimit(r, *newv)
        if old:
            self.mem.write(old, self.abi.pack_rlimit(*cur))
        return 0

    @_sys("getrlimit", "d", "p")
    def sys_getrlimit(self, resource: int, rlim: int) -> int:
        self.mem.write(rlim, self.abi.pack_rlimit(*self._rlimit(_s32(resource))))
        return 0

    @_sys("setrlimit", "d", "p")
    def sys_setrlimit(self, resource: int, rlim: int) -> int:
        self._set_rlimit(_s32(resource), *self.abi.unpack_rlimit(self.mem.read(rlim, 16)))
        return 0

    @_sys("sched_getaffinity", "d", "u", "p")
    def sys_sched_getaffinity(self, pid: int, size: int, mask: int) -> int:
        if _s32(pid) not in (0, self.pid):
            return -_errno.ESRCH
        n = self.ncpus
        size_needed = cpumask_size(n)
        if size < size_needed or size & 7:
            return -_errno.EINVAL
        self.mem.write(mask, online_mask(n).to_bytes(size_needed, "little"))
        return size_needed

    @_sys("sched_setaffinity", "d", "u", "p")
    def sys_sched_setaffinity(self, pid: int, size: int, mask: int) -> int:
        if _s32(pid) not in (0, self.pid):
            return -_errno.ESRCH
        raw = self.mem.read(mask, min(size, cpumask_size(self.ncpus)))
        if not int.from_bytes(raw, "little") & online_mask(self.ncpus):
            return -_errno.EINVAL
        return 0            # advisory: the host schedules aotrun's threads

    @_sys("sched_yield")
    def sys_sched_yield(self) -> int:
        return 0

    @_sys("getcpu", "p", "p", "p")
    def sys_getcpu(self, cpu: int, node: int, _cache: int) -> int:
        if cpu:
            self.mem.write(cpu, current_cpu(self.ncpus).to_bytes(4, "little"))
        if node:
            self.mem.write(node, bytes(4))
        return 0

    # -- time ------------------------------------------------------------------
    @_sys("clock_gettime", "d", "p")
    def sys_clock_gettime(self, clk: int, tp: int) -> int:
        c = _s32(clk)
        self._need(tp, 16, PROT_WRITE)
        try:
            ns = time.clock_gettime_ns(c)
        except OSError:
            return -_errno.EINVAL
        self.mem.write(tp, self.abi.pack_timespec(*divmod(ns, 1_000_000_000)))
        return 0

    @_sys("clock_getres", "d", "p")
    def sys_clock_getres(self, clk: int, tp: int) -> int:
        try:
            res = time.clock_getres(_s32(clk))
        except OSError:
            return -_errno.EINVAL
        if tp:
            ns = max(1, round(res * 1e9))
            self.mem.write(tp, self.abi.pack_timespec(*divmod(ns, 1_000_000_000)))
        return 0

    @_sys("gettimeofday", "p", "p")
    def sys_gettimeofday(self, tv: int, tz: int) -> int:
        if tv:
            us = time.time_ns() // 1000
            self.mem.write(tv, self.abi.pack_timeval(*divmod(us, 1_000_000)))
        if tz:
            self.mem.write(tz, bytes(8))
        return 0

    @_sys("time", "p")
    def sys_time(self, tloc: int) -> int:
        t = time.time_ns() // 1_000_000_000
        if tloc:
            self.mem.write_u64(tloc, t)
        return t

    def _read_timespec(self, addr: int) -> float:
        sec, nsec = self.abi.unpack_timespec(self.mem.read(addr, 16))
        if sec < 0 or not 0 <= nsec < 1_000_000_000:
            raise _Errno(_errno.EINVAL)
        return sec + nsec / 1e9

    def _sleep(self, delay: float, rem: int) -> int:
        """Sleep ``delay`` seconds; a signal for this thread ends it early
        (-EINTR, the time left in ``rem``, as nanosleep does)."""
        if delay <= 0:
            return 0
        end = time.monotonic() + delay
        if self.wait_until(lambda: False, delay) == "signal":
            if rem:
                left = max(0.0, end - time.monotonic())
                self.mem.write(rem, self.abi.pack_timespec(int(left), int((left % 1) * 1e9)))
            return -_errno.EINTR
        return 0

    @_sys("nanosleep", "p", "p")
    def sys_nanosleep(self, req: int, rem: int) -> int:
        return self._sleep(self._read_timespec(req), rem)

    @_sys("clock_nanosleep", "d", "x", "p", "p")
    def sys_clock_nanosleep(self, clk: int, flags: int, req: int, rem: int) -> int:
        c = _s32(clk)
        try:
            now = time.clock_gettime(c)
        except OSError:
            return -_errno.EINVAL
        t = self._read_timespec(req)
        delay = t - now if flags & TIMER_ABSTIME else t
        return self._sleep(delay, 0 if flags & TIMER_ABSTIME else rem)

    # -- stubs ---------------------------------------------------------------
    @_sys("arch_prctl", "x", "p")
    def sys_arch_prctl(self, *_a: int) -> int:
        # x86_64 FS/GS bases live in the CPU state: the caller handles this syscall.
        return -_errno.ENOSYS

    @_sys("riscv_flush_icache", "p", "p", "x")
    def sys_riscv_flush_icache(self, start: int, end: int, flags: int) -> int:
        # Like Linux: the range is a hint (the whole instruction cache is
        # flushed); the only flag is SYS_RISCV_FLUSH_ICACHE_LOCAL (1).
        if flags & ~1:
            return -_errno.EINVAL
        if self.on_icache_flush is not None:
            self.on_icache_flush()
        return 0
