"""RV64F and RV64D, written once and parametrised by width (32 or 64).

FP registers hold raw i64 bits.  A single is valid only when NaN-boxed (upper
32 bits all ones); otherwise it reads as the canonical NaN.  Singles are
written NaN-boxed.  Arithmetic NaN results are replaced by the canonical NaN.
Bit-level operations (fsgnj*, fmv, negation for the fused ops) work on raw
bits, never on host floats.
"""

from __future__ import annotations

from aotc.ir.builder import FLAG_NV, Builder, Value
from aotc.isa.riscv64.insn import Insn
from aotc.isa.riscv64.semantics.common import Sem, bool64, k

CANONICAL_NAN = {32: 0x7FC00000, 64: 0x7FF8000000000000}
SIGN = {32: 1 << 31, 64: 1 << 63}
EXP_MASK = {32: 0x7F800000, 64: 0x7FF0000000000000}
FRAC_MASK = {32: (1 << 23) - 1, 64: (1 << 52) - 1}
QUIET = {32: 1 << 22, 64: 1 << 51}
INT_MAX = {(32, True): 0x7FFFFFFF, (32, False): 0xFFFFFFFF,
           (64, True): 0x7FFFFFFFFFFFFFFF, (64, False): 0xFFFFFFFFFFFFFFFF}
_BOX = 0xFFFFFFFF00000000

# --- register access --------------------------------------------------------


def read_bits(b: Builder, r: int, w: int) -> Value:
    """Raw bits (i``w``) of f[r]; an unboxed single reads as the canonical NaN."""
    raw = b.get_f(r)
    if w == 64:
        return raw
    boxed = b.icmp("uge", raw, k(b, _BOX))
    return b.select(boxed, b.trunc(raw, 32), k(b, CANONICAL_NAN[32], 32))


def read(b: Builder, r: int, w: int) -> Value:
    """f[r] as a float value of width ``w``."""
    return b.bitcast_to_float(read_bits(b, r, w))


def write_bits(b: Builder, r: int, bits: Value, w: int) -> None:
    """Write raw bits of width ``w`` to f[r], NaN-boxing singles."""
    if w == 32:
        bits = b.or_(b.zext(bits, 64), k(b, _BOX))
    b.set_f(r, bits)


def canonical(b: Builder, f: Value, w: int) -> Value:
    """Raw bits of ``f``, with any NaN replaced by the canonical NaN."""
    return b.select(b.fcmp("uno", f, f), k(b, CANONICAL_NAN[w], w), b.bitcast_to_int(f))


def write(b: Builder, r: int, f: Value, w: int) -> None:
    """Write an arithmetic result (canonicalising NaNs)."""
    write_bits(b, r, canonical(b, f, w), w)


def negate_bits(b: Builder, bits: Value, w: int) -> Value:
    return b.xor(bits, k(b, SIGN[w], w))


def is_snan(b: Builder, bits: Value, w: int) -> Value:
    """i1: ``bits`` is a signalling NaN (exponent all ones, quiet bit 0, payload != 0)."""
    exp_ones = b.icmp("eq", b.and_(bits, k(b, EXP_MASK[w] | QUIET[w], w)), k(b, EXP_MASK[w], w))
    payload = b.icmp("ne", b.and_(bits, k(b, FRAC_MASK[w], w)), k(b, 0, w))
    return b.and_(exp_ones, payload)


def is_inf(b: Builder, bits: Value, w: int) -> Value:
    """i1: ``bits`` is ±infinity."""
    return b.icmp("eq", b.and_(bits, k(b, ~SIGN[w], w)), k(b, EXP_MASK[w], w))


def is_zero(b: Builder, bits: Value, w: int) -> Value:
    """i1: ``bits`` is ±0."""
    return b.icmp("eq", b.and_(bits, k(b, ~SIGN[w], w)), k(b, 0, w))


def raise_nv_if(b: Builder, cond: Value) -> None:
    b.raise_fflags(b.select(cond, k(b, FLAG_NV), k(b, 0)))


def bad_rm(b: Builder, insn: Insn) -> bool:
    """Static rounding modes 5 and 6 are reserved: trap (and emit nothing else)."""
    if insn.rm in (5, 6):
        b.trap_illegal()
        return True
    return False


# --- families ----------------------------------------------------------------


def arith(op: str, w: int) -> Sem:
    def sem(b: Builder, insn: Insn) -> None:
        if bad_rm(b, insn):
            return
        x, y = read(b, insn.rs1, w), read(b, insn.rs2, w)
        write(b, insn.rd, b.fbinop(op, x, y, insn.rm), w)
    return sem


def sqrt(w: int) -> Sem:
    def sem(b: Builder, insn: Insn) -> None:
        if bad_rm(b, insn):
            return
        write(b, insn.rd, b.fsqrt(read(b, insn.rs1, w), insn.rm), w)
    return sem


def fused(neg_product: bool, neg_addend: bool, w: int) -> Sem:
    """±(rs1*rs2) ± rs3 with one rounding; negation flips sign bits first."""
    def sem(b: Builder, insn: Insn) -> None:
        if bad_rm(b, insn):
            return
        x = read_bits(b, insn.rs1, w)
        y = read_bits(b, insn.rs2, w)
        z = read_bits(b, insn.rs3, w)
        if neg_product:
            x = negate_bits(b, x, w)
        if neg_addend:
            z = negate_bits(b, z, w)
        r = b.fma(b.bitcast_to_float(x), b.bitcast_to_float(y), b.bitcast_to_float(z), insn.rm)
        # inf * 0 is invalid even when the addend is a quiet NaN (RISC-V, like
        # IEEE 754's recommendation); x86 FMA signals nothing then.
        raise_nv_if(b, b.or_(b.and_(is_inf(b, x, w), is_zero(b, y, w)), b.and_(is_zero(b, x, w), is_inf(b, y, w))))
        write(b, insn.rd, r, w)
    return sem


def sign_inject(kind: str, w: int) -> Sem:
    """fsgnj/fsgnjn/fsgnjx: magnitude of rs1, sign from rs2 (as is/negated/xored)."""
    def sem(b: Builder, insn: Insn) -> None:
        x, y = read_bits(b, insn.rs1, w), read_bits(b, insn.rs2, w)
        sign = k(b, SIGN[w], w)
        if kind == "x":
            r = b.xor(x, b.and_(y, sign))
        else:
            if kind == "n":
                y = b.xor(y, sign)
            r = b.or_(b.and_(x, k(b, ~SIGN[w], w)), b.and_(y, sign))
        write_bits(b, insn.rd, r, w)
    return sem


def min_max(is_max: bool, w: int) -> Sem:
    """IEEE 754-2019 minimumNumber/maximumNumber (RISC-V F 2.2): a NaN operand
    yields the other; two NaNs give the canonical NaN; -0 < +0; NV on sNaN."""
    def sem(b: Builder, insn: Insn) -> None:
        xb, yb = read_bits(b, insn.rs1, w), read_bits(b, insn.rs2, w)
        x, y = b.bitcast_to_float(xb), b.bitcast_to_float(yb)
        x_nan, y_nan = b.fcmp("uno", x, x), b.fcmp("uno", y, y)
        # Equal operands differ only for ±0: OR of the bits picks -0 (min),
        # AND picks +0 (max); for other equal values the bits are identical.
        if is_max:
            pick_x, equal = b.fcmp("ogt", x, y), b.and_(xb, yb)
        else:
            pick_x, equal = b.fcmp("olt", x, y), b.or_(xb, yb)
        ordered = b.select(pick_x, xb, b.select(b.fcmp("oeq", x, y), equal, yb))
        r = b.select(x_nan,
                     b.select(y_nan, k(b, CANONICAL_NAN[w], w), yb),
                     b.select(y_nan, xb, ordered))
        raise_nv_if(b, b.or_(is_snan(b, xb, w), is_snan(b, yb, w)))
        write_bits(b, insn.rd, r, w)
    return sem


def compare(pred: str, signalling: bool, w: int) -> Sem:
    """feq (quiet: NV only for sNaN) / flt, fle (signalling: NV for any NaN)."""
    def sem(b: Builder, insn: Insn) -> None:
        xb, yb = read_bits(b, insn.rs1, w), read_bits(b, insn.rs2, w)
        x, y = b.bitcast_to_float(xb), b.bitcast_to_float(yb)
        r = b.fcmp(pred, x, y)
        if signalling:
            raise_nv_if(b, b.fcmp("uno", x, y))
        else:
            raise_nv_if(b, b.or_(is_snan(b, xb, w), is_snan(b, yb, w)))
        b.set_x(insn.rd, bool64(b, r))
    return sem


def classify(w: int) -> Sem:
    """fclass: one-hot 10-bit mask (bit 0 -inf ... bit 9 quiet NaN)."""
    def sem(b: Builder, insn: Insn) -> None:
        v = read_bits(b, insn.rs1, w)
        zero = k(b, 0, w)
        neg = b.icmp("slt", v, zero)
        pos = b.icmp("sge", v, zero)
        exp = b.and_(v, k(b, EXP_MASK[w], w))
        frac = b.and_(v, k(b, FRAC_MASK[w], w))
        exp_zero = b.icmp("eq", exp, zero)
        exp_ones = b.icmp("eq", exp, k(b, EXP_MASK[w], w))
        frac_zero = b.icmp("eq", frac, zero)
        frac_nz = b.icmp("ne", frac, zero)
        inf = b.and_(exp_ones, frac_zero)
        normal = b.and_(b.icmp("ne", exp, zero), b.icmp("ne", exp, k(b, EXP_MASK[w], w)))
        subnormal = b.and_(exp_zero, frac_nz)
        is_zero = b.and_(exp_zero, frac_zero)
        quiet = b.icmp("ne", b.and_(v, k(b, QUIET[w], w)), zero)
        nan = b.and_(exp_ones, frac_nz)
        classes = [
            b.and_(neg, inf), b.and_(neg, normal), b.and_(neg, subnormal), b.and_(neg, is_zero),
            b.and_(pos, is_zero), b.and_(pos, subnormal), b.and_(pos, normal), b.and_(pos, inf),
            b.and_(nan, b.xor(quiet, b.const(1, 1))), b.and_(nan, quiet),
        ]
        mask = k(b, 0)
        for bit, cond in enumerate(classes):
            mask = b.or_(mask, b.select(cond, k(b, 1 << bit), k(b, 0)))
        b.set_x(insn.rd, mask)
    return sem


def to_int(w: int, bits: int, signed: bool) -> Sem:
    """fcvt.{w,wu,l,lu}.{s,d}: saturating; NaN -> the maximum of the target
    type; 32-bit results (including wu) are sign-extended to 64 bits."""
    def sem(b: Builder, insn: Insn) -> None:
        if bad_rm(b, insn):
            return
        f = read(b, insn.rs1, w)
        r = b.float_to_int(f, bits, signed, insn.rm)
        r = b.select(b.fcmp("uno", f, f), k(b, INT_MAX[(bits, signed)], bits), r)
        b.set_x(insn.rd, b.sext(r, 64) if bits == 32 else r)
    return sem


def from_int(w: int, bits: int, signed: bool) -> Sem:
    """fcvt.{s,d}.{w,wu,l,lu}: W forms use the low 32 bits of rs1."""
    def sem(b: Builder, insn: Insn) -> None:
        if bad_rm(b, insn):
            return
        x = b.get_x(insn.rs1)
        if bits == 32:
            x = b.trunc(x, 32)
        write_bits(b, insn.rd, b.bitcast_to_int(b.int_to_float(x, w, signed, insn.rm)), w)
    return sem


def convert(src: int, dst: int) -> Sem:
    """fcvt.s.d / fcvt.d.s."""
    def sem(b: Builder, insn: Insn) -> None:
        if bad_rm(b, insn):
            return
        write(b, insn.rd, b.fconvert(read(b, insn.rs1, src), dst, insn.rm), dst)
    return sem


# --- moves, loads, stores (bit transfers: no NaN-box check) -------------------


def fload(w: int) -> Sem:
    def sem(b: Builder, insn: Insn) -> None:
        addr = b.add(b.get_x(insn.rs1), k(b, insn.imm))
        write_bits(b, insn.rd, b.load(addr, w), w)
    return sem


def fstore(w: int) -> Sem:
    def sem(b: Builder, insn: Insn) -> None:
        addr = b.add(b.get_x(insn.rs1), k(b, insn.imm))
        raw = b.get_f(insn.rs2)
        b.store(addr, b.trunc(raw, 32) if w == 32 else raw)
    return sem


def move_to_x(w: int) -> Sem:
    """fmv.x.w (low 32 bits, sign-extended) / fmv.x.d."""
    def sem(b: Builder, insn: Insn) -> None:
        raw = b.get_f(insn.rs1)
        b.set_x(insn.rd, b.sext(b.trunc(raw, 32), 64) if w == 32 else raw)
    return sem


def move_from_x(w: int) -> Sem:
    """fmv.w.x (boxes the low 32 bits) / fmv.d.x."""
    def sem(b: Builder, insn: Insn) -> None:
        x = b.get_x(insn.rs1)
        write_bits(b, insn.rd, b.trunc(x, 32) if w == 32 else x, w)
    return sem


SEMANTICS: dict[str, Sem] = {}
for _t, _w in (("s", 32), ("d", 64)):
    for _op in ("fadd", "fsub", "fmul", "fdiv"):
        SEMANTICS[f"{_op}.{_t}"] = arith(_op, _w)
    SEMANTICS[f"fsqrt.{_t}"] = sqrt(_w)
    SEMANTICS[f"fmadd.{_t}"] = fused(False, False, _w)     # a*b + c
    SEMANTICS[f"fmsub.{_t}"] = fused(False, True, _w)      # a*b - c
    SEMANTICS[f"fnmsub.{_t}"] = fused(True, False, _w)     # -(a*b) + c
    SEMANTICS[f"fnmadd.{_t}"] = fused(True, True, _w)      # -(a*b) - c
    SEMANTICS[f"fsgnj.{_t}"] = sign_inject("", _w)
    SEMANTICS[f"fsgnjn.{_t}"] = sign_inject("n", _w)
    SEMANTICS[f"fsgnjx.{_t}"] = sign_inject("x", _w)
    SEMANTICS[f"fmin.{_t}"] = min_max(False, _w)
    SEMANTICS[f"fmax.{_t}"] = min_max(True, _w)
    SEMANTICS[f"feq.{_t}"] = compare("oeq", False, _w)
    SEMANTICS[f"flt.{_t}"] = compare("olt", True, _w)
    SEMANTICS[f"fle.{_t}"] = compare("ole", True, _w)
    SEMANTICS[f"fclass.{_t}"] = classify(_w)
    for _i, _bits, _signed in (("w", 32, True), ("wu", 32, False), ("l", 64, True), ("lu", 64, False)):
        SEMANTICS[f"fcvt.{_i}.{_t}"] = to_int(_w, _bits, _signed)
        SEMANTICS[f"fcvt.{_t}.{_i}"] = from_int(_w, _bits, _signed)
SEMANTICS.update({
    "flw": fload(32), "fld": fload(64), "fsw": fstore(32), "fsd": fstore(64),
    "fmv.x.w": move_to_x(32), "fmv.x.d": move_to_x(64),
    "fmv.w.x": move_from_x(32), "fmv.d.x": move_from_x(64),
    "fcvt.s.d": convert(64, 32), "fcvt.d.s": convert(32, 64),
})
