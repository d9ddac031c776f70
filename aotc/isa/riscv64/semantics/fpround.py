"""Rounding done in integer operations, for the FP instructions whose
rounding no ``Builder`` FP operation performs (Zfa's round-to-integral,
Zfhmin's conversions to half precision).

A value is rounded by dropping the low bits of its significand: ``lsb`` is
the last kept bit, ``half`` the first dropped one and ``sticky`` whether any
later dropped bit is set.  ``rm`` is an i64 rounding mode 0-4 from
``Builder.rounding_mode`` (a constant for static modes, so a compiling
builder folds the choice away).
"""

from __future__ import annotations

from aotc.ir.builder import RM_RDN, RM_RMM, RM_RNE, RM_RUP, Builder, Value
from aotc.isa.riscv64.semantics.common import k


def not1(b: Builder, c: Value) -> Value:
    return b.xor(c, b.const(1, 1))


def round_up(b: Builder, rm: Value, negative: Value, lsb: Value, half: Value, sticky: Value) -> Value:
    """i1: whether rounding adds one unit in the last kept place (RNE: ties
    to even; RTZ: never; RDN/RUP: any dropped bit, toward -inf/+inf; RMM:
    ties away from zero)."""
    inexact = b.or_(half, sticky)
    rne = b.and_(half, b.or_(sticky, lsb))
    rdn = b.and_(negative, inexact)
    rup = b.and_(not1(b, negative), inexact)
    false = b.const(0, 1)
    r = b.select(b.icmp("eq", rm, k(b, RM_RMM)), half, false)
    r = b.select(b.icmp("eq", rm, k(b, RM_RUP)), rup, r)
    r = b.select(b.icmp("eq", rm, k(b, RM_RDN)), rdn, r)
    return b.select(b.icmp("eq", rm, k(b, RM_RNE)), rne, r)


def split(b: Builder, sig: Value, shift: Value) -> tuple[Value, Value, Value, Value]:
    """``sig >> shift`` and its (lsb, half, sticky) bits; 1 <= shift < 64."""
    one = k(b, 1)
    kept = b.lshr(sig, shift)
    below = b.sub(shift, one)
    half = b.icmp("ne", b.and_(b.lshr(sig, below), one), k(b, 0))
    sticky = b.icmp("ne", b.and_(sig, b.sub(b.shl(one, below), one)), k(b, 0))
    lsb = b.icmp("ne", b.and_(kept, one), k(b, 0))
    return kept, lsb, half, sticky
