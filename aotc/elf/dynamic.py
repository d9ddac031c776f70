"""Pointers a position-independent executable's dynamic relocations store.

A static-pie program relocates itself at start: its data holds link-time
values (addresses relative to 0) that its start-up code adds the load base
to, as R_*_RELATIVE and R_*_IRELATIVE relocations (``DT_RELA``,
``DT_JMPREL``) or packed ``DT_RELR`` entries say.  Code discovery scans data
for code pointers, which in such a program are only visible through these
relocations: ``relocated_pointers`` returns the values they will store,
rebased.  It reads ``PT_DYNAMIC`` only (section headers may be absent), and
like the section headers, these are hints: malformed or out-of-file
dynamic data yields fewer hints, never an error.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

PT_LOAD, PT_DYNAMIC = 1, 2
DT_NULL, DT_PLTRELSZ, DT_RELA, DT_RELASZ, DT_RELAENT, DT_JMPREL = 0, 2, 7, 8, 9, 23
DT_RELRSZ, DT_RELR, DT_RELRENT = 35, 36, 37

# (relative, irelative) relocation types by e_machine: both store base + addend.
_RELATIVE_TYPES = {
    243: (3, 58),          # EM_RISCV: R_RISCV_RELATIVE, R_RISCV_IRELATIVE
    62: (8, 37),           # EM_X86_64: R_X86_64_RELATIVE, R_X86_64_IRELATIVE
    183: (1027, 1032),     # EM_AARCH64: R_AARCH64_RELATIVE, R_AARCH64_IRELATIVE
}
_RELA = struct.Struct("<QQq")
_DYN = struct.Struct("<qQ")
# A bound on the work: no real program has this many relocations.
_MAX_ENTRIES = 1 << 22

_Phdr = tuple[int, int, int, int, int, int, int, int]


def _file_offset(loads: Sequence[_Phdr], vaddr: int, size: int) -> int | None:
    """The file offset of link-time ``vaddr`` (+``size`` bytes, all from the file), or None."""
    for _t, _f, p_offset, p_vaddr, _pa, p_filesz, _m, _al in loads:
        if p_vaddr <= vaddr and vaddr + size <= p_vaddr + p_filesz:
            return p_offset + (vaddr - p_vaddr)
    return None


def _word_at(data: bytes, loads: Sequence[_Phdr], vaddr: int) -> int | None:
    off = _file_offset(loads, vaddr, 8)
    if off is None or off + 8 > len(data):
        return None
    return int.from_bytes(data[off:off + 8], "little")


def relocated_pointers(data: bytes, machine: int, phdrs: Sequence[_Phdr], bias: int) -> tuple[int, ...]:
    """Every value (link-time value + ``bias``) that the relative relocations
    of ``PT_DYNAMIC`` store, sorted and unique; () if there is none to read."""
    types = _RELATIVE_TYPES.get(machine)
    dyn = next((ph for ph in phdrs if ph[0] == PT_DYNAMIC), None)
    if types is None or dyn is None:
        return ()
    loads = [ph for ph in phdrs if ph[0] == PT_LOAD]
    d_off, d_size = dyn[2], min(dyn[5], _DYN.size * 4096)
    if d_off > len(data):
        return ()
    tags: dict[int, int] = {}
    for pos in range(d_off, min(d_off + d_size, len(data)) - _DYN.size + 1, _DYN.size):
        tag, val = _DYN.unpack_from(data, pos)
        if tag == DT_NULL:
            break
        tags.setdefault(tag, val)
    found: set[int] = set()
    # RELA tables: base + addend for the relative types.
    for table, size in ((DT_RELA, DT_RELASZ), (DT_JMPREL, DT_PLTRELSZ)):
        if table not in tags or size not in tags:
            continue
        ent = tags.get(DT_RELAENT, _RELA.size) if table == DT_RELA else _RELA.size
        if ent != _RELA.size:
            continue
        count = min(tags[size] // _RELA.size, _MAX_ENTRIES)
        off = _file_offset(loads, tags[table], count * _RELA.size)
        if off is None or off + count * _RELA.size > len(data):
            continue
        for pos in range(off, off + count * _RELA.size, _RELA.size):
            _r_offset, r_info, r_addend = _RELA.unpack_from(data, pos)
            if r_info & 0xFFFF_FFFF in types:
                found.add(r_addend + bias)
    # RELR: an address, then bitmaps of the following words; each located
    # word holds a link-time address.
    if tags.get(DT_RELRENT, 8) == 8 and DT_RELR in tags and DT_RELRSZ in tags:
        count = min(tags[DT_RELRSZ] // 8, _MAX_ENTRIES)
        off = _file_offset(loads, tags[DT_RELR], count * 8)
        if off is not None and off + count * 8 <= len(data):
            where = 0
            for (entry,) in struct.iter_unpack("<Q", data[off:off + count * 8]):
                if entry & 1 == 0:
                    places = [entry]
                    where = entry + 8
                else:
                    places = [where + 8 * i for i in range(63) if entry >> (i + 1) & 1]
                    where += 8 * 63
                for place in places:
                    value = _word_at(data, loads, place)
                    if value is not None:
                        found.add(value + bias)
    return tuple(sorted(v for v in found if 0 < v < 1 << 64))
