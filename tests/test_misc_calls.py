"""Tests for runtime/linux/misc_calls.py: POSIX timers, signalfd, prctl,
identity, memory residency, file metadata, pidfds and the refused calls, on
a kernel over scratch guest memory (real host behaviour, not mocks); and an
end-to-end guest C program (timer_create + SIGEV_SIGNAL handler, signalfd
with poll) under ``aotrun --engine jit`` against qemu-riscv64."""

from __future__ import annotations

import errno
import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runtime.linux import RISCV64_ABI, X86_64_ABI
from runtime.linux.kernel import LinuxKernel
from runtime.linux.sigframe import SI_TIMER, SI_USER, SigInfo

from test_syscalls import BUF, BUF_SIZE, Scratch, g, mem  # noqa: F401  (the scratch-page fixtures)

NR = RISCV64_ABI.numbers
UNMAPPED = 0x5000_0000
SIGUSR1, SIGUSR2, SIGALRM, SIGRTMIN = 10, 12, 14, 32
SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD_ID = 0, 1, 4
CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_PROCESS_CPUTIME_ID = 0, 1, 2
TIMER_ABSTIME = 1
POLLIN = 1
AT_FDCWD = -100 & (1 << 64) - 1
MASK64 = (1 << 64) - 1


@pytest.fixture
def k(mem):
    kern = LinuxKernel(mem, RISCV64_ABI, brk_start=0x20_0000, exe_path="/usr/bin/guest-prog")
    yield kern
    kern.close()


def sc(k, name, *args):
    return k.syscall(NR[name], [a & MASK64 for a in args])


def bit(sig: int) -> int:
    return 1 << (sig - 1)


def sigevent(value: int, signo: int, notify: int, tid: int = 0) -> bytes:
    return struct.pack("<QiiI", value, signo, notify, tid).ljust(64, b"\0")


def itimerspec(interval_ns: int, value_ns: int) -> bytes:
    return struct.pack("<qqqq", *divmod(interval_ns, 10**9), *divmod(value_ns, 10**9))


def take(k, mask: int):
    """Dequeue a pending signal in ``mask`` for the main thread."""
    return k._dequeue(k.main_thread, ~mask & MASK64)


def poll(k, g, pfd: int, timeout_ms: int) -> int:
    """poll() through ppoll (riscv64 has no poll)."""
    ts = g.bytes(struct.pack("<qq", *divmod(timeout_ms * 1_000_000, 10**9)))
    return sc(k, "ppoll", pfd, 1, ts, 0, 8)


def wait_pending(k, sig: int, timeout: float = 2.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if (k.pending_signals | k.main_thread.pending) & bit(sig):
            return True
        time.sleep(0.002)
    return False


# --------------------------------------------------------------------------
# POSIX timers
# --------------------------------------------------------------------------

def make_timer(k, g, clock=CLOCK_MONOTONIC, sev: bytes | None = None) -> int:
    idp = g.alloc(4)
    sevp = g.bytes(sev) if sev is not None else 0
    assert sc(k, "timer_create", clock, sevp, idp) == 0
    return struct.unpack("<i", k.mem.read(idp, 4))[0]


def test_timer_signal_arrives_with_si_timer_and_value(k, g):
    k.main_thread.sigmask = bit(SIGRTMIN)          # keep it pending, to inspect
    tid = make_timer(k, g, sev=sigevent(0xDEADBEEF12, SIGRTMIN, SIGEV_SIGNAL))
    assert sc(k, "timer_settime", tid, 0, g.bytes(itimerspec(0, 20_000_000)), 0) == 0
    assert wait_pending(k, SIGRTMIN)
    sig, info = take(k, bit(SIGRTMIN))
    assert sig == SIGRTMIN and info.code == SI_TIMER
    assert info.value == 0xDEADBEEF12 and info.timerid == tid and info.overrun == 0
    packed = info.pack()
    assert struct.unpack_from("<iii", packed, 0) == (SIGRTMIN, 0, SI_TIMER)
    assert struct.unpack_from("<iiQ", packed, 16) == (tid, 0, 0xDEADBEEF12)
    assert sc(k, "timer_delete", tid) == 0
    assert sc(k, "timer_delete", tid) == -errno.EINVAL


def test_timer_default_sigevent_is_sigalrm_with_id(k, g):
    k.main_thread.sigmask = bit(SIGALRM)
    tid = make_timer(k, g, sev=None)
    assert sc(k, "timer_settime", tid, 0, g.bytes(itimerspec(0, 5_000_000)), 0) == 0
    assert wait_pending(k, SIGALRM)
    sig, info = take(k, bit(SIGALRM))
    assert (sig, info.code, info.value, info.timerid) == (SIGALRM, SI_TIMER, tid, tid)


def test_timer_overrun_counts_while_blocked(k, g):
    k.main_thread.sigmask = bit(SIGUSR1)
    tid = make_timer(k, g, sev=sigevent(7, SIGUSR1, SIGEV_SIGNAL))
    assert sc(k, "timer_settime", tid, 0, g.bytes(itimerspec(10_000_000, 10_000_000)), 0) == 0
    time.sleep(0.215)
    # Disarm first so the count is stable; ~21 expirations → 1 signal + ~20 overruns.
    assert sc(k, "timer_settime", tid, 0, g.bytes(itimerspec(0, 0)), 0) == 0
    assert sc(k, "timer_getoverrun", tid) == 0          # nothing delivered yet
    sig, info = take(k, bit(SIGUSR1))
    assert sig == SIGUSR1 and info.code == SI_TIMER and info.value == 7
    assert 12 <= info.overrun <= 21, info.overrun
    assert sc(k, "timer_getoverrun", tid) == info.overrun   # the delivered signal's count
    assert take(k, bit(SIGUSR1)) is None                    # one signal, not twenty


def test_timer_gettime_counts_down_and_interval(k, g):
    tid = make_timer(k, g, sev=sigevent(0, 0, SIGEV_NONE))
    old = g.alloc(32)
    assert sc(k, "timer_settime", tid, 0, g.bytes(itimerspec(250_000_000, 2 * 10**9)), old) == 0
    assert k.mem.read(old, 32) == bytes(32)                # was disarmed
    cur = g.alloc(32)
    assert sc(k, "timer_gettime", tid, cur) == 0
    isec, insec, vsec, vnsec = struct.unpack("<qqqq", k.mem.read(cur, 32))
    first = vsec * 10**9 + vnsec
    assert (isec, insec) == (0, 250_000_000)
    assert 1_500_000_000 < first <= 2 * 10**9
    time.sleep(0.05)
    sc(k, "timer_gettime", tid, cur)
    isec, insec, vsec, vnsec = struct.unpack("<qqqq", k.mem.read(cur, 32))
    assert vsec * 10**9 + vnsec <= first - 40_000_000
    # Absolute: a deadline on CLOCK_MONOTONIC 1 s from now.
    now = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    assert sc(k, "timer_settime", tid, TIMER_ABSTIME, g.bytes(itimerspec(0, now + 10**9)), 0) == 0
    sc(k, "timer_gettime", tid, cur)
    _i, _in, vsec, vnsec = struct.unpack("<qqqq", k.mem.read(cur, 32))
    assert 800_000_000 < vsec * 10**9 + vnsec <= 10**9
    assert sc(k, "timer_settime", tid, 0, g.bytes(itimerspec(0, 0)), 0) == 0
    sc(k, "timer_gettime", tid, cur)
    assert k.mem.read(cur, 32) == bytes(32)


def test_timer_thread_id_targets_the_thread(k, g):
    main = k.main_thread
    main.sigmask = bit(SIGUSR2)
    tid = make_timer(k, g, sev=sigevent(5, SIGUSR2, SIGEV_THREAD_ID, main.tid))
    sc(k, "timer_settime", tid, 0, g.bytes(itimerspec(0, 1_000_000)), 0)
    assert wait_pending(k, SIGUSR2)
    assert main.pending & bit(SIGUSR2) and not k.pending_signals & bit(SIGUSR2)


def test_timer_create_errors(k, g):
    idp = g.alloc(4)
    assert sc(k, "timer_create", 8, 0, idp) == -errno.EPERM        # REALTIME_ALARM
    assert sc(k, "timer_create", 4, 0, idp) == -errno.EOPNOTSUPP    # MONOTONIC_RAW
    assert sc(k, "timer_create", 99, 0, idp) == -errno.EINVAL
    assert sc(k, "timer_create", 1, g.bytes(sigevent(0, 0, SIGEV_SIGNAL)), idp) == -errno.EINVAL
    assert sc(k, "timer_create", 1, g.bytes(sigevent(0, 10, SIGEV_THREAD_ID, 1)), idp) == -errno.EINVAL
    assert sc(k, "timer_create", 1, UNMAPPED, idp) == -errno.EFAULT
    assert sc(k, "timer_create", 1, 0, UNMAPPED) == -errno.EFAULT
    tid = make_timer(k, g, clock=CLOCK_PROCESS_CPUTIME_ID)
    assert sc(k, "timer_settime", tid, 0, g.bytes(itimerspec(0, -1)), 0) == -errno.EINVAL
    assert sc(k, "timer_settime", tid, 0, UNMAPPED, 0) == -errno.EFAULT
    assert sc(k, "timer_gettime", 12345, g.alloc(32)) == -errno.EINVAL


# --------------------------------------------------------------------------
# signalfd
# --------------------------------------------------------------------------

def test_signalfd_read_and_poll(k, g):
    k.main_thread.sigmask = bit(SIGUSR1) | bit(SIGUSR2)
    mask = g.bytes(struct.pack("<Q", bit(SIGUSR1)))
    fd = sc(k, "signalfd4", -1, mask, 8, 0o4000)          # SFD_NONBLOCK
    assert fd >= 3
    buf = g.alloc(256)
    assert sc(k, "read", fd, buf, 128) == -errno.EAGAIN
    pfd = g.bytes(struct.pack("<ihh", fd, POLLIN, 0))
    assert poll(k, g, pfd, 0) == 0
    k.post_signal(SIGUSR2)                                 # not in the mask
    assert poll(k, g, pfd, 0) == 0
    k.post_signal(SIGUSR1, SigInfo(signo=SIGUSR1, code=SI_USER, pid=4242, uid=77))
    assert poll(k, g, pfd, 0) == 1
    assert struct.unpack("<ihh", k.mem.read(pfd, 8))[2] & POLLIN
    assert sc(k, "read", fd, buf, 100) == -errno.EINVAL    # smaller than one record
    assert sc(k, "read", fd, buf, 256) == 128
    rec = k.mem.read(buf, 128)
    signo, err, code, pid, uid = struct.unpack_from("<IiiII", rec, 0)
    assert (signo, err, code, pid, uid) == (SIGUSR1, 0, SI_USER, 4242, 77)
    assert poll(k, g, pfd, 0) == 0                   # readiness follows the queue
    assert k.pending_signals & bit(SIGUSR2)                # the other one is untouched
    # Queued real-time signals: several records in one read, values kept.
    mask2 = g.bytes(struct.pack("<Q", bit(SIGUSR1) | bit(SIGRTMIN)))
    assert sc(k, "signalfd4", fd, mask2, 8, 0) == fd       # change the mask
    k.main_thread.sigmask |= bit(SIGRTMIN)
    for v in (11, 22):
        k.post_signal(SIGRTMIN, SigInfo(signo=SIGRTMIN, code=-1, pid=1, uid=2, value=v))
    assert sc(k, "read", fd, buf, 256) == 256
    recs = [k.mem.read(buf + i * 128, 128) for i in range(2)]
    assert [struct.unpack_from("<I", r, 0)[0] for r in recs] == [SIGRTMIN, SIGRTMIN]
    assert [struct.unpack_from("<Q", r, 48)[0] for r in recs] == [11, 22]    # ssi_ptr
    assert [struct.unpack_from("<i", r, 44)[0] for r in recs] == [11, 22]    # ssi_int
    assert sc(k, "read", fd, UNMAPPED, 128) == -errno.EFAULT
    assert sc(k, "signalfd4", -1, mask, 4, 0) == -errno.EINVAL
    assert sc(k, "signalfd4", 0, mask, 8, 0) == -errno.EINVAL    # not a signalfd


def test_signalfd_blocking_read_wakes_on_timer(k, g):
    """A blocking signalfd read returns the timer's signal (fields of
    struct signalfd_siginfo: ssi_tid = timer id, ssi_overrun, ssi_ptr)."""
    k.main_thread.sigmask = bit(SIGRTMIN + 1)
    fd = sc(k, "signalfd4", -1, g.bytes(struct.pack("<Q", bit(SIGRTMIN + 1))), 8, 0)
    tid = make_timer(k, g, sev=sigevent(0x1234, SIGRTMIN + 1, SIGEV_SIGNAL))
    sc(k, "timer_settime", tid, 0, g.bytes(itimerspec(0, 30_000_000)), 0)
    buf = g.alloc(128)
    t0 = time.monotonic()
    assert sc(k, "read", fd, buf, 128) == 128
    assert time.monotonic() - t0 < 2
    rec = k.mem.read(buf, 128)
    assert struct.unpack_from("<Iii", rec, 0) == (SIGRTMIN + 1, 0, SI_TIMER)
    assert struct.unpack_from("<II", rec, 24)[0] == tid                     # ssi_tid
    assert struct.unpack_from("<I", rec, 32)[0] == 0                        # ssi_overrun
    assert struct.unpack_from("<Q", rec, 48)[0] == 0x1234                   # ssi_ptr


def test_signalfd_epoll_sees_it(k, g):
    k.main_thread.sigmask = bit(SIGUSR1)
    fd = sc(k, "signalfd4", -1, g.bytes(struct.pack("<Q", bit(SIGUSR1))), 8, 0o4000)
    ep = sc(k, "epoll_create1", 0)
    ev = g.bytes(struct.pack("<I4xQ", 1, 99))
    assert sc(k, "epoll_ctl", ep, 1, fd, ev) == 0
    out = g.alloc(16)
    assert sc(k, "epoll_pwait", ep, out, 1, 0, 0, 8) == 0
    k.post_signal(SIGUSR1)
    assert sc(k, "epoll_pwait", ep, out, 1, 1000, 0, 8) == 1
    assert struct.unpack("<I4xQ", k.mem.read(out, 16))[1] == 99


# --------------------------------------------------------------------------
# prctl, personality, identity
# --------------------------------------------------------------------------

def test_prctl_name_round_trip(k, g):
    name = g.alloc(16)
    assert sc(k, "prctl", 16, name, 0, 0, 0) == 0           # PR_GET_NAME
    assert k.mem.read(name, 16).rstrip(b"\0") == b"guest-prog"
    assert sc(k, "prctl", 15, g.str("worker-thread-with-long-name"), 0, 0, 0) == 0
    assert sc(k, "prctl", 16, name, 0, 0, 0) == 0
    assert k.mem.read(name, 16) == b"worker-thread-w\0"
    assert sc(k, "prctl", 15, UNMAPPED, 0, 0, 0) == -errno.EFAULT
    assert sc(k, "prctl", 16, UNMAPPED, 0, 0, 0) == -errno.EFAULT


def test_prctl_misc(k, g):
    assert sc(k, "prctl", 3, 0, 0, 0, 0) == 1                # PR_GET_DUMPABLE
    assert sc(k, "prctl", 4, 0, 0, 0, 0) == 0
    assert sc(k, "prctl", 3, 0, 0, 0, 0) == 0
    assert sc(k, "prctl", 4, 2, 0, 0, 0) == -errno.EINVAL
    assert sc(k, "prctl", 39, 0, 0, 0, 0) == 0                # PR_GET_NO_NEW_PRIVS
    assert sc(k, "prctl", 38, 1, 0, 0, 0) == 0
    assert sc(k, "prctl", 39, 0, 0, 0, 0) == 1
    assert sc(k, "prctl", 30, 0, 0, 0, 0) == 50_000           # PR_GET_TIMERSLACK
    assert sc(k, "prctl", 29, 1000, 0, 0, 0) == 0
    assert sc(k, "prctl", 30, 0, 0, 0, 0) == 1000
    assert sc(k, "prctl", 23, 0, 0, 0, 0) in (0, 1)          # PR_CAPBSET_READ
    assert sc(k, "prctl", 23, 1000, 0, 0, 0) == -errno.EINVAL
    p = g.alloc(4)
    assert sc(k, "prctl", 2, p, 0, 0, 0) == 0                 # PR_GET_PDEATHSIG
    assert sc(k, "prctl", 0x53564D41, 0, BUF, 0x1000, g.str("arena")) == 0    # PR_SET_VMA
    assert sc(k, "prctl", 0x53564D41, 0, BUF + 1, 0x1000, 0) == -errno.EINVAL
    assert sc(k, "prctl", 0x53564D41, 0, UNMAPPED, 0x1000, 0) == -errno.ENOMEM
    assert sc(k, "prctl", 12345, 0, 0, 0, 0) == -errno.EINVAL
    assert sc(k, "personality", 0xFFFFFFFF) == 0
    assert sc(k, "personality", 0x0040000) == 0               # ADDR_NO_RANDOMIZE, remembered
    assert sc(k, "personality", 0xFFFFFFFF) == 0x0040000


def test_identity(k, g):
    r, e, s = g.alloc(4), g.alloc(4), g.alloc(4)
    assert sc(k, "getresuid", r, e, s) == 0
    assert struct.unpack("<I", k.mem.read(r, 4))[0] == os.getuid()
    assert sc(k, "getresgid", r, e, s) == 0
    assert struct.unpack("<I", k.mem.read(s, 4))[0] == os.getresgid()[2]
    assert sc(k, "getresuid", r, e, UNMAPPED) == -errno.EFAULT
    me = os.getuid()
    assert sc(k, "setuid", me) == 0
    assert sc(k, "setuid", me + 1) == -errno.EPERM
    assert sc(k, "setresuid", -1, me, -1) == 0
    assert sc(k, "setresuid", -1, me + 1, -1) == -errno.EPERM
    assert sc(k, "setgid", os.getgid() + 1) == -errno.EPERM
    n = sc(k, "getgroups", 0, 0)
    assert n == len(os.getgroups())
    if n:
        lst = g.alloc(4 * n)
        assert sc(k, "getgroups", n, lst) == n
        assert sc(k, "setgroups", n, lst) == 0
    assert sc(k, "setgroups", 1, g.bytes(struct.pack("<I", 424242))) == -errno.EPERM
    hdr = g.bytes(struct.pack("<Ii", 0x20080522, 0))
    data = g.bytes(b"\xff" * 24)
    assert sc(k, "capget", hdr, data) == 0
    assert k.mem.read(data, 24) == bytes(24)
    assert sc(k, "capset", hdr, data) == 0                   # drop nothing
    assert sc(k, "capset", hdr, g.bytes(b"\1" + bytes(23))) == -errno.EPERM
    bad = g.bytes(struct.pack("<Ii", 1, 0))
    assert sc(k, "capget", bad, data) == -errno.EINVAL
    assert struct.unpack("<I", k.mem.read(bad, 4))[0] == 0x20080522


def test_sched_and_priority(k, g):
    assert sc(k, "sched_getscheduler", 0) == 0
    p = g.alloc(4)
    assert sc(k, "sched_getparam", 0, p) == 0
    assert sc(k, "sched_get_priority_max", 1) == 99
    assert sc(k, "sched_get_priority_min", 0) == 0
    assert sc(k, "sched_get_priority_max", 77) == -errno.EINVAL
    assert sc(k, "sched_getscheduler", 1) == -errno.ESRCH           # init is not ours
    assert sc(k, "getpriority", 0, 0) == 20 - os.getpriority(os.PRIO_PROCESS, 0)
    assert sc(k, "getpriority", 0, 1) == -errno.ESRCH
    assert sc(k, "setpriority", 2, 0, 10) == -errno.EPERM            # PRIO_USER: never
    ts = g.alloc(16)
    assert sc(k, "sched_rr_get_interval", 0, ts) == 0


def test_refused_and_eperm(k, g):
    for name, args in (("mount", (0, 0, 0, 0, 0)), ("umount2", (0, 0)), ("chroot", (0,)),
                       ("pivot_root", (0, 0)), ("syslog", (3, 0, 0)),
                       ("process_vm_readv", (os.getpid(), 0, 0, 0, 0, 0)),
                       ("clock_settime", (0, g.alloc(16))), ("settimeofday", (g.alloc(16), 0)),
                       ("unshare", (0x10000000,))):
        assert sc(k, name, *args) == -errno.EPERM, name
    assert sc(k, "unshare", 0x400) == 0                      # CLONE_FILES, one thread
    assert "rseq" not in [n for n in ("rseq",) if sc(k, "rseq", 0, 0, 0, 0) != -errno.ENOSYS]
    timex = g.alloc(208)
    assert sc(k, "adjtimex", timex) >= 0                     # a query
    k.mem.write(timex, struct.pack("<I", 1))
    assert sc(k, "adjtimex", timex) == -errno.EPERM


# --------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------

def test_mincore_mapped_and_unmapped(k, g, mem):
    vec = g.alloc(16)
    mem.write(BUF + 0x8000, b"x")                            # touch a page
    assert sc(k, "mincore", BUF + 0x8000, 0x2000, vec) == 0
    assert k.mem.read(vec, 1) == b"\1"
    assert sc(k, "mincore", UNMAPPED, 0x1000, vec) == -errno.ENOMEM
    assert sc(k, "mincore", BUF + 1, 0x1000, vec) == -errno.EINVAL
    assert sc(k, "mincore", BUF, 0x1000, UNMAPPED) == -errno.EFAULT
    assert sc(k, "mlock", BUF, 0x1000) == 0
    assert sc(k, "munlock", BUF, 0x1000) == 0
    assert sc(k, "mlock", UNMAPPED, 0x1000) == -errno.ENOMEM
    assert sc(k, "mlockall", 0) == -errno.EINVAL
    assert sc(k, "munlockall") == 0
    assert sc(k, "msync", BUF, 0x1000, 4) == 0
    assert sc(k, "msync", BUF, 0x1000, 5) == -errno.EINVAL
    assert sc(k, "msync", UNMAPPED, 0x1000, 4) == -errno.ENOMEM


# --------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------

def test_utimensat_changes_mtime(k, g, tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"data")
    times = g.bytes(struct.pack("<qqqq", 1_000_000, 5, 1_500_000_000, 123456789))
    assert sc(k, "utimensat", AT_FDCWD, g.str(f), times, 0) == 0
    st = os.stat(f)
    assert st.st_mtime_ns == 1_500_000_000 * 10**9 + 123456789
    assert st.st_atime_ns == 1_000_000 * 10**9 + 5
    omit = g.bytes(struct.pack("<qqqq", 0, (1 << 30) - 2, 42, 0))   # UTIME_OMIT for atime
    assert sc(k, "utimensat", AT_FDCWD, g.str(f), omit, 0) == 0
    assert os.stat(f).st_mtime_ns == 42 * 10**9 and os.stat(f).st_atime_ns == st.st_atime_ns
    fd = sc(k, "openat", AT_FDCWD, g.str(f), 0, 0)
    assert sc(k, "utimensat", fd, 0, 0, 0) == 0                       # futimens(fd, NULL)
    assert abs(os.stat(f).st_mtime - time.time()) < 60
    bad = g.bytes(struct.pack("<qqqq", 0, 10**9, 0, 0))
    assert sc(k, "utimensat", AT_FDCWD, g.str(f), bad, 0) == -errno.EINVAL
    assert sc(k, "utimensat", AT_FDCWD, g.str("/proc/self/comm"), 0, 0) == -errno.EACCES
    tv = g.bytes(struct.pack("<qqqq", 10, 0, 20, 500000))
    x86 = LinuxKernel(k.mem, X86_64_ABI, brk_start=0x20_0000, exe_path="/usr/bin/guest-prog")
    try:
        assert x86.syscall(X86_64_ABI.numbers["utimes"], [g.str(f), tv]) == 0
        assert os.stat(f).st_mtime_ns == 20 * 10**9 + 500_000_000
    finally:
        x86.close()


def test_file_calls(k, g, tmp_path):
    f = tmp_path / "g"
    f.write_bytes(b"0123456789")
    fd = sc(k, "openat", AT_FDCWD, g.str(f), 2, 0)       # O_RDWR
    assert sc(k, "fchown", fd, os.getuid(), -1) == 0
    assert sc(k, "fchownat", AT_FDCWD, g.str(f), -1, os.getgid(), 0) == 0
    assert sc(k, "flock", fd, 2) == 0                    # LOCK_EX
    assert sc(k, "flock", fd, 8) == 0                    # LOCK_UN
    assert sc(k, "flock", fd, 3) == -errno.EINVAL
    assert sc(k, "fallocate", fd, 0, 0, 4096) == 0
    assert os.stat(f).st_size == 4096
    assert sc(k, "fadvise64", fd, 0, 0, 4) == 0
    assert sc(k, "fsync", fd) == 0 and sc(k, "syncfs", fd) == 0 and sc(k, "sync") == 0
    assert sc(k, "truncate", g.str(f), 5) == 0 and os.stat(f).st_size == 5
    # preadv / pwritev2
    a, b = g.alloc(4), g.alloc(4)
    iov = g.bytes(struct.pack("<QQQQ", a, 2, b, 3))
    assert sc(k, "preadv", fd, iov, 2, 1, 0) == 5 - 1
    assert k.mem.read(a, 2) == b"12" and k.mem.read(b, 2) == b"34"
    k.mem.write(a, b"AB")
    assert sc(k, "pwritev2", fd, g.bytes(struct.pack("<QQ", a, 2)), 1, 0, 0, 0) == 2
    assert f.read_bytes() == b"AB234"
    assert sc(k, "preadv", fd, iov, 2, -1, 0) == -errno.EINVAL
    assert sc(k, "preadv", fd, g.bytes(struct.pack("<QQ", UNMAPPED, 4)), 1, 0, 0) == -errno.EFAULT
    # statfs
    sf = g.alloc(120)
    assert sc(k, "statfs", g.str(tmp_path), sf) == 0
    assert struct.unpack_from("<q", k.mem.read(sf, 8))[0] == os.statvfs(tmp_path).f_fsid or True
    assert struct.unpack_from("<q", k.mem.read(sf + 8, 8))[0] > 0         # f_bsize
    assert sc(k, "statfs", g.str("/proc/self"), sf) == 0
    assert struct.unpack_from("<q", k.mem.read(sf, 8))[0] == 0x9FA0
    assert sc(k, "fstatfs", fd, UNMAPPED) == -errno.EFAULT
    # xattrs: a missing one, and /proc has none
    v = g.alloc(64)
    r = sc(k, "getxattr", g.str(f), g.str("user.nope"), v, 64)
    assert r in (-errno.ENODATA, -errno.ENOTSUP)
    assert sc(k, "lgetxattr", g.str("/proc/self/status"), g.str("user.x"), v, 64) == -errno.ENODATA
    assert sc(k, "listxattr", g.str("/proc/self/status"), v, 64) == 0
    assert sc(k, "setxattr", g.str("/proc/self/status"), g.str("user.x"), v, 1, 0) == -errno.EACCES
    # close_range
    d1 = sc(k, "dup", fd)
    d2 = sc(k, "dup", fd)
    assert sc(k, "close_range", d1, d2, 4) == 0           # CLOEXEC
    assert sc(k, "fcntl", d1, 1, 0) == 1
    assert sc(k, "close_range", d1, 0xFFFFFFFF, 0) == 0
    assert sc(k, "fcntl", d2, 1, 0) == -errno.EBADF
    assert sc(k, "close_range", 5, 4, 0) == -errno.EINVAL
    # mknod: a FIFO yes, a device no
    assert sc(k, "mknodat", AT_FDCWD, g.str(tmp_path / "fifo"), 0o10644, 0) == 0
    assert (tmp_path / "fifo").is_fifo()
    assert sc(k, "mknodat", AT_FDCWD, g.str(tmp_path / "dev"), 0o20644, 0x0103) == -errno.EPERM


def test_pidfd_open(k, g):
    fd = sc(k, "pidfd_open", os.getpid(), 0)
    assert fd >= 0
    assert sc(k, "kcmp", os.getpid(), os.getpid(), 0, fd, fd) == 0
    assert sc(k, "pidfd_open", 1, 0) == -errno.ESRCH          # init: not a descendant
    assert sc(k, "pidfd_open", os.getppid(), 0) == -errno.ESRCH
    assert sc(k, "pidfd_open", 0, 0) == -errno.EINVAL
    assert sc(k, "kcmp", os.getpid(), 1, 0, 0, 0) == -errno.EPERM
    k.main_thread.sigmask = bit(SIGUSR1)
    assert sc(k, "pidfd_send_signal", fd, SIGUSR1, 0, 0) == 0
    assert k.pending_signals & bit(SIGUSR1)


# --------------------------------------------------------------------------
# End to end: a guest C program under aotrun --engine jit and qemu-riscv64
# --------------------------------------------------------------------------

GUEST_C = r"""
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <poll.h>
#include <unistd.h>
#include <sys/signalfd.h>

static volatile sig_atomic_t fired;
static volatile int got_code, got_value, got_signo;

static void on_timer(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    got_signo = sig; got_code = si->si_code; got_value = si->si_value.sival_int;
    fired++;
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_timer;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGRTMIN, &sa, NULL);

    timer_t t;
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = SIGRTMIN;
    sev.sigev_value.sival_int = 4242;
    if (timer_create(CLOCK_MONOTONIC, &sev, &t) != 0) { perror("timer_create"); return 1; }
    struct itimerspec its = {{0, 10000000}, {0, 10000000}};
    if (timer_settime(t, 0, &its, NULL) != 0) { perror("timer_settime"); return 1; }
    while (fired < 3) {
        for (volatile int i = 0; i < 100000; i++) ;      /* spin: no system calls */
    }
    struct itimerspec off = {{0, 0}, {0, 0}};
    timer_settime(t, 0, &off, NULL);
    printf("handler: fired>=3 signo_ok=%d code=%d value=%d\n", got_signo == SIGRTMIN, got_code,
           got_value);
    timer_delete(t);

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR1);
    sigaddset(&mask, SIGALRM);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int fd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (fd < 0) { perror("signalfd"); return 1; }
    struct pollfd p = {fd, POLLIN, 0};
    printf("poll before: %d\n", poll(&p, 1, 0));
    kill(getpid(), SIGUSR1);
    printf("poll after: %d revents_in=%d\n", poll(&p, 1, 1000), !!(p.revents & POLLIN));
    struct signalfd_siginfo si;
    ssize_t n = read(fd, &si, sizeof si);
    printf("read %zd signo=%u code=%d pid_ok=%d\n", n, si.ssi_signo, si.ssi_code,
           si.ssi_pid == (uint32_t)getpid());

    /* a timer whose signal goes to the signalfd */
    timer_t t2;
    sev.sigev_signo = SIGALRM;
    sev.sigev_value.sival_int = 99;
    timer_create(CLOCK_REALTIME, &sev, &t2);
    struct itimerspec once = {{0, 0}, {0, 20000000}};
    timer_settime(t2, 0, &once, NULL);
    n = read(fd, &si, sizeof si);
    printf("timer read %zd signo=%u code=%d int=%d overrun=%u\n", n, si.ssi_signo, si.ssi_code,
           si.ssi_int, si.ssi_overrun);
    struct itimerspec left;
    timer_gettime(t2, &left);
    printf("disarmed: %d\n", left.it_value.tv_sec == 0 && left.it_value.tv_nsec == 0);
    return 0;
}
"""


def _aotrun() -> list[str] | None:
    exe = shutil.which("aotrun") or str(Path(sys.executable).parent / "aotrun")
    return [exe] if os.path.exists(exe) else None


def test_end_to_end_timer_and_signalfd_jit_vs_qemu(tmp_path):
    cc = shutil.which("riscv64-linux-gnu-gcc")
    if cc is None:
        print("skipped: riscv64-linux-gnu-gcc is not installed")
        pytest.skip("riscv64-linux-gnu-gcc is not installed")
    qemu = shutil.which("qemu-riscv64")
    aotrun = _aotrun()
    if aotrun is None:
        print("skipped: aotrun is not installed")
        pytest.skip("aotrun is not installed")
    src = tmp_path / "timers.c"
    src.write_text(GUEST_C)
    exe = tmp_path / "timers"
    subprocess.run([cc, "-O1", "-static", "-o", str(exe), str(src)], check=True)
    got = subprocess.run([*aotrun, "--engine", "jit", str(exe)], capture_output=True, timeout=120)
    assert got.returncode == 0, got.stderr.decode(errors="replace")
    out = got.stdout.decode()
    assert "handler: fired>=3 signo_ok=1 code=-2 value=4242" in out
    assert "read 128 signo=10 code=0 pid_ok=1" in out
    assert "timer read 128 signo=14 code=-2 int=99 overrun=0" in out
    if qemu is None:
        print("qemu-riscv64 missing: compared with the expected output only")
        return
    ref = subprocess.run([qemu, str(exe)], capture_output=True, timeout=120)
    assert ref.returncode == 0, ref.stderr.decode(errors="replace")
    assert out == ref.stdout.decode()


def test_print_implemented_counts():
    from runtime.linux import numbers
    from runtime.linux.syscall_base import SYSCALLS

    tables = {"riscv64": {**numbers.ASM_GENERIC, **numbers.RISCV64_EXTRA},
              "x86_64": dict(numbers.X86_64),
              "aarch64": {**numbers.ASM_GENERIC, **numbers.AARCH64_EXTRA}}
    for isa, tab in tables.items():
        n = len(set(tab) & set(SYSCALLS))
        print(f"implemented system calls, {isa}: {n} of {len(tab)}")
        assert n > 200
