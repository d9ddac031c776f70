"""An evaluating ``Builder``: runs instruction semantics on Python values.

Every builder call computes its result immediately.  Integer values are
``IntV`` (an unsigned Python int masked to ``bits``; signedness lives in the
operation, as in the protocol).  Float values are ``FloatV`` holding the raw
IEEE bit pattern, so NaN payloads and signalling NaNs survive untouched;
arithmetic is exact (``softfloat``) for every rounding mode.

What is approximated: nothing in the arithmetic; FP operations are slow
(Fraction based).  Memory accesses are not checked for alignment.

``Evaluator.execute(insn)`` runs one decoded instruction and returns one of
the ``EXIT_*`` codes of ``aotc.isa.riscv64.state``; ``state.pc`` is then the
next pc (EXIT_CONTINUE) or the pc of the exiting instruction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from aotc.errors import GuestMemoryError
from aotc.interp import softfloat as sf
from aotc.isa.riscv64.insn import Insn
from aotc.isa.riscv64.semantics import lift
from aotc.isa.riscv64.state import (
    EXIT_BREAK, EXIT_CONTINUE, EXIT_FAULT, EXIT_FENCE_I, EXIT_ILLEGAL, EXIT_SYSCALL, GuestState,
)

MASK64 = (1 << 64) - 1
_MASKS = {1: 1, 8: 0xFF, 16: 0xFFFF, 32: 0xFFFFFFFF, 64: MASK64, 128: (1 << 128) - 1}


class IntV:
    """An integer value of ``bits`` width; ``v`` is unsigned, < 2**bits."""

    __slots__ = ("v", "bits")

    def __init__(self, v: int, bits: int) -> None:
        self.v = v
        self.bits = bits

    def signed(self) -> int:
        v, bits = self.v, self.bits
        return v - (1 << bits) if v >> (bits - 1) else v

    def __repr__(self) -> str:
        return f"i{self.bits}:{self.v:#x}"


class FloatV:
    """A float value: the raw IEEE bits of an f32 or f64."""

    __slots__ = ("raw", "fbits")

    def __init__(self, raw: int, fbits: int) -> None:
        self.raw = raw
        self.fbits = fbits

    def __repr__(self) -> str:
        return f"f{self.fbits}:{self.raw:#x}"


class Memory(Protocol):
    """Guest memory as the evaluator needs it (little endian)."""

    def read(self, addr: int, size: int) -> int: ...
    def write(self, addr: int, size: int, value: int) -> None: ...


class SparseMemory:
    """Page-granular guest memory; unmapped accesses raise ``GuestMemoryError``."""

    PAGE = 4096

    def __init__(self) -> None:
        self.pages: dict[int, bytearray] = {}

    def map(self, addr: int, size: int) -> None:
        for p in range(addr // self.PAGE, (addr + size + self.PAGE - 1) // self.PAGE):
            self.pages.setdefault(p, bytearray(self.PAGE))

    def write_bytes(self, addr: int, data: bytes) -> None:
        for i, byte in enumerate(data):
            self.write(addr + i, 1, byte)

    def read_bytes(self, addr: int, size: int) -> bytes:
        return self.read(addr, size).to_bytes(size, "little") if size else b""

    def read(self, addr: int, size: int) -> int:
        off = addr & (self.PAGE - 1)
        page = self.pages.get(addr >> 12)
        if page is not None and off + size <= self.PAGE:
            return int.from_bytes(page[off:off + size], "little")
        out = 0
        for i in range(size):
            a = (addr + i) & MASK64
            pg = self.pages.get(a >> 12)
            if pg is None:
                raise GuestMemoryError(addr, size)
            out |= pg[a & (self.PAGE - 1)] << (8 * i)
        return out

    def write(self, addr: int, size: int, value: int) -> None:
        off = addr & (self.PAGE - 1)
        page = self.pages.get(addr >> 12)
        if page is not None and off + size <= self.PAGE:
            page[off:off + size] = value.to_bytes(size, "little")
            return
        for i in range(size):   # check every page before writing anything
            if ((addr + i) & MASK64) >> 12 not in self.pages:
                raise GuestMemoryError(addr, size)
        for i in range(size):
            a = (addr + i) & MASK64
            self.pages[a >> 12][a & (self.PAGE - 1)] = (value >> (8 * i)) & 0xFF


@dataclass
class CpuState:
    """Architectural state of one hart (all values unsigned 64-bit ints)."""

    x: list[int] = field(default_factory=lambda: [0] * 32)
    f: list[int] = field(default_factory=lambda: [0] * 32)
    pc: int = 0
    fcsr: int = 0
    reservation: int = MASK64

    @classmethod
    def from_guest_state(cls, g: GuestState) -> CpuState:
        return cls(list(g.x), list(g.f), g.pc, g.fcsr, g.reservation)

    def to_guest_state(self, g: GuestState) -> None:
        for i in range(32):
            g.x[i] = self.x[i]
            g.f[i] = self.f[i]
        g.pc, g.fcsr, g.reservation = self.pc, self.fcsr, self.reservation


class _IllegalTrap(Exception):
    """Raised inside a builder call that traps (e.g. dynamic rm with bad frm)."""


def _iv(v: int, bits: int) -> IntV:
    return IntV(v & _MASKS[bits], bits)


class Evaluator:
    """``Builder`` implementation that evaluates immediately."""

    def __init__(self, state: CpuState, memory: Memory) -> None:
        self.state = state
        self.memory = memory
        self._pc = 0
        self._next_pc = 0
        self._target = 0
        self._exit = EXIT_CONTINUE
        self.fault: GuestMemoryError | None = None

    # -- driving -----------------------------------------------------------
    def execute(self, insn: Insn) -> int:
        """Run one instruction; returns an EXIT_* code (see module docstring)."""
        self._pc = insn.pc
        self._next_pc = self._target = (insn.pc + insn.size) & MASK64
        self._exit = EXIT_CONTINUE
        self.fault = None
        try:
            lift(self, insn)
        except _IllegalTrap:
            self._exit = EXIT_ILLEGAL
        except GuestMemoryError as e:
            self.fault = e
            self._exit = EXIT_FAULT
        self.state.pc = self._target if self._exit == EXIT_CONTINUE else insn.pc
        return self._exit

    @property
    def pc(self) -> int:
        return self._pc

    @property
    def next_pc(self) -> int:
        return self._next_pc

    # -- constants and width changes ----------------------------------------
    def const(self, value: int, bits: int = 64) -> IntV:
        return _iv(value, bits)

    def zext(self, v: IntV, bits: int) -> IntV:
        return IntV(v.v, bits)

    def sext(self, v: IntV, bits: int) -> IntV:
        return _iv(v.signed(), bits)

    def trunc(self, v: IntV, bits: int) -> IntV:
        return _iv(v.v, bits)

    # -- registers -------------------------------------------------------------
    def get_x(self, r: int) -> IntV:
        return IntV(self.state.x[r] if r else 0, 64)

    def set_x(self, r: int, v: IntV) -> None:
        assert v.bits == 64, v
        if r:
            self.state.x[r] = v.v

    def get_f(self, r: int) -> IntV:
        return IntV(self.state.f[r], 64)

    def set_f(self, r: int, v: IntV) -> None:
        assert v.bits == 64, v
        self.state.f[r] = v.v

    def get_fcsr(self) -> IntV:
        return IntV(self.state.fcsr & 0xFF, 64)

    def set_fcsr(self, v: IntV) -> None:
        self.state.fcsr = v.v & 0xFF

    # -- integer arithmetic ----------------------------------------------------
    def add(self, a: IntV, b: IntV) -> IntV:
        return _iv(a.v + b.v, a.bits)

    def sub(self, a: IntV, b: IntV) -> IntV:
        return _iv(a.v - b.v, a.bits)

    def mul(self, a: IntV, b: IntV) -> IntV:
        return _iv(a.v * b.v, a.bits)

    def and_(self, a: IntV, b: IntV) -> IntV:
        return IntV(a.v & b.v, a.bits)

    def or_(self, a: IntV, b: IntV) -> IntV:
        return IntV(a.v | b.v, a.bits)

    def xor(self, a: IntV, b: IntV) -> IntV:
        return IntV(a.v ^ b.v, a.bits)

    def shl(self, a: IntV, amount: IntV) -> IntV:
        assert amount.v < a.bits
        return _iv(a.v << amount.v, a.bits)

    def lshr(self, a: IntV, amount: IntV) -> IntV:
        assert amount.v < a.bits
        return IntV(a.v >> amount.v, a.bits)

    def ashr(self, a: IntV, amount: IntV) -> IntV:
        assert amount.v < a.bits
        return _iv(a.signed() >> amount.v, a.bits)

    def udiv(self, a: IntV, b: IntV) -> IntV:
        assert b.v != 0, "udiv by zero reached the builder"
        return IntV(a.v // b.v, a.bits)

    def urem(self, a: IntV, b: IntV) -> IntV:
        assert b.v != 0, "urem by zero reached the builder"
        return IntV(a.v % b.v, a.bits)

    def _check_sdiv(self, a: IntV, b: IntV) -> tuple[int, int]:
        x, y = a.signed(), b.signed()
        assert y != 0, "sdiv by zero reached the builder"
        assert not (y == -1 and x == -(1 << (a.bits - 1))), "sdiv overflow reached the builder"
        return x, y

    def sdiv(self, a: IntV, b: IntV) -> IntV:
        x, y = self._check_sdiv(a, b)
        q = abs(x) // abs(y)
        return _iv(-q if (x < 0) != (y < 0) else q, a.bits)

    def srem(self, a: IntV, b: IntV) -> IntV:
        x, y = self._check_sdiv(a, b)
        r = abs(x) % abs(y)
        return _iv(-r if x < 0 else r, a.bits)

    def icmp(self, pred: str, a: IntV, b: IntV) -> IntV:
        if pred[0] == "s":
            x, y = a.signed(), b.signed()
            pred = pred[1:]
        else:
            x, y = a.v, b.v
            if pred[0] == "u":
                pred = pred[1:]
        if pred == "eq":
            r = x == y
        elif pred == "ne":
            r = x != y
        elif pred == "lt":
            r = x < y
        elif pred == "le":
            r = x <= y
        elif pred == "gt":
            r = x > y
        elif pred == "ge":
            r = x >= y
        else:
            raise ValueError(f"bad icmp predicate {pred}")
        return IntV(int(r), 1)

    def select(self, cond: IntV, a, b):  # type: ignore[no-untyped-def]
        return a if cond.v else b

    def ctlz(self, v: IntV) -> IntV:
        return IntV(v.bits - v.v.bit_length(), v.bits)

    def cttz(self, v: IntV) -> IntV:
        return IntV((v.v & -v.v).bit_length() - 1 if v.v else v.bits, v.bits)

    def ctpop(self, v: IntV) -> IntV:
        return IntV(v.v.bit_count(), v.bits)

    # -- memory ------------------------------------------------------------------
    def load(self, addr: IntV, bits: int) -> IntV:
        return IntV(self.memory.read(addr.v, bits // 8), bits)

    def store(self, addr: IntV, v: IntV) -> None:
        self.memory.write(addr.v, v.bits // 8, v.v)

    def get_reservation(self) -> IntV:
        return IntV(self.state.reservation, 64)

    def set_reservation(self, v: IntV) -> None:
        self.state.reservation = v.v

    # -- floating point ---------------------------------------------------------
    def _rm(self, rm: int) -> int:
        if rm == 7:
            rm = (self.state.fcsr >> 5) & 7
        if rm > 4:
            raise _IllegalTrap()
        return rm

    def _flags(self, flags: int) -> None:
        self.state.fcsr |= flags

    def bitcast_to_float(self, v: IntV) -> FloatV:
        assert v.bits in (32, 64)
        return FloatV(v.v, v.bits)

    def bitcast_to_int(self, v: FloatV) -> IntV:
        return IntV(v.raw, v.fbits)

    _BINOPS = {"fadd": sf.add, "fsub": sf.sub, "fmul": sf.mul, "fdiv": sf.div}

    def fbinop(self, op: str, a: FloatV, b: FloatV, rm: int) -> FloatV:
        r, flags = self._BINOPS[op](a.raw, b.raw, sf.FORMATS[a.fbits], self._rm(rm))
        self._flags(flags)
        return FloatV(r, a.fbits)

    def fsqrt(self, a: FloatV, rm: int) -> FloatV:
        r, flags = sf.sqrt(a.raw, sf.FORMATS[a.fbits], self._rm(rm))
        self._flags(flags)
        return FloatV(r, a.fbits)

    def fma(self, a: FloatV, b: FloatV, c: FloatV, rm: int) -> FloatV:
        r, flags = sf.fma(a.raw, b.raw, c.raw, sf.FORMATS[a.fbits], self._rm(rm))
        self._flags(flags)
        return FloatV(r, a.fbits)

    def fcmp(self, pred: str, a: FloatV, b: FloatV) -> IntV:
        """Quiet comparison: raises no flags (semantics add NV where needed)."""
        f = sf.FORMATS[a.fbits]
        unordered = sf.is_nan(a.raw, f) or sf.is_nan(b.raw, f)
        if pred == "uno":
            return IntV(int(unordered), 1)
        if pred == "ord":
            return IntV(int(not unordered), 1)
        if unordered:
            return IntV(0, 1)
        if sf.is_inf(a.raw, f) or sf.is_inf(b.raw, f):
            x = _inf_key(a.raw, f)
            y = _inf_key(b.raw, f)
        else:
            x, y = sf.value(a.raw, f), sf.value(b.raw, f)
        r = {"oeq": x == y, "one": x != y, "olt": x < y, "ole": x <= y,
             "ogt": x > y, "oge": x >= y}[pred]
        return IntV(int(r), 1)

    def fconvert(self, v: FloatV, fbits: int, rm: int) -> FloatV:
        rm = self._rm(rm)
        r, flags = sf.convert(v.raw, sf.FORMATS[v.fbits], sf.FORMATS[fbits], rm)
        self._flags(flags)
        return FloatV(r, fbits)

    def int_to_float(self, v: IntV, fbits: int, signed: bool, rm: int) -> FloatV:
        rm = self._rm(rm)
        r, flags = sf.from_int(v.signed() if signed else v.v, sf.FORMATS[fbits], rm)
        self._flags(flags)
        return FloatV(r, fbits)

    def float_to_int(self, v: FloatV, bits: int, signed: bool, rm: int) -> IntV:
        rm = self._rm(rm)
        r, flags = sf.to_int(v.raw, sf.FORMATS[v.fbits], bits, signed, rm)
        self._flags(flags)
        return IntV(r, bits)

    def raise_fflags(self, flags: IntV) -> None:
        self.state.fcsr |= flags.v & 0x1F

    # -- control flow ------------------------------------------------------------
    def jump(self, target: int) -> None:
        self._target = target & MASK64

    def jump_indirect(self, target: IntV) -> None:
        self._target = target.v

    def branch(self, cond: IntV, taken: int, not_taken: int) -> None:
        self._target = (taken if cond.v else not_taken) & MASK64

    def syscall(self) -> None:
        self._exit = EXIT_SYSCALL

    def trap_illegal(self) -> None:
        self._exit = EXIT_ILLEGAL

    def breakpoint(self) -> None:
        self._exit = EXIT_BREAK

    def fence_i(self) -> None:
        self._exit = EXIT_FENCE_I


def _inf_key(raw: int, f: sf.Format) -> object:
    """Orderable stand-in for a value that may be infinite."""
    from fractions import Fraction

    if sf.is_inf(raw, f):
        big = Fraction(1 << 2000)
        return -big if raw & f.sign else big
    return sf.value(raw, f)
