"""``riscv_hwprobe`` (riscv64 syscall 258): what the guest's "hardware" has.

As Linux's arch/riscv/kernel/sys_hwprobe.c, with the key and bit numbers of
its uapi header (arch/riscv/include/uapi/asm/hwprobe.h).  The extensions come
from the selected ISA profile (``aotrun --isa-profile``;
aotc/isa/riscv64/extensions.py), held by the kernel as ``isa_extensions``;
every CPU the guest sees (``sched_getaffinity``: runtime/linux/cpus.py) is
the same hart, so a cpu-set question has one answer for all of them.

Values that are ours rather than a profile's: vendor, architecture and
implementation ids 0; misaligned scalar accesses FAST (translated code and the
interpreter do them as single host accesses); vector ones UNSUPPORTED (no V);
the Zicbo* block size 64 bytes; the highest usable address the top of the
guest arena; the time CSR frequency runtime/guest_clock.py's ``TIME_HZ``.

There is no vDSO: glibc (2.40+) falls back to this system call.
"""

from __future__ import annotations

import errno as _errno
import struct
from collections.abc import Collection

from aotc.isa.riscv64.extensions import CACHE_BLOCK_SIZE, profile_extensions
from runtime.linux.cpus import cpumask_size, online_mask
from runtime.linux.syscall_base import syscall

__all__ = ["HwprobeCalls", "hwprobe_value", "ima_ext_0"]

# Keys
KEY_MVENDORID, KEY_MARCHID, KEY_MIMPID = 0, 1, 2
KEY_BASE_BEHAVIOR = 3
KEY_IMA_EXT_0 = 4
KEY_CPUPERF_0 = 5
KEY_ZICBOZ_BLOCK_SIZE = 6
KEY_HIGHEST_VIRT_ADDRESS = 7
KEY_TIME_CSR_FREQ = 8
KEY_MISALIGNED_SCALAR_PERF = 9
KEY_MISALIGNED_VECTOR_PERF = 10
KEY_VENDOR_EXT_THEAD_0 = 11
KEY_ZICBOM_BLOCK_SIZE = 12
KEY_VENDOR_EXT_SIFIVE_0 = 13
KEY_VENDOR_EXT_MIPS_0 = 14
KEY_ZICBOP_BLOCK_SIZE = 15
KEY_IMA_EXT_1 = 16
MAX_KEY = KEY_IMA_EXT_1

BASE_BEHAVIOR_IMA = 1
MISALIGNED_SCALAR_FAST = 3
MISALIGNED_VECTOR_UNSUPPORTED = 4
WHICH_CPUS = 1

IMA_FD, IMA_C, IMA_V = 1 << 0, 1 << 1, 1 << 2
# RISCV_HWPROBE_EXT_*: extension name → bit of the IMA_EXT_0 value.
EXT_0_BITS: dict[str, int] = {
    "Zba": 3, "Zbb": 4, "Zbs": 5, "Zicboz": 6, "Zbc": 7, "Zbkb": 8, "Zbkc": 9, "Zbkx": 10,
    "Zknd": 11, "Zkne": 12, "Zknh": 13, "Zksed": 14, "Zksh": 15, "Zkt": 16,
    "Zvbb": 17, "Zvbc": 18, "Zvkb": 19, "Zvkg": 20, "Zvkned": 21, "Zvknha": 22, "Zvknhb": 23,
    "Zvksed": 24, "Zvksh": 25, "Zvkt": 26, "Zfh": 27, "Zfhmin": 28, "Zihintntl": 29,
    "Zvfh": 30, "Zvfhmin": 31, "Zfa": 32, "Ztso": 33, "Zacas": 34, "Zicond": 35,
    "Zihintpause": 36, "Zve32x": 37, "Zve32f": 38, "Zve64x": 39, "Zve64f": 40, "Zve64d": 41,
    "Zimop": 42, "Zca": 43, "Zcb": 44, "Zcd": 45, "Zcf": 46, "Zcmop": 47, "Zawrs": 48,
    "Supm": 49, "Zicntr": 50, "Zihpm": 51, "Zfbfmin": 52, "Zvfbfmin": 53, "Zvfbfwma": 54,
    "Zicbom": 55, "Zaamo": 56, "Zalrsc": 57, "Zabha": 58, "Zalasr": 59, "Zicbop": 60,
    "Zilsd": 61, "Zclsd": 62, "Zicfilp": 63,
}
# Reported only with the FPU (Linux: has_fpu()), or only with V (has_vector()).
_NEEDS_FPU = frozenset(("Zcd", "Zcf", "Zfa", "Zfh", "Zfhmin", "Zfbfmin"))
_NEEDS_V = frozenset(n for n in EXT_0_BITS if n.startswith("Zv"))
# Keys whose value is a set of bits: WHICH_CPUS asks for a superset of them.
_BITMASK_KEYS = frozenset((KEY_BASE_BEHAVIOR, KEY_IMA_EXT_0, KEY_CPUPERF_0, KEY_VENDOR_EXT_THEAD_0,
                           KEY_VENDOR_EXT_SIFIVE_0, KEY_VENDOR_EXT_MIPS_0, KEY_IMA_EXT_1))
_PAIR = struct.Struct("<qQ")


def ima_ext_0(extensions: Collection[str]) -> int:
    """The IMA_EXT_0 value for ``extensions``."""
    has_fpu = "F" in extensions and "D" in extensions
    has_v = "V" in extensions
    value = (IMA_FD if has_fpu else 0) | (IMA_C if "C" in extensions else 0) | (IMA_V if has_v else 0)
    for name in extensions:
        bit = EXT_0_BITS.get(name)
        if bit is None or (name in _NEEDS_FPU and not has_fpu) or (name in _NEEDS_V and not has_v):
            continue
        value |= 1 << bit
    return value


def hwprobe_value(key: int, extensions: Collection[str], highest_address: int) -> int | None:
    """The value of ``key`` (None: a key this kernel does not know)."""
    if key in (KEY_MVENDORID, KEY_MARCHID, KEY_MIMPID):
        return 0
    if key == KEY_BASE_BEHAVIOR:
        return BASE_BEHAVIOR_IMA
    if key == KEY_IMA_EXT_0:
        return ima_ext_0(extensions)
    if key in (KEY_CPUPERF_0, KEY_MISALIGNED_SCALAR_PERF):
        return MISALIGNED_SCALAR_FAST
    if key == KEY_MISALIGNED_VECTOR_PERF:
        return MISALIGNED_VECTOR_UNSUPPORTED
    if key == KEY_ZICBOZ_BLOCK_SIZE:
        return CACHE_BLOCK_SIZE if "Zicboz" in extensions else 0
    if key == KEY_ZICBOM_BLOCK_SIZE:
        return CACHE_BLOCK_SIZE if "Zicbom" in extensions else 0
    if key == KEY_ZICBOP_BLOCK_SIZE:
        return CACHE_BLOCK_SIZE if "Zicbop" in extensions else 0
    if key == KEY_HIGHEST_VIRT_ADDRESS:
        return highest_address
    if key == KEY_TIME_CSR_FREQ:
        from runtime.guest_clock import TIME_HZ
        return TIME_HZ
    if key in (KEY_VENDOR_EXT_THEAD_0, KEY_VENDOR_EXT_SIFIVE_0, KEY_VENDOR_EXT_MIPS_0, KEY_IMA_EXT_1):
        return 0
    return None


class HwprobeCalls:
    """The riscv_hwprobe handler (bound only for riscv64, whose table names it)."""

    # What AT_HWCAP and riscv_hwprobe advertise; Machine sets the profile's.
    isa_extensions: frozenset[str] = profile_extensions()

    def _hwprobe_cpus(self, cpusetsize: int, cpus: int) -> int:
        """The guest's cpu mask (cpusetsize bytes at most cpumask_size()) and the online cpus."""
        n = self.ncpus                                              # type: ignore[attr-defined]
        raw = self.mem.read(cpus, min(cpusetsize, cpumask_size(n)))  # type: ignore[attr-defined]
        return int.from_bytes(raw, "little") & online_mask(n) if raw else 0

    @syscall("riscv_hwprobe", "p", "u", "u", "p", "x")
    def sys_riscv_hwprobe(self, pairs: int, pair_count: int, cpusetsize: int, cpus: int,
                          flags: int) -> int:
        flags &= 0xFFFFFFFF                                 # unsigned int
        mem = self.mem                                      # type: ignore[attr-defined]
        exts = self.isa_extensions
        top = mem.limit - 1
        if flags & WHICH_CPUS:
            return self._hwprobe_which_cpus(pairs, pair_count, cpusetsize, cpus, flags)
        if flags:
            return -_errno.EINVAL
        if cpusetsize or cpus:
            if not self._hwprobe_cpus(cpusetsize, cpus):
                return -_errno.EINVAL
        for i in range(pair_count):
            at = pairs + 16 * i
            key = _PAIR.unpack(mem.read(at, 8) + bytes(8))[0]
            value = hwprobe_value(key, exts, top)
            if value is None:
                key, value = -1, 0
            mem.write(at, _PAIR.pack(key, value))
        return 0

    def _hwprobe_which_cpus(self, pairs: int, pair_count: int, cpusetsize: int, cpus: int,
                            flags: int) -> int:
        """RISCV_HWPROBE_WHICH_CPUS: narrow the cpu set to the cpus that have
        every pair (bit-set keys: at least its bits); an unknown key empties it."""
        if flags != WHICH_CPUS or not cpusetsize or not cpus:
            return -_errno.EINVAL
        mem = self.mem                                      # type: ignore[attr-defined]
        n = self.ncpus                                      # type: ignore[attr-defined]
        size = min(cpusetsize, cpumask_size(n))
        raw = mem.read(cpus, size)
        online = online_mask(n) & ((1 << 8 * size) - 1)
        mask = int.from_bytes(raw, "little") or online
        mask &= online
        clear_all = False
        for i in range(pair_count):
            at = pairs + 16 * i
            key, want = _PAIR.unpack(mem.read(at, 16))
            if not 0 <= key <= MAX_KEY:
                clear_all = True
                mem.write(at, _PAIR.pack(-1, 0))
            if clear_all:
                continue
            have = hwprobe_value(key, self.isa_extensions, mem.limit - 1)
            assert have is not None
            ok = (have & want) == want if key in _BITMASK_KEYS else have == want
            if not ok:
                mask = 0                        # every cpu is the same hart
        if clear_all:
            mask = 0
        mem.write(cpus, mask.to_bytes(size, "little"))
        return 0
