"""RV64I base integer instructions (plus fence/fence.i/ecall/ebreak)."""

from __future__ import annotations

from aotc.ir.builder import Builder
from aotc.isa.riscv64.insn import Insn
from aotc.isa.riscv64.semantics.common import (
    MASK64, Sem, branch, compare, i_type, i_type_w, k, load, r_type, r_type_w, shift, shift_w, store,
)


def lui(b: Builder, insn: Insn) -> None:
    b.set_x(insn.rd, k(b, insn.imm))


def auipc(b: Builder, insn: Insn) -> None:
    b.set_x(insn.rd, k(b, insn.pc + insn.imm))


# Return-address registers (ra, t0): linking one is a call, jumping through
# one without linking is a return (the ISA's return-address-stack hints).
LINK_REGS = (1, 5)


def jal(b: Builder, insn: Insn) -> None:
    b.set_x(insn.rd, k(b, insn.next_pc))
    b.jump((insn.pc + insn.imm) & MASK64,
           returns_to=insn.next_pc if insn.rd in LINK_REGS else None)


def jalr(b: Builder, insn: Insn) -> None:
    # The target is computed before rd is written: rd may equal rs1.
    target = b.and_(b.add(b.get_x(insn.rs1), k(b, insn.imm)), k(b, -2))
    b.set_x(insn.rd, k(b, insn.next_pc))
    b.jump_indirect(target, returns_to=insn.next_pc if insn.rd in LINK_REGS else None,
                    is_return=insn.rd == 0 and insn.rs1 in LINK_REGS)


# fence's imm: fm (4 bits) | pred (PI PO PR PW) | succ (SI SO SR SW).
_FENCE_W, _FENCE_R = 0b0101, 0b1010      # "writes" (O, W) and "reads" (I, R) of a set
_FENCE_TSO = 0b1000


def fence(b: Builder, insn: Insn) -> None:
    """RVWMO on x86-TSO (docs/architecture.md): the host keeps every order
    but store->load, so only a fence whose predecessor set has writes (W or
    O) and whose successor set has reads (R or I) needs a host barrier;
    ``fence.tso`` (fm = 1000) by definition does not order W->R.  Any
    other fence is a compiler barrier, which keeps LLVM from moving guest
    accesses across it (and from hoisting a load out of a spin loop)."""
    fm, pred, succ = (insn.imm >> 8) & 0xF, (insn.imm >> 4) & 0xF, insn.imm & 0xF
    store_load = bool(pred & _FENCE_W and succ & _FENCE_R) and fm != _FENCE_TSO
    b.fence(store_load=store_load)


def fence_i(b: Builder, insn: Insn) -> None:
    b.fence_i()


def ecall(b: Builder, insn: Insn) -> None:
    b.syscall()


def ebreak(b: Builder, insn: Insn) -> None:
    b.breakpoint()


def _imm_shift(op: str) -> Sem:
    """Shift by the immediate shamt (already < width by decoding)."""
    def sem(b: Builder, insn: Insn) -> None:
        x = b.get_x(insn.rs1)
        b.set_x(insn.rd, getattr(b, op)(x, k(b, insn.imm)))
    return sem


def _imm_shift_w(op: str) -> Sem:
    def sem(b: Builder, insn: Insn) -> None:
        x = b.trunc(b.get_x(insn.rs1), 32)
        b.set_x(insn.rd, b.sext(getattr(b, op)(x, k(b, insn.imm, 32)), 64))
    return sem


SEMANTICS: dict[str, Sem] = {
    "lui": lui, "auipc": auipc, "jal": jal, "jalr": jalr,
    "beq": branch("eq"), "bne": branch("ne"), "blt": branch("slt"), "bge": branch("sge"),
    "bltu": branch("ult"), "bgeu": branch("uge"),
    "lb": load(8, True), "lh": load(16, True), "lw": load(32, True), "ld": load(64, True),
    "lbu": load(8, False), "lhu": load(16, False), "lwu": load(32, False),
    "sb": store(8), "sh": store(16), "sw": store(32), "sd": store(64),
    "addi": i_type(lambda b, x, y: b.add(x, y)),
    "slti": i_type(compare("slt")),
    "sltiu": i_type(compare("ult")),
    "xori": i_type(lambda b, x, y: b.xor(x, y)),
    "ori": i_type(lambda b, x, y: b.or_(x, y)),
    "andi": i_type(lambda b, x, y: b.and_(x, y)),
    "slli": _imm_shift("shl"), "srli": _imm_shift("lshr"), "srai": _imm_shift("ashr"),
    "add": r_type(lambda b, x, y: b.add(x, y)),
    "sub": r_type(lambda b, x, y: b.sub(x, y)),
    "sll": r_type(shift("shl")),
    "slt": r_type(compare("slt")),
    "sltu": r_type(compare("ult")),
    "xor": r_type(lambda b, x, y: b.xor(x, y)),
    "srl": r_type(shift("lshr")),
    "sra": r_type(shift("ashr")),
    "or": r_type(lambda b, x, y: b.or_(x, y)),
    "and": r_type(lambda b, x, y: b.and_(x, y)),
    "addiw": i_type_w(lambda b, x, y: b.add(x, y)),
    "slliw": _imm_shift_w("shl"), "srliw": _imm_shift_w("lshr"), "sraiw": _imm_shift_w("ashr"),
    "addw": r_type_w(lambda b, x, y: b.add(x, y)),
    "subw": r_type_w(lambda b, x, y: b.sub(x, y)),
    "sllw": r_type_w(shift_w("shl")),
    "srlw": r_type_w(shift_w("lshr")),
    "sraw": r_type_w(shift_w("ashr")),
    "fence": fence, "fence.i": fence_i, "ecall": ecall, "ebreak": ebreak,
}
