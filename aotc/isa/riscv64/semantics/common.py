"""Family helpers shared by the per-extension semantics modules.

Every helper speaks only the ``Builder`` protocol.  Constants are passed to
``Builder.const`` in signed two's-complement form for their width.
"""

from __future__ import annotations

from collections.abc import Callable

from aotc.ir.builder import Builder, Value
from aotc.isa.riscv64.insn import Insn

Sem = Callable[[Builder, Insn], None]
BinOp = Callable[[Builder, Value, Value], Value]

MASK64 = (1 << 64) - 1


def signed(value: int, bits: int) -> int:
    """``value`` as a signed ``bits``-wide integer."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def k(b: Builder, value: int, bits: int = 64) -> Value:
    """A constant of ``bits`` width (any Python int, wrapped to the width)."""
    return b.const(signed(value, bits), bits)


def w_result(b: Builder, v32: Value) -> Value:
    """Sign-extend a 32-bit result to 64 bits (the W-op rule)."""
    return b.sext(v32, 64)


def lo32(b: Builder, v: Value) -> Value:
    return b.trunc(v, 32)


def bool64(b: Builder, cond: Value) -> Value:
    """i1 -> 0/1 in i64."""
    return b.zext(cond, 64)


def addr_of(b: Builder, insn: Insn) -> Value:
    """``x[rs1] + imm`` — the effective address of a load/store."""
    return b.add(b.get_x(insn.rs1), k(b, insn.imm))


# --- integer families --------------------------------------------------------

def r_type(op: BinOp) -> Sem:
    """``rd = op(x[rs1], x[rs2])`` on 64 bits."""
    def sem(b: Builder, insn: Insn) -> None:
        x, y = b.get_x(insn.rs1), b.get_x(insn.rs2)
        b.set_x(insn.rd, op(b, x, y))
    return sem


def i_type(op: BinOp) -> Sem:
    """``rd = op(x[rs1], imm)`` on 64 bits."""
    def sem(b: Builder, insn: Insn) -> None:
        x = b.get_x(insn.rs1)
        b.set_x(insn.rd, op(b, x, k(b, insn.imm)))
    return sem


def r_type_w(op: BinOp) -> Sem:
    """``rd = sext32(op(x[rs1][31:0], x[rs2][31:0]))``."""
    def sem(b: Builder, insn: Insn) -> None:
        x, y = lo32(b, b.get_x(insn.rs1)), lo32(b, b.get_x(insn.rs2))
        b.set_x(insn.rd, w_result(b, op(b, x, y)))
    return sem


def i_type_w(op: BinOp) -> Sem:
    """``rd = sext32(op(x[rs1][31:0], imm[31:0]))``."""
    def sem(b: Builder, insn: Insn) -> None:
        x = lo32(b, b.get_x(insn.rs1))
        b.set_x(insn.rd, w_result(b, op(b, x, k(b, insn.imm, 32))))
    return sem


def shift_amount(b: Builder, amount: Value, bits: int) -> Value:
    """Mask a register shift amount to 6 bits (64-bit) or 5 bits (32-bit)."""
    return b.and_(amount, k(b, bits - 1, bits))


def shift(op: str) -> BinOp:
    """A shift by a register amount (masked to the operand width)."""
    def f(b: Builder, x: Value, y: Value) -> Value:
        return getattr(b, op)(x, shift_amount(b, y, 64))
    return f


def shift_w(op: str) -> BinOp:
    def f(b: Builder, x: Value, y: Value) -> Value:
        return getattr(b, op)(x, shift_amount(b, y, 32))
    return f


def compare(pred: str) -> BinOp:
    """``rd = (x pred y) ? 1 : 0``."""
    def f(b: Builder, x: Value, y: Value) -> Value:
        return bool64(b, b.icmp(pred, x, y))
    return f


def load(bits: int, signed_: bool) -> Sem:
    def sem(b: Builder, insn: Insn) -> None:
        v = b.load(addr_of(b, insn), bits)
        if bits < 64:
            v = b.sext(v, 64) if signed_ else b.zext(v, 64)
        b.set_x(insn.rd, v)
    return sem


def store(bits: int) -> Sem:
    def sem(b: Builder, insn: Insn) -> None:
        addr = addr_of(b, insn)
        v = b.get_x(insn.rs2)
        b.store(addr, b.trunc(v, bits) if bits < 64 else v)
    return sem


def branch(pred: str) -> Sem:
    def sem(b: Builder, insn: Insn) -> None:
        cond = b.icmp(pred, b.get_x(insn.rs1), b.get_x(insn.rs2))
        b.branch(cond, (insn.pc + insn.imm) & MASK64, insn.next_pc & MASK64)
    return sem
