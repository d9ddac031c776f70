"""Random RV64GC test programs for differential testing, and the engines that run them.

A *program* is a batch of independent *cases*.  Each case

1. loads all 32 integer registers, all 32 FP registers (raw 64-bit) and fcsr
   from its own table in the data segment (special operands on purpose:
   0, -1, INT_MIN, INT_MAX, NaNs quiet and signalling, boxed and unboxed
   singles, ±0, ±inf, subnormals, values at rounding boundaries...);
2. runs a random body of *items* (one instruction, or a small template such
   as LR/SC, a branch over the next instruction, auipc+jalr) over RV64 I, M,
   A, F, D, Zicsr (fcsr/frm/fflags) and C (optionally also the bit-manipulation
   extensions Zba/Zbb/Zbs and Zicond: ``GenOptions.b_ops``/``zicond_ops``,
   off by default so the seeds of the RV64GC runs stay as they were), with
   x2 pointing at the case's
   256-byte memory buffer (so the C.*SP forms work; x2 is never a destination);
3. stores x0..x31, f0..f31 and fcsr right after its buffer.

After the last case one ``write(1, ...)`` prints every case's buffer and
register dump, then the program exits 0.  So one ELF (one image, one start
of each engine) checks many cases, and every engine's stdout must be
byte-identical.  The engines: an AOT image, ``aotrun --engine jit``,
``aotrun --engine interp``, qemu-riscv64 and Unicorn (in process, stopping
before the final ``write``).

Everything is deterministic: CSR writes use constants the generator knows,
so it tracks frm and never selects an invalid dynamic rounding mode (5-7
trap with SIGILL, which would end the case: test_bug_classes.py covers it).
RMM (ties to max magnitude) is used in every operation and as frm (0-4)
unless ``rmm=False``.

The encoders here are checked against the GNU assembler by
``python tests/difftest_campaign.py --check-encoder``.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

CODE_BASE = 0x10000
DATA_BASE = 0x400000
BUF = 256                       # memory buffer bytes per case
STRIDE = 1024                   # bytes per case region: buffer, x dump, f dump, fcsr
X_OFF, F_OFF, FCSR_OFF = BUF, BUF + 256, BUF + 512
DUMP = BUF + 512 + 8            # bytes compared per case
INIT_SIZE = 528                 # init table: x[32], f[32], fcsr
SP = 2                          # x2: the case's buffer (never written by the body)

FFLAGS, FRM, FCSR = 1, 2, 3
CSR_NAMES = {FFLAGS: "fflags", FRM: "frm", FCSR: "fcsr"}
RM_NAMES = {0: "rne", 1: "rtz", 2: "rdn", 3: "rup", 4: "rmm", 7: "dyn"}
M64 = (1 << 64) - 1


# --- instruction encoders ------------------------------------------------------

def r_type(op: int, f3: int, f7: int, rd: int, rs1: int, rs2: int) -> int:
    return (f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op


def i_type(op: int, f3: int, rd: int, rs1: int, imm: int) -> int:
    return ((imm & 0xFFF) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op


def s_type(op: int, f3: int, rs1: int, rs2: int, imm: int) -> int:
    imm &= 0xFFF
    return ((imm >> 5) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((imm & 0x1F) << 7) | op


def b_type(f3: int, rs1: int, rs2: int, imm: int) -> int:
    imm &= 0x1FFF
    return (((imm >> 12) & 1) << 31) | (((imm >> 5) & 0x3F) << 25) | (rs2 << 20) | (rs1 << 15) | \
        (f3 << 12) | (((imm >> 1) & 0xF) << 8) | (((imm >> 11) & 1) << 7) | 0x63


def u_type(op: int, rd: int, imm20: int) -> int:
    return ((imm20 & 0xFFFFF) << 12) | (rd << 7) | op


def j_type(rd: int, imm: int) -> int:
    imm &= 0x1FFFFF
    return (((imm >> 20) & 1) << 31) | (((imm >> 1) & 0x3FF) << 21) | (((imm >> 11) & 1) << 20) | \
        (((imm >> 12) & 0xFF) << 12) | (rd << 7) | 0x6F


def r4_type(op: int, fmt: int, rm: int, rd: int, rs1: int, rs2: int, rs3: int) -> int:
    return (rs3 << 27) | (fmt << 25) | (rs2 << 20) | (rs1 << 15) | (rm << 12) | (rd << 7) | op


def _b(value: int, hi: int, lo: int) -> int:
    return (value >> lo) & ((1 << (hi - lo + 1)) - 1)


@dataclass(frozen=True)
class Insn:
    """One encoded instruction: its bytes and GNU-assembler text."""

    code: bytes
    text: str

    @property
    def compressed(self) -> bool:
        return len(self.code) == 2


def w32(word: int, text: str) -> Insn:
    return Insn(struct.pack("<I", word), text)


def w16(half: int, text: str) -> Insn:
    return Insn(struct.pack("<H", half), text)


def hint_target(off: int) -> Insn:
    """``bne x0, x0, .+off``: never taken, but it makes the landing point of
    the indirect jump that follows a static target, so the AOT image covers
    it and runs with ``--fallback=none``."""
    return w32(b_type(1, 0, 0, off), f"bne x0, x0, .+{off}")


def li12(rd: int, imm: int) -> Insn:
    return w32(i_type(0x13, 0, rd, 0, imm), f"addi x{rd}, x0, {imm}")


def lui(rd: int, imm20: int) -> Insn:
    return w32(u_type(0x37, rd, imm20), f"lui x{rd}, {imm20 & 0xFFFFF:#x}")


def la32(rd: int, addr: int) -> list[Insn]:
    """rd = addr (a 31-bit address) with lui + addi."""
    lo = ((addr & 0xFFF) ^ 0x800) - 0x800
    hi = ((addr - lo) >> 12) & 0xFFFFF
    return [lui(rd, hi), w32(i_type(0x13, 0, rd, rd, lo), f"addi x{rd}, x{rd}, {lo}")]


def ld(rd: int, rs1: int, off: int) -> Insn:
    return w32(i_type(0x03, 3, rd, rs1, off), f"ld x{rd}, {off}(x{rs1})")


def sd(rs2: int, rs1: int, off: int) -> Insn:
    return w32(s_type(0x23, 3, rs1, rs2, off), f"sd x{rs2}, {off}(x{rs1})")


def fld(rd: int, rs1: int, off: int) -> Insn:
    return w32(i_type(0x07, 3, rd, rs1, off), f"fld f{rd}, {off}(x{rs1})")


def fsd(rs2: int, rs1: int, off: int) -> Insn:
    return w32(s_type(0x27, 3, rs1, rs2, off), f"fsd f{rs2}, {off}(x{rs1})")


def csr(kind: str, rd: int, csr_: int, src: int) -> Insn:
    f3 = {"csrrw": 1, "csrrs": 2, "csrrc": 3, "csrrwi": 5, "csrrsi": 6, "csrrci": 7}[kind]
    operand = str(src) if kind.endswith("i") else f"x{src}"
    return w32((csr_ << 20) | (src << 15) | (f3 << 12) | (rd << 7) | 0x73,
               f"{kind} x{rd}, {CSR_NAMES[csr_]}, {operand}")


ECALL = w32(0x00000073, "ecall")

# Integer R-type: name -> (opcode, funct3, funct7)
INT_R = {
    "add": (0x33, 0, 0), "sub": (0x33, 0, 0x20), "sll": (0x33, 1, 0), "slt": (0x33, 2, 0),
    "sltu": (0x33, 3, 0), "xor": (0x33, 4, 0), "srl": (0x33, 5, 0), "sra": (0x33, 5, 0x20),
    "or": (0x33, 6, 0), "and": (0x33, 7, 0),
    "mul": (0x33, 0, 1), "mulh": (0x33, 1, 1), "mulhsu": (0x33, 2, 1), "mulhu": (0x33, 3, 1),
    "div": (0x33, 4, 1), "divu": (0x33, 5, 1), "rem": (0x33, 6, 1), "remu": (0x33, 7, 1),
    "addw": (0x3B, 0, 0), "subw": (0x3B, 0, 0x20), "sllw": (0x3B, 1, 0), "srlw": (0x3B, 5, 0),
    "sraw": (0x3B, 5, 0x20), "mulw": (0x3B, 0, 1), "divw": (0x3B, 4, 1), "divuw": (0x3B, 5, 1),
    "remw": (0x3B, 6, 1), "remuw": (0x3B, 7, 1),
}
INT_I = {"addi": 0, "slti": 2, "sltiu": 3, "xori": 4, "ori": 6, "andi": 7}
SHIFT_I = {"slli": (1, 0), "srli": (5, 0), "srai": (5, 0x10)}          # (funct3, funct6)
SHIFT_IW = {"slliw": (1, 0), "srliw": (5, 0), "sraiw": (5, 0x20)}      # (funct3, funct7)
LOADS = {"lb": 0, "lh": 1, "lw": 2, "ld": 3, "lbu": 4, "lhu": 5, "lwu": 6}
STORES = {"sb": 0, "sh": 1, "sw": 2, "sd": 3}
BRANCHES = {"beq": 0, "bne": 1, "blt": 4, "bge": 5, "bltu": 6, "bgeu": 7}
AMO = {"amoswap": 0x01, "amoadd": 0x00, "amoxor": 0x04, "amoand": 0x0C, "amoor": 0x08,
       "amomin": 0x10, "amomax": 0x14, "amominu": 0x18, "amomaxu": 0x1C}
FMT = {"s": 0, "d": 1}
FARITH = {"fadd": 0x00, "fsub": 0x01, "fmul": 0x02, "fdiv": 0x03}
FMA = {"fmadd": 0x43, "fmsub": 0x47, "fnmsub": 0x4B, "fnmadd": 0x4F}
FSGNJ = {"fsgnj": 0, "fsgnjn": 1, "fsgnjx": 2}
FMINMAX = {"fmin": 0, "fmax": 1}
FCMP = {"feq": 2, "flt": 1, "fle": 0}
INT_KINDS = {"w": 0, "wu": 1, "l": 2, "lu": 3}

# Bit manipulation (ratified Zba, Zbb, Zbs; RV64 encodings).
# Register forms: name -> (opcode, funct3, funct7)
B_R = {
    "sh1add": (0x33, 2, 0x10), "sh2add": (0x33, 4, 0x10), "sh3add": (0x33, 6, 0x10),
    "add.uw": (0x3B, 0, 0x04), "sh1add.uw": (0x3B, 2, 0x10), "sh2add.uw": (0x3B, 4, 0x10),
    "sh3add.uw": (0x3B, 6, 0x10),
    "andn": (0x33, 7, 0x20), "orn": (0x33, 6, 0x20), "xnor": (0x33, 4, 0x20),
    "min": (0x33, 4, 0x05), "minu": (0x33, 5, 0x05), "max": (0x33, 6, 0x05), "maxu": (0x33, 7, 0x05),
    "rol": (0x33, 1, 0x30), "ror": (0x33, 5, 0x30), "rolw": (0x3B, 1, 0x30), "rorw": (0x3B, 5, 0x30),
    "bclr": (0x33, 1, 0x24), "bext": (0x33, 5, 0x24), "binv": (0x33, 1, 0x34), "bset": (0x33, 1, 0x14),
}
# One-operand forms: name -> (opcode, funct3, funct12)
B_UNARY = {
    "clz": (0x13, 1, 0x600), "ctz": (0x13, 1, 0x601), "cpop": (0x13, 1, 0x602),
    "sext.b": (0x13, 1, 0x604), "sext.h": (0x13, 1, 0x605),
    "clzw": (0x1B, 1, 0x600), "ctzw": (0x1B, 1, 0x601), "cpopw": (0x1B, 1, 0x602),
    "orc.b": (0x13, 5, 0x287), "rev8": (0x13, 5, 0x6B8), "zext.h": (0x3B, 4, 0x080),
}
# Shifts by a 6-bit immediate: name -> (opcode, funct3, imm[11:6])
B_SHIFT_I = {
    "rori": (0x13, 5, 0x18), "bclri": (0x13, 1, 0x12), "bseti": (0x13, 1, 0x0A),
    "binvi": (0x13, 1, 0x1A), "bexti": (0x13, 5, 0x12), "slli.uw": (0x1B, 1, 0x02),
}
# Zicond: name -> (opcode, funct3, funct7).  binutils 2.40 predates Zicond:
# ``assemble_check`` gives GNU as these as ``.insn r``.
ZICOND_R = {"czero.eqz": (0x33, 5, 0x07), "czero.nez": (0x33, 7, 0x07)}


def b_insn(name: str, rd: int, rs1: int, rs2_or_imm: int = 0) -> Insn:
    """One Zba/Zbb/Zbs/Zicond instruction (register, unary or shift-immediate form)."""
    if name in B_R or name in ZICOND_R:
        op, f3, f7 = B_R.get(name) or ZICOND_R[name]
        return w32(r_type(op, f3, f7, rd, rs1, rs2_or_imm), f"{name} x{rd}, x{rs1}, x{rs2_or_imm}")
    if name in B_UNARY:
        op, f3, f12 = B_UNARY[name]
        return w32(i_type(op, f3, rd, rs1, f12), f"{name} x{rd}, x{rs1}")
    if name == "roriw":
        return w32(r_type(0x1B, 5, 0x30, rd, rs1, rs2_or_imm & 31), f"roriw x{rd}, x{rs1}, {rs2_or_imm & 31}")
    op, f3, f6 = B_SHIFT_I[name]
    sh = rs2_or_imm & 63
    return w32((f6 << 26) | (sh << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op, f"{name} x{rd}, x{rs1}, {sh}")


B_NAMES = sorted([*B_R, *B_UNARY, *B_SHIFT_I, "roriw"])
# qemu-riscv64 7.2 counts ctzw's trailing zeros in all 64 bits (ctzw of
# 0x4_0000_0000 gives 34, not 32; newer QEMU sets the upper word first), so a qemu 7.2
# comparison leaves ctzw out (tests/test_rv64_bitmanip.py pins its values).
QEMU72_B_EXCLUDE = ("ctzw",)


# --- RVA23U64's other scalar extensions (issue 22) -------------------------------
# Texts are LLVM assembler syntax (binutils 2.40 predates Zcb, Zfa and Zimop):
# tests/test_rv64_rva23_scalar.py checks these encoders against it.

# Zcb: name -> (funct6 bits 15:10, bits 6:5, bits 4:2) for the register forms on rd'
ZCB_UNARY = {"c.zext.b": 0, "c.sext.b": 1, "c.zext.h": 2, "c.sext.h": 3, "c.zext.w": 4, "c.not": 5}
ZCB_MEM = ("c.lbu", "c.lhu", "c.lh", "c.sb", "c.sh")


def zcb_unary(name: str, rd: int) -> Insn:
    return w16((0x27 << 10) | (_cr(rd) << 7) | (3 << 5) | (ZCB_UNARY[name] << 2) | 1, f"{name} x{rd}")


def zcb_mul(rd: int, rs2: int) -> Insn:
    return w16((0x27 << 10) | (_cr(rd) << 7) | (2 << 5) | (_cr(rs2) << 2) | 1, f"c.mul x{rd}, x{rs2}")


def zcb_mem(name: str, r: int, rs1: int, off: int) -> Insn:
    """c.lbu/c.sb (offset 0-3), c.lhu/c.lh/c.sh (0 or 2): r is rd' or rs2'."""
    f6 = {"c.lbu": 0x20, "c.lhu": 0x21, "c.lh": 0x21, "c.sb": 0x22, "c.sh": 0x23}[name]
    if name in ("c.lbu", "c.sb"):
        low = ((off & 1) << 1) | ((off >> 1) & 1)      # bit 6 = off[0], bit 5 = off[1]
    else:
        assert off in (0, 2), off
        low = (2 if name == "c.lh" else 0) | (off >> 1)
    return w16((f6 << 10) | (_cr(rs1) << 7) | (low << 5) | (_cr(r) << 2), f"{name} x{r}, {off}(x{rs1})")


def c_mop(n: int) -> Insn:
    assert n & 1 and 1 <= n <= 15, n
    return w16(0x6081 | ((n >> 1) << 8), f"c.mop.{n}")


def mop_r(n: int, rd: int, rs1: int) -> Insn:
    w = (1 << 31) | (((n >> 4) & 1) << 30) | (((n >> 2) & 3) << 26) | (7 << 22) | ((n & 3) << 20) | \
        (rs1 << 15) | (4 << 12) | (rd << 7) | 0x73
    return w32(w, f"mop.r.{n} x{rd}, x{rs1}")


def mop_rr(n: int, rd: int, rs1: int, rs2: int) -> Insn:
    w = (1 << 31) | (((n >> 2) & 1) << 30) | ((n & 3) << 26) | (1 << 25) | (rs2 << 20) | \
        (rs1 << 15) | (4 << 12) | (rd << 7) | 0x73
    return w32(w, f"mop.rr.{n} x{rd}, x{rs1}, x{rs2}")


WRS = {"wrs.nto": 0x00D00073, "wrs.sto": 0x01D00073}
CBO = {"cbo.inval": 0, "cbo.clean": 1, "cbo.flush": 2, "cbo.zero": 4}


def cbo(name: str, rs1: int) -> Insn:
    return w32((CBO[name] << 20) | (rs1 << 15) | (2 << 12) | 0x0F, f"{name} (x{rs1})")


# Zfa (F and D forms)
FLI_TEXT = ("-1.0", "min", "1.52587890625e-05", "3.0517578125e-05", "0.00390625", "0.0078125",
            "0.0625", "0.125", "0.25", "0.3125", "0.375", "0.4375", "0.5", "0.625", "0.75", "0.875",
            "1.0", "1.25", "1.5", "1.75", "2.0", "2.5", "3.0", "4.0", "8.0", "16.0", "128.0",
            "256.0", "32768.0", "65536.0", "inf", "nan")


def fli(t: str, rd: int, index: int) -> Insn:
    return w32(opfp(0x1E, t, 0, rd, index, 1), f"fli.{t} f{rd}, {FLI_TEXT[index]}")


ZFA_BIN = {"fminm": (0x05, 2), "fmaxm": (0x05, 3), "fleq": (0x14, 4), "fltq": (0x14, 5)}


def zfa_bin(name: str, t: str, rd: int, rs1: int, rs2: int) -> Insn:
    f5, f3 = ZFA_BIN[name]
    r = "x" if name in ("fleq", "fltq") else "f"
    return w32(opfp(f5, t, f3, rd, rs1, rs2), f"{name}.{t} {r}{rd}, f{rs1}, f{rs2}")


def fround(name: str, t: str, rd: int, rs1: int, rm: int) -> Insn:
    return w32(opfp(0x08, t, rm, rd, rs1, 4 if name == "fround" else 5),
               f"{name}.{t} f{rd}, f{rs1}, {RM_NAMES[rm]}")


def fcvtmod(rd: int, rs1: int) -> Insn:
    return w32(opfp(0x18, "d", 1, rd, rs1, 8), f"fcvtmod.w.d x{rd}, f{rs1}, rtz")


# Zfhmin
def flh(rd: int, rs1: int, off: int) -> Insn:
    return w32(i_type(0x07, 1, rd, rs1, off), f"flh f{rd}, {off}(x{rs1})")


def fsh(rs2: int, rs1: int, off: int) -> Insn:
    return w32(s_type(0x27, 1, rs1, rs2, off), f"fsh f{rs2}, {off}(x{rs1})")


def fmv_x_h(rd: int, rs1: int) -> Insn:
    return w32(r_type(0x53, 0, 0x72, rd, rs1, 0), f"fmv.x.h x{rd}, f{rs1}")


def fmv_h_x(rd: int, rs1: int) -> Insn:
    return w32(r_type(0x53, 0, 0x7A, rd, rs1, 0), f"fmv.h.x f{rd}, x{rs1}")


# fcvt between half and single/double: name -> (funct7, rs2)
FCVT_H = {"fcvt.s.h": (0x20, 2), "fcvt.d.h": (0x21, 2), "fcvt.h.s": (0x22, 0), "fcvt.h.d": (0x22, 1)}


def fcvt_h(name: str, rd: int, rs1: int, rm: int) -> Insn:
    f7, rs2 = FCVT_H[name]
    return w32(r_type(0x53, rm, f7, rd, rs1, rs2), f"{name} f{rd}, f{rs1}, {RM_NAMES[rm]}")


def amo(name: str, width: str, rd: int, rs1: int, rs2: int, aq: int, rl: int) -> Insn:
    f5 = {"lr": 0x02, "sc": 0x03}.get(name, AMO.get(name))
    word = (f5 << 27) | (aq << 26) | (rl << 25) | (rs2 << 20) | (rs1 << 15) | \
        ({"w": 2, "d": 3}[width] << 12) | (rd << 7) | 0x2F
    order = ("." if aq or rl else "") + ("aq" if aq else "") + ("rl" if rl else "")
    if name == "lr":
        return w32(word, f"lr.{width}{order} x{rd}, (x{rs1})")
    return w32(word, f"{name}.{width}{order} x{rd}, x{rs2}, (x{rs1})")


def opfp(f5: int, fmt: str, rm: int, rd: int, rs1: int, rs2: int) -> int:
    return r_type(0x53, rm, (f5 << 2) | FMT[fmt], rd, rs1, rs2)


# --- compressed encoders (RV64C) -------------------------------------------------

def _cr(r: int) -> int:
    assert 8 <= r <= 15, r
    return r - 8


def c_ci(f3: int, op: int, rd: int, imm6: int) -> int:
    return (f3 << 13) | (_b(imm6, 5, 5) << 12) | (rd << 7) | (_b(imm6, 4, 0) << 2) | op


def c_addi4spn(rd: int, nzuimm: int) -> Insn:
    h = (_b(nzuimm, 5, 4) << 11) | (_b(nzuimm, 9, 6) << 7) | (_b(nzuimm, 2, 2) << 6) | \
        (_b(nzuimm, 3, 3) << 5) | (_cr(rd) << 2)
    return w16(h, f"c.addi4spn x{rd}, x2, {nzuimm}")


def c_mem(kind: str, r: int, rs1: int, off: int) -> Insn:
    """c.lw c.ld c.fld c.sw c.sd c.fsd: r is rd' (loads) or rs2' (stores)."""
    f3 = {"c.fld": 1, "c.lw": 2, "c.ld": 3, "c.fsd": 5, "c.sw": 6, "c.sd": 7}[kind]
    if kind in ("c.lw", "c.sw"):
        low = (_b(off, 2, 2) << 1) | _b(off, 6, 6)
    else:
        low = _b(off, 7, 6)
    h = (f3 << 13) | (_b(off, 5, 3) << 10) | (_cr(rs1) << 7) | (low << 5) | (_cr(r) << 2)
    reg = f"f{r}" if "f" in kind[2:] else f"x{r}"
    return w16(h, f"{kind} {reg}, {off}(x{rs1})")


def c_sp_load(kind: str, rd: int, off: int) -> Insn:
    if kind == "c.lwsp":
        f3, low = 2, (_b(off, 4, 2) << 2) | _b(off, 7, 6)
    else:
        f3, low = (1 if kind == "c.fldsp" else 3), (_b(off, 4, 3) << 3) | _b(off, 8, 6)
    h = (f3 << 13) | (_b(off, 5, 5) << 12) | (rd << 7) | (low << 2) | 2
    reg = f"f{rd}" if kind == "c.fldsp" else f"x{rd}"
    return w16(h, f"{kind} {reg}, {off}(x2)")


def c_sp_store(kind: str, rs2: int, off: int) -> Insn:
    if kind == "c.swsp":
        f3, imm = 6, (_b(off, 5, 2) << 2) | _b(off, 7, 6)
    else:
        f3, imm = (5 if kind == "c.fsdsp" else 7), (_b(off, 5, 3) << 3) | _b(off, 8, 6)
    h = (f3 << 13) | (imm << 7) | (rs2 << 2) | 2
    reg = f"f{rs2}" if kind == "c.fsdsp" else f"x{rs2}"
    return w16(h, f"{kind} {reg}, {off}(x2)")


def c_arith(kind: str, rd: int, rs2: int) -> Insn:
    """c.sub c.xor c.or c.and c.subw c.addw (rd', rs2')."""
    hi, lo = {"c.sub": (0, 0), "c.xor": (0, 1), "c.or": (0, 2), "c.and": (0, 3),
              "c.subw": (1, 0), "c.addw": (1, 1)}[kind]
    h = (4 << 13) | (hi << 12) | (3 << 10) | (_cr(rd) << 7) | (lo << 5) | (_cr(rs2) << 2) | 1
    return w16(h, f"{kind} x{rd}, x{rs2}")


def c_shift_andi(kind: str, rd: int, imm: int) -> Insn:
    f2 = {"c.srli": 0, "c.srai": 1, "c.andi": 2}[kind]
    h = (4 << 13) | (_b(imm, 5, 5) << 12) | (f2 << 10) | (_cr(rd) << 7) | (_b(imm, 4, 0) << 2) | 1
    return w16(h, f"{kind} x{rd}, {imm if kind == 'c.andi' else imm & 63}")


def c_j(off: int) -> Insn:
    o = off
    imm = (_b(o, 11, 11) << 10) | (_b(o, 4, 4) << 9) | (_b(o, 9, 8) << 7) | (_b(o, 10, 10) << 6) | \
        (_b(o, 6, 6) << 5) | (_b(o, 7, 7) << 4) | (_b(o, 3, 1) << 1) | _b(o, 5, 5)
    return w16((5 << 13) | (imm << 2) | 1, f"c.j .+{off}")


def c_bz(kind: str, rs1: int, off: int) -> Insn:
    f3 = 6 if kind == "c.beqz" else 7
    o = off
    h = (f3 << 13) | (_b(o, 8, 8) << 12) | (_b(o, 4, 3) << 10) | (_cr(rs1) << 7) | \
        (_b(o, 7, 6) << 5) | (_b(o, 2, 1) << 3) | (_b(o, 5, 5) << 2) | 1
    return w16(h, f"{kind} x{rs1}, .+{off}")


def c_addi16sp(imm: int) -> Insn:
    i = imm
    h = (3 << 13) | (_b(i, 9, 9) << 12) | (2 << 7) | (_b(i, 4, 4) << 6) | (_b(i, 6, 6) << 5) | \
        (_b(i, 8, 7) << 3) | (_b(i, 5, 5) << 2) | 1
    return w16(h, f"c.addi16sp x2, {imm}")


# --- operand pools ---------------------------------------------------------------

def _d(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def _s(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


INT_SPECIAL = [0, 1, M64, 2, M64 - 1, 1 << 63, (1 << 63) - 1, 0x7FFFFFFF, 0x80000000,
               0xFFFFFFFF80000000, 0xFFFFFFFF, 0x100000000, 0xFFFFFFFF7FFFFFFF, 0x8000,
               0xFFFFFFFFFFFF8000, 0x80, 0x7FFFFFFFFFFFFFFE, 0x8000000000000001, 31, 32, 63, 64]

D_SPECIAL = [
    0, 1 << 63, 0x7FF0000000000000, 0xFFF0000000000000,            # ±0, ±inf
    0x7FF8000000000000, 0xFFF8000000000000, 0x7FF8000000000123,    # quiet NaNs
    0x7FF0000000000001, 0xFFF4000000000000, 0x7FF7FFFFFFFFFFFF,    # signalling NaNs
    1, 0x000FFFFFFFFFFFFF, 0x8000000000000001, 0x0010000000000000,  # subnormals, min normal
    0x800FFFFFFFFFFFFF, 0x001FFFFFFFFFFFFF, 0x7FEFFFFFFFFFFFFF, 0xFFEFFFFFFFFFFFFF,
] + [_d(x) for x in (
    1.0, -1.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 3.0, 0.1, 1 / 3, 2.0 ** -53, 2.0 ** -54,
    3 * 2.0 ** -54, 1 + 2.0 ** -52, 1 - 2.0 ** -53, 2.0 ** 31, 2.0 ** 31 - 1, 2.0 ** 31 - 0.5,
    -(2.0 ** 31), -(2.0 ** 31) - 0.5, -(2.0 ** 31) - 1, 2.0 ** 32, 2.0 ** 32 - 0.5, 2.0 ** 32 - 1,
    2.0 ** 63, -(2.0 ** 63), 2.0 ** 64, 2.0 ** 64 - 2048, 2.0 ** 63 - 1024, 2.0 ** 53 + 2,
    2.0 ** -1022 * 1.5, 2.0 ** -1023, 1e308, -1e308, 2.0 ** 1023, 2.0 ** -1074 * 3, 16777217.0,
    2.0 ** 24 + 1, 3.4028234663852886e38, 3.4028235677973366e38, 1.1754942106924411e-38,
    1.401298464324817e-45, 7.006492321624085e-46, -4.2e-320)]

S_SPECIAL = [
    0, 1 << 31, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x7FC00123, 0x7F800001,
    0xFFA00000, 0x7FBFFFFF, 1, 0x007FFFFF, 0x80000001, 0x00800000, 0x807FFFFF, 0x7F7FFFFF,
    0xFF7FFFFF, 0x00FFFFFF,
] + [_s(x) for x in (
    1.0, -1.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 3.0, 0.1, 1 / 3, 2.0 ** -24, 2.0 ** -25,
    3 * 2.0 ** -25, 1 + 2.0 ** -23, 1 - 2.0 ** -24, 2.0 ** 31, 2.0 ** 31 - 128, -(2.0 ** 31),
    -(2.0 ** 31) - 256, 2.0 ** 32, 2.0 ** 32 - 256, 2.0 ** 63, -(2.0 ** 63), 2.0 ** 64,
    2.0 ** 63 - 2 ** 39, 2.0 ** 24 + 2, 2.0 ** -126 * 1.5, 2.0 ** -127, 1e38, 2.0 ** 127, 16777216.0)]

BOX = 0xFFFFFFFF00000000


def rand_f64(rnd: random.Random) -> int:
    """A raw FP register value: double, boxed single, or an unboxed/odd pattern."""
    p = rnd.random()
    if p < 0.35:
        return rnd.choice(D_SPECIAL)
    if p < 0.7:
        return BOX | rnd.choice(S_SPECIAL)
    if p < 0.8:
        return BOX | rnd.getrandbits(32)
    if p < 0.87:       # a single without a proper NaN-box
        return (rnd.choice([0, 0x7FFFFFFF, 0xFFFFFFFE, rnd.getrandbits(32)]) << 32) | rnd.choice(S_SPECIAL)
    if p < 0.95:
        return _d(rnd.uniform(-1e6, 1e6))
    return rnd.getrandbits(64)


def rand_x64(rnd: random.Random) -> int:
    p = rnd.random()
    if p < 0.45:
        return rnd.choice(INT_SPECIAL)
    if p < 0.55:
        return rnd.choice(D_SPECIAL)
    if p < 0.65:
        return BOX | rnd.choice(S_SPECIAL) if rnd.random() < 0.5 else rnd.choice(S_SPECIAL)
    if p < 0.8:
        v = rnd.getrandbits(32)
        return (v | BOX) if v >> 31 else v          # a sign-extended 32-bit value
    if p < 0.9:
        return rnd.randrange(-2048, 2048) & M64
    return rnd.getrandbits(64)


# --- cases -------------------------------------------------------------------------

@dataclass
class Case:
    """One independent test case: initial state and a body of items."""

    x: list[int]
    f: list[int]
    fcsr: int
    mem: bytes
    items: list[list[Insn]] = field(default_factory=list)

    def body(self) -> list[Insn]:
        return [i for item in self.items for i in item]

    def listing(self) -> str:
        out = []
        for item in self.items:
            for i in item:
                hexcode = i.code[::-1].hex()
                out.append(f"    {hexcode:>8}  {i.text}")
        return "\n".join(out)

    def initial_state(self) -> str:
        xs = " ".join(f"x{r}={v:#x}" for r, v in enumerate(self.x) if r not in (0, SP))
        fs = " ".join(f"f{r}={v:#x}" for r, v in enumerate(self.f))
        return f"  {xs}\n  {fs}\n  fcsr={self.fcsr:#x}  buffer={self.mem.hex()}"


@dataclass(frozen=True)
class GenOptions:
    """Which instruction groups to draw from (weights) and which modes are allowed."""

    int_ops: float = 1.0
    mem_ops: float = 0.4
    branch_ops: float = 0.15
    amo_ops: float = 0.25
    fp_ops: float = 1.0
    csr_ops: float = 0.2
    c_ops: float = 0.4
    rmm: bool = True           # RMM as a static mode of every FP operation and as frm
    singles: bool = True       # single-precision operations (and flw/fsw, fmv.w.x/x.w, fcvt.s.d/d.s)
    minmax: bool = True        # fmin/fmax
    # Extensions beyond RV64GC (weights, 0 = none).  Added groups with weight
    # 0 leave every earlier seed's program unchanged.  qemu-riscv64 7.2 runs
    # Zba/Zbb/Zbs (its default rv64 CPU has them); Unicorn does not, and
    # neither knows Zicond (compare aot/jit/interp among themselves).
    b_ops: float = 0.0
    zicond_ops: float = 0.0
    # B instructions left out of ``b_ops``: ``QEMU72_B_EXCLUDE`` for a
    # comparison with Debian's qemu-riscv64 7.2.
    b_exclude: tuple[str, ...] = ()
    # RVA23U64's other scalar extensions (weights, 0 = none): Zfhmin (which
    # qemu-riscv64 7.2 runs with ``-cpu rv64,Zfh=true``), and Zcb, Zfa and
    # Zimop/Zcmop/Zawrs/Zicbom/Zicboz, which no emulator here has.
    zfh_ops: float = 0.0
    zcb_ops: float = 0.0
    zfa_ops: float = 0.0
    mop_ops: float = 0.0


# What Unicorn 2.1's riscv model (qemu 5.0 based, before the F/D 2.2 fixes)
# gets wrong, found by comparing it with qemu-riscv64 7.2 (docs/difftest.md):
# single results are not NaN-boxed and unboxed single inputs are not read as
# the canonical NaN; fmin/fmax with a signalling NaN operand return the
# canonical NaN instead of the other operand.  Programs for a Unicorn
# comparison leave those out; qemu-riscv64 covers them.
UNICORN_SAFE = GenOptions(singles=False, minmax=False)


class CaseGen:
    def __init__(self, rnd: random.Random, opts: GenOptions) -> None:
        self.rnd = rnd
        self.opts = opts
        self.frm = 0
        self.avoid: int | None = None       # a register no instruction may write (loop counter)
        self.b_names = [n for n in B_NAMES if n not in opts.b_exclude]
        self.groups = [(g, getattr(opts, g)) for g in
                       ("int_ops", "mem_ops", "branch_ops", "amo_ops", "fp_ops", "csr_ops", "c_ops",
                        "b_ops", "zicond_ops", "zfh_ops", "zcb_ops", "zfa_ops", "mop_ops")]

    # registers: rd never x2 (nor a loop counter); sources may be anything; aliasing on purpose
    def xrd(self) -> int:
        while True:
            r = self.rnd.randrange(0, 32) if self.rnd.random() < 0.05 else self.rnd.randrange(1, 32)
            r = 1 if r == SP else r
            if r != self.avoid:
                return r

    def xrd_nz(self) -> int:
        """A destination that is not x0."""
        while True:
            r = self.xrd()
            if r:
                return r

    def xsrc(self, rd: int | None = None) -> int:
        if rd is not None and rd != 0 and self.rnd.random() < 0.25:
            return rd
        return self.rnd.randrange(0, 32)

    def freg(self, other: int | None = None) -> int:
        if other is not None and self.rnd.random() < 0.25:
            return other
        return self.rnd.randrange(0, 32)

    def cx(self) -> int:
        while True:
            r = self.rnd.randrange(8, 16)
            if r != self.avoid:
                return r

    def rm(self, exact_ok: bool) -> int:
        """A rounding mode; RMM only where exact (``exact_ok``) or allowed."""
        modes = [0, 1, 2, 3, 7, 7]
        if exact_ok or self.opts.rmm:
            modes.append(4)
        return self.rnd.choice(modes)

    def case(self, n_items: int) -> Case:
        rnd = self.rnd
        self.frm = rnd.randrange(0, 5 if self.opts.rmm else 4)
        x = [0] + [rand_x64(rnd) for _ in range(31)]
        f = [rand_f64(rnd) for _ in range(32)]
        mem = b"".join(struct.pack("<Q", rnd.choice((rand_f64, rand_x64))(rnd)) for _ in range(BUF // 8))
        fcsr = (self.frm << 5) | rnd.randrange(0, 32)
        c = Case(x, f, fcsr, mem)
        names = [g for g, _ in self.groups]
        weights = [w for _, w in self.groups]
        for _ in range(n_items):
            g = rnd.choices(names, weights)[0]
            c.items.append(getattr(self, "gen_" + g)())
        return c

    def single(self) -> list[Insn]:
        """One instruction that does not transfer control (for fillers)."""
        rnd = self.rnd
        g = rnd.choices(["int_ops", "fp_ops", "c_ops"], [1, 1, 0.5])[0]
        while True:
            item = getattr(self, "gen_" + g)()
            if len(item) == 1 and not item[0].text.startswith(("c.j", "c.b", "c.jalr", "c.addi16sp")):
                return item

    # --- I and M ---------------------------------------------------------------
    def gen_int_ops(self) -> list[Insn]:
        rnd = self.rnd
        rd = self.xrd()
        rs1 = self.xsrc(rd)
        rs2 = self.xsrc(rs1 if rnd.random() < 0.5 else rd)
        p = rnd.random()
        if p < 0.55:
            name = rnd.choice(sorted(INT_R))
            op, f3, f7 = INT_R[name]
            return [w32(r_type(op, f3, f7, rd, rs1, rs2), f"{name} x{rd}, x{rs1}, x{rs2}")]
        if p < 0.75:
            name = rnd.choice(sorted(INT_I) + ["addiw"])
            imm = rnd.choice([0, -1, 1, 2047, -2048, rnd.randrange(-2048, 2048)])
            if name == "addiw":
                return [w32(i_type(0x1B, 0, rd, rs1, imm), f"addiw x{rd}, x{rs1}, {imm}")]
            return [w32(i_type(0x13, INT_I[name], rd, rs1, imm), f"{name} x{rd}, x{rs1}, {imm}")]
        if p < 0.85:
            name = rnd.choice(sorted(SHIFT_I))
            f3, f6 = SHIFT_I[name]
            sh = rnd.choice([0, 1, 31, 32, 63, rnd.randrange(64)])
            return [w32((f6 << 26) | (sh << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | 0x13,
                        f"{name} x{rd}, x{rs1}, {sh}")]
        if p < 0.93:
            name = rnd.choice(sorted(SHIFT_IW))
            f3, f7 = SHIFT_IW[name]
            sh = rnd.choice([0, 1, 31, rnd.randrange(32)])
            return [w32(r_type(0x1B, f3, f7, rd, rs1, sh), f"{name} x{rd}, x{rs1}, {sh}")]
        if p < 0.97:
            imm = rnd.getrandbits(20)
            return [w32(u_type(0x37, rd, imm), f"lui x{rd}, {imm:#x}")]
        imm = rnd.getrandbits(20)
        return [w32(u_type(0x17, rd, imm), f"auipc x{rd}, {imm:#x}")]

    def gen_mem_ops(self) -> list[Insn]:
        """Loads and stores of every width at any (misaligned) offset of the buffer."""
        rnd = self.rnd
        p = rnd.random()
        if p < 0.35:
            name = rnd.choice(sorted(LOADS))
            rd, off = self.xrd(), rnd.randrange(0, BUF - 8)
            return [w32(i_type(0x03, LOADS[name], rd, SP, off), f"{name} x{rd}, {off}(x2)")]
        if p < 0.65:
            name = rnd.choice(sorted(STORES))
            rs2, off = self.xsrc(), rnd.randrange(0, BUF - 8)
            return [w32(s_type(0x23, STORES[name], SP, rs2, off), f"{name} x{rs2}, {off}(x2)")]
        # FP loads and stores, sometimes through another base register
        width = rnd.choice("wd" if self.opts.singles else "d")
        f3 = 2 if width == "w" else 3
        off = rnd.randrange(0, BUF - 8)
        fr = self.freg()
        if rnd.random() < 0.5:
            if p < 0.82:
                return [w32(i_type(0x07, f3, fr, SP, off), f"fl{width} f{fr}, {off}(x2)")]
            return [w32(s_type(0x27, f3, SP, fr, off), f"fs{width} f{fr}, {off}(x2)")]
        base, delta = self.xrd_nz(), rnd.randrange(-64, 64)
        pre = w32(i_type(0x13, 0, base, SP, off - delta), f"addi x{base}, x2, {off - delta}")
        if p < 0.82:
            return [pre, w32(i_type(0x07, f3, fr, base, delta), f"fl{width} f{fr}, {delta}(x{base})")]
        return [pre, w32(s_type(0x27, f3, base, fr, delta), f"fs{width} f{fr}, {delta}(x{base})")]

    def gen_branch_ops(self) -> list[Insn]:
        """Control transfer over the next instruction: every branch, jal, jalr (rd == rs1 too)."""
        rnd = self.rnd
        filler = self.single()
        flen = len(filler[0].code)
        p = rnd.random()
        if p < 0.6:
            name = rnd.choice(sorted(BRANCHES))
            rs1, rs2 = self.xsrc(), self.xsrc()
            if rnd.random() < 0.2:
                rs2 = rs1
            return [w32(b_type(BRANCHES[name], rs1, rs2, 4 + flen), f"{name} x{rs1}, x{rs2}, .+{4 + flen}"),
                    *filler]
        if p < 0.7:
            rd = self.xrd()
            return [w32(j_type(rd, 4 + flen), f"jal x{rd}, .+{4 + flen}"), *filler]
        if p < 0.85:
            return self.counted_loop()
        t = self.xrd_nz()
        rd = t if rnd.random() < 0.4 else self.xrd()
        return [hint_target(12 + flen), w32(u_type(0x17, t, 0), f"auipc x{t}, 0"),
                w32(i_type(0x67, 0, rd, t, 8 + flen), f"jalr x{rd}, {8 + flen}(x{t})"), *filler]

    # --- Zba, Zbb, Zbs, Zicond ---------------------------------------------------
    def gen_b_ops(self) -> list[Insn]:
        """Every B instruction; shift amounts and bit indices at their edges
        (0, 1, 31, 32, 63) or random; register amounts come from the operand
        pool, which holds 31, 32, 63, 64 and -1."""
        rnd = self.rnd
        name = rnd.choice(self.b_names)
        rd = self.xrd()
        rs1 = self.xsrc(rd)
        if name in B_R:
            return [b_insn(name, rd, rs1, self.xsrc(rs1 if rnd.random() < 0.5 else rd))]
        if name in B_UNARY:
            return [b_insn(name, rd, rs1)]
        return [b_insn(name, rd, rs1, rnd.choice([0, 1, 31, 32, 63, rnd.randrange(64)]))]

    def gen_zicond_ops(self) -> list[Insn]:
        rnd = self.rnd
        rd = self.xrd()
        rs1 = self.xsrc(rd)
        rs2 = self.xsrc(rs1 if rnd.random() < 0.3 else rd)
        return [b_insn(rnd.choice(sorted(ZICOND_R)), rd, rs1, rs2)]

    # --- RVA23U64: Zfhmin, Zcb, Zfa, Zimop/Zcmop/Zawrs/Zicbo* ------------------------
    def gen_zfh_ops(self) -> list[Insn]:
        rnd = self.rnd
        p = rnd.random()
        rd, rs1 = self.freg(), self.freg()
        if p < 0.5:
            name = rnd.choice(sorted(FCVT_H))
            rm = self.rm(name in ("fcvt.s.h", "fcvt.d.h"))     # widening is exact
            return [fcvt_h(name, rd, rs1, rm)]
        if p < 0.65:
            return [fmv_x_h(self.xrd(), rs1)]
        if p < 0.8:
            return [fmv_h_x(rd, self.xsrc())]
        off = rnd.randrange(0, BUF // 2) * 2
        return [flh(rd, SP, off)] if rnd.random() < 0.5 else [fsh(rs1, SP, off)]

    def gen_zcb_ops(self) -> list[Insn]:
        rnd = self.rnd
        p = rnd.random()
        if p < 0.4:
            return [zcb_unary(rnd.choice(sorted(ZCB_UNARY)), self.cx())]
        if p < 0.55:
            a = self.cx()
            return [zcb_mul(a, a if rnd.random() < 0.2 else self.cx())]
        name = rnd.choice(ZCB_MEM)
        base, r = self.cx(), self.cx()
        while r == base and name in ("c.lbu", "c.lhu", "c.lh"):
            r = self.cx()
        off = rnd.randrange(4) if name in ("c.lbu", "c.sb") else rnd.choice([0, 2])
        start = rnd.randrange(0, BUF - 8)
        return [w32(i_type(0x13, 0, base, SP, start), f"addi x{base}, x2, {start}"), zcb_mem(name, r, base, off)]

    def gen_zfa_ops(self) -> list[Insn]:
        rnd = self.rnd
        t = rnd.choice(["s", "d"]) if self.opts.singles else "d"
        p = rnd.random()
        rd, rs1 = self.freg(), self.freg()
        if p < 0.15:
            return [fli(t, rd, rnd.randrange(32))]
        if p < 0.4:
            name = rnd.choice(["fminm", "fmaxm"])
            return [zfa_bin(name, t, rd, rs1, self.freg(rs1))]
        if p < 0.55:
            name = rnd.choice(["fleq", "fltq"])
            return [zfa_bin(name, t, self.xrd(), rs1, self.freg(rs1))]
        if p < 0.85:
            return [fround(rnd.choice(["fround", "froundnx"]), t, rd, rs1, self.rm(True))]
        return [fcvtmod(self.xrd(), rs1)]

    def gen_mop_ops(self) -> list[Insn]:
        rnd = self.rnd
        p = rnd.random()
        if p < 0.3:
            return [mop_r(rnd.randrange(32), self.xrd(), self.xsrc())]
        if p < 0.5:
            return [mop_rr(rnd.randrange(8), self.xrd(), self.xsrc(), self.xsrc())]
        if p < 0.6:
            return [c_mop(rnd.randrange(1, 16, 2))]
        if p < 0.7:
            name = rnd.choice(sorted(WRS))
            return [w32(WRS[name], name)]
        base = self.cx()
        name = rnd.choice(sorted(CBO))
        start = rnd.randrange(0, BUF)
        return [w32(i_type(0x13, 0, base, SP, start), f"addi x{base}, x2, {start}"), cbo(name, base)]

    def counted_loop(self) -> list[Insn]:
        """``t = n; L: body; t -= 1; bne t, x0, L``: a short loop (1-3 runs) of
        1-3 non-control instructions that never write the counter, so LLVM's
        loop optimisations see guest FP and memory operations."""
        rnd = self.rnd
        t = self.xrd_nz()
        self.avoid = t
        try:
            body = [i for _ in range(rnd.randrange(1, 4)) for i in self.single()]
        finally:
            self.avoid = None
        n = rnd.randrange(1, 4)
        back = -(sum(len(i.code) for i in body) + 4)
        return [li12(t, n), *body, w32(i_type(0x13, 0, t, t, -1), f"addi x{t}, x{t}, -1"),
                w32(b_type(1, t, 0, back), f"bne x{t}, x0, .{back}")]

    # --- A ---------------------------------------------------------------------
    def gen_amo_ops(self) -> list[Insn]:
        """AMOs and LR/SC on naturally aligned buffer words; every LR is paired
        with an SC in the same item, so no reservation outlives its item."""
        rnd = self.rnd
        width = rnd.choice("wd")
        align = 4 if width == "w" else 8
        t = self.xrd_nz()
        off = rnd.randrange(0, BUF // align) * align
        addr = w32(i_type(0x13, 0, t, SP, off), f"addi x{t}, x2, {off}")
        aq, rl = rnd.randrange(2), rnd.randrange(2)
        p = rnd.random()
        if p < 0.6:
            rd = t if rnd.random() < 0.2 else self.xrd()
            rs2 = rd if rnd.random() < 0.2 else self.xsrc()
            return [addr, amo(rnd.choice(sorted(AMO)), width, rd, t, rs2, aq, rl)]
        rd1 = self.xrd()
        while rd1 == t:
            rd1 = self.xrd()
        rd2 = self.xrd()
        rs2 = self.xsrc()
        sc = amo("sc", width, rd2, t, rs2, aq, rl)
        kind = rnd.random()
        if kind < 0.5:      # success: LR, an unrelated op, SC to the same address
            mid = []
            if rnd.random() < 0.5:
                m = self.xrd()
                while m == t:
                    m = self.xrd()
                a, b = self.xsrc(), self.xsrc()
                mid = [w32(r_type(0x33, 0, 0, m, a, b), f"add x{m}, x{a}, x{b}")]
            return [addr, amo("lr", width, rd1, t, 0, aq, rl), *mid, sc]
        if kind < 0.75:     # failure: SC without a reservation
            return [addr, sc]
        # failure: LR of one word, SC to another; then SC again (no reservation left)
        t2 = self.xrd_nz()
        while t2 == t or t2 == rd1:
            t2 = self.xrd_nz()
        while rd2 == t2:                 # the second SC still needs the address
            rd2 = self.xrd()
        sc = amo("sc", width, rd2, t, rs2, aq, rl)
        off2 = (off + align * rnd.randrange(1, 4)) % BUF
        return [addr, amo("lr", width, rd1, t, 0, aq, rl),
                w32(i_type(0x13, 0, t2, SP, off2), f"addi x{t2}, x2, {off2}"),
                amo("sc", width, rd2, t2, rs2, aq, rl), amo("sc", width, rd2, t2, rs2, 0, 0)]

    # --- F and D ---------------------------------------------------------------
    def gen_fp_ops(self) -> list[Insn]:
        rnd = self.rnd
        t = rnd.choice("sd" if self.opts.singles else "d")
        rd = self.freg()
        rs1 = self.freg(rd)
        rs2 = self.freg(rs1)
        rs3 = self.freg(rs2)
        p = rnd.random()
        if p < 0.2:
            name = rnd.choice(sorted(FARITH))
            rm = self.rm(False)
            return [w32(opfp(FARITH[name], t, rm, rd, rs1, rs2),
                        f"{name}.{t} f{rd}, f{rs1}, f{rs2}, {RM_NAMES[rm]}")]
        if p < 0.3:
            name = rnd.choice(sorted(FMA))
            rm = self.rm(False)
            return [w32(r4_type(FMA[name], FMT[t], rm, rd, rs1, rs2, rs3),
                        f"{name}.{t} f{rd}, f{rs1}, f{rs2}, f{rs3}, {RM_NAMES[rm]}")]
        if p < 0.35:
            rm = self.rm(False)
            return [w32(opfp(0x0B, t, rm, rd, rs1, 0), f"fsqrt.{t} f{rd}, f{rs1}, {RM_NAMES[rm]}")]
        if p < 0.42:
            name = rnd.choice(sorted(FSGNJ))
            return [w32(opfp(0x04, t, FSGNJ[name], rd, rs1, rs2), f"{name}.{t} f{rd}, f{rs1}, f{rs2}")]
        if p < 0.5 and self.opts.minmax:
            name = rnd.choice(sorted(FMINMAX))
            return [w32(opfp(0x05, t, FMINMAX[name], rd, rs1, rs2), f"{name}.{t} f{rd}, f{rs1}, f{rs2}")]
        if p < 0.58:
            name = rnd.choice(sorted(FCMP))
            xd = self.xrd()
            return [w32(opfp(0x14, t, FCMP[name], xd, rs1, rs2), f"{name}.{t} x{xd}, f{rs1}, f{rs2}")]
        if p < 0.62:
            xd = self.xrd()
            return [w32(opfp(0x1C, t, 1, xd, rs1, 0), f"fclass.{t} x{xd}, f{rs1}")]
        if p < 0.74:     # float -> int: every static mode (RMM exact here) and DYN
            kind = rnd.choice(sorted(INT_KINDS))
            rm = self.rm(True)
            xd = self.xrd()
            return [w32(opfp(0x18, t, rm, xd, rs1, INT_KINDS[kind]),
                        f"fcvt.{kind}.{t} x{xd}, f{rs1}, {RM_NAMES[rm]}")]
        if p < 0.84:     # int -> float
            kind = rnd.choice(sorted(INT_KINDS))
            exact = t == "d" and kind in ("w", "wu")
            rm = self.rm(exact)
            xs = self.xsrc()
            return [w32(opfp(0x1A, t, rm, rd, xs, INT_KINDS[kind]),
                        f"fcvt.{t}.{kind} f{rd}, x{xs}, {RM_NAMES[rm]}")]
        if p < 0.9 and self.opts.singles:      # fcvt.s.d / fcvt.d.s
            if t == "s":
                rm = self.rm(False)
                return [w32(opfp(0x08, "s", rm, rd, rs1, 1), f"fcvt.s.d f{rd}, f{rs1}, {RM_NAMES[rm]}")]
            rm = self.rm(True)                 # exact: the mode must not matter
            return [w32(opfp(0x08, "d", rm, rd, rs1, 0), f"fcvt.d.s f{rd}, f{rs1}, {RM_NAMES[rm]}")]
        if p < 0.95:
            xd = self.xrd()
            return [w32(opfp(0x1C, t, 0, xd, rs1, 0), f"fmv.x.{'w' if t == 's' else 'd'} x{xd}, f{rs1}")]
        xs = self.xsrc()
        return [w32(opfp(0x1E, t, 0, rd, xs, 0), f"fmv.{'w' if t == 's' else 'd'}.x f{rd}, x{xs}")]

    # --- Zicsr on the FP CSRs -----------------------------------------------------
    def _new_frm(self, kind: str, csr_: int, v: int) -> int | None:
        """frm after the CSR op (None: not written)."""
        op = kind.rstrip("i")[-1]    # w, s or c
        if csr_ == FFLAGS:
            return self.frm
        bits = (v >> 5) & 7 if csr_ == FCSR else v & 7
        if op == "w":
            return bits
        if op == "s":
            return self.frm | bits
        return self.frm & ~bits

    def gen_csr_ops(self) -> list[Insn]:
        rnd = self.rnd
        limit = 4 if self.opts.rmm else 3
        for _ in range(100):
            kind = rnd.choice(["csrrw", "csrrs", "csrrc", "csrrwi", "csrrsi", "csrrci"])
            csr_ = rnd.choice([FFLAGS, FRM, FCSR])
            rd = self.xrd()
            if kind.endswith("i"):
                v = rnd.randrange(32)
            else:
                v = rnd.choice([0, rnd.randrange(0, 256), rnd.randrange(-2048, 2048)])
            if (kind.endswith("i") or v == 0) and kind[4] in "sc" and rnd.random() < 0.5:
                v = 0
            new = self._new_frm(kind, csr_, v & M64 if not kind.endswith("i") else v)
            if new > limit:
                continue
            self.frm = new
            if kind.endswith("i"):
                return [csr(kind, rd, csr_, v)]
            if v == 0 and rnd.random() < 0.5:
                return [csr(kind, rd, csr_, 0)]                 # x0 source: a pure read for rs/rc
            t = self.xrd_nz()
            if rnd.random() < 0.3:
                rd = t                                          # rd aliases the source
            return [li12(t, v), csr(kind, rd, csr_, t)]
        return [csr("csrrs", self.xrd(), FCSR, 0)]

    # --- C -------------------------------------------------------------------------
    def gen_c_ops(self) -> list[Insn]:
        rnd = self.rnd
        p = rnd.random()
        rd = self.xrd_nz()
        if p < 0.25:
            kind = rnd.choice(["c.sub", "c.xor", "c.or", "c.and", "c.subw", "c.addw", "c.addw", "c.subw"])
            a = self.cx()
            b = a if rnd.random() < 0.2 else self.cx()
            return [c_arith(kind, a, b)]
        if p < 0.35:
            kind = rnd.choice(["c.srli", "c.srai", "c.andi"])
            imm = rnd.randrange(-32, 32) if kind == "c.andi" else rnd.randrange(1, 64)
            return [c_shift_andi(kind, self.cx(), imm)]
        if p < 0.5:
            kind = rnd.choice(["c.addi", "c.addiw", "c.li", "c.slli", "c.lui"])
            if kind == "c.slli":
                sh = rnd.randrange(1, 64)
                return [w16(c_ci(0, 2, rd, sh), f"c.slli x{rd}, {sh}")]
            if kind == "c.lui":
                imm = rnd.choice([i for i in range(-32, 32) if i])
                return [w16(c_ci(3, 1, rd, imm), f"c.lui x{rd}, {imm & 0xFFFFF:#x}")]
            imm = rnd.randrange(-32, 32)
            if kind == "c.addi" and imm == 0:
                imm = 1
            f3 = {"c.addi": 0, "c.addiw": 1, "c.li": 2}[kind]
            return [w16(c_ci(f3, 1, rd, imm), f"{kind} x{rd}, {imm}")]
        if p < 0.6:
            rs2 = rnd.randrange(1, 32)
            if rnd.random() < 0.5:
                return [w16((4 << 13) | (rd << 7) | (rs2 << 2) | 2, f"c.mv x{rd}, x{rs2}")]
            return [w16((4 << 13) | (1 << 12) | (rd << 7) | (rs2 << 2) | 2, f"c.add x{rd}, x{rs2}")]
        if p < 0.7:      # sp-relative loads and stores (x2 is the buffer)
            kind = rnd.choice(["c.lwsp", "c.ldsp", "c.fldsp", "c.swsp", "c.sdsp", "c.fsdsp"])
            align = 4 if "w" in kind[2:4] else 8
            off = rnd.randrange(0, BUF // align - 1) * align
            if kind.endswith("sp") and kind[2] == "l" or kind == "c.fldsp":
                r = self.freg() if kind == "c.fldsp" else rd
                return [c_sp_load(kind, r, off)]
            r = self.freg() if kind == "c.fsdsp" else rnd.randrange(0, 32)
            return [c_sp_store(kind, r, off)]
        if p < 0.8:      # register-based compressed loads/stores, base set from x2
            kind = rnd.choice(["c.lw", "c.ld", "c.fld", "c.sw", "c.sd", "c.fsd"])
            base = self.cx()
            r = self.cx()
            while r == base and kind in ("c.lw", "c.ld"):
                r = self.cx()
            align = 4 if kind in ("c.lw", "c.sw") else 8
            off = rnd.randrange(0, 16) * align
            start = rnd.randrange(0, BUF - off - 8)
            return [w32(i_type(0x13, 0, base, SP, start), f"addi x{base}, x2, {start}"), c_mem(kind, r, base, off)]
        if p < 0.85:
            r = self.cx()
            off = rnd.randrange(1, 64) * 4
            return [c_addi4spn(r, off)]
        if p < 0.93:      # compressed control transfers over a filler
            filler = self.single()
            flen = len(filler[0].code)
            q = rnd.random()
            if q < 0.3:
                return [c_j(2 + flen), *filler]
            if q < 0.8:
                return [c_bz(rnd.choice(["c.beqz", "c.bnez"]), self.cx(), 2 + flen), *filler]
            t = self.xrd_nz()
            if t == 1:
                t = 3
            jump = w16((4 << 13) | (1 << 12) | (t << 7) | 2, f"c.jalr x{t}") if rnd.random() < 0.5 else \
                w16((4 << 13) | (t << 7) | 2, f"c.jr x{t}")
            # auipc t, 0; addi t, t, n; c.jr/c.jalr t; filler: land right after the filler
            target = 4 + 4 + 2 + flen
            return [hint_target(4 + target), w32(u_type(0x17, t, 0), f"auipc x{t}, 0"),
                    w32(i_type(0x13, 0, t, t, target), f"addi x{t}, x{t}, {target}"), jump, *filler]
        # c.addi16sp: move the buffer pointer and back, with a use in between
        imm = rnd.choice([16, 32, 48, -16, -32, 64, -64])
        use = c_sp_load("c.ldsp", self.xrd_nz(), rnd.randrange(0, 8) * 8 + (-imm if imm < 0 else 0))
        return [c_addi16sp(imm), use, c_addi16sp(-imm)]


# --- programs --------------------------------------------------------------------

@dataclass
class Program:
    elf: bytes
    cases: list[Case]
    write_pc: int                 # address of the final write's ecall (Unicorn stops here)
    code: bytes
    data: bytes

    @property
    def out_size(self) -> int:
        return STRIDE * len(self.cases)


def case_code(i: int, n_cases: int, c: Case) -> list[Insn]:
    """Load the case's initial state, run its body, dump its state after its buffer."""
    region = DATA_BASE + i * STRIDE
    init = DATA_BASE + n_cases * STRIDE + i * INIT_SIZE
    code = la32(31, init)
    code += [fld(r, 31, 256 + 8 * r) for r in range(32)]
    code += [ld(1, 31, 512), csr("csrrw", 0, FCSR, 1)]
    code += [ld(r, 31, 8 * r) for r in range(1, 31) if r != SP]
    code += la32(SP, region)
    code.append(ld(31, 31, 8 * 31))
    code += c.body()
    code += [sd(r, SP, X_OFF + 8 * r) for r in range(32)]
    code += [fsd(r, SP, F_OFF + 8 * r) for r in range(32)]
    code += [csr("csrrs", 1, FCSR, 0), sd(1, SP, FCSR_OFF)]
    return code


def build_program(cases: list[Case]) -> Program:
    code: list[Insn] = []
    for i, c in enumerate(cases):
        code += case_code(i, len(cases), c)
    out = STRIDE * len(cases)
    code += la32(11, DATA_BASE)
    code += la32(12, out)
    code += [li12(10, 1), li12(17, 64)]
    pre = b"".join(i.code for i in code)
    code += [ECALL, li12(10, 0), li12(17, 93), ECALL]
    text = b"".join(i.code for i in code)
    data = bytearray(STRIDE * len(cases) + INIT_SIZE * len(cases))
    for i, c in enumerate(cases):
        data[i * STRIDE:i * STRIDE + BUF] = c.mem
        base = STRIDE * len(cases) + i * INIT_SIZE
        data[base:base + 256] = struct.pack("<32Q", *c.x)
        data[base + 256:base + 512] = struct.pack("<32Q", *c.f)
        data[base + 512:base + 520] = struct.pack("<Q", c.fcsr)
    elf, entry = make_elf(text, bytes(data))
    return Program(elf, cases, entry + len(pre), text, bytes(data))


def make_elf(code: bytes, data: bytes) -> tuple[bytes, int]:
    """A static riscv64 executable: R+X code (with the headers) and an RW data segment."""
    hdr = 64 + 2 * 56
    entry = CODE_BASE + hdr
    code_size = hdr + len(code)
    data_off = (code_size + 0xFFF) & ~0xFFF
    ehdr = struct.pack("<16sHHIQQQIHHHHHH", b"\x7fELF\x02\x01\x01" + b"\0" * 9,
                       2, 243, 1, entry, 64, 0, 0x5, 64, 56, 2, 64, 0, 0)
    ph_code = struct.pack("<IIQQQQQQ", 1, 5, 0, CODE_BASE, CODE_BASE, code_size, code_size, 0x1000)
    ph_data = struct.pack("<IIQQQQQQ", 1, 6, data_off, DATA_BASE, DATA_BASE, len(data), len(data), 0x1000)
    blob = ehdr + ph_code + ph_data + code
    blob += b"\0" * (data_off - len(blob)) + data
    return blob, entry


def generate(seed: int, n_cases: int, n_items: int, opts: GenOptions = GenOptions()) -> list[Case]:
    rnd = random.Random(seed)
    gen = CaseGen(rnd, opts)
    return [gen.case(n_items) for _ in range(n_cases)]


# --- results -----------------------------------------------------------------------

@dataclass(frozen=True)
class State:
    mem: bytes
    x: tuple[int, ...]
    f: tuple[int, ...]
    fcsr: int

    def diff(self, other: State) -> list[tuple[str, int, int]]:
        out = [(f"x{r}", a, b) for r, (a, b) in enumerate(zip(self.x, other.x)) if a != b]
        out += [(f"f{r}", a, b) for r, (a, b) in enumerate(zip(self.f, other.f)) if a != b]
        if self.fcsr != other.fcsr:
            out.append(("fcsr", self.fcsr, other.fcsr))
        for off in range(0, BUF, 8):
            a = int.from_bytes(self.mem[off:off + 8], "little")
            b = int.from_bytes(other.mem[off:off + 8], "little")
            if a != b:
                out.append((f"mem+{off}", a, b))
        return out


def parse_output(out: bytes, n_cases: int) -> list[State]:
    if len(out) != STRIDE * n_cases:
        raise ValueError(f"expected {STRIDE * n_cases} bytes of output, got {len(out)}")
    states = []
    for i in range(n_cases):
        r = out[i * STRIDE:(i + 1) * STRIDE]
        states.append(State(r[:BUF], struct.unpack("<32Q", r[X_OFF:X_OFF + 256]),
                            struct.unpack("<32Q", r[F_OFF:F_OFF + 256]),
                            struct.unpack("<Q", r[FCSR_OFF:FCSR_OFF + 8])[0]))
    return states


class EngineFailure(Exception):
    pass


def run_unicorn(prog: Program) -> bytes:
    """Run the program in Unicorn up to (not including) the final write's ecall."""
    from unicorn import UC_ARCH_RISCV, UC_MODE_RISCV64, Uc
    from unicorn.riscv_const import UC_RISCV_REG_MSTATUS

    mu = Uc(UC_ARCH_RISCV, UC_MODE_RISCV64)
    code_size = (len(prog.elf) + 0xFFF) & ~0xFFF
    mu.mem_map(CODE_BASE, code_size)
    mu.mem_write(CODE_BASE, prog.elf[:64 + 112 + len(prog.code)])
    mu.mem_map(DATA_BASE, (len(prog.data) + 0xFFF) & ~0xFFF)
    mu.mem_write(DATA_BASE, prog.data)
    # The FPU starts off (mstatus.FS = 0): mark it dirty so F/D instructions run.
    mu.reg_write(UC_RISCV_REG_MSTATUS, mu.reg_read(UC_RISCV_REG_MSTATUS) | (3 << 13))
    try:
        mu.emu_start(CODE_BASE + 64 + 112, prog.write_pc)
    except Exception as e:     # unicorn.UcError
        raise EngineFailure(f"unicorn: {e}") from e
    return bytes(mu.mem_read(DATA_BASE, prog.out_size))


def unicorn_available() -> bool:
    try:
        import unicorn  # noqa: F401
    except ImportError:
        return False
    return True


def qemu_path() -> str | None:
    return shutil.which("qemu-riscv64")


def run_subprocess(cmd: list[str], timeout: float = 300, cwd: Path | None = None) -> bytes:
    p = subprocess.run(cmd, capture_output=True, timeout=timeout, env=dict(os.environ), cwd=cwd, check=False)
    if p.returncode != 0:
        raise EngineFailure(f"{cmd[0]} exited {p.returncode}: {p.stderr.decode(errors='replace')[-800:]}")
    return p.stdout


_EXACT_CVT = re.compile(r"fcvt\.d\.(w|wu|s) ")
_ZICOND_TEXT = re.compile(r"(czero\.(?:eqz|nez)) x(\d+), x(\d+), x(\d+)$")


def assemble_check(insns: list[Insn], workdir: Path | None = None) -> list[tuple[Insn, bytes]]:
    """Assemble every instruction's text with GNU as; return the mismatches."""
    asm = shutil.which("riscv64-linux-gnu-as")
    objcopy = shutil.which("riscv64-linux-gnu-objcopy")
    if not asm or not objcopy:
        raise RuntimeError("riscv64-linux-gnu-as/objcopy not installed")
    with tempfile.TemporaryDirectory(dir=workdir) as d:
        src = Path(d) / "a.s"
        lines = []
        for i in insns:
            text = i.text
            if ".+" in text:             # pc-relative: as wants a label-free form
                head, _, off = text.rpartition(".+")
                text = f"{head}. + {off}"
            if _EXACT_CVT.match(text):
                text = text.rpartition(",")[0]
            zc = _ZICOND_TEXT.match(text)
            if zc:                       # binutils 2.40 has no Zicond: the fields, from the spec
                op, f3, f7 = ZICOND_R[zc.group(1)]
                text = f".insn r {op:#x}, {f3}, {f7:#x}, x{zc.group(2)}, x{zc.group(3)}, x{zc.group(4)}"
            lines.append(".option rvc" if i.compressed else ".option norvc")
            lines.append(text)
        src.write_text("\n".join(lines) + "\n")
        obj = Path(d) / "a.o"
        p = subprocess.run([asm, "-march=rv64gc_zba_zbb_zbs", "-o", str(obj), str(src)], capture_output=True, text=True,
                           check=False)
        if p.returncode != 0:
            raise RuntimeError(p.stderr[:4000])
        binf = Path(d) / "a.bin"
        subprocess.run([objcopy, "-O", "binary", "-j", ".text", str(obj), str(binf)], check=True)
        got = binf.read_bytes()
    bad, pos = [], 0
    for i in insns:
        chunk = got[pos:pos + len(i.code)]
        code = i.code
        if _EXACT_CVT.match(i.text):      # as takes no rm here and encodes rm = 0
            code = struct.pack("<I", struct.unpack("<I", code)[0] & ~(7 << 12))
        if chunk != code:
            bad.append((i, chunk))
        pos += len(i.code)
    return bad
