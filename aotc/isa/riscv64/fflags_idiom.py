"""The flag-neutral compare: ``frflags rX; f{lt,le,eq}.{s,d} rY, fa, fb; fsflags rX``.

glibc wraps comparisons whose IEEE flags must not leak this way (``sqrt``
checks ``x < 0`` before ``fsqrt.d``, and many libm functions do the same).
Instruction by instruction it is two CSR accesses around a compare: in
translated code, two reads of the host's MXCSR (each waits for the FP
pipeline to drain) and a region whose FP operations are pinned against
them.  Its net effect is simpler: rX := fflags; rY := the comparison;
fflags unchanged (the write puts back exactly the flags the read saw, so
whatever the compare raised is dropped).  Discovery keeps the three in one
block (no CSR block boundaries), and the lifter runs the compare with its
flags discarded and the fsflags as nothing (``lift_insns``); when rX is
dead afterwards (``fflags_read_dead``), the read goes too.  Each instruction
keeps its one definition: the fused form runs the same semantics, only the
builder drops the flags.  The interpreter runs the three one by one.

The pattern is exact: rX != x0 (else the write would clear the flags), rY !=
rX (else the write would store the compare's result), and the write's rd is
x0 (else it would read the flags after the compare).
"""

from __future__ import annotations

from collections.abc import Callable

from aotc.isa.riscv64.insn import Insn

FFLAGS_CSR = 0x001
COMPARES = frozenset({"flt.s", "flt.d", "fle.s", "fle.d", "feq.s", "feq.d"})


def is_flag_neutral_compare(a: Insn | None, b: Insn | None, c: Insn | None) -> bool:
    """Whether ``a; b; c`` (consecutive) is the flag-neutral compare."""
    if a is None or b is None or c is None:
        return False
    return (a.mnemonic == "csrrs" and a.csr == FFLAGS_CSR and a.rs1 == 0 and a.rd != 0
            and b.mnemonic in COMPARES and b.rd != a.rd and b.pc == a.next_pc
            and c.mnemonic == "csrrw" and c.csr == FFLAGS_CSR and c.rd == 0 and c.rs1 == a.rd
            and c.pc == b.next_pc)


def trio_at(decode_at: Callable[[int], Insn | None], pc: int) -> tuple[Insn, Insn, Insn] | None:
    """The flag-neutral compare starting at ``pc``, if there is one."""
    a = decode_at(pc)
    if a is None or a.mnemonic != "csrrs" or a.csr != FFLAGS_CSR:
        return None
    b = decode_at(a.next_pc)
    c = decode_at(b.next_pc) if b is not None else None
    return (a, b, c) if is_flag_neutral_compare(a, b, c) else None  # type: ignore[return-value]


def trio_starts(insns: tuple[Insn, ...] | list[Insn]) -> list[int]:
    """Indices in a block's instructions where a flag-neutral compare starts."""
    out: list[int] = []
    i = 0
    while i + 2 < len(insns):
        if is_flag_neutral_compare(insns[i], insns[i + 1], insns[i + 2]):
            out.append(i)
            i += 3
        else:
            i += 1
    return out


# Mnemonics whose rd is an integer register they write (fields an
# instruction does not use are 0, so including stores and branches is
# harmless); everything else with an rd writes an FP register or nothing.
_FP_INT_RESULT = frozenset({
    "fclass.s", "fclass.d", "feq.s", "feq.d", "flt.s", "flt.d", "fle.s", "fle.d",
    "fmv.x.w", "fmv.x.d", "fcvt.w.s", "fcvt.wu.s", "fcvt.l.s", "fcvt.lu.s",
    "fcvt.w.d", "fcvt.wu.d", "fcvt.l.d", "fcvt.lu.d"})


def _writes_x(insn: Insn, reg: int) -> bool:
    from aotc.isa.riscv64.semantics import rva, rvi, rvm, zicsr

    if insn.rd != reg:
        return False
    m = insn.mnemonic
    return (m in rvi.SEMANTICS or m in rvm.SEMANTICS or m in rva.SEMANTICS
            or m in zicsr.SEMANTICS or m in _FP_INT_RESULT)


def _may_read(insn: Insn, reg: int) -> bool:
    """Whether ``insn`` may read x[reg]: its register fields name integer
    registers except in FP instructions, whose only integer operand is a
    load/store base or the source of an int->FP move or conversion."""
    from aotc.isa.riscv64.semantics import rvf

    m = insn.mnemonic
    if m in rvf.SEMANTICS:
        if m in ("fld", "flw", "fsd", "fsw", "fmv.w.x", "fmv.d.x") or (
                m.startswith("fcvt.") and m.split(".")[2] in ("w", "wu", "l", "lu")):
            return insn.rs1 == reg
        return False
    return reg in (insn.rs1, insn.rs2, insn.rs3)


def fflags_read_dead(blocks: dict[int, object], block_pc: int, after: int, reg: int,
                     max_blocks: int = 32) -> bool:
    """Whether x[``reg``] is dead after instruction index ``after`` of block
    ``block_pc``: every path overwrites it before reading it, without
    leaving the known blocks (a call, an indirect jump, a syscall, a trap or
    an unknown successor counts as a read).  Bounded search; unsure = live."""
    from aotc.backend.regions import successors

    seen: set[int] = set()
    work: list[tuple[int, int]] = [(block_pc, after + 1)]
    while work:
        pc, start = work.pop()
        block = blocks.get(pc)
        if block is None:
            return False
        insns = block.insns  # type: ignore[attr-defined]
        killed = False
        for insn in insns[start:]:
            if _may_read(insn, reg):
                return False
            if _writes_x(insn, reg):
                killed = True
                break
        if killed:
            continue
        if block.bad_pc is not None or not insns:  # type: ignore[attr-defined]
            return False
        last = insns[-1]
        m = last.mnemonic
        if m == "jal" and last.rd != 0 or m == "jalr":
            return False            # a call or an indirect jump: the target may read it
        succ, _ = successors(block)  # type: ignore[arg-type]
        if not succ:
            return False            # syscall, trap, fence.i: the runtime may read it
        for t in succ:
            if t not in seen:
                if len(seen) >= max_blocks:
                    return False
                seen.add(t)
                work.append((t, 0))
    return True
