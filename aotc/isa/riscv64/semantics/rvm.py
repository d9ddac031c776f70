"""RV64M: multiply and divide.

Division corner cases follow the spec table (unprivileged ISA, "Division
Operations"): x/0 = all ones (-1), x%0 = x; signed MIN/-1 = MIN, MIN%-1 = 0.
The builder's divide never sees a 0 divisor or MIN/-1: both are replaced by a
divisor of 1 first (which already yields MIN and 0 for the overflow case),
then the divide-by-zero lane is patched with ``select``.
"""

from __future__ import annotations

from aotc.ir.builder import Builder, Value
from aotc.isa.riscv64.semantics.common import BinOp, Sem, k, r_type, r_type_w


def _mulh(sign_a: bool, sign_b: bool) -> BinOp:
    """High 64 bits of the 128-bit product."""
    def f(b: Builder, x: Value, y: Value) -> Value:
        wa = b.sext(x, 128) if sign_a else b.zext(x, 128)
        wb = b.sext(y, 128) if sign_b else b.zext(y, 128)
        return b.trunc(b.lshr(b.mul(wa, wb), b.const(64, 128)), 64)
    return f


def _safe_divisor(b: Builder, x: Value, y: Value, signed: bool, bits: int) -> tuple[Value, Value]:
    """(divisor with the trapping lanes replaced by 1, y == 0)."""
    zero = b.icmp("eq", y, k(b, 0, bits))
    bad = zero
    if signed:
        overflow = b.and_(b.icmp("eq", x, k(b, 1 << (bits - 1), bits)), b.icmp("eq", y, k(b, -1, bits)))
        bad = b.or_(zero, overflow)
    return b.select(bad, k(b, 1, bits), y), zero


def _div(signed: bool, bits: int) -> BinOp:
    def f(b: Builder, x: Value, y: Value) -> Value:
        d, zero = _safe_divisor(b, x, y, signed, bits)
        q = b.sdiv(x, d) if signed else b.udiv(x, d)
        return b.select(zero, k(b, -1, bits), q)
    return f


def _rem(signed: bool, bits: int) -> BinOp:
    def f(b: Builder, x: Value, y: Value) -> Value:
        d, zero = _safe_divisor(b, x, y, signed, bits)
        r = b.srem(x, d) if signed else b.urem(x, d)
        return b.select(zero, x, r)
    return f


SEMANTICS: dict[str, Sem] = {
    "mul": r_type(lambda b, x, y: b.mul(x, y)),
    "mulh": r_type(_mulh(True, True)),
    "mulhsu": r_type(_mulh(True, False)),
    "mulhu": r_type(_mulh(False, False)),
    "div": r_type(_div(True, 64)),
    "divu": r_type(_div(False, 64)),
    "rem": r_type(_rem(True, 64)),
    "remu": r_type(_rem(False, 64)),
    "mulw": r_type_w(lambda b, x, y: b.mul(x, y)),
    "divw": r_type_w(_div(True, 32)),
    "divuw": r_type_w(_div(False, 32)),
    "remw": r_type_w(_rem(True, 32)),
    "remuw": r_type_w(_rem(False, 32)),
}
