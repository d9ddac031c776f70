"""Code discovery on hand-assembled riscv64 code: every source of entries."""

from __future__ import annotations

import struct

from aotc.discover import CodeRange, discover

BASE = 0x10000


def addi(rd: int, rs1: int, imm: int) -> int:
    return ((imm & 0xFFF) << 20) | (rs1 << 15) | (rd << 7) | 0x13


def jal(rd: int, offset: int) -> int:
    o = offset & 0x1FFFFF
    imm = ((o >> 20) & 1) << 31 | ((o >> 1) & 0x3FF) << 21 | ((o >> 11) & 1) << 20 | ((o >> 12) & 0xFF) << 12
    return imm | (rd << 7) | 0x6F


def bne(rs1: int, rs2: int, offset: int) -> int:
    o = offset & 0x1FFF
    imm = ((o >> 12) & 1) << 31 | ((o >> 5) & 0x3F) << 25 | ((o >> 1) & 0xF) << 8 | ((o >> 11) & 1) << 7
    return imm | (rs2 << 20) | (rs1 << 15) | (1 << 12) | 0x63


RET = 0x00008067        # jalr x0, 0(ra)
ECALL = 0x00000073


def words(*ws: int) -> bytes:
    return b"".join(struct.pack("<I", w) for w in ws)


def test_discovery_sources():
    code = words(
        jal(1, 0x10),          # 0x10000: call f (0x10010); return address 0x10004 is an entry
        addi(10, 0, 0),        # 0x10004
        ECALL,                 # 0x10008: continues at 0x1000c
        RET,                   # 0x1000c
        addi(10, 10, 1),       # 0x10010: f
        bne(10, 0, -4),        # 0x10014: loop back into the middle of f's block (0x10010 leader)
        RET,                   # 0x10018
        addi(11, 0, 2),        # 0x1001c: g, reached only through a pointer in data
        RET,                   # 0x10020
        addi(12, 0, 3),        # 0x10024: h, reached by nothing: linear sweep after a ret
        bne(12, 0, 8),         # 0x10028: its direct target 0x10030 must become a leader
        addi(13, 0, 4),        # 0x1002c
        RET,                   # 0x10030
    )
    data = struct.pack("<QQ", 0xDEAD0000, BASE + 0x1C)   # one non-code word, one code pointer
    d = discover([CodeRange(BASE, code)], [data], {"entry": [BASE]})
    leaders = set(d.blocks)
    assert {BASE, BASE + 0x4, BASE + 0xC, BASE + 0x10, BASE + 0x18, BASE + 0x1C,
            BASE + 0x24, BASE + 0x2C, BASE + 0x30} <= leaders
    assert 0xDEAD0000 not in leaders
    assert d.sources["pointers in data"] == 1
    assert d.sources["linear sweep"] >= 1
    # Blocks stop at control transfers and at the next leader.
    assert [i.mnemonic for i in d.blocks[BASE + 0x10].insns] == ["addi", "bne"]
    assert [i.mnemonic for i in d.blocks[BASE + 0x4].insns] == ["addi", "ecall"]


def test_csr_access_starts_and_ends_a_block():
    csrr_fflags = (0x001 << 20) | (2 << 12) | (10 << 7) | 0x73   # csrrs a0, fflags, x0
    code = words(addi(5, 0, 1), csrr_fflags, addi(6, 0, 2), RET)
    d = discover([CodeRange(BASE, code)], [], {"entry": [BASE]})
    assert [i.mnemonic for i in d.blocks[BASE].insns] == ["addi"]
    assert [i.mnemonic for i in d.blocks[BASE + 4].insns] == ["csrrs"]
    assert BASE + 8 in d.blocks


def test_undecodable_bytes_become_trap_blocks():
    code = words(jal(0, 8), 0x00000000, RET)     # jump over an all-zero (illegal) word
    d = discover([CodeRange(BASE, code)], [], {"entry": [BASE, BASE + 4]})
    assert BASE + 4 in d.undecodable
    assert BASE + 8 in d.blocks


def auipc(rd: int, imm20: int) -> int:
    return ((imm20 & 0xFFFFF) << 12) | (rd << 7) | 0x17


def jalr(rd: int, rs1: int, imm: int) -> int:
    return ((imm & 0xFFF) << 20) | (rs1 << 15) | (rd << 7) | 0x67


def test_a_jump_through_an_address_built_in_place_is_an_entry():
    """``auipc t1, 0; addi t1, t1, 28; jr -4(t1)`` (riscv-tests' rv64ui-jalr):
    the target lies inside straight-line code nothing else enters, so only
    following the constant finds it (the image missed it before)."""
    T1 = 6
    code = words(
        auipc(T1, 0),          # 0x10000: t1 = 0x10000
        addi(T1, T1, 28),      # 0x10004: t1 = 0x1001c
        jalr(0, T1, -4),       # 0x10008: jr -4(t1) -> 0x10018
        addi(10, 0, 1),        # 0x1000c: (swept: after a block end)
        addi(10, 0, 2),        # 0x10010
        addi(10, 0, 3),        # 0x10014
        addi(10, 0, 4),        # 0x10018: the target, in the middle of the swept block
        RET,                   # 0x1001c
    )
    d = discover([CodeRange(BASE, code)], [], {"entry": [BASE]})
    assert BASE + 0x18 in d.blocks
    # a clobbered base register is not followed: t1 overwritten by an unknown value
    code = words(auipc(T1, 0), addi(T1, T1, 28), 0x0003B303, jalr(0, T1, -4),   # ld t1, 0(t2)
                 addi(10, 0, 1), addi(10, 0, 2), addi(10, 0, 3), RET)
    d = discover([CodeRange(BASE, code)], [], {"entry": [BASE]})
    assert BASE + 0x18 not in d.blocks
