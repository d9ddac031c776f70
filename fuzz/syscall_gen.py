"""Structured random system calls for the syscall-layer fuzzer (fuzz/syscalls.py).

``GuestWorld`` sets up what a guest process has when it starts: a work
directory full of things to chew on (files, directories, symlinks good and
bad, a sparse file, an executable), and a guest address space laid out like
a real one (code r-x, read-only data, data rw with an unmapped hole after
it, a heap start, a stack).  ``CallGenerator`` then draws calls: a syscall
the ABI knows (weighted), and for each argument a value of the kind that
argument takes (an open or bogus fd, a path string written into guest
memory, an O_ flag combination, a struct such as an iovec array, timespec,
sigaction or rlimit written into guest memory, a size near a boundary...).
Pointers are drawn from mapped, unmapped, boundary (a struct that runs off
the end of its mapping) and wild values.  Every choice comes from one
``random.Random``, so an episode replays exactly from its seed.
"""

from __future__ import annotations

import os
import random
import stat
import struct
from collections.abc import Callable
from pathlib import Path

from aotc.errors import GuestMemoryError, RuntimeSetupError
from runtime.guest_memory import PAGE, PROT_EXEC, PROT_READ, PROT_WRITE, GuestMemory
from runtime.linux.abi import SyscallAbi
from runtime.linux.kernel import _SYSCALLS, LinuxKernel
from runtime.process import AuxvInfo, build_initial_stack

MASK64 = (1 << 64) - 1
CODE, CODE_SIZE = 0x10000, 0x10000                 # r-x
RODATA, RODATA_SIZE = 0x20000, 0x4000              # r--
DATA, DATA_SIZE = 0x100000, 0x40000                # rw-, argument blobs live here
HOLE = DATA + DATA_SIZE                            # one unmapped page
BSS, BSS_SIZE = HOLE + PAGE, PAGE                  # rw-
BRK_START = 0x200000
STACK_TOP, STACK_SIZE = 0xF000_0000, 8 << 20
MAX_MEMORY = 256 << 20                             # --max-memory of every episode

INTERESTING = [0, 1, 2, 3, 4, 7, 8, 15, 16, 24, 32, 63, 64, 100, 127, 128, 255, 256, 511, 512,
               1023, 1024, 4095, 4096, 4097, 8192, 65535, 65536, 0x7FFF_F000, 0x7FFF_FFFF,
               0x8000_0000, 0xFFFF_FFFF, 1 << 32, (1 << 32) + 1, (1 << 63) - 1, 1 << 63,
               MASK64, MASK64 - 1, MASK64 - 4095, -100 & MASK64, -1 & 0xFFFF_FFFF]

FIXTURE_NAMES = ["file", "empty", "ro", "dir", "dir/sub", "dir/a", "link", "dlink", "loop",
                 "dirlink", "escape", "abslink", "big", "exe"]
EXTRA_PATHS = [b"", b".", b"..", b"/", b"dir/../file", b"nonexistent", b"dir/nonexistent/x",
               b"file/", b"dir/", b"new", b"new2", b"dir/new", b"/proc/self/exe",
               b"/proc/self/maps", b"/proc/self/fd", b"/proc/self/fd/0", b"/proc/self/fd/3",
               b"/proc/self/cwd", b"/proc/self/status", b"/proc/self/mem", b"/proc/1/status",
               b"/proc/self/root/etc", b"/proc", b"/proc/self", b"/proc/self/task",
               b"/proc/self/cwd/file", b"/dev/null", b"/dev/zero", b"/dev/full", b"/dev/urandom",
               b"/etc/passwd", b"/etc", b"/tmp", b"/nonexistent/x", b"a" * 255, b"a" * 256,
               b"\xff\xfe\x80", b"./" * 2100 + b"file", (b"d/" * 1400)[:4094],
               (b"d/" * 1400)[:4095], b"dir/sub/../../escape/x", b"/proc/self/fd/../exe",
               b"/proc/self/cmdline", b"/proc/self/environ", b"/proc/self/auxv", b"/proc/self/stat",
               b"/proc/self/statm", b"/proc/self/root", b"/proc/self/mountinfo", b"/proc/cpuinfo",
               b"/proc/meminfo", b"/proc/self/fdinfo/0", b"/proc/self/../self/exe", b"/proc/./self",
               b"/proc//self//exe", b"/proc/thread-self/fd/1", b"/proc/self/task/1/maps",
               b"/proc/1/exe", b"/proc/self/fd/2/x", b"/proc/self/fd/999", b"/proc/self/exe/",
               b"/proc/self/cwd/dir/a", b"/proc/self/cwd/escape", b"/proc/sys/kernel/hostname",
               b"exe", b"fd", b"fd/0", b"maps", b"../self", b"task", b"self", b"cwd", b"..", b"1"]

O_BITS = [0o100, 0o200, 0o400, 0o1000, 0o2000, 0o4000, 0o10000, 0o20000, 0o40000, 0o100000,
          0o200000, 0o400000, 0o1000000, 0o2000000, 0o4000000, 0o10000000, 0o20000000]
AT_FLAGS = [0, 0x100, 0x200, 0x400, 0x800, 0x1000, 0x1100, 0x6000, 0x8000]
FCNTL_CMDS = [0, 1, 2, 3, 4, 5, 6, 7, 1024, 1025, 1026, 1030, 1031, 1032, 1033, 1034, 36, 37]
IOCTL_REQS = [0x5401, 0x5413, 0x5402, 0x541B, 0x5421, 0x540F, 0x80086601, 0x4004_6602, 0]
CLOCKS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, -1, -2, -6, -10, 12, 1000]
MADVICE = [0, 1, 2, 3, 4, 8, 9, 10, 11, 12, 14, 15, 100, -1]
FUTEX_CMDS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 127]

# Argument kinds per call, where the strace kinds of the registry say too little.
SPECS: dict[str, tuple[str, ...]] = {
    "read": ("fd", "obuf", "count"), "write": ("fd", "ibuf", "count"),
    "pread64": ("fd", "obuf", "count", "off"), "pwrite64": ("fd", "ibuf", "count", "off"),
    "readv": ("fd", "iov", "iovcnt"), "writev": ("fd", "iov", "iovcnt"),
    "lseek": ("fd", "off", "whence"),
    "newfstatat": ("dirfd", "path", "obuf", "atflags"),
    "statx": ("dirfd", "path", "atflags", "x", "obuf"),
    "fstat": ("fd", "obuf"), "stat": ("path", "obuf"), "lstat": ("path", "obuf"),
    "getdents64": ("dfd", "obuf", "count"), "fchdir": ("dfd",),
    "renameat2": ("dirfd", "path", "dirfd", "path", "renameflags"),
    "unlinkat": ("dirfd", "path", "atflags"), "linkat": ("dirfd", "path", "dirfd", "path", "linkflags"),
    "readlinkat": ("dirfd", "path", "obuf", "count"), "readlink": ("path", "obuf", "count"),
    "faccessat": ("dirfd", "path", "amode"), "faccessat2": ("dirfd", "path", "amode", "atflags"),
    "access": ("path", "amode"), "getcwd": ("obuf", "count"), "ftruncate": ("fd", "off"),
    "ioctl": ("fd", "ioctlreq", "obuf"), "fcntl": ("fd", "fcntlcmd", "fcntlarg"),
    "pipe2": ("obuf", "pipeflags"), "dup3": ("fd", "fd", "dupflags"), "pipe": ("obuf",), "brk": ("brkaddr",),
    "mmap": ("addr", "len", "prot", "mflags", "fd", "off"), "munmap": ("addr", "len"),
    "mprotect": ("addr", "len", "prot"), "mremap": ("addr", "len", "len", "mremapflags", "addr"),
    "madvise": ("addr", "len", "madv"), "exit": ("d",), "exit_group": ("d",),
    "set_tid_address": ("p",), "set_robust_list": ("p", "robustlen"),
    "get_robust_list": ("pid", "obuf", "obuf"), "kill": ("pid", "sig"), "tkill": ("pid", "sig"),
    "tgkill": ("pid", "pid", "sig"), "rt_sigaction": ("sig", "sigact", "obuf", "sigsetsize"),
    "rt_sigprocmask": ("how", "sigset", "obuf", "sigsetsize"),
    "rt_sigpending": ("obuf", "sigsetsize"), "sigaltstack": ("stack_t", "obuf"),
    "getpgid": ("pid",), "getsid": ("pid",), "uname": ("obuf",), "sysinfo": ("obuf",),
    "times": ("obuf",), "time": ("obuf",), "getrusage": ("who", "obuf"),
    "getrandom": ("obuf", "count", "grnd"), "prlimit64": ("pid", "rlimres", "rlim", "obuf"),
    "getrlimit": ("rlimres", "obuf"), "setrlimit": ("rlimres", "rlim"),
    "sched_getaffinity": ("pid", "cpusetsize", "obuf"),
    "sched_setaffinity": ("pid", "cpusetsize", "cpuset"), "getcpu": ("obuf", "obuf", "obuf"),
    "futex": ("futexaddr", "futexop", "futexval", "ts", "futexaddr", "futexval3"),
    "clock_gettime": ("clock", "obuf"), "clock_getres": ("clock", "obuf"),
    "gettimeofday": ("obuf", "obuf"), "nanosleep": ("ts", "obuf"),
    "clock_nanosleep": ("clock", "tflags", "ts", "obuf"),
}
# Relative weights (1 unless listed): calls that end the episode are rare.
WEIGHTS = {"exit": 0.05, "exit_group": 0.05, "kill": 0.3, "tkill": 0.3, "tgkill": 0.3,
           "read": 3, "write": 3, "openat": 4, "open": 2, "close": 2, "mmap": 3, "munmap": 1.5,
           "mremap": 2, "mprotect": 1.5, "readv": 2, "writev": 2, "pread64": 2, "pwrite64": 2,
           "newfstatat": 2, "statx": 2, "getdents64": 2, "fcntl": 2, "dup3": 1.5,
           "pipe2": 1.5, "brk": 1.5, "futex": 1.5, "rt_sigaction": 1.5, "rt_sigprocmask": 1.5}


def populate(root: Path, exe: bytes) -> None:
    """The work directory's fixtures (``root`` is empty)."""
    (root / "file").write_bytes(bytes(range(256)) * 32)
    (root / "empty").write_bytes(b"")
    (root / "ro").write_bytes(b"read only\n")
    os.chmod(root / "ro", 0o444)
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "dir" / "a").write_bytes(b"a\n")
    os.symlink("file", root / "link")
    os.symlink("nonexistent", root / "dlink")
    os.symlink("loop", root / "loop")
    os.symlink("dir", root / "dirlink")
    os.symlink("../../../../../../tmp", root / "escape")
    os.symlink("/etc/hostname", root / "abslink")
    with open(root / "big", "wb") as f:
        f.truncate(16 << 20)
    (root / "exe").write_bytes(exe)
    os.chmod(root / "exe", 0o755)


class GuestWorld:
    """One episode's guest: memory laid out like a real process, and its kernel."""

    def __init__(self, abi: SyscallAbi, root: Path, rng: random.Random, strace: object | None) -> None:
        self.root = root
        self.mem = GuestMemory()
        m = self.mem
        m.map(CODE, CODE_SIZE, PROT_READ | PROT_EXEC, "[elf]")
        m.poke(CODE, rng.randbytes(CODE_SIZE // 2) + b"file\0/proc/self/exe\0" * 64)
        m.map(RODATA, RODATA_SIZE, PROT_READ, "[elf]")
        m.poke(RODATA, b"dir/a\0".ljust(PAGE, b"r") + b"file\0" * 16)
        m.map(DATA, DATA_SIZE, PROT_READ | PROT_WRITE, "[elf]")
        m.map(BSS, BSS_SIZE, PROT_READ | PROT_WRITE, "[elf]")
        exe = str(root / "exe").encode()
        self.sp = build_initial_stack(m, argv=[exe, b"-x", b"arg"], envp=[b"HOME=/", b"TERM=dumb"],
                                      auxv_info=AuxvInfo(entry=CODE, phdr_vaddr=CODE + 64, phnum=2),
                                      isa=abi.name, stack_top=STACK_TOP, stack_size=STACK_SIZE,
                                      random_bytes=rng.randbytes(16))
        self.kernel = LinuxKernel(m, abi, brk_start=BRK_START, exe_path=str(root / "exe"),
                                  strace=strace, install_std_fds=False)  # type: ignore[arg-type]
        self.kernel.procfs.record_initial_stack(self.sp)
        self.kernel.max_memory = MAX_MEMORY
        # The guest's stdin/stdout/stderr: files in the work directory.
        self.kernel.fds.put(0, os.open(root / "file", os.O_RDONLY | os.O_CLOEXEC))
        for gfd, name in ((1, "stdout"), (2, "stderr")):
            self.kernel.fds.put(gfd, os.open(root / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND
                                             | os.O_CLOEXEC, 0o644))

    def close(self) -> None:
        self.kernel.close()
        self.mem.release()


class CallGenerator:
    """Draws (syscall name, number, arguments) for one episode."""

    def __init__(self, world: GuestWorld, rng: random.Random) -> None:
        self.w = world
        self.k: LinuxKernel = world.kernel
        self.mem = world.mem
        self.r = rng
        names = sorted(n for n in self.k.abi.numbers if n in _SYSCALLS)
        self.names = names
        self.weights = [WEIGHTS.get(n, 1.0) for n in names]
        self.known = sorted(self.k.abi.numbers.values())
        self.blob = DATA                                      # bump pointer for this call
        self.paths = [n.encode() for n in FIXTURE_NAMES] + EXTRA_PATHS \
            + [str(world.root).encode() + b"/file", str(world.root).encode() + b"/dir"]
        self.builders: dict[str, Callable[[], int]] = {
            "fd": self.fd, "dirfd": self.dirfd, "path": self.path, "oflags": self.oflags,
            "mode": self.mode, "prot": lambda: self.bits([1, 2, 4], 0x10, [0x1000000, 8]),
            "mflags": self.mflags, "sig": self.sig, "fcntlcmd": lambda: self.pick(FCNTL_CMDS, 32),
            "how": lambda: self.pick([0, 1, 2], 3), "d": self.num, "u": self.num, "x": self.num,
            "p": self.ptr, "wbuf": self.ibuf, "ibuf": self.ibuf, "obuf": self.obuf,
            "count": self.count, "off": self.off, "whence": lambda: self.pick([0, 1, 2, 3, 4], 5),
            "atflags": lambda: 0 if self.r.random() < 0.4 else self.bits(AT_FLAGS, 0x8000, [0x10000]), "dfd": self.dfd,
            "renameflags": lambda: self.pick([0, 0, 0, 1, 2, 4, 3, 6], 8),
            "amode": lambda: self.pick([0, 1, 2, 4, 7], 8), "ioctlreq": lambda: self.pick(IOCTL_REQS, 32),
            "fcntlarg": self.fcntlarg, "brkaddr": self.brkaddr, "addr": self.addr, "len": self.length,
            "mremapflags": lambda: self.pick([0, 1, 3, 5, 2, 4], 8), "madv": lambda: self.pick(MADVICE, 16),
            "robustlen": lambda: self.pick([24, 0, 16, 32], 64), "pid": self.pid,
            "sigact": self.sigact, "sigsetsize": lambda: self.pick([8, 0, 4, 16, 128], 64),
            "sigset": self.sigset, "stack_t": self.stack_t, "who": lambda: self.pick([0, -1, 1, 2], 3),
            "grnd": lambda: self.pick([0, 1, 2, 4, 6, 3], 8), "rlimres": lambda: self.pick(list(range(16)), 32),
            "rlim": self.rlim, "cpusetsize": lambda: self.pick([8, 16, 128, 4, 7, 0], 64),
            "cpuset": self.cpuset, "futexaddr": self.futexaddr, "futexop": self.futexop,
            "futexval": self.futexval, "futexval3": self.futexval3, "ts": self.timespec,
            "clock": lambda: self.pick(CLOCKS, 16), "tflags": lambda: self.pick([0, 1], 2),
            "iov": self.iov, "pipeflags": lambda: self.pick([0, 0o2000000, 0o4000, 0o2004000, 0o40000], 32),
            "dupflags": lambda: self.pick([0, 0, 0o2000000], 32),
            "linkflags": lambda: self.pick([0, 0, 0x400, 0x1000], 32), "iovcnt": lambda: self.pick([0, 1, 2, 3, 8, 1024, 1025], 2048),
        }

    # -- the call ----------------------------------------------------------------
    def next_call(self) -> tuple[str, int, list[int]]:
        self.blob = DATA
        r = self.r
        if r.random() < 0.01:                                # unknown or odd numbers
            nr = r.choice([r.randrange(0, 1024), r.getrandbits(64), 1 << 63, MASK64, 0x7FFF_FFFF])
            name = self.k.abi.name_of(nr) or "(unknown nr)"
            return name, nr, [self.num() for _ in range(6)]
        name = r.choices(self.names, self.weights)[0]
        kinds = SPECS.get(name) or _SYSCALLS[name][1]
        self.iov_count = 0
        self.futex_word = 0
        args = [self.builders[k]() & MASK64 for k in kinds]
        if name in ("readv", "writev") and r.random() < 0.8:
            args[2] = self.iov_count
        while len(args) < 6:                                 # junk in unused argument registers
            args.append(r.getrandbits(64) if r.random() < 0.2 else 0)
        return name, self.k.abi.numbers[name], args

    # -- primitives ----------------------------------------------------------------
    def pick(self, values: list[int], wild_bits: int) -> int:
        if self.r.random() < 0.9:
            return self.r.choice(values)
        return self.num() if self.r.random() < 0.5 else self.r.getrandbits(max(wild_bits.bit_length(), 1))

    def num(self) -> int:
        r = self.r.random()
        if r < 0.5:
            return self.r.choice(INTERESTING)
        if r < 0.75:
            return self.r.randrange(0, 4096)
        if r < 0.85:
            return -self.r.randrange(1, 4096) & MASK64
        return self.r.getrandbits(self.r.choice([8, 16, 31, 32, 33, 48, 63, 64]))

    def bits(self, common: list[int], rare_limit: int, rare: list[int]) -> int:
        v = 0
        for b in common:
            if self.r.random() < 0.3:
                v |= b
        if self.r.random() < 0.1:
            v |= self.r.choice(rare) if self.r.random() < 0.5 else self.r.getrandbits(32)
        return v

    def put(self, data: bytes, align: int = 8) -> int:
        """Write ``data`` into the argument area (anywhere the guest left writable or not)."""
        addr = (self.blob + align - 1) & ~(align - 1)
        if addr + len(data) > DATA + DATA_SIZE:
            addr = DATA
        self.blob = addr + len(data)
        try:
            self.mem.poke(addr, data)
        except (GuestMemoryError, RuntimeSetupError):
            pass   # unmapped by the guest, or a file mapping the host will not make writable                                             # the guest unmapped its data
        return addr

    def at_edge(self, data: bytes) -> int:
        """``data`` written so that it ends right where its mapping ends (runs off it by a bit)."""
        maps = [m for m in self.mem.mappings() if m.end - m.start >= len(data)]
        if not maps:
            return self.put(data)
        m = self.r.choice(maps)
        cut = self.r.choice([0, 0, 1, 2, 7])
        addr = m.end - len(data) + cut
        try:
            self.mem.poke(addr, data[:len(data) - cut])
        except (GuestMemoryError, RuntimeSetupError):
            pass   # unmapped by the guest, or a file mapping the host will not make writable
        return addr

    # -- pointers -------------------------------------------------------------------
    def ptr(self) -> int:
        return self._ptr() & MASK64

    def _ptr(self) -> int:
        r = self.r.random()
        maps = self.mem.mappings()
        if r < 0.45 or not maps:
            return self.put(b"", 8) + self.r.choice([0, 0, 8, 64, 4096])
        if r < 0.65:
            m = self.r.choice(maps)
            return m.start + self.r.randrange(0, m.end - m.start)
        if r < 0.78:
            m = self.r.choice(maps)
            return self.r.choice([m.end - self.r.randrange(0, 64), m.start - self.r.randrange(1, 64),
                                  m.end, HOLE - 8, HOLE])
        if r < 0.88:
            return self.r.choice([0, 1, 8, 0xFFF, PAGE, 0x5000_0000, BRK_START + (1 << 20),
                                  STACK_TOP + PAGE])
        return self.r.choice([self.mem.limit - self.r.randrange(0, 64), self.mem.size - 8,
                              self.mem.size, self.mem.limit, self.r.getrandbits(64), 1 << 63,
                              MASK64 - 7, 1 << 40, -4096 & MASK64])

    def obuf(self) -> int:
        return self.ptr()

    def ibuf(self) -> int:
        data = self.r.randbytes(self.r.choice([0, 1, 16, 100, 600]))
        return self.at_edge(data) if self.r.random() < 0.15 else (self.put(data) if self.r.random() < 0.6
                                                                  else self.ptr())

    def count(self) -> int:
        r = self.r.random()
        if r < 0.7:
            return self.r.choice([0, 1, 8, 16, 24, 64, 100, 128, 256, 1024, 4096, 8192, 65536])
        if r < 0.85:
            return self.r.choice(INTERESTING)
        return self.num()

    def off(self) -> int:
        return self.r.choice([0, 0, 1, PAGE, 2 * PAGE, 100, 8191, 16 << 20, 1 << 31, 1 << 40,
                              (1 << 63) - 1, 1 << 63, MASK64, -PAGE & MASK64, self.num()])

    # -- paths and fds -----------------------------------------------------------------
    def path(self) -> int:
        r = self.r.random()
        if r < 0.05:
            return self.put(b"\0", 1)                        # for AT_EMPTY_PATH
        if r < 0.1:
            return self.ptr()
        p = self.r.choice(self.paths)
        if r < 0.2:
            parts = [self.r.choice(self.paths).strip(b"/")[:40] for _ in range(self.r.randrange(1, 5))]
            p = self.r.choice([b"", b"/"]) + b"/".join(parts)
        if self.r.random() < 0.08:
            return self.at_edge(p)                           # no terminator before the edge
        return self.put(p + b"\0", 1)

    def fd(self) -> int:
        r = self.r.random()
        fds = self.k.fds.guest_fds()
        if r < 0.8 and fds:
            return self.r.choice(fds[-4:] if self.r.random() < 0.5 else fds)
        return self.r.choice([-1, -100, 3, 7, 100, 1023, 1024, 1 << 20, 0x7FFF_FFFF, 1 << 32,
                              MASK64]) & MASK64

    def dirfd(self) -> int:
        r = self.r.random()
        if r < 0.5:
            return -100 & MASK64
        dirs = self.dir_fds() if r < 0.85 else []
        return self.r.choice(dirs) if dirs else self.fd()

    def dir_fds(self) -> list[int]:
        out = []
        for gfd in self.k.fds.guest_fds():
            try:
                if stat.S_ISDIR(os.fstat(self.k.fds.host(gfd)).st_mode):
                    out.append(gfd)
            except Exception:  # noqa: BLE001 - an fd the table refuses or the host lost
                pass
        return out

    def dfd(self) -> int:
        dirs = self.dir_fds() if self.r.random() < 0.7 else []
        return self.r.choice(dirs) if dirs else self.fd()

    def oflags(self) -> int:
        if self.r.random() < 0.6:                            # what programs pass
            return self.r.choice([0, 0, 1, 2, 0o100 | 1, 0o100 | 2, 0o1101, 0o2101, 0o300 | 2,
                                  0o200000, 0o2000000, 0o2200000, 0o4000, 0o10000000, 0o20200002]) \
                | self.r.choice([0, 0, 0o2000000])
        return self.r.choice([0, 1, 2, 3]) | self.bits(O_BITS, 1 << 32, [0o40000000, 1 << 31])

    def mode(self) -> int:
        return self.r.choice([0o644, 0o600, 0o755, 0, 0o777, 0o4755, 0o7777, 0xFFFF_FFFF])

    def mflags(self) -> int:
        t = self.r.choice([1, 2, 2, 2, 3, 0, 4, 15])
        return t | self.bits([0x10, 0x20, 0x20, 0x100000, 0x4000, 0x8000, 0x20000], 1 << 32,
                             [0x100, 0x40000, 0x80000])

    def sig(self) -> int:
        return self.pick([0, 1, 2, 6, 9, 10, 11, 13, 14, 15, 17, 18, 19, 20, 23, 28, 31, 32, 33,
                          34, 63, 64, 65, -1], 64)

    def pid(self) -> int:
        return self.pick([0, self.k.pid, self.k.tid, -1, 1, 2, -self.k.pid, os.getppid(), 99999,
                          1 << 31, -(1 << 31)], 64)

    def fcntlarg(self) -> int:
        return self.r.choice([0, 1, 3, 10, 1023, 1024, 0o4000, 0o2000, 0o40000, MASK64, self.num()])

    # -- memory ---------------------------------------------------------------------------
    def addr(self) -> int:
        maps = self.mem.mappings()
        r = self.r.random()
        if r < 0.5 and maps:
            m = self.r.choice(maps)
            pages = (m.end - m.start) // PAGE
            return m.start + PAGE * self.r.randrange(0, pages + 1)
        if r < 0.7:
            return self.r.choice([0, PAGE, 0x10000, 0x5000_0000, 0xE000_0000, BRK_START,
                                  self.mem.limit - PAGE, self.mem.limit, self.mem.size - PAGE,
                                  self.mem.size])
        if r < 0.8 and maps:
            return self.r.choice(maps).start + self.r.randrange(1, PAGE)
        return self.ptr()

    def length(self) -> int:
        r = self.r.random()
        if r < 0.6:
            return PAGE * self.r.choice([1, 1, 2, 3, 4, 16, 64, 256])
        if r < 0.75:
            return self.r.randrange(1, 5 * PAGE)
        return self.r.choice([0, 1 << 28, 1 << 30, 0xFFFF_0000, 0xFFFF_F000, 1 << 32, 1 << 40,
                              1 << 63, MASK64, MASK64 - PAGE + 2, self.num()])

    def brkaddr(self) -> int:
        cur = self.k.brk_cur
        return self.r.choice([0, cur, cur + 1, cur + PAGE, cur + 100 * PAGE, cur - PAGE, BRK_START,
                              BRK_START - 1, cur + (1 << 30), self.mem.limit, self.num()]) & MASK64

    # -- structs ---------------------------------------------------------------------------
    def timespec(self) -> int:
        r = self.r.random()
        if r < 0.1:
            return 0 if self.r.random() < 0.5 else self.ptr()
        if r < 0.9:
            sec, nsec = 0, self.r.randrange(0, 200_000)
        elif r < 0.96:
            sec, nsec = self.r.choice([(-1, 0), (0, -1), (0, 1_000_000_000), (0, 999_999_999 + (1 << 40)),
                                       (1 << 63, 0), (-(1 << 63), 5)])
        elif r < 0.995:
            sec, nsec = self.r.choice([(1 << 62, 0), ((1 << 63) - 1, 999_999_999)])
        else:
            sec, nsec = 3, 0                             # a real sleep: the alarm cuts it
        return self.put(struct.pack("<QQ", sec & MASK64, nsec & MASK64))

    def iov(self) -> int:
        n = self.r.choice([0, 1, 2, 3, 5, 16])
        self.iov_count = n
        vecs = b"".join(struct.pack("<QQ", (self.ibuf() if self.r.random() < 0.5 else self.ptr()) & MASK64,
                                    self.count() & MASK64) for _ in range(n))
        if self.r.random() < 0.1:
            return self.at_edge(vecs)
        return self.put(vecs) if self.r.random() < 0.9 else self.ptr()

    def sigact(self) -> int:
        if self.r.random() < 0.15:
            return self.r.choice([0, self.ptr()])
        handler = self.r.choice([0, 1, CODE + 0x100, 0xDEAD_BEEF, self.num()])
        flags = self.r.choice([0, 0x04000000, 0x4, 0x80000000, 0x08000000, self.num()])
        raw = struct.pack("<QQQQ", handler, flags, self.r.choice([0, CODE, self.num()]),
                          self.r.getrandbits(64) if self.r.random() < 0.5 else 0)
        return self.put(raw)

    def sigset(self) -> int:
        if self.r.random() < 0.2:
            return self.r.choice([0, self.ptr()])
        return self.put(self.r.choice([0, MASK64, 1 << 5, 1 << 9, 1 << 16, self.r.getrandbits(64)])
                        .to_bytes(8, "little"))

    def stack_t(self) -> int:
        if self.r.random() < 0.2:
            return self.r.choice([0, self.ptr()])
        return self.put(struct.pack("<QIiQ", self.r.choice([STACK_TOP - PAGE, 0, self.num()]),
                                    self.r.choice([0, 1, 2, 4, 1 << 31, 0xFFFF_FFFF]), 0,
                                    self.r.choice([0, 2048, 8192, 1 << 20, MASK64, self.num()])))

    def rlim(self) -> int:
        if self.r.random() < 0.15:
            return self.r.choice([0, self.ptr()])
        vals = [0, 1, 3, 64, 1024, 4096, 1 << 20, 8 << 20, MASK64, MASK64 - 1, self.num()]
        return self.put(struct.pack("<QQ", self.r.choice(vals), self.r.choice(vals)))

    def cpuset(self) -> int:
        return self.put(self.r.randbytes(self.r.choice([8, 16, 128]))) if self.r.random() < 0.85 \
            else self.ptr()

    def futexaddr(self) -> int:
        if self.r.random() < 0.6:
            self.futex_word = self.r.choice([0, 1, 2, 0xFFFF_FFFF])
            return self.put(struct.pack("<I", self.futex_word), 4)
        return self.ptr()

    def futexval(self) -> int:
        return self.futex_word if self.r.random() < 0.6 else self.num()

    def futexop(self) -> int:
        return self.r.choice(FUTEX_CMDS) | self.r.choice([0, 0, 128, 256, 384]) if self.r.random() < 0.9 \
            else self.num()

    def futexval3(self) -> int:
        return self.r.choice([0, 1, 0xFFFF_FFFF, self.r.getrandbits(32), self.num()])
