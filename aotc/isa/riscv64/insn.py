"""A decoded riscv64 instruction: the one boundary between bytes and semantics."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Insn:
    """One decoded RV64GC instruction.

    Compressed instructions are expanded to the base instruction they stand
    for (``c.addw`` becomes ``addw``; ``compressed`` stays true and ``size``
    is 2), so semantics exist once per base instruction.

    ``mnemonic`` is the base-ISA name in lower case with dots as in the spec
    (``fadd.d``, ``amoadd.w``, ``lr.d``, ``fcvt.w.s``).  Register fields that
    an instruction does not use are 0.  ``imm`` is sign-extended as the spec
    defines for the format (branch and jump offsets are byte offsets relative
    to ``pc``; ``lui``/``auipc`` carry the already shifted value ``imm << 12``
    sign-extended to 64 bits; shift amounts for ``slli``/``srli``/``srai``
    (and W forms) are in ``imm``; CSR instructions carry the CSR number in
    ``csr`` and, for the ``*i`` forms, the 5-bit zimm in ``imm``).
    """

    pc: int
    size: int           # 2 or 4
    raw: int            # the instruction bits (16 or 32)
    mnemonic: str
    rd: int = 0
    rs1: int = 0
    rs2: int = 0
    rs3: int = 0
    imm: int = 0
    rm: int = 0         # rounding mode field of FP instructions
    csr: int = 0
    aq: bool = False
    rl: bool = False
    compressed: bool = False

    @property
    def next_pc(self) -> int:
        return self.pc + self.size

    def __str__(self) -> str:
        return f"{self.pc:#x}: {self.mnemonic} rd={self.rd} rs1={self.rs1} rs2={self.rs2} imm={self.imm}"
