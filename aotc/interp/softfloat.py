"""Exact IEEE 754 binary32/binary64 arithmetic on raw bit patterns.

Every operation computes the exact result as a ``fractions.Fraction`` and
rounds it once with ``round_fraction``, so all five RISC-V rounding modes and
the NX/UF/OF/DZ/NV flags are exact (tininess is detected after rounding, as
RISC-V specifies).  NaN results are the canonical quiet NaN.  This is slow
(microseconds per operation) but obviously correct; a fast path for RNE can be
added later without changing callers.
"""

from __future__ import annotations

from fractions import Fraction
from math import isqrt
from typing import Final

FLAG_NX, FLAG_UF, FLAG_OF, FLAG_DZ, FLAG_NV = 1, 2, 4, 8, 16
RNE, RTZ, RDN, RUP, RMM = 0, 1, 2, 3, 4


class Format:
    __slots__ = ("bits", "p", "ebits", "bias", "emin", "emax", "frac_mask", "exp_mask", "sign", "qnan", "inf")

    def __init__(self, bits: int, p: int, ebits: int) -> None:
        self.bits = bits
        self.p = p                       # precision including the hidden bit
        self.ebits = ebits
        self.bias = (1 << (ebits - 1)) - 1
        self.emin = 1 - self.bias
        self.emax = self.bias
        self.frac_mask = (1 << (p - 1)) - 1
        self.exp_mask = ((1 << ebits) - 1) << (p - 1)
        self.sign = 1 << (bits - 1)
        self.qnan = self.exp_mask | (1 << (p - 2))   # canonical NaN
        self.inf = self.exp_mask


F32: Final = Format(32, 24, 8)
F64: Final = Format(64, 53, 11)
FORMATS: Final = {32: F32, 64: F64}


def is_nan(raw: int, f: Format) -> bool:
    return (raw & f.exp_mask) == f.exp_mask and (raw & f.frac_mask) != 0


def is_snan(raw: int, f: Format) -> bool:
    return is_nan(raw, f) and not raw & (1 << (f.p - 2))


def is_inf(raw: int, f: Format) -> bool:
    return (raw & ~f.sign) == f.exp_mask


def sign_of(raw: int, f: Format) -> int:
    return 1 if raw & f.sign else 0


def value(raw: int, f: Format) -> Fraction:
    """Exact value of a finite pattern (zero included, sign lost for zeros)."""
    e = (raw & f.exp_mask) >> (f.p - 1)
    m = raw & f.frac_mask
    if e:
        m |= 1 << (f.p - 1)
    else:
        e = 1
    exp = e - f.bias - (f.p - 1)
    v = Fraction(m * (1 << exp)) if exp >= 0 else Fraction(m, 1 << -exp)
    return -v if raw & f.sign else v


def _ilog2(a: Fraction) -> int:
    """floor(log2(a)) for a > 0."""
    n, d = a.numerator, a.denominator
    e = n.bit_length() - d.bit_length()
    if (n << max(-e, 0)) < (d << max(e, 0)):
        e -= 1
    return e


def _round_int(n: int, d: int, negative: bool, rm: int) -> tuple[int, bool]:
    """Round n/d (>= 0) to an integer; returns (integer, inexact)."""
    q, r = divmod(n, d)
    if r == 0:
        return q, False
    if rm == RNE:
        up = 2 * r > d or (2 * r == d and q & 1)
    elif rm == RMM:
        up = 2 * r >= d
    elif rm == RTZ:
        up = False
    elif rm == RDN:
        up = negative
    elif rm == RUP:
        up = not negative
    else:
        raise ValueError(f"invalid rounding mode {rm}")
    return q + up, True


def _scaled(a: Fraction, q: int) -> tuple[int, int]:
    """a / 2**q as numerator, denominator."""
    if q >= 0:
        return a.numerator, a.denominator << q
    return a.numerator << -q, a.denominator


def round_fraction(x: Fraction, f: Format, rm: int, zero_sign: int = 0) -> tuple[int, int]:
    """Round exact ``x`` to format ``f``; returns (raw bits, flags).

    ``zero_sign`` is the sign used when ``x`` is exactly zero.
    """
    if x == 0:
        return (f.sign if zero_sign else 0), 0
    neg = x < 0
    a = -x if neg else x
    sign = f.sign if neg else 0
    e = _ilog2(a)
    q = max(e, f.emin) - (f.p - 1)
    m, inexact = _round_int(*_scaled(a, q), neg, rm)
    if m == 1 << f.p:
        m >>= 1
        q += 1
    flags = FLAG_NX if inexact else 0
    # Tininess after rounding: round with unbounded exponent range.
    if e < f.emin and inexact:
        mu, _ = _round_int(*_scaled(a, e - (f.p - 1)), neg, rm)
        tiny = e < f.emin - 1 or mu < (1 << f.p)
        if tiny:
            flags |= FLAG_UF
    if m >> (f.p - 1):  # normal
        biased = q + (f.p - 1) + f.bias
        if biased >= (1 << f.ebits) - 1:
            return _overflow(sign, f, rm), FLAG_OF | FLAG_NX
        return sign | (biased << (f.p - 1)) | (m & f.frac_mask), flags
    return sign | m, flags   # subnormal (or zero after rounding)


def _overflow(sign: int, f: Format, rm: int) -> int:
    max_finite = f.exp_mask - (1 << (f.p - 1)) | f.frac_mask
    to_inf = rm in (RNE, RMM) or (rm == RUP and not sign) or (rm == RDN and sign)
    return sign | (f.inf if to_inf else max_finite)


def _nan_result(f: Format, flags: int) -> tuple[int, int]:
    return f.qnan, flags


def _snan_flags(f: Format, *raws: int) -> int:
    return FLAG_NV if any(is_snan(r, f) for r in raws) else 0


def _zero_sum_sign(sa: int, sb: int, rm: int) -> int:
    """Sign of an exactly-zero sum of operands with signs sa, sb."""
    if sa == sb:
        return sa
    return 1 if rm == RDN else 0


def add(a: int, b: int, f: Format, rm: int) -> tuple[int, int]:
    if is_nan(a, f) or is_nan(b, f):
        return _nan_result(f, _snan_flags(f, a, b))
    ia, ib = is_inf(a, f), is_inf(b, f)
    if ia or ib:
        if ia and ib and (a ^ b) & f.sign:
            return f.qnan, FLAG_NV
        return (a if ia else b), 0
    return round_fraction(value(a, f) + value(b, f), f, rm, _zero_sum_sign(sign_of(a, f), sign_of(b, f), rm))


def sub(a: int, b: int, f: Format, rm: int) -> tuple[int, int]:
    if is_nan(b, f):
        return add(a, b, f, rm)
    return add(a, b ^ f.sign, f, rm)


def mul(a: int, b: int, f: Format, rm: int) -> tuple[int, int]:
    if is_nan(a, f) or is_nan(b, f):
        return _nan_result(f, _snan_flags(f, a, b))
    sign = (a ^ b) & f.sign
    ia, ib = is_inf(a, f), is_inf(b, f)
    if ia or ib:
        if (a & ~f.sign) == 0 or (b & ~f.sign) == 0:
            return f.qnan, FLAG_NV
        return sign | f.inf, 0
    return round_fraction(value(a, f) * value(b, f), f, rm, 1 if sign else 0)


def div(a: int, b: int, f: Format, rm: int) -> tuple[int, int]:
    if is_nan(a, f) or is_nan(b, f):
        return _nan_result(f, _snan_flags(f, a, b))
    sign = (a ^ b) & f.sign
    ia, ib = is_inf(a, f), is_inf(b, f)
    za, zb = (a & ~f.sign) == 0, (b & ~f.sign) == 0
    if ia and ib or za and zb:
        return f.qnan, FLAG_NV
    if ia:
        return sign | f.inf, 0
    if ib:
        return sign, 0
    if zb:
        return sign | f.inf, FLAG_DZ
    return round_fraction(value(a, f) / value(b, f), f, rm, 1 if sign else 0)


def sqrt(a: int, f: Format, rm: int) -> tuple[int, int]:
    if is_nan(a, f):
        return _nan_result(f, _snan_flags(f, a))
    if (a & ~f.sign) == 0:
        return a, 0                      # sqrt(±0) = ±0
    if a & f.sign:
        return f.qnan, FLAG_NV
    if is_inf(a, f):
        return a, 0
    x = value(a, f)
    # s = floor(sqrt(x) * 2**k) with at least p+2 significant bits; a sticky
    # half-unit stands in for the irrational tail so rounding stays exact.
    k = max(0, f.p + 3 - _ilog2(x) // 2)
    n, d = x.numerator << (2 * k), x.denominator
    s = isqrt(n // d)
    exact = n % d == 0 and s * s == n // d
    r = Fraction(s, 1 << k) if exact else Fraction(2 * s + 1, 1 << (k + 1))
    return round_fraction(r, f, rm)


def fma(a: int, b: int, c: int, f: Format, rm: int) -> tuple[int, int]:
    """a*b + c with one rounding.  inf*0 raises NV even when c is a quiet NaN."""
    ia, ib, ic = is_inf(a, f), is_inf(b, f), is_inf(c, f)
    za, zb = (a & ~f.sign) == 0, (b & ~f.sign) == 0
    if (ia and zb) or (ib and za):
        return f.qnan, FLAG_NV
    if is_nan(a, f) or is_nan(b, f) or is_nan(c, f):
        return _nan_result(f, _snan_flags(f, a, b, c))
    psign = (a ^ b) & f.sign
    if ia or ib:
        if ic and (c & f.sign) != psign:
            return f.qnan, FLAG_NV
        return psign | f.inf, 0
    if ic:
        return c, 0
    exact = value(a, f) * value(b, f) + value(c, f)
    return round_fraction(exact, f, rm, _zero_sum_sign(1 if psign else 0, sign_of(c, f), rm))


def convert(a: int, src: Format, dst: Format, rm: int) -> tuple[int, int]:
    if is_nan(a, src):
        return dst.qnan, _snan_flags(src, a)
    sign = dst.sign if a & src.sign else 0
    if is_inf(a, src):
        return sign | dst.inf, 0
    return round_fraction(value(a, src), dst, rm, 1 if sign else 0)


def from_int(x: int, f: Format, rm: int) -> tuple[int, int]:
    return round_fraction(Fraction(x), f, rm)


def to_int(a: int, f: Format, bits: int, signed: bool, rm: int) -> tuple[int, int]:
    """Round to integral with ``rm`` and saturate; NaN -> 0 with NV.

    Returns (unsigned ``bits``-wide result, flags).  Out of range: NV only.
    """
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    mask = (1 << bits) - 1
    if is_nan(a, f):
        return 0, FLAG_NV
    if is_inf(a, f):
        return (lo if a & f.sign else hi) & mask, FLAG_NV
    x = value(a, f)
    neg = x < 0
    n, inexact = _round_int(abs(x.numerator), x.denominator, neg, rm)
    n = -n if neg else n
    if n < lo:
        return lo & mask, FLAG_NV
    if n > hi:
        return hi & mask, FLAG_NV
    return n & mask, FLAG_NX if inexact else 0
