"""The ``Builder`` protocol: the only vocabulary instruction semantics may use.

Semantics are written once, as plain Python functions ``sem(b, insn)`` that
call methods of a ``Builder``.  Engines implement the protocol:

* ``aotc.backend.llvm_builder.LLVMBuilder`` emits LLVM IR (AOT and JIT),
* an evaluating builder (the interpreter) computes Python values directly.

Values are opaque to semantics.  Every value has a type fixed when it is made:
an integer of ``bits`` in {1, 8, 16, 32, 64, 128} or a float of ``fbits`` in
{32, 64}.  Integer operations take operands of equal width; signedness lives
in the operation name (``sdiv`` vs ``udiv``, ``ashr`` vs ``lshr``), never in
the value.  Guest-visible corner cases (x0, division by zero, NaN boxing,
saturating conversions) are expressed in the semantics through these
primitives, so every engine agrees by construction.

Rounding modes use the RISC-V encoding: 0 RNE, 1 RTZ, 2 RDN, 3 RUP, 4 RMM,
7 DYN (use the current ``frm``).  FP exception flags use the RISC-V bits:
NX=1, UF=2, OF=4, DZ=8, NV=16.
"""

from __future__ import annotations

from typing import Any, Protocol

Value = Any

ICMP_PREDICATES = ("eq", "ne", "ult", "ule", "ugt", "uge", "slt", "sle", "sgt", "sge")
# Ordered comparisons are false when either operand is NaN; "uno" is true then.
FCMP_PREDICATES = ("oeq", "one", "olt", "ole", "ogt", "oge", "ord", "uno")
FBINOPS = ("fadd", "fsub", "fmul", "fdiv")
# atomic_rmw operations: new = v, old + v, old & v, old | v, old ^ v,
# signed max/min, unsigned max/min (of old and v).
# read_counter: the user-readable counters (runtime/guest_clock.py).
COUNTERS = ("cycle", "time", "instret")
ATOMIC_RMW_OPS = ("xchg", "add", "and", "or", "xor", "max", "min", "umax", "umin")

RM_RNE, RM_RTZ, RM_RDN, RM_RUP, RM_RMM, RM_DYN = 0, 1, 2, 3, 4, 7
FLAG_NX, FLAG_UF, FLAG_OF, FLAG_DZ, FLAG_NV = 1, 2, 4, 8, 16


class Builder(Protocol):
    # -- constants and width changes -------------------------------------
    def const(self, value: int, bits: int = 64) -> Value: ...
    def zext(self, v: Value, bits: int) -> Value: ...
    def sext(self, v: Value, bits: int) -> Value: ...
    def trunc(self, v: Value, bits: int) -> Value: ...

    # -- guest registers (x0 reads 0 and drops writes: the builder's job) --
    def get_x(self, r: int) -> Value: ...            # i64
    def set_x(self, r: int, v: Value) -> None: ...   # i64
    def get_f(self, r: int) -> Value: ...            # i64 raw bits of f[r]
    def set_f(self, r: int, v: Value) -> None: ...   # i64 raw bits
    def get_fcsr(self) -> Value: ...                 # i64: frm << 5 | fflags
    def set_fcsr(self, v: Value) -> None: ...        # i64, only low 8 bits kept

    # -- integer arithmetic (equal widths) -------------------------------
    def add(self, a: Value, b: Value) -> Value: ...
    def sub(self, a: Value, b: Value) -> Value: ...
    def mul(self, a: Value, b: Value) -> Value: ...
    def and_(self, a: Value, b: Value) -> Value: ...
    def or_(self, a: Value, b: Value) -> Value: ...
    def xor(self, a: Value, b: Value) -> Value: ...
    def shl(self, a: Value, amount: Value) -> Value: ...   # amount < bits
    def lshr(self, a: Value, amount: Value) -> Value: ...
    def ashr(self, a: Value, amount: Value) -> Value: ...
    # Division: the divisor is never 0 and never -1 with a = MIN; the
    # semantics guard those cases with ``select`` before calling.
    def udiv(self, a: Value, b: Value) -> Value: ...
    def sdiv(self, a: Value, b: Value) -> Value: ...
    def urem(self, a: Value, b: Value) -> Value: ...
    def srem(self, a: Value, b: Value) -> Value: ...
    def icmp(self, pred: str, a: Value, b: Value) -> Value: ...   # -> i1
    def select(self, cond: Value, a: Value, b: Value) -> Value: ...
    def ctlz(self, v: Value) -> Value: ...   # count leading zeros, same width
    def cttz(self, v: Value) -> Value: ...
    def ctpop(self, v: Value) -> Value: ...

    # -- guest memory (little endian, any alignment) ----------------------
    # Plain loads and stores: no ordering beyond the host's (x86-TSO, which
    # is stronger than RVWMO but for store->load; see ``fence``).
    def load(self, addr: Value, bits: int) -> Value: ...   # addr: i64 guest address
    def store(self, addr: Value, v: Value) -> None: ...    # width from v
    # LR/SC reservation: one per hart, cleared by sc.
    def get_reservation(self) -> Value: ...           # i64 address, or -1
    def set_reservation(self, v: Value) -> None: ...
    # The value LR loaded (zero-extended to i64): SC succeeds only if memory
    # still holds it (value-based reservation, docs/architecture.md).
    def get_reservation_value(self) -> Value: ...     # i64
    def set_reservation_value(self, v: Value) -> None: ...

    # -- atomics (other harts run in parallel on real host threads) --------
    # ``addr`` must be naturally aligned for ``bits`` (32 or 64): a misaligned
    # address faults (SIGSEGV at ``addr``) like an unmapped one, and every
    # access needs write permission, like a store.  Both are sequentially
    # consistent (LLVM ``seq_cst``: a full barrier on either side).
    # ``op`` in ATOMIC_RMW_OPS; ``v`` has ``bits``; returns the old value.
    def atomic_rmw(self, op: str, addr: Value, v: Value, bits: int) -> Value: ...
    # Store ``new`` iff memory holds ``expected``; returns the old value
    # (success is ``old == expected``, which the semantics compute).
    def cmpxchg(self, addr: Value, expected: Value, new: Value, bits: int) -> Value: ...
    # A memory barrier.  ``store_load``: also order earlier stores before
    # later loads (a full barrier: LLVM ``fence seq_cst``, x86 mfence);
    # without it every other order (load->load, load->store, store->store:
    # LLVM ``fence acq_rel``, on x86 only a compiler barrier).
    def fence(self, store_load: bool = True) -> None: ...

    # -- counters -------------------------------------------------------------
    # The value of a user-readable counter now: ``which`` in COUNTERS
    # ("cycle", "time", "instret"; runtime/guest_clock.py defines them).
    def read_counter(self, which: str) -> Value: ...   # i64

    # -- floating point ---------------------------------------------------
    def bitcast_to_float(self, v: Value) -> Value: ...  # i32 -> f32, i64 -> f64
    def bitcast_to_int(self, v: Value) -> Value: ...    # f32 -> i32, f64 -> i64
    def fbinop(self, op: str, a: Value, b: Value, rm: int) -> Value: ...  # op in FBINOPS
    def fsqrt(self, a: Value, rm: int) -> Value: ...
    def fma(self, a: Value, b: Value, c: Value, rm: int) -> Value: ...  # a*b+c, one rounding
    def fcmp(self, pred: str, a: Value, b: Value) -> Value: ...   # -> i1
    def fconvert(self, v: Value, fbits: int, rm: int) -> Value: ...  # f32 <-> f64
    def int_to_float(self, v: Value, fbits: int, signed: bool, rm: int) -> Value: ...
    # Float -> integer: round to integral with ``rm``, then convert with
    # saturation at the target range; NaN gives 0 (semantics pick NaN's value).
    def float_to_int(self, v: Value, bits: int, signed: bool, rm: int) -> Value: ...
    # The rounding mode ``rm`` stands for, as an i64 value 0-4: ``rm`` itself
    # if static, else the guest's frm; a reserved frm (5-7) traps (SIGILL)
    # as any DYN operation does.  For semantics that round in integer
    # operations (Zfa's fround, Zfhmin's narrowing conversions).
    def rounding_mode(self, rm: int) -> Value: ...
    # OR ``flags`` (an i64 value of FLAG_* bits) into fflags.  The arithmetic
    # and conversion methods above accrue their own IEEE flags; semantics call
    # this only for flags the ISA adds (e.g. NV for a signalling compare).
    def raise_fflags(self, flags: Value) -> None: ...

    # -- control flow: each instruction ends the block with at most one ------
    # ``returns_to``: the jump is a guest call (it links a return-address
    # register) whose return point is that pc; ``is_return``: it is a guest
    # return (``ret``).  Hints only: the meaning is the plain jump, and
    # translated code uses them to map guest call/return to host call/return.
    def jump(self, target: int, returns_to: int | None = None) -> None: ...   # direct, known target
    def jump_indirect(self, target: Value, returns_to: int | None = None,
                      is_return: bool = False) -> None: ...                  # i64 computed target
    def branch(self, cond: Value, taken: int, not_taken: int) -> None: ...
    def syscall(self) -> None: ...        # ecall at the current pc
    def trap_illegal(self) -> None: ...   # SIGILL at the current pc
    def breakpoint(self) -> None: ...     # ebreak: SIGTRAP at the current pc
    def fence_i(self) -> None: ...        # instruction fence; continue at next pc

    # -- context ----------------------------------------------------------
    @property
    def pc(self) -> int: ...          # guest pc of the instruction being built
    @property
    def next_pc(self) -> int: ...     # pc + instruction size
