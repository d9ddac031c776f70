"""Zicsr for user mode: the FP CSRs fflags (0x001), frm (0x002), fcsr (0x003).

``cycle``/``time``/``instret`` (0xC00-0xC02) are NOT emulated yet: reading
them as 0 would break programs that measure time, so they trap as illegal
instructions until the runtime provides a builder intrinsic for them.  Every
other CSR also traps (as it does for a Linux user process).
"""

from __future__ import annotations

from aotc.ir.builder import Builder, Value
from aotc.isa.riscv64.insn import Insn
from aotc.isa.riscv64.semantics.common import Sem, k

FFLAGS, FRM, FCSR = 0x001, 0x002, 0x003
# Deliberately unimplemented (see module docstring): CYCLE, TIME, INSTRET.
CYCLE, TIME, INSTRET = 0xC00, 0xC01, 0xC02


def read_csr(b: Builder, csr: int) -> Value:
    fcsr = b.get_fcsr()
    if csr == FFLAGS:
        return b.and_(fcsr, k(b, 0x1F))
    if csr == FRM:
        return b.and_(b.lshr(fcsr, k(b, 5)), k(b, 7))
    return b.and_(fcsr, k(b, 0xFF))


def write_csr(b: Builder, csr: int, v: Value) -> None:
    if csr == FFLAGS:
        new = b.or_(b.and_(b.get_fcsr(), k(b, 0xE0)), b.and_(v, k(b, 0x1F)))
    elif csr == FRM:
        new = b.or_(b.and_(b.get_fcsr(), k(b, 0x1F)), b.shl(b.and_(v, k(b, 7)), k(b, 5)))
    else:
        new = b.and_(v, k(b, 0xFF))
    b.set_fcsr(new)


def csr_op(kind: str, immediate: bool) -> Sem:
    """csrrw/csrrs/csrrc (and the *i forms): rd = old CSR; CSR = new.

    csrrs/csrrc whose source is x0 (or zimm 0) only read: the CSR is not written.
    """
    def sem(b: Builder, insn: Insn) -> None:
        if insn.csr not in (FFLAGS, FRM, FCSR):
            b.trap_illegal()
            return
        src = k(b, insn.imm) if immediate else b.get_x(insn.rs1)
        src_is_zero = (insn.imm if immediate else insn.rs1) == 0
        old = read_csr(b, insn.csr)
        if kind == "w":
            write_csr(b, insn.csr, src)
        elif not src_is_zero:
            new = b.or_(old, src) if kind == "s" else b.and_(old, b.xor(src, k(b, -1)))
            write_csr(b, insn.csr, new)
        b.set_x(insn.rd, old)
    return sem


SEMANTICS: dict[str, Sem] = {
    "csrrw": csr_op("w", False), "csrrs": csr_op("s", False), "csrrc": csr_op("c", False),
    "csrrwi": csr_op("w", True), "csrrsi": csr_op("s", True), "csrrci": csr_op("c", True),
}
