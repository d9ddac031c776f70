"""Zfa (additional floating-point instructions 1.0) for F and D, RV64.

* ``fli.{s,d}``: one of 32 constants (the spec's table, below), NaN-boxed
  for singles.
* ``fminm``/``fmaxm``: IEEE 754-2019 minimum/maximum: like fmin/fmax
  (-0 < +0, NV for a signalling NaN) but any NaN operand gives the canonical
  NaN.
* ``fround``/``froundnx``: round to an integral value in the same format
  with ``rm``; the result keeps the operand's sign (-0.3 gives -0.0), ±inf
  and ±0 are returned as they are, NaN gives the canonical NaN; NV only
  for a signalling NaN; ``froundnx`` also raises NX when the value changed,
  ``fround`` never does.  Done in integer operations on the bits (no host
  rounding instruction raises exactly these flags).
* ``fcvtmod.w.d`` (rm is always RTZ): the double truncated toward zero, its
  integer taken modulo 2^32 and sign-extended; ±inf and NaN give 0.  NV
  for NaN, ±inf or an integer outside the int32 range (then no NX);
  otherwise NX when the value had a fraction.
* ``fleq``/``fltq``: ``fle``/``flt`` as quiet comparisons (NV only for a
  signalling NaN).

The half-precision forms need Zfh and the RV32-only ``fmvh.x.d`` and
``fmvp.d.x`` do not exist on RV64: neither is decoded.
"""

from __future__ import annotations

import struct

from aotc.ir.builder import FLAG_NV, FLAG_NX, Builder, Value
from aotc.isa.riscv64.insn import Insn
from aotc.isa.riscv64.semantics import fpround
from aotc.isa.riscv64.semantics.common import Sem, bool64, k
from aotc.isa.riscv64.semantics.rvf import (
    CANONICAL_NAN, EXP_MASK, FRAC_MASK, SIGN, bad_rm, is_snan, raise_nv_if, read_bits, write_bits,
)

MANT = {32: 23, 64: 52}
BIAS = {32: 127, 64: 1023}

# The fli table: rs1 -> value (index 1 is the smallest positive normal
# number of the format, 30 +inf, 31 the canonical NaN).
FLI_VALUES: tuple[float | None, ...] = (
    -1.0, None, 2.0 ** -16, 2.0 ** -15, 2.0 ** -8, 2.0 ** -7, 0.0625, 0.125,
    0.25, 0.3125, 0.375, 0.4375, 0.5, 0.625, 0.75, 0.875,
    1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0,
    8.0, 16.0, 128.0, 256.0, 2.0 ** 15, 2.0 ** 16, float("inf"), None,
)


def fli_bits(index: int, w: int) -> int:
    """The raw bits fli.{s,d} writes for table entry ``index`` (unboxed)."""
    if index == 1:
        return 1 << MANT[w]                 # smallest normal: exponent field 1
    if index == 31:
        return CANONICAL_NAN[w]
    v = FLI_VALUES[index]
    if w == 32:
        return struct.unpack("<I", struct.pack("<f", v))[0]
    return struct.unpack("<Q", struct.pack("<d", v))[0]


def fli(w: int) -> Sem:
    def sem(b: Builder, insn: Insn) -> None:
        write_bits(b, insn.rd, k(b, fli_bits(insn.imm & 31, w), w), w)
    return sem


def min_max_nan(is_max: bool, w: int) -> Sem:
    def sem(b: Builder, insn: Insn) -> None:
        xb, yb = read_bits(b, insn.rs1, w), read_bits(b, insn.rs2, w)
        x, y = b.bitcast_to_float(xb), b.bitcast_to_float(yb)
        # Equal operands differ only for ±0: OR of the bits picks -0 (min),
        # AND picks +0 (max), as in fmin/fmax.
        if is_max:
            pick_x, equal = b.fcmp("ogt", x, y), b.and_(xb, yb)
        else:
            pick_x, equal = b.fcmp("olt", x, y), b.or_(xb, yb)
        ordered = b.select(pick_x, xb, b.select(b.fcmp("oeq", x, y), equal, yb))
        r = b.select(b.fcmp("uno", x, y), k(b, CANONICAL_NAN[w], w), ordered)
        raise_nv_if(b, b.or_(is_snan(b, xb, w), is_snan(b, yb, w)))
        write_bits(b, insn.rd, r, w)
    return sem


def round_integral(w: int, raise_nx: bool) -> Sem:
    mant, bias = MANT[w], BIAS[w]

    def sem(b: Builder, insn: Insn) -> None:
        if bad_rm(b, insn):
            return
        rm = b.rounding_mode(insn.rm)
        raw = read_bits(b, insn.rs1, w)
        x = b.zext(raw, 64) if w == 32 else raw
        e = b.and_(b.lshr(x, k(b, mant)), k(b, EXP_MASK[w] >> mant))
        sign = b.and_(x, k(b, SIGN[w]))
        negative = b.icmp("ne", sign, k(b, 0))
        frac = b.and_(x, k(b, FRAC_MASK[w]))
        sig = b.or_(frac, b.select(b.icmp("ne", e, k(b, 0)), k(b, 1 << mant), k(b, 0)))
        integral = b.icmp("uge", e, k(b, bias + mant))      # |x| >= 2^mant, inf, NaN
        below_one = b.icmp("ult", e, k(b, bias))
        # Fraction bits of the significand: bias + mant - e, at most mant + 2
        # (below 0.25 every bit is sticky and the half bit is 0); 1 when
        # already integral (unused then, only kept in range).
        shift = b.select(b.icmp("ult", e, k(b, bias - 1)), k(b, mant + 2),
                         b.select(integral, k(b, 1), b.sub(k(b, bias + mant), e)))
        _kept, lsb, half, sticky = fpround.split(b, sig, shift)
        up = fpround.round_up(b, rm, negative, lsb, half, sticky)
        # |x| >= 1: clear the fraction bits, add one unit there if rounding
        # up (a carry into the exponent is exact); |x| < 1: ±0 or ±1.
        unit = b.shl(k(b, 1), shift)
        big = b.add(b.and_(x, b.xor(b.sub(unit, k(b, 1)), k(b, -1))),
                    b.select(up, unit, k(b, 0)))
        small = b.or_(sign, b.select(up, k(b, bias << mant), k(b, 0)))
        r = b.select(integral, x, b.select(below_one, small, big))
        nan = b.and_(b.icmp("eq", e, k(b, EXP_MASK[w] >> mant)), b.icmp("ne", frac, k(b, 0)))
        r = b.select(nan, k(b, CANONICAL_NAN[w]), r)
        raise_nv_if(b, is_snan(b, raw, w))
        if raise_nx:
            changed = b.and_(not_(b, integral), b.or_(half, sticky))
            b.raise_fflags(b.select(changed, k(b, FLAG_NX), k(b, 0)))
        write_bits(b, insn.rd, b.trunc(r, 32) if w == 32 else r, w)
    return sem


def not_(b: Builder, c: Value) -> Value:
    return fpround.not1(b, c)


def fcvtmod_w_d(b: Builder, insn: Insn) -> None:
    x = read_bits(b, insn.rs1, 64)
    e = b.and_(b.lshr(x, k(b, 52)), k(b, 0x7FF))
    negative = b.icmp("slt", x, k(b, 0))
    sig = b.or_(b.and_(x, k(b, FRAC_MASK[64])),
                b.select(b.icmp("ne", e, k(b, 0)), k(b, 1 << 52), k(b, 0)))
    # |x| = sig * 2^(e - 1075): shift left for e >= 1075 (by at most 63:
    # from 32 on the low word is 0 anyway), else right (by at most 63).
    left = b.icmp("uge", e, k(b, 1075))
    lsh = b.select(left, b.sub(e, k(b, 1075)), k(b, 0))
    lsh = b.select(b.icmp("ugt", lsh, k(b, 63)), k(b, 63), lsh)
    rsh = b.select(left, k(b, 0), b.sub(k(b, 1075), e))
    rsh = b.select(b.icmp("ugt", rsh, k(b, 63)), k(b, 63), rsh)
    mag = b.lshr(b.shl(sig, lsh), rsh)
    fraction = b.icmp("ne", b.and_(sig, b.sub(b.shl(k(b, 1), rsh), k(b, 1))), k(b, 0))
    low = b.trunc(mag, 32)
    low = b.select(negative, b.sub(k(b, 0, 32), low), low)
    special = b.icmp("eq", e, k(b, 0x7FF))                    # ±inf, NaN
    # |trunc(x)| >= 2^31 from exponent 31 on (e = 1054); only -2^31 fits.
    big = b.icmp("uge", e, k(b, 1054))
    fits_min = b.and_(negative, b.icmp("eq", mag, k(b, 1 << 31)))
    invalid = b.or_(special, b.and_(big, not_(b, fits_min)))
    result = b.select(special, k(b, 0, 32), low)
    flags = b.select(invalid, k(b, FLAG_NV), b.select(fraction, k(b, FLAG_NX), k(b, 0)))
    b.raise_fflags(flags)
    b.set_x(insn.rd, b.sext(result, 64))


def quiet_compare(pred: str, w: int) -> Sem:
    def sem(b: Builder, insn: Insn) -> None:
        xb, yb = read_bits(b, insn.rs1, w), read_bits(b, insn.rs2, w)
        r = b.fcmp(pred, b.bitcast_to_float(xb), b.bitcast_to_float(yb))
        raise_nv_if(b, b.or_(is_snan(b, xb, w), is_snan(b, yb, w)))
        b.set_x(insn.rd, bool64(b, r))
    return sem


SEMANTICS: dict[str, Sem] = {"fcvtmod.w.d": fcvtmod_w_d}
for _t, _w in (("s", 32), ("d", 64)):
    SEMANTICS[f"fli.{_t}"] = fli(_w)
    SEMANTICS[f"fminm.{_t}"] = min_max_nan(False, _w)
    SEMANTICS[f"fmaxm.{_t}"] = min_max_nan(True, _w)
    SEMANTICS[f"fround.{_t}"] = round_integral(_w, False)
    SEMANTICS[f"froundnx.{_t}"] = round_integral(_w, True)
    SEMANTICS[f"fleq.{_t}"] = quiet_compare("ole", _w)
    SEMANTICS[f"fltq.{_t}"] = quiet_compare("olt", _w)
