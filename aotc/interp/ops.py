"""The interpreter engines' primitive operations, each defined once.

Both interpreter builders implement the ``Builder`` primitives with what is
here: the ``Evaluator`` (one instruction at a time, on ``IntV``/``FloatV``)
and the block compiler ``PyCodegenBuilder`` (Python source for a whole basic
block).

* Integer primitives are Python *expressions* over unsigned ints
  (``INT_OPS``).  The Evaluator calls each one compiled into a function
  (``INT_FUNCS``); the block compiler pastes the same text inline into the
  source it generates, so neither has its own copy of, say, ``ashr``.
  Placeholders: ``{a}``, ``{b}``, ``{c}`` operands, ``{w}`` the operand width,
  ``{s}`` its sign bit, ``{m}`` the mask of the result width.  i1 results may
  be Python bools (``True`` is 1).
* FP primitives are functions on raw IEEE bit patterns (``softfloat``, exact
  in every rounding mode) that also resolve the dynamic rounding mode from
  and accrue their flags into ``cpu.fcsr`` — the state object of either
  builder (``CpuState``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from aotc.interp import softfloat as sf

MASK64 = (1 << 64) - 1
MASKS = {1: 1, 8: 0xFF, 16: 0xFFFF, 32: 0xFFFFFFFF, 64: MASK64, 128: (1 << 128) - 1}


class IllegalTrap(Exception):
    """Raised inside a primitive that traps (a dynamic rm with a reserved frm)."""


class FpState(Protocol):
    fcsr: int


# -- integer primitives ---------------------------------------------------------

def sdiv(a: int, b: int, s: int, m: int) -> int:
    """Signed quotient (rounded toward zero) of unsigned-encoded a, b."""
    x, y = (a ^ s) - s, (b ^ s) - s
    assert y != 0 and not (y == -1 and x == -s), "sdiv by zero or overflow reached the builder"
    q = abs(x) // abs(y)
    return (-q if (x < 0) != (y < 0) else q) & m


def srem(a: int, b: int, s: int, m: int) -> int:
    """Signed remainder (sign of the dividend) of unsigned-encoded a, b."""
    x, y = (a ^ s) - s, (b ^ s) - s
    assert y != 0 and not (y == -1 and x == -s), "srem by zero or overflow reached the builder"
    r = abs(x) % abs(y)
    return (-r if x < 0 else r) & m


def cttz(a: int, w: int) -> int:
    return (a & -a).bit_length() - 1 if a else w


# name -> expression; binary ops take {a}, {b} of width {w}, result width {w}.
INT_OPS: dict[str, str] = {
    "add": "({a} + {b}) & {m}",
    "sub": "({a} - {b}) & {m}",
    "mul": "({a} * {b}) & {m}",
    "and_": "{a} & {b}",
    "or_": "{a} | {b}",
    "xor": "{a} ^ {b}",
    "shl": "({a} << {b}) & {m}",
    "lshr": "{a} >> {b}",
    "ashr": "((({a} ^ {s}) - {s}) >> {b}) & {m}",
    "udiv": "{a} // {b}",
    "urem": "{a} % {b}",
    "sdiv": "sdiv({a}, {b}, {s}, {m})",
    "srem": "srem({a}, {b}, {s}, {m})",
    # comparisons -> i1; signed ones compare with the sign bit flipped
    "eq": "{a} == {b}", "ne": "{a} != {b}",
    "ult": "{a} < {b}", "ule": "{a} <= {b}", "ugt": "{a} > {b}", "uge": "{a} >= {b}",
    "slt": "({a} ^ {s}) < ({b} ^ {s})", "sle": "({a} ^ {s}) <= ({b} ^ {s})",
    "sgt": "({a} ^ {s}) > ({b} ^ {s})", "sge": "({a} ^ {s}) >= ({b} ^ {s})",
    # select: {c} ? {a} : {b} (only the chosen operand is evaluated)
    "select": "{a} if {c} else {b}",
    # width changes: {w}/{s} of the source, {m} of the target
    "zext": "{a}",
    "zext1": "1 if {a} else 0",
    "sext": "(({a} ^ {s}) - {s}) & {m}",
    "trunc": "{a} & {m}",
    "ctlz": "{w} - {a}.bit_length()",
    "cttz": "cttz({a}, {w})",
    "ctpop": "{a}.bit_count()",
}

# Names the expressions may call; the block compiler's generated code gets them too.
HELPERS: dict[str, object] = {"sdiv": sdiv, "srem": srem, "cttz": cttz}

IntFunc = Callable[[int, int, int, int, int, int], int]


def _compile(expr: str) -> IntFunc:
    src = expr.format(a="a", b="b", c="c", w="w", s="s", m="m")
    return eval(f"lambda a, b, c, w, s, m: {src}", dict(HELPERS))   # our own text only


# name -> f(a, b, c, w, s, m): the same expressions as functions (Evaluator, constant folding)
INT_FUNCS: dict[str, IntFunc] = {name: _compile(expr) for name, expr in INT_OPS.items()}


def sign(bits: int) -> int:
    return 1 << (bits - 1)


# -- floating point ---------------------------------------------------------------

def resolve_rm(cpu: FpState, rm: int) -> int:
    """A static rounding mode, or frm for DYN (7); reserved modes trap."""
    if rm == 7:
        rm = (cpu.fcsr >> 5) & 7
    if rm > 4:
        raise IllegalTrap()
    return rm


_BINOPS = {"fadd": sf.add, "fsub": sf.sub, "fmul": sf.mul, "fdiv": sf.div}


def fbinop(cpu: FpState, op: str, a: int, b: int, fbits: int, rm: int) -> int:
    r, flags = _BINOPS[op](a, b, sf.FORMATS[fbits], resolve_rm(cpu, rm))
    cpu.fcsr |= flags
    return r


def fsqrt(cpu: FpState, a: int, fbits: int, rm: int) -> int:
    r, flags = sf.sqrt(a, sf.FORMATS[fbits], resolve_rm(cpu, rm))
    cpu.fcsr |= flags
    return r


def fma(cpu: FpState, a: int, b: int, c: int, fbits: int, rm: int) -> int:
    r, flags = sf.fma(a, b, c, sf.FORMATS[fbits], resolve_rm(cpu, rm))
    cpu.fcsr |= flags
    return r


def fconvert(cpu: FpState, v: int, src_bits: int, dst_bits: int, rm: int) -> int:
    rm = resolve_rm(cpu, rm)
    r, flags = sf.convert(v, sf.FORMATS[src_bits], sf.FORMATS[dst_bits], rm)
    cpu.fcsr |= flags
    return r


def int_to_float(cpu: FpState, v: int, bits: int, fbits: int, signed: bool, rm: int) -> int:
    rm = resolve_rm(cpu, rm)
    if signed and v >> (bits - 1):
        v -= 1 << bits
    r, flags = sf.from_int(v, sf.FORMATS[fbits], rm)
    cpu.fcsr |= flags
    return r


def float_to_int(cpu: FpState, v: int, fbits: int, bits: int, signed: bool, rm: int) -> int:
    rm = resolve_rm(cpu, rm)
    r, flags = sf.to_int(v, sf.FORMATS[fbits], bits, signed, rm)
    cpu.fcsr |= flags
    return r


def _order_key(raw: int, f: sf.Format) -> object:
    """Orderable stand-in for a non-NaN value that may be infinite."""
    from fractions import Fraction

    if sf.is_inf(raw, f):
        big = Fraction(1 << 2000)
        return -big if raw & f.sign else big
    return sf.value(raw, f)


def fcmp(pred: str, a: int, b: int, fbits: int) -> bool:
    """Quiet comparison: raises no flags (semantics add NV where needed)."""
    f = sf.FORMATS[fbits]
    unordered = sf.is_nan(a, f) or sf.is_nan(b, f)
    if pred == "uno":
        return unordered
    if pred == "ord":
        return not unordered
    if unordered:
        return False
    x, y = _order_key(a, f), _order_key(b, f)
    if pred == "oeq":
        return x == y
    if pred == "one":
        return x != y
    if pred == "olt":
        return x < y
    if pred == "ole":
        return x <= y
    if pred == "ogt":
        return x > y
    if pred == "oge":
        return x >= y
    raise ValueError(f"bad fcmp predicate {pred}")


FP_HELPERS: dict[str, object] = {
    "fbinop": fbinop, "fsqrt": fsqrt, "fma": fma, "fconvert": fconvert,
    "int_to_float": int_to_float, "float_to_int": float_to_int, "fcmp": fcmp,
    "resolve_rm": resolve_rm,
}


# -- atomics ----------------------------------------------------------------------
# ``cas(addr, size, expected, desired) -> old`` is the memory's atomic
# compare-and-swap (for guest memory: a host ``lock cmpxchg`` through the
# native core, so it is atomic with respect to translated code running on
# other host threads too, not only to other Python threads).

Cas = Callable[[int, int, int, int], int]

_RMW: dict[str, Callable[[int, int, int, int], int]] = {     # (old, v, sign bit, mask) -> new
    "xchg": lambda o, v, s, m: v,
    "add": lambda o, v, s, m: (o + v) & m,
    "and": lambda o, v, s, m: o & v,
    "or": lambda o, v, s, m: o | v,
    "xor": lambda o, v, s, m: o ^ v,
    "max": lambda o, v, s, m: o if (o ^ s) >= (v ^ s) else v,
    "min": lambda o, v, s, m: o if (o ^ s) <= (v ^ s) else v,
    "umax": lambda o, v, s, m: o if o >= v else v,
    "umin": lambda o, v, s, m: o if o <= v else v,
}


def _aligned(addr: int, size: int) -> None:
    """Atomics need natural alignment: a misaligned address faults (SIGSEGV
    at the address, as translated code reports it)."""
    if addr & (size - 1):
        from aotc.errors import GuestMemoryError
        raise GuestMemoryError(addr, size)


def cmpxchg(cas: Cas, addr: int, expected: int, new: int, bits: int) -> int:
    """Builder.cmpxchg on unsigned ints: the old value."""
    size = bits // 8
    _aligned(addr, size)
    return cas(addr, size, expected, new)


def atomic_rmw(cas: Cas, op: str, addr: int, v: int, bits: int) -> int:
    """Builder.atomic_rmw on unsigned ints, as a compare-and-swap loop: the
    old value.  The first guess is 0 (no separate load: the swap reads)."""
    size = bits // 8
    _aligned(addr, size)
    f, s, m = _RMW[op], 1 << (bits - 1), MASKS[bits]
    old = 0
    while True:
        got = cas(addr, size, old, f(old, v, s, m))
        if got == old:
            return old
        old = got


ATOMIC_HELPERS: dict[str, object] = {"cmpxchg": cmpxchg, "atomic_rmw": atomic_rmw}
