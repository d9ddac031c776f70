"""Section headers and function symbols of a guest ELF, read with ``struct``.

Sections are optional in an executable and only *hints* to the translator
(where code is, function entry points): what runs is what the PT_LOAD
segments map.  Every field is bounds-checked here, so malformed headers are
one ``ElfError`` with a one-line message, never another exception; no
third-party parser sees the guest's bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable

from aotc.errors import ElfError

SHT_NULL, SHT_SYMTAB, SHT_STRTAB, SHT_NOBITS, SHT_DYNSYM = 0, 2, 3, 8, 11
SHF_ALLOC, SHF_EXECINSTR = 0x2, 0x4
STT_FUNC, STT_GNU_IFUNC = 2, 10
SHN_UNDEF = 0

_SHDR64 = struct.Struct("<IIQQQQIIQQ")    # 64 bytes
_SYM64 = struct.Struct("<IBBHQQ")         # 24 bytes
_ADDR_LIMIT = 1 << 64

Fail = Callable[[str], ElfError]


@dataclass(frozen=True, slots=True)
class Section:
    index: int
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int
    entsize: int

    @property
    def in_file(self) -> bool:
        """Whether the section has bytes in the file (not NULL, not NOBITS)."""
        return self.type not in (SHT_NULL, SHT_NOBITS)

    @property
    def alloc(self) -> bool:
        return bool(self.flags & SHF_ALLOC)

    @property
    def executable(self) -> bool:
        return bool(self.flags & SHF_EXECINSTR)


def read_sections(data: bytes, e_shoff: int, e_shentsize: int, e_shnum: int,
                  fail: Fail) -> tuple[Section, ...]:
    """The section headers (empty if the file has none), each checked to lie in the file."""
    if e_shoff == 0:
        return ()
    if e_shentsize != _SHDR64.size:
        raise fail(f"bad section header entry size {e_shentsize} (expected {_SHDR64.size})")
    if e_shoff + _SHDR64.size > len(data):
        raise fail(f"truncated ELF: section headers at {e_shoff:#x} lie past the end "
                   f"of the {len(data)}-byte file")
    count = e_shnum
    if count == 0:   # extended numbering: the count is section 0's sh_size
        count = _SHDR64.unpack_from(data, e_shoff)[5]
    if count > (len(data) - e_shoff) // _SHDR64.size:
        raise fail(f"truncated ELF: {count} section headers at {e_shoff:#x} extend past the end "
                   f"of the {len(data)}-byte file")
    sections = []
    for i in range(count):
        (_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size, sh_link, _info, _align,
         sh_entsize) = _SHDR64.unpack_from(data, e_shoff + i * _SHDR64.size)
        sec = Section(i, sh_type, sh_flags, sh_addr, sh_offset, sh_size, sh_link, sh_entsize)
        if sec.in_file and (sh_offset > len(data) or sh_size > len(data) - sh_offset):
            raise fail(f"malformed section header {i}: its bytes {sh_offset:#x} (+{sh_size:#x}) "
                       f"lie outside the {len(data)}-byte file")
        if sec.alloc and sh_addr + sh_size > _ADDR_LIMIT:
            raise fail(f"malformed section header {i}: address {sh_addr:#x} (+{sh_size:#x}) "
                       f"wraps around the address space")
        sections.append(sec)
    return tuple(sections)


def function_symbols(data: bytes, sections: tuple[Section, ...],
                     fail: Fail) -> tuple[tuple[int, int, str], ...]:
    """(addr, size, name) of the named, defined STT_FUNC/STT_GNU_IFUNC symbols
    with a non-zero address, from .symtab (else .dynsym), sorted."""
    tables = [s for s in sections if s.type == SHT_SYMTAB] or \
             [s for s in sections if s.type == SHT_DYNSYM]
    if not tables:
        return ()
    table = tables[0]
    if table.entsize not in (0, _SYM64.size):
        raise fail(f"malformed symbol table (section {table.index}): entry size {table.entsize}")
    if table.link >= len(sections) or sections[table.link].type != SHT_STRTAB:
        raise fail(f"malformed symbol table (section {table.index}): "
                   f"its string table {table.link} is not a string table section")
    strtab = sections[table.link]
    strings = data[strtab.offset:strtab.offset + strtab.size]
    found: dict[tuple[int, str], int] = {}
    for pos in range(table.offset, table.offset + table.size - _SYM64.size + 1, _SYM64.size):
        st_name, st_info, _other, st_shndx, st_value, st_size = _SYM64.unpack_from(data, pos)
        if st_info & 0xF not in (STT_FUNC, STT_GNU_IFUNC) or st_shndx == SHN_UNDEF or not st_value:
            continue
        if st_name >= len(strings):
            raise fail(f"malformed symbol table (section {table.index}): "
                       f"name offset {st_name:#x} outside its string table")
        end = strings.find(b"\0", st_name)
        raw = strings[st_name:] if end < 0 else strings[st_name:end]
        if not raw:
            continue
        key = (st_value, raw.decode("utf-8", "replace"))
        found[key] = max(found.get(key, 0), st_size)
    return tuple(sorted((addr, size, name) for (addr, name), size in found.items()))
