"""The guest arena: one reserved host range that holds all guest memory.

A guest address ``g`` lives at host address ``base + (g & (size - 1))``.
Translated code computes ``base + (r & (size - 1)) + imm`` for a load or
store at ``imm(r)`` (|imm| < 2 KiB): the wrap costs one 32-bit move per
base register value, shared by every access through it, and LLVM sees
``8(sp)`` and ``16(sp)`` as neighbours.  An access can so land up to 2 KiB
outside ``[base, base + size)``, into PROT_NONE guards below and above the
arena, never onto other host memory.  Such an access is one whose address
leaves the 4 GiB guest space, or (from a base past its end) lands in its
top ``TOP_RESERVED`` bytes, which the guest can never map: a fault in every
engine.  Pages the guest has not mapped are PROT_NONE on the host, so a
stray guest access faults and becomes a guest SIGSEGV.

The runtime (syscalls, loader) reaches guest memory only through this class,
which checks the guest's own view of permissions first (``GuestMemoryError``
becomes -EFAULT).
"""

from __future__ import annotations

import bisect
import ctypes
from dataclasses import dataclass
from typing import Callable

from aotc.errors import GuestMemoryError, RuntimeSetupError
from runtime.host_libc import load_libc

PAGE = 4096
PROT_NONE = 0
PROT_READ = 1
PROT_WRITE = 2
PROT_EXEC = 4

_libc = load_libc()
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]

_MAP_PRIVATE = 0x02
_MAP_ANONYMOUS = 0x20
_MAP_NORESERVE = 0x4000
_MAP_FIXED = 0x10
_MADV_DONTNEED = 4
# Bytes past the arena's end kept PROT_NONE, so an access that starts at the
# last guest byte and runs over the end faults instead of leaving the arena.
GUARD = 1 << 16
# Bytes before the arena kept PROT_NONE: ``-8(r)`` with r's low 32 bits 0
# reaches below it in translated code (see above).
GUARD_BELOW = 1 << 16
# The top of the guest address space, never mappable (as Linux keeps a gap
# below its user address limit): an access ``-8(r)`` with r = 2^32 + 4 is at
# guest address 2^32 - 4 for the interpreter and in the bottom guard for
# translated code; with nothing mappable there, both fault.
TOP_RESERVED = 1 << 16


def page_down(x: int) -> int:
    return x & ~(PAGE - 1)


def page_up(x: int) -> int:
    return (x + PAGE - 1) & ~(PAGE - 1)


@dataclass
class Mapping:
    """One guest page range with the guest's view of its permissions."""

    start: int
    end: int
    prot: int
    name: str = ""


class GuestMemory:
    """Reserve, map and access the guest arena."""

    def __init__(self, bits: int = 32) -> None:
        self.bits = bits
        self.size = 1 << bits
        self.mask = self.size - 1
        # Guest mappings end at or below this address (see TOP_RESERVED).
        self.limit = self.size - TOP_RESERVED
        addr = _libc.mmap(None, GUARD_BELOW + self.size + GUARD, PROT_NONE,
                          _MAP_PRIVATE | _MAP_ANONYMOUS | _MAP_NORESERVE, -1, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            raise RuntimeSetupError(f"cannot reserve a {self.size >> 20} MiB guest arena "
                                    f"(errno {ctypes.get_errno()})")
        self.base: int = addr + GUARD_BELOW
        # Sorted, non-overlapping page ranges the guest has mapped.
        self._maps: list[Mapping] = []
        self.mapped_bytes = 0
        # Called with (start, end) after any change to the mappings or their
        # permissions (map, unmap, protect): translations of code in that
        # range may be stale (see runtime/code_invalidation.py).
        self.on_mapping_change: Callable[[int, int], None] | None = None

    def _changed(self, start: int, end: int) -> None:
        if self.on_mapping_change is not None:
            self.on_mapping_change(start, end)

    # -- mapping ---------------------------------------------------------
    def _host_protect(self, start: int, end: int, prot: int) -> None:
        host_prot = prot & (PROT_READ | PROT_WRITE)
        if prot & PROT_EXEC:
            # Translated code reads guest code bytes only at build/JIT time;
            # the host never executes them.  Keep them readable for the JIT.
            host_prot |= PROT_READ
        if _libc.mprotect(self.base + start, end - start, host_prot) != 0:
            raise RuntimeSetupError(f"mprotect of guest range {start:#x}-{end:#x} failed "
                                    f"(errno {ctypes.get_errno()})")

    def _check_range(self, start: int, end: int) -> None:
        if start < 0 or end > self.limit or start > end:
            raise GuestMemoryError(start, end - start)

    def _split(self, addr: int) -> None:
        """Make ``addr`` a boundary between mappings (if inside one)."""
        for i, m in enumerate(self._maps):
            if m.start < addr < m.end:
                self._maps[i:i + 1] = [Mapping(m.start, addr, m.prot, m.name),
                                       Mapping(addr, m.end, m.prot, m.name)]
                return

    def map(self, start: int, length: int, prot: int, name: str = "") -> None:
        """Map fresh zero pages at [start, start+length), replacing what was there."""
        start, end = page_down(start), page_up(start + length)
        self._check_range(start, end)
        self.unmap(start, end - start)
        # Fresh anonymous pages give zeroes, like the kernel would.
        got = _libc.mmap(self.base + start, end - start, PROT_NONE,
                         _MAP_PRIVATE | _MAP_ANONYMOUS | _MAP_FIXED | _MAP_NORESERVE, -1, 0)
        if got != self.base + start:
            raise RuntimeSetupError(f"cannot map guest range {start:#x}-{end:#x}")
        self._host_protect(start, end, prot)
        keys = [m.start for m in self._maps]
        self._maps.insert(bisect.bisect(keys, start), Mapping(start, end, prot, name))
        self.mapped_bytes += end - start
        self._changed(start, end)

    def unmap(self, start: int, length: int) -> None:
        start, end = page_down(start), page_up(start + length)
        self._check_range(start, end)
        self._split(start)
        self._split(end)
        kept = []
        for m in self._maps:
            if m.start >= start and m.end <= end:
                self.mapped_bytes -= m.end - m.start
                continue
            kept.append(m)
        if len(kept) != len(self._maps):
            got = _libc.mmap(self.base + start, end - start, PROT_NONE,
                             _MAP_PRIVATE | _MAP_ANONYMOUS | _MAP_FIXED | _MAP_NORESERVE, -1, 0)
            if got != self.base + start:
                raise RuntimeSetupError(f"cannot unmap guest range {start:#x}-{end:#x}")
            self._maps = kept
            self._changed(start, end)

    def protect(self, start: int, length: int, prot: int) -> None:
        """mprotect: every page in the range must be mapped (else GuestMemoryError)."""
        start, end = page_down(start), page_up(start + length)
        self._check_range(start, end)
        if not self.is_mapped(start, end - start):
            raise GuestMemoryError(start, end - start)
        self._split(start)
        self._split(end)
        for m in self._maps:
            if m.start >= start and m.end <= end:
                m.prot = prot
        self._host_protect(start, end, prot)
        self._changed(start, end)

    def mappings(self) -> list[Mapping]:
        return list(self._maps)

    def find_mapping(self, addr: int) -> Mapping | None:
        keys = [m.start for m in self._maps]
        i = bisect.bisect(keys, addr) - 1
        if i >= 0 and self._maps[i].start <= addr < self._maps[i].end:
            return self._maps[i]
        return None

    def is_mapped(self, addr: int, length: int, prot: int = 0) -> bool:
        """True when every byte of [addr, addr+length) is mapped with ``prot``."""
        end = addr + max(length, 1)
        while addr < end:
            m = self.find_mapping(addr)
            if m is None or (m.prot & prot) != prot:
                return False
            addr = m.end
        return True

    def find_free(self, length: int, lo: int, hi: int, top_down: bool = True) -> int | None:
        """Find a page-aligned gap of ``length`` bytes inside [lo, hi)."""
        length = page_up(length)
        gaps = []
        prev = lo
        for m in self._maps:
            if m.end <= lo or m.start >= hi:
                continue
            if m.start > prev:
                gaps.append((prev, m.start))
            prev = max(prev, m.end)
        if hi > prev:
            gaps.append((prev, hi))
        order = reversed(gaps) if top_down else gaps
        for g0, g1 in order:
            if g1 - g0 >= length:
                return g1 - length if top_down else g0
        return None

    # -- access (the runtime's view; checks guest permissions) ------------
    def host_address(self, addr: int) -> int:
        return self.base + (addr & self.mask)

    def read(self, addr: int, length: int) -> bytes:
        if length == 0:
            return b""
        if addr < 0 or addr + length > self.size or not self.is_mapped(addr, length, PROT_READ):
            raise GuestMemoryError(addr, length)
        return ctypes.string_at(self.base + addr, length)

    def write(self, addr: int, data: bytes) -> None:
        if not data:
            return
        if addr < 0 or addr + len(data) > self.size or not self.is_mapped(addr, len(data), PROT_WRITE):
            raise GuestMemoryError(addr, len(data))
        ctypes.memmove(self.base + addr, data, len(data))

    def poke(self, addr: int, data: bytes) -> None:
        """Write regardless of guest write permission (loading segments, stack setup)."""
        if not self.is_mapped(addr, len(data)):
            raise GuestMemoryError(addr, len(data))
        start, end = page_down(addr), page_up(addr + len(data))
        self._host_protect(start, end, PROT_READ | PROT_WRITE)
        try:
            ctypes.memmove(self.base + addr, data, len(data))
        finally:
            for m in self._maps:
                if m.end > start and m.start < end:
                    self._host_protect(max(m.start, start), min(m.end, end), m.prot)

    def read_cstring(self, addr: int, limit: int = 1 << 16) -> bytes:
        out = bytearray()
        while len(out) < limit:
            m = self.find_mapping(addr)
            if m is None or not m.prot & PROT_READ:
                raise GuestMemoryError(addr, 1)
            chunk = ctypes.string_at(self.base + addr, min(m.end - addr, 256))
            nul = chunk.find(b"\0")
            if nul >= 0:
                out += chunk[:nul]
                return bytes(out)
            out += chunk
            addr += len(chunk)
        raise GuestMemoryError(addr, 1)

    def read_u64(self, addr: int) -> int:
        return int.from_bytes(self.read(addr, 8), "little")

    def write_u64(self, addr: int, value: int) -> None:
        self.write(addr, (value & (1 << 64) - 1).to_bytes(8, "little"))

    def release(self) -> None:
        if self.base:
            _libc.munmap(self.base - GUARD_BELOW, GUARD_BELOW + self.size + GUARD)
            self.base = 0
