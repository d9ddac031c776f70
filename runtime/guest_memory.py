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

The runtime (syscalls, loader, interpreter) reaches guest memory only
through this class, which checks the guest's own view of permissions first
(``GuestMemoryError`` becomes -EFAULT), and copies bytes only through the
native core's fault-safe copies (``_native.copy_out``/``copy_in``/
``copy_move``): a page that faults although the guest mapped it (a file
mapping whose file was truncated: SIGBUS) fails the copy with
``GuestMemoryError(bus=True)`` instead of killing the host process.  File
mappings are host mappings of the file placed in the arena (``map_file``),
never copies of it, so a large mapping costs no host memory until touched.
"""

from __future__ import annotations

import bisect
import ctypes
from dataclasses import dataclass
from typing import Callable

from aotc.errors import GuestMemoryError, RuntimeSetupError
from runtime import _native
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
_libc.mremap.restype = ctypes.c_void_p
_libc.mremap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_int, ctypes.c_void_p]

_MAP_PRIVATE = 0x02
_MAP_ANONYMOUS = 0x20
_MAP_NORESERVE = 0x4000
_MAP_FIXED = 0x10
_MADV_DONTNEED = 4
_MREMAP_MAYMOVE = 1
_MREMAP_FIXED = 2
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
    # A host mapping of a file (map_file): its pages may fault (SIGBUS past
    # the file's end) although the guest mapped them.
    backed: bool = False


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
                self._maps[i:i + 1] = [Mapping(m.start, addr, m.prot, m.name, m.backed),
                                       Mapping(addr, m.end, m.prot, m.name, m.backed)]
                return

    def map(self, start: int, length: int, prot: int, name: str = "") -> None:
        """Map fresh zero pages at [start, start+length), replacing what was there."""
        start, end = page_down(start), page_up(start + length)
        self._check_range(start, end)
        self.unmap(start, end - start)
        # Fresh anonymous pages give zeroes, like the kernel would.
        if not self._reserve(start, end):
            raise RuntimeSetupError(f"cannot map guest range {start:#x}-{end:#x}")
        self._host_protect(start, end, prot)
        keys = [m.start for m in self._maps]
        self._maps.insert(bisect.bisect(keys, start), Mapping(start, end, prot, name))
        self.mapped_bytes += end - start
        self._changed(start, end)

    def map_file(self, start: int, length: int, prot: int, fd: int, offset: int,
                 shared: bool, name: str = "") -> None:
        """Map ``length`` bytes of host file ``fd`` from ``offset`` at guest
        ``start`` (a host mapping of the file in the arena, MAP_SHARED or
        MAP_PRIVATE), replacing what was there.  Raises OSError with the host
        errno if the host refuses the mapping (the range is then unmapped)."""
        start, end = page_down(start), page_up(start + length)
        self._check_range(start, end)
        self.unmap(start, end - start)
        host_prot = prot & (PROT_READ | PROT_WRITE) | (PROT_READ if prot & PROT_EXEC else 0)
        flags = (0x01 if shared else _MAP_PRIVATE) | _MAP_FIXED
        got = _libc.mmap(self.base + start, end - start, host_prot, flags, fd, offset)
        if got != self.base + start:
            err = ctypes.get_errno()
            self._reserve(start, end)       # the range must stay reserved
            raise OSError(err or 12, "cannot map the file into the guest arena")
        keys = [m.start for m in self._maps]
        self._maps.insert(bisect.bisect(keys, start), Mapping(start, end, prot, name, backed=True))
        self.mapped_bytes += end - start
        self._changed(start, end)

    def _reserve(self, start: int, end: int) -> bool:
        """Put fresh PROT_NONE pages at [start, end) of the arena (host side)."""
        got = _libc.mmap(self.base + start, end - start, PROT_NONE,
                         _MAP_PRIVATE | _MAP_ANONYMOUS | _MAP_FIXED | _MAP_NORESERVE, -1, 0)
        return got == self.base + start

    def unmap(self, start: int, length: int) -> None:
        start, end = page_down(start), page_up(start + length)
        self._check_range(start, end)
        if self._forget(start, end):
            if not self._reserve(start, end):
                raise RuntimeSetupError(f"cannot unmap guest range {start:#x}-{end:#x}")
            self._changed(start, end)

    def protect(self, start: int, length: int, prot: int) -> None:
        """mprotect: every page in the range must be mapped (else GuestMemoryError).
        The host may refuse (write access to a shared mapping of a file
        opened read-only): OSError with its errno, nothing changed."""
        start, end = page_down(start), page_up(start + length)
        self._check_range(start, end)
        if not self.is_mapped(start, end - start):
            raise GuestMemoryError(start, end - start)
        host_prot = prot & (PROT_READ | PROT_WRITE) | (PROT_READ if prot & PROT_EXEC else 0)
        if _libc.mprotect(self.base + start, end - start, host_prot) != 0:
            raise OSError(ctypes.get_errno() or 13, "mprotect refused by the host")
        self._split(start)
        self._split(end)
        for m in self._maps:
            if m.start >= start and m.end <= end:
                m.prot = prot
        self._changed(start, end)

    def remap(self, old: int, old_size: int, new_size: int, dest: int) -> bool:
        """Move the pages of [old, old+old_size) to [dest, dest+new_size)
        with the host's mremap (no copy; a file mapping stays one, a larger
        size maps more of the file or fresh zero pages), the old range
        reserved again.  The range must be one mapping's worth of equal
        permissions (the caller checks).  False if the host refuses (the
        range spans host mappings of different kinds): nothing changed."""
        m = self.find_mapping(old)
        assert m is not None
        prot, name = m.prot, m.name
        backed = any(p.backed for p in self._maps if p.start < old + old_size and p.end > old)
        self._check_range(dest, dest + new_size)
        got = _libc.mremap(self.base + old, old_size, new_size, _MREMAP_MAYMOVE | _MREMAP_FIXED,
                           self.base + dest)
        if got != self.base + dest:
            return False
        self._reserve(old, old + old_size)     # the old range is a hole in the arena now
        self._forget(old, old + old_size)
        self._forget(dest, dest + new_size)
        keys = [x.start for x in self._maps]
        self._maps.insert(bisect.bisect(keys, dest), Mapping(dest, dest + new_size, prot, name, backed))
        self.mapped_bytes += new_size
        self._changed(old, old + old_size)
        self._changed(dest, dest + new_size)
        return True

    def _forget(self, start: int, end: int) -> bool:
        """Drop the bookkeeping of [start, end) (the host side is the
        caller's); True if anything was mapped there."""
        self._split(start)
        self._split(end)
        kept = []
        for m in self._maps:
            if m.start >= start and m.end <= end:
                self.mapped_bytes -= m.end - m.start
                continue
            kept.append(m)
        dropped = len(kept) != len(self._maps)
        self._maps = kept
        return dropped

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

    def _in_space(self, addr: int, length: int) -> bool:
        return 0 <= addr and addr + length <= self.limit

    def copy_out(self, addr: int, length: int) -> bytes:
        """Guest bytes without a permission check (their mapping was checked),
        fault-safe: GuestMemoryError(bus=True) if a page faults."""
        data = _native.copy_out(self.base + addr, length)
        if data is None:
            raise GuestMemoryError(addr, length, bus=True)
        return data

    def copy_in(self, addr: int, data: bytes) -> None:
        """Like copy_out, the other way."""
        if not _native.copy_in(self.base + addr, data):
            raise GuestMemoryError(addr, len(data), bus=True)

    def read(self, addr: int, length: int) -> bytes:
        if length == 0:
            return b""
        if not self._in_space(addr, length) or not self.is_mapped(addr, length, PROT_READ):
            raise GuestMemoryError(addr, length)
        return self.copy_out(addr, length)

    def write(self, addr: int, data: bytes) -> None:
        if not data:
            return
        if not self._in_space(addr, len(data)) or not self.is_mapped(addr, len(data), PROT_WRITE):
            raise GuestMemoryError(addr, len(data))
        self.copy_in(addr, data)

    def move(self, dst: int, src: int, length: int) -> None:
        """Copy guest bytes to guest bytes (both mapped: checked by the caller's
        mapping logic), fault-safe; the host permissions must allow it."""
        if length and not _native.copy_move(self.base + dst, self.base + src, length):
            raise GuestMemoryError(src, length, bus=True)

    def poke(self, addr: int, data: bytes) -> None:
        """Write regardless of guest write permission (loading segments, stack setup)."""
        if not self._in_space(addr, len(data)) or not self.is_mapped(addr, len(data)):
            raise GuestMemoryError(addr, len(data))
        start, end = page_down(addr), page_up(addr + len(data))
        self._host_protect(start, end, PROT_READ | PROT_WRITE)
        try:
            self.copy_in(addr, data)
        finally:
            for m in self._maps:
                if m.end > start and m.start < end:
                    self._host_protect(max(m.start, start), min(m.end, end), m.prot)

    def read_prefix(self, addr: int, length: int) -> bytes:
        """The guest bytes of [addr, addr+length) up to the first page that
        faults (a file page past the file's end): for the JIT's view of code."""
        try:
            return self.copy_out(addr, length)
        except GuestMemoryError:
            pass
        out = bytearray()
        for p in range(addr, addr + length, PAGE):
            chunk = _native.copy_out(self.base + p, min(PAGE, addr + length - p))
            if chunk is None:
                break
            out += chunk
        return bytes(out)

    def read_cstring(self, addr: int, limit: int = 1 << 16) -> bytes:
        out = bytearray()
        while len(out) < limit:
            m = self.find_mapping(addr)
            if m is None or not m.prot & PROT_READ:
                raise GuestMemoryError(addr, 1)
            chunk = self.copy_out(addr, min(m.end - addr, 256))
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
