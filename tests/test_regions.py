"""Region formation on hand-assembled riscv64 code (no LLVM involved)."""

from __future__ import annotations

from aotc.backend.regions import form_regions
from aotc.discover import CodeRange, discover
from tests.test_discover import BASE, ECALL, RET, addi, bne, jal, words


def _regions(code: bytes, max_insns: int = 1200):
    disc = discover([CodeRange(BASE, code)], [], {"entry": [BASE]})
    return disc.blocks, form_regions(disc.blocks, max_insns=max_insns)


def test_loop_call_and_return_point():
    code = words(
        addi(5, 0, 3),          # 0x10000: head (entry)
        addi(5, 5, -1),         # 0x10004: loop head, inside the entry's region
        bne(5, 0, -4),          # 0x10008: back edge -> 0x10004 (a br, not a tail call)
        jal(1, 0x10),           # 0x1000c: call f (0x1001c)
        addi(10, 0, 0),         # 0x10010: return point: a head
        ECALL,                  # 0x10014
        ECALL,                  # 0x10018: syscall resume: a head
        addi(10, 10, 1),        # 0x1001c: f, a call target: a head
        RET)
    blocks, r = _regions(code)
    assert set(blocks) >= {BASE, 0x10004, 0x1000c}
    assert r.head_of[0x10004] == BASE and r.head_of[0x1000c] == BASE
    assert {0x10010, 0x10018, 0x1001c} <= r.heads
    assert BASE in r.heads and 0x10004 not in r.heads
    assert r.members[BASE][0] == BASE
    # every block belongs to exactly one region
    assert sorted(p for m in r.members.values() for p in m) == sorted(blocks)


def test_join_of_two_regions_and_size_cap():
    code = words(
        bne(10, 0, 8),          # 0x10000: -> 0x10008 or 0x10004
        jal(0, 4),              # 0x10004: -> 0x10008
        addi(5, 5, 1),          # 0x10008: joins two blocks of one region
        ECALL,                  # 0x1000c
        jal(0, -8),             # 0x10010: resume head, jumps to 0x10008 too
        )
    _, r = _regions(code)
    assert 0x10008 in r.heads          # reached from the entry's and 0x10010's regions
    assert r.head_of[0x10004] == BASE
    _, small = _regions(code, max_insns=1)
    assert {BASE, 0x10004, 0x10008} <= small.heads
