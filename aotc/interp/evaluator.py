"""An evaluating ``Builder``: runs instruction semantics on Python values.

Every builder call computes its result immediately.  Integer values are
``IntV`` (an unsigned Python int masked to ``bits``; signedness lives in the
operation, as in the protocol).  Float values are ``FloatV`` holding the raw
IEEE bit pattern, so NaN payloads and signalling NaNs survive untouched;
arithmetic is exact (``softfloat``) for every rounding mode.

What is approximated: nothing in the arithmetic; FP operations are slow
(Fraction based).  Plain memory accesses are not checked for alignment;
atomics are (``ops.cmpxchg``/``ops.atomic_rmw``: a misaligned one faults).

``Evaluator.execute(insn)`` runs one decoded instruction and returns one of
the ``EXIT_*`` codes of ``aotc.isa.riscv64.state``; ``state.pc`` is then the
next pc (EXIT_CONTINUE) or the pc of the exiting instruction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import time
from typing import Protocol

from aotc.errors import GuestMemoryError
from aotc.ir.builder import COUNTERS
from aotc.interp import ops
from aotc.isa.riscv64.insn import Insn
from aotc.isa.riscv64.semantics import lift
from aotc.isa.riscv64.state import (
    EXIT_BREAK, EXIT_CONTINUE, EXIT_FAULT, EXIT_FENCE_I, EXIT_ILLEGAL, EXIT_SYSCALL, GuestState,
)

MASK64 = (1 << 64) - 1
_MASKS = ops.MASKS


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
    # Atomic compare-and-swap of ``size`` (4 or 8) aligned bytes, with a
    # store's permission checks: stores ``desired`` iff memory holds
    # ``expected``; returns the old value.  Must be atomic with respect to
    # every other thread touching the memory, native code included.
    def cas(self, addr: int, size: int, expected: int, desired: int) -> int: ...
    def fence(self) -> None: ...   # a full (store->load) memory barrier
    # A user-readable counter ("cycle", "time", "instret") now: a host
    # service like ``fence`` (runtime/guest_clock.py serves the runtime's).
    def read_counter(self, which: str) -> int: ...


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

    def cas(self, addr: int, size: int, expected: int, desired: int) -> int:
        """Compare-and-swap (one thread owns a SparseMemory: read, then write)."""
        old = self.read(addr, size)
        self.write(addr, size, desired if old == expected else old)
        return old

    def fence(self) -> None:
        pass

    def read_counter(self, which: str) -> int:
        """Host nanoseconds for every counter (monotonic; tests only)."""
        return time.monotonic_ns()

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
    iters: int = 0      # loop iterations a looping compiled block ran (runtime/interp.py)
    reservation_value: int = 0   # the value LR loaded (zero-extended)

    @classmethod
    def from_guest_state(cls, g: GuestState) -> CpuState:
        return cls(list(g.x), list(g.f), g.pc, g.fcsr, g.reservation,
                   reservation_value=g.reservation_value)

    def to_guest_state(self, g: GuestState) -> None:
        for i in range(32):
            g.x[i] = self.x[i]
            g.f[i] = self.f[i]
        g.pc, g.fcsr, g.reservation = self.pc, self.fcsr, self.reservation
        g.reservation_value = self.reservation_value


_IllegalTrap = ops.IllegalTrap   # raised inside a builder call that traps


def _iv(v: int, bits: int) -> IntV:
    return IntV(v & _MASKS[bits], bits)


_F = ops.INT_FUNCS


def _binop(name: str):  # type: ignore[no-untyped-def]
    f = _F[name]

    def op(self, a: IntV, b: IntV) -> IntV:  # type: ignore[no-untyped-def]
        bits = a.bits
        return IntV(f(a.v, b.v, 0, bits, 1 << (bits - 1), _MASKS[bits]), bits)
    op.__name__ = name
    return op


def _unop(name: str):  # type: ignore[no-untyped-def]
    f = _F[name]

    def op(self, v: IntV) -> IntV:  # type: ignore[no-untyped-def]
        bits = v.bits
        return IntV(f(v.v, 0, 0, bits, 1 << (bits - 1), _MASKS[bits]), bits)
    op.__name__ = name
    return op


class Evaluator:
    """``Builder`` implementation that evaluates immediately.  Every primitive
    is the shared definition in ``aotc.interp.ops``."""

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

    def _width(self, name: str, v: IntV, bits: int) -> IntV:
        w = v.bits
        return IntV(_F[name](v.v, 0, 0, w, 1 << (w - 1), _MASKS[bits]), bits)

    def zext(self, v: IntV, bits: int) -> IntV:
        return self._width("zext1" if v.bits == 1 else "zext", v, bits)

    def sext(self, v: IntV, bits: int) -> IntV:
        return self._width("sext", v, bits)

    def trunc(self, v: IntV, bits: int) -> IntV:
        return self._width("trunc", v, bits)

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
    add = _binop("add")
    sub = _binop("sub")
    mul = _binop("mul")
    and_ = _binop("and_")
    or_ = _binop("or_")
    xor = _binop("xor")
    shl = _binop("shl")
    lshr = _binop("lshr")
    ashr = _binop("ashr")
    udiv = _binop("udiv")
    urem = _binop("urem")
    sdiv = _binop("sdiv")
    srem = _binop("srem")
    ctlz = _unop("ctlz")
    cttz = _unop("cttz")
    ctpop = _unop("ctpop")

    def icmp(self, pred: str, a: IntV, b: IntV) -> IntV:
        bits = a.bits
        return IntV(int(_F[pred](a.v, b.v, 0, bits, 1 << (bits - 1), 1)), 1)

    def select(self, cond: IntV, a, b):  # type: ignore[no-untyped-def]
        return a if cond.v else b

    # -- memory ------------------------------------------------------------------
    def load(self, addr: IntV, bits: int) -> IntV:
        return IntV(self.memory.read(addr.v, bits // 8), bits)

    def store(self, addr: IntV, v: IntV) -> None:
        self.memory.write(addr.v, v.bits // 8, v.v)

    def get_reservation(self) -> IntV:
        return IntV(self.state.reservation, 64)

    def set_reservation(self, v: IntV) -> None:
        self.state.reservation = v.v

    def get_reservation_value(self) -> IntV:
        return IntV(self.state.reservation_value, 64)

    def set_reservation_value(self, v: IntV) -> None:
        self.state.reservation_value = v.v

    # -- atomics -------------------------------------------------------------------
    def atomic_rmw(self, op: str, addr: IntV, v: IntV, bits: int) -> IntV:
        return IntV(ops.atomic_rmw(self.memory.cas, op, addr.v, v.v, bits), bits)

    def cmpxchg(self, addr: IntV, expected: IntV, new: IntV, bits: int) -> IntV:
        return IntV(ops.cmpxchg(self.memory.cas, addr.v, expected.v, new.v, bits), bits)

    def fence(self, store_load: bool = True) -> None:
        if store_load:           # else nothing: the interpreter keeps program order
            self.memory.fence()

    # -- counters --------------------------------------------------------------------
    def read_counter(self, which: str) -> IntV:
        assert which in COUNTERS, which
        return IntV(self.memory.read_counter(which) & MASK64, 64)

    # -- floating point ---------------------------------------------------------
    def bitcast_to_float(self, v: IntV) -> FloatV:
        assert v.bits in (32, 64)
        return FloatV(v.v, v.bits)

    def bitcast_to_int(self, v: FloatV) -> IntV:
        return IntV(v.raw, v.fbits)

    def fbinop(self, op: str, a: FloatV, b: FloatV, rm: int) -> FloatV:
        return FloatV(ops.fbinop(self.state, op, a.raw, b.raw, a.fbits, rm), a.fbits)

    def fsqrt(self, a: FloatV, rm: int) -> FloatV:
        return FloatV(ops.fsqrt(self.state, a.raw, a.fbits, rm), a.fbits)

    def fma(self, a: FloatV, b: FloatV, c: FloatV, rm: int) -> FloatV:
        return FloatV(ops.fma(self.state, a.raw, b.raw, c.raw, a.fbits, rm), a.fbits)

    def fcmp(self, pred: str, a: FloatV, b: FloatV) -> IntV:
        """Quiet comparison: raises no flags (semantics add NV where needed)."""
        return IntV(int(ops.fcmp(pred, a.raw, b.raw, a.fbits)), 1)

    def fconvert(self, v: FloatV, fbits: int, rm: int) -> FloatV:
        return FloatV(ops.fconvert(self.state, v.raw, v.fbits, fbits, rm), fbits)

    def int_to_float(self, v: IntV, fbits: int, signed: bool, rm: int) -> FloatV:
        return FloatV(ops.int_to_float(self.state, v.v, v.bits, fbits, signed, rm), fbits)

    def float_to_int(self, v: FloatV, bits: int, signed: bool, rm: int) -> IntV:
        return IntV(ops.float_to_int(self.state, v.raw, v.fbits, bits, signed, rm), bits)

    def rounding_mode(self, rm: int) -> IntV:
        return IntV(ops.resolve_rm(self.state, rm), 64)

    def raise_fflags(self, flags: IntV) -> None:
        self.state.fcsr |= flags.v & 0x1F

    # -- control flow ------------------------------------------------------------
    def jump(self, target: int, returns_to: int | None = None) -> None:
        self._target = target & MASK64

    def jump_indirect(self, target: IntV, returns_to: int | None = None,
                      is_return: bool = False) -> None:
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

