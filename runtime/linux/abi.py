"""Per-ISA Linux system call ABIs: numbers, struct layouts, flag encodings.

Everything the ISA-independent ``LinuxKernel`` needs to know about one guest
architecture lives in a ``SyscallAbi``.  The host is x86_64 Linux; all three
guests are LP64 little-endian, so most structures (timespec, rlimit, utsname,
dirent64, statx, sysinfo, rusage) are laid out identically and only ``stat``,
``sigaction`` and a few ``O_*`` bits differ.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from runtime.linux import numbers

__all__ = ["SyscallAbi", "RISCV64_ABI", "X86_64_ABI", "AARCH64_ABI", "abi_for_isa",
           "HOST_O_DIRECT", "HOST_O_LARGEFILE", "HOST_O_DIRECTORY", "HOST_O_NOFOLLOW"]

# x86_64 host values (== asm-generic) of the O_* bits some ISAs encode differently.
HOST_O_DIRECT = 0o40000
HOST_O_LARGEFILE = 0o100000
HOST_O_DIRECTORY = 0o200000
HOST_O_NOFOLLOW = 0o400000

_TIMESPEC = struct.Struct("<qq")
_RLIMIT = struct.Struct("<QQ")
_UTS_FIELD = 65
_EPOLL_PACKED = struct.Struct("<IQ")        # x86_64
_EPOLL_PADDED = struct.Struct("<I4xQ")      # asm-generic

# asm-generic struct stat (riscv64, aarch64): 128 bytes.
_STAT_GENERIC = struct.Struct("<QQIIIIQQqiiqqQqQqQII")
# x86_64 struct stat: 144 bytes.
_STAT_X86_64 = struct.Struct("<QQQIIIIQqqqQQQQQQqqq")
assert _STAT_GENERIC.size == 128 and _STAT_X86_64.size == 144


def _ns_split(ns: int) -> tuple[int, int]:
    sec, nsec = divmod(ns, 1_000_000_000)
    return sec, nsec


@dataclass(frozen=True)
class SyscallAbi:
    """One guest ISA's view of the Linux system call interface."""

    name: str                                    # "riscv64" | "x86_64" | "aarch64"
    machine: str                                 # uname -m
    numbers: Mapping[str, int]                   # syscall name → number
    stat_kind: str                               # "generic" | "x86_64"
    sigaction_has_restorer: bool                 # kernel struct sigaction has sa_restorer
    # (guest bit, host bit) pairs for O_* flags encoded differently from the host.
    open_flag_pairs: tuple[tuple[int, int], ...] = ()
    minsigstksz: int = 2048
    # Linux's TASK_SIZE for a user process of this ISA (the bound access_ok
    # checks a buffer against): riscv64 Sv39, x86_64 and aarch64 4-level.
    task_size: int = 1 << 38
    # struct epoll_event: x86_64 declares it __attribute__((packed)) (12
    # bytes: u32 events, u64 data at offset 4); every other ISA pads data
    # to offset 8 (16 bytes).
    epoll_event_packed: bool = False
    names: Mapping[int, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "numbers", MappingProxyType(dict(self.numbers)))
        object.__setattr__(self, "names",
                           MappingProxyType({nr: nm for nm, nr in self.numbers.items()}))

    # -- numbers ----------------------------------------------------------
    def nr(self, name: str) -> int:
        """The number of syscall ``name`` (KeyError if this ABI lacks it)."""
        return self.numbers[name]

    def name_of(self, nr: int) -> str | None:
        return self.names.get(nr)

    # -- open flags -------------------------------------------------------
    def open_flags_to_host(self, flags: int) -> int:
        if not self.open_flag_pairs:
            return flags
        out = flags
        for guest_bit, _host_bit in self.open_flag_pairs:
            out &= ~guest_bit
        for guest_bit, host_bit in self.open_flag_pairs:
            if flags & guest_bit:
                out |= host_bit
        return out

    def open_flags_from_host(self, flags: int) -> int:
        if not self.open_flag_pairs:
            return flags
        out = flags
        for _guest_bit, host_bit in self.open_flag_pairs:
            out &= ~host_bit
        for guest_bit, host_bit in self.open_flag_pairs:
            if flags & host_bit:
                out |= guest_bit
        return out

    # -- struct stat --------------------------------------------------------
    @property
    def stat_size(self) -> int:
        return 128 if self.stat_kind == "generic" else 144

    def pack_stat(self, st: os.stat_result) -> bytes:
        a_s, a_ns = _ns_split(st.st_atime_ns)
        m_s, m_ns = _ns_split(st.st_mtime_ns)
        c_s, c_ns = _ns_split(st.st_ctime_ns)
        dev, ino, rdev = st.st_dev & (1 << 64) - 1, st.st_ino & (1 << 64) - 1, st.st_rdev
        if self.stat_kind == "generic":
            return _STAT_GENERIC.pack(dev, ino, st.st_mode, min(st.st_nlink, 0xFFFFFFFF),
                                      st.st_uid, st.st_gid, rdev, 0, st.st_size,
                                      st.st_blksize, 0, st.st_blocks,
                                      a_s, a_ns, m_s, m_ns, c_s, c_ns, 0, 0)
        return _STAT_X86_64.pack(dev, ino, st.st_nlink, st.st_mode, st.st_uid, st.st_gid, 0,
                                 rdev, st.st_size, st.st_blksize, st.st_blocks,
                                 a_s, a_ns, m_s, m_ns, c_s, c_ns, 0, 0, 0)

    # -- struct sigaction (the kernel's, not libc's) ----------------------
    @property
    def sigaction_size(self) -> int:
        return 32 if self.sigaction_has_restorer else 24

    def unpack_sigaction(self, raw: bytes) -> tuple[int, int, int, int]:
        """→ (handler, flags, restorer, mask)."""
        if self.sigaction_has_restorer:
            return struct.unpack("<QQQQ", raw)
        handler, flags, mask = struct.unpack("<QQQ", raw)
        return handler, flags, 0, mask

    def pack_sigaction(self, handler: int, flags: int, restorer: int, mask: int) -> bytes:
        if self.sigaction_has_restorer:
            return struct.pack("<QQQQ", handler, flags, restorer, mask)
        return struct.pack("<QQQ", handler, flags, mask)

    # -- small structs shared by all LP64 guests ---------------------------
    @staticmethod
    def pack_timespec(sec: int, nsec: int) -> bytes:
        return _TIMESPEC.pack(sec, nsec)

    @staticmethod
    def unpack_timespec(raw: bytes) -> tuple[int, int]:
        return _TIMESPEC.unpack(raw)

    timespec_size = _TIMESPEC.size
    pack_timeval = pack_timespec          # { long tv_sec; long tv_usec; }
    unpack_timeval = unpack_timespec

    @staticmethod
    def pack_rlimit(cur: int, max_: int) -> bytes:
        return _RLIMIT.pack(cur & (1 << 64) - 1, max_ & (1 << 64) - 1)

    @staticmethod
    def unpack_rlimit(raw: bytes) -> tuple[int, int]:
        return _RLIMIT.unpack(raw)

    rlimit_size = _RLIMIT.size

    # -- struct epoll_event (see ``epoll_event_packed``) ---------------------
    @property
    def epoll_event_size(self) -> int:
        return 12 if self.epoll_event_packed else 16

    def pack_epoll_event(self, events: int, data: int) -> bytes:
        if self.epoll_event_packed:
            return _EPOLL_PACKED.pack(events & 0xFFFFFFFF, data & (1 << 64) - 1)
        return _EPOLL_PADDED.pack(events & 0xFFFFFFFF, data & (1 << 64) - 1)

    def unpack_epoll_event(self, raw: bytes) -> tuple[int, int]:
        """→ (events, data)."""
        return (_EPOLL_PACKED if self.epoll_event_packed else _EPOLL_PADDED).unpack(raw)

    def pack_utsname(self, *, sysname: str = "Linux", nodename: str = "localhost",
                     release: str = "6.1.0", version: str = "#1 SMP PREEMPT aotc",
                     domainname: str = "(none)") -> bytes:
        out = b""
        for text in (sysname, nodename, release, version, self.machine, domainname):
            out += text.encode()[:_UTS_FIELD - 1].ljust(_UTS_FIELD, b"\0")
        return out


# aarch64 encodes four O_* bits differently from asm-generic / x86_64.
_AARCH64_O_PAIRS = (
    (0o40000, HOST_O_DIRECTORY),
    (0o100000, HOST_O_NOFOLLOW),
    (0o200000, HOST_O_DIRECT),
    (0o400000, HOST_O_LARGEFILE),
)

RISCV64_ABI = SyscallAbi(
    name="riscv64", machine="riscv64",
    numbers={**numbers.ASM_GENERIC, **numbers.RISCV64_EXTRA},
    stat_kind="generic", sigaction_has_restorer=False, minsigstksz=2048,
)

AARCH64_ABI = SyscallAbi(
    name="aarch64", machine="aarch64",
    numbers={**numbers.ASM_GENERIC, **numbers.AARCH64_EXTRA},
    stat_kind="generic", sigaction_has_restorer=True,
    open_flag_pairs=_AARCH64_O_PAIRS, minsigstksz=5120, task_size=1 << 48,
)

X86_64_ABI = SyscallAbi(
    name="x86_64", machine="x86_64",
    numbers=dict(numbers.X86_64),
    stat_kind="x86_64", sigaction_has_restorer=True, minsigstksz=2048, task_size=(1 << 47) - 4096,
    epoll_event_packed=True,
)


def abi_for_isa(isa: str) -> SyscallAbi:
    try:
        return {"riscv64": RISCV64_ABI, "aarch64": AARCH64_ABI, "x86_64": X86_64_ABI}[isa]
    except KeyError:
        raise ValueError(f"no syscall ABI for guest ISA {isa!r}") from None
