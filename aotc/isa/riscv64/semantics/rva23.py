"""RVA23U64's small scalar extensions that need semantics of their own.

* Zimop (may-be-operations 1.0): ``mop.r.N rd, rs1`` and ``mop.rr.N rd,
  rs1, rs2`` write 0 to rd (no extension that redefines them, such as
  Zicfiss, is enabled).  Zcmop's ``c.mop.N`` decodes as ``addi x0, x0, 0``.
* Zawrs: ``wrs.nto`` and ``wrs.sto`` may return at once (the spec allows a
  stall of any length, zero included): the caller's loop re-checks its
  reservation, so both are no-ops.
* Zicbom, Zicboz (cache-block operations 1.0.1), block size 64 bytes:
  ``cbo.zero`` stores zeros to the 64-byte block that contains x[rs1]
  (address aligned down) through the ordinary checked store path, so an
  unmapped or read-only block faults as a store there does;
  ``cbo.clean``/``cbo.flush``/``cbo.inval`` are no-ops: the host's caches
  are coherent, and ``cbo.inval`` behaves as a flush, which the spec permits
  (Linux's user-mode configuration: ``senvcfg.CBIE`` = 01).  They do not
  check the address.
* Zcb maps to base instructions in the decoder; the Zicbop prefetches,
  Zihintntl's ``ntl.*`` and Zihintpause's ``pause`` are base-encoding hints
  (``ori x0``, ``add x0``, ``fence``) and need nothing here.
"""

from __future__ import annotations

from aotc.ir.builder import Builder
from aotc.isa.riscv64.insn import Insn
from aotc.isa.riscv64.semantics.common import Sem, k

CBO_BLOCK = 64


def mop(b: Builder, insn: Insn) -> None:
    b.set_x(insn.rd, k(b, 0))


def nothing(b: Builder, insn: Insn) -> None:
    """A hint or a no-op in user mode."""


def cbo_zero(b: Builder, insn: Insn) -> None:
    base = b.and_(b.get_x(insn.rs1), k(b, -CBO_BLOCK))
    zero = k(b, 0)
    for off in range(0, CBO_BLOCK, 8):
        b.store(b.add(base, k(b, off)) if off else base, zero)


SEMANTICS: dict[str, Sem] = {
    "mop.r": mop, "mop.rr": mop,
    "wrs.nto": nothing, "wrs.sto": nothing,
    "cbo.clean": nothing, "cbo.flush": nothing, "cbo.inval": nothing,
    "cbo.zero": cbo_zero,
}
