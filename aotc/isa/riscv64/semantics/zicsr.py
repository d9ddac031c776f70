"""Zicsr for user mode: the FP CSRs fflags (0x001), frm (0x002), fcsr (0x003),
and the read-only counters a Linux user process may read.

Zicntr: ``cycle`` (0xC00), ``time`` (0xC01), ``instret`` (0xC02) read the
builder's ``read_counter`` (runtime/guest_clock.py: the host TSC for cycle
and instret, CLOCK_MONOTONIC at 10 MHz for time).  Zihpm: ``hpmcounter3`` to
``hpmcounter31`` (0xC03-0xC1F) read 0, as on a kernel that counts no event
for user mode.  Writing a read-only CSR (csrrw, or csrrs/csrrc with a source
other than x0 / zimm 0) is an illegal instruction, as is every other CSR.
"""

from __future__ import annotations

from aotc.ir.builder import Builder, Value
from aotc.isa.riscv64.insn import Insn
from aotc.isa.riscv64.semantics.common import Sem, k

FFLAGS, FRM, FCSR = 0x001, 0x002, 0x003
CYCLE, TIME, INSTRET = 0xC00, 0xC01, 0xC02
HPMCOUNTER3, HPMCOUNTER31 = 0xC03, 0xC1F
_COUNTER_NAMES = {CYCLE: "cycle", TIME: "time", INSTRET: "instret"}


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
        src_is_zero = (insn.imm if immediate else insn.rs1) == 0
        if CYCLE <= insn.csr <= HPMCOUNTER31:
            if kind == "w" or not src_is_zero:   # a write to a read-only CSR
                b.trap_illegal()
                return
            name = _COUNTER_NAMES.get(insn.csr)
            b.set_x(insn.rd, b.read_counter(name) if name else k(b, 0))
            return
        if insn.csr not in (FFLAGS, FRM, FCSR):
            b.trap_illegal()
            return
        src = k(b, insn.imm) if immediate else b.get_x(insn.rs1)
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
