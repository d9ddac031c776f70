"""Tests for runtime.linux: the syscall layer against real host behaviour."""

from __future__ import annotations

import errno
import io
import os
import stat
import struct
import subprocess
import sys
import time

import pytest

from runtime.guest_memory import PROT_EXEC, PROT_READ, PROT_WRITE, GuestMemory
from runtime.linux import AARCH64_ABI, RISCV64_ABI, X86_64_ABI
from runtime.linux.kernel import GuestExit, GuestKilled, LinuxKernel

NR = RISCV64_ABI.numbers
AT_FDCWD = -100
BUF = 0x10000          # scratch page range used by the tests
BUF_SIZE = 0x10000
UNMAPPED = 0x5000_0000


@pytest.fixture
def mem():
    m = GuestMemory()
    m.map(BUF, BUF_SIZE, PROT_READ | PROT_WRITE, "scratch")
    yield m
    m.release()


@pytest.fixture
def log():
    return io.StringIO()


@pytest.fixture
def k(mem, log):
    kern = LinuxKernel(mem, RISCV64_ABI, brk_start=0x20_0000, exe_path="/usr/bin/guest-prog",
                       strace=log)
    yield kern
    kern.close()


class Scratch:
    """Bump allocator of guest scratch memory."""

    def __init__(self, mem):
        self.mem = mem
        self.next = BUF

    def alloc(self, size: int) -> int:
        addr = self.next
        self.next = (self.next + size + 15) & ~15
        assert self.next <= BUF + BUF_SIZE
        return addr

    def bytes(self, data: bytes) -> int:
        addr = self.alloc(len(data))
        self.mem.write(addr, data)
        return addr

    def str(self, s) -> int:
        if isinstance(s, os.PathLike):
            s = os.fspath(s)
        if isinstance(s, str):
            s = s.encode()
        return self.bytes(s + b"\0")


@pytest.fixture
def g(mem):
    return Scratch(mem)


def sc(k, name, *args):
    return k.syscall(NR[name], list(args))


# -- ABI tables ----------------------------------------------------------------

def test_abi_numbers():
    assert (NR["read"], NR["write"], NR["openat"], NR["close"]) == (63, 64, 56, 57)
    assert (NR["exit"], NR["exit_group"], NR["brk"], NR["mmap"], NR["munmap"]) == (93, 94, 214, 222, 215)
    assert (NR["newfstatat"], NR["fstat"], NR["getdents64"], NR["statx"]) == (79, 80, 61, 291)
    assert NR["riscv_flush_icache"] == 259
    assert "riscv_flush_icache" not in AARCH64_ABI.numbers
    assert AARCH64_ABI.nr("openat") == 56 and AARCH64_ABI.nr("renameat") == 38
    x = X86_64_ABI.numbers
    assert (x["read"], x["write"], x["open"], x["stat"], x["mmap"], x["exit_group"]) == (0, 1, 2, 4, 9, 231)
    assert x["arch_prctl"] == 158 and x["newfstatat"] == 262
    assert RISCV64_ABI.name_of(214) == "brk"


def test_aarch64_open_flags():
    a = AARCH64_ABI
    assert a.open_flags_to_host(0o40000) == 0o200000            # O_DIRECTORY
    assert a.open_flags_to_host(0o100000) == 0o400000           # O_NOFOLLOW
    assert a.open_flags_from_host(0o200000 | 2) == 0o40000 | 2
    assert RISCV64_ABI.open_flags_to_host(0o200000) == 0o200000


def test_stat_layout_sizes():
    st = os.stat("/")
    assert len(RISCV64_ABI.pack_stat(st)) == 128
    assert len(X86_64_ABI.pack_stat(st)) == 144
    raw = X86_64_ABI.pack_stat(st)
    assert struct.unpack_from("<I", raw, 24)[0] == st.st_mode
    assert struct.unpack_from("<q", raw, 48)[0] == st.st_size


# -- read/write/open/close ---------------------------------------------------------

def test_write_stdout_pipe_and_read(k, g, mem):
    fds = g.alloc(8)
    assert sc(k, "pipe2", fds, 0) == 0
    r, w = struct.unpack("<ii", mem.read(fds, 8))
    assert r >= 3 and w == r + 1
    msg = g.bytes(b"hello pipe")
    assert sc(k, "write", w, msg, 10) == 10
    out = g.alloc(32)
    assert sc(k, "read", r, out, 32) == 10
    assert mem.read(out, 10) == b"hello pipe"
    # readv / writev
    iov = g.alloc(32)
    a, b = g.bytes(b"abc"), g.bytes(b"defg")
    mem.write(iov, struct.pack("<QQQQ", a, 3, b, 4))
    assert sc(k, "writev", w, iov, 2) == 7
    d1, d2 = g.alloc(2), g.alloc(8)
    mem.write(iov, struct.pack("<QQQQ", d1, 2, d2, 8))
    assert sc(k, "readv", r, iov, 2) == 7
    assert mem.read(d1, 2) == b"ab" and mem.read(d2, 5) == b"cdefg"
    assert sc(k, "close", w) == 0
    assert sc(k, "read", r, out, 32) == 0          # EOF
    assert sc(k, "close", r) == 0
    assert sc(k, "close", r) == -errno.EBADF


def test_files(k, g, mem, tmp_path):
    path = tmp_path / "f.txt"
    p = g.str(path)
    fd = sc(k, "openat", AT_FDCWD, p, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o640)
    assert fd >= 3
    assert sc(k, "write", fd, g.bytes(b"0123456789"), 10) == 10
    assert path.read_bytes() == b"0123456789"
    assert sc(k, "lseek", fd, 2, os.SEEK_SET) == 2
    out = g.alloc(16)
    assert sc(k, "read", fd, out, 3) == 3 and mem.read(out, 3) == b"234"
    assert sc(k, "pread64", fd, out, 4, 6) == 4 and mem.read(out, 4) == b"6789"
    assert sc(k, "pwrite64", fd, g.bytes(b"XY"), 2, 0) == 2
    assert path.read_bytes() == b"XY23456789"
    assert sc(k, "lseek", fd, (-1) & (1 << 64) - 1, os.SEEK_END) == 9
    assert sc(k, "lseek", fd, 0, 77) == -errno.EINVAL
    assert stat.S_IMODE(path.stat().st_mode) == 0o640 & ~_umask()
    assert sc(k, "close", fd) == 0
    assert sc(k, "openat", AT_FDCWD, g.str(tmp_path / "missing"), os.O_RDONLY, 0) == -errno.ENOENT
    assert sc(k, "openat", AT_FDCWD, g.str(""), os.O_RDONLY, 0) == -errno.ENOENT


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


def test_openat_relative_to_dirfd(k, g, tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x").write_text("data")
    d = sc(k, "openat", AT_FDCWD, g.str(tmp_path / "sub"), os.O_RDONLY | os.O_DIRECTORY, 0)
    assert d >= 3
    fd = sc(k, "openat", d, g.str("x"), os.O_RDONLY, 0)
    assert fd > d
    assert sc(k, "openat", 77, g.str("x"), os.O_RDONLY, 0) == -errno.EBADF
    # Absolute paths ignore dirfd, even a bad one.
    assert sc(k, "openat", 77, g.str(tmp_path / "sub" / "x"), os.O_RDONLY, 0) >= 3


def test_fd_isolation(k, g):
    host_fd = os.open("/dev/null", os.O_RDONLY)
    try:
        # The guest never opened host_fd: it cannot close, read, or dup it.
        guest_view = host_fd if host_fd >= 3 else 5
        if guest_view in k.fds:
            pytest.skip("host fd number collides with a guest fd")
        assert sc(k, "close", guest_view) == -errno.EBADF
        assert sc(k, "read", guest_view, g.alloc(4), 4) == -errno.EBADF
        assert sc(k, "dup", guest_view) == -errno.EBADF
        os.fstat(host_fd)                       # still open on the host
    finally:
        os.close(host_fd)
    assert sc(k, "close", 5) == -errno.EBADF
    # Closing the guest's stdout does not close the host's.
    assert sc(k, "close", 1) == 0
    os.fstat(1)
    assert sc(k, "write", 1, g.bytes(b"x"), 1) == -errno.EBADF


def test_efault(k, g, tmp_path):
    assert sc(k, "write", 1, UNMAPPED, 4) == -errno.EFAULT
    assert sc(k, "read", 0, UNMAPPED, 4) == -errno.EFAULT
    assert sc(k, "openat", AT_FDCWD, UNMAPPED, 0, 0) == -errno.EFAULT
    assert sc(k, "newfstatat", AT_FDCWD, g.str("/"), UNMAPPED, 0) == -errno.EFAULT
    assert sc(k, "uname", UNMAPPED) == -errno.EFAULT
    assert sc(k, "clock_gettime", 0, UNMAPPED) == -errno.EFAULT
    assert sc(k, "pipe2", UNMAPPED, 0) == -errno.EFAULT
    assert sc(k, "getcwd", UNMAPPED, 4096) == -errno.EFAULT
    # A read-only page is not writable for read().
    k.mem.map(0x30000, 4096, PROT_READ)
    fd = sc(k, "openat", AT_FDCWD, g.str("/dev/zero"), 0, 0)
    assert sc(k, "read", fd, 0x30000, 16) == -errno.EFAULT
    # A buffer that runs into unmapped memory gives a short read.
    assert sc(k, "read", fd, BUF + BUF_SIZE - 8, 64) == 8


# -- stat family -------------------------------------------------------------------

def test_newfstatat_layout(k, g, mem, tmp_path):
    f = tmp_path / "s"
    f.write_bytes(b"x" * 1234)
    st = os.stat(f)
    buf = g.alloc(128)
    assert sc(k, "newfstatat", AT_FDCWD, g.str(f), buf, 0) == 0
    raw = mem.read(buf, 128)
    dev, ino, mode, nlink, uid, gid = struct.unpack_from("<QQIIII", raw, 0)
    assert (dev, ino, mode, nlink, uid, gid) == (st.st_dev, st.st_ino, st.st_mode, st.st_nlink,
                                                 st.st_uid, st.st_gid)
    assert struct.unpack_from("<I", raw, 16)[0] == st.st_mode          # st_mode at 16
    assert struct.unpack_from("<q", raw, 48)[0] == 1234                # st_size at 48
    assert struct.unpack_from("<i", raw, 56)[0] == st.st_blksize
    assert struct.unpack_from("<q", raw, 64)[0] == st.st_blocks
    assert struct.unpack_from("<qQ", raw, 88) == divmod(st.st_mtime_ns, 10**9)
    # fstat and AT_EMPTY_PATH agree
    fd = sc(k, "openat", AT_FDCWD, g.str(f), os.O_RDONLY, 0)
    buf2 = g.alloc(128)
    assert sc(k, "fstat", fd, buf2) == 0
    assert mem.read(buf2, 128)[:64] == raw[:64]
    buf3 = g.alloc(128)
    assert sc(k, "newfstatat", fd, g.str(""), buf3, 0x1000) == 0
    assert mem.read(buf3, 64) == raw[:64]
    assert sc(k, "newfstatat", fd, g.str(""), buf3, 0) == -errno.ENOENT
    assert sc(k, "newfstatat", AT_FDCWD, g.str(tmp_path / "nope"), buf3, 0) == -errno.ENOENT


def test_lstat_nofollow(k, g, mem, tmp_path):
    (tmp_path / "t").write_text("x")
    os.symlink("t", tmp_path / "l")
    buf = g.alloc(128)
    assert sc(k, "newfstatat", AT_FDCWD, g.str(tmp_path / "l"), buf, 0x100) == 0
    assert stat.S_ISLNK(struct.unpack_from("<I", mem.read(buf, 128), 16)[0])
    assert sc(k, "newfstatat", AT_FDCWD, g.str(tmp_path / "l"), buf, 0) == 0
    assert stat.S_ISREG(struct.unpack_from("<I", mem.read(buf, 128), 16)[0])


def test_statx(k, g, mem, tmp_path):
    f = tmp_path / "sx"
    f.write_bytes(b"y" * 77)
    buf = g.alloc(256)
    assert sc(k, "statx", AT_FDCWD, g.str(f), 0, 0xFFF, buf) == 0
    raw = mem.read(buf, 256)
    mask, = struct.unpack_from("<I", raw, 0)
    assert mask & 0x200                                        # STATX_SIZE
    assert struct.unpack_from("<H", raw, 0x1C)[0] == os.stat(f).st_mode
    assert struct.unpack_from("<Q", raw, 0x28)[0] == 77        # stx_size
    assert sc(k, "statx", AT_FDCWD, g.str(tmp_path / "no"), 0, 0xFFF, buf) == -errno.ENOENT


def test_getdents64_layout(k, g, mem, tmp_path):
    for n in ("a", "bb", "ccc"):
        (tmp_path / n).write_text(n)
    (tmp_path / "dir").mkdir()
    fd = sc(k, "openat", AT_FDCWD, g.str(tmp_path), os.O_RDONLY | os.O_DIRECTORY, 0)
    buf = g.alloc(4096)
    n = sc(k, "getdents64", fd, buf, 4096)
    assert n > 0
    raw = mem.read(buf, n)
    names, off = {}, 0
    while off < n:
        ino, d_off, reclen, dtype = struct.unpack_from("<QqHB", raw, off)
        name = raw[off + 19:off + reclen].split(b"\0")[0]
        names[name] = dtype
        assert reclen % 8 == 0
        off += reclen
    assert set(names) == {b".", b"..", b"a", b"bb", b"ccc", b"dir"}
    assert names[b"dir"] == 4 and names[b"a"] == 8           # DT_DIR, DT_REG
    assert sc(k, "getdents64", fd, buf, 4096) == 0
    f = sc(k, "openat", AT_FDCWD, g.str(tmp_path / "a"), 0, 0)
    assert sc(k, "getdents64", f, buf, 4096) == -errno.ENOTDIR


# -- names ---------------------------------------------------------------------

def test_rename_unlink_mkdir(k, g, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("1")
    assert "renameat" not in NR                     # riscv64 only has renameat2
    assert sc(k, "renameat2", AT_FDCWD, g.str(a), AT_FDCWD, g.str(b), 0) == 0
    assert not a.exists() and b.read_text() == "1"
    a.write_text("2")
    assert sc(k, "renameat2", AT_FDCWD, g.str(a), AT_FDCWD, g.str(b), 1) == -errno.EEXIST
    assert sc(k, "unlinkat", AT_FDCWD, g.str(b), 0) == 0 and not b.exists()
    d = tmp_path / "d"
    assert sc(k, "mkdirat", AT_FDCWD, g.str(d), 0o755) == 0 and d.is_dir()
    assert sc(k, "mkdirat", AT_FDCWD, g.str(d), 0o755) == -errno.EEXIST
    assert sc(k, "unlinkat", AT_FDCWD, g.str(d), 0) in (-errno.EISDIR, -errno.EPERM)
    assert sc(k, "unlinkat", AT_FDCWD, g.str(d), 0x200) == 0 and not d.exists()


def test_readlinkat(k, g, mem, tmp_path):
    os.symlink("target-name", tmp_path / "ln")
    buf = g.alloc(64)
    assert sc(k, "readlinkat", AT_FDCWD, g.str(tmp_path / "ln"), buf, 64) == 11
    assert mem.read(buf, 11) == b"target-name"
    assert sc(k, "readlinkat", AT_FDCWD, g.str(tmp_path / "ln"), buf, 4) == 4
    exe = b"/usr/bin/guest-prog"
    assert sc(k, "readlinkat", AT_FDCWD, g.str("/proc/self/exe"), buf, 64) == len(exe)
    assert mem.read(buf, len(exe)) == exe
    assert sc(k, "readlinkat", AT_FDCWD, g.str(tmp_path / "ln"), buf, 0) == -errno.EINVAL


def test_faccessat_getcwd_chdir(k, g, mem, tmp_path):
    f = tmp_path / "acc"
    f.write_text("")
    f.chmod(0o600)
    assert sc(k, "faccessat", AT_FDCWD, g.str(f), os.R_OK) == 0
    assert sc(k, "faccessat", AT_FDCWD, g.str(tmp_path / "no"), os.F_OK) == -errno.ENOENT
    assert sc(k, "faccessat2", AT_FDCWD, g.str(f), os.R_OK, 0x200) == 0
    assert sc(k, "faccessat", AT_FDCWD, g.str(f), 0o10) == -errno.EINVAL
    old = os.getcwd()
    try:
        assert sc(k, "chdir", g.str(tmp_path)) == 0
        buf = g.alloc(4096)
        n = sc(k, "getcwd", buf, 4096)
        assert mem.read(buf, n) == os.fsencode(os.path.realpath(tmp_path)) + b"\0"
        assert sc(k, "getcwd", buf, 2) == -errno.ERANGE
        assert sc(k, "chdir", g.str(tmp_path / "no")) == -errno.ENOENT
    finally:
        os.chdir(old)


# -- ioctl/fcntl/dup -------------------------------------------------------------

def test_ioctl_and_fcntl(k, g, mem, tmp_path):
    f = tmp_path / "plain"
    f.write_text("x")
    fd = sc(k, "openat", AT_FDCWD, g.str(f), os.O_RDWR, 0)
    buf = g.alloc(64)
    assert sc(k, "ioctl", fd, 0x5401, buf) == -errno.ENOTTY          # TCGETS
    assert sc(k, "ioctl", fd, 0x5413, buf) == -errno.ENOTTY          # TIOCGWINSZ
    assert sc(k, "ioctl", 99, 0x5401, buf) == -errno.EBADF
    assert sc(k, "fcntl", fd, 1, 0) == 0                             # F_GETFD
    assert sc(k, "fcntl", fd, 2, 1) == 0                             # F_SETFD
    assert sc(k, "fcntl", fd, 1, 0) == 1
    assert sc(k, "fcntl", fd, 3, 0) & 3 == os.O_RDWR                 # F_GETFL
    assert sc(k, "fcntl", fd, 4, os.O_APPEND) == 0
    assert sc(k, "fcntl", fd, 3, 0) & os.O_APPEND
    d = sc(k, "fcntl", fd, 0, 10)                                    # F_DUPFD
    assert d == 10
    assert sc(k, "fcntl", d, 1, 0) == 0
    d2 = sc(k, "fcntl", fd, 1030, 10)                                # F_DUPFD_CLOEXEC
    assert d2 == 11 and sc(k, "fcntl", d2, 1, 0) == 1
    assert sc(k, "fcntl", fd, 9999, 0) == -errno.EINVAL
    e = sc(k, "dup", fd)
    assert e == fd + 1
    assert sc(k, "dup3", fd, 20, 0o2000000) == 20 and sc(k, "fcntl", 20, 1, 0) == 1
    assert sc(k, "dup3", fd, fd, 0) == -errno.EINVAL
    assert sc(k, "dup3", fd, 21, 1) == -errno.EINVAL
    # The dup shares the file offset with the original.
    assert sc(k, "lseek", 20, 1, 0) == 1
    assert sc(k, "lseek", fd, 0, 1) == 1


def test_record_locks_are_the_host_files_locks(k, g, mem, tmp_path):
    """fcntl F_SETLK/F_GETLK/F_OFD_*: SQLite's default VFS locks its
    database this way (it failed with "disk I/O error" on EINVAL). The
    locks are the host file's, seen by other processes as on Linux."""
    f = tmp_path / "db"
    f.write_bytes(bytes(4096))
    fd = sc(k, "openat", AT_FDCWD, g.str(f), os.O_RDWR, 0)
    lk = g.alloc(32)

    def flock(l_type: int, start: int, length: int) -> None:
        mem.write(lk, struct.pack("<hhxxxxqqixxxx", l_type, 0, start, length, 0))

    flock(1, 100, 10)                                                   # F_WRLCK bytes 100..109
    assert sc(k, "fcntl", fd, 6, lk) == 0                               # F_SETLK
    # Another process sees the guest's lock, and its holder.
    probe = ("import fcntl, os, struct, sys\n"
             "fd = os.open(sys.argv[1], os.O_RDWR)\n"
             "out = fcntl.fcntl(fd, fcntl.F_GETLK, struct.pack('hhqqi', fcntl.F_WRLCK, 0, 0, 0, 0))\n"
             "t, w, start, length, pid = struct.unpack('hhqqi', out)\n"
             "print(t, start, length, pid)\n")
    seen = subprocess.run([sys.executable, "-c", probe, str(f)], capture_output=True, text=True, check=True)
    assert seen.stdout.split() == ["1", "100", "10", str(os.getpid())]
    # F_GETLK from the guest on a range it does not conflict with: F_UNLCK back.
    flock(1, 0, 10)
    assert sc(k, "fcntl", fd, 5, lk) == 0 and struct.unpack_from("<h", mem.read(lk, 2))[0] == 2
    flock(2, 100, 10)                                                   # F_UNLCK
    assert sc(k, "fcntl", fd, 6, lk) == 0
    seen = subprocess.run([sys.executable, "-c", probe, str(f)], capture_output=True, text=True, check=True)
    assert seen.stdout.split()[0] == "2"                                # nothing held
    # An open-file-description lock (F_OFD_SETLK) needs l_pid 0, as on Linux.
    flock(0, 0, 0)                                                      # F_RDLCK, whole file
    assert sc(k, "fcntl", fd, 37, lk) == 0
    mem.write(lk, struct.pack("<h", 7))                                 # a bad l_type
    assert sc(k, "fcntl", fd, 6, lk) == -errno.EINVAL
    assert sc(k, "fcntl", fd, 6, 8) == -errno.EFAULT                    # a bad pointer


def test_ioctl_tty_passthrough(k, g, mem):
    try:
        master, slave = os.openpty()
    except OSError:
        pytest.skip("no pty")
    try:
        k.fds.put(7, os.dup(slave))
        buf = g.alloc(64)
        assert sc(k, "ioctl", 7, 0x5401, buf) == 0
        assert sc(k, "ioctl", 7, 0x5413, buf) == 0
        assert sc(k, "ioctl", 7, 0x1234, buf) == -errno.ENOTTY
    finally:
        os.close(master)
        os.close(slave)


# -- memory ------------------------------------------------------------------------

def test_brk(k, mem):
    start = sc(k, "brk", 0)
    assert start == 0x20_0000
    assert sc(k, "brk", start + 0x1800) == start + 0x1800
    mem.write(start, b"heap")
    mem.write(start + 0x17FF, b"z")
    assert sc(k, "brk", start + 0x100000) == start + 0x100000
    assert mem.read(start + 0x80000, 8) == bytes(8)
    assert sc(k, "brk", start + 0x1000) == start + 0x1000             # shrink
    assert mem.find_mapping(start + 0x2000) is None
    assert sc(k, "brk", start - 0x1000) == start + 0x1000             # below start: refused
    # Growing into an existing mapping fails (returns the old break).
    mem.map(start + 0x10000, 0x1000, PROT_READ)
    assert sc(k, "brk", start + 0x20000) == start + 0x1000


def test_mmap_anonymous_and_munmap(k, mem):
    a = sc(k, "mmap", 0, 10000, PROT_READ | PROT_WRITE, 0x22, -1, 0)
    assert a > 0 and a % 4096 == 0 and a + 12288 <= 0xE000_0000
    mem.write(a + 9999, b"!")
    assert mem.read(a, 8) == bytes(8)
    b = sc(k, "mmap", 0, 4096, PROT_READ, 0x22, -1, 0)
    assert b != a and not (a <= b < a + 12288)
    # Hint honoured when free
    c = sc(k, "mmap", 0x4000_0000, 4096, PROT_READ, 0x22, -1, 0)
    assert c == 0x4000_0000
    # MAP_FIXED replaces
    mem.write(a, b"old")
    assert sc(k, "mmap", a, 4096, PROT_READ | PROT_WRITE, 0x32, -1, 0) == a
    assert mem.read(a, 3) == bytes(3)
    # MAP_FIXED_NOREPLACE refuses an occupied range
    assert sc(k, "mmap", a, 4096, PROT_READ, 0x100022, -1, 0) == -errno.EEXIST
    assert sc(k, "mmap", 0, 0, PROT_READ, 0x22, -1, 0) == -errno.EINVAL
    assert sc(k, "mmap", 0, 4096, PROT_READ, 0x20, -1, 0) == -errno.EINVAL     # no type
    assert sc(k, "mmap", a + 1, 4096, PROT_READ, 0x32, -1, 0) == -errno.EINVAL
    assert sc(k, "mmap", 0, 4096, PROT_READ, 0x2, 99, 0) == -errno.EBADF
    assert sc(k, "munmap", a, 12288) == 0
    assert mem.find_mapping(a) is None
    assert sc(k, "munmap", a + 1, 4096) == -errno.EINVAL
    assert sc(k, "munmap", a, 4096) == 0                # unmapping nothing is fine


def test_mmap_file_private_and_shared(k, g, mem, tmp_path):
    f = tmp_path / "m"
    f.write_bytes(b"A" * 4096 + b"B" * 100)
    fd = sc(k, "openat", AT_FDCWD, g.str(f), os.O_RDWR, 0)
    a = sc(k, "mmap", 0, 8192, PROT_READ | PROT_WRITE, 0x2, fd, 0)
    assert mem.read(a, 4) == b"AAAA" and mem.read(a + 4096, 101) == b"B" * 100 + b"\0"
    mem.write(a, b"private")
    assert f.read_bytes()[:7] == b"AAAAAAA"              # private: file unchanged
    b = sc(k, "mmap", 0, 4096, PROT_READ, 0x2, fd, 4096)
    assert mem.read(b, 2) == b"BB"
    assert sc(k, "mmap", 0, 4096, PROT_READ, 0x2, fd, 100) == -errno.EINVAL
    s = sc(k, "mmap", 0, 4096, PROT_READ | PROT_WRITE, 0x1, fd, 0)
    mem.write(s, b"shared")
    assert f.read_bytes()[:6] == b"shared"
    ro = sc(k, "openat", AT_FDCWD, g.str(f), os.O_RDONLY, 0)
    assert sc(k, "mmap", 0, 4096, PROT_READ | PROT_WRITE, 0x1, ro, 0) == -errno.EACCES
    d = sc(k, "openat", AT_FDCWD, g.str(tmp_path), os.O_RDONLY, 0)
    assert sc(k, "mmap", 0, 4096, PROT_READ, 0x2, d, 0) == -errno.ENODEV


def test_mprotect(k, mem):
    a = sc(k, "mmap", 0, 8192, PROT_READ | PROT_WRITE, 0x22, -1, 0)
    assert sc(k, "mprotect", a, 4096, PROT_READ) == 0
    with pytest.raises(Exception):
        mem.write(a, b"x")
    mem.write(a + 4096, b"x")
    assert sc(k, "read", 0, a, 1) == -errno.EFAULT
    assert sc(k, "mprotect", a + 1, 4096, PROT_READ) == -errno.EINVAL
    assert sc(k, "mprotect", 0x6000_0000, 4096, PROT_READ) == -errno.ENOMEM
    assert sc(k, "mprotect", a, 4096, PROT_READ | PROT_EXEC) == 0
    assert mem.find_mapping(a).prot == PROT_READ | PROT_EXEC


def test_mremap(k, mem):
    a = sc(k, "mmap", 0, 8192, PROT_READ | PROT_WRITE, 0x22, -1, 0)
    mem.write(a, b"keep me")
    # Shrink in place
    assert sc(k, "mremap", a, 8192, 4096, 0, 0) == a
    assert mem.find_mapping(a + 4096) is None
    # Block growth in place, then grow with MAYMOVE
    sc(k, "mmap", a + 4096, 4096, PROT_READ, 0x32, -1, 0)
    assert sc(k, "mremap", a, 4096, 16384, 0, 0) == -errno.ENOMEM
    b = sc(k, "mremap", a, 4096, 16384, 1, 0)
    assert b > 0 and b != a
    assert mem.read(b, 7) == b"keep me"
    assert mem.find_mapping(a) is None
    assert mem.find_mapping(b).prot == PROT_READ | PROT_WRITE
    mem.write(b + 16383, b"x")
    # Grow in place when the space is free
    assert sc(k, "munmap", b + 16384, 16384) == 0
    assert sc(k, "mremap", b, 16384, 32768, 0, 0) == b
    # MREMAP_FIXED
    c = sc(k, "mremap", b, 32768, 32768, 3, 0x4100_0000)
    assert c == 0x4100_0000 and mem.read(c, 7) == b"keep me"
    assert sc(k, "mremap", 0x6000_0000, 4096, 8192, 1, 0) == -errno.EFAULT
    assert sc(k, "mremap", c, 4096, 8192, 2, 0) == -errno.EINVAL


def test_madvise_dontneed(k, mem):
    a = sc(k, "mmap", 0, 8192, PROT_READ | PROT_WRITE, 0x22, -1, 0)
    mem.write(a, b"dirty")
    mem.write(a + 4096, b"dirty")
    assert sc(k, "madvise", a, 4096, 4) == 0
    assert mem.read(a, 5) == bytes(5)
    assert mem.read(a + 4096, 5) == b"dirty"
    assert sc(k, "madvise", a, 4096, 3) == 0             # MADV_WILLNEED: no-op
    assert sc(k, "madvise", 0x6000_0000, 4096, 4) == -errno.ENOMEM


# -- process / signals -----------------------------------------------------------

def test_exit_and_exit_group(k, log):
    with pytest.raises(GuestExit) as ei:
        sc(k, "exit_group", 3)
    assert ei.value.status == 3
    assert "exit_group(3) = ?" in log.getvalue()
    with pytest.raises(GuestExit) as ei:
        sc(k, "exit", 256 + 7)
    assert ei.value.status == 7


def test_tgkill_sigabrt(k, log, mem, g):
    pid = sc(k, "getpid")
    assert pid == os.getpid() and sc(k, "gettid") == pid
    with pytest.raises(GuestKilled) as ei:
        sc(k, "tgkill", pid, pid, 6)
    assert ei.value.signal == 6
    assert "+++ killed by SIGABRT +++" in log.getvalue()


def test_abort_like_glibc(k, mem, g):
    """glibc raise(): block all, tgkill (pending), restore mask → delivered then."""
    pid = sc(k, "getpid")
    allset, old = g.bytes(struct.pack("<Q", (1 << 64) - 1)), g.alloc(8)
    assert sc(k, "rt_sigprocmask", 0, allset, old, 8) == 0
    assert sc(k, "tgkill", pid, pid, 6) == 0                    # blocked: pending
    with pytest.raises(GuestKilled) as ei:
        sc(k, "rt_sigprocmask", 2, old, 0, 8)
    assert ei.value.signal == 6


def test_signals_ignored_and_handlers(k, mem, g):
    pid = sc(k, "getpid")
    assert sc(k, "kill", pid, 0) == 0
    assert sc(k, "tgkill", pid, pid, 17) == 0                   # SIGCHLD: default ignore
    act = g.bytes(struct.pack("<QQQ", 1, 0, 0))                 # SIG_IGN (riscv: no restorer)
    old = g.alloc(24)
    assert sc(k, "rt_sigaction", 10, act, old, 8) == 0
    assert mem.read(old, 24) == bytes(24)
    assert sc(k, "kill", pid, 10) == 0                          # ignored
    handler = g.bytes(struct.pack("<QQQ", 0x12345, 0x4, 1 << 5))
    assert sc(k, "rt_sigaction", 10, handler, old, 8) == 0
    assert struct.unpack("<QQQ", mem.read(old, 24))[0] == 1
    assert sc(k, "rt_sigaction", 10, 0, old, 8) == 0
    assert struct.unpack("<QQQ", mem.read(old, 24)) == (0x12345, 0x4, 1 << 5)
    assert sc(k, "rt_sigaction", 9, handler, 0, 8) == -errno.EINVAL
    assert sc(k, "rt_sigaction", 10, handler, 0, 4) == -errno.EINVAL
    assert sc(k, "kill", pid, 99) == -errno.EINVAL
    assert sc(k, "kill", 1, 9) == -errno.ESRCH                  # never another process
    assert sc(k, "kill", -1, 9) == -errno.ESRCH      # every process it may signal: its descendants (none)
    # sigprocmask round trip
    s = g.bytes(struct.pack("<Q", 1 << 1))
    o = g.alloc(8)
    assert sc(k, "rt_sigprocmask", 0, s, o, 8) == 0
    assert sc(k, "rt_sigprocmask", 0, 0, o, 8) == 0
    assert mem.read_u64(o) == 2
    # sigaltstack
    ss, oss = g.bytes(struct.pack("<QiiQ", 0x40000, 0, 0, 65536)), g.alloc(24)
    assert sc(k, "sigaltstack", ss, oss) == 0
    assert struct.unpack("<QiiQ", mem.read(oss, 24))[1] == 2    # SS_DISABLE
    assert sc(k, "sigaltstack", 0, oss) == 0
    assert struct.unpack("<QiiQ", mem.read(oss, 24)) == (0x40000, 0, 0, 65536)
    # SS_AUTODISARM (1 << 31) is kept and read back as the int's sign bit
    ss = g.bytes(struct.pack("<QIiQ", 0x50000, 1 << 31, 0, 65536))
    assert sc(k, "sigaltstack", ss, 0) == 0
    assert sc(k, "sigaltstack", 0, oss) == 0
    assert struct.unpack("<QIiQ", mem.read(oss, 24)) == (0x50000, 1 << 31, 0, 65536)


def test_ids_uname_misc(k, g, mem):
    assert sc(k, "getuid") == os.getuid() and sc(k, "geteuid") == os.geteuid()
    assert sc(k, "getgid") == os.getgid() and sc(k, "getegid") == os.getegid()
    assert sc(k, "getppid") == os.getppid()
    assert sc(k, "set_tid_address", 0x1234) == os.getpid()
    assert sc(k, "set_robust_list", 0x1000, 24) == 0
    assert sc(k, "set_robust_list", 0x1000, 8) == -errno.EINVAL
    assert sc(k, "rseq", 0, 32, 0, 0) == -errno.ENOSYS
    buf = g.alloc(6 * 65)
    assert sc(k, "uname", buf) == 0
    fields = [mem.read(buf + 65 * i, 65).split(b"\0")[0] for i in range(6)]
    assert fields[0] == b"Linux" and fields[4] == b"riscv64" and fields[2].startswith(b"6.")
    info = g.alloc(112)
    assert sc(k, "sysinfo", info) == 0
    assert struct.unpack_from("<Q", mem.read(info, 112), 32)[0] > 0      # totalram
    rnd = g.alloc(64)
    assert sc(k, "getrandom", rnd, 64, 0) == 64 and mem.read(rnd, 64) != bytes(64)
    assert sc(k, "getrandom", rnd, 4, 0x80) == -errno.EINVAL
    old = sc(k, "umask", 0o022)
    assert sc(k, "umask", old) == 0o022
    tms = g.alloc(32)
    assert sc(k, "times", tms) > 0
    assert sc(k, "sched_yield") == 0
    mask = g.alloc(128)
    # as many cpus as aotrun may run on (its threads run guest threads in parallel)
    host_cpus = len(os.sched_getaffinity(0))
    assert sc(k, "sched_getaffinity", 0, 128, mask) == 8 and mem.read_u64(mask) == (1 << host_cpus) - 1
    mem.write(mask, (1 << host_cpus).to_bytes(8, "little"))          # only a cpu it does not have
    assert sc(k, "sched_setaffinity", 0, 8, mask) == -errno.EINVAL
    mem.write(mask, (1).to_bytes(8, "little"))
    assert sc(k, "sched_setaffinity", 0, 8, mask) == 0
    cpu = g.alloc(8)
    assert sc(k, "getcpu", cpu, 0, 0) == 0 and 0 <= struct.unpack("<I", mem.read(cpu, 4))[0] < host_cpus
    assert sc(k, "sched_getaffinity", 0, 4, mask) == -errno.EINVAL
    assert sc(k, "socket", 2, 1, 0) == -errno.EAFNOSUPPORT      # AF_INET: no network for the guest


def test_rlimits(k, g, mem):
    old = g.alloc(16)
    assert sc(k, "prlimit64", 0, 3, 0, old) == 0                 # RLIMIT_STACK
    assert struct.unpack("<QQ", mem.read(old, 16))[0] == 8 << 20
    new = g.bytes(struct.pack("<QQ", 100, 200))
    hard = struct.unpack("<QQ", mem.read(old, 16))[1]
    cur_max = min(hard, 200)
    new = g.bytes(struct.pack("<QQ", 100, cur_max))
    assert sc(k, "prlimit64", 0, 4, new, 0) in (0, -errno.EPERM)     # RLIMIT_CORE
    assert sc(k, "setrlimit", 3, g.bytes(struct.pack("<QQ", 1 << 20, hard))) == 0
    assert sc(k, "getrlimit", 3, old) == 0
    assert struct.unpack("<QQ", mem.read(old, 16))[0] == 1 << 20
    assert sc(k, "setrlimit", 3, g.bytes(struct.pack("<QQ", 2, 1))) == -errno.EINVAL
    assert sc(k, "getrlimit", 99, old) == -errno.EINVAL
    assert sc(k, "prlimit64", 1, 3, 0, old) == -errno.ESRCH


def test_futex(k, g, mem):
    word = g.bytes(struct.pack("<I", 5))
    assert sc(k, "futex", word, 0x80, 4, 0, 0, 0) == -errno.EAGAIN     # value differs
    ts = g.bytes(struct.pack("<qq", 0, 1_000_000))
    assert sc(k, "futex", word, 0x80, 5, ts, 0, 0) == -errno.ETIMEDOUT
    assert sc(k, "futex", word, 0x81, 1, 0, 0, 0) == 0                 # wake
    assert sc(k, "futex", UNMAPPED, 0, 0, 0, 0, 0) == -errno.EFAULT
    assert sc(k, "futex", word, 99, 0, 0, 0, 0) == -errno.ENOSYS


def test_time(k, g, mem):
    ts = g.alloc(16)
    assert sc(k, "clock_gettime", 0, ts) == 0
    sec, nsec = struct.unpack("<qq", mem.read(ts, 16))
    assert abs(sec - time.time()) < 5 and 0 <= nsec < 10**9
    assert sc(k, "clock_gettime", 1, ts) == 0
    assert sc(k, "clock_gettime", 12345, ts) == -errno.EINVAL
    assert sc(k, "clock_getres", 1, ts) == 0
    assert struct.unpack("<qq", mem.read(ts, 16))[1] > 0
    tv = g.alloc(16)
    assert sc(k, "gettimeofday", tv, 0) == 0
    assert abs(struct.unpack("<qq", mem.read(tv, 16))[0] - time.time()) < 5
    req = g.bytes(struct.pack("<qq", 0, 2_000_000))
    t0 = time.monotonic()
    assert sc(k, "nanosleep", req, 0) == 0
    assert time.monotonic() - t0 >= 0.002
    assert sc(k, "clock_nanosleep", 1, 0, req, 0) == 0
    bad = g.bytes(struct.pack("<qq", 0, 10**9))
    assert sc(k, "nanosleep", bad, 0) == -errno.EINVAL


# -- strace / unknown --------------------------------------------------------------

def test_enosys_and_strace(k, g, log, tmp_path):
    assert k.syscall(4000, [1, 2, 3]) == -errno.ENOSYS
    assert sc(k, "fanotify_init", 0, 0) == -errno.ENOSYS
    f = tmp_path / "x"
    fd = sc(k, "openat", AT_FDCWD, g.str(f), os.O_WRONLY | os.O_CREAT, 0o644)
    sc(k, "openat", AT_FDCWD, g.str(tmp_path / "nope"), os.O_RDONLY, 0)
    lines = log.getvalue().splitlines()
    assert lines[0] == "syscall_0xfa0(...) = -38 ENOSYS"
    assert lines[1] == "fanotify_init(...) = -38 ENOSYS"
    assert lines[2] == f'openat(AT_FDCWD, "{f}", O_WRONLY|O_CREAT, 0644) = {fd}'
    assert lines[3].endswith("O_RDONLY, 0) = -2 ENOENT")


def test_proc_self_exe_and_maps(mem, g, tmp_path):
    exe = tmp_path / "prog"
    exe.write_bytes(b"\x7fELF-ish")
    kern = LinuxKernel(mem, RISCV64_ABI, brk_start=0x20_0000, exe_path=str(exe))
    try:
        fd = sc(kern, "openat", AT_FDCWD, g.str("/proc/self/exe"), 0, 0)
        buf = g.alloc(16)
        assert sc(kern, "read", fd, buf, 16) == 8 and mem.read(buf, 8) == b"\x7fELF-ish"
        fd = sc(kern, "openat", AT_FDCWD, g.str("/proc/self/maps"), 0, 0)
        out = g.alloc(4096)
        n = sc(kern, "read", fd, out, 4096)
        text = mem.read(out, n).decode()
        assert "00010000-00020000 rw-p" in text
    finally:
        kern.close()


def test_x86_64_abi_extras(mem, g, tmp_path):
    kern = LinuxKernel(mem, X86_64_ABI, brk_start=0x20_0000, exe_path="/bin/x")
    x = X86_64_ABI.numbers
    try:
        f = tmp_path / "q"
        f.write_text("abc")
        fd = kern.syscall(x["open"], [g.str(f), 0, 0])
        assert fd >= 3
        buf = g.alloc(144)
        assert kern.syscall(x["stat"], [g.str(f), buf]) == 0
        assert struct.unpack_from("<q", mem.read(buf, 144), 48)[0] == 3
        assert struct.unpack_from("<I", mem.read(buf, 144), 24)[0] == os.stat(f).st_mode
        assert kern.syscall(x["access"], [g.str(f), os.R_OK]) == 0
        assert kern.syscall(x["dup2"], [fd, fd]) == fd
        assert kern.syscall(x["dup2"], [fd, 9]) == 9
        assert kern.syscall(x["arch_prctl"], [0x1002, 0]) == -errno.ENOSYS
        assert kern.syscall(x["time"], [0]) > 1_600_000_000
        # x86_64 struct sigaction has sa_restorer (32 bytes)
        act = g.bytes(struct.pack("<QQQQ", 0x1000, 0x04000000, 0x2000, 0))
        old = g.alloc(32)
        assert kern.syscall(x["rt_sigaction"], [10, act, 0, 8]) == 0
        assert kern.syscall(x["rt_sigaction"], [10, 0, old, 8]) == 0
        assert struct.unpack("<QQQQ", mem.read(old, 32)) == (0x1000, 0x04000000, 0x2000, 0)
    finally:
        kern.close()


def test_strace_formats(k, g, log):
    sc(k, "write", 1, g.bytes(b"hi\n"), 0)
    fd = sc(k, "openat", AT_FDCWD, g.str("/dev/null"), os.O_RDONLY, 0)
    sc(k, "fcntl", fd, 3, 0)
    sc(k, "rt_sigprocmask", 2, 0, 0, 8)
    sc(k, "mmap", 0, 4096, PROT_READ, 0x22, -1, 0)
    lines = log.getvalue().splitlines()
    assert lines[0] == 'write(1, "", 0) = 0'
    assert lines[2].startswith(f"fcntl({fd}, F_GETFL, 0x0) = ")
    assert lines[3] == "rt_sigprocmask(SIG_SETMASK, NULL, NULL, 8) = 0"
    assert lines[4].startswith("mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0x0) = 0x")


def test_aarch64_abi_kernel(mem, g, tmp_path):
    kern = LinuxKernel(mem, AARCH64_ABI, brk_start=0x20_0000, exe_path="/bin/x")
    try:
        a, b = tmp_path / "a", tmp_path / "b"
        a.write_text("1")
        assert kern.syscall(38, [AT_FDCWD, g.str(a), AT_FDCWD, g.str(b)]) == 0   # renameat
        assert b.exists()
        # aarch64 O_DIRECTORY is 0o40000
        fd = kern.syscall(56, [AT_FDCWD, g.str(tmp_path), 0o40000, 0])
        assert fd >= 3
        assert kern.syscall(56, [AT_FDCWD, g.str(b), 0o40000, 0]) == -errno.ENOTDIR
        assert kern.syscall(25, [fd, 3, 0]) & 0o40000                          # F_GETFL
        buf = g.alloc(6 * 65)
        assert kern.syscall(160, [buf]) == 0                                    # uname
        assert mem.read(buf + 4 * 65, 8).split(b"\0")[0] == b"aarch64"
    finally:
        kern.close()
