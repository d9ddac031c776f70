"""RV64A on a single hart: LR/SC with one reservation, AMOs as load-op-store.

The aq/rl bits need no code: one hart, and the engines keep program order.
"""

from __future__ import annotations

from aotc.ir.builder import Builder, Value
from aotc.isa.riscv64.insn import Insn
from aotc.isa.riscv64.semantics.common import BinOp, Sem, k


def _widen(b: Builder, v: Value, bits: int) -> Value:
    return b.sext(v, 64) if bits == 32 else v


def _narrow(b: Builder, v: Value, bits: int) -> Value:
    return b.trunc(v, 32) if bits == 32 else v


def lr(bits: int) -> Sem:
    def sem(b: Builder, insn: Insn) -> None:
        addr = b.get_x(insn.rs1)
        v = b.load(addr, bits)
        b.set_reservation(addr)
        b.set_x(insn.rd, _widen(b, v, bits))
    return sem


def sc(bits: int) -> Sem:
    """Store iff the reservation holds ``addr``; rd = 0 on success, 1 on failure.

    Straight-line form: the old value is loaded and stored back on failure.
    The reservation is always cleared.
    """
    def sem(b: Builder, insn: Insn) -> None:
        addr = b.get_x(insn.rs1)
        new = _narrow(b, b.get_x(insn.rs2), bits)
        ok = b.icmp("eq", b.get_reservation(), addr)
        old = b.load(addr, bits)
        b.store(addr, b.select(ok, new, old))
        b.set_reservation(k(b, -1))
        b.set_x(insn.rd, b.select(ok, k(b, 0), k(b, 1)))
    return sem


def amo(op: BinOp, bits: int) -> Sem:
    """``old = M[x[rs1]]; M[x[rs1]] = op(old, x[rs2]); rd = old``."""
    def sem(b: Builder, insn: Insn) -> None:
        addr = b.get_x(insn.rs1)
        src = _narrow(b, b.get_x(insn.rs2), bits)
        old = b.load(addr, bits)
        b.store(addr, op(b, old, src))
        b.set_x(insn.rd, _widen(b, old, bits))
    return sem


def _pick(pred: str) -> BinOp:
    """min/max: keep ``old`` when ``old pred src``."""
    return lambda b, old, src: b.select(b.icmp(pred, old, src), old, src)


_OPS: dict[str, BinOp] = {
    "amoswap": lambda b, old, src: src,
    "amoadd": lambda b, old, src: b.add(old, src),
    "amoxor": lambda b, old, src: b.xor(old, src),
    "amoand": lambda b, old, src: b.and_(old, src),
    "amoor": lambda b, old, src: b.or_(old, src),
    "amomin": _pick("slt"),
    "amomax": _pick("sgt"),
    "amominu": _pick("ult"),
    "amomaxu": _pick("ugt"),
}

SEMANTICS: dict[str, Sem] = {}
for _suffix, _bits in (("w", 32), ("d", 64)):
    SEMANTICS[f"lr.{_suffix}"] = lr(_bits)
    SEMANTICS[f"sc.{_suffix}"] = sc(_bits)
    for _name, _op in _OPS.items():
        SEMANTICS[f"{_name}.{_suffix}"] = amo(_op, _bits)
