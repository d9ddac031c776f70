"""System calls that wait on descriptors or make new kinds of them: poll,
select, epoll, eventfd, timerfd, inotify, AF_UNIX sockets, memfd,
copy_file_range/sendfile/splice/tee/vmsplice and membarrier (a
``LinuxKernel`` mixin; see runtime/linux/syscall_base.py).

Design choices, and why:

* **Host objects underneath.** Every descriptor made here is a real host
  descriptor (an epoll instance, an eventfd, a timerfd, a socket, a memfd)
  owned by the guest's ``FdTable``, so reads, writes, ``fcntl``, ``dup``,
  ``close`` and ``mmap`` in kernel.py work on them unchanged, and the host
  kernel keeps their state (counters, expirations, buffers, queues).  Host
  descriptors are always made close-on-exec; the guest's FD_CLOEXEC bit is
  the table's.

* **epoll keeps no state of its own.**  A guest epoll fd is a host epoll
  fd; ``epoll_ctl`` registers the *host* fd behind the guest fd and stores
  the guest's 64-bit ``data`` as the host event's data, so the host returns
  it verbatim and nothing here maps host fds back to guest fds.  Linux
  keys an interest-list entry by (open file, fd number); host fds are
  one-to-one with guest fds and share their open files, so closing, dup'ing
  and re-adding behave as they do on Linux (an entry lives as long as its
  open file), and guest threads calling ``epoll_ctl``/``epoll_wait``
  concurrently are serialised by the host kernel — there is no compound
  update here that a lock would have to protect.  Only the layout of
  ``struct epoll_event`` differs per ISA (``SyscallAbi.epoll_event_size``).

* **Every blocking wait is interruptible.**  ``_host_poll`` waits on the
  host fds *and* the calling thread's ``wake_fd`` (runtime/linux/threads.py),
  which is made readable when a signal is sent to the thread; a wait that
  finds no ready descriptor and a signal pending for the thread returns
  -EINTR (Linux's order: ready descriptors win; a zero timeout never gives
  EINTR).  The wake eventfd is never consumed here (its owner clears it).
  A notification without a pending signal (stale, or for a blocked signal)
  drops the wake fd from the rest of that wait, which then checks for
  signals every 20 ms.  Socket calls that block on Linux are done with
  MSG_DONTWAIT on the host and, when the guest's socket is blocking, an
  interruptible wait for readiness (honouring SO_RCVTIMEO/SO_SNDTIMEO);
  ``accept`` waits for POLLIN first, then accepts (another thread could
  take the connection in between: that accept then blocks on the host as
  a plain blocking accept would); a blocking ``connect`` is tried with the
  socket briefly non-blocking and retried while the listener's backlog is
  full.  ``splice``/``tee``/``vmsplice`` run with SPLICE_F_NONBLOCK on the
  host and wait the same way; ``sendfile`` and ``copy_file_range`` have no
  such flag and block as the host fds do (as read/write in kernel.py do).
  No lock is held while waiting.

* **Sockets: AF_UNIX only; the guest does not reach the network.**
  ``socket``/``socketpair`` make AF_UNIX sockets only (any other family is
  -EAFNOSUPPORT, which programs treat as "no such protocol here": glibc's
  resolver and getaddrinfo fall back cleanly), and ``bind``/``connect``/
  ``sendto``/``sendmsg`` with an address are refused (-EAFNOSUPPORT) on any
  socket whose family is not AF_UNIX — a socket the guest inherited or was
  sent (stdin as a TCP connection under inetd, say) can still be read and
  written, but not pointed anywhere.  AF_UNIX path names resolve in the
  host file system with the user's rights, like ``open`` (aotrun is not a
  file-system sandbox, docs/security.md); a path inside ``/proc`` is EACCES
  (the guest's ``/proc`` is a view, ``ProcView.guard``).
  ``SCM_RIGHTS`` carries *host* fds: ``sendmsg`` translates each guest fd
  through the guest's table (EBADF for one it lacks, so a guest can never
  send a runtime fd), ``recvmsg`` installs every received host fd in the
  guest's table and rewrites the numbers (MSG_CTRUNC when the table is
  full, as Linux).  Only the control messages AF_UNIX knows at SOL_SOCKET
  are accepted (SCM_RIGHTS, SCM_CREDENTIALS).  ``setsockopt``/``getsockopt``
  pass a whitelist of SOL_SOCKET options whose values are plain data:
  options whose value holds a pointer (socket filters, BPF programs) would
  make the host kernel read runtime memory at a guest-chosen address, so
  they are -ENOPROTOOPT, as are other levels.

* ``membarrier``: guest threads are host threads of this process, running
  translated code in parallel, so the host's own membarrier gives the
  guest exactly the barrier it asks for (a no-op would not).  QUERY reports
  the commands the host supports among those served: GLOBAL, the
  (REGISTER_)GLOBAL_EXPEDITED and (REGISTER_)PRIVATE_EXPEDITED pairs and
  the SYNC_CORE pair, which also flushes the guest's instruction cache
  as ``riscv_flush_icache`` does; not the RSEQ pair (rseq is ENOSYS).

* ``ppoll``/``pselect6``/``epoll_pwait(2)`` install the guest's mask as the
  calling thread's ``sigmask`` for the wait and restore the old one
  afterwards, before the call returns.

Not here: signalfd (it belongs with the signal code), pidfd_*, io_uring,
userfaultfd and fanotify (-ENOSYS).
"""

from __future__ import annotations

import ctypes
import errno as _errno
import fcntl as _fcntl
import os
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from aotc.errors import GuestMemoryError
from runtime.guest_memory import PROT_READ, PROT_WRITE
from runtime.host_libc import load_libc
from runtime.linux.syscall_base import Errno, s32, s64, syscall

__all__ = ["IoCalls"]

# -- constants (identical on every LP64 Linux ISA we serve and the host) -----
POLLIN, POLLPRI, POLLOUT, POLLERR, POLLHUP, POLLNVAL = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20
POLLRDNORM, POLLRDBAND, POLLWRNORM, POLLWRBAND = 0x40, 0x80, 0x100, 0x200
# Linux's select ↔ poll translation (fs/select.c).
_POLLIN_SET = POLLRDNORM | POLLRDBAND | POLLIN | POLLHUP | POLLERR
_POLLOUT_SET = POLLWRBAND | POLLWRNORM | POLLOUT | POLLERR
_POLLEX_SET = POLLPRI

O_NONBLOCK = 0o4000
O_CLOEXEC = 0o2000000
O_ACCMODE = 3
EPOLL_CLOEXEC = O_CLOEXEC
EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD = 1, 2, 3
EFD_SEMAPHORE, EFD_NONBLOCK, EFD_CLOEXEC = 1, O_NONBLOCK, O_CLOEXEC
TFD_NONBLOCK, TFD_CLOEXEC = O_NONBLOCK, O_CLOEXEC
IN_NONBLOCK, IN_CLOEXEC = O_NONBLOCK, O_CLOEXEC
MFD_CLOEXEC = 1
MFD_NAME_MAX = 249

AF_UNSPEC, AF_UNIX = 0, 1
SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET = 1, 2, 5
SOCK_NONBLOCK, SOCK_CLOEXEC = O_NONBLOCK, O_CLOEXEC
SOL_SOCKET = 1
SCM_RIGHTS, SCM_CREDENTIALS, SCM_PIDFD = 1, 2, 4
SCM_MAX_FD = 253
MSG_PEEK, MSG_TRUNC, MSG_DONTWAIT, MSG_WAITALL = 0x2, 0x20, 0x40, 0x100
MSG_CTRUNC = 0x8
MSG_WAITFORONE = 0x10000
MSG_CMSG_CLOEXEC = 0x40000000
SO_TYPE, SO_DOMAIN = 3, 39
SO_RCVTIMEO_OLD, SO_SNDTIMEO_OLD = 20, 21
SO_PEERPIDFD = 77
SOCKADDR_MAX = 128                     # sizeof(struct sockaddr_storage)
UIO_MAXIOV = 1024
OPTMEM_MAX = 128 << 10                 # bound on control-message buffers (Linux: optmem_max)
OPTVAL_MAX = 4096

# SOL_SOCKET options whose value is plain data (no pointers), asm-generic
# numbering (x86_64 uses it too): 1-21 debug … sndtimeo_old (incl. linger,
# passcred, peercred), 29-43 timestamp_old … nofcs (acceptconn, peersec,
# buffer sizes, protocol, domain, peek_off), 46 busy_poll, 49
# incoming_cpu, 57 cookie, 59-61 peergroups zerocopy txtime, 63-67 the
# *_new timestamp and timeout options, 69-72 prefer_busy_poll …
# buf_lock, 74-77 txrehash rcvmark passpidfd peerpidfd.  Not: filters and
# BPF (26-27, 44, 48, 50-52, 68: pointers or programs), bindtodevice and
# bindtoifindex (25, 62), peername (28, an address).
_SOCKOPTS = frozenset([*range(1, 22), *range(29, 44), 46, 49, 57, 59, 60, 61,
                       *range(63, 68), *range(69, 73), *range(74, 78)])

MEMBARRIER_CMD_QUERY = 0
MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE = 32
# GLOBAL, GLOBAL_EXPEDITED, REGISTER_GLOBAL_EXPEDITED, PRIVATE_EXPEDITED,
# REGISTER_PRIVATE_EXPEDITED, PRIVATE_EXPEDITED_SYNC_CORE, REGISTER_..._SYNC_CORE.
_MEMBARRIER_SERVED = 1 | 2 | 4 | 8 | 16 | 32 | 64
_HOST_NR_MEMBARRIER = 324              # x86_64

SPLICE_F_NONBLOCK = 2
SIGKILL_STOP = (1 << 8) | (1 << 18)    # sigmask bits of SIGKILL and SIGSTOP
AT_FDCWD = -100
RLIMIT_NOFILE = 7
_STALE_WAKE_SLICE_NS = 20_000_000
_CONNECT_RETRY_NS = 10_000_000
_MAX_WAIT_NS = (1 << 31) * 1_000_000_000   # a ppoll timespec the host accepts
_EPOLL_BATCH = 1024                    # events fetched per epoll_wait (fewer is legal)

_HOST_EPOLL = struct.Struct("<IQ")     # the host's (x86_64) packed struct epoll_event
_CMSGHDR = struct.Struct("<Qii")       # cmsg_len, cmsg_level, cmsg_type
_MSGHDR = struct.Struct("<QI4xQQQQi4x")  # name, namelen, iov, iovlen, control, controllen, flags
_MMSGHDR_SIZE = 64                     # struct msghdr + unsigned msg_len, padded


def _cmsg_align(n: int) -> int:
    return (n + 7) & ~7


class _PollFd(ctypes.Structure):
    _fields_ = [("fd", ctypes.c_int), ("events", ctypes.c_short), ("revents", ctypes.c_short)]


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32),
                ("msg_iov", ctypes.c_void_p), ("msg_iovlen", ctypes.c_size_t),
                ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                ("msg_flags", ctypes.c_int)]


# Our own CDLL instance, so our argtypes never clash with kernel.py's.
_libc = load_libc()
_c = ctypes
_SIGS: dict[str, tuple[list, type]] = {
    "ppoll": ([_c.c_void_p, _c.c_ulong, _c.c_void_p, _c.c_void_p], _c.c_int),
    "epoll_create1": ([_c.c_int], _c.c_int),
    "epoll_ctl": ([_c.c_int, _c.c_int, _c.c_int, _c.c_void_p], _c.c_int),
    "epoll_wait": ([_c.c_int, _c.c_void_p, _c.c_int, _c.c_int], _c.c_int),
    "eventfd": ([_c.c_uint, _c.c_int], _c.c_int),
    "timerfd_create": ([_c.c_int, _c.c_int], _c.c_int),
    "timerfd_settime": ([_c.c_int, _c.c_int, _c.c_void_p, _c.c_void_p], _c.c_int),
    "timerfd_gettime": ([_c.c_int, _c.c_void_p], _c.c_int),
    "inotify_init1": ([_c.c_int], _c.c_int),
    "inotify_add_watch": ([_c.c_int, _c.c_char_p, _c.c_uint32], _c.c_int),
    "inotify_rm_watch": ([_c.c_int, _c.c_int], _c.c_int),
    "socket": ([_c.c_int, _c.c_int, _c.c_int], _c.c_int),
    "socketpair": ([_c.c_int, _c.c_int, _c.c_int, _c.c_void_p], _c.c_int),
    "bind": ([_c.c_int, _c.c_void_p, _c.c_uint32], _c.c_int),
    "connect": ([_c.c_int, _c.c_void_p, _c.c_uint32], _c.c_int),
    "listen": ([_c.c_int, _c.c_int], _c.c_int),
    "accept4": ([_c.c_int, _c.c_void_p, _c.c_void_p, _c.c_int], _c.c_int),
    "sendto": ([_c.c_int, _c.c_void_p, _c.c_size_t, _c.c_int, _c.c_void_p, _c.c_uint32],
               _c.c_ssize_t),
    "recvfrom": ([_c.c_int, _c.c_void_p, _c.c_size_t, _c.c_int, _c.c_void_p, _c.c_void_p],
                 _c.c_ssize_t),
    "sendmsg": ([_c.c_int, _c.c_void_p, _c.c_int], _c.c_ssize_t),
    "recvmsg": ([_c.c_int, _c.c_void_p, _c.c_int], _c.c_ssize_t),
    "shutdown": ([_c.c_int, _c.c_int], _c.c_int),
    "getsockopt": ([_c.c_int, _c.c_int, _c.c_int, _c.c_void_p, _c.c_void_p], _c.c_int),
    "setsockopt": ([_c.c_int, _c.c_int, _c.c_int, _c.c_void_p, _c.c_uint32], _c.c_int),
    "getsockname": ([_c.c_int, _c.c_void_p, _c.c_void_p], _c.c_int),
    "getpeername": ([_c.c_int, _c.c_void_p, _c.c_void_p], _c.c_int),
    "copy_file_range": ([_c.c_int, _c.c_void_p, _c.c_int, _c.c_void_p, _c.c_size_t, _c.c_uint],
                        _c.c_ssize_t),
    "sendfile": ([_c.c_int, _c.c_int, _c.c_void_p, _c.c_size_t], _c.c_ssize_t),
    "splice": ([_c.c_int, _c.c_void_p, _c.c_int, _c.c_void_p, _c.c_size_t, _c.c_uint],
               _c.c_ssize_t),
    "tee": ([_c.c_int, _c.c_int, _c.c_size_t, _c.c_uint], _c.c_ssize_t),
    "vmsplice": ([_c.c_int, _c.c_void_p, _c.c_size_t, _c.c_uint], _c.c_ssize_t),
    "syscall": ([_c.c_long, _c.c_long, _c.c_long, _c.c_long], _c.c_long),
}
for _name, (_args, _res) in _SIGS.items():
    _fn = getattr(_libc, _name)
    _fn.argtypes = _args
    _fn.restype = _res


def _call(fn: Callable[..., int], *args: object) -> int:
    """A libc call's result, or ``-errno`` (the host's EINTR is reported as such)."""
    r = fn(*args)
    if r < 0:
        return -(ctypes.get_errno() or _errno.EIO)
    return r


def _check(fn: Callable[..., int], *args: object) -> int:
    """A libc call's result; ``Errno`` from its errno."""
    r = _call(fn, *args)
    if r < 0:
        raise Errno(-r)
    return r


def _now() -> int:
    return time.monotonic_ns()


def _fl(hfd: int) -> int:
    return _fcntl.fcntl(hfd, _fcntl.F_GETFL)


class IoCalls:
    """poll/select/epoll, eventfd/timerfd/inotify, AF_UNIX sockets, memfd,
    in-kernel copies and membarrier (mixed into ``LinuxKernel``)."""

    # ======================================================================
    # The one wait primitive
    # ======================================================================
    def _host_poll(self, fds: Sequence[tuple[int, int]], deadline: int | None) -> list[int]:
        """Wait until one of the host ``(fd, events)`` is ready or ``deadline``
        (``time.monotonic_ns``; None: forever) passes; return each fd's revents
        (all 0 on timeout).  Errno(EINTR) when nothing is ready and a signal is
        pending for the calling thread (its ``wake_fd`` fires on a signal)."""
        n = len(fds)
        arr = (_PollFd * (n + 1))()
        for i, (fd, ev) in enumerate(fds):
            arr[i].fd = fd
            arr[i].events = ev
        wake = self.current.wake_fd
        arr[n].fd = wake
        arr[n].events = POLLIN
        use_wake = wake >= 0
        ts = _Timespec()
        while True:
            pending = self.signal_pending()
            now = _now()
            timed_out = deadline is not None and now >= deadline
            if pending or timed_out:
                wait: int | None = 0
            else:
                wait = None if deadline is None else deadline - now
                if not use_wake:
                    wait = _STALE_WAKE_SLICE_NS if wait is None else min(wait, _STALE_WAKE_SLICE_NS)
            if wait is None:
                tsp = None
            else:
                wait = min(wait, _MAX_WAIT_NS)
                ts.tv_sec, ts.tv_nsec = divmod(wait, 1_000_000_000)
                tsp = ctypes.byref(ts)
            for i in range(n + 1):
                arr[i].revents = 0
            r = _call(_libc.ppoll, arr, n + (1 if use_wake else 0), tsp, None)
            if r < 0 and r != -_errno.EINTR:
                raise Errno(-r)
            if r > 0:
                revs = [arr[i].revents & 0xFFFF for i in range(n)]
                if any(revs):
                    return revs
            if timed_out:
                return [0] * n
            if pending or self.signal_pending():
                raise Errno(_errno.EINTR)
            if r > 0 and use_wake and arr[n].revents:
                use_wake = False               # stale notification: see the module docstring

    @staticmethod
    def _deadline_after(ns: int | None) -> int | None:
        return None if ns is None else _now() + ns

    def _read_timespec_deadline(self, tsp: int) -> int | None:
        """A guest relative timespec (NULL: forever) as a deadline; EINVAL if malformed."""
        if not tsp:
            return None
        sec, nsec = self.abi.unpack_timespec(self.mem.read(tsp, 16))
        if sec < 0 or not 0 <= nsec < 1_000_000_000:
            raise Errno(_errno.EINVAL)
        return _now() + sec * 1_000_000_000 + nsec

    def _put_remaining(self, addr: int, deadline: int, usec: bool) -> None:
        """poll_select_finish: write back the time left (a failed write is ignored, as Linux)."""
        left = max(0, deadline - _now())
        sec, ns = divmod(left, 1_000_000_000)
        try:
            self.mem.write(addr, self.abi.pack_timespec(sec, ns // 1000 if usec else ns))
        except GuestMemoryError:            # the result stands
            pass

    @contextmanager
    def _sigmask_during(self, mask_addr: int, sigsetsize: int) -> Iterator[None]:
        """The guest's mask (if any) as the thread's signal mask for the wait."""
        if not mask_addr:
            yield
            return
        if sigsetsize != 8:
            raise Errno(_errno.EINVAL)
        mask = self.mem.read_u64(mask_addr) & ~SIGKILL_STOP
        t = self.current
        old = t.sigmask
        t.sigmask = mask
        try:
            yield
        finally:
            t.sigmask = old

    def _nonblocking(self, hfd: int) -> bool:
        return bool(_fl(hfd) & O_NONBLOCK)

    # ======================================================================
    # poll / ppoll
    # ======================================================================
    def _poll(self, fds: int, nfds: int, deadline: int | None) -> int:
        if nfds > self.rlimits.get(RLIMIT_NOFILE, (1024, 1024))[0] or nfds > 1 << 20:
            raise Errno(_errno.EINVAL)
        raw = bytearray(self.mem.read(fds, 8 * nfds))
        self._need(fds, 8 * nfds, PROT_WRITE)
        entries = list(struct.iter_unpack("<ihh", raw))
        host: list[tuple[int, int]] = []
        preset = [0] * nfds
        for i, (gfd, events, _rev) in enumerate(entries):
            if gfd < 0:
                host.append((-1, 0))
            elif gfd not in self.fds:
                host.append((-1, 0))
                preset[i] = POLLNVAL
            else:
                host.append((self.fds.host(gfd), events & 0xFFFF))
        if any(preset):
            deadline = _now()                  # something is "ready": do not block
        revs = self._host_poll(host, deadline)
        count = 0
        for i in range(nfds):
            rev = preset[i] or revs[i]
            if rev:
                count += 1
            struct.pack_into("<H", raw, 8 * i + 6, rev & 0xFFFF)
        if nfds:
            self.mem.write(fds, bytes(raw))
        return count

    @syscall("poll", "p", "u", "d")
    def sys_poll(self, fds: int, nfds: int, timeout: int) -> int:
        ms = s32(timeout)
        return self._poll(fds, nfds & 0xFFFFFFFF,
                          None if ms < 0 else self._deadline_after(ms * 1_000_000))

    @syscall("ppoll", "p", "u", "p", "p", "u")
    def sys_ppoll(self, fds: int, nfds: int, tsp: int, sigmask: int, sigsetsize: int) -> int:
        deadline = self._read_timespec_deadline(tsp)
        zero = deadline is not None and not any(self.mem.read(tsp, 16))
        try:
            with self._sigmask_during(sigmask, sigsetsize):
                return self._poll(fds, nfds & 0xFFFFFFFF, deadline)
        finally:
            if deadline is not None and not zero:
                self._put_remaining(tsp, deadline, usec=False)

    # ======================================================================
    # select / pselect6
    # ======================================================================
    def _select(self, nfds: int, rp: int, wp: int, ep: int, deadline: int | None) -> int:
        n = s32(nfds)
        if n < 0:
            raise Errno(_errno.EINVAL)
        n = min(n, self.fds.limit)
        nbytes = (n + 63) // 64 * 8
        mask = (1 << n) - 1
        sets = []
        for p in (rp, wp, ep):
            if p and nbytes:
                sets.append(int.from_bytes(self.mem.read(p, nbytes), "little") & mask)
                self._need(p, nbytes, PROT_WRITE)
            else:
                sets.append(0)
        rset, wset, eset = sets
        want: list[tuple[int, int]] = []
        host: list[tuple[int, int]] = []
        bits = rset | wset | eset
        while bits:
            low = bits & -bits
            fd = low.bit_length() - 1
            bits ^= low
            ev = ((_POLLIN_SET if rset & low else 0) | (_POLLOUT_SET if wset & low else 0)
                  | (_POLLEX_SET if eset & low else 0))
            want.append((fd, ev))
            host.append((self.fds.host(fd), ev))      # EBADF for a fd the guest lacks
        revs = self._host_poll(host, deadline)
        out = [0, 0, 0]
        count = 0
        for (fd, ev), rev in zip(want, revs):
            for k, sel in enumerate((_POLLIN_SET, _POLLOUT_SET, _POLLEX_SET)):
                if ev & sel and rev & sel:
                    out[k] |= 1 << fd
                    count += 1
        for p, res in zip((rp, wp, ep), out):
            if p and nbytes:
                self.mem.write(p, res.to_bytes(nbytes, "little"))
        return count

    @syscall("select", "d", "p", "p", "p", "p")
    def sys_select(self, nfds: int, rp: int, wp: int, ep: int, tvp: int) -> int:
        deadline = None
        zero = False
        if tvp:
            sec, usec = self.abi.unpack_timeval(self.mem.read(tvp, 16))
            if sec < 0 or usec < 0:
                raise Errno(_errno.EINVAL)
            sec += usec // 1_000_000
            ns = sec * 1_000_000_000 + usec % 1_000_000 * 1000
            zero = ns == 0
            deadline = _now() + ns
        try:
            return self._select(nfds, rp, wp, ep, deadline)
        finally:
            if deadline is not None and not zero:
                self._put_remaining(tvp, deadline, usec=True)

    @syscall("pselect6", "d", "p", "p", "p", "p", "p")
    def sys_pselect6(self, nfds: int, rp: int, wp: int, ep: int, tsp: int, sig: int) -> int:
        deadline = self._read_timespec_deadline(tsp)
        zero = deadline is not None and not any(self.mem.read(tsp, 16))
        mask_addr = size = 0
        if sig:
            mask_addr, size = struct.unpack("<QQ", self.mem.read(sig, 16))
        try:
            with self._sigmask_during(mask_addr, size):
                return self._select(nfds, rp, wp, ep, deadline)
        finally:
            if deadline is not None and not zero:
                self._put_remaining(tsp, deadline, usec=False)

    # ======================================================================
    # epoll
    # ======================================================================
    def _epoll_new(self, cloexec: bool) -> int:
        return self.fds.add(_check(_libc.epoll_create1, EPOLL_CLOEXEC), cloexec=cloexec)

    @syscall("epoll_create", "d")
    def sys_epoll_create(self, size: int) -> int:
        if s32(size) <= 0:
            raise Errno(_errno.EINVAL)
        return self._epoll_new(False)

    @syscall("epoll_create1", "x")
    def sys_epoll_create1(self, flags: int) -> int:
        flags &= 0xFFFFFFFF
        if flags & ~EPOLL_CLOEXEC:
            raise Errno(_errno.EINVAL)
        return self._epoll_new(bool(flags & EPOLL_CLOEXEC))

    @syscall("epoll_ctl", "fd", "d", "fd", "p")
    def sys_epoll_ctl(self, epfd: int, op: int, fd: int, event: int) -> int:
        op = s32(op)
        ev = None
        if op != EPOLL_CTL_DEL:                     # Linux copies the event for any other op
            events, data = self.abi.unpack_epoll_event(
                self.mem.read(event, self.abi.epoll_event_size))
            ev = ctypes.create_string_buffer(_HOST_EPOLL.pack(events, data), _HOST_EPOLL.size)
        hep = self.fds.host(s32(epfd))
        hfd = self.fds.host(s32(fd))
        return _check(_libc.epoll_ctl, hep, op, hfd, ev)

    def _epoll_wait(self, epfd: int, events: int, maxevents: int, deadline: int | None) -> int:
        size = self.abi.epoll_event_size
        m = s32(maxevents)
        if m <= 0 or m > 0x7FFFFFFF // size:
            raise Errno(_errno.EINVAL)
        hep = self.fds.host(s32(epfd))
        self._access_ok(events, m * size)
        self._need(events, m * size, PROT_WRITE)
        batch = min(m, _EPOLL_BATCH)
        buf = ctypes.create_string_buffer(_HOST_EPOLL.size * batch)
        first = True
        while True:
            n = _check(_libc.epoll_wait, hep, buf, batch, 0)
            if n > 0:
                out = b"".join(self.abi.pack_epoll_event(*_HOST_EPOLL.unpack_from(buf, 12 * i))
                               for i in range(n))
                self.mem.write(events, out)
                return n
            if not first and deadline is not None and _now() >= deadline:
                return 0
            first = False
            if not self._host_poll([(hep, POLLIN)], deadline)[0]:
                return 0

    @syscall("epoll_wait", "fd", "p", "d", "d")
    def sys_epoll_wait(self, epfd: int, events: int, maxevents: int, timeout: int) -> int:
        ms = s32(timeout)
        return self._epoll_wait(epfd, events, maxevents,
                                None if ms < 0 else self._deadline_after(ms * 1_000_000))

    @syscall("epoll_pwait", "fd", "p", "d", "d", "p", "u")
    def sys_epoll_pwait(self, epfd: int, events: int, maxevents: int, timeout: int,
                        sigmask: int, sigsetsize: int) -> int:
        ms = s32(timeout)
        deadline = None if ms < 0 else self._deadline_after(ms * 1_000_000)
        with self._sigmask_during(sigmask, sigsetsize):
            return self._epoll_wait(epfd, events, maxevents, deadline)

    @syscall("epoll_pwait2", "fd", "p", "d", "p", "p", "u")
    def sys_epoll_pwait2(self, epfd: int, events: int, maxevents: int, tsp: int,
                         sigmask: int, sigsetsize: int) -> int:
        deadline = self._read_timespec_deadline(tsp)
        with self._sigmask_during(sigmask, sigsetsize):
            return self._epoll_wait(epfd, events, maxevents, deadline)

    # ======================================================================
    # eventfd, timerfd, inotify, memfd
    # ======================================================================
    @syscall("eventfd2", "u", "x")
    def sys_eventfd2(self, initval: int, flags: int) -> int:
        flags &= 0xFFFFFFFF
        if flags & ~(EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC):
            raise Errno(_errno.EINVAL)
        hfd = _check(_libc.eventfd, initval & 0xFFFFFFFF, (flags & ~EFD_CLOEXEC) | EFD_CLOEXEC)
        return self.fds.add(hfd, cloexec=bool(flags & EFD_CLOEXEC))

    @syscall("eventfd", "u")
    def sys_eventfd(self, initval: int) -> int:
        return self.sys_eventfd2(initval, 0)

    @syscall("timerfd_create", "d", "x")
    def sys_timerfd_create(self, clockid: int, flags: int) -> int:
        flags &= 0xFFFFFFFF
        if flags & ~(TFD_NONBLOCK | TFD_CLOEXEC):
            raise Errno(_errno.EINVAL)
        hfd = _check(_libc.timerfd_create, s32(clockid), (flags & TFD_NONBLOCK) | TFD_CLOEXEC)
        return self.fds.add(hfd, cloexec=bool(flags & TFD_CLOEXEC))

    @syscall("timerfd_settime", "fd", "x", "p", "p")
    def sys_timerfd_settime(self, fd: int, flags: int, new: int, old: int) -> int:
        hfd = self.fds.host(s32(fd))
        raw = self.mem.read(new, 32)                # struct itimerspec: same on every LP64 ISA
        if old:
            self._need(old, 32, PROT_WRITE)
        nbuf = ctypes.create_string_buffer(raw, 32)
        obuf = ctypes.create_string_buffer(32)
        _check(_libc.timerfd_settime, hfd, s32(flags), nbuf, obuf)
        if old:
            self.mem.write(old, obuf.raw)
        return 0

    @syscall("timerfd_gettime", "fd", "p")
    def sys_timerfd_gettime(self, fd: int, cur: int) -> int:
        hfd = self.fds.host(s32(fd))
        self._need(cur, 32, PROT_WRITE)
        buf = ctypes.create_string_buffer(32)
        _check(_libc.timerfd_gettime, hfd, buf)
        self.mem.write(cur, buf.raw)
        return 0

    @syscall("inotify_init1", "x")
    def sys_inotify_init1(self, flags: int) -> int:
        flags &= 0xFFFFFFFF
        if flags & ~(IN_NONBLOCK | IN_CLOEXEC):
            raise Errno(_errno.EINVAL)
        hfd = _check(_libc.inotify_init1, (flags & IN_NONBLOCK) | IN_CLOEXEC)
        return self.fds.add(hfd, cloexec=bool(flags & IN_CLOEXEC))

    @syscall("inotify_init")
    def sys_inotify_init(self) -> int:
        return self.sys_inotify_init1(0)

    @syscall("inotify_add_watch", "fd", "path", "x")
    def sys_inotify_add_watch(self, fd: int, path: int, mask: int) -> int:
        hfd = self.fds.host(s32(fd))
        p = self._path(path)
        self.procfs.guard(AT_FDCWD, p)              # not the host's /proc
        return _check(_libc.inotify_add_watch, hfd, p, mask & 0xFFFFFFFF)

    @syscall("inotify_rm_watch", "fd", "d")
    def sys_inotify_rm_watch(self, fd: int, wd: int) -> int:
        return _check(_libc.inotify_rm_watch, self.fds.host(s32(fd)), s32(wd))

    @syscall("memfd_create", "path", "x")
    def sys_memfd_create(self, name: int, flags: int) -> int:
        try:
            raw = self.mem.read_cstring(name, MFD_NAME_MAX + 1)
        except GuestMemoryError:
            self.mem.read(name, MFD_NAME_MAX + 1)       # EFAULT if unreadable,
            raise Errno(_errno.EINVAL) from None        # else too long
        flags &= 0xFFFFFFFF
        hfd = os.memfd_create(os.fsdecode(raw), flags | MFD_CLOEXEC)
        return self.fds.add(hfd, cloexec=bool(flags & MFD_CLOEXEC))

    # ======================================================================
    # In-kernel copies
    # ======================================================================
    def _read_off(self, addr: int) -> ctypes.c_int64 | None:
        if not addr:
            return None
        self._need(addr, 8, PROT_WRITE)
        return ctypes.c_int64(s64(self.mem.read_u64(addr)))

    def _write_off(self, addr: int, off: ctypes.c_int64 | None) -> None:
        if off is not None:
            self.mem.write_u64(addr, off.value)

    @staticmethod
    def _ref(off: ctypes.c_int64 | None) -> object:
        return None if off is None else ctypes.byref(off)

    @syscall("copy_file_range", "fd", "p", "fd", "p", "u", "x")
    def sys_copy_file_range(self, fd_in: int, off_in: int, fd_out: int, off_out: int,
                            length: int, flags: int) -> int:
        hin, hout = self.fds.host(s32(fd_in)), self.fds.host(s32(fd_out))
        oin, oout = self._read_off(off_in), self._read_off(off_out)
        n = _check(_libc.copy_file_range, hin, self._ref(oin), hout, self._ref(oout), length,
                   flags & 0xFFFFFFFF)
        self._write_off(off_in, oin)
        self._write_off(off_out, oout)
        return n

    @syscall("sendfile", "fd", "fd", "p", "u")
    def sys_sendfile(self, out_fd: int, in_fd: int, offset: int, count: int) -> int:
        hout, hin = self.fds.host(s32(out_fd)), self.fds.host(s32(in_fd))
        off = self._read_off(offset)
        if off is not None and off.value < 0:
            raise Errno(_errno.EINVAL)
        n = self._splice_wait(lambda: _call(_libc.sendfile, hout, hin, self._ref(off), count),
                              hin, hout, nonblock=None)
        self._write_off(offset, off)
        return n

    def _splice_wait(self, op: Callable[[], int], hin: int, hout: int,
                     nonblock: bool | None) -> int:
        """Run a pipe-moving ``op``; while it would block on blocking fds, wait
        (interruptibly) for the input to be readable, then the output writable.
        ``nonblock`` None: ``op`` itself blocks as the fds do (sendfile) —
        then only the fds' O_NONBLOCK matters and the op is run once."""
        r = op()
        if nonblock is None or r != -_errno.EAGAIN or nonblock:
            if r < 0:
                raise Errno(-r)
            return r
        if (hin >= 0 and self._nonblocking(hin)) or self._nonblocking(hout):
            raise Errno(_errno.EAGAIN)
        turn = 0
        while r == -_errno.EAGAIN:
            if hin >= 0 and turn == 0:
                self._host_poll([(hin, POLLIN)], None)
            else:
                self._host_poll([(hout, POLLOUT)], None)
            turn ^= 1
            r = op()
        if r < 0:
            raise Errno(-r)
        return r

    @syscall("splice", "fd", "p", "fd", "p", "u", "x")
    def sys_splice(self, fd_in: int, off_in: int, fd_out: int, off_out: int, length: int,
                   flags: int) -> int:
        hin, hout = self.fds.host(s32(fd_in)), self.fds.host(s32(fd_out))
        oin, oout = self._read_off(off_in), self._read_off(off_out)
        fl = flags & 0xFFFFFFFF
        n = self._splice_wait(
            lambda: _call(_libc.splice, hin, self._ref(oin), hout, self._ref(oout), length,
                          fl | SPLICE_F_NONBLOCK),
            hin, hout, nonblock=bool(fl & SPLICE_F_NONBLOCK))
        self._write_off(off_in, oin)
        self._write_off(off_out, oout)
        return n

    @syscall("tee", "fd", "fd", "u", "x")
    def sys_tee(self, fd_in: int, fd_out: int, length: int, flags: int) -> int:
        hin, hout = self.fds.host(s32(fd_in)), self.fds.host(s32(fd_out))
        fl = flags & 0xFFFFFFFF
        return self._splice_wait(lambda: _call(_libc.tee, hin, hout, length, fl | SPLICE_F_NONBLOCK),
                                 hin, hout, nonblock=bool(fl & SPLICE_F_NONBLOCK))

    @syscall("vmsplice", "fd", "p", "u", "x")
    def sys_vmsplice(self, fd: int, iov: int, nr_segs: int, flags: int) -> int:
        hfd = self.fds.host(s32(fd))
        writing = (_fl(hfd) & O_ACCMODE) != os.O_RDONLY       # user memory → pipe
        arr, cnt = self._host_iovecs(iov, nr_segs, PROT_READ if writing else PROT_WRITE)
        fl = flags & 0xFFFFFFFF
        op = lambda: _call(_libc.vmsplice, hfd, arr, cnt, fl | SPLICE_F_NONBLOCK)  # noqa: E731
        if writing:
            return self._splice_wait(op, -1, hfd, nonblock=bool(fl & SPLICE_F_NONBLOCK))
        return self._splice_wait(op, hfd, hfd, nonblock=bool(fl & SPLICE_F_NONBLOCK))

    # ======================================================================
    # membarrier
    # ======================================================================
    @syscall("membarrier", "d", "x", "d")
    def sys_membarrier(self, cmd: int, flags: int, cpu_id: int) -> int:
        c = s32(cmd)

        def host(cmd_: int, flags_: int, cpu_: int) -> int:
            return _check(_libc.syscall, _HOST_NR_MEMBARRIER, cmd_, flags_, cpu_)

        if c == MEMBARRIER_CMD_QUERY:
            if flags & 0xFFFFFFFF:
                raise Errno(_errno.EINVAL)
            return host(0, 0, 0) & _MEMBARRIER_SERVED
        if c <= 0 or c & (c - 1) or not c & _MEMBARRIER_SERVED:
            raise Errno(_errno.EINVAL)
        r = host(c, flags & 0xFFFFFFFF, s32(cpu_id))
        if c == MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE and self.on_icache_flush is not None:
            self.on_icache_flush()
        return r

    # ======================================================================
    # Sockets (AF_UNIX)
    # ======================================================================
    def _sockopt_int(self, hfd: int, opt: int) -> int:
        v = ctypes.c_int(0)
        ln = ctypes.c_uint32(4)
        _check(_libc.getsockopt, hfd, SOL_SOCKET, opt, ctypes.byref(v), ctypes.byref(ln))
        return v.value

    def _sock_timeout(self, hfd: int, opt: int) -> int | None:
        """SO_RCVTIMEO/SO_SNDTIMEO in ns (None: no timeout)."""
        tv = ctypes.create_string_buffer(16)
        ln = ctypes.c_uint32(16)
        if _call(_libc.getsockopt, hfd, SOL_SOCKET, opt, tv, ctypes.byref(ln)) < 0:
            return None
        sec, usec = struct.unpack("<qq", tv.raw)
        ns = sec * 1_000_000_000 + usec * 1000
        return ns if ns > 0 else None

    def _sockaddr_in(self, hfd: int, addr: int, addrlen: int) -> tuple[object, int]:
        """A guest address for bind/connect/sendto as a host buffer; refuses
        every socket that is not AF_UNIX (no network) and /proc paths."""
        n = s32(addrlen)
        if n < 0 or n > SOCKADDR_MAX:
            raise Errno(_errno.EINVAL)
        if self._sockopt_int(hfd, SO_DOMAIN) != AF_UNIX:
            raise Errno(_errno.EAFNOSUPPORT)
        raw = self.mem.read(addr, n)
        if n > 2 and raw[:2] == AF_UNIX.to_bytes(2, "little") and raw[2] != 0:
            self.procfs.guard(AT_FDCWD, raw[2:].split(b"\0", 1)[0])
        return ctypes.create_string_buffer(raw, max(n, 1)), n

    def _addr_out_len(self, addrlen_ptr: int) -> int:
        """The guest's value-result address length (EFAULT/EINVAL as Linux)."""
        ulen = s32(int.from_bytes(self.mem.read(addrlen_ptr, 4), "little"))
        if ulen < 0:
            raise Errno(_errno.EINVAL)
        self._need(addrlen_ptr, 4, PROT_WRITE)
        return ulen

    def _put_sockaddr(self, raw: bytes, addr: int, addrlen_ptr: int, ulen: int) -> None:
        self.mem.write(addr, raw[:min(ulen, len(raw))])
        self.mem.write(addrlen_ptr, len(raw).to_bytes(4, "little"))

    def _sock_io(self, hfd: int, events: int, flags: int, timeo_opt: int,
                 op: Callable[[int], int]) -> int:
        """Run ``op(flags | MSG_DONTWAIT)``; while it would block and the guest
        asked to block, wait (interruptibly, SO_*TIMEO bounded) and retry."""
        r = op(flags | MSG_DONTWAIT)
        if r != -_errno.EAGAIN or flags & MSG_DONTWAIT or self._nonblocking(hfd):
            return r
        deadline = self._deadline_after(self._sock_timeout(hfd, timeo_opt))
        while r == -_errno.EAGAIN:
            if not self._host_poll([(hfd, events)], deadline)[0]:
                return -_errno.EAGAIN
            r = op(flags | MSG_DONTWAIT)
        return r

    @syscall("socket", "d", "x", "d")
    def sys_socket(self, domain: int, type_: int, protocol: int) -> int:
        if s32(domain) != AF_UNIX:
            raise Errno(_errno.EAFNOSUPPORT)
        t = s32(type_)
        hfd = _check(_libc.socket, AF_UNIX, t | SOCK_CLOEXEC, s32(protocol))
        return self.fds.add(hfd, cloexec=bool(t & SOCK_CLOEXEC))

    @syscall("socketpair", "d", "x", "d", "p")
    def sys_socketpair(self, domain: int, type_: int, protocol: int, sv: int) -> int:
        if s32(domain) != AF_UNIX:
            raise Errno(_errno.EAFNOSUPPORT)
        self._need(sv, 8, PROT_WRITE)
        t = s32(type_)
        pair = (ctypes.c_int * 2)()
        _check(_libc.socketpair, AF_UNIX, t | SOCK_CLOEXEC, s32(protocol), pair)
        cloexec = bool(t & SOCK_CLOEXEC)
        try:
            g0 = self.fds.add(pair[0], cloexec=cloexec)
        except Errno:
            os.close(pair[1])
            raise
        try:
            g1 = self.fds.add(pair[1], cloexec=cloexec)
        except Errno:
            self.fds.close(g0)
            raise
        self.mem.write(sv, struct.pack("<ii", g0, g1))
        return 0

    @syscall("bind", "fd", "p", "u")
    def sys_bind(self, fd: int, addr: int, addrlen: int) -> int:
        hfd = self.fds.host(s32(fd))
        buf, n = self._sockaddr_in(hfd, addr, addrlen)
        return _check(_libc.bind, hfd, buf, n)

    @syscall("listen", "fd", "d")
    def sys_listen(self, fd: int, backlog: int) -> int:
        return _check(_libc.listen, self.fds.host(s32(fd)), s32(backlog))

    @syscall("connect", "fd", "p", "u")
    def sys_connect(self, fd: int, addr: int, addrlen: int) -> int:
        hfd = self.fds.host(s32(fd))
        buf, n = self._sockaddr_in(hfd, addr, addrlen)
        fl = _fl(hfd)
        if fl & O_NONBLOCK:
            return _check(_libc.connect, hfd, buf, n)
        deadline: int | None = None
        timeout_known = False
        while True:
            # Blocking AF_UNIX connect only waits for room in the listener's
            # backlog: try without blocking, then wait interruptibly and retry.
            _fcntl.fcntl(hfd, _fcntl.F_SETFL, fl | O_NONBLOCK)
            try:
                r = _call(_libc.connect, hfd, buf, n)
            finally:
                _fcntl.fcntl(hfd, _fcntl.F_SETFL, fl)
            if r != -_errno.EAGAIN:
                break
            if not timeout_known:
                deadline = self._deadline_after(self._sock_timeout(hfd, SO_SNDTIMEO_OLD))
                timeout_known = True
            if deadline is not None and _now() >= deadline:
                break
            self._host_poll([], _now() + _CONNECT_RETRY_NS)
        if r < 0:
            raise Errno(-r)
        return r

    def _accept(self, fd: int, addr: int, addrlen: int, flags: int) -> int:
        flags &= 0xFFFFFFFF
        if flags & ~(SOCK_CLOEXEC | SOCK_NONBLOCK):
            raise Errno(_errno.EINVAL)
        hfd = self.fds.host(s32(fd))
        ulen = self._addr_out_len(addrlen) if addr else 0
        name = ctypes.create_string_buffer(SOCKADDR_MAX)
        nl = ctypes.c_uint32(SOCKADDR_MAX)
        host_flags = SOCK_CLOEXEC | (flags & SOCK_NONBLOCK)
        if self._nonblocking(hfd):
            r = _call(_libc.accept4, hfd, name, ctypes.byref(nl), host_flags)
        else:
            deadline = self._deadline_after(self._sock_timeout(hfd, SO_RCVTIMEO_OLD))
            if not self._host_poll([(hfd, POLLIN)], deadline)[0]:
                raise Errno(_errno.EAGAIN)
            r = _call(_libc.accept4, hfd, name, ctypes.byref(nl), host_flags)
        if r < 0:
            raise Errno(-r)
        try:
            if addr:
                self._put_sockaddr(name.raw[:nl.value], addr, addrlen, ulen)
        except BaseException:
            os.close(r)
            raise
        return self.fds.add(r, cloexec=bool(flags & SOCK_CLOEXEC))

    @syscall("accept", "fd", "p", "p")
    def sys_accept(self, fd: int, addr: int, addrlen: int) -> int:
        return self._accept(fd, addr, addrlen, 0)

    @syscall("accept4", "fd", "p", "p", "x")
    def sys_accept4(self, fd: int, addr: int, addrlen: int, flags: int) -> int:
        return self._accept(fd, addr, addrlen, flags)

    def _name_query(self, fn: Callable[..., int], fd: int, addr: int, addrlen: int) -> int:
        hfd = self.fds.host(s32(fd))
        ulen = self._addr_out_len(addrlen)
        name = ctypes.create_string_buffer(SOCKADDR_MAX)
        nl = ctypes.c_uint32(SOCKADDR_MAX)
        _check(fn, hfd, name, ctypes.byref(nl))
        self._put_sockaddr(name.raw[:nl.value], addr, addrlen, ulen)
        return 0

    @syscall("getsockname", "fd", "p", "p")
    def sys_getsockname(self, fd: int, addr: int, addrlen: int) -> int:
        return self._name_query(_libc.getsockname, fd, addr, addrlen)

    @syscall("getpeername", "fd", "p", "p")
    def sys_getpeername(self, fd: int, addr: int, addrlen: int) -> int:
        return self._name_query(_libc.getpeername, fd, addr, addrlen)

    @syscall("shutdown", "fd", "d")
    def sys_shutdown(self, fd: int, how: int) -> int:
        return _check(_libc.shutdown, self.fds.host(s32(fd)), s32(how))

    def _stream_blocking(self, hfd: int, flags: int) -> bool:
        """Whether a partial transfer should continue: a blocking stream socket."""
        return (not flags & MSG_DONTWAIT and not self._nonblocking(hfd)
                and self._sockopt_int(hfd, SO_TYPE) == SOCK_STREAM)

    @syscall("sendto", "fd", "wbuf", "u", "x", "p", "u")
    def sys_sendto(self, fd: int, buf: int, length: int, flags: int, addr: int,
                   addrlen: int) -> int:
        hfd = self.fds.host(s32(fd))
        flags = s32(flags)
        self._access_ok(buf, length)
        n = min(length, 0x7FFFF000)
        self._need(buf, n, PROT_READ)
        name, nlen = self._sockaddr_in(hfd, addr, addrlen) if addr else (None, 0)
        base = self.mem.host_address(buf) if n else None
        def attempt(sent: int) -> Callable[[int], int]:
            ptr = None if base is None else base + sent
            return lambda fl: _call(_libc.sendto, hfd, ptr, n - sent, fl, name, nlen)

        return self._send_all(hfd, flags, n, attempt)

    def _send_all(self, hfd: int, flags: int, total: int,
                  attempt: Callable[[int], Callable[[int], int]]) -> int:
        """Send ``total`` bytes in as many host calls as a blocking stream
        socket needs (``attempt(sent)``: the host call for what is left);
        an interruption or error after some bytes went returns their count."""
        sent = 0
        while True:
            try:
                r = self._sock_io(hfd, POLLOUT, flags, SO_SNDTIMEO_OLD, attempt(sent))
            except Errno as e:
                if sent and e.err == _errno.EINTR:
                    return sent
                raise
            if r < 0:
                if sent:
                    return sent
                raise Errno(-r)
            sent += r
            if sent >= total or r == 0 or not self._stream_blocking(hfd, flags):
                return sent

    @syscall("recvfrom", "fd", "p", "u", "x", "p", "p")
    def sys_recvfrom(self, fd: int, buf: int, length: int, flags: int, addr: int,
                     addrlen: int) -> int:
        hfd = self.fds.host(s32(fd))
        flags = s32(flags)
        self._access_ok(buf, length)
        n = min(length, 0x7FFFF000)
        if n:
            n = self._prefix(buf, n, PROT_WRITE)
            if n == 0:
                raise Errno(_errno.EFAULT)
        ulen = self._addr_out_len(addrlen) if addr else 0
        base = self.mem.host_address(buf) if n else None
        name = ctypes.create_string_buffer(SOCKADDR_MAX)
        nl = ctypes.c_uint32(SOCKADDR_MAX)
        waitall = bool(flags & MSG_WAITALL) and not flags & (MSG_DONTWAIT | MSG_PEEK)
        got = 0
        while True:
            ptr = None if base is None else base + got
            nl.value = SOCKADDR_MAX
            try:
                r = self._sock_io(hfd, POLLIN, flags & ~MSG_WAITALL, SO_RCVTIMEO_OLD,
                                  lambda fl: _call(_libc.recvfrom, hfd, ptr, n - got, fl, name,
                                                   ctypes.byref(nl)))
            except Errno as e:
                if got and e.err == _errno.EINTR:
                    return got
                raise
            if r < 0:
                if got:
                    return got
                raise Errno(-r)
            if addr and got == 0:
                self._put_sockaddr(name.raw[:min(nl.value, SOCKADDR_MAX)], addr, addrlen, ulen)
            got += r
            if not waitall or r == 0 or got >= n or flags & MSG_TRUNC:
                return got if not flags & MSG_TRUNC else r
            if self._sockopt_int(hfd, SO_TYPE) != SOCK_STREAM:
                return got

    # -- sendmsg / recvmsg --------------------------------------------------
    def _read_msghdr(self, msg: int) -> tuple[int, int, int, int, int, int, int]:
        return _MSGHDR.unpack(self.mem.read(msg, _MSGHDR.size))

    def _control_to_host(self, control: int, controllen: int) -> bytes:
        """The guest's control messages with SCM_RIGHTS guest fds replaced by
        the host fds behind them (Linux's __scm_send checks)."""
        if controllen > OPTMEM_MAX:
            raise Errno(_errno.ENOBUFS)
        raw = bytearray(self.mem.read(control, controllen))
        off = 0
        while off + _CMSGHDR.size <= controllen:
            clen, level, ctype = _CMSGHDR.unpack_from(raw, off)
            if clen < _CMSGHDR.size or clen > controllen - off:
                raise Errno(_errno.EINVAL)
            if level == SOL_SOCKET:
                if ctype == SCM_RIGHTS:
                    num = (clen - _CMSGHDR.size) // 4
                    if num > SCM_MAX_FD:
                        raise Errno(_errno.EINVAL)
                    for i in range(num):
                        p = off + _CMSGHDR.size + 4 * i
                        gfd = struct.unpack_from("<i", raw, p)[0]
                        struct.pack_into("<i", raw, p, self.fds.host(gfd))
                elif ctype == SCM_CREDENTIALS:
                    if clen != _CMSGHDR.size + 12:
                        raise Errno(_errno.EINVAL)
                else:
                    raise Errno(_errno.EINVAL)
            off += _cmsg_align(clen)
        return bytes(raw)

    def _control_from_host(self, raw: bytes, cloexec: bool) -> tuple[bytes, bool]:
        """Host control messages for the guest: received fds installed in its
        table (→ (bytes, truncated) — truncated when the table was full)."""
        out = bytearray()
        off = 0
        truncated = False
        while off + _CMSGHDR.size <= len(raw):
            clen, level, ctype = _CMSGHDR.unpack_from(raw, off)
            if clen < _CMSGHDR.size or clen > len(raw) - off:
                break
            data = raw[off + _CMSGHDR.size:off + clen]
            if level == SOL_SOCKET and ctype in (SCM_RIGHTS, SCM_PIDFD):
                gfds = []
                for (hfd,) in struct.iter_unpack("<i", data[:len(data) // 4 * 4]):
                    if truncated:
                        os.close(hfd)
                        continue
                    try:
                        gfds.append(self.fds.add(hfd, cloexec=cloexec))   # closes hfd on EMFILE
                    except Errno:
                        truncated = True
                data = struct.pack(f"<{len(gfds)}i", *gfds)
            msg = _CMSGHDR.pack(_CMSGHDR.size + len(data), level, ctype) + data
            out += msg + bytes(_cmsg_align(len(msg)) - len(msg))
            off += _cmsg_align(clen)
        return bytes(out), truncated

    def _sendmsg(self, fd: int, msg: int, flags: int) -> int:
        hfd = self.fds.host(s32(fd))
        flags = s32(flags)
        name, namelen, iov, iovlen, control, controllen, _ = self._read_msghdr(msg)
        if iovlen > UIO_MAXIOV:
            raise Errno(_errno.EMSGSIZE)
        vecs = self._iovecs(iov, iovlen)
        for base, length in vecs:
            self._need(base, length, PROT_READ)
        hvecs = [(self.mem.host_address(b) if ln else 0, ln) for b, ln in vecs]
        nbuf, nlen = (self._sockaddr_in(hfd, name, namelen) if name and namelen
                      else (None, 0))
        ctl = self._control_to_host(control, controllen) if controllen else b""
        total = sum(ln for _b, ln in hvecs)

        def attempt(sent: int) -> Callable[[int], int]:
            # The iovecs left after ``sent`` bytes; control goes with the first bytes.
            rest, skip = [], sent
            for b, ln in hvecs:
                if skip >= ln:
                    skip -= ln
                    continue
                rest.append((b + skip, ln - skip))
                skip = 0
            arr = (ctypes.c_uint64 * (2 * len(rest) or 2))()
            for i, (b, ln) in enumerate(rest):
                arr[2 * i], arr[2 * i + 1] = b, ln
            cbuf = ctypes.create_string_buffer(ctl, len(ctl)) if ctl and not sent else None
            h = _MsgHdr(ctypes.cast(nbuf, ctypes.c_void_p).value if nbuf is not None else None,
                        nlen, ctypes.cast(arr, ctypes.c_void_p).value, len(rest),
                        ctypes.cast(cbuf, ctypes.c_void_p).value if cbuf is not None else None,
                        len(ctl) if cbuf is not None else 0, 0)
            # h holds bare addresses: the default argument keeps arr and cbuf alive for the call
            return lambda fl, _keep=(arr, cbuf): _call(_libc.sendmsg, hfd, ctypes.byref(h), fl)

        return self._send_all(hfd, flags, total, attempt)

    def _recvmsg(self, fd: int, msg: int, flags: int) -> int:
        hfd = self.fds.host(s32(fd))
        flags = s32(flags)
        name, namelen, iov, iovlen, control, controllen, _ = self._read_msghdr(msg)
        self._need(msg, _MSGHDR.size, PROT_WRITE)
        if iovlen > UIO_MAXIOV:
            raise Errno(_errno.EMSGSIZE)
        arr, cnt = self._host_iovecs(iov, iovlen, PROT_WRITE)
        ulen = s32(namelen)
        if name and ulen < 0:
            raise Errno(_errno.EINVAL)
        ctl_len = min(controllen, OPTMEM_MAX)
        if ctl_len:
            self._need(control, ctl_len, PROT_WRITE)
        nbuf = ctypes.create_string_buffer(SOCKADDR_MAX)
        cbuf = ctypes.create_string_buffer(max(ctl_len, 1))
        h = _MsgHdr()

        def op(fl: int) -> int:
            h.msg_name = ctypes.cast(nbuf, ctypes.c_void_p).value if name else None
            h.msg_namelen = SOCKADDR_MAX if name else 0
            h.msg_iov = ctypes.cast(arr, ctypes.c_void_p).value
            h.msg_iovlen = cnt
            h.msg_control = ctypes.cast(cbuf, ctypes.c_void_p).value if ctl_len else None
            h.msg_controllen = ctl_len
            h.msg_flags = 0
            return _call(_libc.recvmsg, hfd, ctypes.byref(h), fl | MSG_CMSG_CLOEXEC)

        guest_flags = flags & ~MSG_CMSG_CLOEXEC
        if flags & MSG_WAITALL and not flags & MSG_DONTWAIT and not self._nonblocking(hfd):
            # Wait (interruptibly) for the first bytes; the rest as the host blocks.
            deadline = self._deadline_after(self._sock_timeout(hfd, SO_RCVTIMEO_OLD))
            if not self._host_poll([(hfd, POLLIN)], deadline)[0]:
                raise Errno(_errno.EAGAIN)
            r = op(guest_flags)
        else:
            r = self._sock_io(hfd, POLLIN, guest_flags, SO_RCVTIMEO_OLD, op)
        if r < 0:
            raise Errno(-r)
        # Linux reports MSG_CMSG_CLOEXEC back when the caller passed it; we always pass it.
        out_flags = (h.msg_flags & ~MSG_CMSG_CLOEXEC) | (flags & MSG_CMSG_CLOEXEC)
        ctl_out = b""
        if ctl_len and h.msg_controllen:
            ctl_out, truncated = self._control_from_host(
                cbuf.raw[:min(h.msg_controllen, ctl_len)], bool(flags & MSG_CMSG_CLOEXEC))
            if truncated:
                out_flags |= MSG_CTRUNC
            self.mem.write(control, ctl_out)
        if name:
            got = nbuf.raw[:min(h.msg_namelen, SOCKADDR_MAX)]
            self.mem.write(name, got[:min(ulen, len(got))])
            self.mem.write(msg + 8, len(got).to_bytes(4, "little"))
        self.mem.write_u64(msg + 40, len(ctl_out))
        self.mem.write(msg + 48, (out_flags & 0xFFFFFFFF).to_bytes(4, "little"))
        return r

    @syscall("sendmsg", "fd", "p", "x")
    def sys_sendmsg(self, fd: int, msg: int, flags: int) -> int:
        return self._sendmsg(fd, msg, flags)

    @syscall("recvmsg", "fd", "p", "x")
    def sys_recvmsg(self, fd: int, msg: int, flags: int) -> int:
        return self._recvmsg(fd, msg, flags)

    @syscall("sendmmsg", "fd", "p", "u", "x")
    def sys_sendmmsg(self, fd: int, msgvec: int, vlen: int, flags: int) -> int:
        self.fds.host(s32(fd))
        count = 0
        for i in range(min(vlen & 0xFFFFFFFF, UIO_MAXIOV)):
            hdr = msgvec + _MMSGHDR_SIZE * i
            try:
                n = self._sendmsg(fd, hdr, flags)
                self.mem.write(hdr + 56, (n & 0xFFFFFFFF).to_bytes(4, "little"))
            except Errno:
                if count == 0:
                    raise
                break
            count += 1
        return count

    @syscall("recvmmsg", "fd", "p", "u", "x", "p")
    def sys_recvmmsg(self, fd: int, msgvec: int, vlen: int, flags: int, timeout: int) -> int:
        self.fds.host(s32(fd))
        flags = s32(flags)
        deadline = self._read_timespec_deadline(timeout)
        count = 0
        try:
            for i in range(min(vlen & 0xFFFFFFFF, UIO_MAXIOV)):
                if i and deadline is not None and _now() >= deadline:
                    break
                fl = flags & ~MSG_WAITFORONE
                if i and flags & MSG_WAITFORONE:
                    fl |= MSG_DONTWAIT
                hdr = msgvec + _MMSGHDR_SIZE * i
                try:
                    n = self._recvmsg(fd, hdr, fl)
                    self.mem.write(hdr + 56, (n & 0xFFFFFFFF).to_bytes(4, "little"))
                except Errno:
                    if count == 0:
                        raise
                    break
                count += 1
            return count
        finally:
            if deadline is not None:
                self._put_remaining(timeout, deadline, usec=False)

    # -- socket options ----------------------------------------------------------
    @syscall("getsockopt", "fd", "d", "d", "p", "p")
    def sys_getsockopt(self, fd: int, level: int, optname: int, optval: int, optlen: int) -> int:
        hfd = self.fds.host(s32(fd))
        lvl, opt = s32(level), s32(optname)
        if lvl != SOL_SOCKET or opt not in _SOCKOPTS:
            raise Errno(_errno.ENOPROTOOPT)
        ulen = s32(int.from_bytes(self.mem.read(optlen, 4), "little"))
        if ulen < 0:
            raise Errno(_errno.EINVAL)
        self._need(optlen, 4, PROT_WRITE)
        n = min(ulen, OPTVAL_MAX)
        self._need(optval, n, PROT_WRITE)
        buf = ctypes.create_string_buffer(max(n, 1))
        ln = ctypes.c_uint32(n)
        _check(_libc.getsockopt, hfd, lvl, opt, buf, ctypes.byref(ln))
        data = buf.raw[:min(ln.value, n)]
        if opt == SO_PEERPIDFD and len(data) >= 4:
            # a new pidfd (Linux makes it O_CLOEXEC) for the guest's table
            data = struct.pack("<i", self.fds.add(struct.unpack_from("<i", data)[0],
                                                  cloexec=True)) + data[4:]
        self.mem.write(optval, data)
        self.mem.write(optlen, min(ln.value, 0xFFFFFFFF).to_bytes(4, "little"))
        return 0

    @syscall("setsockopt", "fd", "d", "d", "p", "u")
    def sys_setsockopt(self, fd: int, level: int, optname: int, optval: int, optlen: int) -> int:
        hfd = self.fds.host(s32(fd))
        lvl, opt = s32(level), s32(optname)
        if lvl != SOL_SOCKET or opt not in _SOCKOPTS:
            raise Errno(_errno.ENOPROTOOPT)
        n = s32(optlen)
        if n < 0 or n > OPTVAL_MAX:
            raise Errno(_errno.EINVAL)
        raw = self.mem.read(optval, n)
        return _check(_libc.setsockopt, hfd, lvl, opt,
                      ctypes.create_string_buffer(raw, max(n, 1)) if n else None, n)
