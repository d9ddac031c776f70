"""Crafting small riscv64 ELF executables in Python, for tests and fuzzing.

``tiny_elf`` lays out: the ELF header and one program header, the code at
file offset 0x1000 (vaddr 0x11000), an optional *decoy* blob after the
segment, and section headers (NULL, .text, .shstrtab, optionally .symtab
and .strtab).  The one PT_LOAD segment maps file bytes [0, 0x1000 + code)
at 0x10000, read+execute.
"""

from __future__ import annotations

import struct

EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
PHDR = struct.Struct("<IIQQQQQQ")
SHDR = struct.Struct("<IIQQQQIIQQ")
SYM = struct.Struct("<IBBHQQ")

BASE = 0x10000
CODE_OFFSET = 0x1000
CODE_VADDR = BASE + CODE_OFFSET
PF_X, PF_W, PF_R = 1, 2, 4
SHF_ALLOC, SHF_EXECINSTR = 0x2, 0x4


def addi(rd: int, rs1: int, imm: int) -> int:
    return ((imm & 0xFFF) << 20) | (rs1 << 15) | (rd << 7) | 0x13


ECALL = 0x00000073


def exit_program(status: int) -> bytes:
    """riscv64 Linux code: exit(status)."""
    return b"".join(struct.pack("<I", w) for w in (addi(10, 0, status), addi(17, 0, 93), ECALL))


def tiny_elf(code: bytes, *, entry: int = CODE_VADDR, decoy: bytes | None = None,
             text_from_decoy: bool = False, symbols: bool = False) -> bytes:
    """A static riscv64 executable running ``code``.  With ``text_from_decoy``
    the .text section header names the decoy's file bytes (same address and
    size) instead of the bytes the segment maps."""
    seg_filesz = CODE_OFFSET + len(code)
    out = bytearray(CODE_OFFSET)
    out += code
    decoy_offset = len(out)
    if decoy is not None:
        out += decoy
    shstrtab = b"\0.text\0.shstrtab\0.symtab\0.strtab\0"
    names = {n: shstrtab.index(n.encode()) for n in (".text", ".shstrtab", ".symtab", ".strtab")}
    shstr_offset = len(out)
    out += shstrtab
    sections = [SHDR.pack(0, 0, 0, 0, 0, 0, 0, 0, 0, 0)]
    text_offset = decoy_offset if text_from_decoy else CODE_OFFSET
    sections.append(SHDR.pack(names[".text"], 1, SHF_ALLOC | SHF_EXECINSTR, CODE_VADDR,
                              text_offset, len(code), 0, 0, 4, 0))
    sections.append(SHDR.pack(names[".shstrtab"], 3, 0, 0, shstr_offset, len(shstrtab), 0, 0, 1, 0))
    if symbols:
        strtab = b"\0_start\0"
        str_offset = len(out)
        out += strtab
        while len(out) % 8:
            out += b"\0"
        sym_offset = len(out)
        out += SYM.pack(0, 0, 0, 0, 0, 0)
        out += SYM.pack(1, 0x12, 0, 1, CODE_VADDR, len(code))   # GLOBAL FUNC in .text
        sections.append(SHDR.pack(names[".symtab"], 2, 0, 0, sym_offset, 2 * SYM.size,
                                  len(sections) + 1, 1, 8, SYM.size))
        sections.append(SHDR.pack(names[".strtab"], 3, 0, 0, str_offset, len(strtab), 0, 0, 1, 0))
    while len(out) % 8:
        out += b"\0"
    shoff = len(out)
    for sh in sections:
        out += sh
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    out[0:EHDR.size] = EHDR.pack(ident, 2, 243, 1, entry, EHDR.size, shoff, 0, EHDR.size,
                                 PHDR.size, 1, SHDR.size, len(sections), 2)
    out[EHDR.size:EHDR.size + PHDR.size] = PHDR.pack(1, PF_R | PF_X, 0, BASE, BASE, seg_filesz,
                                                     seg_filesz, 0x1000)
    return bytes(out)
