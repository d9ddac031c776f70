"""decoder -> semantics -> evaluator tests for each riscv64 bug class.

Expected values are derived from the RISC-V unprivileged spec (cited per
case).  Where the cross toolchain and qemu-riscv64 are installed, a
differential test runs the same static programs under qemu and compares every
register with the evaluator.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile

import pytest

from aotc.interp.evaluator import CpuState, Evaluator, SparseMemory
from aotc.isa.riscv64.decoder import decode
from aotc.isa.riscv64.semantics import SEMANTICS
from aotc.isa.riscv64.state import EXIT_BREAK, EXIT_CONTINUE, EXIT_FENCE_I, EXIT_ILLEGAL, EXIT_SYSCALL

AS = "riscv64-linux-gnu-as"
OBJCOPY = "riscv64-linux-gnu-objcopy"
GCC = "riscv64-linux-gnu-gcc"
QEMU = "qemu-riscv64"
HAVE_AS = bool(shutil.which(AS) and shutil.which(OBJCOPY))
needs_as = pytest.mark.skipif(not HAVE_AS, reason=f"cross assembler {AS} not installed")

M64 = (1 << 64) - 1
CODE = 0x10000
DATA = 0x20000
CANON_S = 0xFFFFFFFF7FC00000      # canonical single NaN, boxed (spec 13.3 / 14.2)
CANON_D = 0x7FF8000000000000      # canonical double NaN (spec 14.3)
BOX = 0xFFFFFFFF00000000

ABI = {n: i for i, n in enumerate(
    "zero ra sp gp tp t0 t1 t2 s0 s1 a0 a1 a2 a3 a4 a5 a6 a7 s2 s3 s4 s5 s6 s7 s8 s9 s10 s11 t3 t4 t5 t6".split())}


def u64(v: int) -> int:
    return v & M64


def sbox(bits32: int) -> int:
    return BOX | bits32


def f32(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


def f64(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]


_ASM_CACHE: dict[str, bytes] = {}


def assemble(src: str) -> bytes:
    if src not in _ASM_CACHE:
        with tempfile.TemporaryDirectory() as tmp:
            s, o, b = (os.path.join(tmp, n) for n in ("t.s", "t.o", "t.bin"))
            with open(s, "w") as fh:
                fh.write(".text\n" + src + "\n")
            r = subprocess.run([AS, "-march=rv64gc", "-o", o, s], capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
            subprocess.run([OBJCOPY, "-O", "binary", "-j", ".text", o, b], check=True)
            with open(b, "rb") as fh:
                _ASM_CACHE[src] = fh.read()
    return _ASM_CACHE[src]


class Run:
    def __init__(self, state: CpuState, mem: SparseMemory, exits: list[int]) -> None:
        self.state, self.mem, self.exits = state, mem, exits

    def x(self, r: str | int) -> int:
        return self.state.x[ABI[r] if isinstance(r, str) else r]

    def f(self, r: int) -> int:
        return self.state.f[r]

    @property
    def fflags(self) -> int:
        return self.state.fcsr & 0x1F


def run_code(code: bytes, x: dict | None = None, f: dict | None = None, fcsr: int = 0,
             mem: dict[int, bytes] | None = None, max_steps: int = 1000) -> Run:
    state = CpuState()
    m = SparseMemory()
    m.map(CODE, len(code) + 16)
    m.write_bytes(CODE, code)
    m.map(DATA, 0x2000)
    for addr, data in (mem or {}).items():
        m.write_bytes(addr, data)
    for r, v in (x or {}).items():
        state.x[ABI[r] if isinstance(r, str) else r] = u64(v)
    for r, v in (f or {}).items():
        state.f[r] = u64(v)
    state.fcsr = fcsr
    state.pc = CODE
    ev = Evaluator(state, m)
    exits = []
    for _ in range(max_steps):
        if not CODE <= state.pc < CODE + len(code):
            break
        insn = decode(code, state.pc - CODE, state.pc)
        e = ev.execute(insn)
        if e != EXIT_CONTINUE:
            exits.append(e)
            break
    return Run(state, m, exits)


def run(src: str, **kw) -> Run:
    return run_code(assemble(src), **kw)


# ---------------------------------------------------------------------------
# coverage
# ---------------------------------------------------------------------------

def test_every_decoded_mnemonic_has_semantics():
    from aotc.isa.riscv64 import decoder as d

    names = set(d._BRANCH.values()) | set(d._LOAD.values()) | set(d._STORE.values()) | set(d._OPIMM.values())
    names |= set(d._OP.values()) | set(d._OP32.values()) | set(d._CSR.values()) | d.FP_RM_MNEMONICS
    names |= {"slli", "srli", "srai", "addiw", "slliw", "srliw", "sraiw", "lui", "auipc", "jal", "jalr",
              "ecall", "ebreak", "fence", "fence.i", "flw", "fld", "fsw", "fsd",
              "fmv.x.w", "fmv.x.d", "fmv.w.x", "fmv.d.x"}
    names |= {f"{a}.{w}" for a in d._AMO.values() for w in "wd"}
    names |= {f"{m}.{t}" for m in ("fsgnj", "fsgnjn", "fsgnjx", "fmin", "fmax", "feq", "flt", "fle", "fclass")
              for t in "sd"}
    # Zba/Zbb/Zbs beyond the _OP/_OP32 tables (tests/test_rv64_bitmanip.py)
    names |= set(d._OPIMM_UNARY.values()) | set(d._OPIMM32_UNARY.values()) | set(d._OPIMM5_UNARY.values())
    names |= set(d._OPIMM_SHIFT.values()) | {"slli.uw", "roriw", "zext.h"}
    # RVA23U64's scalar extensions (tests/test_rv64_rva23_scalar.py)
    names |= {"mop.r", "mop.rr", "wrs.nto", "wrs.sto", "flh", "fsh", "fmv.x.h", "fmv.h.x", "fcvtmod.w.d"}
    names |= set(d._CBO.values())
    names |= {f"{m}.{t}" for m in ("fminm", "fmaxm", "fleq", "fltq", "fli") for t in "sd"}
    assert names <= SEMANTICS.keys(), names - SEMANTICS.keys()
    assert len(names) == len(SEMANTICS)


# ---------------------------------------------------------------------------
# integer
# ---------------------------------------------------------------------------

def test_x0_writes_dropped():
    r = run_code(bytes.fromhex("13055000" "13000000" "93054000" "33803500"),  # li a0,5; nop; li a1,4; add x0,a0,a1
                 x={})
    assert r.x(0) == 0 and r.x("a0") == 5
    r = run_code(bytes.fromhex("b7f0ffff" "37f0ffff" "6f004000"))  # lui ra,..; lui x0,..; jal x0,+4
    assert r.x(0) == 0 and r.x("ra") == u64(-4096)


@needs_as
def test_rd_equals_rs1():
    # jalr a0, 8(a0): target uses the OLD a0 (spec 2.5: target computed, then rd written)
    r = run("jalr a0, 8(a0)\nnop\nnop\nli a1, 7", x={"a0": CODE})
    assert r.x("a0") == CODE + 4 and r.x("a1") == 7
    # c.jalr encodings write ra; jalr ra, 0(ra)
    r = run("jalr ra, 0(ra)", x={"ra": CODE + 0x100})
    assert r.state.pc == CODE + 0x100 and r.x("ra") == CODE + 4
    r = run("mulhsu a0, a0, a1", x={"a0": -1, "a1": 2})          # (-1 * 2) >> 64 = -1
    assert r.x("a0") == M64
    r = run("mulhsu a0, a1, a0", x={"a0": M64, "a1": 2})         # 2 * (2**64-1) >> 64 = 1
    assert r.x("a0") == 1
    r = run("add a0, a0, a0", x={"a0": 21})
    assert r.x("a0") == 42


@needs_as
@pytest.mark.parametrize("src, a0, a1, expect", [
    ("addw a0, a0, a1", 0x7FFFFFFF, 1, u64(-(1 << 31))),
    ("subw a0, a0, a1", 0, 1, M64),
    ("addiw a0, a0, 1", 0x7FFFFFFF, 0, u64(-(1 << 31))),
    ("addiw a0, a0, 0", 0x1_8000_0000, 0, u64(-(1 << 31))),       # sext.w
    ("sllw a0, a0, a1", 1, 31 + 32, u64(-(1 << 31))),            # amount masked to 5 bits
    ("slliw a0, a0, 31", 1, 0, u64(-(1 << 31))),
    ("srlw a0, a0, a1", 0xFFFFFFFF_80000000, 32, u64(-(1 << 31))),  # >>0 then sext
    ("srliw a0, a0, 1", 0xFFFFFFFF, 0, 0x7FFFFFFF),
    ("sraw a0, a0, a1", 0x80000000, 4, u64(-(1 << 27))),
    ("sraiw a0, a0, 4", 0x80000000, 0, u64(-(1 << 27))),
    ("mulw a0, a0, a1", 0x10000, 0x8000, u64(-(1 << 31))),
    ("divw a0, a0, a1", 0xFFFFFFFF_FFFFFFFA, 2, M64 - 2),         # -6/2 on low words
    ("divuw a0, a0, a1", 0xFFFFFFFF, 1, M64),                     # 0xffffffff sign-extends
    ("remw a0, a0, a1", 0x1_FFFFFFF9, 4, u64(-3)),
    ("remuw a0, a0, a1", 0xFFFFFFFF, 0x1_0000_0000, M64),         # divisor low word 0 -> dividend
    ("c.addw a0, a1", 0x7FFFFFFF, 1, u64(-(1 << 31))),
    ("c.subw a0, a1", 0x80000000, 1, 0x7FFFFFFF),
    ("c.addiw a0, 1", 0x7FFFFFFF, 0, u64(-(1 << 31))),
    ("sll a0, a0, a1", 1, 64 + 63, 1 << 63),                      # 6-bit mask
    ("srl a0, a0, a1", 1 << 63, 64 + 63, 1),
    ("sra a0, a0, a1", 1 << 63, 127, M64),
])
def test_w_ops_and_shifts(src, a0, a1, expect):
    assert run(src, x={"a0": a0, "a1": a1}).x("a0") == expect


MIN64, MIN32 = 1 << 63, u64(-(1 << 31))


@needs_as
@pytest.mark.parametrize("op, a, b, expect", [
    # Spec table "Semantics for division by zero and division overflow" (M ext.):
    ("div", 7, 0, M64), ("divu", 7, 0, M64), ("rem", 7, 0, 7), ("remu", 7, 0, 7),
    ("divw", 7, 0, M64), ("divuw", 7, 0, M64), ("remw", 0xFFFFFFFF_80000005, 0, u64(-0x7FFFFFFB)),
    ("remuw", 0x1_80000005, 0, u64(-0x7FFFFFFB)),
    ("div", MIN64, M64, MIN64), ("rem", MIN64, M64, 0),
    ("divw", MIN32, M64, MIN32), ("remw", MIN32, M64, 0),
    ("divu", MIN64, M64, 0), ("remu", MIN64, M64, MIN64),
    ("divuw", MIN32, M64, 0), ("remuw", MIN32, M64, MIN32),
    ("div", -7, 2, u64(-3)), ("rem", -7, 2, u64(-1)),             # round toward zero
    ("mulh", MIN64, MIN64, 1 << 62), ("mulhu", M64, M64, M64 - 1),
])
def test_div_rem_corners(op, a, b, expect):
    assert run(f"{op} a0, a0, a1", x={"a0": a, "a1": b}).x("a0") == expect


@needs_as
def test_loads_extend_and_stores_truncate():
    mem = {DATA: bytes.fromhex("f0e1d2c3b4a59687")}
    code = "\n".join(f"{op} {r}, 0(s0)" for op, r in
                     [("lb", "a0"), ("lbu", "a1"), ("lh", "a2"), ("lhu", "a3"), ("lw", "a4"),
                      ("lwu", "a5"), ("ld", "a6")])
    r = run(code, x={"s0": DATA}, mem=mem)
    assert [r.x(n) for n in ("a0", "a1", "a2", "a3", "a4", "a5", "a6")] == [
        u64(-0x10), 0xF0, u64(-0x1E10), 0xE1F0, u64(-0x3C2D1E10), 0xC3D2E1F0, 0x8796A5B4C3D2E1F0]
    r = run("sb a0, 0(s0)\nsh a0, 8(s0)\nsw a0, 16(s0)\nsd a0, 24(s0)", x={"s0": DATA, "a0": 0x1122334455667788})
    assert r.mem.read(DATA, 8) == 0x88 and r.mem.read(DATA + 8, 8) == 0x7788
    assert r.mem.read(DATA + 16, 8) == 0x55667788 and r.mem.read(DATA + 24, 8) == 0x1122334455667788


@needs_as
def test_control_flow_and_exits():
    r = run("beq a0, a1, 1f\nli a2, 1\n1: li a3, 1", x={"a0": 3, "a1": 3})
    assert r.x("a2") == 0 and r.x("a3") == 1
    r = run("bltu a0, a1, 1f\nli a2, 1\n1: li a3, 1", x={"a0": -1, "a1": 3})
    assert r.x("a2") == 1
    r = run("blt a0, a1, 1f\nli a2, 1\n1: li a3, 1", x={"a0": -1, "a1": 3})
    assert r.x("a2") == 0
    r = run("jal ra, 1f\nli a2, 1\n1: auipc a3, 0")
    assert r.x("ra") == CODE + 4 and r.x("a2") == 0 and r.x("a3") == CODE + 6  # li -> c.li
    assert run("ecall").exits == [EXIT_SYSCALL]
    assert run("c.ebreak").exits == [EXIT_BREAK]
    r = run("fence.i")
    assert r.exits == [EXIT_FENCE_I] and r.state.pc == CODE
    r = run("fence rw, rw\nli a0, 1")
    assert r.x("a0") == 1 and r.exits == []


# ---------------------------------------------------------------------------
# atomics
# ---------------------------------------------------------------------------

@needs_as
def test_lr_sc():
    mem = {DATA: (0x1234).to_bytes(8, "little")}
    r = run("lr.d a0, (s0)\nsc.d a1, a2, (s0)", x={"s0": DATA, "a2": 99}, mem=mem)
    assert r.x("a0") == 0x1234 and r.x("a1") == 0 and r.mem.read(DATA, 8) == 99
    assert r.state.reservation == M64
    # sc without reservation fails, memory unchanged, reservation stays cleared
    r = run("sc.d a1, a2, (s0)", x={"s0": DATA, "a2": 99}, mem=mem)
    assert r.x("a1") == 1 and r.mem.read(DATA, 8) == 0x1234
    # reservation for another address fails; second sc after success fails too
    r = run("lr.w a0, (s1)\nsc.w a1, a2, (s0)", x={"s0": DATA, "s1": DATA + 8, "a2": 5}, mem=mem)
    assert r.x("a1") == 1 and r.mem.read(DATA, 8) == 0x1234
    r = run("lr.w a0, (s0)\nsc.w a1, a2, (s0)\nsc.w a3, a4, (s0)",
            x={"s0": DATA, "a2": 5, "a4": 6}, mem={DATA: b"\xff\xff\xff\xff\x77\x77\x77\x77"})
    assert r.x("a0") == M64 and r.x("a1") == 0 and r.x("a3") == 1
    assert r.mem.read(DATA, 8) == 0x77777777_00000005     # sc.w stores 32 bits only


@needs_as
@pytest.mark.parametrize("op, old, src, new", [
    ("amoswap", 5, 9, 9), ("amoadd", 5, 9, 14), ("amoxor", 5, 9, 12), ("amoand", 5, 9, 1),
    ("amoor", 5, 9, 13), ("amomin", -1, 3, -1), ("amomax", -1, 3, 3),
    ("amominu", -1, 3, 3), ("amomaxu", -1, 3, -1),
])
@pytest.mark.parametrize("w", ["w", "d"])
def test_amo(op, old, src, new, w):
    bits = 32 if w == "w" else 64
    size = bits // 8
    mask = (1 << bits) - 1
    mem = {DATA: (old & mask).to_bytes(size, "little") + b"\xaa" * 8}
    r = run(f"{op}.{w} a0, a1, (s0)", x={"s0": DATA, "a1": src}, mem=mem)
    assert r.x("a0") == u64(old)                      # .w results are sign-extended
    assert r.mem.read(DATA, size) == new & mask
    assert r.mem.read(DATA + size, 1) == 0xAA         # neighbour untouched


@needs_as
def test_sc_is_value_based():
    """LR records the address and the value; SC succeeds iff memory still
    holds that value (a CAS): a store between them makes it fail and write
    nothing, a store that puts the same value back does not (the ABA caveat
    QEMU shares, docs/architecture.md)."""
    mem = {DATA: (7).to_bytes(8, "little")}
    r = run("lr.d a0, (s0)", x={"s0": DATA}, mem=mem)
    assert r.state.reservation == DATA and r.state.reservation_value == 7
    r = run("lr.w a0, (s0)", x={"s0": DATA}, mem={DATA: b"\xfe\xff\xff\xff"})
    assert r.x("a0") == u64(-2) and r.state.reservation_value == 0xFFFFFFFE   # zero-extended
    r = run("lr.d a0, (s0)\nsd a3, 0(s0)\nsc.d a1, a2, (s0)", x={"s0": DATA, "a2": 99, "a3": 8}, mem=mem)
    assert r.x("a1") == 1 and r.mem.read(DATA, 8) == 8 and r.state.reservation == M64
    r = run("lr.d a0, (s0)\nsd a3, 0(s0)\nsd a0, 0(s0)\nsc.d a1, a2, (s0)",
            x={"s0": DATA, "a2": 99, "a3": 8}, mem=mem)
    assert r.x("a1") == 0 and r.mem.read(DATA, 8) == 99
    # sc.w compares 32 bits: the upper half of the reserved doubleword may change
    r = run("lr.w a0, (s0)\nsw a3, 4(s0)\nsc.w a1, a2, (s0)",
            x={"s0": DATA, "a2": 5, "a3": 1}, mem=mem)
    assert r.x("a1") == 0 and r.mem.read(DATA, 8) == (1 << 32) | 5
    # a failing SC whose new value equals memory (the no-op CAS) still reports failure
    r = run("sc.d a1, a2, (s0)", x={"s0": DATA, "a2": 7}, mem=mem)
    assert r.x("a1") == 1 and r.mem.read(DATA, 8) == 7


@needs_as
@pytest.mark.parametrize("src", ["amoadd.w a0, a1, (s0)", "amoswap.d a0, a1, (s0)", "sc.d a0, a1, (s0)",
                                 "amomaxu.d a0, a1, (s0)"])
def test_misaligned_atomic_faults(src):
    """AMOs and SC need natural alignment (misaligned: a fault, SIGSEGV at the
    address in every engine), and write nothing."""
    from aotc.isa.riscv64.state import EXIT_FAULT

    r = run(src, x={"s0": DATA + 4 if ".d" in src else DATA + 2, "a1": 3})
    assert r.exits == [EXIT_FAULT]
    assert r.mem.read(DATA, 16) == 0


@pytest.mark.parametrize("src, barrier", [
    ("fence rw, rw", "seq_cst"), ("fence w, r", "seq_cst"), ("fence ow, ir", "seq_cst"),
    ("fence r, rw", "acq_rel"), ("fence rw, w", "acq_rel"), ("fence.tso", "acq_rel"),
    ("fence w, w", "acq_rel"), ("fence iorw, iorw", "seq_cst"),
])
def test_fence_maps_to_the_barrier_x86_needs(src, barrier):
    """RVWMO on x86-TSO: only W->R needs a host barrier (LLVM fence seq_cst);
    every other fence is a compiler barrier (fence acq_rel, no instruction)."""
    from aotc.backend.llvm_builder import LLVMBuilder
    from aotc.isa.riscv64.semantics import lift

    if not HAVE_AS:
        pytest.skip(f"cross assembler {AS} not installed")
    insn = decode(assemble(src), 0, CODE)
    assert insn.mnemonic == "fence"
    b = LLVMBuilder(CODE, frozenset())
    b.set_insn(insn.pc, insn.next_pc, insn.raw)
    lift(b, insn)
    fences = [ln.strip() for ln in b.lines if isinstance(ln, str) and ln.strip().startswith("fence")]
    assert fences == [f"fence {barrier}"]
    # the interpreter: a host barrier exactly where translated code has one
    calls = []

    class Mem(SparseMemory):
        def fence(self) -> None:
            calls.append(1)

    Evaluator(CpuState(), Mem()).execute(insn)
    assert len(calls) == (barrier == "seq_cst")


# ---------------------------------------------------------------------------
# floating point
# ---------------------------------------------------------------------------

@needs_as
def test_nan_boxing():
    one_s = f32(1.0)
    # Spec 14.2: an improperly boxed single reads as the canonical NaN.
    r = run("fadd.s fa0, fa1, fa2", f={11: one_s, 12: sbox(one_s)})     # fa1 not boxed
    assert r.f(10) == CANON_S
    r = run("fadd.s fa0, fa1, fa2", f={11: sbox(one_s), 12: sbox(one_s)})
    assert r.f(10) == sbox(f32(2.0))
    r = run("fmv.w.x fa0, a0\nflw fa1, 0(s0)", x={"a0": 0x12345_3F800000, "s0": DATA},
            mem={DATA: struct.pack("<I", 0x40000000)})
    assert r.f(10) == sbox(0x3F800000) and r.f(11) == sbox(0x40000000)
    # fmv.x.w / fsw transfer the low bits without checking the box
    r = run("fmv.x.w a0, fa0\nfsw fa0, 0(s0)", x={"s0": DATA}, f={10: 0x1234_0000_BF800000})
    assert r.x("a0") == u64(-0x40800000) and r.mem.read(DATA, 8) == 0xBF800000
    # fsgnj.s of an unboxed operand: canonical NaN with rs2's sign
    r = run("fsgnjn.s fa0, fa1, fa1", f={11: one_s})
    assert r.f(10) == sbox(0xFFC00000)
    r = run("fcvt.d.s fa0, fa1", f={11: f32(1.5)})
    assert r.f(10) == CANON_D
    r = run("fclass.s a0, fa1", f={11: 0})
    assert r.x("a0") == 1 << 9


@needs_as
def test_canonical_nan_results():
    snan_d = 0x7FF0000000000001
    payload_d = 0xFFF8000000001234
    r = run("fadd.d fa0, fa1, fa2", f={11: payload_d, 12: f64(1.0)})
    assert r.f(10) == CANON_D and r.fflags == 0
    r = run("fmul.d fa0, fa1, fa2", f={11: snan_d, 12: f64(1.0)})
    assert r.f(10) == CANON_D and r.fflags == 16
    r = run("fsub.d fa0, fa1, fa1", f={11: f64(float("inf"))})
    assert r.f(10) == CANON_D and r.fflags == 16
    r = run("fsqrt.s fa0, fa1", f={11: sbox(f32(-1.0))})
    assert r.f(10) == CANON_S and r.fflags == 16
    r = run("fdiv.d fa0, fa1, fa2", f={11: f64(1.0), 12: 0})
    assert r.f(10) == f64(float("inf")) and r.fflags == 8
    r = run("fcvt.s.d fa0, fa1", f={11: payload_d})
    assert r.f(10) == CANON_S
    r = run("fmadd.d fa0, fa1, fa2, fa3", f={11: f64(float("inf")), 12: 0, 13: payload_d})
    assert r.f(10) == CANON_D and r.fflags == 16      # inf*0 is invalid even with qNaN addend
    r = run("fnmadd.d fa0, fa1, fa2, fa3", f={11: f64(2.0), 12: f64(3.0), 13: f64(1.0)})
    assert r.f(10) == f64(-7.0)
    r = run("fmsub.s fa0, fa1, fa2, fa3", f={11: sbox(f32(2.0)), 12: sbox(f32(3.0)), 13: sbox(f32(1.0))})
    assert r.f(10) == sbox(f32(5.0))
    r = run("fnmsub.d fa0, fa1, fa2, fa3", f={11: f64(2.0), 12: f64(3.0), 13: f64(1.0)})
    assert r.f(10) == f64(-5.0)
    r = run("fadd.d fa0, fa1, fa2", f={11: f64(1.0), 12: f64(2.0 ** -60)})
    assert r.f(10) == f64(1.0) and r.fflags == 1


QNAN_S, SNAN_S = sbox(0x7FC00001), sbox(0x7F800001)


@needs_as
@pytest.mark.parametrize("op, a, b, expect, flags", [
    # Spec 13.6 (F 2.2): one NaN -> the other operand; both NaN -> canonical; -0 < +0
    ("fmin.s", QNAN_S, sbox(f32(1.0)), sbox(f32(1.0)), 0),
    ("fmax.s", sbox(f32(1.0)), QNAN_S, sbox(f32(1.0)), 0),
    ("fmin.s", QNAN_S, QNAN_S, CANON_S, 0),
    ("fmin.s", SNAN_S, sbox(f32(2.0)), sbox(f32(2.0)), 16),
    ("fmin.s", sbox(f32(-0.0)), sbox(f32(0.0)), sbox(f32(-0.0)), 0),
    ("fmin.s", sbox(f32(0.0)), sbox(f32(-0.0)), sbox(f32(-0.0)), 0),
    ("fmax.s", sbox(f32(-0.0)), sbox(f32(0.0)), sbox(f32(0.0)), 0),
    ("fmax.s", sbox(f32(0.0)), sbox(f32(-0.0)), sbox(f32(0.0)), 0),
    ("fmin.d", f64(-1.0), f64(2.0), f64(-1.0), 0),
    ("fmax.d", f64(-1.0), f64(2.0), f64(2.0), 0),
    ("fmax.d", 0x7FF0000000000001, 0x7FF0000000000002, CANON_D, 16),
    ("fmin.d", f64(-0.0), f64(0.0), f64(-0.0), 0),
    ("fmax.d", f64(float("-inf")), CANON_D, f64(float("-inf")), 0),
])
def test_fmin_fmax(op, a, b, expect, flags):
    r = run(f"{op} fa0, fa1, fa2", f={11: a, 12: b})
    assert (r.f(10), r.fflags) == (expect, flags)


@needs_as
@pytest.mark.parametrize("op, a, b, expect, flags", [
    ("feq.d", f64(1.0), f64(1.0), 1, 0),
    ("feq.d", CANON_D, f64(1.0), 0, 0),                  # quiet compare
    ("feq.d", 0x7FF0000000000001, f64(1.0), 0, 16),       # sNaN -> NV
    ("flt.d", CANON_D, f64(1.0), 0, 16),                  # signalling compare
    ("fle.d", f64(-0.0), f64(0.0), 1, 0),
    ("flt.d", f64(-0.0), f64(0.0), 0, 0),
    ("flt.s", sbox(f32(1.0)), sbox(f32(2.0)), 1, 0),
    ("feq.s", sbox(f32(1.0)), f32(1.0), 0, 0),            # unboxed rs2 = canonical qNaN
])
def test_compares(op, a, b, expect, flags):
    r = run(f"{op} a0, fa1, fa2", f={11: a, 12: b})
    assert (r.x("a0"), r.fflags) == (expect, flags)


@needs_as
@pytest.mark.parametrize("src, fin, expect, flags", [
    # Spec 13.7 table: NaN -> max; +inf/too large -> max; -inf/too small -> min
    ("fcvt.w.s a0, fa1", QNAN_S, 0x7FFFFFFF, 16),
    ("fcvt.w.s a0, fa1", sbox(f32(float("inf"))), 0x7FFFFFFF, 16),
    ("fcvt.w.s a0, fa1", sbox(f32(float("-inf"))), u64(-(1 << 31)), 16),
    ("fcvt.w.d a0, fa1", f64(3e9), 0x7FFFFFFF, 16),
    ("fcvt.wu.d a0, fa1", f64(3e9), u64(-1294967296), 0),             # 3e9 sext to 64 bits
    ("fcvt.wu.d a0, fa1", CANON_D, M64, 16),                          # 0xffffffff sign-extended
    ("fcvt.wu.d a0, fa1", f64(-1.0), 0, 16),
    ("fcvt.wu.d a0, fa1, rtz", f64(-0.5), 0, 1),
    ("fcvt.l.d a0, fa1", f64(-1e30), 1 << 63, 16),
    ("fcvt.l.d a0, fa1", CANON_D, (1 << 63) - 1, 16),
    ("fcvt.lu.d a0, fa1", f64(1e30), M64, 16),
    ("fcvt.lu.s a0, fa1", QNAN_S, M64, 16),
    ("fcvt.l.d a0, fa1", f64(2.5), 2, 1),                             # dyn = rne (frm 0)
    ("fcvt.l.d a0, fa1, rmm", f64(2.5), 3, 1),
    ("fcvt.l.d a0, fa1, rdn", f64(-2.5), u64(-3), 1),
    ("fcvt.l.d a0, fa1, rup", f64(2.1), 3, 1),
    ("fcvt.w.d a0, fa1, rtz", f64(-2.9), u64(-2), 1),
])
def test_fcvt_to_int(src, fin, expect, flags):
    r = run(src, f={11: fin})
    assert (r.x("a0"), r.fflags) == (expect, flags)


@needs_as
def test_fcvt_from_int_and_between():
    r = run("fcvt.s.w fa0, a0", x={"a0": 0x1_FFFFFFFF})     # low word -1
    assert r.f(10) == sbox(f32(-1.0))
    r = run("fcvt.d.wu fa0, a0", x={"a0": 0xFFFFFFFF})
    assert r.f(10) == f64(4294967295.0)
    r = run("fcvt.s.l fa0, a0", x={"a0": (1 << 24) + 1})
    assert r.f(10) == sbox(f32(16777216.0)) and r.fflags == 1
    r = run("fcvt.d.lu fa0, a0", x={"a0": M64})
    assert r.f(10) == f64(2.0 ** 64) and r.fflags == 1
    r = run("fcvt.s.d fa0, fa1", f={11: f64(1e300)})
    assert r.f(10) == sbox(f32(float("inf"))) and r.fflags == 4 | 1
    r = run("fcvt.d.s fa0, fa1", f={11: sbox(f32(0.1))})
    assert r.f(10) == f64(struct.unpack("<f", struct.pack("<f", 0.1))[0])


@needs_as
@pytest.mark.parametrize("value, bit", [
    (f64(float("-inf")), 0), (f64(-1.0), 1), (0x800FFFFFFFFFFFFF, 2), (f64(-0.0), 3), (0, 4),
    (1, 5), (f64(1.0), 6), (f64(float("inf")), 7), (0x7FF0000000000001, 8), (CANON_D, 9),
])
def test_fclass_d(value, bit):
    assert run("fclass.d a0, fa1", f={11: value}).x("a0") == 1 << bit


@needs_as
@pytest.mark.parametrize("value, bit", [
    (f32(float("-inf")), 0), (f32(-1.0), 1), (0x80000001, 2), (0x80000000, 3), (0, 4),
    (1, 5), (f32(1.0), 6), (f32(float("inf")), 7), (0x7F800001, 8), (0x7FC00000, 9),
])
def test_fclass_s(value, bit):
    assert run("fclass.s a0, fa1", f={11: sbox(value)}).x("a0") == 1 << bit


@needs_as
def test_sign_injection_and_moves():
    r = run("fsgnj.d fa0, fa1, fa2\nfsgnjn.d fa3, fa1, fa2\nfsgnjx.d fa4, fa2, fa2",
            f={11: 0x7FF0000000000001, 12: f64(-2.0)})
    assert r.f(10) == 0xFFF0000000000001       # sNaN payload kept: bit operation
    assert r.f(13) == 0x7FF0000000000001
    assert r.f(14) == f64(2.0) and r.fflags == 0
    r = run("fmv.d.x fa0, a0\nfmv.x.d a1, fa0", x={"a0": 0x7FF0000000000001})
    assert r.f(10) == 0x7FF0000000000001 and r.x("a1") == 0x7FF0000000000001


@needs_as
def test_rounding_mode_traps():
    r = run(".insn r 0x53, 5, 0x01, fa0, fa1, fa2")          # fadd.d with rm=5
    assert r.exits == [EXIT_ILLEGAL] and r.f(10) == 0
    # dyn with frm = 5 traps in the builder (the semantics pass 7 through)
    r = run("fadd.d fa0, fa1, fa2", fcsr=5 << 5)
    assert r.exits == [EXIT_ILLEGAL]
    r = run("fadd.d fa0, fa1, fa2", f={11: f64(1.0), 12: f64(2.0 ** -53 * 3)}, fcsr=3 << 5)  # RUP
    assert r.f(10) == f64(1.0000000000000004) and r.fflags == 1    # 1.5 ulp rounds up to 2 ulp


@needs_as
def test_csr():
    r = run("csrrs a0, fflags, x0\ncsrrw a1, frm, a2\ncsrrs a3, fcsr, x0", fcsr=0b010_10101 & 0xFF,
            x={"a2": 3})
    assert r.x("a0") == 0b10101 and r.x("a1") == 0b010 and r.x("a3") == (3 << 5) | 0b10101
    r = run("csrrci a0, fflags, 1\ncsrrsi a1, frm, 4\ncsrrwi a2, fcsr, 0\ncsrrs a3, fcsr, x0", fcsr=0xFF)
    assert (r.x("a0"), r.x("a1"), r.x("a2"), r.x("a3")) == (0x1F, 7, 0xFF & ~1, 0)
    r = run("csrrw a0, fflags, a1", x={"a1": 0xFFF}, fcsr=0x40)
    assert r.x("a0") == 0 and r.state.fcsr == 0x5F
    # the counters read (tests/test_counters.py checks their values against the
    # host clock); writing them, and any other CSR, is illegal
    r = run("csrrs a0, cycle, x0\ncsrrs a1, time, x0\ncsrrs a2, instret, x0\ncsrrs a3, hpmcounter3, x0",
            x={"a0": 77, "a1": 77, "a2": 77, "a3": 77})
    assert r.exits == [] and 0 not in (r.x("a0"), r.x("a1"), r.x("a2")) and r.x("a3") == 0
    for insn in ("csrrs a0, 0x7c0, x0", "csrrw a0, time, a1", "csrrs a0, cycle, a1", "csrrci a0, instret, 1"):
        r = run(insn, x={"a0": 77, "a1": 1})
        assert r.exits == [EXIT_ILLEGAL] and r.x("a0") == 77, insn


# ---------------------------------------------------------------------------
# qemu differential
# ---------------------------------------------------------------------------

HAVE_QEMU = bool(shutil.which(GCC) and shutil.which(QEMU))

_PROLOGUE = "\n".join(
    [".globl _start", "_start:"] + [f"li x{i}, 0" for i in range(1, 31)]
    + [f"fmv.d.x f{i}, x0" for i in range(32)] + ["csrw fcsr, x0", "la s0, buf"]
)
_DUMP = "\n".join(
    ["dump:", "la x31, regs"] + [f"sd x{i}, {8 * i}(x31)" for i in range(1, 31)]
    + [f"fsd f{i}, {256 + 8 * i}(x31)" for i in range(32)]
    + ["frcsr x1", "sd x1, 512(x31)", "li a0, 1", "mv a1, x31", "li a2, 520", "li a7, 64", "ecall",
       "li a0, 0", "li a7, 93", "ecall",
       ".data", ".balign 8", "regs: .zero 520", "buf: .dword 0x8796a5b4c3d2e1f0, -1, 5, 0x7fffffff"]
)

# Programs (x31 = t6 is reserved for the dump; s0 points at buf).
DIFF_PROGRAMS = {
    "int": """
        li a0, -7; li a1, 0; div a2, a0, a1; divu a3, a0, a1; rem a4, a0, a1; remu a5, a0, a1
        li t0, 1; slli t0, t0, 63; li t1, -1; div a6, t0, t1; rem a7, t0, t1
        li t2, 0x80000000; divw s1, t2, t1; remw s2, t2, t1; divuw s3, a0, a1; remuw s4, a0, a1
        li s5, 0x7fffffff; addiw s5, s5, 1; li s6, 0x7fffffff; addw s6, s6, t0; subw s7, zero, t1
        sllw s8, t1, t1; sraw s9, t2, a0; mulw s10, s5, s5; mulh s11, t0, t0; mulhsu t3, t1, t1
        mulhu t4, t1, t1; la t5, 1f; jalr t5, 0(t5); 1: nop
    """,
    "int2": """
        lb a0, 0(s0); lbu a1, 0(s0); lh a2, 2(s0); lhu a3, 2(s0); lw a4, 4(s0); lwu a5, 4(s0)
        ld a6, 0(s0); sltu a7, a0, a1; slt t0, a0, a1; sraiw t1, a0, 3; srliw t2, a0, 3
        la t3, 1f; jalr t3, 0(t3)
        1: add x0, t3, t3; c.li s1, -3; c.addw s1, s1; c.subw s1, a4; auipc s2, 0; sub s2, s2, t3
    """,
    "atomic": """
        lr.d a0, (s0); sc.d a1, a0, (s0); sc.d a2, a0, (s0)
        addi t0, s0, 8; amoadd.w a3, t0, (t0); amoswap.d a4, t0, (t0); ld a5, 8(s0)
        addi t1, s0, 16; li t2, -9; amomin.w a6, t2, (t1); amomaxu.w a7, t2, (t1); lw s1, 16(s0)
        addi t3, s0, 24; amoor.d s2, t2, (t3); amominu.d s3, t1, (t3); ld s4, 24(s0)
        lr.w s5, (t1); addi t4, s0, 4; sc.w s6, t2, (t4); lw s7, 4(s0)
    """,
    "fp": """
        li t0, 0x3f800000; fmv.d.x f1, t0; fmv.w.x f2, t0
        fadd.s f3, f1, f2; fadd.s f4, f2, f2; fclass.s a0, f1; fclass.s a1, f2
        li t1, -1; fcvt.s.w f5, t1; fcvt.d.wu f6, t1; fcvt.s.lu f7, t1
        fdiv.s f8, f4, f9; fsqrt.d f10, f10; fcvt.d.s f11, f8; fsgnjn.s f12, f4, f4
        fmv.x.w a2, f12; fmin.s f13, f2, f3; fmax.s f14, f3, f2; fclass.s a3, f14
        fcvt.w.s a4, f3; fcvt.wu.s a5, f3; fcvt.l.s a6, f8; fcvt.lu.d a7, f10
        fneg.d f15, f10; fmin.d f16, f15, f10; fmax.d f17, f15, f10; feq.s s1, f3, f3; flt.s s2, f3, f3
        fle.d s3, f15, f10; fcvt.s.d f18, f16; fmadd.d f19, f6, f6, f15; fnmsub.s f20, f4, f4, f4
        fcvt.wu.d s4, f15; fcvt.w.d s5, f6; li t2, 0x7f800001; fmv.w.x f21, t2; fmin.s f22, f21, f21
        fmax.s f23, f21, f2; fcvt.d.s f24, f21; fclass.s s6, f21; fadd.d f25, f6, f19, rup
        fmul.s f26, f4, f5, rtz; fcvt.l.d s7, f19, rdn; fsd f4, 0(s0); flw f27, 0(s0); fmv.x.d s8, f27
        li t3, 0x10000000000001; fcvt.d.l f28, t3; fcvt.s.l f29, t3, rmm; fcvt.s.l f30, t3, rdn
    """,
}


def _random_fp_program(seed: int) -> str:
    """Random FP operations on interesting operands, results in f1..f30 / x1..x30."""
    import random

    rng = random.Random(seed)
    d_pool = [0, 1 << 63, f64(1.0), f64(-1.5), f64(float("inf")), f64(float("-inf")), CANON_D,
              0x7FF0000000000001, 1, 0x000FFFFFFFFFFFFF, 0x7FEFFFFFFFFFFFFF, f64(1e-310), f64(3.0),
              f64(0.1), f64(-2.5), f64(2.0 ** 63), f64(-(2.0 ** 31)), f64(4294967295.5)]
    s_pool = [0, 0x80000000, f32(1.0), f32(-1.5), f32(float("inf")), 0x7FC00000, 0x7F800001, 1,
              0x007FFFFF, 0x7F7FFFFF, f32(3.0), f32(0.1), f32(-2.5), f32(2.0 ** 31)]
    rms = ["rne", "rtz", "rdn", "rup", "rmm"]
    lines = []
    for i in range(1, 31):
        t = rng.choice("sd")
        a, b, c = (rng.choice(d_pool if t == "d" else s_pool) for _ in range(3))
        if rng.random() < 0.5:
            a = rng.getrandbits(64 if t == "d" else 32)
        for reg, v in (("t0", a), ("t1", b), ("t2", c)):
            lines.append(f"li {reg}, {v:#x}")
        mv = "fmv.d.x" if t == "d" else "fmv.w.x"
        lines += [f"{mv} f1, t0", f"{mv} f2, t1", f"{mv} f3, t2"]
        op = rng.choice(["fadd", "fsub", "fmul", "fdiv", "fsqrt", "fmadd", "fnmsub", "fmin", "fmax",
                         "fcvt.w", "fcvt.lu", "fcvt.wu", "fcvt.l", "feq", "flt", "fle", "fclass", "fcvt.x"])
        rm = rng.choice(rms)
        if op in ("fadd", "fsub", "fmul", "fdiv"):
            lines.append(f"{op}.{t} f{i}, f1, f2, {rm}")
        elif op == "fsqrt":
            lines.append(f"fsqrt.{t} f{i}, f1, {rm}")
        elif op in ("fmadd", "fnmsub"):
            lines.append(f"{op}.{t} f{i}, f1, f2, f3, {rm}")
        elif op in ("fmin", "fmax"):
            lines.append(f"{op}.{t} f{i}, f1, f2")
        elif op.startswith("fcvt.") and op != "fcvt.x":
            lines.append(f"{op}.{t} x{i}, f1, {rm}")
        elif op in ("feq", "flt", "fle"):
            lines.append(f"{op}.{t} x{i}, f1, f2")
        elif op == "fclass":
            lines.append(f"fclass.{t} x{i}, f1")
        else:
            lines.append(f"fcvt.{'s.d' if t == 'd' else 'd.s'} f{i}, f1" + (f", {rm}" if t == "d" else ""))
        if i % 3 == 0:
            lines.append("csrrw x0, fflags, x0" if i % 2 else "csrrs t3, fflags, x0")
    lines.append("li t0, 0; li t1, 0; li t2, 0; li t3, 0; fmv.d.x f1, x0; fmv.d.x f2, x0; fmv.d.x f3, x0")
    return "\n".join(lines)


for _seed in range(8):
    DIFF_PROGRAMS[f"random_fp_{_seed}"] = _random_fp_program(_seed)


def _load_elf(exe: str) -> tuple[SparseMemory, int, int]:
    from elftools.elf.elffile import ELFFile

    mem = SparseMemory()
    with open(exe, "rb") as fh:
        elf = ELFFile(fh)
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_LOAD":
                mem.map(seg["p_vaddr"], seg["p_memsz"])
                mem.write_bytes(seg["p_vaddr"], seg.data())
        dump = elf.get_section_by_name(".symtab").get_symbol_by_name("dump")[0]["st_value"]
        return mem, elf.header["e_entry"], dump


@pytest.mark.skipif(not HAVE_QEMU, reason=f"{GCC} or {QEMU} not installed")
@pytest.mark.parametrize("name", sorted(DIFF_PROGRAMS))
def test_qemu_differential(name):
    program = DIFF_PROGRAMS[name]
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = os.path.join(tmp, "p.S"), os.path.join(tmp, "p")
        with open(src, "w") as fh:
            fh.write(".text\n" + _PROLOGUE + "\n" + program.replace(";", "\n") + "\n" + _DUMP + "\n")
        r = subprocess.run([GCC, "-march=rv64gc", "-mabi=lp64d", "-nostdlib", "-static", "-o", exe, src],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        out = subprocess.run([QEMU, exe], capture_output=True, check=True, timeout=30).stdout
        mem, entry, dump = _load_elf(exe)
    assert len(out) == 520
    regs = struct.unpack("<65Q", out)
    state = CpuState(pc=entry)
    ev = Evaluator(state, mem)
    for _ in range(10000):
        if state.pc == dump:
            break
        insn = decode(mem.read_bytes(state.pc, 4) if mem.read(state.pc, 1) & 3 == 3
                      else mem.read_bytes(state.pc, 2), 0, state.pc)
        assert ev.execute(insn) == EXIT_CONTINUE, insn
    assert state.pc == dump
    mismatches = []
    for i in range(1, 31):
        if state.x[i] != regs[i]:
            mismatches.append(f"x{i}: ours {state.x[i]:#x} qemu {regs[i]:#x}")
    for i in range(32):
        if state.f[i] != regs[32 + i]:
            mismatches.append(f"f{i}: ours {state.f[i]:#x} qemu {regs[32 + i]:#x}")
    if state.fcsr != regs[64]:
        mismatches.append(f"fcsr: ours {state.fcsr:#x} qemu {regs[64]:#x}")
    assert not mismatches, "\n".join(mismatches)
