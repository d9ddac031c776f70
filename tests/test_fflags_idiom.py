"""The flag-neutral compare (``frflags rX; flt.d rY, a, b; fsflags rX``):
discovery keeps it in one block, the dead-read analysis, and what the
lifter makes of it.  End-to-end exactness on every engine is the
``flag-neutral`` class of tests/test_bug_classes.py."""

from __future__ import annotations

from rv64gen import FCMP, FFLAGS, opfp

from aotc.backend.compile import dead_fflags_reads, lift_region, needs_fp_env
from aotc.discover import CodeRange, discover
from tests.test_discover import BASE, ECALL, RET, addi, bne, jal, words


def frflags(rd: int) -> int:
    return (FFLAGS << 20) | (2 << 12) | (rd << 7) | 0x73          # csrrs rd, fflags, x0


def fsflags(rs: int) -> int:
    return (FFLAGS << 20) | (rs << 15) | (1 << 12) | 0x73          # csrrw x0, fflags, rs


def flt_d(rd: int, a: int, b: int) -> int:
    return opfp(0x14, "d", FCMP["flt"], rd, a, b)


def _blocks(code: bytes):
    return discover([CodeRange(BASE, code)], [], {"entry": [BASE]}).blocks


TRIO = (frflags(1), flt_d(15, 15, 24), fsflags(1))


def test_trio_stays_in_one_block():
    blocks = _blocks(words(addi(5, 0, 1), *TRIO, bne(15, 0, 8), addi(1, 0, 0), ECALL))
    assert [i.mnemonic for i in blocks[BASE].insns] == ["addi", "csrrs", "flt.d", "csrrw", "bne"]
    assert not {BASE + 8, BASE + 12, BASE + 16} & set(blocks)


def test_lone_csr_accesses_still_split_blocks():
    # frflags x1; flt.d x1 (writes rX: not neutral); fsflags x1
    blocks = _blocks(words(addi(5, 0, 1), frflags(1), flt_d(1, 15, 24), fsflags(1), ECALL))
    assert blocks[BASE + 4].insns[0].mnemonic == "csrrs" and len(blocks[BASE + 4].insns) == 1
    assert blocks[BASE + 12].insns[0].mnemonic == "csrrw"


def test_branch_into_the_middle_breaks_the_trio():
    code = words(
        addi(5, 0, 1),          # 0x10000
        bne(5, 0, 12),          # 0x10004 -> 0x10010 (the fsflags)
        *TRIO,                  # 0x10008, 0x1000c, 0x10010
        ECALL)                  # 0x10014
    blocks = _blocks(code)
    assert {0x10008, 0x1000c, 0x10010, 0x10014} <= set(blocks)
    assert len(blocks[0x10008].insns) == 1


def test_dead_read_analysis():
    # rX (x1) overwritten on both paths before any read: dead
    dead = _blocks(words(*TRIO, bne(15, 0, 12), addi(1, 0, 3), ECALL, addi(1, 0, 4), ECALL))
    assert dead_fflags_reads(dead) == {BASE}
    # read on one path: live
    live = _blocks(words(*TRIO, bne(15, 0, 12), addi(1, 0, 3), ECALL, addi(6, 1, 4), ECALL))
    assert dead_fflags_reads(live) == frozenset()
    # a call (the callee may read it) and a syscall: live
    call = _blocks(words(*TRIO, jal(5, 8), ECALL, addi(1, 0, 0), RET))
    assert dead_fflags_reads(call) == frozenset()
    sysc = _blocks(words(*TRIO, ECALL, addi(1, 0, 0), ECALL))
    assert dead_fflags_reads(sysc) == frozenset()
    # a call linking rX itself overwrites it
    link = _blocks(words(*TRIO, jal(1, 8), ECALL, addi(10, 0, 0), RET))
    assert dead_fflags_reads(link) == {BASE}
    # FP registers with rX's number are not reads of rX (fmul.d f1, f1, f15)
    fp = _blocks(words(*TRIO, opfp(0x02, "d", 0, 1, 1, 15), addi(1, 0, 0), ECALL))
    assert dead_fflags_reads(fp) == {BASE}


def test_dead_trio_lifts_to_a_flag_free_compare():
    blocks = _blocks(words(*TRIO, addi(1, 0, 3), ECALL))
    dead = dead_fflags_reads(blocks)
    block = blocks[BASE]
    assert not needs_fp_env(block, dead) and needs_fp_env(block)
    ir, _ = lift_region([block], frozenset(blocks), 15, [], dead_reads=dead)
    # NaN operands are told apart on the bits; only an ordered pair reaches
    # the host compare (ucomisd raises nothing for it).
    assert "mxcsr" not in ir and "fcmp" not in ir
    assert 'asm "ucomisd $1, $2", "={@cca}' in ir and "icmp ugt i64" in ir
    ir_live, _ = lift_region([block], frozenset(blocks), 15, [])
    assert "call i32 @aotc_read_mxcsr()" in ir_live and "fcmp" not in ir_live
