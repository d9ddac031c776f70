"""Bit manipulation (B = Zba + Zbb + Zbs) and conditional zero (Zicond), RV64.

Every instruction is composed from the ordinary ``Builder`` operations
(shifts, masks, ``select``, ``ctlz``/``cttz``/``ctpop``, width changes), so
the interpreter evaluates exactly what LLVM compiles; LLVM recognises the
idioms (rotates become ``rol``/``ror``, the byte swap ``bswap``, ``andn``
under BMI).  Definitions follow the ratified specification's pseudocode
("B" chapter of the unprivileged ISA, version 1.0.0; Zicond 1.0.0):

* register shift amounts are masked to 6 bits (5 for the W forms), as for
  ``sll``; a rotate by 0 (or by a multiple of the width) is the identity;
* ``clz``/``ctz`` of 0 give the width (64, or 32 for ``clzw``/``ctzw``);
  the W forms count in bits 31..0 only and ignore the upper half;
* ``*.uw`` forms zero-extend the low word of rs1 before shifting/adding;
* ``czero.eqz rd, rs1, rs2``: rd = 0 if x[rs2] == 0 else x[rs1];
  ``czero.nez``: rd = 0 if x[rs2] != 0 else x[rs1].
"""

from __future__ import annotations

from aotc.ir.builder import Builder, Value
from aotc.isa.riscv64.insn import Insn
from aotc.isa.riscv64.semantics.common import BinOp, Sem, k, lo32, r_type, w_result

_BYTES_7F = 0x7F7F7F7F7F7F7F7F
_BYTES_01 = 0x0101010101010101


def _not(b: Builder, v: Value, bits: int = 64) -> Value:
    return b.xor(v, k(b, -1, bits))


def _rot(b: Builder, x: Value, n: Value, bits: int, left: bool) -> Value:
    """Rotate ``x`` by ``n`` (already < bits): ``x << n | x >> (-n mod bits)``
    (right: mirrored).  Both shift amounts stay below the width, so ``n = 0``
    needs no special case: it is ``x | x``."""
    m = k(b, bits - 1, bits)
    back = b.and_(b.sub(k(b, 0, bits), n), m)
    if left:
        return b.or_(b.shl(x, n), b.lshr(x, back))
    return b.or_(b.lshr(x, n), b.shl(x, back))


def _rot_reg(left: bool) -> BinOp:
    def f(b: Builder, x: Value, y: Value) -> Value:
        return _rot(b, x, b.and_(y, k(b, 63)), 64, left)
    return f


def _rot_reg_w(left: bool) -> Sem:
    def sem(b: Builder, insn: Insn) -> None:
        x, y = lo32(b, b.get_x(insn.rs1)), lo32(b, b.get_x(insn.rs2))
        b.set_x(insn.rd, w_result(b, _rot(b, x, b.and_(y, k(b, 31, 32)), 32, left)))
    return sem


def rori(b: Builder, insn: Insn) -> None:
    b.set_x(insn.rd, _rot(b, b.get_x(insn.rs1), k(b, insn.imm & 63), 64, left=False))


def roriw(b: Builder, insn: Insn) -> None:
    x = lo32(b, b.get_x(insn.rs1))
    b.set_x(insn.rd, w_result(b, _rot(b, x, k(b, insn.imm & 31, 32), 32, left=False)))


def _unary(f) -> Sem:  # type: ignore[no-untyped-def]
    """``rd = f(x[rs1])``."""
    def sem(b: Builder, insn: Insn) -> None:
        b.set_x(insn.rd, f(b, b.get_x(insn.rs1)))
    return sem


def _count_w(op: str):  # type: ignore[no-untyped-def]
    """clzw/ctzw/cpopw: count in the low word, result zero-extended (0..32)."""
    def f(b: Builder, x: Value) -> Value:
        return b.zext(getattr(b, op)(lo32(b, x)), 64)
    return f


def _orc_b(b: Builder, x: Value) -> Value:
    """Each byte becomes 0xFF if it is nonzero, else 0x00.  Per byte,
    ``((v & 0x7F) + 0x7F) | v`` has bit 7 set iff v != 0 (the sum stays below
    0x100, so no carry crosses bytes); that bit, moved to bit 0 and
    multiplied by 0xFF, fills the byte (again without carries)."""
    low = b.add(b.and_(x, k(b, _BYTES_7F)), k(b, _BYTES_7F))
    top = b.and_(b.lshr(b.or_(low, x), k(b, 7)), k(b, _BYTES_01))
    return b.mul(top, k(b, 0xFF))


def _rev8(b: Builder, x: Value) -> Value:
    """Byte reversal of the 64-bit value: swap bytes, then halfwords, then
    words (LLVM folds this to ``bswap``)."""
    for sh, mask in ((8, 0x00FF00FF00FF00FF), (16, 0x0000FFFF0000FFFF), (32, 0x00000000FFFFFFFF)):
        m = k(b, mask)
        x = b.or_(b.and_(b.lshr(x, k(b, sh)), m), b.shl(b.and_(x, m), k(b, sh)))
    return x


def _minmax(pred: str) -> BinOp:
    """``x pred y ? x : y`` (min: slt/ult, max: sgt/ugt)."""
    def f(b: Builder, x: Value, y: Value) -> Value:
        return b.select(b.icmp(pred, x, y), x, y)
    return f


def _uw(b: Builder, x: Value) -> Value:
    """zext(x[31:0])."""
    return b.zext(lo32(b, x), 64)


def _shadd(n: int, uw: bool) -> BinOp:
    """``sh{n}add[.uw]``: (rs1 [low word, zero-extended] << n) + rs2; n = 0 is add.uw."""
    def f(b: Builder, x: Value, y: Value) -> Value:
        if uw:
            x = _uw(b, x)
        return b.add(b.shl(x, k(b, n)) if n else x, y)
    return f


def slli_uw(b: Builder, insn: Insn) -> None:
    b.set_x(insn.rd, b.shl(_uw(b, b.get_x(insn.rs1)), k(b, insn.imm & 63)))


# -- single bit (Zbs): the index is x[rs2] & 63 or the immediate shamt -----------

def _bit(b: Builder, index: Value) -> Value:
    return b.shl(k(b, 1), index)


def _bclr(b: Builder, x: Value, i: Value) -> Value:
    return b.and_(x, _not(b, _bit(b, i)))


def _bset(b: Builder, x: Value, i: Value) -> Value:
    return b.or_(x, _bit(b, i))


def _binv(b: Builder, x: Value, i: Value) -> Value:
    return b.xor(x, _bit(b, i))


def _bext(b: Builder, x: Value, i: Value) -> Value:
    return b.and_(b.lshr(x, i), k(b, 1))


def _bit_reg(op) -> BinOp:  # type: ignore[no-untyped-def]
    def f(b: Builder, x: Value, y: Value) -> Value:
        return op(b, x, b.and_(y, k(b, 63)))
    return f


def _bit_imm(op) -> Sem:  # type: ignore[no-untyped-def]
    def sem(b: Builder, insn: Insn) -> None:
        b.set_x(insn.rd, op(b, b.get_x(insn.rs1), k(b, insn.imm & 63)))
    return sem


# -- Zicond ------------------------------------------------------------------------

def _czero(pred: str) -> BinOp:
    """0 if (x[rs2] pred 0) else x[rs1]."""
    def f(b: Builder, x: Value, y: Value) -> Value:
        return b.select(b.icmp(pred, y, k(b, 0)), k(b, 0), x)
    return f


ZBA: dict[str, Sem] = {
    "add.uw": r_type(_shadd(0, True)),
    "sh1add": r_type(_shadd(1, False)), "sh2add": r_type(_shadd(2, False)),
    "sh3add": r_type(_shadd(3, False)),
    "sh1add.uw": r_type(_shadd(1, True)), "sh2add.uw": r_type(_shadd(2, True)),
    "sh3add.uw": r_type(_shadd(3, True)),
    "slli.uw": slli_uw,
}

ZBB: dict[str, Sem] = {
    "andn": r_type(lambda b, x, y: b.and_(x, _not(b, y))),
    "orn": r_type(lambda b, x, y: b.or_(x, _not(b, y))),
    "xnor": r_type(lambda b, x, y: _not(b, b.xor(x, y))),
    "clz": _unary(lambda b, x: b.ctlz(x)),
    "ctz": _unary(lambda b, x: b.cttz(x)),
    "cpop": _unary(lambda b, x: b.ctpop(x)),
    "clzw": _unary(_count_w("ctlz")),
    "ctzw": _unary(_count_w("cttz")),
    "cpopw": _unary(_count_w("ctpop")),
    "min": r_type(_minmax("slt")), "minu": r_type(_minmax("ult")),
    "max": r_type(_minmax("sgt")), "maxu": r_type(_minmax("ugt")),
    "sext.b": _unary(lambda b, x: b.sext(b.trunc(x, 8), 64)),
    "sext.h": _unary(lambda b, x: b.sext(b.trunc(x, 16), 64)),
    "zext.h": _unary(lambda b, x: b.zext(b.trunc(x, 16), 64)),
    "rol": r_type(_rot_reg(True)), "ror": r_type(_rot_reg(False)),
    "rolw": _rot_reg_w(True), "rorw": _rot_reg_w(False),
    "rori": rori, "roriw": roriw,
    "orc.b": _unary(_orc_b),
    "rev8": _unary(_rev8),
}

ZBS: dict[str, Sem] = {
    "bclr": r_type(_bit_reg(_bclr)), "bset": r_type(_bit_reg(_bset)),
    "binv": r_type(_bit_reg(_binv)), "bext": r_type(_bit_reg(_bext)),
    "bclri": _bit_imm(_bclr), "bseti": _bit_imm(_bset),
    "binvi": _bit_imm(_binv), "bexti": _bit_imm(_bext),
}

ZICOND: dict[str, Sem] = {
    "czero.eqz": r_type(_czero("eq")),
    "czero.nez": r_type(_czero("ne")),
}

SEMANTICS: dict[str, Sem] = {**ZBA, **ZBB, **ZBS, **ZICOND}
