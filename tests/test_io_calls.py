"""Tests for runtime/linux/io_calls.py: poll/select/epoll, eventfd/timerfd,
AF_UNIX sockets (SCM_RIGHTS), memfd, in-kernel copies and membarrier, on a
kernel over scratch guest memory — real host behaviour, not mocks."""

from __future__ import annotations

import errno
import os
import struct
import threading
import time

import pytest

from runtime.linux import RISCV64_ABI, X86_64_ABI
from runtime.linux.kernel import LinuxKernel

from test_syscalls import BUF, BUF_SIZE, Scratch, g, mem  # noqa: F401  (the scratch-page fixtures)

NR = RISCV64_ABI.numbers
X86 = X86_64_ABI.numbers
UNMAPPED = 0x5000_0000
POLLIN, POLLOUT, POLLHUP, POLLNVAL = 0x1, 0x4, 0x10, 0x20
EPOLLIN, EPOLLOUT = 0x1, 0x4
AF_UNIX, AF_INET = 1, 2
SOCK_STREAM, SOCK_DGRAM = 1, 2
SOCK_NONBLOCK, SOCK_CLOEXEC = 0o4000, 0o2000000
SOL_SOCKET, SCM_RIGHTS = 1, 1
SIGUSR1 = 10


def _kernel(mem, abi=RISCV64_ABI):
    return LinuxKernel(mem, abi, brk_start=0x20_0000, exe_path="/usr/bin/guest-prog")


@pytest.fixture
def k(mem):
    kern = _kernel(mem)
    yield kern
    kern.close()


def sc(k, name, *args):
    return k.syscall(NR[name], list(args))


def pair(k, g, mem, type_=SOCK_STREAM):
    sv = g.alloc(8)
    assert sc(k, "socketpair", AF_UNIX, type_, 0, sv) == 0
    return struct.unpack("<ii", mem.read(sv, 8))


def pipe(k, g, mem):
    fds = g.alloc(8)
    assert sc(k, "pipe2", fds, 0) == 0
    return struct.unpack("<ii", mem.read(fds, 8))


def send(k, g, fd, data: bytes) -> int:
    return sc(k, "sendto", fd, g.bytes(data), len(data), 0, 0, 0)


def recv(k, g, mem, fd, n=256, flags=0) -> bytes | int:
    buf = g.alloc(n)
    r = sc(k, "recvfrom", fd, buf, n, flags, 0, 0)
    return mem.read(buf, r) if r >= 0 else r


def sockaddr_un(path: bytes) -> bytes:
    return struct.pack("<H", AF_UNIX) + path + b"\0"


def signal_later(k, delay=0.1, sig=SIGUSR1, thread=None):
    """Mark ``sig`` pending for the (main) guest thread and notify its wake fd
    from another host thread, as the signal code does.  The guest has a
    handler for it (else its default action would end the process on the
    way out of the call)."""
    t = thread or k.main_thread
    k.sigactions[sig] = (0x10000, 0, 0, 0)

    def fire():
        time.sleep(delay)
        t.pending |= 1 << (sig - 1)
        t.notify()

    th = threading.Thread(target=fire)
    th.start()
    return th


# -- socketpair / sockets ----------------------------------------------------------

def test_socketpair_data_and_shutdown(k, g, mem):
    a, b = pair(k, g, mem)
    assert a >= 3 and b == a + 1
    assert send(k, g, a, b"hello over unix") == 15
    assert recv(k, g, mem, b) == b"hello over unix"
    assert sc(k, "write", b, g.bytes(b"back"), 4) == 4
    assert recv(k, g, mem, a) == b"back"
    assert sc(k, "shutdown", a, 1) == 0                       # SHUT_WR
    assert recv(k, g, mem, b) == b""                            # EOF
    assert recv(k, g, mem, a, flags=0x40) == -errno.EAGAIN     # MSG_DONTWAIT
    # a datagram pair keeps message boundaries
    c, d = pair(k, g, mem, SOCK_DGRAM)
    send(k, g, c, b"one")
    send(k, g, c, b"two!")
    assert recv(k, g, mem, d) == b"one" and recv(k, g, mem, d) == b"two!"


def test_socket_families_and_errors(k, g, mem):
    assert sc(k, "socket", AF_INET, SOCK_STREAM, 0) == -errno.EAFNOSUPPORT
    assert sc(k, "socket", 10, SOCK_STREAM, 0) == -errno.EAFNOSUPPORT     # AF_INET6
    assert sc(k, "socket", 16, 3, 0) == -errno.EAFNOSUPPORT               # AF_NETLINK
    assert sc(k, "socketpair", AF_INET, SOCK_STREAM, 0, g.alloc(8)) == -errno.EAFNOSUPPORT
    assert sc(k, "socketpair", AF_UNIX, SOCK_STREAM, 0, UNMAPPED) == -errno.EFAULT
    assert sc(k, "socket", AF_UNIX, 99, 0) == -errno.EINVAL
    fd = sc(k, "socket", AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)
    assert fd >= 3 and sc(k, "fcntl", fd, 1, 0) == 1                     # F_GETFD
    assert sc(k, "sendto", 99, g.bytes(b"x"), 1, 0, 0, 0) == -errno.EBADF
    r, _w = pipe(k, g, mem)
    assert sc(k, "sendto", r, g.bytes(b"x"), 1, 0, 0, 0) == -errno.ENOTSOCK


def test_stream_socket_bind_listen_connect_accept(k, g, mem, tmp_path):
    path = str(tmp_path / "srv.sock").encode()
    addr = g.bytes(sockaddr_un(path))
    alen = 2 + len(path) + 1
    srv = sc(k, "socket", AF_UNIX, SOCK_STREAM, 0)
    assert sc(k, "bind", srv, addr, alen) == 0
    assert os.path.exists(path)
    assert sc(k, "bind", srv, addr, alen) in (-errno.EINVAL, -errno.EADDRINUSE)
    assert sc(k, "listen", srv, 4) == 0
    cli = sc(k, "socket", AF_UNIX, SOCK_STREAM, 0)
    assert sc(k, "connect", cli, addr, alen) == 0
    peer, plen = g.alloc(128), g.bytes(struct.pack("<I", 128))
    conn = sc(k, "accept4", srv, peer, plen, SOCK_NONBLOCK)
    assert conn > cli
    assert struct.unpack("<I", mem.read(plen, 4))[0] == 2         # unnamed client
    assert sc(k, "fcntl", conn, 3, 0) & 0o4000                    # O_NONBLOCK from accept4
    send(k, g, cli, b"ping")
    assert recv(k, g, mem, conn) == b"ping"
    send(k, g, conn, b"pong")
    assert recv(k, g, mem, cli) == b"pong"
    name, nlen = g.alloc(128), g.bytes(struct.pack("<I", 128))
    assert sc(k, "getsockname", srv, name, nlen) == 0
    n = struct.unpack("<I", mem.read(nlen, 4))[0]
    assert mem.read(name, n) == sockaddr_un(path)
    mem.write(nlen, struct.pack("<I", 128))
    assert sc(k, "getpeername", cli, name, nlen) == 0
    assert mem.read(name, struct.unpack("<I", mem.read(nlen, 4))[0]) == sockaddr_un(path)
    # a short buffer gets a truncated address and the real length
    mem.write(nlen, struct.pack("<I", 4))
    mem.write(name, b"\xff" * 8)
    assert sc(k, "getsockname", srv, name, nlen) == 0
    assert mem.read(name, 8) == sockaddr_un(path)[:4] + b"\xff" * 4
    assert struct.unpack("<I", mem.read(nlen, 4))[0] == n
    # nobody waiting: a non-blocking listener says EAGAIN
    assert sc(k, "fcntl", srv, 4, 0o4000) == 0                     # F_SETFL O_NONBLOCK
    assert sc(k, "accept", srv, 0, 0) == -errno.EAGAIN
    assert sc(k, "accept4", srv, 0, 0, 0x1234) == -errno.EINVAL
    nb = sc(k, "socket", AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0)
    assert sc(k, "connect", cli, g.bytes(sockaddr_un(b"/proc/self/fd")), 16) == -errno.EACCES
    assert sc(k, "bind", nb, addr, 200) == -errno.EINVAL
    assert sc(k, "bind", nb, UNMAPPED, alen) == -errno.EFAULT


def test_blocking_accept_is_interrupted_by_a_signal(k, g, mem, tmp_path):
    path = str(tmp_path / "s").encode()
    addr = g.bytes(sockaddr_un(path))
    srv = sc(k, "socket", AF_UNIX, SOCK_STREAM, 0)
    assert sc(k, "bind", srv, addr, 2 + len(path) + 1) == 0
    assert sc(k, "listen", srv, 1) == 0
    th = signal_later(k)
    t0 = time.monotonic()
    assert sc(k, "accept", srv, 0, 0) == -errno.EINTR
    assert 0.05 < time.monotonic() - t0 < 5
    th.join()


def test_blocking_recv_waits_for_data_and_is_interruptible(k, g, mem):
    a, b = pair(k, g, mem)

    def writer():
        time.sleep(0.1)
        os.write(k.fds.host(a), b"late data")

    th = threading.Thread(target=writer)
    th.start()
    assert recv(k, g, mem, b) == b"late data"
    th.join()
    th = signal_later(k)
    assert recv(k, g, mem, b) == -errno.EINTR
    th.join()
    # SO_RCVTIMEO bounds a blocking recv: EAGAIN after the timeout
    k.main_thread.pending = 0
    tv = g.bytes(struct.pack("<qq", 0, 100_000))
    assert sc(k, "setsockopt", b, SOL_SOCKET, 20, tv, 16) == 0     # SO_RCVTIMEO
    t0 = time.monotonic()
    assert recv(k, g, mem, b) == -errno.EAGAIN
    assert 0.08 < time.monotonic() - t0 < 5
    # MSG_WAITALL collects a whole stream message
    th = threading.Thread(target=lambda: [os.write(k.fds.host(a), b"ab"), time.sleep(0.05),
                                          os.write(k.fds.host(a), b"cd")])
    th.start()
    assert recv(k, g, mem, b, n=4, flags=0x100) == b"abcd"
    th.join()


def test_sockopts(k, g, mem):
    a, _b = pair(k, g, mem)
    val, ln = g.alloc(16), g.bytes(struct.pack("<I", 4))
    assert sc(k, "getsockopt", a, SOL_SOCKET, 3, val, ln) == 0           # SO_TYPE
    assert struct.unpack("<i", mem.read(val, 4))[0] == SOCK_STREAM
    assert sc(k, "getsockopt", a, SOL_SOCKET, 39, val, ln) == 0          # SO_DOMAIN
    assert struct.unpack("<i", mem.read(val, 4))[0] == AF_UNIX
    assert sc(k, "setsockopt", a, SOL_SOCKET, 7, g.bytes(struct.pack("<i", 65536)), 4) == 0
    mem.write(ln, struct.pack("<I", 12))
    assert sc(k, "getsockopt", a, SOL_SOCKET, 17, val, ln) == 0          # SO_PEERCRED
    pid, uid, gid = struct.unpack("<iII", mem.read(val, 12))
    assert (pid, uid, gid) == (os.getpid(), os.getuid(), os.getgid())
    # options whose value holds a pointer never reach the host
    prog = g.bytes(struct.pack("<H6xQ", 1, 0x7FFF_0000_0000))
    assert sc(k, "setsockopt", a, SOL_SOCKET, 26, prog, 16) == -errno.ENOPROTOOPT  # SO_ATTACH_FILTER
    assert sc(k, "setsockopt", a, SOL_SOCKET, 50, prog, 4) == -errno.ENOPROTOOPT   # SO_ATTACH_BPF
    assert sc(k, "setsockopt", a, 6, 1, g.bytes(b"\1\0\0\0"), 4) == -errno.ENOPROTOOPT
    assert sc(k, "getsockopt", a, SOL_SOCKET, 3, val, UNMAPPED) == -errno.EFAULT
    assert sc(k, "setsockopt", a, SOL_SOCKET, 7, val, 1 << 20) == -errno.EINVAL


# -- SCM_RIGHTS ----------------------------------------------------------------------

def _msghdr(g, iov_data: bytes | int, control: bytes | int = b"", name: int = 0) -> int:
    """A guest struct msghdr with one iovec (bytes to send, or a receive size)."""
    if isinstance(iov_data, int):
        base, ln = g.alloc(iov_data), iov_data
    else:
        base, ln = g.bytes(iov_data), len(iov_data)
    iov = g.bytes(struct.pack("<QQ", base, ln))
    if isinstance(control, int):
        ctl, clen = (g.alloc(control), control) if control else (0, 0)
    else:
        ctl, clen = (g.bytes(control), len(control)) if control else (0, 0)
    return g.bytes(struct.pack("<QI4xQQQQi4x", name, 128 if name else 0, iov, 1, ctl, clen, 0))


def _rights(*fds: int) -> bytes:
    data = struct.pack(f"<{len(fds)}i", *fds)
    msg = struct.pack("<Qii", 16 + len(data), SOL_SOCKET, SCM_RIGHTS) + data
    return msg + bytes(-len(msg) % 8)


def test_scm_rights_round_trip(k, g, mem):
    a, b = pair(k, g, mem)
    r, w = pipe(k, g, mem)
    assert sc(k, "sendmsg", a, _msghdr(g, b"fd!", _rights(w, r)), 0) == 3
    assert sc(k, "close", w) == 0 and sc(k, "close", r) == 0
    msg = _msghdr(g, 16, 64)
    assert sc(k, "recvmsg", b, msg, 0x40000000) == 3                    # MSG_CMSG_CLOEXEC
    _n, _nl, iov, _il, ctl, clen, flags = struct.unpack("<QI4xQQQQi4x", mem.read(msg, 56))
    assert flags == 0x40000000 and clen == 24          # Linux echoes MSG_CMSG_CLOEXEC
    base = struct.unpack("<Q", mem.read(iov, 8))[0]
    assert mem.read(base, 3) == b"fd!"
    ln, level, typ, w2, r2 = struct.unpack("<Qiiii", mem.read(ctl, 24))
    assert (ln, level, typ) == (24, SOL_SOCKET, SCM_RIGHTS)
    assert {w2, r2} <= set(k.fds.guest_fds()) and w2 != r2
    assert sc(k, "fcntl", w2, 1, 0) == 1                                 # FD_CLOEXEC
    # the received guest fds are the pipe's ends
    assert sc(k, "write", w2, g.bytes(b"through"), 7) == 7
    buf = g.alloc(16)
    assert sc(k, "read", r2, buf, 16) == 7 and mem.read(buf, 7) == b"through"


def test_scm_rights_only_guest_fds(k, g, mem):
    a, b = pair(k, g, mem)
    wake = k.main_thread.wake_fd                 # a runtime fd the guest does not own
    assert wake not in k.fds.guest_fds()
    assert sc(k, "sendmsg", a, _msghdr(g, b"x", _rights(wake)), 0) == -errno.EBADF
    assert sc(k, "sendmsg", a, _msghdr(g, b"x", _rights(-1)), 0) == -errno.EBADF
    bad_len = struct.pack("<Qii", 200, SOL_SOCKET, SCM_RIGHTS) + b"\0" * 8
    assert sc(k, "sendmsg", a, _msghdr(g, b"x", bad_len), 0) == -errno.EINVAL
    other = struct.pack("<Qii", 20, SOL_SOCKET, 77) + b"\0" * 4 + bytes(4)
    assert sc(k, "sendmsg", a, _msghdr(g, b"x", other), 0) == -errno.EINVAL
    assert sc(k, "sendmsg", a, UNMAPPED, 0) == -errno.EFAULT
    # nothing was sent by the refused calls
    assert recv(k, g, mem, b, flags=0x40) == -errno.EAGAIN


def test_scm_rights_table_full_truncates(k, g, mem):
    a, b = pair(k, g, mem)
    r, w = pipe(k, g, mem)
    assert sc(k, "sendmsg", a, _msghdr(g, b"y", _rights(r, w)), 0) == 1
    k.fds.limit = max(k.fds.guest_fds()) + 2     # room for one more fd only
    msg = _msghdr(g, 4, 64)
    assert sc(k, "recvmsg", b, msg, 0) == 1
    *_rest, clen, flags = struct.unpack("<QI4xQQQQi4x", mem.read(msg, 56))
    assert flags & 0x8 and clen == 24                                    # MSG_CTRUNC, one fd


# -- poll / select -------------------------------------------------------------------

def test_poll_sees_pollin_after_write(k, g, mem):
    r, w = pipe(k, g, mem)
    fds = g.bytes(struct.pack("<ihh", r, POLLIN, 0) + struct.pack("<ihh", w, POLLOUT, 0)
                  + struct.pack("<ihh", -1, POLLIN, 7) + struct.pack("<ihh", 999, POLLIN, 0))
    assert sc(k, "ppoll", fds, 3, g.bytes(bytes(16)), 0, 8) == 1          # only w is ready
    entries = list(struct.iter_unpack("<ihh", mem.read(fds, 32)))
    assert [e[2] for e in entries[:3]] == [0, POLLOUT, 0]
    assert sc(k, "write", w, g.bytes(b"x"), 1) == 1
    assert sc(k, "ppoll", fds, 4, 0, 0, 0) == 3                          # bad fd: POLLNVAL
    entries = list(struct.iter_unpack("<ihh", mem.read(fds, 32)))
    assert [e[2] for e in entries] == [POLLIN, POLLOUT, 0, POLLNVAL]
    sc(k, "close", w)
    assert sc(k, "ppoll", fds, 1, 0, 0, 0) == 1
    assert struct.unpack("<ihh", mem.read(fds, 8))[2] == POLLIN | POLLHUP  # data left, writer gone
    assert sc(k, "ppoll", UNMAPPED, 1, 0, 0, 0) == -errno.EFAULT
    assert sc(k, "ppoll", fds, 1, 0, g.alloc(8), 4) == -errno.EINVAL     # sigsetsize


def test_ppoll_timeout_updates_timespec(k, g, mem):
    r, _w = pipe(k, g, mem)
    fds = g.bytes(struct.pack("<ihh", r, POLLIN, 0))
    ts = g.bytes(struct.pack("<qq", 0, 150_000_000))
    t0 = time.monotonic()
    assert sc(k, "ppoll", fds, 1, ts, 0, 0) == 0
    assert 0.14 < time.monotonic() - t0 < 5
    assert struct.unpack("<qq", mem.read(ts, 16)) == (0, 0)
    assert sc(k, "ppoll", fds, 1, g.bytes(struct.pack("<qq", 0, 10**9)), 0, 0) == -errno.EINVAL


def test_x86_64_poll_select_epoll_eventfd(mem, g):
    kern = _kernel(mem, X86_64_ABI)
    try:
        fds = g.alloc(8)
        assert kern.syscall(X86["pipe"], [fds]) == 0
        r, w = struct.unpack("<ii", mem.read(fds, 8))
        pfd = g.bytes(struct.pack("<ihh", r, POLLIN, 0))
        assert kern.syscall(X86["poll"], [pfd, 1, 0]) == 0
        os.write(kern.fds.host(w), b"z")
        assert kern.syscall(X86["poll"], [pfd, 1, -1]) == 1
        # packed 12-byte struct epoll_event: two events back to back
        ep = kern.syscall(X86["epoll_create"], [1])
        assert kern.syscall(X86["epoll_create"], [0]) == -errno.EINVAL
        efd = kern.syscall(X86["eventfd"], [2])
        for fd, data in ((r, 0x1122334455667788), (efd, 0xFFFF_FFFF_FFFF_FFFE)):
            ev = g.bytes(struct.pack("<IQ", EPOLLIN, data))
            assert kern.syscall(X86["epoll_ctl"], [ep, 1, fd, ev]) == 0
        out = g.alloc(24)
        assert kern.syscall(X86["epoll_wait"], [ep, out, 2, 1000]) == 2
        got = sorted(struct.unpack("<IQIQ", mem.read(out, 24))[1::2])
        assert got == [0x1122334455667788, 0xFFFF_FFFF_FFFF_FFFE]
        # select: the read set has r; a timeval is updated with the time left
        rset = g.bytes((1 << r).to_bytes(8, "little"))
        tv = g.bytes(struct.pack("<qq", 5, 0))
        assert kern.syscall(X86["select"], [r + 1, rset, 0, 0, tv]) == 1
        assert int.from_bytes(mem.read(rset, 8), "little") == 1 << r
        sec, usec = struct.unpack("<qq", mem.read(tv, 16))
        assert 3 <= sec <= 5 and 0 <= usec < 10**6
    finally:
        kern.close()


def test_select_timeout_and_readiness(k, g, mem):
    r, w = pipe(k, g, mem)
    rset = g.bytes((1 << r).to_bytes(8, "little"))
    wset = g.bytes((1 << w).to_bytes(8, "little"))
    ts = g.bytes(struct.pack("<qq", 0, 120_000_000))
    t0 = time.monotonic()
    # pselect6: only w is writable
    assert sc(k, "pselect6", w + 1, rset, wset, 0, ts, 0) == 1
    assert time.monotonic() - t0 < 0.1
    assert int.from_bytes(mem.read(rset, 8), "little") == 0
    assert int.from_bytes(mem.read(wset, 8), "little") == 1 << w
    # nothing readable: the timeout elapses, the sets come back empty
    mem.write(rset, (1 << r).to_bytes(8, "little"))
    t0 = time.monotonic()
    assert sc(k, "pselect6", r + 1, rset, 0, 0, ts, 0) == 0
    assert 0.1 < time.monotonic() - t0 < 5
    assert int.from_bytes(mem.read(rset, 8), "little") == 0
    assert struct.unpack("<qq", mem.read(ts, 16)) == (0, 0)
    # errors
    mem.write(rset, (1 << 40).to_bytes(8, "little"))
    assert sc(k, "pselect6", 41, rset, 0, 0, 0, 0) == -errno.EBADF
    assert sc(k, "pselect6", -1, 0, 0, 0, 0, 0) == -errno.EINVAL
    assert sc(k, "pselect6", 1, UNMAPPED, 0, 0, 0, 0) == -errno.EFAULT
    # fds beyond nfds are ignored; nfds 0 with a zero timeout just returns
    assert sc(k, "pselect6", 0, rset, 0, 0, g.bytes(bytes(16)), 0) == 0


def test_poll_eintr_from_another_thread(k, g, mem):
    r, _w = pipe(k, g, mem)
    fds = g.bytes(struct.pack("<ihh", r, POLLIN, 0))
    th = signal_later(k)
    t0 = time.monotonic()
    assert sc(k, "ppoll", fds, 1, 0, 0, 0) == -errno.EINTR                # no timeout: forever
    assert 0.05 < time.monotonic() - t0 < 5
    th.join()
    k.main_thread.pending = 0


def test_ppoll_sigmask_blocks_then_restores(k, g, mem):
    r, _w = pipe(k, g, mem)
    fds = g.bytes(struct.pack("<ihh", r, POLLIN, 0))
    mask = g.bytes(struct.pack("<Q", 1 << (SIGUSR1 - 1)))
    k.main_thread.sigmask = 0
    th = signal_later(k, delay=0.05)
    t0 = time.monotonic()
    # SIGUSR1 blocked during the wait: the notification does not interrupt it,
    # the timeout ends it (and the stale wake does not make it spin).
    ts = g.bytes(struct.pack("<qq", 0, 300_000_000))
    cpu0 = time.process_time()
    assert sc(k, "ppoll", fds, 1, ts, mask, 8) == 0
    assert time.monotonic() - t0 > 0.28
    assert time.process_time() - cpu0 < 0.2
    th.join()
    assert k.main_thread.sigmask == 0                                      # restored
    # now pending and unblocked: an immediate EINTR (a zero timeout never is)
    assert sc(k, "ppoll", fds, 1, g.bytes(struct.pack("<qq", 1, 0)), 0, 0) == -errno.EINTR
    assert sc(k, "ppoll", fds, 1, g.bytes(bytes(16)), 0, 0) == 0
    # the guest mask unblocks nothing here, but it blocks SIGUSR1 again: timeout
    assert sc(k, "ppoll", fds, 1, g.bytes(struct.pack("<qq", 0, 10_000_000)), mask, 8) == 0
    k.main_thread.pending = 0


def test_ready_fds_win_over_a_pending_signal(k, g, mem):
    r, w = pipe(k, g, mem)
    sc(k, "write", w, g.bytes(b"x"), 1)
    k.sigactions[SIGUSR1] = (0x10000, 0, 0, 0)      # a handler: pending, not fatal
    k.main_thread.pending = 1 << (SIGUSR1 - 1)
    k.main_thread.notify()
    fds = g.bytes(struct.pack("<ihh", r, POLLIN, 0))
    assert sc(k, "ppoll", fds, 1, 0, 0, 0) == 1
    rset = g.bytes((1 << r).to_bytes(8, "little"))
    assert sc(k, "pselect6", r + 1, rset, 0, 0, 0, 0) == 1
    k.main_thread.pending = 0
    k.main_thread.clear_wake()


# -- epoll ---------------------------------------------------------------------------

def test_epoll_returns_guest_data(k, g, mem):
    ep = sc(k, "epoll_create1", 0)
    assert ep >= 3
    assert sc(k, "epoll_create1", 1) == -errno.EINVAL
    a, b = pair(k, g, mem)
    r, w = pipe(k, g, mem)
    ev = g.bytes(RISCV64_ABI.pack_epoll_event(EPOLLIN, 0xDEAD_BEEF_0BAD_F00D))
    assert sc(k, "epoll_ctl", ep, 1, b, ev) == 0
    assert sc(k, "epoll_ctl", ep, 1, b, ev) == -errno.EEXIST
    ev2 = g.bytes(RISCV64_ABI.pack_epoll_event(EPOLLIN, 7))
    assert sc(k, "epoll_ctl", ep, 1, r, ev2) == 0
    out = g.alloc(16 * 4)
    assert sc(k, "epoll_pwait", ep, out, 4, 0, 0, 8) == 0
    send(k, g, a, b"wake")
    assert sc(k, "epoll_pwait", ep, out, 4, 1000, 0, 8) == 1
    events, data = RISCV64_ABI.unpack_epoll_event(mem.read(out, 16))
    assert (events, data) == (EPOLLIN, 0xDEAD_BEEF_0BAD_F00D)
    # padded 16-byte layout: the pad bytes are zero
    assert mem.read(out + 4, 4) == bytes(4)
    sc(k, "write", w, g.bytes(b"!"), 1)
    assert sc(k, "epoll_pwait", ep, out, 4, 1000, 0, 8) == 2
    got = {RISCV64_ABI.unpack_epoll_event(mem.read(out + 16 * i, 16))[1] for i in range(2)}
    assert got == {0xDEAD_BEEF_0BAD_F00D, 7}
    # maxevents 1 returns one at a time
    assert sc(k, "epoll_pwait", ep, out, 1, 0, 0, 0) == 1
    # MOD and DEL
    ev3 = g.bytes(RISCV64_ABI.pack_epoll_event(EPOLLOUT, 42))
    assert sc(k, "epoll_ctl", ep, 3, b, ev3) == 0
    assert sc(k, "epoll_ctl", ep, 2, r, 0) == 0
    assert sc(k, "epoll_pwait", ep, out, 4, 0, 0, 0) == 1
    assert RISCV64_ABI.unpack_epoll_event(mem.read(out, 16)) == (EPOLLOUT, 42)
    # errors
    assert sc(k, "epoll_pwait", ep, out, 0, 0, 0, 0) == -errno.EINVAL
    assert sc(k, "epoll_pwait", ep, UNMAPPED, 4, 0, 0, 0) == -errno.EFAULT
    assert sc(k, "epoll_pwait", r, out, 4, 0, 0, 0) == -errno.EINVAL      # not an epoll fd
    assert sc(k, "epoll_ctl", ep, 1, 99, ev) == -errno.EBADF
    assert sc(k, "epoll_ctl", ep, 1, ep, ev) == -errno.EINVAL
    assert sc(k, "epoll_ctl", ep, 9, b, ev) == -errno.EINVAL
    assert sc(k, "epoll_ctl", ep, 1, a, UNMAPPED) == -errno.EFAULT
    # closing the only fd of a file drops its registration, as on Linux
    assert sc(k, "close", b) == 0
    assert sc(k, "epoll_pwait", ep, out, 4, 0, 0, 0) == 0


def test_epoll_timeouts_and_eintr(k, g, mem):
    ep = sc(k, "epoll_create1", 0o2000000)
    r, _w = pipe(k, g, mem)
    sc(k, "epoll_ctl", ep, 1, r, g.bytes(RISCV64_ABI.pack_epoll_event(EPOLLIN, 1)))
    out = g.alloc(64)
    t0 = time.monotonic()
    assert sc(k, "epoll_pwait", ep, out, 4, 100, 0, 0) == 0
    assert 0.09 < time.monotonic() - t0 < 5
    t0 = time.monotonic()
    assert sc(k, "epoll_pwait2", ep, out, 4, g.bytes(struct.pack("<qq", 0, 80_000_000)), 0, 0) == 0
    assert 0.07 < time.monotonic() - t0 < 5
    th = signal_later(k)
    assert sc(k, "epoll_pwait", ep, out, 4, -1, 0, 0) == -errno.EINTR
    th.join()
    k.main_thread.pending = 0


def test_epoll_wait_from_another_thread_sees_later_event(k, g, mem):
    ep = sc(k, "epoll_create1", 0)
    a, b = pair(k, g, mem)
    sc(k, "epoll_ctl", ep, 1, b, g.bytes(RISCV64_ABI.pack_epoll_event(EPOLLIN | (1 << 31), 5)))
    out = g.alloc(16)
    res = []
    th = threading.Thread(target=lambda: res.append(sc(k, "epoll_pwait", ep, out, 1, 5000, 0, 0)))
    th.start()
    time.sleep(0.1)
    send(k, g, a, b"edge")                                 # EPOLLET
    th.join()
    assert res == [1] and RISCV64_ABI.unpack_epoll_event(mem.read(out, 16))[1] == 5


# -- eventfd / timerfd / memfd ----------------------------------------------------------

def test_eventfd(k, g, mem):
    fd = sc(k, "eventfd2", 3, 0o4000)                      # EFD_NONBLOCK
    buf = g.alloc(8)
    assert sc(k, "read", fd, buf, 8) == 8 and mem.read_u64(buf) == 3
    assert sc(k, "read", fd, buf, 8) == -errno.EAGAIN
    mem.write_u64(buf, 5)
    assert sc(k, "write", fd, buf, 8) == 8
    sem = sc(k, "eventfd2", 2, 1 | 0o4000)                 # EFD_SEMAPHORE
    assert sc(k, "read", sem, buf, 8) == 8 and mem.read_u64(buf) == 1
    assert sc(k, "eventfd2", 0, 0x80) == -errno.EINVAL
    pfd = g.bytes(struct.pack("<ihh", fd, POLLIN, 0))
    assert sc(k, "ppoll", pfd, 1, 0, 0, 0) == 1


def test_timerfd_expirations(k, g, mem):
    fd = sc(k, "timerfd_create", 1, 0)                      # CLOCK_MONOTONIC
    assert fd >= 3
    assert sc(k, "timerfd_create", 1, 0x80) == -errno.EINVAL
    assert sc(k, "timerfd_create", 12345, 0) == -errno.EINVAL
    spec = g.bytes(struct.pack("<qqqq", 0, 20_000_000, 0, 20_000_000))   # interval, value
    old = g.alloc(32)
    assert sc(k, "timerfd_settime", fd, 0, spec, old) == 0
    assert mem.read(old, 32) == bytes(32)
    cur = g.alloc(32)
    assert sc(k, "timerfd_gettime", fd, cur) == 0
    interval_ns, value_ns = struct.unpack("<qqqq", mem.read(cur, 32))[1::2]
    assert interval_ns == 20_000_000 and 0 < value_ns <= 20_000_000
    time.sleep(0.11)
    buf = g.alloc(8)
    assert sc(k, "read", fd, buf, 8) == 8
    assert 3 <= mem.read_u64(buf) <= 6
    # poll waits for the next expiration
    pfd = g.bytes(struct.pack("<ihh", fd, POLLIN, 0))
    assert sc(k, "ppoll", pfd, 1, g.bytes(struct.pack("<qq", 1, 0)), 0, 0) == 1
    assert sc(k, "timerfd_settime", fd, 0, UNMAPPED, 0) == -errno.EFAULT
    bad = g.bytes(struct.pack("<qqqq", 0, 0, 0, 10**9))
    assert sc(k, "timerfd_settime", fd, 0, bad, 0) == -errno.EINVAL
    assert sc(k, "timerfd_gettime", fd, UNMAPPED) == -errno.EFAULT


def test_memfd_and_copies(k, g, mem, tmp_path):
    name = g.bytes(b"guest-memfd\0")
    fd = sc(k, "memfd_create", name, 1)                      # MFD_CLOEXEC
    assert fd >= 3 and sc(k, "fcntl", fd, 1, 0) == 1
    assert sc(k, "write", fd, g.bytes(b"0123456789"), 10) == 10
    assert os.readlink(f"/proc/self/fd/{k.fds.host(fd)}") == "/memfd:guest-memfd (deleted)"
    assert sc(k, "memfd_create", g.bytes(b"n" * 300 + b"\0"), 0) == -errno.EINVAL
    assert sc(k, "memfd_create", UNMAPPED, 0) == -errno.EFAULT
    # copy_file_range with guest offsets (memfd → memfd: same file system)
    out = sc(k, "memfd_create", g.bytes(b"copy\0"), 0)
    off_in, off_out = g.bytes(struct.pack("<q", 2)), g.bytes(struct.pack("<q", 0))
    assert sc(k, "copy_file_range", fd, off_in, out, off_out, 5, 0) == 5
    assert struct.unpack("<qq", mem.read(off_in, 8) + mem.read(off_out, 8)) == (7, 5)
    assert os.pread(k.fds.host(out), 16, 0) == b"23456"
    assert sc(k, "copy_file_range", fd, off_in, out, off_out, 5, 1) == -errno.EINVAL
    # sendfile from an offset into a pipe
    r, w = pipe(k, g, mem)
    off = g.bytes(struct.pack("<q", 6))
    assert sc(k, "sendfile", w, fd, off, 100) == 4 and mem.read_u64(off) == 10
    buf = g.alloc(16)
    assert sc(k, "read", r, buf, 16) == 4 and mem.read(buf, 4) == b"6789"
    # splice file → pipe, tee pipe → pipe, splice pipe → file
    assert sc(k, "splice", fd, g.bytes(struct.pack("<q", 0)), w, 0, 3, 0) == 3
    r2, w2 = pipe(k, g, mem)
    assert sc(k, "tee", r, w2, 3, 0) == 3
    assert sc(k, "read", r2, buf, 16) == 3 and mem.read(buf, 3) == b"012"
    assert sc(k, "splice", r, 0, out, g.bytes(struct.pack("<q", 100)), 3, 0) == 3
    assert os.pread(k.fds.host(out), 16, 100) == b"012"
    # vmsplice guest memory into a pipe
    iov = g.bytes(struct.pack("<QQ", g.bytes(b"spliced"), 7))
    assert sc(k, "vmsplice", w, iov, 1, 0) == 7
    assert sc(k, "read", r, buf, 16) == 7 and mem.read(buf, 7) == b"spliced"
    # a blocking splice from an empty pipe is interruptible
    th = signal_later(k)
    assert sc(k, "splice", r, 0, w2, 0, 10, 0) == -errno.EINTR
    th.join()
    k.main_thread.pending = 0
    assert sc(k, "splice", r, 0, w2, 0, 10, 2) == -errno.EAGAIN        # SPLICE_F_NONBLOCK


def test_inotify(k, g, mem, tmp_path):
    fd = sc(k, "inotify_init1", 0o4000)
    wd = sc(k, "inotify_add_watch", fd, g.bytes(str(tmp_path).encode() + b"\0"), 0x100)  # IN_CREATE
    assert wd >= 1
    (tmp_path / "new").write_text("x")
    buf = g.alloc(256)
    n = sc(k, "read", fd, buf, 256)
    wd2, mask, _cookie, ln = struct.unpack("<iIII", mem.read(buf, 16))
    assert n >= 16 and wd2 == wd and mask == 0x100 and mem.read(buf + 16, ln).rstrip(b"\0") == b"new"
    assert sc(k, "inotify_add_watch", fd, g.bytes(b"/proc/self\0"), 0x100) == -errno.EACCES
    assert sc(k, "inotify_rm_watch", fd, wd) == 0


def test_membarrier(k):
    mask = sc(k, "membarrier", 0, 0, 0)
    if mask == -errno.ENOSYS:
        pytest.skip("the host has no membarrier")
    assert mask >= 0 and mask & ~0x7F == 0                 # never the RSEQ commands
    assert sc(k, "membarrier", 0, 1, 0) == -errno.EINVAL
    assert sc(k, "membarrier", 128, 0, 0) == -errno.EINVAL   # PRIVATE_EXPEDITED_RSEQ
    assert sc(k, "membarrier", 3, 0, 0) == -errno.EINVAL
    if mask & 8:
        assert sc(k, "membarrier", 8, 0, 0) == -errno.EPERM      # not registered yet
        assert sc(k, "membarrier", 16, 0, 0) == 0
        assert sc(k, "membarrier", 8, 0, 0) == 0
    if mask & 32:
        flushed = []
        k.on_icache_flush = lambda: flushed.append(1)
        assert sc(k, "membarrier", 64, 0, 0) == 0
        assert sc(k, "membarrier", 32, 0, 0) == 0 and flushed == [1]


def test_strace_lines(mem, g):
    import io
    log = io.StringIO()
    kern = LinuxKernel(mem, RISCV64_ABI, brk_start=0x20_0000, exe_path="/bin/x", strace=log)
    try:
        sc(kern, "socket", AF_INET, SOCK_STREAM, 0)
        sc(kern, "epoll_create1", 0)
        lines = log.getvalue().splitlines()
        assert lines[0] == "socket(2, 0x1, 0) = -97 EAFNOSUPPORT"
        assert lines[1].startswith("epoll_create1(0x0) = ")
    finally:
        kern.close()


def test_two_guest_threads_wait_independently(k, g, mem):
    """Each guest thread waits on its own wake fd: a signal for one thread
    interrupts its wait only; the other's wait goes on until its fd is ready."""
    from runtime.linux.threads import GuestThread

    r, w = pipe(k, g, mem)
    ep = sc(k, "epoll_create1", 0)
    r2, _w2 = pipe(k, g, mem)
    sc(k, "epoll_ctl", ep, 1, r2, g.bytes(RISCV64_ABI.pack_epoll_event(EPOLLIN, 9)))
    fds = g.bytes(struct.pack("<ihh", r, POLLIN, 0))
    out = g.alloc(16)
    ta, tb = GuestThread(tid=10001), GuestThread(tid=10002)
    k.sigactions[SIGUSR1] = (0x10000, 0, 0, 0)      # a handler: pending, not fatal
    results: dict[str, int] = {}

    def run(t, name, call):
        k._tls.thread = t
        results[name] = call()

    a = threading.Thread(target=run, args=(ta, "poll", lambda: sc(k, "ppoll", fds, 1, 0, 0, 0)))
    b = threading.Thread(target=run, args=(tb, "epoll",
                                           lambda: sc(k, "epoll_pwait", ep, out, 1, -1, 0, 0)))
    a.start()
    b.start()
    try:
        time.sleep(0.1)
        tb.pending |= 1 << (SIGUSR1 - 1)
        tb.notify()
        b.join(5)
        assert results.get("epoll") == -errno.EINTR
        time.sleep(0.05)
        assert a.is_alive() and "poll" not in results
        sc(k, "write", w, g.bytes(b"!"), 1)
        a.join(5)
        assert results.get("poll") == 1
    finally:
        os.write(k.fds.host(w), b"x")
        a.join(5)
        b.join(5)
        ta.close()
        tb.close()
