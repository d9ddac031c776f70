"""Zfhmin (half-precision loads, stores, moves and conversions), RV64.

A half lives in an f register NaN-boxed: bits 63..16 all ones; any other
upper bits read as the canonical half NaN (0x7E00), as for singles.
``flh``/``fmv.h.x`` box the 16 bits they write; ``fsh`` stores and
``fmv.x.h`` moves the low 16 bits as they are (``fmv.x.h`` sign-extends).

The conversions are done in integer operations on the bits (the ``Builder``
has no half type):

* ``fcvt.s.h``/``fcvt.d.h`` are exact: subnormal halves are normalised, a
  NaN gives the canonical NaN of the wider format (NV for a signalling one).
* ``fcvt.h.s``/``fcvt.h.d`` round with ``rm`` (RISC-V detects tininess
  after rounding): NX when inexact, UF when tiny and inexact, OF|NX on
  overflow (to ±inf, or to the largest finite half for the modes that
  round toward zero from that side), NV for a signalling NaN, canonical NaN
  for any NaN.
"""

from __future__ import annotations

from aotc.ir.builder import FLAG_NV, FLAG_NX, FLAG_OF, FLAG_UF, Builder, Value
from aotc.isa.riscv64.insn import Insn
from aotc.isa.riscv64.semantics import fpround
from aotc.isa.riscv64.semantics.common import Sem, k
from aotc.isa.riscv64.semantics.rvf import (
    CANONICAL_NAN, EXP_MASK, FRAC_MASK, bad_rm, is_snan, raise_nv_if, read_bits, write_bits,
)

HALF_NAN = 0x7E00
HALF_INF = 0x7C00
HALF_MAX = 0x7BFF
_BOX16 = 0xFFFFFFFFFFFF0000
MANT = {32: 23, 64: 52}
BIAS = {32: 127, 64: 1023}


def read_half(b: Builder, r: int) -> Value:
    """i64 holding the half's 16 bits; an unboxed value reads as the canonical NaN."""
    raw = b.get_f(r)
    boxed = b.icmp("uge", raw, k(b, _BOX16))
    return b.select(boxed, b.and_(raw, k(b, 0xFFFF)), k(b, HALF_NAN))


def write_half(b: Builder, r: int, bits64: Value) -> None:
    b.set_f(r, b.or_(bits64, k(b, _BOX16)))


def flh(b: Builder, insn: Insn) -> None:
    addr = b.add(b.get_x(insn.rs1), k(b, insn.imm))
    write_half(b, insn.rd, b.zext(b.load(addr, 16), 64))


def fsh(b: Builder, insn: Insn) -> None:
    addr = b.add(b.get_x(insn.rs1), k(b, insn.imm))
    b.store(addr, b.trunc(b.get_f(insn.rs2), 16))


def fmv_x_h(b: Builder, insn: Insn) -> None:
    b.set_x(insn.rd, b.sext(b.trunc(b.get_f(insn.rs1), 16), 64))


def fmv_h_x(b: Builder, insn: Insn) -> None:
    write_half(b, insn.rd, b.zext(b.trunc(b.get_x(insn.rs1), 16), 64))


def widen(w: int) -> Sem:
    """fcvt.s.h / fcvt.d.h (exact)."""
    mant, bias = MANT[w], BIAS[w]

    def sem(b: Builder, insn: Insn) -> None:
        if bad_rm(b, insn):
            return
        if insn.rm == 7:
            b.rounding_mode(7)       # a reserved frm traps, as for every DYN conversion
        h = read_half(b, insn.rs1)
        sign = b.shl(b.lshr(h, k(b, 15)), k(b, w - 1))
        e = b.and_(b.lshr(h, k(b, 10)), k(b, 31))
        m = b.and_(h, k(b, 0x3FF))
        m_zero = b.icmp("eq", m, k(b, 0))
        normal = b.or_(sign, b.or_(b.shl(b.add(e, k(b, bias - 15)), k(b, mant)),
                                   b.shl(m, k(b, mant - 10))))
        # subnormal: m * 2^-24 with its top bit at t = 63 - clz(m) (0..9)
        t = b.sub(k(b, 63), b.ctlz(m))
        sub_frac = b.and_(b.shl(m, b.sub(k(b, mant), t)), k(b, FRAC_MASK[w]))
        subnormal = b.or_(sign, b.or_(b.shl(b.add(t, k(b, bias - 24)), k(b, mant)), sub_frac))
        r = b.select(b.icmp("eq", e, k(b, 0)), b.select(m_zero, sign, subnormal), normal)
        inf = b.or_(sign, k(b, EXP_MASK[w]))
        e_max = b.icmp("eq", e, k(b, 31))
        r = b.select(e_max, b.select(m_zero, inf, k(b, CANONICAL_NAN[w])), r)
        raise_nv_if(b, _half_snan(b, h))
        write_bits(b, insn.rd, b.trunc(r, 32) if w == 32 else r, w)
    return sem


def _half_snan(b: Builder, h: Value) -> Value:
    """i1: the half (in an i64) is a signalling NaN."""
    exp_ones = b.icmp("eq", b.and_(h, k(b, 0x7E00)), k(b, 0x7C00))
    return b.and_(exp_ones, b.icmp("ne", b.and_(h, k(b, 0x1FF)), k(b, 0)))


def narrow(w: int) -> Sem:
    """fcvt.h.s / fcvt.h.d."""
    mant, bias = MANT[w], BIAS[w]
    emax = EXP_MASK[w] >> mant

    def sem(b: Builder, insn: Insn) -> None:
        if bad_rm(b, insn):
            return
        rm = b.rounding_mode(insn.rm)
        raw = read_bits(b, insn.rs1, w)
        x = b.zext(raw, 64) if w == 32 else raw
        sign16 = b.shl(b.lshr(x, k(b, w - 1)), k(b, 15))
        negative = b.icmp("ne", sign16, k(b, 0))
        e = b.and_(b.lshr(x, k(b, mant)), k(b, emax))
        frac = b.and_(x, k(b, FRAC_MASK[w]))
        e_nonzero = b.icmp("ne", e, k(b, 0))
        sig = b.or_(frac, b.select(e_nonzero, k(b, 1 << mant), k(b, 0)))
        # unbiased exponent (subnormals: that of the smallest normal), signed
        unb = b.sub(b.select(e_nonzero, e, k(b, 1)), k(b, bias))
        normal = b.icmp("sge", unb, k(b, -14))
        # bits to drop: mant - 10, plus the distance below 2^-14 for a
        # subnormal half; from mant + 2 on all of sig is sticky
        extra = b.sub(k(b, -14), unb)
        extra = b.select(normal, k(b, 0), b.select(b.icmp("sgt", extra, k(b, 12)), k(b, 12), extra))
        shift = b.add(k(b, mant - 10), extra)
        kept, lsb, half, sticky = fpround.split(b, sig, shift)
        up = fpround.round_up(b, rm, negative, lsb, half, sticky)
        rounded = b.add(kept, b.zext(up, 64))
        # a normal result's exponent field is unb + 15: (unb + 14) << 10 plus
        # the kept significand with its leading 1 (a carry out of it is exact)
        bits = b.add(b.select(normal, b.shl(b.add(unb, k(b, 14)), k(b, 10)), k(b, 0)), rounded)
        overflow = b.and_(normal, b.icmp("uge", bits, k(b, HALF_INF)))
        inexact = b.or_(half, sticky)
        # Tininess after rounding: below 2^-14 even when rounded to 11 bits
        # with an unbounded exponent; that differs from the subnormal
        # rounding above only just below 2^-14 (unb = -15).
        k_u, lsb_u, half_u, sticky_u = fpround.split(b, sig, k(b, mant - 10))
        carry_u = b.icmp("eq", b.add(k_u, b.zext(fpround.round_up(b, rm, negative, lsb_u, half_u, sticky_u), 64)),
                         k(b, 2048))
        tiny = b.or_(b.icmp("slt", unb, k(b, -15)),
                     b.and_(b.icmp("eq", unb, k(b, -15)), fpround.not1(b, carry_u)))
        # overflow: ±inf, or the largest finite half when rounding toward zero
        # from that side (RTZ; RDN for positive, RUP for negative values)
        to_max = b.or_(b.icmp("eq", rm, k(b, 1)),
                       b.or_(b.and_(b.icmp("eq", rm, k(b, 2)), fpround.not1(b, negative)),
                             b.and_(b.icmp("eq", rm, k(b, 3)), negative)))
        big = b.select(to_max, k(b, HALF_MAX), k(b, HALF_INF))
        finite = b.or_(sign16, b.select(overflow, big, bits))
        nan = b.and_(b.icmp("eq", e, k(b, emax)), b.icmp("ne", frac, k(b, 0)))
        inf = b.and_(b.icmp("eq", e, k(b, emax)), b.icmp("eq", frac, k(b, 0)))
        r = b.select(nan, k(b, HALF_NAN), b.select(inf, b.or_(sign16, k(b, HALF_INF)), finite))
        special = b.or_(nan, inf)
        nx = b.select(b.or_(inexact, overflow), k(b, FLAG_NX), k(b, 0))
        of = b.select(overflow, k(b, FLAG_OF), k(b, 0))
        uf = b.select(b.and_(tiny, inexact), k(b, FLAG_UF), k(b, 0))
        flags = b.select(special, b.select(is_snan(b, raw, w), k(b, FLAG_NV), k(b, 0)),
                         b.or_(nx, b.or_(of, uf)))
        b.raise_fflags(flags)
        write_half(b, insn.rd, r)
    return sem


SEMANTICS: dict[str, Sem] = {
    "flh": flh, "fsh": fsh, "fmv.x.h": fmv_x_h, "fmv.h.x": fmv_h_x,
    "fcvt.s.h": widen(32), "fcvt.d.h": widen(64),
    "fcvt.h.s": narrow(32), "fcvt.h.d": narrow(64),
}
