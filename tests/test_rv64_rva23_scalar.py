"""RVA23U64's remaining scalar extensions (issue 22) on every engine.

Zcb, Zcmop, Zimop, Zawrs, Zicbom, Zicboz, Zfa and Zfhmin; the Zicbop
prefetches, Zihintntl and Zihintpause are base-encoding hints.

* Decoding: the generator's encoders (``tests/rv64gen.py``) against LLVM's
  assembler (``python -m ziglang cc``: binutils 2.40 predates Zcb, Zfa and
  Zimop; skipped without ziglang), each encoding's decoded fields, and the
  reserved neighbours that must still raise ``DecodeError`` (SIGILL).
* Behaviour: one program of edge cases runs on aot, jit and interp, every
  expected value computed here by small reference models written from the
  specifications (exact ``Fraction`` arithmetic for the roundings; nothing
  from ``aotc``).  qemu-riscv64 7.2 (``-cpu rv64,Zfh=true``) checks the
  Zfhmin cases and the reference model itself; the Zcb cases run on qemu as
  the base instructions the spec says they stand for.
* Random programs: Zfhmin-heavy against qemu; Zcb, Zfa and the
  may-be-operations among the three engines (no emulator here has them).
* ``cbo.zero`` on a read-only page faults as a store does.
"""

from __future__ import annotations

import importlib.util
import math
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass, field, replace
from fractions import Fraction

import pytest
import rv64gen as g
from conftest import aotc_cmd, aotrun_cmd, run_tool
from difftest_campaign import compare, report, run_engines
from elf_craft import CODE_VADDR, tiny_elf

from aotc.errors import DecodeError
from aotc.isa.riscv64.decoder import decode

M64 = (1 << 64) - 1
BOX32 = 0xFFFFFFFF00000000
BOX16 = 0xFFFFFFFFFFFF0000
QEMU_ZFH = "rv64,Zfh=true"
NX, UF, OF, DZ, NV = 1, 2, 4, 8, 16
RNE, RTZ, RDN, RUP, RMM, DYN = 0, 1, 2, 3, 4, 7


def _have_zig() -> bool:
    return importlib.util.find_spec("ziglang") is not None


# ---------------------------------------------------------------------------
# decoding
# ---------------------------------------------------------------------------

def _all_encodings() -> list[tuple[g.Insn, tuple]]:
    """Every new encoding (with rd=x10, rs1=x11, rs2=x12 or their compressed
    forms) and the fields it must decode to: (mnemonic, rd, rs1, rs2, imm)."""
    out: list[tuple[g.Insn, tuple]] = []
    zcb = {"c.zext.b": ("andi", 255), "c.sext.b": ("sext.b", 0), "c.zext.h": ("zext.h", 0),
           "c.sext.h": ("sext.h", 0), "c.zext.w": ("add.uw", 0), "c.not": ("xori", -1)}
    for name, (m, imm) in zcb.items():
        out.append((g.zcb_unary(name, 9), (m, 9, 9, 0, imm)))
    out.append((g.zcb_mul(9, 14), ("mul", 9, 9, 14, 0)))
    for name in g.ZCB_MEM:
        for off in ((0, 1, 2, 3) if name in ("c.lbu", "c.sb") else (0, 2)):
            base = name[2:]
            fields = (base, 0, 11, 10, off) if name in ("c.sb", "c.sh") else (base, 10, 11, 0, off)
            out.append((g.zcb_mem(name, 10, 11, off), fields))
    for n in range(1, 16, 2):
        out.append((g.c_mop(n), ("addi", 0, 0, 0, 0)))
    for n in range(32):
        out.append((g.mop_r(n, 10, 11), ("mop.r", 10, 11, 0, n)))
    for n in range(8):
        out.append((g.mop_rr(n, 10, 11, 12), ("mop.rr", 10, 11, 12, n)))
    for name, word in g.WRS.items():
        out.append((g.w32(word, name), (name, 0, 0, 0, 0)))
    for name in g.CBO:
        out.append((g.cbo(name, 11), (name, 0, 11, 0, 0)))
    for t in "sd":
        for i in range(32):
            out.append((g.fli(t, 10, i), (f"fli.{t}", 10, 0, 0, i)))
        for name in g.ZFA_BIN:
            out.append((g.zfa_bin(name, t, 10, 11, 12), (f"{name}.{t}", 10, 11, 12, 0)))
        for name in ("fround", "froundnx"):
            for rm in (RNE, RTZ, RDN, RUP, RMM, DYN):
                out.append((g.fround(name, t, 10, 11, rm), (f"{name}.{t}", 10, 11, 0, 0)))
    out.append((g.fcvtmod(10, 11), ("fcvtmod.w.d", 10, 11, 0, 0)))
    out += [(g.flh(10, 11, -2), ("flh", 10, 11, 0, -2)), (g.fsh(10, 11, 2046), ("fsh", 0, 11, 10, 2046)),
            (g.fmv_x_h(10, 11), ("fmv.x.h", 10, 11, 0, 0)), (g.fmv_h_x(10, 11), ("fmv.h.x", 10, 11, 0, 0))]
    for name in g.FCVT_H:
        for rm in (RNE, RTZ, RDN, RUP, RMM, DYN):
            out.append((g.fcvt_h(name, 10, 11, rm), (name, 10, 11, 0, 0)))
    # hints in base encodings: Zicbop prefetches (ori x0), Zihintntl (add x0 / c.add x0), pause (fence)
    out += [(g.w32(0x04056013, "prefetch.i 64(x10)"), ("ori", 0, 10, 0, 64)),
            (g.w32(0x02156013, "prefetch.r 32(x10)"), ("ori", 0, 10, 0, 33)),
            (g.w32(0x00356013, "prefetch.w 0(x10)"), ("ori", 0, 10, 0, 3)),
            (g.w32(0x00200033, "ntl.p1"), ("add", 0, 0, 2, 0)),
            (g.w32(0x00500033, "ntl.all"), ("add", 0, 0, 5, 0)),
            (g.w16(0x9016, "c.ntl.all"), ("add", 0, 0, 5, 0)),
            (g.w32(0x0100000F, "pause"), ("fence", 0, 0, 0, 0x010))]
    return out


ENCODINGS = _all_encodings()


@pytest.mark.parametrize("insn, fields", ENCODINGS, ids=[e[0].text for e in ENCODINGS])
def test_decode(insn, fields):
    i = decode(insn.code, 0, 0x1000)
    assert (i.mnemonic, i.rd, i.rs1, i.rs2, i.imm) == fields
    assert i.size == len(insn.code) and i.compressed == (len(insn.code) == 2)
    assert i.raw == int.from_bytes(insn.code, "little")


def test_c_lui_with_nonzero_imm_is_not_a_mop():
    i = decode((0x7081).to_bytes(2, "little"), 0, 0x1000)      # c.lui x1, 0xfffe0
    assert (i.mnemonic, i.rd, i.imm) == ("lui", 1, -(32 << 12))


def test_rounding_mode_fields():
    assert decode(g.fround("fround", "d", 1, 2, RDN).code, 0, 0).rm == RDN
    assert decode(g.fcvt_h("fcvt.h.d", 1, 2, RMM).code, 0, 0).rm == RMM
    assert decode(g.fcvtmod(1, 2).code, 0, 0).rm == RTZ


@pytest.mark.skipif(not _have_zig(), reason="ziglang (LLVM's assembler) not installed: pip install ziglang")
def test_encodings_match_llvm(tmp_path):
    """The encoders and the hint words agree with LLVM's assembler (zig cc)."""
    insns = [e[0] for e in ENCODINGS]
    src = tmp_path / "a.s"
    src.write_text("".join(i.text + "\n" for i in insns))
    obj = tmp_path / "a.o"
    feats = "+zba+zbb+zcb+zfa+zimop+zcmop+zawrs+zicbom+zicboz+zicbop+zihintntl+zihintpause+zfhmin"
    p = subprocess.run([sys.executable, "-m", "ziglang", "cc",
                        "-target", "riscv64-linux-musl", f"-mcpu=baseline_rv64{feats}", "-c", str(src),
                        "-o", str(obj)], capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stderr[:3000]
    objcopy = shutil.which("riscv64-linux-gnu-objcopy") or shutil.which("llvm-objcopy")
    if not objcopy:
        pytest.skip("no objcopy for riscv64 objects")
    binf = tmp_path / "a.bin"
    subprocess.run([objcopy, "-O", "binary", "-j", ".text", str(obj), str(binf)], check=True)
    got, pos, bad = binf.read_bytes(), 0, []
    for i in insns:
        if got[pos:pos + len(i.code)] != i.code:
            bad.append((i.text, i.code[::-1].hex(), got[pos:pos + len(i.code)][::-1].hex()))
        pos += len(i.code)
    assert not bad and pos == len(got), bad


@pytest.mark.parametrize("code, why", [
    (0x9C00, "Zcb quadrant 0 funct6 100100 (reserved)"),
    (0x8C40, "c.sh with bit 6 set (reserved)"),
    (0x9D79, "Zcb unary slot 110 (reserved)"),
    (0x9D7D, "Zcb unary slot 111 (reserved)"),
    (0x6201, "c.lui x4, 0: even rd is not a c.mop"),
    (0x6401, "c.lui x8, 0"),
    (0x6001, "c.lui x0, 0"),
    (0x81F5C573 & ~(1 << 22), "mop.r with bits 25:22 = 0110"),
    (0x81F5C573 | (1 << 28), "mop.r with bit 28 set"),
    (0x01F5C573, "SYSTEM funct3 4 with bit 31 clear"),
    (0x00E00073, "SYSTEM funct3 0 imm 0x00e (between wrs.nto and wrs.sto)"),
    (0x0035200F, "cbo funct12 3 (reserved)"),
    (0x0045250F, "cbo.zero with rd != 0"),
    (0x0085200F, "cbo funct12 8"),
    (0xF0160553 | (1 << 12), "fli.s with funct3 1"),
    (0xE2158553, "fmvh.x.d (RV32 only)"),
    (0xB2C58553, "fmvp.d.x (RV32 only)"),
    (0xC2858553, "fcvtmod.w.d with rm rne (reserved)"),
    (0xC2C5F553, "fcvtmod.w.d with dyn (reserved)"),
    (0xC0859553, "fcvtmod.w.s does not exist"),
    (0x2CC5C553, "fminm.h (Zfh)"),
    (0xA0C5E553, "FP compare funct3 6"),
    (0x4065F553, "fcvt.s.* rs2 = 6"),
    (0x0CC5F553, "fmul.h (Zfh)"),
    (0x44458553, "fround.h (Zfh)"),
    (0xE4059553, "fclass.h (Zfh)"),
    (0x00C5C507, "LOAD-FP funct3 4 (flq)"),
])
def test_reserved_neighbours(code, why):
    size = 2 if code < 0x10000 else 4
    with pytest.raises(DecodeError):
        decode(code.to_bytes(size, "little"), 0, 0x1000)


# ---------------------------------------------------------------------------
# reference models (from the specifications; nothing from aotc)
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Fmt:
    bits: int
    mant: int           # stored fraction bits
    ebits: int

    @property
    def bias(self) -> int:
        return (1 << (self.ebits - 1)) - 1

    @property
    def emax_field(self) -> int:
        return (1 << self.ebits) - 1

    @property
    def qnan(self) -> int:
        return (self.emax_field << self.mant) | (1 << (self.mant - 1))

    def unpack(self, raw: int) -> tuple[int, int, int]:
        return raw >> (self.bits - 1) & 1, raw >> self.mant & self.emax_field, raw & ((1 << self.mant) - 1)

    def is_nan(self, raw: int) -> bool:
        _, e, f = self.unpack(raw)
        return e == self.emax_field and f != 0

    def is_snan(self, raw: int) -> bool:
        return self.is_nan(raw) and not raw >> (self.mant - 1) & 1

    def is_inf(self, raw: int) -> bool:
        _, e, f = self.unpack(raw)
        return e == self.emax_field and f == 0

    def value(self, raw: int) -> Fraction:
        """Finite value (magnitude and sign; zero's sign is lost)."""
        s, e, f = self.unpack(raw)
        v = Fraction(f if e == 0 else f | 1 << self.mant) * Fraction(2) ** ((e or 1) - self.bias - self.mant)
        return -v if s else v


H, S, D = Fmt(16, 10, 5), Fmt(32, 23, 8), Fmt(64, 52, 11)


def _floor_log2(v: Fraction) -> int:
    e = v.numerator.bit_length() - v.denominator.bit_length()
    while Fraction(2) ** e > v:
        e -= 1
    while Fraction(2) ** (e + 1) <= v:
        e += 1
    return e


def _round_int(v: Fraction, negative: bool, rm: int) -> tuple[int, bool]:
    """Round a non-negative magnitude to an integer with rm; (n, inexact)."""
    n = math.floor(v)
    rem = v - n
    if rem == 0:
        return n, False
    if rm == RNE:
        up = rem > Fraction(1, 2) or (rem == Fraction(1, 2) and n % 2 == 1)
    elif rm == RTZ:
        up = False
    elif rm == RDN:
        up = negative
    elif rm == RUP:
        up = not negative
    else:
        up = rem >= Fraction(1, 2)
    return n + up, True


def ref_narrow(raw: int, src: Fmt, dst: Fmt, rm: int) -> tuple[int, int]:
    """Convert to a narrower format with rm: (bits, flags); tininess after rounding."""
    sign = raw >> (src.bits - 1) & 1
    sbit = sign << (dst.bits - 1)
    if src.is_nan(raw):
        return dst.qnan, NV if src.is_snan(raw) else 0
    if src.is_inf(raw):
        return sbit | dst.emax_field << dst.mant, 0
    v = abs(src.value(raw))
    if v == 0:
        return sbit, 0
    emin = 1 - dst.bias
    e = _floor_log2(v)
    q = max(e, emin) - dst.mant
    n, inexact = _round_int(v / Fraction(2) ** q, bool(sign), rm)
    # tininess after rounding: rounded to dst's precision with an unbounded exponent
    n_u, _ = _round_int(v / Fraction(2) ** (e - dst.mant), bool(sign), rm)
    tiny = n_u * Fraction(2) ** (e - dst.mant) < Fraction(2) ** emin
    r = n * Fraction(2) ** q
    largest = (2 - Fraction(2) ** -dst.mant) * Fraction(2) ** dst.bias
    if r > largest:
        to_max = rm == RTZ or (rm == RDN and not sign) or (rm == RUP and sign)
        mag = (dst.emax_field << dst.mant) - (1 if to_max else 0)
        return sbit | mag, OF | NX
    flags = (NX if inexact else 0) | (UF if tiny and inexact else 0)
    if r < Fraction(2) ** emin:
        return sbit | int(r / Fraction(2) ** (emin - dst.mant)), flags
    er = _floor_log2(r)
    m = int(r / Fraction(2) ** (er - dst.mant)) - (1 << dst.mant)
    return sbit | (er + dst.bias) << dst.mant | m, flags


def ref_widen(raw: int, src: Fmt, dst: Fmt) -> tuple[int, int]:
    """Exact widening conversion: (bits, flags)."""
    bits, flags = ref_narrow(raw, src, dst, RNE)
    assert not flags & ~NV
    return bits, flags


def ref_round(raw: int, f: Fmt, rm: int, nx: bool) -> tuple[int, int]:
    """fround/froundnx."""
    if f.is_nan(raw):
        return f.qnan, NV if f.is_snan(raw) else 0
    if f.is_inf(raw):
        return raw, 0
    sign = raw >> (f.bits - 1) & 1
    v = abs(f.value(raw))
    n, inexact = _round_int(v, bool(sign), rm)
    if n == 0:
        r = sign << (f.bits - 1)
    else:
        r, _ = ref_narrow(_float_bits(n, sign), D, f, RNE) if f is not D else (_float_bits(n, sign), 0)
    return r, NX if nx and inexact else 0


def _float_bits(n: int, sign: int) -> int:
    """A double holding the integer n (|n| < 2^53 here) with the sign."""
    return struct.unpack("<Q", struct.pack("<d", -float(n) if sign else float(n)))[0]


def ref_fcvtmod(raw: int) -> tuple[int, int]:
    if D.is_nan(raw) or D.is_inf(raw):
        return 0, NV
    v = D.value(raw)
    n = math.trunc(v)
    low = n & 0xFFFFFFFF
    res = low | BOX32 if low >> 31 else low
    if not -(1 << 31) <= n < (1 << 31):
        return res, NV
    return res, NX if n != v else 0


def ref_minmax(a: int, b: int, f: Fmt, is_max: bool, nan_wins: bool) -> tuple[int, int]:
    flags = NV if f.is_snan(a) or f.is_snan(b) else 0
    if f.is_nan(a) or f.is_nan(b):
        if nan_wins or (f.is_nan(a) and f.is_nan(b)):
            return f.qnan, flags
        return (b if f.is_nan(a) else a), flags
    va, vb = f.value(a), f.value(b)
    if va == vb:           # ±0 (or equal bits): max prefers +0, min -0
        sa = a >> (f.bits - 1)
        return ((b if sa else a) if is_max else (a if sa else b)), flags
    return (a if (va > vb) == is_max else b), flags


def ref_quiet_cmp(a: int, b: int, f: Fmt, strict: bool) -> tuple[int, int]:
    flags = NV if f.is_snan(a) or f.is_snan(b) else 0
    if f.is_nan(a) or f.is_nan(b):
        return 0, flags
    va, vb = f.value(a), f.value(b)
    return int(va < vb if strict else va <= vb), flags


def unbox(raw: int, f: Fmt) -> int:
    """The value an f register holds for format f (an unboxed one reads as the canonical NaN)."""
    if f is D:
        return raw
    box = BOX32 if f is S else BOX16
    return raw & ~box if raw & box == box else f.qnan


def box(v: int, f: Fmt) -> int:
    return v if f is D else v | (BOX32 if f is S else BOX16)


# ---------------------------------------------------------------------------
# edge cases: each a Case with one item and the state it must end in
# ---------------------------------------------------------------------------

def _d(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def _s(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


@dataclass
class Edge:
    name: str
    case: g.Case
    expect: dict[str, int] = field(default_factory=dict)    # "x10", "f10", "fflags", "mem+N" (8 bytes)
    base: list[g.Insn] | None = None                        # the same thing in base instructions (qemu)


def _case(items: list[g.Insn], x: dict[int, int] | None = None, f: dict[int, int] | None = None,
          frm: int = 0, mem: bytes | None = None) -> g.Case:
    xs = [0] * 32
    for r, v in (x or {}).items():
        xs[r] = v & M64
    fs = [0] * 32
    for r, v in (f or {}).items():
        fs[r] = v
    return g.Case(xs, fs, frm << 5, mem if mem is not None else bytes(range(256)), [items])


HALF_SOURCES_D = [1.0, -1.0, 65504.0, 65519.99, 65520.0, 1e10, -1e10, 2.0 ** -24, 2.0 ** -25,
                  3 * 2.0 ** -26, -(3 * 2.0 ** -26), 2.0 ** -14 - 2.0 ** -26, 2.0 ** -14 - 2.0 ** -25,
                  2.0 ** -14 - 2.0 ** -12 * 2.0 ** -13, 0.1, -0.1, 1 / 3, 1e-300, 5e-324, 0.0, -0.0,
                  float("inf"), float("-inf"), 2049.0, 2051.0, -2051.0, 1.0009765625 + 2.0 ** -11]
HALF_SOURCES_D_RAW = [_d(v) for v in HALF_SOURCES_D] + [0x7FF8000000000000, 0x7FF0000000000001,
                                                        0xFFF4000000000123]
HALF_SOURCES_S_RAW = [_s(v) for v in (1.0, 65504.0, 65520.0, 2.0 ** -24, 2.0 ** -25, 0.1, -(2.0 ** -14 - 2.0 ** -26),
                                      3e38, 1e-40)] + [0x7FC00000, 0x7F800001, 0xFF800000]
HALVES = [0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x3C00, 0xBC00, 0x7BFF, 0x7C00, 0xFC00,
          0x7E00, 0x7D00, 0xFE01, 0x3555]


def zfh_edges() -> list[Edge]:
    out = []
    for rm in (RNE, RTZ, RDN, RUP, RMM):
        for raw in HALF_SOURCES_D_RAW:
            bits, flags = ref_narrow(raw, D, H, rm)
            out.append(Edge(f"fcvt.h.d {raw:#x} rm{rm}", _case([g.fcvt_h("fcvt.h.d", 10, 11, rm)], f={11: raw}),
                            {"f10": box(bits, H), "fflags": flags}))
        for raw in HALF_SOURCES_S_RAW:
            bits, flags = ref_narrow(raw, S, H, rm)
            out.append(Edge(f"fcvt.h.s {raw:#x} rm{rm}",
                            _case([g.fcvt_h("fcvt.h.s", 10, 11, rm)], f={11: box(raw, S)}),
                            {"f10": box(bits, H), "fflags": flags}))
    # DYN with frm = RUP, and an unboxed single (the canonical NaN)
    bits, flags = ref_narrow(_d(0.1), D, H, RUP)
    out.append(Edge("fcvt.h.d dyn frm=rup", _case([g.fcvt_h("fcvt.h.d", 10, 11, DYN)], f={11: _d(0.1)}, frm=RUP),
                    {"f10": box(bits, H), "fflags": flags}))
    out.append(Edge("fcvt.h.s unboxed", _case([g.fcvt_h("fcvt.h.s", 10, 11, RNE)], f={11: _s(1.0)}),
                    {"f10": box(0x7E00, H), "fflags": 0}))
    for h in HALVES:
        for name, dst in (("fcvt.s.h", S), ("fcvt.d.h", D)):
            bits, flags = ref_widen(h, H, dst)
            out.append(Edge(f"{name} {h:#x}", _case([g.fcvt_h(name, 10, 11, RNE)], f={11: box(h, H)}),
                            {"f10": box(bits, dst), "fflags": flags}))
    for raw in (0xFFFFFFFF00003C00, 0x3C00, 0xFFFEFFFFFFFF3C00):          # not NaN-boxed halves
        out.append(Edge(f"fcvt.d.h unboxed {raw:#x}", _case([g.fcvt_h("fcvt.d.h", 10, 11, DYN)], f={11: raw}),
                        {"f10": D.qnan, "fflags": 0}))
    # moves: fmv.x.h sign-extends the low 16 bits as they are; fmv.h.x boxes
    for raw in (0xFFFFFFFFFFFF8001, 0x1234567800007FFF, 0xFFFFFFFFFFFFFFFF):
        low = raw & 0xFFFF
        out.append(Edge(f"fmv.x.h {raw:#x}", _case([g.fmv_x_h(10, 11)], f={11: raw}),
                        {"x10": low | 0xFFFFFFFFFFFF0000 if low >> 15 else low}))
    out.append(Edge("fmv.h.x", _case([g.fmv_h_x(10, 11)], x={11: 0x123456789ABCDEF0}), {"f10": BOX16 | 0xDEF0}))
    # flh/fsh: 2-byte transfers at even and odd offsets (the buffer holds bytes 0..255)
    out.append(Edge("flh", _case([g.flh(10, g.SP, 6)]), {"f10": BOX16 | 0x0706}))
    out.append(Edge("flh odd", _case([g.flh(10, g.SP, 9)]), {"f10": BOX16 | 0x0A09}))
    out.append(Edge("fsh", _case([g.fsh(11, g.SP, 18)], f={11: 0x1122334455667788}),
                    {"mem+16": int.from_bytes(bytes([16, 17]) + bytes([0x88, 0x77]) + bytes(range(20, 24)), "little")}))
    return out


def zfa_edges() -> list[Edge]:
    out = []
    for t, f in (("s", S), ("d", D)):
        for i, text in enumerate(g.FLI_TEXT):
            if text == "min":
                v = 1 << f.mant
            elif text == "nan":
                v = f.qnan
            else:
                v = _s(float(text)) if f is S else _d(float(text))
            out.append(Edge(f"fli.{t} {text}", _case([g.fli(t, 10, i)]), {"f10": box(v, f), "fflags": 0}))
    d_vals = [_d(v) for v in (0.0, -0.0, 1.0, -1.0, 2.5, -2.5, 0.5, -0.5, 0.3, -0.3, 1.5, 0.75, 2.0 ** 52 - 0.5,
                              2.0 ** 52 + 1, 1e300, 5e-324, float("inf"), float("-inf"))] + \
        [0x7FF8000000000000, 0x7FF0000000000001, 0xFFF8000000000001]
    s_vals = [_s(v) for v in (0.0, -0.0, 2.5, -2.5, -0.5, 0.3, 8388607.5, 8388609.0, 1e-45, float("inf"))] + \
        [0x7FC00000, 0x7FA00000]
    for t, f, vals in (("s", S, s_vals), ("d", D, d_vals)):
        for name in ("fround", "froundnx"):
            for rm in (RNE, RTZ, RDN, RUP, RMM):
                for raw in vals:
                    r, flags = ref_round(raw, f, rm, name == "froundnx")
                    out.append(Edge(f"{name}.{t} {raw:#x} rm{rm}", _case([g.fround(name, t, 10, 11, rm)],
                                                                         f={11: box(raw, f)}),
                                    {"f10": box(r, f), "fflags": flags}))
        r, flags = ref_round(vals[4], f, RDN, True)
        out.append(Edge(f"froundnx.{t} dyn frm=rdn", _case([g.fround("froundnx", t, 10, 11, DYN)],
                                                             f={11: box(vals[4], f)}, frm=RDN),
                        {"f10": box(r, f), "fflags": flags}))
        pairs = [(vals[0], vals[1]), (vals[1], vals[0]), (vals[2], vals[3]), (vals[-1], vals[2]),
                 (vals[-2], vals[2]), (vals[-2], vals[-1]), (vals[2], vals[2])]
        for a, b in pairs:
            for name in ("fminm", "fmaxm"):
                r, flags = ref_minmax(a, b, f, name == "fmaxm", True)
                out.append(Edge(f"{name}.{t} {a:#x} {b:#x}", _case([g.zfa_bin(name, t, 10, 11, 12)],
                                                                   f={11: box(a, f), 12: box(b, f)}),
                                {"f10": box(r, f), "fflags": flags}))
            for name in ("fleq", "fltq"):
                r, flags = ref_quiet_cmp(a, b, f, name == "fltq")
                out.append(Edge(f"{name}.{t} {a:#x} {b:#x}", _case([g.zfa_bin(name, t, 10, 11, 12)],
                                                                   f={11: box(a, f), 12: box(b, f)}),
                                {"x10": r, "fflags": flags}))
    for v in (0.0, -0.0, 1.5, -1.5, 0.999, 2.0 ** 31 - 1, 2.0 ** 31, 2.0 ** 31 + 1.5, -(2.0 ** 31), -(2.0 ** 31) - 0.5,
              -(2.0 ** 31) - 1, 2.0 ** 32 + 7, -(2.0 ** 33) - 5, 2.0 ** 52 + 3, 2.0 ** 62 + 2.0 ** 40, 2.0 ** 80,
              1e-310, float("inf"), float("-inf")):
        raw = _d(v)
        r, flags = ref_fcvtmod(raw)
        out.append(Edge(f"fcvtmod.w.d {v!r}", _case([g.fcvtmod(10, 11)], f={11: raw}), {"x10": r, "fflags": flags}))
    for raw in (0x7FF8000000000000, 0x7FF0000000000001):
        out.append(Edge(f"fcvtmod.w.d {raw:#x}", _case([g.fcvtmod(10, 11)], f={11: raw}), {"x10": 0, "fflags": NV}))
    return out


def zcb_edges() -> list[Edge]:
    """Zcb on x9 (= x[rs1]), with the base instructions qemu runs for comparison."""
    out = []
    vals = [0, 0x80, 0x7F, 0xFFFFFFFF_FFFFFFFF, 0x12345678_9ABCDEF0, 0xFFFF_8000, 0x8000_0000_8000_8080]
    base_of = {"c.zext.b": lambda: g.w32(g.i_type(0x13, 7, 9, 9, 255), "andi x9, x9, 255"),
               "c.sext.b": lambda: g.b_insn("sext.b", 9, 9), "c.zext.h": lambda: g.b_insn("zext.h", 9, 9),
               "c.sext.h": lambda: g.b_insn("sext.h", 9, 9), "c.zext.w": lambda: g.b_insn("add.uw", 9, 9, 0),
               "c.not": lambda: g.w32(g.i_type(0x13, 4, 9, 9, -1), "xori x9, x9, -1")}

    def sx(v: int, bits: int) -> int:
        v &= (1 << bits) - 1
        return (v - (1 << bits)) & M64 if v >> (bits - 1) else v
    model = {"c.zext.b": lambda v: v & 0xFF, "c.sext.b": lambda v: sx(v, 8), "c.zext.h": lambda v: v & 0xFFFF,
             "c.sext.h": lambda v: sx(v, 16), "c.zext.w": lambda v: v & 0xFFFFFFFF, "c.not": lambda v: ~v & M64}
    for name in g.ZCB_UNARY:
        for v in vals:
            out.append(Edge(f"{name} {v:#x}", _case([g.zcb_unary(name, 9)], x={9: v}), {"x9": model[name](v)},
                            [base_of[name]()]))
    for a, b in ((3, 5), (M64, M64), (1 << 63, 2), (0x1_0000_0001, 0xFFFF_FFFF), (7, 0)):
        out.append(Edge(f"c.mul {a:#x} {b:#x}", _case([g.zcb_mul(9, 14)], x={9: a, 14: b}), {"x9": a * b & M64},
                        [g.w32(g.r_type(0x33, 0, 1, 9, 9, 14), "mul x9, x9, x14")]))
    out.append(Edge("c.mul rd=rs2", _case([g.zcb_mul(9, 9)], x={9: 0xFFFF_FFFF}), {"x9": 0xFFFF_FFFF ** 2 & M64},
                    [g.w32(g.r_type(0x33, 0, 1, 9, 9, 9), "mul x9, x9, x9")]))
    mem = bytes((i * 37 + 0x80) & 0xFF for i in range(256))     # bytes with the top bit set and clear
    setup = g.w32(g.i_type(0x13, 0, 11, g.SP, 100), "addi x11, x2, 100")
    for off in range(4):
        want = mem[100 + off]
        out.append(Edge(f"c.lbu +{off}", _case([setup, g.zcb_mem("c.lbu", 10, 11, off)], mem=mem), {"x10": want},
                        [setup, g.w32(g.i_type(0x03, 4, 10, 11, off), f"lbu x10, {off}(x11)")]))
        new = bytearray(mem)
        new[100 + off] = 0xA5
        out.append(Edge(f"c.sb +{off}", _case([setup, g.zcb_mem("c.sb", 10, 11, off)], x={10: 0x1234_56A5}, mem=mem),
                        {"mem+96": int.from_bytes(new[96:104], "little")},
                        [setup, g.w32(g.s_type(0x23, 0, 11, 10, off), f"sb x10, {off}(x11)")]))
    for off in (0, 2):
        h = int.from_bytes(mem[100 + off:102 + off], "little")
        out.append(Edge(f"c.lhu +{off}", _case([setup, g.zcb_mem("c.lhu", 10, 11, off)], mem=mem), {"x10": h},
                        [setup, g.w32(g.i_type(0x03, 5, 10, 11, off), f"lhu x10, {off}(x11)")]))
        out.append(Edge(f"c.lh +{off}", _case([setup, g.zcb_mem("c.lh", 10, 11, off)], mem=mem), {"x10": sx(h, 16)},
                        [setup, g.w32(g.i_type(0x03, 1, 10, 11, off), f"lh x10, {off}(x11)")]))
        new = bytearray(mem)
        new[100 + off:102 + off] = b"\x5a\xa5"
        out.append(Edge(f"c.sh +{off}", _case([setup, g.zcb_mem("c.sh", 10, 11, off)], x={10: 0xFFFF_A55A}, mem=mem),
                        {"mem+96": int.from_bytes(new[96:104], "little")},
                        [setup, g.w32(g.s_type(0x23, 1, 11, 10, off), f"sh x10, {off}(x11)")]))
    return out


def misc_edges() -> list[Edge]:
    out = []
    for n in (0, 7, 28, 31):
        out.append(Edge(f"mop.r.{n}", _case([g.mop_r(n, 10, 11)], x={10: 5, 11: 6}), {"x10": 0, "x11": 6}))
    for n in (0, 7):
        out.append(Edge(f"mop.rr.{n}", _case([g.mop_rr(n, 10, 10, 12)], x={10: 5, 12: 6}), {"x10": 0, "x12": 6}))
    out.append(Edge("mop.r x0", _case([g.mop_r(3, 0, 11)], x={11: 6}), {"x11": 6}))
    regs = {r: 0x1000 + r for r in range(1, 16) if r != g.SP}
    for n in (1, 5, 15):
        out.append(Edge(f"c.mop.{n}", _case([g.c_mop(n)], x=regs), {f"x{r}": v for r, v in regs.items()}))
    for name, word in g.WRS.items():
        out.append(Edge(name, _case([g.w32(word, name)], x={10: 3}), {"x10": 3}))
    hints = [g.w32(0x04056013, "prefetch.i 64(x10)"), g.w32(0x00200033, "ntl.p1"), g.w16(0x9016, "c.ntl.all"),
             g.w32(0x0100000F, "pause")]
    out.append(Edge("hints", _case(hints, x={10: 9}), {"x10": 9}))
    mem = bytes(range(256))
    for name in g.CBO:
        for start in (64, 100, 127):         # the 64-byte block holding buffer+start: bytes 64..127
            items = [g.w32(g.i_type(0x13, 0, 11, g.SP, start), f"addi x11, x2, {start}"), g.cbo(name, 11)]
            exp = {}
            for off in range(0, 256, 8):
                chunk = bytes(8) if name == "cbo.zero" and 64 <= off < 128 else mem[off:off + 8]
                exp[f"mem+{off}"] = int.from_bytes(chunk, "little")
            out.append(Edge(f"{name} +{start}", _case(items, mem=mem), exp))
    return out


def _build(edges: list[Edge], base: bool = False) -> g.Program:
    cases = []
    for e in edges:
        c = e.case
        cases.append(replace(c, items=[e.base]) if base else c)
    return g.build_program(cases)


def _check(edges: list[Edge], outputs: dict[str, bytes]) -> None:
    wrong = []
    for engine, out in outputs.items():
        for e, st in zip(edges, g.parse_output(out, len(edges))):
            for key, want in e.expect.items():
                if key == "fflags":
                    got = st.fcsr & 31
                elif key.startswith("mem+"):
                    off = int(key[4:])
                    got = int.from_bytes(st.mem[off:off + 8], "little")
                else:
                    got = (st.x if key[0] == "x" else st.f)[int(key[1:])]
                if got != want:
                    wrong.append(f"{engine}: {e.name}: {key} = {got:#x}, expected {want:#x}")
    assert not wrong, f"{len(wrong)} wrong:\n" + "\n".join(wrong[:40])


def _qemu(prog: g.Program, tmp_path, cpu: str) -> bytes:
    guest = tmp_path / "guest-qemu"
    guest.write_bytes(prog.elf)
    guest.chmod(0o755)
    return g.run_subprocess([g.qemu_path(), "-cpu", cpu, str(guest)])


def all_edges() -> list[Edge]:
    return zfh_edges() + zfa_edges() + zcb_edges() + misc_edges()


def test_reference_models_spot_checks():
    """The reference models against values worked out by hand."""
    assert ref_narrow(_d(65520.0), D, H, RNE) == (0x7C00, OF | NX)
    assert ref_narrow(_d(65520.0), D, H, RTZ) == (0x7BFF, NX)
    assert ref_narrow(_d(-1e10), D, H, RUP) == (0xFBFF, OF | NX)
    assert ref_narrow(_d(2.0 ** -25), D, H, RNE) == (0x0000, UF | NX)      # tie to even: 0
    assert ref_narrow(_d(2.0 ** -25), D, H, RUP) == (0x0001, UF | NX)
    assert ref_narrow(_d(2.0 ** -14 - 2.0 ** -26), D, H, RNE) == (0x0400, NX)   # rounds to 2^-14: not tiny
    assert ref_narrow(_d(2.0 ** -14 - 2.0 ** -26), D, H, RTZ) == (0x03FF, UF | NX)
    assert ref_narrow(0x7FF0000000000001, D, H, RNE) == (0x7E00, NV)
    assert ref_widen(0x0001, H, D) == (_d(2.0 ** -24), 0)
    assert ref_widen(0x7D00, H, S) == (0x7FC00000, NV)
    assert ref_round(_d(-0.3), D, RNE, True) == (_d(-0.0), NX)
    assert ref_round(_d(2.5), D, RMM, False) == (_d(3.0), 0)
    assert ref_fcvtmod(_d(2.0 ** 31)) == (0xFFFFFFFF80000000, NV)
    assert ref_fcvtmod(_d(-(2.0 ** 31) - 0.5)) == (0xFFFFFFFF80000000, NX)
    assert ref_fcvtmod(_d(2.0 ** 32 + 7)) == (7, NV)


def test_edge_cases_all_engines(tmp_path, config_dir, build_image_cached):
    """Every edge case as one program on aot, jit and interp."""
    edges = all_edges()
    assert len(edges) > 500
    prog = _build(edges)
    _check(edges, run_engines(prog, tmp_path, ("aot", "jit", "interp"), build_image_cached))


@pytest.mark.skipif(not g.qemu_path(), reason="qemu-riscv64 not installed")
def test_zfhmin_edge_cases_on_qemu(tmp_path):
    """qemu-riscv64 7.2 with Zfh agrees with the Zfhmin reference values (so
    the model that checks our engines is itself checked)."""
    edges = zfh_edges()
    _check(edges, {"qemu": _qemu(_build(edges), tmp_path, QEMU_ZFH)})


@pytest.mark.skipif(not g.qemu_path(), reason="qemu-riscv64 not installed")
def test_zcb_base_forms_on_qemu(tmp_path):
    """The base instructions each Zcb instruction stands for (the spec's
    expansion) give the expected values on qemu-riscv64 too."""
    edges = zcb_edges()
    _check(edges, {"qemu": _qemu(_build(edges, base=True), tmp_path, "rv64,zba=true,zbb=true")})


# ---------------------------------------------------------------------------
# random programs
# ---------------------------------------------------------------------------

ZFH_HEAVY = replace(g.GenOptions(), zfh_ops=2.0, fp_ops=0.6, amo_ops=0.05, csr_ops=0.1)
RVA23_MIX = replace(g.GenOptions(), zcb_ops=1.0, zfa_ops=1.5, mop_ops=0.5, zfh_ops=0.5, b_ops=0.3,
                    amo_ops=0.05, csr_ops=0.1)


def test_random_zfhmin_agrees_with_qemu(tmp_path, config_dir, build_image_cached):
    """Zfhmin-heavy random cases mixed with RV64GC: aot, jit, interp and
    qemu-riscv64 (Zfh enabled), full state."""
    prog = g.build_program(g.generate(2301, 24, 30, ZFH_HEAVY))
    outputs = run_engines(prog, tmp_path, ("aot", "jit", "interp"), build_image_cached)
    if g.qemu_path():
        outputs["qemu"] = _qemu(prog, tmp_path, QEMU_ZFH)
    bad = compare(prog, outputs)
    assert not bad, "\n\n".join(report(prog.cases[i], d, "qemu" if "qemu" in outputs else "interp")
                                for i, d in sorted(bad.items())[:3])


def test_random_rva23_engines_agree(tmp_path, config_dir, build_image_cached):
    """Zcb, Zfa, the may-be-operations, cache-block operations and Zfhmin
    mixed with RV64GC and B: aot, jit and interp agree (no emulator here has
    Zcb, Zfa or Zimop)."""
    prog = g.build_program(g.generate(2302, 24, 30, RVA23_MIX))
    outputs = run_engines(prog, tmp_path, ("aot", "jit", "interp"), build_image_cached)
    bad = compare(prog, outputs)
    assert not bad, "\n\n".join(report(prog.cases[i], d, "interp") for i, d in sorted(bad.items())[:3])


# ---------------------------------------------------------------------------
# cbo.zero is a store
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("engine", ["aot", "jit", "interp"])
def test_cbo_zero_on_read_only_memory_faults(tmp_path, config_dir, engine):
    """cbo.zero on the (read-only) code page: SIGSEGV at its pc, as a store there."""
    lui_a0 = (CODE_VADDR & ~0xFFF) | (10 << 7) | 0x37     # lui a0, code page
    code = struct.pack("<II", lui_a0, struct.unpack("<I", g.cbo("cbo.zero", 10).code)[0])
    guest = tmp_path / "guest"
    guest.write_bytes(tiny_elf(code))
    guest.chmod(0o755)
    if engine == "aot":
        image = tmp_path / "guest.so"
        p = run_tool([*aotc_cmd(), "build", "-q", str(guest), "-o", str(image)])
        assert p.returncode == 0, p.stderr
        p = run_tool([*aotrun_cmd(), "--fallback=none", str(image)])
    else:
        p = run_tool([*aotrun_cmd(), f"--engine={engine}", str(guest)])
    err = p.stderr.decode()
    assert p.returncode == 128 + 11, err
    assert f"pc {CODE_VADDR + 4:#x}" in err, err
