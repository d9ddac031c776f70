"""The rest of what real binaries call: POSIX timers, signalfd, prctl,
scheduling and identity queries, file metadata (owners, times, xattrs,
statfs), locks and syncs, vectored positional I/O, pidfds, and the
privileged calls a sandboxed guest is refused (a ``LinuxKernel`` mixin; see
runtime/linux/syscall_base.py).

Design choices, and why:

* **POSIX timers** (timer_create & co.) run on one Python scheduler thread
  per process with a heap of wake-ups; no host signal or host timer is
  involved, so nothing of the runtime's own signal set-up changes.  Expiry
  posts the signal with ``post_signal`` (si_code SI_TIMER, si_timerid,
  si_overrun, si_value), to the process or, for SIGEV_THREAD_ID, to that
  guest thread.  Overruns are counted as Linux counts them: while a timer's
  signal is still queued (blocked, or not yet taken) further expirations
  only raise the queued record's ``si_overrun``; timer_getoverrun answers
  the count of the last delivered signal.  Missed periods of an interval
  timer (a late wake-up) count as overruns too (hrtimer_forward).
  Clocks: REALTIME, MONOTONIC, BOOTTIME and TAI are the host's clocks
  (deadlines are kept on the timer's clock and re-checked on every wake, so
  a step of the realtime clock is noticed at the next wake-up rather than
  at once); PROCESS_CPUTIME_ID is the host process's CPU time (guest
  threads are host threads, but the runtime's own threads, such as the JIT
  worker, count too) and THREAD_CPUTIME_ID the creating thread's host CPU
  clock; CPU clocks are sampled (at least every millisecond of wall time
  near the deadline), so they fire up to a few milliseconds late.  The
  alarm clocks are EPERM (CAP_WAKE_ALARM), the coarse and raw clocks
  EOPNOTSUPP, as on Linux.  Timers are not inherited by a fork child and
  die with exec (a new kernel), as on Linux.  The scheduler thread exits
  when no timer is armed.

* **signalfd** is a host pipe: the guest's fd is its read end, the kernel
  keeps the write end and a dup of the read end.  The pipe holds one byte
  exactly while a signal in the fd's mask is pending (for the process or
  any of its threads), so poll/select/epoll in io_calls.py see it readable
  without knowing about signalfd.  ``post_signal`` (signals.py) calls the
  kernel's ``signal_hooks`` to set the byte and wake readers; a read
  (``signalfd_read``, consulted by kernel.py's ``sys_read``) dequeues the
  calling thread's and the process's pending signals in the mask and writes
  ``struct signalfd_siginfo`` records, then brings the byte up to date.  A
  signal taken some other way (a handler, sigtimedwait) can leave the byte
  set until the next read: a poll may then report it readable and a
  non-blocking read answers EAGAIN (a spurious wake-up, never a lost one).
  Limits: only read(2) is intercepted (readv on a signalfd reads the pipe),
  and after fork the parent's and child's signalfds share the pipe.

* **Identity and privilege.**  The guest is its host user: queries answer
  the host's ids; set* calls succeed when they change nothing (every id
  named is the current one, or -1) and are EPERM otherwise, even for root,
  because the runtime never changes its own credentials.  No capabilities
  are reported; mount, chroot, namespaces, module loading, clock setting,
  ptrace and reading other processes' memory are EPERM.

* **Paths** follow kernel.py: every path call resolves through
  ``_dirfd``/``_dirfd_raw``, whose ``ProcView.guard`` makes a path into the
  guest's /proc EACCES, except where a read-only answer about /proc is
  expected (statfs reports a procfs; xattr queries report no attributes).

* **Scheduling and priority** act on the calling process's own threads only
  (guest tids are host tids): other pids are ESRCH; setpriority of a process
  group or user (which would renice the host user's other processes) is EPERM.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import fcntl as _fcntl
import heapq
import os
import select
import struct
import threading
import time
from dataclasses import dataclass, field

from runtime.guest_memory import PAGE, PROT_READ, PROT_WRITE, page_up
from runtime.host_libc import load_libc
from runtime.linux.syscall_base import MASK64, Errno, host_check, s32, s64, syscall

__all__ = ["MiscCalls"]

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000
O_NONBLOCK = 0o4000
O_CLOEXEC = 0o2000000
ERESTARTSYS = 512
INT_MAX = 0x7FFFFFFF
NSIG = 64
SIGKILL, SIGSTOP, SIGALRM = 9, 19, 14
UNBLOCKABLE = (1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1))
SI_TIMER = -2
NS = 1_000_000_000

# POSIX timers
SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD, SIGEV_THREAD_ID = 0, 1, 2, 4
TIMER_ABSTIME = 1
CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID = 0, 1, 2, 3
CLOCK_MONOTONIC_RAW, CLOCK_REALTIME_COARSE, CLOCK_MONOTONIC_COARSE = 4, 5, 6
CLOCK_BOOTTIME, CLOCK_REALTIME_ALARM, CLOCK_BOOTTIME_ALARM, CLOCK_TAI = 7, 8, 9, 11
_WALL_CLOCKS = {CLOCK_REALTIME: time.CLOCK_REALTIME, CLOCK_MONOTONIC: time.CLOCK_MONOTONIC,
                CLOCK_BOOTTIME: getattr(time, "CLOCK_BOOTTIME", 7), CLOCK_TAI: getattr(time, "CLOCK_TAI", 11)}
_MAX_TIMERS = 65536
_MAX_WAIT = 3600.0                     # the scheduler re-checks at least hourly

# signalfd
SFD_NONBLOCK, SFD_CLOEXEC = O_NONBLOCK, O_CLOEXEC
SIGNALFD_SIGINFO_SIZE = 128
_SFD_INFO = struct.Struct("<IiiIIiIIIIiiQQQQHHiQI28x")
assert _SFD_INFO.size == SIGNALFD_SIGINFO_SIZE

# prctl
PR_SET_PDEATHSIG, PR_GET_PDEATHSIG, PR_GET_DUMPABLE, PR_SET_DUMPABLE = 1, 2, 3, 4
PR_GET_UNALIGN, PR_SET_UNALIGN, PR_GET_KEEPCAPS, PR_SET_KEEPCAPS = 5, 6, 7, 8
PR_GET_FPEMU, PR_SET_FPEMU, PR_GET_FPEXC, PR_SET_FPEXC, PR_GET_TIMING, PR_SET_TIMING = 9, 10, 11, 12, 13, 14
PR_SET_NAME, PR_GET_NAME, PR_GET_ENDIAN, PR_SET_ENDIAN = 15, 16, 19, 20
PR_GET_SECCOMP, PR_SET_SECCOMP, PR_CAPBSET_READ, PR_CAPBSET_DROP = 21, 22, 23, 24
PR_GET_TSC, PR_SET_TSC, PR_GET_SECUREBITS, PR_SET_SECUREBITS = 25, 26, 27, 28
PR_SET_TIMERSLACK, PR_GET_TIMERSLACK = 29, 30
PR_TASK_PERF_EVENTS_DISABLE, PR_TASK_PERF_EVENTS_ENABLE = 31, 32
PR_MCE_KILL, PR_MCE_KILL_GET, PR_SET_MM = 33, 34, 35
PR_SET_CHILD_SUBREAPER, PR_GET_CHILD_SUBREAPER = 36, 37
PR_SET_NO_NEW_PRIVS, PR_GET_NO_NEW_PRIVS, PR_GET_TID_ADDRESS = 38, 39, 40
PR_SET_THP_DISABLE, PR_GET_THP_DISABLE = 41, 42
PR_CAP_AMBIENT = 47
PR_GET_SPECULATION_CTRL, PR_SET_SPECULATION_CTRL = 52, 53
PR_SET_IO_FLUSHER, PR_GET_IO_FLUSHER = 57, 58
PR_SET_VMA = 0x53564D41
PR_SET_VMA_ANON_NAME = 0
PR_CAP_AMBIENT_IS_SET, PR_CAP_AMBIENT_RAISE, PR_CAP_AMBIENT_LOWER, PR_CAP_AMBIENT_CLEAR_ALL = 1, 2, 3, 4
PR_TSC_ENABLE = 1
CAP_LAST_CAP = 40
DEFAULT_TIMERSLACK = 50_000

# capabilities
_LINUX_CAPABILITY_VERSION_1, _LINUX_CAPABILITY_VERSION_2 = 0x19980330, 0x20071026
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

# scheduling
SCHED_OTHER, SCHED_FIFO, SCHED_RR, SCHED_BATCH, SCHED_IDLE, SCHED_DEADLINE = 0, 1, 2, 3, 5, 6
SCHED_RESET_ON_FORK = 0x40000000
PRIO_PROCESS, PRIO_PGRP, PRIO_USER = 0, 1, 2
IOPRIO_WHO_PROCESS, IOPRIO_WHO_PGRP, IOPRIO_WHO_USER = 1, 2, 3

# memory
MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT = 1, 2, 4
MLOCK_ONFAULT = 1
MS_ASYNC, MS_INVALIDATE, MS_SYNC = 1, 2, 4
RLIMIT_MEMLOCK = 8

# files
UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2
LOCK_SH, LOCK_EX, LOCK_NB, LOCK_UN = 1, 2, 4, 8
XATTR_CREATE, XATTR_REPLACE = 1, 2
XATTR_NAME_MAX, XATTR_SIZE_MAX = 255, 65536
RWF_SUPPORTED = 0x1F                  # HIPRI DSYNC SYNC NOWAIT APPEND
CLOSE_RANGE_UNSHARE, CLOSE_RANGE_CLOEXEC = 2, 4
S_IFMT, S_IFREG, S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK = 0o170000, 0o100000, 0o20000, 0o60000, 0o10000, 0o140000
STATFS_SIZE = 120                     # struct statfs, every LP64 guest (and the host)
PROC_SUPER_MAGIC = 0x9FA0
ST_NOSUID, ST_NODEV, ST_NOEXEC, ST_VALID, ST_RELATIME = 0x2, 0x4, 0x8, 0x20, 0x400
PIDFD_NONBLOCK = O_NONBLOCK
KCMP_FILE, KCMP_TYPES = 0, 8
KCMP_EPOLL_TFD = 7
CLONE_FS, CLONE_FILES, CLONE_SYSVSEM = 0x200, 0x400, 0x40000
TIMEX_SIZE = 208

# Host (x86_64) syscall numbers used through libc's syscall().
_HOST_NR = {"utimensat": 280, "ioprio_set": 251, "ioprio_get": 252, "kcmp": 312,
            "sched_setattr": 314, "sched_getattr": 315}

_libc = load_libc()
_libc.syscall.restype = ctypes.c_long
_libc.prctl.restype = ctypes.c_int
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
_libc.msync.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
_libc.readahead.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_size_t]
_libc.readahead.restype = ctypes.c_ssize_t
_libc.syncfs.argtypes = [ctypes.c_int]
_libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
_libc.statfs.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
_libc.fstatfs.argtypes = [ctypes.c_int, ctypes.c_void_p]
_libc.preadv2.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int64, ctypes.c_int]
_libc.preadv2.restype = ctypes.c_ssize_t
_libc.pwritev2.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int64, ctypes.c_int]
_libc.pwritev2.restype = ctypes.c_ssize_t
_libc.adjtimex.argtypes = [ctypes.c_void_p]


def _host_at(dirfd: int | None) -> int:
    return AT_FDCWD if dirfd is None else dirfd


# --------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------

@dataclass(eq=False)
class _PosixTimer:
    """One guest POSIX timer; times are nanoseconds on the timer's clock."""
    ident: int
    clock: int
    host_clock: int
    notify: int
    signo: int
    value: int
    thread: object = None              # GuestThread for SIGEV_THREAD_ID
    expires: int = 0                   # 0: disarmed
    interval: int = 0
    gen: int = 0                       # bumped on every settime/delete: stale heap entries die
    info: object = None                # the SigInfo of the last signal generated
    overrun_last: int = 0              # si_overrun of the signal delivered before ``info``

    @property
    def cpu(self) -> bool:
        return self.clock in (CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID)

    def now(self) -> int:
        return time.clock_gettime_ns(self.host_clock)


@dataclass(eq=False)
class _TimerState:
    pid: int
    cond: threading.Condition = field(default_factory=threading.Condition)
    timers: dict[int, _PosixTimer] = field(default_factory=dict)
    heap: list[tuple[int, int, int, int]] = field(default_factory=list)   # (wake mono ns, seq, id, gen)
    next_id: int = 0
    seq: int = 0
    thread: threading.Thread | None = None


@dataclass(eq=False)
class _SignalFd:
    """A guest signalfd: its pipe (the guest holds the read end) and mask."""
    mask: int
    read_fd: int                       # the kernel's dup of the read end
    write_fd: int
    armed: bool = False                # the pipe holds its one byte


# --------------------------------------------------------------------------
# The mixin
# --------------------------------------------------------------------------

class MiscCalls:
    """Timers, signalfd, prctl, identity, file metadata and the refused
    privileged calls (mixed into ``LinuxKernel``; see the module docstring)."""

    # Instance state is made on first use (LinuxKernel.__init__ does not
    # chain to its mixins); these class defaults say "none yet".
    signalfds: dict[tuple[int, int], _SignalFd] | None = None
    _ptimer_state: _TimerState | None = None
    _misc_lock = threading.Lock()

    # ======================================================================
    # POSIX timers
    # ======================================================================
    def _timers(self) -> _TimerState:
        """This process's timer table; a fork child starts with none (Linux
        does not inherit POSIX timers, and the scheduler thread is gone)."""
        st = self._ptimer_state
        if st is None or st.pid != os.getpid():
            with MiscCalls._misc_lock:
                st = self._ptimer_state
                if st is None or st.pid != os.getpid():
                    st = _TimerState(pid=os.getpid())
                    self._ptimer_state = st
        return st

    def _timer(self, st: _TimerState, timerid: int) -> _PosixTimer:
        t = st.timers.get(s32(timerid))
        if t is None:
            raise Errno(_errno.EINVAL)
        return t

    def _read_itimerspec(self, addr: int) -> tuple[int, int]:
        """→ (interval ns, value ns); EINVAL for a malformed timespec."""
        isec, insec, vsec, vnsec = struct.unpack("<qqqq", self.mem.read(addr, 32))
        for sec, nsec in ((isec, insec), (vsec, vnsec)):
            if sec < 0 or not 0 <= nsec < NS:
                raise Errno(_errno.EINVAL)
        return isec * NS + insec, vsec * NS + vnsec

    @staticmethod
    def _pack_itimerspec(interval: int, value: int) -> bytes:
        return struct.pack("<qqqq", *divmod(interval, NS), *divmod(value, NS))

    def _timer_remaining(self, t: _PosixTimer) -> int:
        if not t.expires:
            return 0
        left = t.expires - t.now()
        if left > 0:
            return left
        if t.interval:
            return t.interval - (-left) % t.interval
        # Armed and expired, its expiry not yet processed: Linux reports 1 ns
        # (0 only for an expired one-shot SIGEV_NONE timer).
        return 0 if t.notify == SIGEV_NONE else 1

    def _timer_schedule(self, st: _TimerState, t: _PosixTimer) -> None:
        """Queue ``t``'s next wake-up (st.cond held) and make sure the
        scheduler thread runs."""
        if not t.expires or t.notify == SIGEV_NONE:
            return
        left = max(0, t.expires - t.now())
        if t.cpu:
            left = max(left // max(1, os.cpu_count() or 1), 1_000_000) if left else 0
        st.seq += 1
        heapq.heappush(st.heap, (time.monotonic_ns() + left, st.seq, t.ident, t.gen))
        if st.thread is None:
            st.thread = threading.Thread(target=self._timer_loop, args=(st,), daemon=True,
                                         name="aotc-posix-timers")
            st.thread.start()
        st.cond.notify()

    def _timer_loop(self, st: _TimerState) -> None:
        """The scheduler: sleeps until the earliest wake-up, fires what is
        due on its own clock, re-queues what is not (clock steps, CPU time)."""
        with st.cond:
            while True:
                if not st.heap or self.exiting:
                    st.thread = None
                    return
                wake, _seq, ident, gen = st.heap[0]
                delay = wake - time.monotonic_ns()
                if delay > 0:
                    st.cond.wait(min(delay / NS, _MAX_WAIT))
                    continue
                heapq.heappop(st.heap)
                t = st.timers.get(ident)
                if t is None or t.gen != gen or not t.expires:
                    continue
                try:
                    now = t.now()
                except OSError:                  # a THREAD_CPUTIME clock of an exited thread
                    t.expires = 0
                    continue
                if now < t.expires:
                    self._timer_schedule(st, t)
                    continue
                count = 1
                if t.interval:
                    count += (now - t.expires) // t.interval
                    t.expires += count * t.interval
                else:
                    t.expires = 0
                self._timer_fire(t, count)
                self._timer_schedule(st, t)

    def _queued(self, info: object, sig: int, thread: object) -> bool:
        queue = (thread.sig_info if thread is not None else self._proc_info).get(sig, ())
        return any(q is info for q in queue)

    def _timer_fire(self, t: _PosixTimer, count: int) -> None:
        """``count`` expirations of ``t``: one signal, the rest overruns."""
        from runtime.linux.sigframe import SigInfo

        if t.notify == SIGEV_NONE:
            return
        target = t.thread if t.notify & SIGEV_THREAD_ID else None
        if target is not None and target.exited:
            return
        with self._sig_lock:
            prev = t.info
            if prev is not None and self._queued(prev, t.signo, target):
                prev.overrun = min(INT_MAX, prev.overrun + count)
                return
            if prev is not None:
                t.overrun_last = prev.overrun
            info = SigInfo(signo=t.signo, code=SI_TIMER, timerid=t.ident,
                           overrun=min(INT_MAX, count - 1), value=t.value)
            t.info = info
            self.post_signal(t.signo, info, thread=target)

    @syscall("timer_create", "d", "p", "p")
    def sys_timer_create(self, clockid: int, sevp: int, timerid: int) -> int:
        clk = s32(clockid)
        if clk in (CLOCK_REALTIME_ALARM, CLOCK_BOOTTIME_ALARM):
            return -_errno.EPERM
        if clk in (CLOCK_MONOTONIC_RAW, CLOCK_REALTIME_COARSE, CLOCK_MONOTONIC_COARSE):
            return -_errno.EOPNOTSUPP
        cur = self.current
        if clk in _WALL_CLOCKS:
            host_clock = _WALL_CLOCKS[clk]
        elif clk == CLOCK_PROCESS_CPUTIME_ID:
            host_clock = time.CLOCK_PROCESS_CPUTIME_ID
        elif clk == CLOCK_THREAD_CPUTIME_ID:
            host_clock = time.pthread_getcpuclockid(cur.host_ident or threading.get_ident())
        else:
            return -_errno.EINVAL          # per-pid/per-thread CPU clock ids: not served
        self._need(timerid, 4, PROT_WRITE)
        st = self._timers()
        if sevp:
            value, signo, notify, tid = struct.unpack("<QiiI", self.mem.read(sevp, 20))
        else:
            value, signo, notify, tid = None, SIGALRM, SIGEV_SIGNAL, 0
        thread = None
        if notify == SIGEV_SIGNAL | SIGEV_THREAD_ID:
            thread = self.threads.get(s32(tid))
            if thread is None or thread.exited:
                return -_errno.EINVAL
        elif notify not in (SIGEV_SIGNAL, SIGEV_THREAD, SIGEV_NONE):
            return -_errno.EINVAL
        if notify != SIGEV_NONE and not 1 <= signo <= NSIG:
            return -_errno.EINVAL
        with st.cond:
            if len(st.timers) >= _MAX_TIMERS:
                return -_errno.EAGAIN
            ident = st.next_id
            while ident in st.timers:
                ident = (ident + 1) & INT_MAX
            st.next_id = (ident + 1) & INT_MAX
            t = _PosixTimer(ident=ident, clock=clk, host_clock=host_clock,
                            notify=notify, signo=signo, value=ident if value is None else value,
                            thread=thread)
            st.timers[ident] = t
        try:
            self.mem.write(timerid, struct.pack("<i", ident))
        except Exception:
            with st.cond:
                st.timers.pop(ident, None)
            raise
        return 0

    @syscall("timer_settime", "d", "x", "p", "p")
    def sys_timer_settime(self, timerid: int, flags: int, new: int, old: int) -> int:
        st = self._timers()
        interval, value = self._read_itimerspec(new)
        if old:
            self._need(old, 32, PROT_WRITE)
        with st.cond:
            t = self._timer(st, timerid)
            prev = self._pack_itimerspec(t.interval if t.expires else 0, self._timer_remaining(t))
            t.gen += 1
            t.overrun_last = 0
            if value == 0:
                t.expires, t.interval = 0, 0
            else:
                t.interval = interval
                t.expires = value if flags & TIMER_ABSTIME else t.now() + value
                t.expires = max(t.expires, 1)
                self._timer_schedule(st, t)
        if old:
            self.mem.write(old, prev)
        return 0

    @syscall("timer_gettime", "d", "p")
    def sys_timer_gettime(self, timerid: int, cur: int) -> int:
        st = self._timers()
        self._need(cur, 32, PROT_WRITE)
        with st.cond:
            t = self._timer(st, timerid)
            out = self._pack_itimerspec(t.interval if t.expires else 0, self._timer_remaining(t))
        self.mem.write(cur, out)
        return 0

    @syscall("timer_getoverrun", "d")
    def sys_timer_getoverrun(self, timerid: int) -> int:
        st = self._timers()
        with st.cond:
            t = self._timer(st, timerid)
            with self._sig_lock:
                info = t.info
                target = t.thread if t.notify & SIGEV_THREAD_ID else None
                if info is not None and not self._queued(info, t.signo, target):
                    return min(INT_MAX, info.overrun)
                return t.overrun_last

    @syscall("timer_delete", "d")
    def sys_timer_delete(self, timerid: int) -> int:
        st = self._timers()
        with st.cond:
            t = self._timer(st, timerid)
            t.gen += 1
            t.expires = 0
            del st.timers[t.ident]
            st.cond.notify()
        return 0

    # ======================================================================
    # signalfd
    # ======================================================================
    @staticmethod
    def _fd_key(host: int) -> tuple[int, int]:
        st = os.fstat(host)
        return st.st_dev, st.st_ino

    def _signalfd_sync(self) -> None:
        """Give every signalfd's pipe its byte exactly when a signal in its
        mask is pending (for the process or any thread)."""
        sfds = self.signalfds
        if not sfds:
            return
        with self._sig_lock:
            pending = self.pending_signals
            for t in list(self.threads.values()):
                if not t.exited:
                    pending |= t.pending
            for s in list(sfds.values()):
                want = bool(pending & s.mask)
                try:
                    if want and not s.armed:
                        os.write(s.write_fd, b"\1")
                        s.armed = True
                    elif not want and s.armed:
                        p = select.poll()
                        p.register(s.read_fd, select.POLLIN)
                        if p.poll(0):
                            os.read(s.read_fd, 1)
                        s.armed = False
                except OSError:
                    pass

    def _signalfd_hook(self, sig: int) -> None:
        """post_signal's hook (signals.py): readiness, and wake the threads
        blocked in a signalfd read (the signal is usually blocked, so
        post_signal itself kicks nobody)."""
        sfds = self.signalfds
        if not sfds or not any(s.mask & (1 << (sig - 1)) for s in sfds.values()):
            return
        self._signalfd_sync()
        for t in list(self._sfd_waiters):
            t.notify()

    def _signalfd_gc(self) -> None:
        """Forget signalfds the guest no longer has a descriptor for."""
        sfds = self.signalfds
        if not sfds:
            return
        live = set()
        for gfd in self.fds.guest_fds():
            try:
                live.add(self._fd_key(self.fds.host(gfd)))
            except (OSError, Errno):
                pass
        for key in [k for k in sfds if k not in live]:
            s = sfds.pop(key)
            for fd in (s.read_fd, s.write_fd):
                try:
                    os.close(fd)
                except OSError:
                    pass

    def _signalfd(self, fd: int, mask_addr: int, sizemask: int, flags: int) -> int:
        if flags & ~(SFD_NONBLOCK | SFD_CLOEXEC):
            return -_errno.EINVAL
        if sizemask != 8:
            return -_errno.EINVAL
        mask = self.mem.read_u64(mask_addr) & ~UNBLOCKABLE
        gfd = s32(fd)
        with MiscCalls._misc_lock:
            if self.signalfds is None:
                self.signalfds = {}
                self._sfd_waiters: set = set()
                hooks = getattr(self, "signal_hooks", None)
                if hooks is None:
                    self.signal_hooks = hooks = []
                hooks.append(self._signalfd_hook)
        if gfd != -1:
            s = self.signalfds.get(self._fd_key(self.fds.host(gfd)))
            if s is None:
                return -_errno.EINVAL
            s.mask = mask
            self._signalfd_sync()
            return gfd
        self._signalfd_gc()
        r, w = os.pipe2(O_CLOEXEC | O_NONBLOCK)
        if not flags & SFD_NONBLOCK:
            os.set_blocking(r, True)
        try:
            mine = os.dup(r)
        except OSError:
            os.close(r)
            os.close(w)
            raise
        key = self._fd_key(r)
        try:
            gfd = self.fds.add(r, cloexec=bool(flags & SFD_CLOEXEC))
        except Errno:
            os.close(mine)
            os.close(w)
            raise
        self.signalfds[key] = _SignalFd(mask=mask, read_fd=mine, write_fd=w)
        self._signalfd_sync()
        return gfd

    @syscall("signalfd4", "fd", "p", "u", "oflags")
    def sys_signalfd4(self, fd: int, mask: int, sizemask: int, flags: int) -> int:
        return self._signalfd(fd, mask, sizemask, flags & 0xFFFFFFFF)

    @syscall("signalfd", "fd", "p", "u")
    def sys_signalfd(self, fd: int, mask: int, sizemask: int) -> int:
        return self._signalfd(fd, mask, sizemask, 0)

    @staticmethod
    def _pack_signalfd_siginfo(sig: int, info) -> bytes:
        """struct signalfd_siginfo from a SigInfo, the fields Linux's
        signalfd_copyinfo fills for its siginfo layout."""
        kind = info.layout
        pid = uid = fd = tid = band = overrun = status = 0
        ptr = utime = stime = addr = call_addr = 0
        addr_lsb = syscall_nr = arch = 0
        if kind in ("kill", "rt", "chld"):
            pid, uid = info.pid, info.uid
        if kind in ("rt", "timer"):
            ptr = info.value
        if kind == "timer":
            tid, overrun = info.timerid, info.overrun
        if kind == "chld":
            status, utime, stime = info.status, info.utime, info.stime
        if kind in ("fault", "fault_mceerr"):
            addr = info.addr
            addr_lsb = info.addr_lsb if kind == "fault_mceerr" else 0
        if kind == "poll":
            band, fd = info.band, info.fd
        if kind == "sys":
            call_addr, syscall_nr, arch = info.addr, info.syscall, info.arch
        return _SFD_INFO.pack(sig, s32(info.errno), s32(info.code), pid & 0xFFFFFFFF,
                              uid & 0xFFFFFFFF, s32(fd), tid & 0xFFFFFFFF, band & 0xFFFFFFFF,
                              overrun & 0xFFFFFFFF, 0, s32(status), s32(ptr), ptr & MASK64,
                              utime & MASK64, stime & MASK64, addr & MASK64, addr_lsb & 0xFFFF,
                              0, s32(syscall_nr), call_addr & MASK64, arch & 0xFFFFFFFF)

    def signalfd_read(self, fd: int, buf: int, count: int) -> int | None:
        """read(2) on guest fd ``fd`` if it is a signalfd (kernel.py's
        sys_read asks first); None when it is not one."""
        sfds = self.signalfds
        if not sfds:
            return None
        host = self.fds.host(s32(fd))
        s = sfds.get(self._fd_key(host))
        if s is None:
            return None
        if count < SIGNALFD_SIGINFO_SIZE:
            return -_errno.EINVAL
        self._access_ok(buf, count)
        room = self._prefix(buf, min(count, 64 * SIGNALFD_SIGINFO_SIZE), PROT_WRITE)
        want = room // SIGNALFD_SIGINFO_SIZE
        if want == 0:
            return -_errno.EFAULT
        t = self.current
        got: list = []

        def take() -> bool:
            while len(got) < want:
                r = self._dequeue(t, ~s.mask & MASK64)
                if r is None:
                    break
                got.append(r)
            return bool(got)

        try:
            if not take():
                if os.get_blocking(host) is False:
                    return -_errno.EAGAIN
                self._sfd_waiters.add(t)
                try:
                    how = self.wait_until(take, None)
                finally:
                    self._sfd_waiters.discard(t)
                if how != "ready":
                    return -ERESTARTSYS
            out = b"".join(self._pack_signalfd_siginfo(sig, info) for sig, info in got)
            self.mem.write(buf, out)
            return len(out)
        finally:
            self._signalfd_sync()

    # ======================================================================
    # prctl, personality
    # ======================================================================
    def _misc_state(self) -> dict:
        st = self.__dict__.get("_prctl")
        if st is None:
            st = self.__dict__.setdefault("_prctl", {
                "dumpable": 1, "keepcaps": 0, "no_new_privs": 0, "timerslack": DEFAULT_TIMERSLACK,
                "subreaper": 0, "thp_disable": 0, "mce_kill": 0, "names": {}, "personality": 0})
        return st

    def thread_name(self, tid: int) -> bytes:
        """The thread's comm (PR_SET_NAME), default the executable's basename."""
        name = self._misc_state()["names"].get(tid)
        if name is None:
            name = os.path.basename(self.exe_path).encode()[:15]
        return name

    @syscall("prctl", "d", "x", "x", "x", "x")
    def sys_prctl(self, option: int, a2: int, a3: int, a4: int, a5: int) -> int:
        op = s32(option)
        st = self._misc_state()
        t = self.current
        if op == PR_SET_NAME:
            raw = self.mem.read_prefix(a2, 16)
            if not raw:
                return -_errno.EFAULT
            name = raw.split(b"\0", 1)[0][:15]
            st["names"][t.tid] = name
            return 0
        if op == PR_GET_NAME:
            self.mem.write(a2, self.thread_name(t.tid).ljust(16, b"\0"))
            return 0
        if op == PR_SET_PDEATHSIG:
            if not 0 <= a2 <= NSIG:
                return -_errno.EINVAL
            # The guest's parent is the host process's parent; the host
            # disposition mirrors the guest's (signals.py), so the host's own
            # death signal reaches the guest as Linux would send it.
            return host_check(_libc.prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(a2), 0, 0, 0))
        if op == PR_GET_PDEATHSIG:
            self._need(a2, 4, PROT_WRITE)
            out = ctypes.c_int(0)
            host_check(_libc.prctl(PR_GET_PDEATHSIG, ctypes.byref(out), 0, 0, 0))
            self.mem.write(a2, struct.pack("<i", out.value))
            return 0
        if op == PR_GET_DUMPABLE:
            return st["dumpable"]
        if op == PR_SET_DUMPABLE:
            if a2 not in (0, 1):
                return -_errno.EINVAL
            st["dumpable"] = a2
            return 0
        if op == PR_GET_KEEPCAPS:
            return st["keepcaps"]
        if op == PR_SET_KEEPCAPS:
            if a2 not in (0, 1):
                return -_errno.EINVAL
            st["keepcaps"] = a2
            return 0
        if op == PR_GET_TIMING:
            return 0                                    # PR_TIMING_STATISTICAL
        if op == PR_SET_TIMING:
            return 0 if a2 == 0 else -_errno.EINVAL
        if op == PR_GET_SECCOMP:
            return 0
        if op == PR_SET_SECCOMP:
            return -_errno.EINVAL                       # no seccomp filters here
        if op == PR_CAPBSET_READ:
            if a2 > CAP_LAST_CAP:
                return -_errno.EINVAL
            return host_check(_libc.prctl(PR_CAPBSET_READ, ctypes.c_ulong(a2), 0, 0, 0))
        if op == PR_CAPBSET_DROP:
            return -_errno.EINVAL if a2 > CAP_LAST_CAP else -_errno.EPERM
        if op == PR_GET_SECUREBITS:
            return 0
        if op == PR_SET_SECUREBITS:
            return -_errno.EPERM
        if op == PR_GET_TIMERSLACK:
            return st["timerslack"]
        if op == PR_SET_TIMERSLACK:
            st["timerslack"] = a2 if a2 else DEFAULT_TIMERSLACK
            return 0
        if op in (PR_TASK_PERF_EVENTS_DISABLE, PR_TASK_PERF_EVENTS_ENABLE):
            return 0
        if op == PR_MCE_KILL:
            if a2 == 0 and not (a3 | a4 | a5):
                st["mce_kill"] = 0
                return 0
            if a2 == 1 and a3 in (0, 1, 2) and not (a4 | a5):
                st["mce_kill"] = a3
                return 0
            return -_errno.EINVAL
        if op == PR_MCE_KILL_GET:
            return st["mce_kill"] if not (a2 | a3 | a4 | a5) else -_errno.EINVAL
        if op == PR_SET_MM:
            return -_errno.EPERM
        if op == PR_SET_CHILD_SUBREAPER:
            st["subreaper"] = 1 if a2 else 0            # recorded; orphans are not re-parented to us
            return 0
        if op == PR_GET_CHILD_SUBREAPER:
            self.mem.write(a2, struct.pack("<i", st["subreaper"]))
            return 0
        if op == PR_SET_NO_NEW_PRIVS:
            if a2 != 1 or a3 | a4 | a5:
                return -_errno.EINVAL
            st["no_new_privs"] = 1
            return 0
        if op == PR_GET_NO_NEW_PRIVS:
            return st["no_new_privs"] if not (a2 | a3 | a4 | a5) else -_errno.EINVAL
        if op == PR_GET_TID_ADDRESS:
            self.mem.write_u64(a2, t.clear_child_tid)
            return 0
        if op == PR_SET_THP_DISABLE:
            if a3 | a4 | a5:
                return -_errno.EINVAL
            st["thp_disable"] = 1 if a2 else 0
            return 0
        if op == PR_GET_THP_DISABLE:
            return st["thp_disable"] if not (a2 | a3 | a4 | a5) else -_errno.EINVAL
        if op == PR_CAP_AMBIENT:
            if a2 == PR_CAP_AMBIENT_CLEAR_ALL:
                return 0 if not (a3 | a4 | a5) else -_errno.EINVAL
            if a4 | a5 or a3 > CAP_LAST_CAP:
                return -_errno.EINVAL
            if a2 == PR_CAP_AMBIENT_IS_SET or a2 == PR_CAP_AMBIENT_LOWER:
                return 0
            if a2 == PR_CAP_AMBIENT_RAISE:
                return -_errno.EPERM
            return -_errno.EINVAL
        if op == PR_GET_IO_FLUSHER:
            return 0
        if op == PR_SET_IO_FLUSHER:
            return -_errno.EPERM
        if op == PR_GET_TSC and self.abi.name == "x86_64":
            self.mem.write(a2, struct.pack("<i", PR_TSC_ENABLE))
            return 0
        if op == PR_SET_VMA:
            # Naming anonymous memory (glibc names its stacks and arenas):
            # checked like Linux, the name itself is not kept.
            if a2 != PR_SET_VMA_ANON_NAME or a3 & (PAGE - 1):
                return -_errno.EINVAL
            end = page_up(a3 + a4)
            if end < a3 or end > self.mem.limit:
                return -_errno.EINVAL
            if a5:
                name = self.mem.read_cstring(a5, 81)
                if len(name) > 79 or any(c < 0x20 or c > 0x7E or c in b"\\`$[]" for c in name):
                    return -_errno.EINVAL
            if end > a3 and not self.mem.is_mapped(a3, end - a3):
                return -_errno.ENOMEM
            return 0
        return -_errno.EINVAL

    @syscall("personality", "x")
    def sys_personality(self, persona: int) -> int:
        """PER_LINUX only; flags asked for (ADDR_NO_RANDOMIZE, ...) are
        remembered and reported, not applied."""
        st = self._misc_state()
        old = st["personality"]
        p = persona & 0xFFFFFFFF
        if p != 0xFFFFFFFF:
            if p & 0xFF:                               # another execution domain
                return -_errno.EINVAL
            st["personality"] = p
        return old

    # ======================================================================
    # Scheduling and priority (the process's own threads only)
    # ======================================================================
    def _own_tid(self, pid: int) -> int:
        """pid 0, our pid or one of our threads' tids → the host tid (0: caller)."""
        p = s32(pid)
        if p < 0:
            raise Errno(_errno.EINVAL)
        if p == 0:
            return 0
        if p == self.pid:
            return p
        t = self.threads.get(p)
        if t is None or t.exited:
            raise Errno(_errno.ESRCH)
        return p

    @syscall("sched_getscheduler", "d")
    def sys_sched_getscheduler(self, pid: int) -> int:
        return os.sched_getscheduler(self._own_tid(pid))

    @syscall("sched_getparam", "d", "p")
    def sys_sched_getparam(self, pid: int, param: int) -> int:
        prio = os.sched_getparam(self._own_tid(pid)).sched_priority
        self.mem.write(param, struct.pack("<i", prio))
        return 0

    @syscall("sched_setparam", "d", "p")
    def sys_sched_setparam(self, pid: int, param: int) -> int:
        tid = self._own_tid(pid)
        (prio,) = struct.unpack("<i", self.mem.read(param, 4))
        os.sched_setparam(tid, os.sched_param(prio))
        return 0

    @syscall("sched_setscheduler", "d", "d", "p")
    def sys_sched_setscheduler(self, pid: int, policy: int, param: int) -> int:
        tid = self._own_tid(pid)
        pol = s32(policy)
        if pol & ~SCHED_RESET_ON_FORK not in (SCHED_OTHER, SCHED_FIFO, SCHED_RR, SCHED_BATCH,
                                              SCHED_IDLE):
            return -_errno.EINVAL
        (prio,) = struct.unpack("<i", self.mem.read(param, 4))
        os.sched_setscheduler(tid, pol, os.sched_param(prio))
        return 0

    @syscall("sched_get_priority_max", "d")
    def sys_sched_get_priority_max(self, policy: int) -> int:
        return os.sched_get_priority_max(s32(policy))

    @syscall("sched_get_priority_min", "d")
    def sys_sched_get_priority_min(self, policy: int) -> int:
        return os.sched_get_priority_min(s32(policy))

    @syscall("sched_rr_get_interval", "d", "p")
    def sys_sched_rr_get_interval(self, pid: int, tp: int) -> int:
        secs = os.sched_rr_get_interval(self._own_tid(pid))
        ns = int(round(secs * NS))
        self.mem.write(tp, self.abi.pack_timespec(*divmod(ns, NS)))
        return 0

    @syscall("sched_getattr", "d", "p", "u", "x")
    def sys_sched_getattr(self, pid: int, attr: int, size: int, flags: int) -> int:
        tid = self._own_tid(pid)
        size &= 0xFFFFFFFF
        if flags or size < 48 or size > PAGE:
            return -_errno.EINVAL
        self._need(attr, size, PROT_WRITE)
        out = ctypes.create_string_buffer(size)
        host_check(_libc.syscall(_HOST_NR["sched_getattr"], ctypes.c_int(tid), out,
                                 ctypes.c_uint(size), ctypes.c_uint(0)))
        self.mem.write(attr, out.raw)
        return 0

    @syscall("sched_setattr", "d", "p", "x")
    def sys_sched_setattr(self, pid: int, attr: int, flags: int) -> int:
        tid = self._own_tid(pid)
        if flags:
            return -_errno.EINVAL
        (size,) = struct.unpack("<I", self.mem.read(attr, 4))
        size = size or 48
        if size < 48 or size > PAGE:
            self.mem.write(attr, struct.pack("<I", 56))
            return -_errno.E2BIG
        raw = self.mem.read(attr, size)
        if struct.unpack_from("<I", raw, 4)[0] == SCHED_DEADLINE:
            return -_errno.EPERM
        buf = ctypes.create_string_buffer(raw, size)
        return host_check(_libc.syscall(_HOST_NR["sched_setattr"], ctypes.c_int(tid), buf,
                                        ctypes.c_uint(0)))

    def _prio_target(self, which: int, who: int, setting: bool) -> tuple[int, int]:
        w, p = s32(which), s32(who)
        if w == PRIO_PROCESS:
            return os.PRIO_PROCESS, self._own_tid(p)
        if w == PRIO_PGRP:
            if p not in (0, os.getpgid(0)):
                raise Errno(_errno.ESRCH)
            if setting:
                raise Errno(_errno.EPERM)
            return os.PRIO_PGRP, 0
        if w == PRIO_USER:
            if p not in (0, os.getuid()):
                raise Errno(_errno.ESRCH)
            if setting:
                raise Errno(_errno.EPERM)
            return os.PRIO_USER, 0
        raise Errno(_errno.EINVAL)

    @syscall("getpriority", "d", "d")
    def sys_getpriority(self, which: int, who: int) -> int:
        kind, ident = self._prio_target(which, who, False)
        return 20 - os.getpriority(kind, ident)         # the raw syscall's 1..40 encoding

    @syscall("setpriority", "d", "d", "d")
    def sys_setpriority(self, which: int, who: int, prio: int) -> int:
        kind, ident = self._prio_target(which, who, True)
        os.setpriority(kind, ident, max(-20, min(19, s32(prio))))
        return 0

    def _ioprio_who(self, which: int, who: int) -> int:
        w = s32(which)
        if w == IOPRIO_WHO_PROCESS:
            return self._own_tid(who)
        if w in (IOPRIO_WHO_PGRP, IOPRIO_WHO_USER):
            raise Errno(_errno.EPERM)
        raise Errno(_errno.EINVAL)

    @syscall("ioprio_get", "d", "d")
    def sys_ioprio_get(self, which: int, who: int) -> int:
        tid = self._ioprio_who(which, who)
        return host_check(_libc.syscall(_HOST_NR["ioprio_get"], ctypes.c_int(IOPRIO_WHO_PROCESS),
                                        ctypes.c_int(tid)))

    @syscall("ioprio_set", "d", "d", "x")
    def sys_ioprio_set(self, which: int, who: int, ioprio: int) -> int:
        tid = self._ioprio_who(which, who)
        return host_check(_libc.syscall(_HOST_NR["ioprio_set"], ctypes.c_int(IOPRIO_WHO_PROCESS),
                                        ctypes.c_int(tid), ctypes.c_int(s32(ioprio))))

    # ======================================================================
    # Identity: the guest is its host user
    # ======================================================================
    def _put_ids(self, addrs: tuple[int, ...], ids: tuple[int, ...]) -> int:
        for a in addrs:
            self._need(a, 4, PROT_WRITE)
        for a, v in zip(addrs, ids):
            self.mem.write(a, struct.pack("<I", v & 0xFFFFFFFF))
        return 0

    @syscall("getresuid", "p", "p", "p")
    def sys_getresuid(self, r: int, e: int, s: int) -> int:
        return self._put_ids((r, e, s), os.getresuid())

    @syscall("getresgid", "p", "p", "p")
    def sys_getresgid(self, r: int, e: int, s: int) -> int:
        return self._put_ids((r, e, s), os.getresgid())

    @staticmethod
    def _same_ids(wanted: tuple[int, ...], current: tuple[int, ...]) -> int:
        """set*id: a change is refused (EPERM); naming the ids we have is a no-op."""
        for w in wanted:
            w &= 0xFFFFFFFF
            if w != 0xFFFFFFFF and w not in current:
                return -_errno.EPERM
        return 0

    @syscall("setuid", "d")
    def sys_setuid(self, uid: int) -> int:
        return self._same_ids((uid,), (os.getuid(),)) if uid & 0xFFFFFFFF != 0xFFFFFFFF else -_errno.EINVAL

    @syscall("setgid", "d")
    def sys_setgid(self, gid: int) -> int:
        return self._same_ids((gid,), (os.getgid(),)) if gid & 0xFFFFFFFF != 0xFFFFFFFF else -_errno.EINVAL

    @syscall("setreuid", "d", "d")
    def sys_setreuid(self, r: int, e: int) -> int:
        return self._same_ids((r, e), (os.getuid(),))

    @syscall("setregid", "d", "d")
    def sys_setregid(self, r: int, e: int) -> int:
        return self._same_ids((r, e), (os.getgid(),))

    @syscall("setresuid", "d", "d", "d")
    def sys_setresuid(self, r: int, e: int, s: int) -> int:
        return self._same_ids((r, e, s), (os.getuid(),))

    @syscall("setresgid", "d", "d", "d")
    def sys_setresgid(self, r: int, e: int, s: int) -> int:
        return self._same_ids((r, e, s), (os.getgid(),))

    @syscall("setfsuid", "d")
    def sys_setfsuid(self, uid: int) -> int:
        return os.geteuid()           # always the previous fsuid; it never changes here

    @syscall("setfsgid", "d")
    def sys_setfsgid(self, gid: int) -> int:
        return os.getegid()

    @syscall("getgroups", "d", "p")
    def sys_getgroups(self, size: int, lst: int) -> int:
        groups = os.getgroups()
        n = s32(size)
        if n < 0:
            return -_errno.EINVAL
        if n == 0:
            return len(groups)
        if n < len(groups):
            return -_errno.EINVAL
        self.mem.write(lst, b"".join(struct.pack("<I", g) for g in groups))
        return len(groups)

    @syscall("setgroups", "d", "p")
    def sys_setgroups(self, size: int, lst: int) -> int:
        n = s32(size)
        if n < 0 or n > 65536:
            return -_errno.EINVAL
        want = set(struct.unpack(f"<{n}I", self.mem.read(lst, 4 * n))) if n else set()
        return 0 if want == set(os.getgroups()) else -_errno.EPERM

    @syscall("capget", "p", "p")
    def sys_capget(self, hdrp: int, datap: int) -> int:
        version, pid = struct.unpack("<Ii", self.mem.read(hdrp, 8))
        words = {_LINUX_CAPABILITY_VERSION_1: 1, _LINUX_CAPABILITY_VERSION_2: 2,
                 _LINUX_CAPABILITY_VERSION_3: 2}.get(version)
        if words is None:
            self.mem.write(hdrp, struct.pack("<I", _LINUX_CAPABILITY_VERSION_3))
            return 0 if not datap else -_errno.EINVAL
        if pid < 0:
            return -_errno.EINVAL
        if pid not in (0, self.pid) and pid not in self.threads:
            return -_errno.ESRCH
        if datap:
            self.mem.write(datap, bytes(12 * words))    # no capabilities
        return 0

    @syscall("capset", "p", "p")
    def sys_capset(self, hdrp: int, datap: int) -> int:
        version, pid = struct.unpack("<Ii", self.mem.read(hdrp, 8))
        words = {_LINUX_CAPABILITY_VERSION_1: 1, _LINUX_CAPABILITY_VERSION_2: 2,
                 _LINUX_CAPABILITY_VERSION_3: 2}.get(version)
        if words is None:
            self.mem.write(hdrp, struct.pack("<I", _LINUX_CAPABILITY_VERSION_3))
            return -_errno.EINVAL
        if pid not in (0, self.pid, self.current.tid):
            return -_errno.EPERM
        data = self.mem.read(datap, 12 * words)
        return 0 if not any(data) else -_errno.EPERM    # dropping nothing from nothing

    # ======================================================================
    # Memory: locking, syncing, residency
    # ======================================================================
    def _mapped_range(self, addr: int, length: int) -> tuple[int, int]:
        """Page-aligned [start, end) of a call on guest memory; ENOMEM if unmapped."""
        start = addr & ~(PAGE - 1)
        end = page_up(addr + length)
        if end < start or end > self.mem.limit:
            raise Errno(_errno.ENOMEM)
        if end > start and not self.mem.is_mapped(start, end - start):
            raise Errno(_errno.ENOMEM)
        return start, end

    def _memlock_ok(self, nbytes: int) -> None:
        """mlock never pins host memory (the arena is the runtime's); the
        RLIMIT_MEMLOCK check is Linux's, for an unprivileged caller."""
        if os.geteuid() == 0:
            return
        cur = self.rlimits.get(RLIMIT_MEMLOCK, (MASK64, MASK64))[0]
        if cur == 0:
            raise Errno(_errno.EPERM)
        if nbytes > cur:
            raise Errno(_errno.ENOMEM)

    @syscall("mlock", "p", "u")
    def sys_mlock(self, addr: int, length: int) -> int:
        start, end = self._mapped_range(addr, length)
        self._memlock_ok(end - start)
        return 0

    @syscall("mlock2", "p", "u", "x")
    def sys_mlock2(self, addr: int, length: int, flags: int) -> int:
        if flags & ~MLOCK_ONFAULT:
            return -_errno.EINVAL
        return self.sys_mlock(addr, length)

    @syscall("munlock", "p", "u")
    def sys_munlock(self, addr: int, length: int) -> int:
        self._mapped_range(addr, length)
        return 0

    @syscall("mlockall", "x")
    def sys_mlockall(self, flags: int) -> int:
        if not flags & (MCL_CURRENT | MCL_FUTURE) or flags & ~(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT):
            return -_errno.EINVAL
        if flags & MCL_CURRENT:
            self._memlock_ok(self.mem.mapped_bytes)
        elif os.geteuid() != 0 and self.rlimits.get(RLIMIT_MEMLOCK, (1, 1))[0] == 0:
            return -_errno.EPERM
        return 0

    @syscall("munlockall")
    def sys_munlockall(self) -> int:
        return 0

    @syscall("msync", "p", "u", "x")
    def sys_msync(self, addr: int, length: int, flags: int) -> int:
        if addr & (PAGE - 1) or flags & ~(MS_ASYNC | MS_INVALIDATE | MS_SYNC) or \
                (flags & MS_ASYNC and flags & MS_SYNC):
            return -_errno.EINVAL
        start, end = self._mapped_range(addr, length)
        # Only host-shared file mappings have anything to write back.
        for s, e in list(self.shared_ranges):
            lo, hi = max(s, start), min(e, end)
            if lo < hi:
                host_check(_libc.msync(self.mem.host_address(lo), hi - lo, flags & (MS_ASYNC | MS_SYNC)
                                       or MS_ASYNC))
        return 0

    @syscall("mincore", "p", "u", "p")
    def sys_mincore(self, addr: int, length: int, vec: int) -> int:
        if addr & (PAGE - 1):
            return -_errno.EINVAL
        if length == 0:
            return 0
        start, end = self._mapped_range(addr, length)
        pages = (end - start) // PAGE
        self._need(vec, pages, PROT_WRITE)
        out = ctypes.create_string_buffer(pages)
        host_check(_libc.mincore(self.mem.host_address(start), end - start, out))
        self.mem.write(vec, bytes(b & 1 for b in out.raw))
        return 0

    # ======================================================================
    # Files: space, advice, locks, syncs
    # ======================================================================
    @syscall("fallocate", "fd", "x", "d", "d")
    def sys_fallocate(self, fd: int, mode: int, offset: int, length: int) -> int:
        host = self.fds.host(s32(fd))
        if s64(offset) < 0 or s64(length) <= 0:
            return -_errno.EINVAL
        return host_check(_libc.fallocate(host, s32(mode), s64(offset), s64(length)))

    @syscall("fadvise64", "fd", "d", "d", "d")
    def sys_fadvise64(self, fd: int, offset: int, length: int, advice: int) -> int:
        host = self.fds.host(s32(fd))
        os.posix_fadvise(host, s64(offset), s64(length), s32(advice))
        return 0

    @syscall("readahead", "fd", "d", "u")
    def sys_readahead(self, fd: int, offset: int, count: int) -> int:
        host = self.fds.host(s32(fd))
        return host_check(_libc.readahead(host, s64(offset), count))

    @syscall("flock", "fd", "x")
    def sys_flock(self, fd: int, operation: int) -> int:
        """Host flock on the guest's open file (locks work between guest
        processes and with host programs); a blocking lock waits
        interruptibly, retrying LOCK_NB."""
        host = self.fds.host(s32(fd))
        op = s32(operation)
        kind = op & ~LOCK_NB
        if kind not in (LOCK_SH, LOCK_EX, LOCK_UN):
            return -_errno.EINVAL
        got: list[OSError] = []

        def attempt() -> bool:
            try:
                _fcntl.flock(host, kind | LOCK_NB)
                return True
            except BlockingIOError:
                return False
            except OSError as e:
                got.append(e)
                return True

        if attempt():
            if got:
                raise got[0]
            return 0
        if op & LOCK_NB:
            return -_errno.EWOULDBLOCK
        while True:
            how = self.wait_until(attempt, 0.01)
            if how == "signal":
                return -ERESTARTSYS
            if how == "ready":
                if got:
                    raise got[0]
                return 0

    @syscall("sync")
    def sys_sync(self) -> int:
        os.sync()
        return 0

    @syscall("syncfs", "fd")
    def sys_syncfs(self, fd: int) -> int:
        return host_check(_libc.syncfs(self.fds.host(s32(fd))))

    @syscall("sync_file_range", "fd", "d", "d", "x")
    def sys_sync_file_range(self, fd: int, offset: int, nbytes: int, flags: int) -> int:
        host = self.fds.host(s32(fd))
        if flags & ~7:
            return -_errno.EINVAL
        return host_check(_libc.sync_file_range(host, s64(offset), s64(nbytes), flags))

    @syscall("truncate", "path", "d")
    def sys_truncate(self, path: int, length: int) -> int:
        p = self._path(path)
        if s64(length) < 0:
            return -_errno.EINVAL
        self._dirfd(AT_FDCWD & MASK64, p)            # the /proc guard
        os.truncate(p, s64(length))
        return 0

    # ======================================================================
    # Files: owners, modes, times, nodes
    # ======================================================================
    @staticmethod
    def _id_arg(v: int) -> int:
        v &= 0xFFFFFFFF
        return -1 if v == 0xFFFFFFFF else v

    @syscall("fchownat", "dirfd", "path", "d", "d", "x")
    def sys_fchownat(self, dirfd: int, path: int, uid: int, gid: int, flags: int) -> int:
        fl = s32(flags)
        if fl & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
            return -_errno.EINVAL
        p = self._path(path)
        if not p:
            if not fl & AT_EMPTY_PATH:
                return -_errno.ENOENT
            d = s32(dirfd)
            if d == AT_FDCWD:
                os.chown(".", self._id_arg(uid), self._id_arg(gid))
            else:
                os.fchown(self.fds.host(d), self._id_arg(uid), self._id_arg(gid))
            return 0
        os.chown(p, self._id_arg(uid), self._id_arg(gid), dir_fd=self._dirfd(dirfd, p),
                 follow_symlinks=not fl & AT_SYMLINK_NOFOLLOW)
        return 0

    @syscall("fchown", "fd", "d", "d")
    def sys_fchown(self, fd: int, uid: int, gid: int) -> int:
        os.fchown(self.fds.host(s32(fd)), self._id_arg(uid), self._id_arg(gid))
        return 0

    @syscall("chown", "path", "d", "d")
    def sys_chown(self, path: int, uid: int, gid: int) -> int:
        return self.sys_fchownat(AT_FDCWD & MASK64, path, uid, gid, 0)

    @syscall("lchown", "path", "d", "d")
    def sys_lchown(self, path: int, uid: int, gid: int) -> int:
        return self.sys_fchownat(AT_FDCWD & MASK64, path, uid, gid, AT_SYMLINK_NOFOLLOW)

    @syscall("chmod", "path", "mode")
    def sys_chmod(self, path: int, mode: int) -> int:
        return self.sys_fchmodat(AT_FDCWD & MASK64, path, mode)

    @syscall("link", "path", "path")
    def sys_link(self, oldp: int, newp: int) -> int:
        return self.sys_linkat(AT_FDCWD & MASK64, oldp, AT_FDCWD & MASK64, newp, 0)

    @syscall("mknodat", "dirfd", "path", "mode", "x")
    def sys_mknodat(self, dirfd: int, path: int, mode: int, dev: int) -> int:
        """FIFOs, sockets and regular files; device nodes are EPERM (never
        made on the host, whatever the user's rights)."""
        p = self._path(path)
        m = mode & 0xFFFFFFFF
        kind = m & S_IFMT
        if kind == 0:
            m |= S_IFREG
        elif kind in (S_IFCHR, S_IFBLK):
            return -_errno.EPERM
        elif kind not in (S_IFREG, S_IFIFO, S_IFSOCK):
            return -_errno.EINVAL
        os.mknod(p, m, 0, dir_fd=self._dirfd(dirfd, p))
        return 0

    @syscall("mknod", "path", "mode", "x")
    def sys_mknod(self, path: int, mode: int, dev: int) -> int:
        return self.sys_mknodat(AT_FDCWD & MASK64, path, mode, dev)

    def _utimens(self, dirfd: int, path_addr: int, times: bytes | None, flags: int) -> int:
        """utimensat on the host (UTIME_NOW/UTIME_OMIT and NULL pass through)."""
        fl = s32(flags)
        if fl & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
            return -_errno.EINVAL
        if times is not None:
            for sec, nsec in struct.iter_unpack("<qq", times):
                if nsec not in (UTIME_NOW, UTIME_OMIT) and not 0 <= nsec < NS:
                    return -_errno.EINVAL
        tbuf = ctypes.create_string_buffer(times, 32) if times is not None else None
        d = s32(dirfd)
        if path_addr == 0:
            # Linux's futimens: operate on dirfd itself.
            if d == AT_FDCWD:
                return -_errno.EFAULT
            if fl & AT_SYMLINK_NOFOLLOW:
                return -_errno.EINVAL
            host = self.fds.host(d)
            return host_check(_libc.syscall(_HOST_NR["utimensat"], ctypes.c_int(host), None, tbuf,
                                            ctypes.c_int(0)))
        p = self._path(path_addr)
        if not p and fl & AT_EMPTY_PATH and d != AT_FDCWD:
            host = self.fds.host(d)
            return host_check(_libc.syscall(_HOST_NR["utimensat"], ctypes.c_int(host), None, tbuf,
                                            ctypes.c_int(0)))
        if not p:
            return -_errno.ENOENT
        hdir = _host_at(self._dirfd(dirfd, p))
        return host_check(_libc.syscall(_HOST_NR["utimensat"], ctypes.c_int(hdir), ctypes.c_char_p(p),
                                        tbuf, ctypes.c_int(fl & AT_SYMLINK_NOFOLLOW)))

    @syscall("utimensat", "dirfd", "path", "p", "x")
    def sys_utimensat(self, dirfd: int, path: int, times: int, flags: int) -> int:
        t = self.mem.read(times, 32) if times else None
        return self._utimens(dirfd, path, t, flags)

    def _timevals(self, addr: int) -> bytes | None:
        if not addr:
            return None
        a_s, a_us, m_s, m_us = struct.unpack("<qqqq", self.mem.read(addr, 32))
        if not (0 <= a_us < 1_000_000 and 0 <= m_us < 1_000_000):
            raise Errno(_errno.EINVAL)
        return struct.pack("<qqqq", a_s, a_us * 1000, m_s, m_us * 1000)

    @syscall("futimesat", "dirfd", "path", "p")
    def sys_futimesat(self, dirfd: int, path: int, times: int) -> int:
        return self._utimens(dirfd, path, self._timevals(times), 0)

    @syscall("utimes", "path", "p")
    def sys_utimes(self, path: int, times: int) -> int:
        return self._utimens(AT_FDCWD & MASK64, path, self._timevals(times), 0)

    @syscall("utime", "path", "p")
    def sys_utime(self, path: int, times: int) -> int:
        t = None
        if times:
            actime, modtime = struct.unpack("<qq", self.mem.read(times, 16))
            t = struct.pack("<qqqq", actime, 0, modtime, 0)
        return self._utimens(AT_FDCWD & MASK64, path, t, 0)

    # ======================================================================
    # statfs
    # ======================================================================
    @staticmethod
    def _proc_statfs() -> bytes:
        return struct.pack("<qqQQQQQiiqqq4q", PROC_SUPER_MAGIC, PAGE, 0, 0, 0, 0, 0, 0, 0, 255, PAGE,
                           ST_VALID | ST_NOSUID | ST_NODEV | ST_NOEXEC | ST_RELATIME, 0, 0, 0, 0)

    @syscall("statfs", "path", "p")
    def sys_statfs(self, path: int, buf: int) -> int:
        p = self._path(path)
        self._need(buf, STATFS_SIZE, PROT_WRITE)
        if p and self.procfs.stat(AT_FDCWD, p, follow=True) is not None:
            self.mem.write(buf, self._proc_statfs())
            return 0
        self._dirfd(AT_FDCWD & MASK64, p)             # the /proc guard
        out = ctypes.create_string_buffer(STATFS_SIZE)
        host_check(_libc.statfs(p, out))
        self.mem.write(buf, out.raw)
        return 0

    @syscall("fstatfs", "fd", "p")
    def sys_fstatfs(self, fd: int, buf: int) -> int:
        host = self.fds.host(s32(fd))
        self._need(buf, STATFS_SIZE, PROT_WRITE)
        if self.procfs.fstat(host) is not None:
            self.mem.write(buf, self._proc_statfs())
            return 0
        out = ctypes.create_string_buffer(STATFS_SIZE)
        host_check(_libc.fstatfs(host, out))
        self.mem.write(buf, out.raw)
        return 0

    # ======================================================================
    # Extended attributes
    # ======================================================================
    def _xattr_name(self, addr: int) -> bytes:
        name = self.mem.read_cstring(addr, XATTR_NAME_MAX + 2)
        if not name or len(name) > XATTR_NAME_MAX:
            raise Errno(_errno.ERANGE)
        return name

    def _xattr_target(self, path_addr: int, follow: bool) -> bytes | int | None:
        """A path (after the /proc guard), or None for a path in the guest's
        /proc (no attributes there)."""
        p = self._path(path_addr)
        if p and self.procfs.stat(AT_FDCWD, p, follow=follow) is not None:
            return None
        self._dirfd(AT_FDCWD & MASK64, p)
        return p

    def _getxattr(self, target: bytes | int | None, name_addr: int, value: int, size: int,
                  follow: bool = True) -> int:
        name = self._xattr_name(name_addr)
        if target is None:
            return -_errno.ENODATA
        data = os.getxattr(target, name, follow_symlinks=follow)
        if size == 0:
            return len(data)
        if len(data) > size:
            return -_errno.ERANGE
        self.mem.write(value, data)
        return len(data)

    def _listxattr(self, target: bytes | int | None, lst: int, size: int, follow: bool = True) -> int:
        if target is None:
            return 0
        names = os.listxattr(target, follow_symlinks=follow)
        data = b"".join(os.fsencode(n) + b"\0" for n in names)
        if size == 0:
            return len(data)
        if len(data) > size:
            return -_errno.ERANGE
        self.mem.write(lst, data)
        return len(data)

    def _setxattr(self, target: bytes | int | None, name_addr: int, value: int, size: int,
                  flags: int, follow: bool = True) -> int:
        name = self._xattr_name(name_addr)
        if flags & ~(XATTR_CREATE | XATTR_REPLACE):
            return -_errno.EINVAL
        if size > XATTR_SIZE_MAX:
            return -_errno.E2BIG
        data = self.mem.read(value, size) if size else b""
        if target is None:
            return -_errno.EACCES
        os.setxattr(target, name, data, flags, follow_symlinks=follow)
        return 0

    def _removexattr(self, target: bytes | int | None, name_addr: int, follow: bool = True) -> int:
        name = self._xattr_name(name_addr)
        if target is None:
            return -_errno.EACCES
        os.removexattr(target, name, follow_symlinks=follow)
        return 0

    def _fd_target(self, fd: int) -> int | None:
        host = self.fds.host(s32(fd))
        return None if self.procfs.fstat(host) is not None else host

    @syscall("getxattr", "path", "path", "p", "u")
    def sys_getxattr(self, path: int, name: int, value: int, size: int) -> int:
        return self._getxattr(self._xattr_target(path, True), name, value, size)

    @syscall("lgetxattr", "path", "path", "p", "u")
    def sys_lgetxattr(self, path: int, name: int, value: int, size: int) -> int:
        return self._getxattr(self._xattr_target(path, False), name, value, size, follow=False)

    @syscall("fgetxattr", "fd", "path", "p", "u")
    def sys_fgetxattr(self, fd: int, name: int, value: int, size: int) -> int:
        return self._getxattr(self._fd_target(fd), name, value, size)

    @syscall("listxattr", "path", "p", "u")
    def sys_listxattr(self, path: int, lst: int, size: int) -> int:
        return self._listxattr(self._xattr_target(path, True), lst, size)

    @syscall("llistxattr", "path", "p", "u")
    def sys_llistxattr(self, path: int, lst: int, size: int) -> int:
        return self._listxattr(self._xattr_target(path, False), lst, size, follow=False)

    @syscall("flistxattr", "fd", "p", "u")
    def sys_flistxattr(self, fd: int, lst: int, size: int) -> int:
        return self._listxattr(self._fd_target(fd), lst, size)

    @syscall("setxattr", "path", "path", "p", "u", "x")
    def sys_setxattr(self, path: int, name: int, value: int, size: int, flags: int) -> int:
        return self._setxattr(self._xattr_target(path, True), name, value, size, flags)

    @syscall("lsetxattr", "path", "path", "p", "u", "x")
    def sys_lsetxattr(self, path: int, name: int, value: int, size: int, flags: int) -> int:
        return self._setxattr(self._xattr_target(path, False), name, value, size, flags, follow=False)

    @syscall("fsetxattr", "fd", "path", "p", "u", "x")
    def sys_fsetxattr(self, fd: int, name: int, value: int, size: int, flags: int) -> int:
        return self._setxattr(self._fd_target(fd), name, value, size, flags)

    @syscall("removexattr", "path", "path")
    def sys_removexattr(self, path: int, name: int) -> int:
        return self._removexattr(self._xattr_target(path, True), name)

    @syscall("lremovexattr", "path", "path")
    def sys_lremovexattr(self, path: int, name: int) -> int:
        return self._removexattr(self._xattr_target(path, False), name, follow=False)

    @syscall("fremovexattr", "fd", "path")
    def sys_fremovexattr(self, fd: int, name: int) -> int:
        return self._removexattr(self._fd_target(fd), name)

    # ======================================================================
    # Vectored positional I/O
    # ======================================================================
    def _prwv(self, fd: int, iov: int, iovcnt: int, offset: int, flags: int, write: bool) -> int:
        host = self.fds.host(s32(fd))
        flags &= 0xFFFFFFFF
        if flags & ~RWF_SUPPORTED:
            return -_errno.EOPNOTSUPP
        off = s64(offset)
        if off < -1:
            return -_errno.EINVAL
        arr, n = self._host_iovecs(iov, iovcnt, PROT_READ if write else PROT_WRITE)
        fn = _libc.pwritev2 if write else _libc.preadv2
        return host_check(fn(host, arr, n, off, flags))

    @syscall("preadv", "fd", "p", "d", "d", "d")
    def sys_preadv(self, fd: int, iov: int, iovcnt: int, pos_l: int, pos_h: int) -> int:
        if s64(pos_l) < 0:
            return -_errno.EINVAL
        return self._prwv(fd, iov, iovcnt, pos_l, 0, write=False)

    @syscall("pwritev", "fd", "p", "d", "d", "d")
    def sys_pwritev(self, fd: int, iov: int, iovcnt: int, pos_l: int, pos_h: int) -> int:
        if s64(pos_l) < 0:
            return -_errno.EINVAL
        return self._prwv(fd, iov, iovcnt, pos_l, 0, write=True)

    @syscall("preadv2", "fd", "p", "d", "d", "d", "x")
    def sys_preadv2(self, fd: int, iov: int, iovcnt: int, pos_l: int, pos_h: int, flags: int) -> int:
        return self._prwv(fd, iov, iovcnt, pos_l, flags, write=False)

    @syscall("pwritev2", "fd", "p", "d", "d", "d", "x")
    def sys_pwritev2(self, fd: int, iov: int, iovcnt: int, pos_l: int, pos_h: int, flags: int) -> int:
        return self._prwv(fd, iov, iovcnt, pos_l, flags, write=True)

    # ======================================================================
    # Descriptors and processes
    # ======================================================================
    @syscall("close_range", "u", "u", "x")
    def sys_close_range(self, first: int, last: int, flags: int) -> int:
        """CLOSE_RANGE_UNSHARE is accepted as a no-op: guest threads share one table."""
        first &= 0xFFFFFFFF
        last &= 0xFFFFFFFF
        if flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC) or first > last:
            return -_errno.EINVAL
        for gfd in self.fds.guest_fds():
            if first <= gfd <= last:
                try:
                    if flags & CLOSE_RANGE_CLOEXEC:
                        self.fds.set_cloexec(gfd, True)
                    else:
                        self.fds.close(gfd)
                except (OSError, Errno):
                    pass
        return 0

    @syscall("pidfd_open", "d", "x")
    def sys_pidfd_open(self, pid: int, flags: int) -> int:
        """Our own process or a descendant (process_calls.py's policy); the
        check is made after opening, so a recycled pid cannot slip in."""
        p = s32(pid)
        if flags & ~PIDFD_NONBLOCK or p <= 0:
            return -_errno.EINVAL
        if p != self.pid and p in self.threads:
            return -_errno.EINVAL                     # a thread, not a thread-group leader
        hfd = os.pidfd_open(p, os.O_NONBLOCK if flags & PIDFD_NONBLOCK else 0)
        if p != self.pid and not self._is_descendant(p):
            os.close(hfd)
            return -_errno.ESRCH
        return self.fds.add(hfd, cloexec=True)

    @syscall("pidfd_send_signal", "fd", "sig", "p", "x")
    def sys_pidfd_send_signal(self, pidfd: int, sig: int, info: int, flags: int) -> int:
        if flags:
            return -_errno.EINVAL
        s = s32(sig)
        if s < 0 or s > NSIG:
            return -_errno.EINVAL
        pid = self._pidfd_pid(s32(pidfd))
        if pid <= 0:
            return -_errno.ESRCH                      # the process has exited
        if pid == self.pid:
            if info:
                return self._queueinfo(None, sig, info)
            return self._signal_self(s)
        if not self._is_descendant(pid):
            return -_errno.ESRCH
        if s:
            self._signal_pid(pid, s)
        return 0

    @syscall("kcmp", "d", "d", "d", "u", "u")
    def sys_kcmp(self, pid1: int, pid2: int, type_: int, idx1: int, idx2: int) -> int:
        """Within this process only (another's would need ptrace access):
        KCMP_FILE compares the host open files behind two guest fds;
        every other resource is shared by all our threads (0, equal)."""
        own = {self.pid} | {t for t, th in self.threads.items() if not th.exited}
        if s32(pid1) not in own or s32(pid2) not in own:
            return -_errno.EPERM
        ty = s32(type_)
        if ty < 0 or ty >= KCMP_TYPES or ty == KCMP_EPOLL_TFD:
            return -_errno.EINVAL
        if ty != KCMP_FILE:
            return 0
        h1, h2 = self.fds.host(s32(idx1)), self.fds.host(s32(idx2))
        me = os.getpid()
        return host_check(_libc.syscall(_HOST_NR["kcmp"], ctypes.c_int(me), ctypes.c_int(me),
                                        ctypes.c_int(KCMP_FILE), ctypes.c_ulong(h1),
                                        ctypes.c_ulong(h2)))

    @syscall("unshare", "x")
    def sys_unshare(self, flags: int) -> int:
        """Namespaces are refused; unsharing the fd table, fs info or SysV
        undo list is a no-op exactly while the process has one thread."""
        if flags == 0:
            return 0
        if flags & ~(CLONE_FS | CLONE_FILES | CLONE_SYSVSEM):
            return -_errno.EPERM
        live = sum(1 for t in self.threads.values() if not t.exited)
        return 0 if live == 1 else -_errno.EPERM

    @syscall("setns", "fd", "x")
    def sys_setns(self, fd: int, nstype: int) -> int:
        self.fds.host(s32(fd))
        return -_errno.EPERM

    @syscall("restart_syscall")
    def sys_restart_syscall(self) -> int:
        return -_errno.EINTR

    # ======================================================================
    # Time: the guest may read the clocks, never set them
    # ======================================================================
    def _adjtime_query(self, buf: int) -> int:
        raw = self.mem.read(buf, TIMEX_SIZE)
        if struct.unpack_from("<I", raw, 0)[0] != 0:           # modes: a change
            return -_errno.EPERM
        out = ctypes.create_string_buffer(raw, TIMEX_SIZE)
        ret = host_check(_libc.adjtimex(out))
        self.mem.write(buf, out.raw)
        return ret

    @syscall("adjtimex", "p")
    def sys_adjtimex(self, buf: int) -> int:
        return self._adjtime_query(buf)

    @syscall("clock_adjtime", "d", "p")
    def sys_clock_adjtime(self, clk: int, buf: int) -> int:
        if s32(clk) != CLOCK_REALTIME:
            return -_errno.EOPNOTSUPP if s32(clk) in _WALL_CLOCKS else -_errno.EINVAL
        return self._adjtime_query(buf)

    @syscall("clock_settime", "d", "p")
    def sys_clock_settime(self, clk: int, tp: int) -> int:
        self.mem.read(tp, 16)
        return -_errno.EPERM if s32(clk) == CLOCK_REALTIME else -_errno.EINVAL

    @syscall("settimeofday", "p", "p")
    def sys_settimeofday(self, tv: int, tz: int) -> int:
        if not tv and not tz:
            return 0
        return -_errno.EPERM

    # ======================================================================
    # Refused: what a sandboxed, unprivileged process may not do
    # ======================================================================
    @syscall("mount", "path", "path", "path", "x", "p")
    def sys_mount(self, *_a: int) -> int:
        return -_errno.EPERM

    @syscall("umount2", "path", "x")
    def sys_umount2(self, *_a: int) -> int:
        return -_errno.EPERM

    @syscall("chroot", "path")
    def sys_chroot(self, *_a: int) -> int:
        return -_errno.EPERM

    @syscall("pivot_root", "path", "path")
    def sys_pivot_root(self, *_a: int) -> int:
        return -_errno.EPERM

    @syscall("syslog", "d", "p", "d")
    def sys_syslog(self, *_a: int) -> int:
        return -_errno.EPERM

    @syscall("process_vm_readv", "d", "p", "u", "p", "u", "x")
    def sys_process_vm_readv(self, *_a: int) -> int:
        return -_errno.EPERM

    @syscall("process_vm_writev", "d", "p", "u", "p", "u", "x")
    def sys_process_vm_writev(self, *_a: int) -> int:
        return -_errno.EPERM

    @syscall("pidfd_getfd", "fd", "d", "x")
    def sys_pidfd_getfd(self, *_a: int) -> int:
        return -_errno.EPERM

    @syscall("ptrace", "d", "d", "p", "p")
    def sys_ptrace(self, *_a: int) -> int:
        return -_errno.EPERM

    @syscall("sethostname", "p", "u")
    def sys_sethostname(self, *_a: int) -> int:
        return -_errno.EPERM

    @syscall("setdomainname", "p", "u")
    def sys_setdomainname(self, *_a: int) -> int:
        return -_errno.EPERM

    @syscall("reboot", "x", "x", "x", "p")
    def sys_reboot(self, *_a: int) -> int:
        return -_errno.EPERM

    @syscall("acct", "path")
    def sys_acct(self, *_a: int) -> int:
        return -_errno.EPERM

    @syscall("swapon", "path", "x")
    def sys_swapon(self, *_a: int) -> int:
        return -_errno.EPERM

    @syscall("swapoff", "path")
    def sys_swapoff(self, *_a: int) -> int:
        return -_errno.EPERM

    @syscall("init_module", "p", "u", "p")
    def sys_init_module(self, *_a: int) -> int:
        return -_errno.EPERM

    @syscall("finit_module", "fd", "p", "x")
    def sys_finit_module(self, *_a: int) -> int:
        return -_errno.EPERM

    @syscall("delete_module", "path", "x")
    def sys_delete_module(self, *_a: int) -> int:
        return -_errno.EPERM

    @syscall("kexec_load", "p", "u", "p", "x")
    def sys_kexec_load(self, *_a: int) -> int:
        return -_errno.EPERM

    @syscall("kexec_file_load", "fd", "fd", "u", "p", "x")
    def sys_kexec_file_load(self, *_a: int) -> int:
        return -_errno.EPERM

    @syscall("vhangup")
    def sys_vhangup(self) -> int:
        return -_errno.EPERM

    @syscall("quotactl", "x", "path", "d", "p")
    def sys_quotactl(self, *_a: int) -> int:
        return -_errno.EPERM

    @syscall("open_by_handle_at", "fd", "p", "oflags")
    def sys_open_by_handle_at(self, *_a: int) -> int:
        return -_errno.EPERM                          # CAP_DAC_READ_SEARCH

    @syscall("userfaultfd", "x")
    def sys_userfaultfd(self, *_a: int) -> int:
        return -_errno.EPERM                          # as vm.unprivileged_userfaultfd=0
