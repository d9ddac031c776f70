"""riscv64 instruction semantics: the one place instruction meaning lives.

``SEMANTICS`` maps every base mnemonic the decoder produces to a function
``sem(builder, insn)`` written against ``aotc.ir.builder.Builder`` only.
``lift(b, insn)`` runs the semantics of one instruction (unknown mnemonics
trap as illegal instructions).
"""

from __future__ import annotations

from aotc.ir.builder import Builder
from aotc.isa.riscv64.insn import Insn
from aotc.isa.riscv64.semantics import rva, rva23, rvb, rvf, rvi, rvm, zfa, zfh, zicsr
from aotc.isa.riscv64.semantics.common import Sem

SEMANTICS: dict[str, Sem] = {}
for _module in (rvi, rvm, rva, rvf, zicsr, rvb, rva23, zfa, zfh):
    _overlap = SEMANTICS.keys() & _module.SEMANTICS.keys()
    assert not _overlap, _overlap
    SEMANTICS.update(_module.SEMANTICS)


def lift(b: Builder, insn: Insn) -> None:
    """Emit (or evaluate) ``insn`` through builder ``b``."""
    sem = SEMANTICS.get(insn.mnemonic)
    if sem is None:
        b.trap_illegal()
        return
    sem(b, insn)


__all__ = ["SEMANTICS", "lift"]
