"""Table-driven RV64GC decoder: bytes -> ``Insn``.

``decode(code, offset, pc)`` decodes one instruction (RV64 I, M, A, F, D, C,
Zicsr, Zifencei, the bit-manipulation extensions Zba, Zbb, Zbs, the
conditional-zero extension Zicond, and RVA23U64's other scalar extensions:
Zcb, Zcmop, Zimop, Zawrs, Zicbom, Zicboz, Zfa and Zfhmin).  Compressed instructions are expanded to the base
instruction they stand for (``size == 2``, ``compressed == True``).

Decoding work is cached per instruction word: the first time a word is seen
its fields are computed into a tuple; afterwards ``decode`` only builds the
``Insn``.  Reserved or illegal encodings raise ``DecodeError``.

Notes on fields beyond ``Insn``'s docstring:

* ``fence`` carries the 12-bit ``fm|pred|succ`` field (unsigned) in ``imm``
  (``fence.tso`` and ``pause`` decode as ``fence``); ``fence.i`` has imm 0.
* FP instructions with a rounding-mode field keep it in ``rm`` even when it is
  the reserved value 5 or 6; the semantics trap on those.
* Bit manipulation (ratified B: Zba, Zbb, Zbs; RV64 encodings): the shift-
  immediate forms ``rori``, ``bclri``, ``bseti``, ``binvi``, ``bexti`` and
  ``slli.uw`` carry a 6-bit shamt in ``imm``, ``roriw`` a 5-bit one; the
  unary forms (``clz``, ``ctz``, ``cpop`` and their W forms, ``sext.b``,
  ``sext.h``, ``zext.h``, ``orc.b``, ``rev8``) use only rd and rs1.
  ``zext.h`` on RV64 is the OP-32 ``packw`` encoding with rs2 = 0 (``packw``
  itself, Zbkb, is not decoded).
* Zcb's compressed forms expand to the base instructions they stand for
  (``c.zext.b`` to ``andi rd, rd, 255``, ``c.not`` to ``xori rd, rd, -1``,
  ``c.zext.w`` to ``add.uw rd, rd, x0``, ``c.mul`` to ``mul``, the others to
  their Zbb or load/store namesakes).  Zcmop's ``c.mop.N`` (the reserved
  ``c.lui x{1,3,..,15}, 0`` slots) expands to ``addi x0, x0, 0``.
* Zimop: ``mop.r`` and ``mop.rr`` carry their number N in ``imm`` (0..31,
  0..7).  Zicbom/Zicboz: ``cbo.clean``, ``cbo.flush``, ``cbo.inval``,
  ``cbo.zero`` (rs1 only).  Zawrs: ``wrs.nto``, ``wrs.sto``.  The Zicbop
  prefetches, Zihintntl's ``ntl.*`` and Zihintpause's ``pause`` are hints
  in the base encodings (``ori x0``, ``add x0``, ``fence``).
* Zfa: ``fli.s``/``fli.d`` keep the table index (rs1) in ``imm``;
  ``fcvtmod.w.d`` exists only with rm = RTZ.  The RV32-only ``fmvh.x.d`` and
  ``fmvp.d.x`` and the Zfh-only half forms are not decoded.  Zfhmin: ``flh``,
  ``fsh``, ``fmv.x.h``, ``fmv.h.x`` and the four ``fcvt`` between half and
  single/double (rm kept, as for every conversion).
"""

from __future__ import annotations

from typing import Final

from aotc.errors import DecodeError
from aotc.isa.riscv64.insn import Insn

__all__ = ["decode", "is_block_end", "direct_targets", "BRANCHES", "FP_RM_MNEMONICS"]

_MASK64: Final = (1 << 64) - 1

# Field tuple: (mnemonic, rd, rs1, rs2, rs3, imm, rm, csr, aq, rl)
_Fields = tuple[str, int, int, int, int, int, int, int, bool, bool]


def _sx(value: int, bits: int) -> int:
    """Sign-extend the low ``bits`` of ``value``."""
    sign = 1 << (bits - 1)
    return (value & (sign - 1)) - (value & sign)


class _Illegal(Exception):
    """Internal: the word is not a valid instruction (message only, no pc)."""


def _f(m: str, rd: int = 0, rs1: int = 0, rs2: int = 0, rs3: int = 0, imm: int = 0,
       rm: int = 0, csr: int = 0, aq: bool = False, rl: bool = False) -> _Fields:
    return (m, rd, rs1, rs2, rs3, imm, rm, csr, aq, rl)


# --------------------------------------------------------------------------
# 32-bit tables
# --------------------------------------------------------------------------

_BRANCH = {0: "beq", 1: "bne", 4: "blt", 5: "bge", 6: "bltu", 7: "bgeu"}
_LOAD = {0: "lb", 1: "lh", 2: "lw", 3: "ld", 4: "lbu", 5: "lhu", 6: "lwu"}
_STORE = {0: "sb", 1: "sh", 2: "sw", 3: "sd"}
_OPIMM = {0: "addi", 2: "slti", 3: "sltiu", 4: "xori", 6: "ori", 7: "andi"}
# (funct7, funct3) -> mnemonic
_OP = {
    (0x00, 0): "add", (0x20, 0): "sub", (0x00, 1): "sll", (0x00, 2): "slt",
    (0x00, 3): "sltu", (0x00, 4): "xor", (0x00, 5): "srl", (0x20, 5): "sra",
    (0x00, 6): "or", (0x00, 7): "and",
    (0x01, 0): "mul", (0x01, 1): "mulh", (0x01, 2): "mulhsu", (0x01, 3): "mulhu",
    (0x01, 4): "div", (0x01, 5): "divu", (0x01, 6): "rem", (0x01, 7): "remu",
    # Zba
    (0x10, 2): "sh1add", (0x10, 4): "sh2add", (0x10, 6): "sh3add",
    # Zbb
    (0x20, 7): "andn", (0x20, 6): "orn", (0x20, 4): "xnor",
    (0x05, 4): "min", (0x05, 5): "minu", (0x05, 6): "max", (0x05, 7): "maxu",
    (0x30, 1): "rol", (0x30, 5): "ror",
    # Zbs
    (0x24, 1): "bclr", (0x24, 5): "bext", (0x34, 1): "binv", (0x14, 1): "bset",
    # Zicond
    (0x07, 5): "czero.eqz", (0x07, 7): "czero.nez",
}
_OP32 = {
    (0x00, 0): "addw", (0x20, 0): "subw", (0x00, 1): "sllw", (0x00, 5): "srlw",
    (0x20, 5): "sraw",
    (0x01, 0): "mulw", (0x01, 4): "divw", (0x01, 5): "divuw", (0x01, 6): "remw",
    (0x01, 7): "remuw",
    # Zba
    (0x04, 0): "add.uw", (0x10, 2): "sh1add.uw", (0x10, 4): "sh2add.uw", (0x10, 6): "sh3add.uw",
    # Zbb
    (0x30, 1): "rolw", (0x30, 5): "rorw",
}
# OP-IMM funct3=1 / OP-IMM-32 funct3=1 with a full funct12: Zbb unary operations.
_OPIMM_UNARY = {0x600: "clz", 0x601: "ctz", 0x602: "cpop", 0x604: "sext.b", 0x605: "sext.h"}
_OPIMM32_UNARY = {0x600: "clzw", 0x601: "ctzw", 0x602: "cpopw"}
# OP-IMM funct3=5 with a full funct12 (RV64 encodings).
_OPIMM5_UNARY = {0x287: "orc.b", 0x6B8: "rev8"}
# OP-IMM shifts by a 6-bit shamt: (funct3, imm[11:6]) -> mnemonic.
_OPIMM_SHIFT = {
    (1, 0x00): "slli", (5, 0x00): "srli", (5, 0x10): "srai",
    (5, 0x18): "rori",                                      # Zbb
    (1, 0x12): "bclri", (1, 0x0A): "bseti", (1, 0x1A): "binvi", (5, 0x12): "bexti",  # Zbs
}
_AMO = {
    0x00: "amoadd", 0x01: "amoswap", 0x02: "lr", 0x03: "sc", 0x04: "amoxor",
    0x08: "amoor", 0x0C: "amoand", 0x10: "amomin", 0x14: "amomax",
    0x18: "amominu", 0x1C: "amomaxu",
}
_CSR = {1: "csrrw", 2: "csrrs", 3: "csrrc", 5: "csrrwi", 6: "csrrsi", 7: "csrrci"}
_FMA = {0x43: "fmadd", 0x47: "fmsub", 0x4B: "fnmsub", 0x4F: "fnmadd"}
_FMT = {0: "s", 1: "d"}
_FARITH = {0x00: "fadd", 0x04: "fsub", 0x08: "fmul", 0x0C: "fdiv"}
_FSGNJ = {0: "fsgnj", 1: "fsgnjn", 2: "fsgnjx"}
_FMINMAX = {0: "fmin", 1: "fmax", 2: "fminm", 3: "fmaxm"}          # fminm/fmaxm: Zfa
_FCMP = {0: "fle", 1: "flt", 2: "feq"}
_FCMPQ = {4: "fleq", 5: "fltq"}                                     # Zfa
_FCVT_INT = {0: "w", 1: "wu", 2: "l", 3: "lu"}
_CBO = {0: "cbo.inval", 1: "cbo.clean", 2: "cbo.flush", 4: "cbo.zero"}

#: Mnemonics whose ``rm`` field is a rounding mode.
FP_RM_MNEMONICS: Final = frozenset(
    [f"{op}.{t}" for op in ("fadd", "fsub", "fmul", "fdiv", "fsqrt", "fmadd", "fmsub", "fnmsub", "fnmadd")
     for t in "sd"]
    + [f"fcvt.{i}.{t}" for i in _FCVT_INT.values() for t in "sd"]
    + [f"fcvt.{t}.{i}" for i in _FCVT_INT.values() for t in "sd"]
    + ["fcvt.s.d", "fcvt.d.s"]
    + ["fround.s", "fround.d", "froundnx.s", "froundnx.d"]                 # Zfa
    + ["fcvt.s.h", "fcvt.h.s", "fcvt.d.h", "fcvt.h.d"]                     # Zfhmin
)

BRANCHES: Final = frozenset(_BRANCH.values())


def _decode32(w: int) -> _Fields:
    op = w & 0x7F
    rd = (w >> 7) & 0x1F
    f3 = (w >> 12) & 7
    rs1 = (w >> 15) & 0x1F
    rs2 = (w >> 20) & 0x1F
    f7 = w >> 25
    if op == 0x13:  # OP-IMM
        imm = _sx(w >> 20, 12)
        if f3 == 1 or f3 == 5:
            m = _OPIMM_SHIFT.get((f3, w >> 26))
            if m is not None:
                return _f(m, rd, rs1, imm=(w >> 20) & 0x3F)
            m = (_OPIMM_UNARY if f3 == 1 else _OPIMM5_UNARY).get(w >> 20)
            if m is not None:
                return _f(m, rd, rs1)
            raise _Illegal("reserved shift encoding")
        return _f(_OPIMM[f3], rd, rs1, imm=imm)
    if op == 0x03:  # LOAD
        m = _LOAD.get(f3)
        if m is None:
            raise _Illegal("reserved load width")
        return _f(m, rd, rs1, imm=_sx(w >> 20, 12))
    if op == 0x23:  # STORE
        m = _STORE.get(f3)
        if m is None:
            raise _Illegal("reserved store width")
        return _f(m, 0, rs1, rs2, imm=_sx(((w >> 25) << 5) | rd, 12))
    if op == 0x33:  # OP
        m = _OP.get((f7, f3))
        if m is None:
            raise _Illegal("reserved OP encoding")
        return _f(m, rd, rs1, rs2)
    if op == 0x3B:  # OP-32
        if f7 == 0x04 and f3 == 4 and rs2 == 0:
            return _f("zext.h", rd, rs1)     # RV64 zext.h: packw with rs2 = x0
        m = _OP32.get((f7, f3))
        if m is None:
            raise _Illegal("reserved OP-32 encoding")
        return _f(m, rd, rs1, rs2)
    if op == 0x1B:  # OP-IMM-32
        if f3 == 0:
            return _f("addiw", rd, rs1, imm=_sx(w >> 20, 12))
        if f3 == 1 and f7 == 0:
            return _f("slliw", rd, rs1, imm=rs2)
        if f3 == 1 and w >> 26 == 0x02:
            return _f("slli.uw", rd, rs1, imm=(w >> 20) & 0x3F)
        if f3 == 1 and (w >> 20) in _OPIMM32_UNARY:
            return _f(_OPIMM32_UNARY[w >> 20], rd, rs1)
        if f3 == 5 and f7 == 0:
            return _f("srliw", rd, rs1, imm=rs2)
        if f3 == 5 and f7 == 0x20:
            return _f("sraiw", rd, rs1, imm=rs2)
        if f3 == 5 and f7 == 0x30:
            return _f("roriw", rd, rs1, imm=rs2)
        raise _Illegal("reserved OP-IMM-32 encoding")
    if op == 0x37:
        return _f("lui", rd, imm=_sx(w & 0xFFFFF000, 32))
    if op == 0x17:
        return _f("auipc", rd, imm=_sx(w & 0xFFFFF000, 32))
    if op == 0x6F:
        imm = (((w >> 31) & 1) << 20) | (((w >> 21) & 0x3FF) << 1) | (((w >> 20) & 1) << 11) | (w & 0xFF000)
        return _f("jal", rd, imm=_sx(imm, 21))
    if op == 0x67:
        if f3:
            raise _Illegal("reserved jalr encoding")
        return _f("jalr", rd, rs1, imm=_sx(w >> 20, 12))
    if op == 0x63:
        m = _BRANCH.get(f3)
        if m is None:
            raise _Illegal("reserved branch encoding")
        imm = (((w >> 31) & 1) << 12) | (((w >> 7) & 1) << 11) | (((w >> 25) & 0x3F) << 5) | (((w >> 8) & 0xF) << 1)
        return _f(m, 0, rs1, rs2, imm=_sx(imm, 13))
    if op == 0x73:  # SYSTEM
        if f3 == 0:
            if w == 0x00000073:
                return _f("ecall")
            if w == 0x00100073:
                return _f("ebreak")
            if w == 0x00D00073:
                return _f("wrs.nto")                                 # Zawrs
            if w == 0x01D00073:
                return _f("wrs.sto")
            raise _Illegal("privileged or reserved SYSTEM instruction")
        if f3 == 4:   # Zimop: 1 n4 00 n3:2 0111 n1:0 (mop.r.N), 1 n2 00 n1:0 1 rs2 (mop.rr.N)
            if w >> 31 and not (w >> 28) & 3:
                if (w >> 25) & 1:
                    return _f("mop.rr", rd, rs1, rs2, imm=((w >> 28) & 4) | ((w >> 26) & 3))
                if (w >> 22) & 7 == 7:
                    return _f("mop.r", rd, rs1,
                              imm=((w >> 26) & 0x10) | ((w >> 24) & 0xC) | ((w >> 20) & 3))
            raise _Illegal("reserved SYSTEM encoding")
        m = _CSR.get(f3)
        if m is None:
            raise _Illegal("reserved SYSTEM encoding")
        csr = w >> 20
        if f3 >= 5:
            return _f(m, rd, 0, imm=rs1, csr=csr)
        return _f(m, rd, rs1, csr=csr)
    if op == 0x0F:  # MISC-MEM
        if f3 == 0:
            return _f("fence", imm=w >> 20)
        if f3 == 1:
            return _f("fence.i")
        if f3 == 2 and rd == 0:   # Zicbom / Zicboz
            m = _CBO.get(w >> 20)
            if m is not None:
                return _f(m, 0, rs1)
        raise _Illegal("reserved MISC-MEM encoding")
    if op == 0x2F:  # AMO
        if f3 not in (2, 3):
            raise _Illegal("reserved AMO width")
        base = _AMO.get(w >> 27)
        if base is None:
            raise _Illegal("reserved AMO operation")
        if base == "lr" and rs2:
            raise _Illegal("lr with rs2 != 0")
        return _f(f"{base}.{'w' if f3 == 2 else 'd'}", rd, rs1, rs2,
                  aq=bool((w >> 26) & 1), rl=bool((w >> 25) & 1))
    if op == 0x07 or op == 0x27:  # LOAD-FP / STORE-FP
        if f3 == 1:
            t = "h"                   # Zfhmin
        elif f3 == 2:
            t = "w"
        elif f3 == 3:
            t = "d"
        else:
            raise _Illegal("unsupported FP load/store width")
        if op == 0x07:
            return _f("fl" + t, rd, rs1, imm=_sx(w >> 20, 12))
        return _f("fs" + t, 0, rs1, rs2, imm=_sx(((w >> 25) << 5) | rd, 12))
    if op in _FMA:
        t = _FMT.get(f7 & 3)
        if t is None:
            raise _Illegal("unsupported FP format")
        return _f(f"{_FMA[op]}.{t}", rd, rs1, rs2, w >> 27, rm=f3)
    if op == 0x53:
        return _decode_opfp(w, rd, f3, rs1, rs2, f7)
    raise _Illegal("unknown opcode")


def _decode_opfp(w: int, rd: int, f3: int, rs1: int, rs2: int, f7: int) -> _Fields:
    if f7 & 3 == 2:
        return _decode_opfp_half(rd, f3, rs1, rs2, f7)
    t = _FMT.get(f7 & 3)
    if t is None:
        raise _Illegal("unsupported FP format")
    g = f7 & 0x7C
    if g in _FARITH:
        return _f(f"{_FARITH[g]}.{t}", rd, rs1, rs2, rm=f3)
    if g == 0x2C:
        if rs2:
            raise _Illegal("fsqrt with rs2 != 0")
        return _f(f"fsqrt.{t}", rd, rs1, rm=f3)
    if g == 0x10:
        m = _FSGNJ.get(f3)
        if m is None:
            raise _Illegal("reserved fsgnj encoding")
        return _f(f"{m}.{t}", rd, rs1, rs2)
    if g == 0x14:
        m = _FMINMAX.get(f3)
        if m is None:
            raise _Illegal("reserved fmin/fmax encoding")
        return _f(f"{m}.{t}", rd, rs1, rs2)
    if g == 0x20:
        # fcvt.s.d (f7=0x20, rs2=1) / fcvt.d.s (f7=0x21, rs2=0); Zfhmin's
        # fcvt.{s,d}.h (rs2=2); Zfa's fround (rs2=4) and froundnx (rs2=5)
        if t == "s" and rs2 == 1:
            return _f("fcvt.s.d", rd, rs1, rm=f3)
        if t == "d" and rs2 == 0:
            return _f("fcvt.d.s", rd, rs1, rm=f3)
        if rs2 == 2:
            return _f(f"fcvt.{t}.h", rd, rs1, rm=f3)
        if rs2 == 4 or rs2 == 5:
            return _f(f"{'fround' if rs2 == 4 else 'froundnx'}.{t}", rd, rs1, rm=f3)
        raise _Illegal("reserved FP conversion")
    if g == 0x50:
        m = _FCMP.get(f3) or _FCMPQ.get(f3)
        if m is None:
            raise _Illegal("reserved FP compare")
        return _f(f"{m}.{t}", rd, rs1, rs2)
    if g == 0x60 and t == "d" and rs2 == 8:
        if f3 != 1:
            raise _Illegal("fcvtmod.w.d with rm other than rtz")
        return _f("fcvtmod.w.d", rd, rs1, rm=f3)                       # Zfa
    if g == 0x60:
        i = _FCVT_INT.get(rs2)
        if i is None:
            raise _Illegal("reserved FP to integer conversion")
        return _f(f"fcvt.{i}.{t}", rd, rs1, rm=f3)
    if g == 0x68:
        i = _FCVT_INT.get(rs2)
        if i is None:
            raise _Illegal("reserved integer to FP conversion")
        return _f(f"fcvt.{t}.{i}", rd, rs1, rm=f3)
    if g == 0x70 and rs2 == 0:
        if f3 == 0:
            return _f("fmv.x.w" if t == "s" else "fmv.x.d", rd, rs1)
        if f3 == 1:
            return _f(f"fclass.{t}", rd, rs1)
    if g == 0x78 and rs2 == 0 and f3 == 0:
        return _f("fmv.w.x" if t == "s" else "fmv.d.x", rd, rs1)
    if g == 0x78 and rs2 == 1 and f3 == 0:
        return _f(f"fli.{t}", rd, imm=rs1)                              # Zfa
    raise _Illegal("reserved OP-FP encoding")


def _decode_opfp_half(rd: int, f3: int, rs1: int, rs2: int, f7: int) -> _Fields:
    """fmt = H: the Zfhmin moves and conversions (Zfh's arithmetic is not decoded)."""
    if f7 == 0x22 and rs2 in (0, 1):
        return _f("fcvt.h.s" if rs2 == 0 else "fcvt.h.d", rd, rs1, rm=f3)
    if f7 == 0x72 and rs2 == 0 and f3 == 0:
        return _f("fmv.x.h", rd, rs1)
    if f7 == 0x7A and rs2 == 0 and f3 == 0:
        return _f("fmv.h.x", rd, rs1)
    raise _Illegal("half-precision instruction beyond Zfhmin")


# --------------------------------------------------------------------------
# 16-bit (C extension) expansion
# --------------------------------------------------------------------------

def _bits(h: int, hi: int, lo: int) -> int:
    return (h >> lo) & ((1 << (hi - lo + 1)) - 1)


def _ci_imm6(h: int) -> int:
    return _sx((_bits(h, 12, 12) << 5) | _bits(h, 6, 2), 6)


# Zcb: c.zext.b c.sext.b c.zext.h c.sext.h c.zext.w c.not (bits 4:2 = 0..5)
# as (base mnemonic, imm); rs2 is x0 (c.zext.w is add.uw rd, rd, x0).
_ZCB_UNARY = (("andi", 255), ("sext.b", 0), ("zext.h", 0), ("sext.h", 0), ("add.uw", 0), ("xori", -1))


def _decode16_zcb_mem(h: int, rs1p: int, rp: int) -> _Fields:
    """Quadrant 0, funct3 100: Zcb's byte and halfword loads and stores
    (funct6 100000 c.lbu, 100001 c.lhu/c.lh, 100010 c.sb, 100011 c.sh)."""
    f = _bits(h, 12, 10)
    if f == 0 or f == 2:     # uimm[1:0] in bits 5, 6
        imm = (_bits(h, 5, 5) << 1) | _bits(h, 6, 6)
        return _f("lbu", rp, rs1p, imm=imm) if f == 0 else _f("sb", 0, rs1p, rp, imm=imm)
    if f == 1:
        return _f("lh" if h & 0x40 else "lhu", rp, rs1p, imm=_bits(h, 5, 5) << 1)
    if f == 3 and not h & 0x40:
        return _f("sh", 0, rs1p, rp, imm=_bits(h, 5, 5) << 1)
    raise _Illegal("reserved compressed instruction")


def _decode16(h: int) -> _Fields:
    q = h & 3
    f3 = h >> 13
    rdp = _bits(h, 4, 2) + 8      # rd' / rs2'
    rs1p = _bits(h, 9, 7) + 8     # rs1' / rd'
    rd = _bits(h, 11, 7)
    rs2 = _bits(h, 6, 2)
    if q == 0:
        if f3 == 0:
            imm = (_bits(h, 12, 11) << 4) | (_bits(h, 10, 7) << 6) | (_bits(h, 6, 6) << 2) | (_bits(h, 5, 5) << 3)
            if imm == 0:
                raise _Illegal("illegal compressed instruction (c.addi4spn imm 0)")
            return _f("addi", rdp, 2, imm=imm)
        if f3 == 4:
            return _decode16_zcb_mem(h, rs1p, rdp)
        if f3 == 2 or f3 == 6:  # c.lw / c.sw
            imm = (_bits(h, 12, 10) << 3) | (_bits(h, 6, 6) << 2) | (_bits(h, 5, 5) << 6)
        else:  # c.fld c.ld c.fsd c.sd
            imm = (_bits(h, 12, 10) << 3) | (_bits(h, 6, 5) << 6)
        if f3 < 4:
            return _f(("", "fld", "lw", "ld")[f3], rdp, rs1p, imm=imm)
        return _f(("", "fsd", "sw", "sd")[f3 - 4], 0, rs1p, rdp, imm=imm)
    if q == 1:
        if f3 == 0:  # c.addi / c.nop (imm-0 and rd-0 forms are hints)
            return _f("addi", rd, rd, imm=_ci_imm6(h))
        if f3 == 1:
            if rd == 0:
                raise _Illegal("reserved c.addiw with rd 0")
            return _f("addiw", rd, rd, imm=_ci_imm6(h))
        if f3 == 2:
            return _f("addi", rd, 0, imm=_ci_imm6(h))
        if f3 == 3:
            if rd == 2:
                imm = ((_bits(h, 12, 12) << 9) | (_bits(h, 6, 6) << 4) | (_bits(h, 5, 5) << 6)
                       | (_bits(h, 4, 3) << 7) | (_bits(h, 2, 2) << 5))
                if imm == 0:
                    raise _Illegal("reserved c.addi16sp with imm 0")
                return _f("addi", 2, 2, imm=_sx(imm, 10))
            imm6 = _ci_imm6(h)
            if imm6 == 0:
                if rd & 1 and rd < 16:
                    return _f("addi")                     # Zcmop: c.mop.N (N = rd)
                raise _Illegal("reserved c.lui with imm 0")
            return _f("lui", rd, imm=imm6 << 12)
        if f3 == 4:
            f2 = _bits(h, 11, 10)
            if f2 == 0:
                return _f("srli", rs1p, rs1p, imm=(_bits(h, 12, 12) << 5) | rs2)
            if f2 == 1:
                return _f("srai", rs1p, rs1p, imm=(_bits(h, 12, 12) << 5) | rs2)
            if f2 == 2:
                return _f("andi", rs1p, rs1p, imm=_ci_imm6(h))
            sel = _bits(h, 6, 5)
            if h & 0x1000:
                if sel == 2:
                    return _f("mul", rs1p, rs1p, rdp)     # Zcb: c.mul
                if sel == 3:                              # Zcb: unary forms on rd'
                    op = _bits(h, 4, 2)
                    if op >= len(_ZCB_UNARY):
                        raise _Illegal("reserved compressed arithmetic")
                    m, imm = _ZCB_UNARY[op]
                    return _f(m, rs1p, rs1p, imm=imm)
                return _f(("subw", "addw")[sel], rs1p, rs1p, rdp)
            return _f(("sub", "xor", "or", "and")[sel], rs1p, rs1p, rdp)
        if f3 == 5:
            imm = ((_bits(h, 12, 12) << 11) | (_bits(h, 11, 11) << 4) | (_bits(h, 10, 9) << 8)
                   | (_bits(h, 8, 8) << 10) | (_bits(h, 7, 7) << 6) | (_bits(h, 6, 6) << 7)
                   | (_bits(h, 5, 3) << 1) | (_bits(h, 2, 2) << 5))
            return _f("jal", 0, imm=_sx(imm, 12))
        imm = ((_bits(h, 12, 12) << 8) | (_bits(h, 11, 10) << 3) | (_bits(h, 6, 5) << 6)
               | (_bits(h, 4, 3) << 1) | (_bits(h, 2, 2) << 5))
        return _f("beq" if f3 == 6 else "bne", 0, rs1p, 0, imm=_sx(imm, 9))
    # q == 2
    if f3 == 0:
        return _f("slli", rd, rd, imm=(_bits(h, 12, 12) << 5) | rs2)
    if f3 == 1 or f3 == 3:  # c.fldsp / c.ldsp
        if f3 == 3 and rd == 0:
            raise _Illegal("reserved c.ldsp with rd 0")
        imm = (_bits(h, 12, 12) << 5) | (_bits(h, 6, 5) << 3) | (_bits(h, 4, 2) << 6)
        return _f("fld" if f3 == 1 else "ld", rd, 2, imm=imm)
    if f3 == 2:
        if rd == 0:
            raise _Illegal("reserved c.lwsp with rd 0")
        imm = (_bits(h, 12, 12) << 5) | (_bits(h, 6, 4) << 2) | (_bits(h, 3, 2) << 6)
        return _f("lw", rd, 2, imm=imm)
    if f3 == 4:
        if not h & 0x1000:
            if rs2 == 0:
                if rd == 0:
                    raise _Illegal("reserved c.jr with rs1 0")
                return _f("jalr", 0, rd)
            return _f("add", rd, 0, rs2)
        if rs2 == 0:
            if rd == 0:
                return _f("ebreak")
            return _f("jalr", 1, rd)
        return _f("add", rd, rd, rs2)
    if f3 == 6:  # c.swsp
        imm = (_bits(h, 12, 9) << 2) | (_bits(h, 8, 7) << 6)
        return _f("sw", 0, 2, rs2, imm=imm)
    # c.fsdsp / c.sdsp
    imm = (_bits(h, 12, 10) << 3) | (_bits(h, 9, 7) << 6)
    return _f("fsd" if f3 == 5 else "sd", 0, 2, rs2, imm=imm)


# --------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------

# Caches: instruction word -> field tuple, or an error message string.
_CACHE16: dict[int, _Fields | str] = {}
_CACHE32: dict[int, _Fields | str] = {}


def _lookup(cache: dict[int, _Fields | str], word: int, fn) -> _Fields | str:  # type: ignore[no-untyped-def]
    try:
        r = fn(word)
    except _Illegal as e:
        r = str(e)
    except KeyError:
        r = "illegal instruction"
    if len(cache) < 1 << 20:
        cache[word] = r
    return r


def decode(code: bytes | bytearray | memoryview, offset: int, pc: int) -> Insn:
    """Decode the instruction at ``code[offset:]``, located at guest ``pc``."""
    n = len(code)
    if offset + 2 > n or offset < 0:
        raise DecodeError(pc, "truncated instruction")
    lo = code[offset] | (code[offset + 1] << 8)
    if lo & 3 != 3:
        r = _CACHE16.get(lo)
        if r is None:
            r = _lookup(_CACHE16, lo, _decode16)
        if type(r) is str:
            raise DecodeError(pc, f"{r} ({lo:#06x})")
        m, rd, rs1, rs2, rs3, imm, rm, csr, aq, rl = r  # type: ignore[misc]
        return Insn(pc, 2, lo, m, rd, rs1, rs2, rs3, imm, rm, csr, aq, rl, True)
    if lo & 0x1C == 0x1C:
        raise DecodeError(pc, f"unsupported instruction length ({lo:#06x})")
    if offset + 4 > n:
        raise DecodeError(pc, "truncated instruction")
    w = lo | (code[offset + 2] << 16) | (code[offset + 3] << 24)
    r = _CACHE32.get(w)
    if r is None:
        r = _lookup(_CACHE32, w, _decode32)
    if type(r) is str:
        raise DecodeError(pc, f"{r} ({w:#010x})")
    m, rd, rs1, rs2, rs3, imm, rm, csr, aq, rl = r  # type: ignore[misc]
    return Insn(pc, 4, w, m, rd, rs1, rs2, rs3, imm, rm, csr, aq, rl, False)


# CSRs the semantics implement; any other CSR access traps (see semantics/zicsr.py).
_SUPPORTED_CSRS: Final = frozenset((0x001, 0x002, 0x003))
_ALWAYS_END: Final = frozenset(("jal", "jalr", "ecall", "ebreak", "fence.i")) | BRANCHES
_CSR_MNEMONICS: Final = frozenset(_CSR.values())


def is_block_end(insn: Insn) -> bool:
    """True if ``insn`` ends a basic block: control transfer, ecall/ebreak,
    fence.i, or an instruction that statically always traps (unsupported CSR,
    reserved rounding mode)."""
    m = insn.mnemonic
    if m in _ALWAYS_END:
        return True
    if m in _CSR_MNEMONICS:
        return insn.csr not in _SUPPORTED_CSRS
    if insn.rm in (5, 6) and m in FP_RM_MNEMONICS:
        return True
    return False


def direct_targets(insn: Insn) -> tuple[int, ...]:
    """Statically known successor pcs of a control transfer.

    Conditional branches give ``(taken_target, fallthrough)``; ``jal`` gives
    ``(target,)`` (the return address of a call is not included); everything
    else, including ``jalr``, gives ``()``.
    """
    m = insn.mnemonic
    if m == "jal":
        return ((insn.pc + insn.imm) & _MASK64,)
    if m in BRANCHES:
        return ((insn.pc + insn.imm) & _MASK64, (insn.pc + insn.size) & _MASK64)
    return ()


class JumpConstants:
    """Integer registers with a value known along one straight-line walk of
    code (``lui``/``auipc`` and ``addi`` on them), enough to resolve the
    target of a ``jalr`` through an address built in place — ``auipc t1,
    hi; addi t1, t1, lo; jr off(t1)`` — which ``direct_targets`` cannot see.

    Discovery only: a target found is one more block entry (an entry too
    many costs a block, never correctness), so values are not undone where
    another path joins the walk."""

    __slots__ = ("known",)

    def __init__(self) -> None:
        self.known: dict[int, int] = {0: 0}          # x0

    def step(self, insn: Insn) -> int | None:
        """Track ``insn``; for a ``jalr`` whose base is known, its target."""
        m, known = insn.mnemonic, self.known
        target = None
        value = None
        if m == "lui":
            value = insn.imm & _MASK64
        elif m == "auipc":
            value = (insn.pc + insn.imm) & _MASK64
        elif m == "addi" and insn.rs1 in known:
            value = (known[insn.rs1] + insn.imm) & _MASK64
        elif m == "jalr" and insn.rs1 in known:
            target = (known[insn.rs1] + insn.imm) & _MASK64 & ~1
        if insn.rd:
            # Any other write (integer or, conservatively, an f register of
            # the same number) forgets the register.
            if value is None or m not in _CONSTANT_MNEMONICS:
                known.pop(insn.rd, None)
            else:
                known[insn.rd] = value
        return target


_CONSTANT_MNEMONICS = frozenset(("lui", "auipc", "addi"))
