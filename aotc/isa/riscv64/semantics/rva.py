"""RV64A with harts running in parallel on host threads.

* AMOs are one ``atomic_rmw`` each (sequentially consistent, so every
  aq/rl combination is satisfied); the .w forms operate on 32-bit memory
  and sign-extend the old value.
* LR is a plain load that records the reservation: the address and the
  value it loaded.
* SC succeeds iff the reservation holds its address and a ``cmpxchg`` of
  the reserved value for the new one succeeds (a *value-based* reservation,
  as QEMU does: an ABA change between LR and SC goes unnoticed, which the
  LR/SC idioms compilers and libcs emit cannot tell apart).  The reservation
  is always cleared.

Straight-line SC: with no matching reservation the cmpxchg still runs, as
``cmpxchg(addr, new, new)``: if memory holds ``new`` it stores that same
value again (atomically: no hart can see a difference), else it stores
nothing, so a failing SC never changes memory.  It faults where a store
would (write permission, alignment), as the SC did before.

Ordering (RVWMO on x86-TSO, docs/architecture.md): the atomics are
``seq_cst``.  LR is a plain load, which x86 already orders before later
accesses; LR.aq adds a compiler barrier after it so LLVM does not hoist later
accesses above it, and LR.rl (LR.aqrl, GCC's seq_cst compare-and-swap) a
full barrier before it, since a release (RCsc) LR must not pass an earlier
store, the one reordering x86 does.
"""

from __future__ import annotations

from aotc.ir.builder import Builder, Value
from aotc.isa.riscv64.insn import Insn
from aotc.isa.riscv64.semantics.common import Sem, k


def _widen(b: Builder, v: Value, bits: int) -> Value:
    return b.sext(v, 64) if bits == 32 else v


def _narrow(b: Builder, v: Value, bits: int) -> Value:
    return b.trunc(v, 32) if bits == 32 else v


def lr(bits: int) -> Sem:
    def sem(b: Builder, insn: Insn) -> None:
        addr = b.get_x(insn.rs1)
        if insn.rl:
            b.fence(store_load=True)
        v = b.load(addr, bits)
        if insn.aq:
            b.fence(store_load=False)
        b.set_reservation(addr)
        b.set_reservation_value(b.zext(v, 64))
        b.set_x(insn.rd, _widen(b, v, bits))
    return sem


def sc(bits: int) -> Sem:
    """Store iff the reservation holds ``addr`` and memory still holds the
    value LR loaded; rd = 0 on success, 1 on failure (see module docstring)."""
    def sem(b: Builder, insn: Insn) -> None:
        addr = b.get_x(insn.rs1)
        new = _narrow(b, b.get_x(insn.rs2), bits)
        match = b.icmp("eq", b.get_reservation(), addr)
        expected = b.select(match, _narrow(b, b.get_reservation_value(), bits), new)
        old = b.cmpxchg(addr, expected, new, bits)
        ok = b.and_(match, b.icmp("eq", old, expected))
        b.set_reservation(k(b, -1))
        b.set_x(insn.rd, b.select(ok, k(b, 0), k(b, 1)))
    return sem


def amo(op: str, bits: int) -> Sem:
    """``old = M[x[rs1]]; M[x[rs1]] = op(old, x[rs2]); rd = old``, atomically."""
    def sem(b: Builder, insn: Insn) -> None:
        addr = b.get_x(insn.rs1)
        src = _narrow(b, b.get_x(insn.rs2), bits)
        old = b.atomic_rmw(op, addr, src, bits)
        b.set_x(insn.rd, _widen(b, old, bits))
    return sem


_OPS: dict[str, str] = {
    "amoswap": "xchg", "amoadd": "add", "amoxor": "xor", "amoand": "and", "amoor": "or",
    "amomin": "min", "amomax": "max", "amominu": "umin", "amomaxu": "umax",
}

SEMANTICS: dict[str, Sem] = {}
for _suffix, _bits in (("w", 32), ("d", 64)):
    SEMANTICS[f"lr.{_suffix}"] = lr(_bits)
    SEMANTICS[f"sc.{_suffix}"] = sc(_bits)
    for _name, _op in _OPS.items():
        SEMANTICS[f"{_name}.{_suffix}"] = amo(_op, _bits)
