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
        addi(10, 0, 0),         # 0x10010: return point outside loops: a head
        ECALL,                  # 0x10014
        ECALL,                  # 0x10018: syscall resume: a head
        addi(10, 10, 1),        # 0x1001c: f, a call target: a head
        RET)
    blocks, r = _regions(code)
    assert set(blocks) >= {BASE, 0x10004, 0x1000c, 0x10010}
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


def test_loop_through_a_call_gets_an_entry_where_it_starts():
    """A return point is entered through its stand-alone copy after the host
    stack was unwound; a loop of non-head blocks it reaches would then run
    unoptimised for good, so the loop's first block becomes an entry: a
    second, optimised function holding the loop (the region stays whole)."""
    code = words(
        addi(5, 0, 3),          # 0x10000: entry
        addi(5, 5, -1),         # 0x10004: loop start
        jal(1, 0x14),           # 0x10008: call f (0x1001c)
        bne(5, 0, -8),          # 0x1000c: return point; back edge -> 0x10004
        ECALL,                  # 0x10010
        ECALL,                  # 0x10014
        ECALL,                  # 0x10018
        addi(10, 10, 1),        # 0x1001c: f
        RET)
    blocks, r = _regions(code)
    assert 0x10004 not in r.heads and 0x1000c not in r.heads
    assert r.members[BASE] == (BASE, 0x10004, 0x1000c, 0x10010)   # 0x10010: after the loop
    assert r.entries == {0x10004: (0x10004, 0x1000c, 0x10010)}


def test_inner_loop_after_a_return_point_gets_its_own_entry():
    """The return point sits in an inner loop whose outer loop's first block
    lies outside it: the copies would circle the inner loop, so it gets an
    entry too."""
    code = words(
        addi(5, 0, 3),          # 0x10000: entry
        addi(6, 0, 3),          # 0x10004: outer loop start
        jal(1, 0x18),           # 0x10008: inner loop: call f (0x10020)
        addi(6, 6, -1),         # 0x1000c: return point
        bne(6, 0, -8),          # 0x10010: inner back edge -> 0x10008
        addi(5, 5, -1),         # 0x10014
        bne(5, 0, -20),         # 0x10018: outer back edge -> 0x10004
        ECALL,                  # 0x1001c
        addi(10, 10, 1),        # 0x10020: f
        RET)
    blocks, r = _regions(code)
    assert not {0x10004, 0x10008, 0x1000c} & r.heads
    assert set(r.entries) == {0x10004, 0x10008}
    assert r.entries[0x10008][0] == 0x10008 and 0x10004 in r.entries[0x10008]
    # every block belongs to exactly one region
    assert sorted(p for m in r.members.values() for p in m) == sorted(blocks)


def test_join_after_a_call_stays_in_the_loop():
    """nbody's shape: a loop whose body either computes inline or calls a
    slow path, both joining before the back edge: one region."""
    code = words(
        addi(5, 0, 3),          # 0x10000: entry
        bne(6, 0, 12),          # 0x10004: loop start: -> 0x10010 (slow) or 0x10008
        addi(7, 7, 1),          # 0x10008: inline path
        jal(0, 12),             # 0x1000c: -> join 0x10018
        jal(1, 0x18),           # 0x10010: slow path: call f (0x10028)
        jal(0, 4),              # 0x10014: return point -> join 0x10018
        addi(5, 5, -1),         # 0x10018: join
        bne(5, 0, -24),         # 0x1001c: back edge -> 0x10004
        ECALL,                  # 0x10020
        ECALL,                  # 0x10024
        addi(10, 10, 1),        # 0x10028: f
        RET)
    blocks, r = _regions(code)
    assert 0x10004 not in r.heads and 0x10004 in r.entries
    loop = {0x10004, 0x10008, 0x10010, 0x10014, 0x10018}
    assert loop <= set(blocks)
    assert {pc for pc in loop if r.head_of[pc] == BASE} == loop
    assert loop <= set(r.entries[0x10004])
