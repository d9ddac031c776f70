"""One regression test per known translator bug class, on every engine.

All classes are batched into ONE guest program (cases of ``tests/rv64gen.py``:
each case loads its registers and fcsr from a table, runs a few instructions,
dumps x0..x31, f0..f31, fcsr and its 256-byte buffer), built into one AOT
image and run once per engine: the AOT image, the JIT and the interpreter,
plus qemu-riscv64 when installed (which validates the expectations below).

Expected values are architectural, written in this file: integer results are
computed here from the ISA definition (sign extension of W results, the
division table, byte-wise little-endian memory), FP results and flags are
literals worked out by hand from IEEE 754 / the RISC-V F and D chapters (and
qemu-riscv64 7.2 agrees with every one of them: the ``qemu`` parameter).
None comes from the code under test.
"""

from __future__ import annotations

import json

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import rv64gen as g
from conftest import aotrun_cmd, run_tool
from rv64gen import (
    BOX,
    FCSR,
    FFLAGS,
    FRM,
    SP,
    Insn,
    c_arith,
    csr,
    i_type,
    opfp,
    r4_type,
    r_type,
    s_type,
    w16,
    w32,
)

M64 = (1 << 64) - 1
NX, UF, OF, DZ, NV = 1, 2, 4, 8, 16
RNE, RTZ, RDN, RUP, RMM, DYN = 0, 1, 2, 3, 4, 7
MODES = (RNE, RTZ, RDN, RUP, RMM)


def d(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def s(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


def sext(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return (v - (1 << bits) if v >> (bits - 1) else v) & M64


def signed(v: int, bits: int = 64) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def tdiv(a: int, b: int) -> int:
    """Integer division truncating toward zero (exact, unlike int(a / b))."""
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


D_NAN, S_NAN = 0x7FF8000000000000, BOX | 0x7FC00000
D_SNAN, S_SNAN = 0x7FF0000000000001, BOX | 0x7F800001
D_MAX, D_INF = 0x7FEFFFFFFFFFFFFF, 0x7FF0000000000000


# --- a tiny program builder with expectations ----------------------------------------

@dataclass
class Check:
    cls: str
    case: int
    loc: str            # "x5", "f3", "fcsr", "mem+16" (8-byte word)
    value: int
    label: str


@dataclass
class CaseBuilder:
    prog: Builder
    cls: str
    index: int
    x: list[int] = field(default_factory=lambda: [0] * 32)
    f: list[int] = field(default_factory=lambda: [0] * 32)
    fcsr: int = 0
    mem: bytearray = field(default_factory=lambda: bytearray(range(256)))
    items: list[list[Insn]] = field(default_factory=list)
    free_x: list[int] = field(default_factory=lambda: [r for r in range(31, 0, -1) if r != SP])
    free_f: list[int] = field(default_factory=lambda: list(range(31, -1, -1)))
    src_x: dict[int, int] = field(default_factory=dict)
    src_f: dict[int, int] = field(default_factory=dict)
    frm: int = 0                # frm after the items so far

    def xsrc(self, v: int) -> int:
        v &= M64
        if v not in self.src_x:
            r = self.free_x.pop()
            self.x[r] = v
            self.src_x[v] = r
        return self.src_x[v]

    def fsrc(self, v: int) -> int:
        if v not in self.src_f:
            r = self.free_f.pop()
            self.f[r] = v
            self.src_f[v] = r
        return self.src_f[v]

    def xres(self) -> int:
        return self.free_x.pop()

    def fres(self) -> int:
        return self.free_f.pop()

    def emit(self, *insns: Insn) -> None:
        self.items.append(list(insns))

    def expect(self, loc: str, value: int, label: str) -> None:
        self.prog.checks.append(Check(self.cls, self.index, loc, value & M64, label))

    def room(self, x: int = 0, f: int = 0) -> bool:
        return len(self.free_x) >= x and len(self.free_f) >= f


class Builder:
    def __init__(self) -> None:
        self.cases: list[CaseBuilder] = []
        self.checks: list[Check] = []

    def case(self, cls: str) -> CaseBuilder:
        c = CaseBuilder(self, cls, len(self.cases))
        self.cases.append(c)
        return c

    def program(self) -> g.Program:
        return g.build_program([g.Case(c.x, c.f, c.fcsr, bytes(c.mem), c.items) for c in self.cases])


def rop(name: str, rd: int, rs1: int, rs2: int) -> Insn:
    op, f3, f7 = g.INT_R[name]
    return w32(r_type(op, f3, f7, rd, rs1, rs2), f"{name} x{rd}, x{rs1}, x{rs2}")


# --- the classes ------------------------------------------------------------------------

def w_ops(b: Builder) -> None:
    """Every W operation sign-extends its 32-bit result (C.ADDW/C.SUBW/C.ADDIW too)."""
    ops: dict[str, Callable[[int, int], int]] = {
        "addw": lambda a, c: a + c, "subw": lambda a, c: a - c,
        "sllw": lambda a, c: a << (c & 31), "srlw": lambda a, c: (a & 0xFFFFFFFF) >> (c & 31),
        "sraw": lambda a, c: signed(a, 32) >> (c & 31), "mulw": lambda a, c: a * c,
        "divw": lambda a, c: tdiv(signed(a, 32), signed(c, 32)),
        "divuw": lambda a, c: (a & 0xFFFFFFFF) // (c & 0xFFFFFFFF),
        "remw": lambda a, c: signed(a, 32) - signed(c, 32) * tdiv(signed(a, 32), signed(c, 32)),
        "remuw": lambda a, c: (a & 0xFFFFFFFF) % (c & 0xFFFFFFFF),
    }
    pairs = [(0x000000007FFFFFFF, 1), (0x1234567880000000, 0xFFFFFFFF00000003), (0xFFFFFFFF7FFFFFFF, 0x10000001F),
             (0x00000000C0000000, 0x0000000100000002)]
    c = b.case("w-ops")
    for name, fn in ops.items():
        for a, v in pairs:
            if not c.room(x=3):
                c = b.case("w-ops")
            rd = c.xres()
            c.emit(rop(name, rd, c.xsrc(a), c.xsrc(v)))
            c.expect(f"x{rd}", sext(fn(a, v), 32), f"{name} {a:#x}, {v:#x}")
    c = b.case("w-ops")
    a = c.xsrc(0x7FFFFFFF)
    for name, f3, f7, sh in (("addiw", 0, None, 1), ("slliw", 1, 0, 1), ("srliw", 5, 0, 0), ("sraiw", 5, 0x20, 0)):
        rd = c.xres()
        if f7 is None:
            c.emit(w32(i_type(0x1B, f3, rd, a, sh), f"{name} x{rd}, x{a}, {sh}"))
        else:
            c.emit(w32(r_type(0x1B, f3, f7, rd, a, sh), f"{name} x{rd}, x{a}, {sh}"))
        c.expect(f"x{rd}", {"addiw": 0xFFFFFFFF80000000, "slliw": 0xFFFFFFFFFFFFFFFE,
                            "srliw": 0x7FFFFFFF, "sraiw": 0x7FFFFFFF}[name], name)
    # srliw/sraiw of a value whose bit 31 is set (upper bits garbage)
    hi = c.xsrc(0x12345678F0000000)
    for name, f7, sh, want in (("srliw", 0, 4, 0x0F000000), ("sraiw", 0x20, 4, sext(0xFF000000, 32)),
                               ("srliw", 0, 0, sext(0xF0000000, 32))):
        rd = c.xres()
        c.emit(w32(r_type(0x1B, 5, f7, rd, hi, sh), f"{name} x{rd}, x{hi}, {sh}"))
        c.expect(f"x{rd}", want, f"{name} {sh} of 0x12345678f0000000")
    # compressed: c.addw / c.subw / c.addiw work in place on x8..x15
    c = b.case("w-ops")
    for k, (kind, a, v, want) in enumerate((
            ("c.addw", 0x000000007FFFFFFF, 1, 0xFFFFFFFF80000000),
            ("c.subw", 0x0000000080000000, 1, 0x7FFFFFFF),
            ("c.addw", 0xAAAAAAAA00000001, 0x55555555FFFFFFFE, M64),
            ("c.subw", 0, 1, M64))):
        rd, rs = 8 + 2 * k, 9 + 2 * k
        c.x[rd], c.x[rs] = a, v
        c.free_x.remove(rd)
        c.free_x.remove(rs)
        c.emit(c_arith(kind, rd, rs))
        c.expect(f"x{rd}", want, f"{kind} {a:#x}, {v:#x}")
    r = c.xres()
    c.x[r] = 0x7FFFFFFF
    c.emit(w16(g.c_ci(1, 1, r, 1), f"c.addiw x{r}, 1"))
    c.expect(f"x{r}", 0xFFFFFFFF80000000, "c.addiw 0x7fffffff, 1")
    # loads: lw sign-extends, lwu zero-extends; fcvt.wu.d and fmv.x.w sign-extend
    c.mem[0:4] = b"\x00\x00\x00\x80"
    rd1, rd2, rd3, rd4 = c.xres(), c.xres(), c.xres(), c.xres()
    c.emit(w32(i_type(0x03, 2, rd1, SP, 0), f"lw x{rd1}, 0(x2)"))
    c.emit(w32(i_type(0x03, 6, rd2, SP, 0), f"lwu x{rd2}, 0(x2)"))
    c.expect(f"x{rd1}", 0xFFFFFFFF80000000, "lw 0x80000000")
    c.expect(f"x{rd2}", 0x80000000, "lwu 0x80000000")
    fs = c.fsrc(d(3e9))
    c.emit(w32(opfp(0x18, "d", RTZ, rd3, fs, 1), f"fcvt.wu.d x{rd3}, f{fs}, rtz"))
    c.expect(f"x{rd3}", sext(3000000000, 32), "fcvt.wu.d 3e9 (sign-extended)")
    fw = c.fsrc(BOX | 0x80000001)
    c.emit(w32(opfp(0x1C, "s", 0, rd4, fw, 0), f"fmv.x.w x{rd4}, f{fw}"))
    c.expect(f"x{rd4}", 0xFFFFFFFF80000001, "fmv.x.w sign-extends")


def aliasing(b: Builder) -> None:
    """rd == rs1, rd == rs2 and rd == rs1 == rs2: sources are read before rd is written."""
    defs: dict[str, Callable[[int, int], int]] = {
        "add": lambda a, c: a + c, "sub": lambda a, c: a - c, "sll": lambda a, c: a << (c & 63),
        "srl": lambda a, c: a >> (c & 63), "sra": lambda a, c: signed(a) >> (c & 63),
        "slt": lambda a, c: int(signed(a) < signed(c)), "sltu": lambda a, c: int(a < c),
        "xor": lambda a, c: a ^ c, "mul": lambda a, c: a * c,
        "mulh": lambda a, c: (signed(a) * signed(c)) >> 64, "mulhu": lambda a, c: (a * c) >> 64,
        "mulhsu": lambda a, c: (signed(a) * c) >> 64,
        "div": lambda a, c: tdiv(signed(a), signed(c)), "remu": lambda a, c: a % c,
        "addw": lambda a, c: sext(a + c, 32), "subw": lambda a, c: sext(a - c, 32),
    }
    a, v = 0xFEDCBA9876543211, 0x0000000700000005
    c = b.case("aliasing")
    for name, fn in defs.items():
        for mode in ("rd=rs1", "rd=rs2", "rd=rs1=rs2"):
            if not c.room(x=1):
                c = b.case("aliasing")
            r = c.xres()
            if mode == "rd=rs1":
                c.x[r] = a
                other = c.xsrc(v)
                c.emit(rop(name, r, r, other))
                want = fn(a, v)
            elif mode == "rd=rs2":
                c.x[r] = v
                other = c.xsrc(a)
                c.emit(rop(name, r, other, r))
                want = fn(a, v)
            else:
                c.x[r] = a
                c.emit(rop(name, r, r, r))
                want = fn(a, a)
            c.expect(f"x{r}", want & M64, f"{name} {mode}")
    # jalr rd == rs1: the target uses the old rs1; rd = the link (checked against auipc)
    c = b.case("aliasing")
    t, u, r = c.xres(), c.xres(), c.xres()
    c.emit(g.hint_target(16), w32(g.u_type(0x17, t, 0), f"auipc x{t}, 0"),
           w32(i_type(0x67, 0, t, t, 12), f"jalr x{t}, 12(x{t})"), g.li12(t, 1))
    c.emit(w32(g.u_type(0x17, u, 0), f"auipc x{u}, 0"))
    c.emit(w32(i_type(0x13, 0, u, u, -4), f"addi x{u}, x{u}, -4"), rop("sub", r, t, u))
    c.expect(f"x{r}", 0, "jalr rd=rs1: jumps via the old rs1, links to the next pc")
    # FP: fadd.d rd=rs1=rs2, fmadd.d rd=rs3, fsgnjn.d rd=rs1=rs2 (fneg)
    f1 = c.fres()
    c.f[f1] = d(1.5)
    c.emit(w32(opfp(0x00, "d", RNE, f1, f1, f1), f"fadd.d f{f1}, f{f1}, f{f1}"))
    c.expect(f"f{f1}", d(3.0), "fadd.d rd=rs1=rs2")
    f2, fb = c.fres(), c.fsrc(d(2.0))
    c.f[f2] = d(0.25)
    c.emit(w32(r4_type(0x43, 1, RNE, f2, fb, fb, f2), f"fmadd.d f{f2}, f{fb}, f{fb}, f{f2}"))
    c.expect(f"f{f2}", d(4.25), "fmadd.d rd=rs3")
    f3 = c.fres()
    c.f[f3] = d(2.5)
    c.emit(w32(opfp(0x04, "d", 1, f3, f3, f3), f"fsgnjn.d f{f3}, f{f3}, f{f3}"))
    c.expect(f"f{f3}", d(-2.5), "fsgnjn.d rd=rs1=rs2 (fneg)")
    # amoswap rd == rs2: rd gets the old memory value, memory the old rs2
    r = c.xres()
    base = c.xres()
    c.x[r] = 0x1111111122222222
    c.mem[64:72] = struct.pack("<Q", 0x3333333344444444)
    c.emit(w32(i_type(0x13, 0, base, SP, 64), f"addi x{base}, x2, 64"), g.amo("amoswap", "d", r, base, r, 0, 0))
    c.expect(f"x{r}", 0x3333333344444444, "amoswap.d rd=rs2: rd = old memory")
    c.expect("mem+64", 0x1111111122222222, "amoswap.d rd=rs2: memory = old rs2")


def division(b: Builder) -> None:
    """Division by zero and INT_MIN / -1 for every div/rem, 64- and 32-bit."""
    MIN64, MIN32 = 1 << 63, 0xFFFFFFFF80000000
    cases = [  # name, a, b, expected
        ("div", 7, 0, M64), ("divu", 7, 0, M64), ("rem", 7, 0, 7), ("remu", 7, 0, 7),
        ("div", MIN64, M64, MIN64), ("rem", MIN64, M64, 0), ("divu", MIN64, M64, 0), ("remu", MIN64, M64, MIN64),
        ("div", (-7) & M64, 2, (-3) & M64), ("rem", (-7) & M64, 2, M64),
        ("divw", 7, 0, M64), ("divuw", 7, 0, M64), ("remw", 0xFFFFFFFF00000007, 0, 7),
        ("remuw", 0x80000007, 0xFFFFFFFF00000000, sext(0x80000007, 32)),
        ("divw", 0x80000000, 0xFFFFFFFF, MIN32), ("remw", 0x80000000, M64, 0),
        ("divuw", 0x80000000, 0xFFFFFFFF, 0), ("remuw", 0x80000000, 0xFFFFFFFF, MIN32),
        ("divw", 0x12345678FFFFFFF9, 2, (-3) & M64), ("remw", 0xFFFFFFF9, 0x0000000500000002, M64),
    ]
    c = b.case("division")
    for name, a, v, want in cases:
        if not c.room(x=3):
            c = b.case("division")
        rd = c.xres()
        c.emit(rop(name, rd, c.xsrc(a), c.xsrc(v)))
        c.expect(f"x{rd}", want, f"{name} {a:#x}, {v:#x}")


def misaligned(b: Builder) -> None:
    """Loads and stores of every width at every misaligned offset (byte-wise LE model)."""
    c = b.case("misaligned")
    mem = bytearray(c.mem)
    loads = {"lb": (0, 1, True), "lh": (1, 2, True), "lw": (2, 4, True), "ld": (3, 8, False),
             "lbu": (4, 1, False), "lhu": (5, 2, False), "lwu": (6, 4, False)}
    for k, (name, (f3, n, sx)) in enumerate(loads.items()):
        for off in (1, 3, 5, 7) if n > 1 else (3,):
            if not c.room(x=1):
                break
            off = off + 8 * k + 120
            rd = c.xres()
            c.emit(w32(i_type(0x03, f3, rd, SP, off), f"{name} x{rd}, {off}(x2)"))
            raw = int.from_bytes(mem[off:off + n], "little")
            c.expect(f"x{rd}", sext(raw, 8 * n) if sx or n == 8 else raw, f"{name} at +{off}")
    # stores: each width at odd offsets; then the whole buffer is compared
    c = b.case("misaligned")
    mem = bytearray(c.mem)
    val = 0x8877665544332211
    r = c.xsrc(val)
    for k, (name, f3, n) in enumerate((("sh", 1, 2), ("sw", 2, 4), ("sd", 3, 8), ("sw", 2, 4), ("sd", 3, 8))):
        off = 1 + 17 * k + (k % 3)
        c.emit(w32(s_type(0x23, f3, SP, r, off), f"{name} x{r}, {off}(x2)"))
        mem[off:off + n] = val.to_bytes(8, "little")[:n]
    # FP loads and stores at misaligned addresses: fld/fsd, flw (boxed)/fsw
    fdv = d(-1.25)
    fr = c.fsrc(fdv)
    c.emit(w32(s_type(0x27, 3, SP, fr, 101), f"fsd f{fr}, 101(x2)"))
    mem[101:109] = fdv.to_bytes(8, "little")
    fl = c.fres()
    c.emit(w32(i_type(0x07, 3, fl, SP, 101), f"fld f{fl}, 101(x2)"))
    c.expect(f"f{fl}", fdv, "fld at +101")
    fw = c.fres()
    c.emit(w32(i_type(0x07, 2, fw, SP, 203), f"flw f{fw}, 203(x2)"))
    c.expect(f"f{fw}", BOX | int.from_bytes(mem[203:207], "little"), "flw at +203 (NaN-boxed)")
    fsrc = c.fsrc(0x0123456789ABCDEF)
    c.emit(w32(s_type(0x27, 2, SP, fsrc, 231), f"fsw f{fsrc}, 231(x2)"))
    mem[231:235] = (0x89ABCDEF).to_bytes(4, "little")
    for off in range(0, 256, 8):
        c.expect(f"mem+{off}", int.from_bytes(mem[off:off + 8], "little"), f"buffer word +{off}")


@dataclass(frozen=True)
class FpCase:
    label: str
    op: str                 # assembler-like name, e.g. fadd.d
    srcs: tuple[int, ...]   # raw register values (x for fcvt from int)
    results: dict[int, tuple[int, int]]   # rm -> (result raw, fflags)
    rmm_tie: bool = False   # an exact tie: RMM and RNE differ (also checked under DYN)


def _fp_table() -> list[FpCase]:
    one_p = d(1 + 2.0 ** -52)
    third_rne, third_up = 0x3FD5555555555555, 0x3FD5555555555556
    sqrt2_dn, sqrt2_up = 0x3FF6A09E667F3BCC, 0x3FF6A09E667F3BCD
    neg = 1 << 63
    t = [
        FpCase("1 + 3*2^-54 (above half an ulp)", "fadd.d", (d(1.0), d(3 * 2.0 ** -54)),
               {RNE: (one_p, NX), RTZ: (d(1.0), NX), RDN: (d(1.0), NX), RUP: (one_p, NX), RMM: (one_p, NX)}),
        FpCase("-1 - 3*2^-54", "fadd.d", (d(-1.0), d(-3 * 2.0 ** -54)),
               {RNE: (one_p | neg, NX), RTZ: (d(-1.0), NX), RDN: (one_p | neg, NX), RUP: (d(-1.0), NX),
                RMM: (one_p | neg, NX)}),
        FpCase("1 + 2^-53 (a tie: even)", "fadd.d", (d(1.0), d(2.0 ** -53)),
               {RNE: (d(1.0), NX), RTZ: (d(1.0), NX), RDN: (d(1.0), NX), RUP: (one_p, NX)}),
        FpCase("1 - 1 (exact zero: +0, -0 under RDN)", "fsub.d", (d(1.0), d(1.0)),
               {RNE: (0, 0), RTZ: (0, 0), RDN: (neg, 0), RUP: (0, 0), RMM: (0, 0)}),
        FpCase("1 / 3", "fdiv.d", (d(1.0), d(3.0)),
               {RNE: (third_rne, NX), RTZ: (third_rne, NX), RDN: (third_rne, NX), RUP: (third_up, NX),
                RMM: (third_rne, NX)}),
        FpCase("1 / 0", "fdiv.d", (d(1.0), 0), {m: (D_INF, DZ) for m in MODES}),
        FpCase("0 / 0", "fdiv.d", (0, 0), {m: (D_NAN, NV) for m in MODES}),
        FpCase("max * 2 (overflow)", "fmul.d", (D_MAX, d(2.0)),
               {RNE: (D_INF, OF | NX), RTZ: (D_MAX, OF | NX), RDN: (D_MAX, OF | NX), RUP: (D_INF, OF | NX),
                RMM: (D_INF, OF | NX)}),
        FpCase("-max * 2 (overflow)", "fmul.d", (D_MAX | neg, d(2.0)),
               {RNE: (D_INF | neg, OF | NX), RTZ: (D_MAX | neg, OF | NX), RDN: (D_INF | neg, OF | NX),
                RUP: (D_MAX | neg, OF | NX), RMM: (D_INF | neg, OF | NX)}),
        FpCase("min normal * 0.5 (exact subnormal: no UF)", "fmul.d", (0x0010000000000000, d(0.5)),
               {m: (0x0008000000000000, 0) for m in MODES}),
        FpCase("3 * 2^-1074 * 0.5 (inexact subnormal: UF)", "fmul.d", (3, d(0.5)),
               {RNE: (2, UF | NX), RTZ: (1, UF | NX), RDN: (1, UF | NX), RUP: (2, UF | NX)}),
        FpCase("(1+2^-52) * (2^-1022 - 2^-1074): tiny only before rounding", "fmul.d",
               (d(1 + 2.0 ** -52), 0x000FFFFFFFFFFFFF),
               {RNE: (0x0010000000000000, NX), RTZ: (0x000FFFFFFFFFFFFF, UF | NX),
                RDN: (0x000FFFFFFFFFFFFF, UF | NX), RUP: (0x0010000000000000, NX), RMM: (0x0010000000000000, NX)}),
        FpCase("single: (1+2^-23) * (2^-126 - 2^-149): tiny only before rounding", "fmul.s",
               (BOX | s(1 + 2.0 ** -23), BOX | 0x007FFFFF),
               {RNE: (BOX | 0x00800000, NX), RTZ: (BOX | 0x007FFFFF, UF | NX),
                RDN: (BOX | 0x007FFFFF, UF | NX), RUP: (BOX | 0x00800000, NX), RMM: (BOX | 0x00800000, NX)}),
        FpCase("sqrt 2", "fsqrt.d", (d(2.0),),
               {RNE: (sqrt2_up, NX), RTZ: (sqrt2_dn, NX), RDN: (sqrt2_dn, NX), RUP: (sqrt2_up, NX),
                RMM: (sqrt2_up, NX)}),
        FpCase("sqrt -1", "fsqrt.d", (d(-1.0),), {m: (D_NAN, NV) for m in MODES}),
        # A quiet NaN in raises nothing (here in regions with a CSR access;
        # class nan-chains has the region without one, where LLVM made it
        # raise NV)
        FpCase("sqrt of a negative qNaN with payload", "fsqrt.d", (0xFFFFFFFFFFA00000,),
               {m: (D_NAN, 0) for m in MODES}),
        FpCase("sqrt of qNaN", "fsqrt.d", (D_NAN,), {m: (D_NAN, 0) for m in MODES}),
        FpCase("(1+2^-52)^2 + 0 (fused)", "fmadd.d", (one_p, one_p, 0),
               {RNE: (d(1 + 2.0 ** -51), NX), RTZ: (d(1 + 2.0 ** -51), NX), RDN: (d(1 + 2.0 ** -51), NX),
                RUP: (d(1 + 2.0 ** -51 + 2.0 ** -52), NX), RMM: (d(1 + 2.0 ** -51), NX)}),
        FpCase("(1+2^-52)(1-2^-52) - 1 (fused: exact -2^-104)", "fmsub.d", (one_p, d(1 - 2.0 ** -52), d(1.0)),
               {m: (d(-(2.0 ** -104)), 0) for m in MODES}),
        FpCase("inf * 0 + qNaN (NV)", "fmadd.d", (D_INF, 0, D_NAN), {m: (D_NAN, NV) for m in MODES}),
        FpCase("1 + 3*2^-25 (single)", "fadd.s", (BOX | s(1.0), BOX | s(3 * 2.0 ** -25)),
               {RNE: (BOX | 0x3F800001, NX), RTZ: (BOX | 0x3F800000, NX), RDN: (BOX | 0x3F800000, NX),
                RUP: (BOX | 0x3F800001, NX), RMM: (BOX | 0x3F800001, NX)}),
        FpCase("fcvt.s.d 1+2^-24+2^-30", "fcvt.s.d", (d(1 + 2.0 ** -24 + 2.0 ** -30),),
               {RNE: (BOX | 0x3F800001, NX), RTZ: (BOX | 0x3F800000, NX), RDN: (BOX | 0x3F800000, NX),
                RUP: (BOX | 0x3F800001, NX), RMM: (BOX | 0x3F800001, NX)}),
        FpCase("fcvt.s.d 1e39 (overflow)", "fcvt.s.d", (d(1e39),),
               {RNE: (BOX | 0x7F800000, OF | NX), RTZ: (BOX | 0x7F7FFFFF, OF | NX),
                RDN: (BOX | 0x7F7FFFFF, OF | NX), RUP: (BOX | 0x7F800000, OF | NX), RMM: (BOX | 0x7F800000, OF | NX)}),
        FpCase("fcvt.s.d sNaN", "fcvt.s.d", (D_SNAN,), {m: (S_NAN, NV) for m in MODES}),
        FpCase("fcvt.w.d 2.5", "fcvt.w.d", (d(2.5),),
               {RNE: (2, NX), RTZ: (2, NX), RDN: (2, NX), RUP: (3, NX), RMM: (3, NX)}, rmm_tie=True),
        FpCase("fcvt.w.d -2.5", "fcvt.w.d", (d(-2.5),),
               {RNE: ((-2) & M64, NX), RTZ: ((-2) & M64, NX), RDN: ((-3) & M64, NX), RUP: ((-2) & M64, NX),
                RMM: ((-3) & M64, NX)}, rmm_tie=True),
        FpCase("fcvt.w.d 2^31 (out of range)", "fcvt.w.d", (d(2.0 ** 31),), {m: (0x7FFFFFFF, NV) for m in MODES}),
        FpCase("fcvt.w.d NaN", "fcvt.w.d", (D_NAN,), {m: (0x7FFFFFFF, NV) for m in MODES}),
        FpCase("fcvt.wu.d -0.5 (rounds to 0 or -1)", "fcvt.wu.d", (d(-0.5),),
               {RNE: (0, NX), RTZ: (0, NX), RDN: (0, NV), RUP: (0, NX), RMM: (0, NV)}, rmm_tie=True),
        FpCase("fcvt.wu.d NaN (sign-extended max)", "fcvt.wu.d", (D_NAN,), {m: (M64, NV) for m in MODES}),
        FpCase("fcvt.l.d 2^63", "fcvt.l.d", (d(2.0 ** 63),), {m: ((1 << 63) - 1, NV) for m in MODES}),
        FpCase("fcvt.l.d -inf", "fcvt.l.d", (D_INF | neg,), {m: (1 << 63, NV) for m in MODES}),
        FpCase("fcvt.lu.d -inf", "fcvt.lu.d", (D_INF | neg,), {m: (0, NV) for m in MODES}),
        FpCase("fcvt.lu.d NaN", "fcvt.lu.d", (D_NAN,), {m: (M64, NV) for m in MODES}),
        FpCase("fcvt.lu.d 2^64-2048", "fcvt.lu.d", (d(2.0 ** 64 - 2048),), {m: (M64 - 2047, 0) for m in MODES}),
        FpCase("fcvt.w.s 1.5", "fcvt.w.s", (BOX | s(1.5),),
               {RNE: (2, NX), RTZ: (1, NX), RDN: (1, NX), RUP: (2, NX), RMM: (2, NX)}),
        FpCase("fcvt.d.l 2^54+1", "fcvt.d.l", (2 ** 54 + 1,),
               {RNE: (d(2.0 ** 54), NX), RTZ: (d(2.0 ** 54), NX), RDN: (d(2.0 ** 54), NX),
                RUP: (d(2.0 ** 54 + 4), NX), RMM: (d(2.0 ** 54), NX)}),
        FpCase("fcvt.d.lu 2^64-1", "fcvt.d.lu", (M64,),
               {RNE: (d(2.0 ** 64), NX), RTZ: (d(2.0 ** 64 - 2048), NX), RDN: (d(2.0 ** 64 - 2048), NX),
                RUP: (d(2.0 ** 64), NX), RMM: (d(2.0 ** 64), NX)}),
        FpCase("fcvt.s.w 2^25+1", "fcvt.s.w", (2 ** 25 + 1,),
               {RNE: (BOX | s(2.0 ** 25), NX), RTZ: (BOX | s(2.0 ** 25), NX), RDN: (BOX | s(2.0 ** 25), NX),
                RUP: (BOX | s(2.0 ** 25 + 4), NX), RMM: (BOX | s(2.0 ** 25), NX)}),
        FpCase("fcvt.s.lu 2^64-1", "fcvt.s.lu", (M64,),
               {RNE: (BOX | 0x5F800000, NX), RTZ: (BOX | 0x5F7FFFFF, NX), RDN: (BOX | 0x5F7FFFFF, NX),
                RUP: (BOX | 0x5F800000, NX), RMM: (BOX | 0x5F800000, NX)}),
        FpCase("fcvt.s.wu 0xffffffff", "fcvt.s.wu", (0xFFFFFFFF,),
               {RNE: (BOX | 0x4F800000, NX), RTZ: (BOX | 0x4F7FFFFF, NX), RDN: (BOX | 0x4F7FFFFF, NX),
                RUP: (BOX | 0x4F800000, NX), RMM: (BOX | 0x4F800000, NX)}),
        FpCase("fadd.d sNaN + 1", "fadd.d", (D_SNAN, d(1.0)), {m: (D_NAN, NV) for m in MODES}),
        FpCase("fcvt.d.lu 0 (+0 in every mode)", "fcvt.d.lu", (0,), {m: (0, 0) for m in MODES}),
        FpCase("fcvt.s.lu 0 (+0 in every mode)", "fcvt.s.lu", (0,), {m: (BOX, 0) for m in MODES}),
        FpCase("fcvt.d.l 0 (+0 in every mode)", "fcvt.d.l", (0,), {m: (0, 0) for m in MODES}),
    ]
    return t


# operations with no rounding mode: (label, op, srcs, result, flags)
FP_NO_RM = [
    ("feq.d qNaN (quiet: no NV)", "feq.d", (D_NAN, D_NAN), 0, 0),
    ("feq.d sNaN (NV)", "feq.d", (D_SNAN, d(1.0)), 0, NV),
    ("flt.d qNaN (signalling: NV)", "flt.d", (D_NAN, d(1.0)), 0, NV),
    ("fle.d -0 <= +0", "fle.d", (1 << 63, 0), 1, 0),
    ("fmin.d sNaN, 1 (the number, NV)", "fmin.d", (D_SNAN, d(1.0)), d(1.0), NV),
    ("fmax.d qNaN, qNaN (canonical)", "fmax.d", (0xFFF8000000000123, D_NAN), D_NAN, 0),
    ("fmin.d -0, +0", "fmin.d", (0, 1 << 63), 1 << 63, 0),
    ("fmax.s -0, +0", "fmax.s", (BOX | 0x80000000, BOX), BOX, 0),
    ("fclass.d sNaN", "fclass.d", (D_SNAN,), 1 << 8, 0),
    ("fclass.d -subnormal", "fclass.d", (0x8000000000000001,), 1 << 2, 0),
    ("fsgnjx.d NaN keeps payload", "fsgnjx.d", (0x7FF8000000000123, 1 << 63), 0xFFF8000000000123, 0),
]

# NaN-boxing: unboxed singles read as the canonical NaN (label, op, srcs, result, flags)
UNBOXED = 0x000000003F800000       # 1.0f without the box
NAN_BOXING = [
    ("fadd.s unboxed + 1", "fadd.s", (UNBOXED, BOX | s(1.0)), S_NAN, 0),
    ("fmul.s boxed 2 * 3", "fmul.s", (BOX | s(2.0), BOX | s(3.0)), BOX | s(6.0), 0),
    ("fsgnj.s unboxed, +", "fsgnj.s", (UNBOXED, BOX), S_NAN, 0),
    ("fsgnjn.s unboxed, +", "fsgnjn.s", (UNBOXED, BOX), BOX | 0xFFC00000, 0),
    ("fmin.s unboxed, 2", "fmin.s", (UNBOXED, BOX | s(2.0)), BOX | s(2.0), 0),
    ("feq.s unboxed, unboxed", "feq.s", (UNBOXED, UNBOXED), 0, 0),
    ("fclass.s unboxed (quiet NaN)", "fclass.s", (UNBOXED,), 1 << 9, 0),
    ("fclass.s boxed 1.0", "fclass.s", (BOX | s(1.0),), 1 << 6, 0),
    ("fcvt.d.s unboxed", "fcvt.d.s", (UNBOXED,), D_NAN, 0),
    ("fcvt.d.s boxed sNaN (NV)", "fcvt.d.s", (S_SNAN,), D_NAN, NV),
    ("fcvt.w.s unboxed (NaN: max, NV)", "fcvt.w.s", (UNBOXED,), 0x7FFFFFFF, NV),
    ("fmv.x.w unboxed (raw low bits)", "fmv.x.w", (UNBOXED,), 0x3F800000, 0),
    ("fmadd.s boxed*boxed + unboxed", "fmadd.s", (BOX | s(1.0), BOX | s(1.0), UNBOXED), S_NAN, 0),
    ("fmv.w.x boxes", "fmv.w.x", (0x12345678BF800000,), BOX | 0xBF800000, 0),
    ("fcvt.s.w boxes", "fcvt.s.w", (3,), BOX | s(3.0), 0),
    ("fsqrt.s of -0 (boxed -0)", "fsqrt.s", (BOX | 0x80000000,), BOX | 0x80000000, 0),
]


def _fp_insn(op: str, rd: int, srcs: list[int], rm: int) -> Insn:
    name, _, t = op.rpartition(".")
    if op.startswith("fcvt."):
        _, a, t = op.split(".")
        if a in ("s", "d") and t in ("s", "d"):              # fcvt.s.d / fcvt.d.s
            return w32(opfp(0x08, a, rm, rd, srcs[0], 1 if t == "d" else 0), f"{op} f{rd}, f{srcs[0]}")
        if a in g.INT_KINDS:                                  # float -> int
            return w32(opfp(0x18, t, rm, rd, srcs[0], g.INT_KINDS[a]), f"{op} x{rd}, f{srcs[0]}")
        return w32(opfp(0x1A, a, rm, rd, srcs[0], g.INT_KINDS[t]), f"{op} f{rd}, x{srcs[0]}")
    if name in g.FARITH:
        return w32(opfp(g.FARITH[name], t, rm, rd, *srcs), f"{op} f{rd}")
    if name == "fsqrt":
        return w32(opfp(0x0B, t, rm, rd, srcs[0], 0), f"{op} f{rd}")
    if name in g.FMA:
        return w32(r4_type(g.FMA[name], g.FMT[t], rm, rd, *srcs), f"{op} f{rd}")
    if name in g.FSGNJ:
        return w32(opfp(0x04, t, g.FSGNJ[name], rd, *srcs), f"{op} f{rd}")
    if name in g.FMINMAX:
        return w32(opfp(0x05, t, g.FMINMAX[name], rd, *srcs), f"{op} f{rd}")
    if name in g.FCMP:
        return w32(opfp(0x14, t, g.FCMP[name], rd, *srcs), f"{op} x{rd}")
    if name == "fclass":
        return w32(opfp(0x1C, t, 1, rd, srcs[0], 0), f"{op} x{rd}")
    if op == "fmv.x.w":
        return w32(opfp(0x1C, "s", 0, rd, srcs[0], 0), f"{op} x{rd}")
    if op == "fmv.w.x":
        return w32(opfp(0x1E, "s", 0, rd, srcs[0], 0), f"{op} f{rd}")
    raise ValueError(op)


def _int_dest(op: str) -> bool:
    name = op.split(".")[0]
    return name in ("feq", "flt", "fle", "fclass") or op == "fmv.x.w" or \
        (name == "fcvt" and op.split(".")[1] in g.INT_KINDS)


def _int_srcs(op: str) -> bool:
    return op == "fmv.w.x" or (op.startswith("fcvt.") and op.split(".")[2] in g.INT_KINDS)


def fp_check(b: Builder, c: CaseBuilder, cls: str, label: str, op: str, srcs: tuple[int, ...], rm: int,
             result: int, flags: int, dyn: bool = False) -> CaseBuilder:
    """Run ``op`` (static rm, or DYN with frm set by csrrwi) and read-and-clear fflags after it.

    A case's fcsr starts at 0 and every check ends with ``csrrw xK, fflags, x0``,
    so each check sees exactly the flags its own operation raised."""
    if not c.room(x=4, f=4):
        c = b.case(cls)
    regs = [c.xsrc(v) if _int_srcs(op) else c.fsrc(v) for v in srcs]
    rd = c.xres() if _int_dest(op) else c.fres()
    fl = c.xres()
    pre = []
    if dyn and c.frm != rm:
        if not c.items:
            c.fcsr = rm << 5                  # the case's initial fcsr
        else:
            pre.append(csr("csrrwi", 0, FRM, rm))
        c.frm = rm
    c.emit(*pre, _fp_insn(op, rd, regs, DYN if dyn else rm), csr("csrrw", fl, FFLAGS, 0))
    mode = f"{'dyn=' if dyn else ''}{g.RM_NAMES[rm]}"
    c.expect(f"{'x' if _int_dest(op) else 'f'}{rd}", result, f"{label} [{mode}]")
    c.expect(f"x{fl}", flags, f"{label} [{mode}] fflags")
    return c


def rounding(b: Builder) -> None:
    """Every static rounding mode and DYN (frm set by csrrwi), with the fflags each op raises."""
    c = b.case("rounding")
    for fc in _fp_table():
        for rm, (res, fl) in sorted(fc.results.items()):
            c = fp_check(b, c, "rounding", fc.label, fc.op, fc.srcs, rm, res, fl)
    # DYN: frm set by csrrwi, grouped by mode (fewer CSR writes); the first
    # entry of each operation, every RMM tie, the conversions of 0 and the
    # quiet-NaN operands
    # (one guest program stays small enough to build in seconds)
    dyn_table, seen = [], set()
    for fc in _fp_table():
        if fc.op not in seen or fc.rmm_tie or " 0 " in fc.label or "qNaN" in fc.label:
            dyn_table.append(fc)
            seen.add(fc.op)
    for rm in MODES:
        c = b.case("rounding")
        for fc in dyn_table:
            if rm in fc.results:
                res, fl = fc.results[rm]
                c = fp_check(b, c, "rounding", fc.label, fc.op, fc.srcs, rm, res, fl, dyn=True)
    for label, op, srcs, res, fl in FP_NO_RM:
        c = fp_check(b, c, "rounding", label, op, srcs, 0, res, fl)
    # frm / fflags / fcsr through every CSR form (register and immediate)
    c = b.case("rounding")
    v = c.xsrc(0xFFFFFFFFFFFFFF45)
    r1, r2, r3, r4, r5, r6 = (c.xres() for _ in range(6))
    c.emit(csr("csrrw", r1, FCSR, v))          # old fcsr = 0; fcsr = 0x45 (frm 2, flags 5)
    c.emit(csr("csrrsi", r2, FFLAGS, 0x1A))     # old flags 5; flags |= 0x1a -> 0x1f
    c.emit(csr("csrrci", r3, FRM, 1))           # old frm 2; frm &= ~1 -> 2
    c.emit(csr("csrrs", r4, FCSR, 0))           # read: 0x5f
    c.emit(csr("csrrwi", r5, FRM, 3))           # old frm 2 -> 3
    c.emit(csr("csrrc", r6, FCSR, v))           # old fcsr 0x7f; clear 0x45 -> 0x3a
    for r, want, what in ((r1, 0, "csrrw fcsr"), (r2, 5, "csrrsi fflags"), (r3, 2, "csrrci frm"),
                          (r4, 0x5F, "csrrs fcsr, x0"), (r5, 2, "csrrwi frm"), (r6, 0x7F, "csrrc fcsr")):
        c.expect(f"x{r}", want, what)
    c.expect("fcsr", 0x3A, "fcsr after the CSR sequence")


# RMM (ties to max magnitude) cases: exact ties where RNE's even neighbour is
# the one nearer zero (RMM must take the other), and near-ties that are not
# ties.  x86 has no RMM mode: translated code corrects ties after RNE.
_RMM_CASES: tuple[tuple[str, str, tuple[int, ...], int, int], ...] = (
    ("1 + 2^-53 (tie)", "fadd.d", (d(1.0), d(2.0 ** -53)), d(1 + 2.0 ** -52), NX),
    ("-1 - 2^-53 (tie)", "fsub.d", (d(-1.0), d(2.0 ** -53)), d(-(1 + 2.0 ** -52)), NX),
    ("1 + (2^-53 - 2^-106) (below the tie)", "fadd.d", (d(1.0), d(2.0 ** -53 - 2.0 ** -106)), d(1.0), NX),
    ("1.5 (1 + 3*2^-52) (tie)", "fmul.d", (d(1.5), d(1 + 3 * 2.0 ** -52)), d(1.5 + 5 * 2.0 ** -52), NX),
    ("2^-1074 * 0.5 (tie, UF)", "fmul.d", (1, d(0.5)), 1, UF | NX),
    ("-2^-1074 * 0.5 (tie, UF)", "fmul.d", (1 | 1 << 63, d(0.5)), 1 | 1 << 63, UF | NX),
    ("2^-1074 / 2 (tie, UF)", "fdiv.d", (1, d(2.0)), 1, UF | NX),
    ("2^-1074 / 3 (below the tie, UF)", "fdiv.d", (1, d(3.0)), 0, UF | NX),
    ("1 * 1 + 2^-53 (fused tie)", "fmadd.d", (d(1.0), d(1.0), d(2.0 ** -53)), d(1 + 2.0 ** -52), NX),
    ("-(1 * 1) - 2^-53 (fused tie)", "fnmadd.d", (d(1.0), d(1.0), d(2.0 ** -53)), d(-(1 + 2.0 ** -52)), NX),
    ("(1+2^-52)(1-2^-52) + 2^-53 (fused, not a tie)", "fmadd.d",
     (d(1 + 2.0 ** -52), d(1 - 2.0 ** -52), d(2.0 ** -53)), d(1.0), NX),
    ("sqrt 2 (never a tie)", "fsqrt.d", (d(2.0),), 0x3FF6A09E667F3BCD, NX),
    ("single: 1 + 2^-24 (tie)", "fadd.s", (BOX | s(1.0), BOX | s(2.0 ** -24)), BOX | 0x3F800001, NX),
    ("single: 1.5 (1 + 3*2^-23) (tie)", "fmul.s", (BOX | s(1.5), BOX | s(1 + 3 * 2.0 ** -23)),
     BOX | s(1.5 + 5 * 2.0 ** -23), NX),
    ("single: 2^-149 / 2 (tie, UF)", "fdiv.s", (BOX | 1, BOX | s(2.0)), BOX | 1, UF | NX),
    ("single: 1 * 1 + 2^-24 (fused tie)", "fmadd.s", (BOX | s(1.0), BOX | s(1.0), BOX | s(2.0 ** -24)),
     BOX | 0x3F800001, NX),
    ("fcvt.s.d 1+2^-24 (tie)", "fcvt.s.d", (d(1 + 2.0 ** -24),), BOX | 0x3F800001, NX),
    ("fcvt.d.l 2^53+1 (tie)", "fcvt.d.l", (2 ** 53 + 1,), d(2.0 ** 53 + 2), NX),
    ("fcvt.d.l -(2^53+1) (tie)", "fcvt.d.l", (-(2 ** 53 + 1),), d(-(2.0 ** 53 + 2)), NX),
    ("fcvt.d.lu 2^63+2^10 (tie)", "fcvt.d.lu", (2 ** 63 + 2 ** 10,), d(2.0 ** 63 + 2 ** 11), NX),
    ("fcvt.s.w 2^24+1 (tie)", "fcvt.s.w", (2 ** 24 + 1,), BOX | s(2.0 ** 24 + 2), NX),
    ("fcvt.s.wu 2^24+1 (tie)", "fcvt.s.wu", (2 ** 24 + 1,), BOX | s(2.0 ** 24 + 2), NX),
    ("fcvt.s.l 2^24+1 (tie)", "fcvt.s.l", (2 ** 24 + 1,), BOX | s(2.0 ** 24 + 2), NX),
    ("fcvt.s.lu 2^40+2^16 (tie)", "fcvt.s.lu", (2 ** 40 + 2 ** 16,), BOX | s(2.0 ** 40 + 2 ** 17), NX),
)


def rmm_ties(b: Builder) -> None:
    """RMM on exact ties and near-ties, static and DYN (frm = RMM)."""
    c = b.case("rmm-ties")
    for label, op, srcs, res, fl in _RMM_CASES:
        for dyn in (False, True):
            c = fp_check(b, c, "rmm-ties", label, op, srcs, RMM, res, fl, dyn)


def dead_results(b: Builder) -> None:
    """An FP result the guest overwrites unread still raises its flags (DYN
    operations run inline in AOT/JIT code, where LLVM may delete dead ones)."""
    c = b.case("dead-results")
    c.fcsr = RDN << 5
    over = c.fsrc(d(1.0))
    for label, op, srcs, fl in (
            ("fcvt.s.l inexact", "fcvt.s.l", (0x3FF0000000000001,), NX),
            ("fcvt.d.l inexact", "fcvt.d.l", ((1 << 62) + 1,), NX),
            ("fadd.d inexact", "fadd.d", (d(1.0), d(2.0 ** -60)), NX),
            ("fdiv.d by zero", "fdiv.d", (d(1.0), 0), DZ),
            ("fmul.d overflow", "fmul.d", (D_MAX, d(2.0)), OF | NX),
            ("fsqrt.d of -1", "fsqrt.d", (d(-1.0),), NV),
            ("fmadd.d inexact", "fmadd.d", (d(1.0 / 3), d(3.0), d(1.0)), NX),
            ("fcvt.s.d inexact", "fcvt.s.d", (d(0.1),), NX),
            ("fcvt.d.s of sNaN", "fcvt.d.s", (S_SNAN,), NV),
            ("fsub.s inexact", "fsub.s", (BOX | s(1.0), BOX | s(2.0 ** -30)), NX)):
        regs = [c.xsrc(v) if _int_srcs(op) else c.fsrc(v) for v in srcs]
        rd, flr = c.fres(), c.xres()
        c.emit(_fp_insn(op, rd, regs, DYN),
               w32(opfp(0x04, "d", 0, rd, over, over), f"fsgnj.d f{rd}, f{over}, f{over}"),
               csr("csrrw", flr, FFLAGS, 0))
        c.expect(f"x{flr}", fl, f"{label} (result overwritten) fflags")


def csr_after_fp(b: Builder) -> None:
    """A flag an FP operation raised is gone after a CSR write clears it: in
    AOT regions that hold CSR accesses, LLVM must not move (or duplicate) the
    x86 compare or operation that raised it past the write."""
    neg = 1 << 63
    ops = [("fmax.d sNaN", "fmax.d", (d(1.0), D_SNAN), NV), ("fmin.d sNaN", "fmin.d", (D_SNAN, d(2.0)), NV),
           ("fmax.s sNaN", "fmax.s", (BOX | s(1.0), S_SNAN), NV), ("feq.d sNaN", "feq.d", (D_SNAN, D_SNAN), NV),
           ("flt.d qNaN", "flt.d", (D_NAN, d(1.0)), NV), ("fle.s qNaN", "fle.s", (S_NAN, BOX | s(1.0)), NV),
           ("fcvt.w.d NaN", "fcvt.w.d", (D_NAN,), NV), ("fcvt.l.d -inf", "fcvt.l.d", (D_INF | neg,), NV),
           ("fcvt.wu.s -1", "fcvt.wu.s", (BOX | s(-1.0),), NV), ("fadd.d sNaN", "fadd.d", (D_SNAN, d(1.0)), NV),
           ("fdiv.d 1/0", "fdiv.d", (d(1.0), 0), DZ), ("fmadd.d inf*0+qNaN", "fmadd.d", (D_INF, 0, D_NAN), NV)]
    c = b.case("csr-after-fp")
    ones = c.xsrc(0x1F)
    for k, (label, op, srcs, fl) in enumerate(ops):
        if not c.room(x=4, f=4):
            c.expect("fcsr", 0, "fcsr after the last clear")
            c = b.case("csr-after-fp")
            ones = c.xsrc(0x1F)
        regs = [c.fsrc(v) for v in srcs]
        rd = c.xres() if _int_dest(op) else c.fres()
        flr = c.xres()
        # alternately clear with csrrw fcsr, x0 and csrrc fflags, (all flags)
        clear = csr("csrrw", flr, FCSR, 0) if k % 2 else csr("csrrc", flr, FFLAGS, ones)
        c.emit(_fp_insn(op, rd, regs, RNE), clear)
        c.expect(f"x{flr}", fl, f"{label}: flags read by the clearing CSR op")
    c.expect("fcsr", 0, "fcsr after the last clear")


def nan_boxing(b: Builder) -> None:
    c = b.case("nan-boxing")
    for label, op, srcs, res, fl in NAN_BOXING:
        c = fp_check(b, c, "nan-boxing", label, op, srcs, RNE, res, fl)
    # fsw stores the raw low 32 bits of an unboxed register; flw boxes
    fr = c.fsrc(UNBOXED)
    fl_ = c.fres()
    c.emit(w32(s_type(0x27, 2, SP, fr, 40), f"fsw f{fr}, 40(x2)"), w32(i_type(0x07, 2, fl_, SP, 40), f"flw f{fl_}, 40(x2)"))
    c.expect("mem+40", 0x2F2E2D2C3F800000, "fsw of an unboxed register: raw low bits")
    c.expect(f"f{fl_}", BOX | 0x3F800000, "flw boxes")


def nan_chains(b: Builder) -> None:
    """A NaN made by arithmetic (x86 makes the negative default NaN) flowing
    into further arithmetic, and read bit by bit (sign injection, fmv, store,
    fclass, conversion): translated code canonicalises only where the bits
    are observed, so every observer must still see the canonical NaN."""
    c = b.case("nan-chains")
    zero_d, one_d = c.fsrc(0), c.fsrc(d(1.0))
    zero_s, one_s = c.fsrc(BOX), c.fsrc(BOX | s(1.0))
    nd, md, sd, rd_, ud, ns, qs, ts = (c.fres() for _ in range(8))
    xa, xb, xc, fl = (c.xres() for _ in range(4))
    c.emit(_fp_insn("fdiv.d", nd, [zero_d, zero_d], RNE),          # 0/0: NaN, NV
           _fp_insn("fmul.d", md, [nd, one_d], RNE),               # NaN * 1
           w32(opfp(0x04, "d", 1, sd, nd, nd), f"fsgnjn.d f{sd}, f{nd}, f{nd}"),
           w32(opfp(0x1C, "d", 0, xa, nd, 0), f"fmv.x.d x{xa}, f{nd}"),
           w32(s_type(0x27, 3, SP, nd, 48), f"fsd f{nd}, 48(x2)"),
           _fp_insn("fmin.d", rd_, [nd, one_d], RNE),              # the number
           _fp_insn("feq.d", xb, [nd, nd], RNE),                   # quiet: no NV
           _fp_insn("fclass.d", xc, [md], RNE),
           _fp_insn("fcvt.s.d", ud, [md], RNE),
           _fp_insn("fdiv.s", ns, [zero_s, zero_s], RNE),
           _fp_insn("fadd.s", qs, [ns, one_s], RNE),
           w32(opfp(0x04, "s", 1, ts, qs, qs), f"fsgnjn.s f{ts}, f{qs}, f{qs}"),
           csr("csrrw", fl, FFLAGS, 0))
    canon_d, canon_s = 0x7FF8000000000000, BOX | 0x7FC00000
    c.expect(f"f{nd}", canon_d, "0/0 (double)")
    c.expect(f"f{md}", canon_d, "NaN * 1")
    c.expect(f"f{sd}", canon_d | 1 << 63, "fsgnjn of an arithmetic NaN")
    c.expect(f"x{xa}", canon_d, "fmv.x.d of an arithmetic NaN")
    c.expect("mem+48", canon_d, "fsd of an arithmetic NaN")
    c.expect(f"f{rd_}", d(1.0), "fmin(NaN, 1)")
    c.expect(f"x{xb}", 0, "feq(NaN, NaN)")
    c.expect(f"x{xc}", 0x200, "fclass of an arithmetic NaN: quiet")
    c.expect(f"f{ud}", canon_s, "fcvt.s.d of an arithmetic NaN")
    c.expect(f"f{ns}", canon_s, "0/0 (single)")
    c.expect(f"f{qs}", canon_s, "NaN + 1 (single)")
    c.expect(f"f{ts}", BOX | 0xFFC00000, "fsgnjn.s of an arithmetic NaN")
    c.expect(f"x{fl}", NV, "fflags: NV from 0/0 only")
    # Quiet NaNs into sqrt (rm = DYN) in a region of their own, without CSR
    # accesses (indirect jumps before and after): nothing raised.  LLVM
    # turned the NaN test of sqrt's result into a signalling compare of its
    # operand (cmpnlesd: NV for any NaN); campaign seed 17 found it.
    c = b.case("nan-chains")
    qd, qp, qb = c.fsrc(D_NAN), c.fsrc(0xFFFFFFFFFFA00000), c.fsrc(BOX | 0xFFC00001)
    r1, r2, r3 = (c.fres() for _ in range(3))
    t, fl = c.xres(), c.xres()

    def leap() -> list:        # an indirect jump to the next instruction: a region boundary
        return [g.hint_target(16), w32(g.u_type(0x17, t, 0), f"auipc x{t}, 0"),
                w32(i_type(0x67, 0, 0, t, 8), f"jalr x0, 8(x{t})")]
    c.emit(*leap(), _fp_insn("fsqrt.d", r1, [qd], DYN), _fp_insn("fsqrt.d", r2, [qp], DYN),
           _fp_insn("fsqrt.s", r3, [qb], DYN), *leap(), csr("csrrw", fl, FFLAGS, 0))
    c.expect(f"f{r1}", canon_d, "sqrt.d(qNaN) dyn")
    c.expect(f"f{r2}", canon_d, "sqrt.d(negative qNaN with payload) dyn")
    c.expect(f"f{r3}", canon_s, "sqrt.s(qNaN with payload) dyn")
    c.expect(f"x{fl}", 0, "fflags: nothing from quiet NaNs into sqrt")


# flag-neutral compares: (op, a, b, result); fflags before the trio are NX|OF
_NEUTRAL = [("flt.d", D_NAN, d(1.0), 0), ("fle.d", d(1.0), D_SNAN, 0), ("feq.d", D_SNAN, D_SNAN, 0),
            ("flt.d", 1 << 63, 0, 0), ("fle.d", 1 << 63, 0, 1), ("feq.d", 0, 1 << 63, 1),
            ("flt.d", d(-1.0), 1 << 63, 1), ("flt.d", d(-2.0), d(-1.0), 1), ("flt.d", d(-1.0), d(-2.0), 0),
            ("fle.d", d(-1.0), d(-1.0), 1), ("flt.d", d(-1.0), D_INF | 1 << 63, 0), ("flt.d", 1, 2, 1),
            ("flt.d", D_MAX, D_INF, 1), ("fle.d", D_INF, D_INF, 1), ("flt.d", d(-1.0), d(1.0), 1),
            ("flt.s", S_NAN, BOX | s(1.0), 0), ("fle.s", BOX | s(-1.0), BOX | s(-2.0), 0),
            ("fle.s", BOX | s(-2.0), BOX | s(-1.0), 1), ("feq.s", S_SNAN, BOX | s(1.0), 0),
            ("flt.s", BOX | 1 << 31, BOX, 0), ("fle.s", BOX | 1 << 31, BOX, 1),
            ("flt.s", s(1.0), BOX | s(2.0), 0),      # unboxed single: the canonical NaN
            ("feq.s", BOX | s(0.5), BOX | s(0.5), 1)]


def flag_neutral(b: Builder) -> None:
    """``frflags rX; f{lt,le,eq} rY, a, b; fsflags rX`` (glibc's sqrt guard)
    leaves fflags as they were, whatever the compare raised (NaNs: NV), and
    rX holds them.  Translated code fuses the three (NaN operands are told
    apart on the bits, an ordered pair is compared with ucomis[sd], and the
    CSR accesses vanish when rX is dead): once with rX read afterwards, once
    with rX overwritten."""
    c = b.case("flag-neutral")
    c.fcsr = RUP << 5 | NX | OF
    for k, (op, a, b_, res) in enumerate(_NEUTRAL):
        if not c.room(x=3, f=2):
            c = b.case("flag-neutral")
            c.fcsr = RUP << 5 | NX | OF
        dead = k % 2 == 1
        fa, fb = c.fsrc(a), c.fsrc(b_)
        rx, ry, fl = c.xres(), c.xres(), c.xres()
        tail = [w32(i_type(0x13, 0, rx, 0, 7), f"addi x{rx}, x0, 7")] if dead else []
        c.emit(csr("csrrs", rx, FFLAGS, 0), _fp_insn(op, ry, [fa, fb], RNE), csr("csrrw", 0, FFLAGS, rx),
               *tail, csr("csrrs", fl, FFLAGS, 0))
        label = f"{op} {a:#x}, {b_:#x}" + (" (rX dead)" if dead else "")
        c.expect(f"x{ry}", res, f"{label}: result")
        c.expect(f"x{rx}", 7 if dead else NX | OF, f"{label}: rX")
        c.expect(f"x{fl}", NX | OF, f"{label}: fflags after the trio")
    c.expect("fcsr", RUP << 5 | NX | OF, "fcsr at the end")


def lr_sc(b: Builder) -> None:
    """LR/SC: success, SC without reservation, SC to another address, second SC."""
    c = b.case("lr-sc")
    mem = bytearray(c.mem)
    a, a2 = c.xres(), c.xres()
    c.emit(w32(i_type(0x13, 0, a, SP, 32), f"addi x{a}, x2, 32"), w32(i_type(0x13, 0, a2, SP, 48), f"addi x{a2}, x2, 48"))
    v1, v2 = c.xsrc(0xAAAAAAAA80000001), c.xsrc(0x1122334455667788)
    lr1, sc1, sc2, lr2, sc3, sc4, sc5 = (c.xres() for _ in range(7))
    # 1: lr.w / sc.w on +32: succeeds (0), stores the low word only; lr.w sign-extends
    c.emit(g.amo("lr", "w", lr1, a, 0, 1, 0), g.amo("sc", "w", sc1, a, v1, 0, 1))
    c.expect(f"x{lr1}", sext(int.from_bytes(mem[32:36], "little"), 32), "lr.w sign-extends")
    c.expect(f"x{sc1}", 0, "sc.w after lr.w succeeds")
    mem[32:36] = (0x80000001).to_bytes(4, "little")
    # 2: a second sc.d without a new reservation fails and stores nothing
    c.emit(g.amo("sc", "d", sc2, a2, v2, 0, 0))
    c.expect(f"x{sc2}", 1, "sc.d without reservation fails")
    # 3: lr.d on +32, sc.d on +48: fails; then sc.d on +32 fails too (reservation gone)
    c.emit(g.amo("lr", "d", lr2, a, 0, 0, 0), g.amo("sc", "d", sc3, a2, v2, 0, 0), g.amo("sc", "d", sc4, a, v2, 0, 0))
    c.expect(f"x{lr2}", int.from_bytes(mem[32:40], "little"), "lr.d")
    c.expect(f"x{sc3}", 1, "sc.d to another address fails")
    c.expect(f"x{sc4}", 1, "sc.d after a failed sc fails")
    # 4: lr.d / sc.d with rd == rs2 succeeds
    r = c.xres()
    c.x[r] = 0x0102030405060708
    c.emit(g.amo("lr", "d", sc5, a2, 0, 1, 1), g.amo("sc", "d", r, a2, r, 1, 1))
    c.expect(f"x{sc5}", int.from_bytes(mem[48:56], "little"), "lr.d +48")
    c.expect(f"x{r}", 0, "sc.d rd=rs2 succeeds")
    mem[48:56] = (0x0102030405060708).to_bytes(8, "little")
    for off in range(0, 256, 8):
        c.expect(f"mem+{off}", int.from_bytes(mem[off:off + 8], "little"), f"buffer word +{off}")


def amo_ops(b: Builder) -> None:
    """Every AMO on 32 and 64 bits: rd = old (sign-extended for .w), memory = op(old, rs2)."""
    ops: dict[str, Callable[[int, int, int], int]] = {
        "amoswap": lambda o, v, n: v, "amoadd": lambda o, v, n: o + v, "amoxor": lambda o, v, n: o ^ v,
        "amoand": lambda o, v, n: o & v, "amoor": lambda o, v, n: o | v,
        "amomin": lambda o, v, n: o if signed(o, n) < signed(v, n) else v,
        "amomax": lambda o, v, n: o if signed(o, n) > signed(v, n) else v,
        "amominu": lambda o, v, n: min(o, v), "amomaxu": lambda o, v, n: max(o, v),
    }
    c = b.case("amo")
    mem = bytearray(c.mem)
    srcs = {"w": 0xFFFFFFFF80000001, "d": 0x8000000000000001}
    olds = {"w": 0x7FFFFFFE, "d": 0x7FFFFFFFFFFFFFFE}
    off = 0
    for name, fn in ops.items():
        for width, n in (("w", 32), ("d", 64)):
            if not c.room(x=3):
                for o in range(0, 256, 8):
                    c.expect(f"mem+{o}", int.from_bytes(mem[o:o + 8], "little"), f"buffer word +{o}")
                c, mem, off = b.case("amo"), None, 0
                mem = bytearray(c.mem)
            mem[off:off + n // 8] = olds[width].to_bytes(n // 8, "little")
            c.mem[off:off + n // 8] = olds[width].to_bytes(n // 8, "little")
            base, rd = c.xres(), c.xres()
            v = c.xsrc(srcs[width])
            c.emit(w32(i_type(0x13, 0, base, SP, off), f"addi x{base}, x2, {off}"), g.amo(name, width, rd, base, v, 1, 1))
            c.expect(f"x{rd}", sext(olds[width], n), f"{name}.{width} returns the old value")
            new = fn(olds[width], srcs[width] & ((1 << n) - 1), n) & ((1 << n) - 1)
            mem[off:off + n // 8] = new.to_bytes(n // 8, "little")
            off += 16
    for o in range(0, 256, 8):
        c.expect(f"mem+{o}", int.from_bytes(mem[o:o + 8], "little"), f"buffer word +{o}")


CLASSES = {"w-ops": w_ops, "aliasing": aliasing, "division": division, "misaligned": misaligned,
           "rounding": rounding, "rmm-ties": rmm_ties, "dead-results": dead_results, "csr-after-fp": csr_after_fp,
           "nan-boxing": nan_boxing, "nan-chains": nan_chains, "flag-neutral": flag_neutral,
           "lr-sc": lr_sc, "amo": amo_ops}


def build_all() -> Builder:
    b = Builder()
    for fn in CLASSES.values():
        fn(b)
    return b


# --- running ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def states(tmp_path_factory, build_image_cached) -> tuple[Builder, dict[str, list[g.State] | str]]:
    b = build_all()
    prog = b.program()
    d_ = tmp_path_factory.mktemp("bugclasses")
    guest = d_ / "bug-classes.riscv64"
    guest.write_bytes(prog.elf)
    guest.chmod(0o755)
    image = build_image_cached(guest)
    out: dict[str, list[g.State] | str] = {}
    for name, cmd in (("aot", ["--fallback=none", str(image)]), ("jit", ["--engine=jit", str(guest)]),
                      ("interp", ["--engine=interp", str(guest)])):
        stats = d_ / f"{name}-stats.json"
        p = run_tool([*aotrun_cmd(), f"--stats-json={stats}", *cmd])
        if p.returncode != 0:       # reported by each of this engine's tests
            out[name] = f"aotrun exited {p.returncode}: {p.stderr.decode(errors='replace')[-2000:]}"
            continue
        out[name] = g.parse_output(p.stdout, len(prog.cases))
        out[f"{name}-stats"] = json.loads(stats.read_text())
    if g.qemu_path():
        out["qemu"] = g.parse_output(g.run_subprocess([g.qemu_path(), str(guest)]), len(prog.cases))
    return b, out


def _value(st: g.State, loc: str) -> int:
    if loc == "fcsr":
        return st.fcsr
    if loc.startswith("mem+"):
        off = int(loc[4:])
        return int.from_bytes(st.mem[off:off + 8], "little")
    return (st.x if loc[0] == "x" else st.f)[int(loc[1:])]


def _check_class(states, cls: str, engine: str) -> None:
    b, out = states
    if engine not in out:
        pytest.skip("qemu-riscv64 is not installed: the expectations are not cross-checked against it")
    if isinstance(out[engine], str):
        pytest.fail(f"{engine}: {out[engine]}")
    checks = [c for c in b.checks if c.cls == cls]
    assert checks
    bad = []
    for ch in checks:
        got = _value(out[engine][ch.case], ch.loc)
        if got != ch.value:
            bad.append(f"{ch.label}: {ch.loc} = {got:#x}, expected {ch.value:#x}")
    assert not bad, f"{engine}: {len(bad)} of {len(checks)} checks fail:\n" + "\n".join(bad[:40])


ENGINES = ["aot", "jit", "interp", "qemu"]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("cls", list(CLASSES))
def test_bug_class(states, cls, engine):
    """Every check of the class holds on the engine."""
    _check_class(states, cls, engine)


@pytest.mark.parametrize("engine", ["aot", "jit"])
def test_dynamic_rmm_leaves_for_the_interpreter(states, engine):
    """Translated code has no RMM rounding for rm = DYN: with frm = RMM each
    DYN operation leaves (EXIT_FP_MODE) and the interpreter runs it, even
    under --fallback=none; static-RMM operations stay in translated code."""
    _, out = states
    if isinstance(out.get(engine), str):
        pytest.fail(out[engine])
    st = out[f"{engine}-stats"]
    assert st["fp_mode_exits"] >= 1, st
    assert st["interp_instructions"] >= len(_RMM_CASES), st
    assert st["native_entries"] > st["fp_mode_exits"], st


def _invalid_frm_program() -> g.Program:
    """frm = 5 (reserved), then an FP add with the dynamic rounding mode."""
    c = g.Case([0] * 32, [0] * 32, 0, bytes(256))
    c.f[1], c.f[2] = d(1.0), d(2.0 ** -60)
    c.items = [[csr("csrrwi", 0, FRM, 5)], [w32(opfp(0x00, "d", DYN, 4, 1, 2), "fadd.d f4, f1, f2, dyn")]]
    return g.build_program([c])


@pytest.mark.parametrize("engine", ["aot", "jit", "interp", "qemu"])
def test_invalid_dynamic_frm_is_sigill(engine, tmp_path, build_image_cached):
    """An FP instruction with rm = DYN while frm holds 5-7 is illegal (SIGILL)."""
    guest = tmp_path / "frm5.riscv64"
    guest.write_bytes(_invalid_frm_program().elf)
    guest.chmod(0o755)
    if engine == "qemu":
        if not g.qemu_path():
            pytest.skip("qemu-riscv64 not installed")
        import subprocess
        p = subprocess.run([g.qemu_path(), str(guest)], capture_output=True, timeout=60, check=False)
        assert p.returncode == -4, p        # SIGILL
        return
    target = ["--fallback=none", str(build_image_cached(guest))] if engine == "aot" else \
        [f"--engine={engine}", str(guest)]
    p = run_tool([*aotrun_cmd(), *target])
    assert p.returncode == 128 + 4, (p.returncode, p.stderr)
    assert b"SIGILL" in p.stderr
