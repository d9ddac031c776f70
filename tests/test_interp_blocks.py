"""The interpreter's block compiler (aotc/interp/pycodegen.py) against the
per-instruction Evaluator, in process, on random RV64GC code.

Both run the same shared semantics; the block compiler turns a whole basic
block into one Python function.  Random instruction words of every major
opcode (loads/stores through registers that point into mapped memory or
not, AMOs, LR/SC, FP with static and dynamic rounding modes and a random
frm, CSR accesses, compressed instructions, forward branches) must leave
identical registers, FP state, memory, pc, exit code, exit_info, fault
address and instruction count — including a fault or trap in the middle of
a block.
"""

from __future__ import annotations

import random

import pytest

from aotc.errors import DecodeError, GuestMemoryError
from aotc.interp.evaluator import CpuState, Evaluator, SparseMemory
from aotc.interp.pycodegen import PyCodegenBuilder
from aotc.isa.riscv64.decoder import decode
from aotc.isa.riscv64.insn import Insn
from aotc.isa.riscv64.state import (
    EXIT_CONTINUE, EXIT_FAULT, EXIT_FENCE_I, EXIT_ILLEGAL, EXIT_SYSCALL, GuestState,
)
from runtime.interp import Interpreter

CODE, DATA, DATA_SIZE = 0x10000, 0x40000, 0x2000
POINTERS = (2, 8, 9, 10, 11)     # base registers that point into DATA (never overwritten)
MASK64 = (1 << 64) - 1
OPCODES = (0x03, 0x07, 0x0F, 0x13, 0x17, 0x1B, 0x23, 0x27, 0x2F, 0x33, 0x37, 0x3B,
           0x43, 0x47, 0x4B, 0x4F, 0x53, 0x53, 0x53, 0x63, 0x73, 0x13, 0x33, 0x03, 0x23)


class GuestMem(SparseMemory):
    """SparseMemory with what the interpreter needs: fetch, namespace, invalidate."""

    def fetch(self, pc: int) -> bytes:
        if not CODE <= pc < CODE + 0x1000:
            raise GuestMemoryError(pc, 2)
        return self.read_bytes(pc, 4)

    def namespace(self) -> dict:
        ns = {}
        for size in (1, 2, 4, 8):
            ns[f"ld{size}"] = lambda a, s=size: self.read(a, s)
            ns[f"st{size}"] = lambda a, v, s=size: self.write(a, s, v)
        ns["cas"] = self.cas
        ns["fence"] = self.fence
        return ns

    def invalidate(self) -> None:
        pass


def _word(rnd: random.Random) -> bytes:
    while True:
        if rnd.random() < 0.25:
            w = rnd.getrandbits(16)
            if w & 3 == 3:
                continue
            data = w.to_bytes(2, "little")
        else:
            w = (rnd.getrandbits(25) << 7) | rnd.choice(OPCODES)
            if w & 0x7F in (0x0F, 0x73) and rnd.random() < 0.9:
                continue                 # fewer fences and system instructions
            data = w.to_bytes(4, "little")
        try:
            insn = decode(data + b"\0\0", 0, 0)
        except (DecodeError, IndexError, ValueError):
            continue
        m = insn.mnemonic
        if m in ("jal", "jalr") or (m.startswith("b") and not 0 < insn.imm <= 64):
            continue                     # short forward control flow only: every run ends
        if insn.rd in POINTERS and not _is_store(m):
            continue                     # the pointer registers stay pointers
        if _is_memory(m) and insn.rs1 not in POINTERS and rnd.random() < 0.98:
            continue                     # most accesses hit mapped memory; some fault
        if (insn.rm in (5, 6) or w & 0x7F == 0x73) and rnd.random() < 0.97:
            continue                     # few reserved rounding modes and CSR traps
        return data


def _is_store(m: str) -> bool:
    return m in ("sb", "sh", "sw", "sd", "fsw", "fsd")


def _is_memory(m: str) -> bool:
    return m[0] == "l" and m not in ("lui",) or _is_store(m) or m.startswith(("amo", "sc.", "fl"))


def _program(seed: int, n: int = 120) -> bytes:
    rnd = random.Random(seed)
    code = b"".join(_word(rnd) for _ in range(n))
    return code + (0x00000073).to_bytes(4, "little") * 40        # ecalls


def _setup(seed: int, code: bytes) -> tuple[GuestState, GuestMem]:
    rnd = random.Random(seed * 7 + 1)
    mem = GuestMem()
    mem.map(CODE, 0x1000)
    mem.write_bytes(CODE, code)
    mem.map(DATA, DATA_SIZE)
    mem.write_bytes(DATA, rnd.randbytes(DATA_SIZE))
    g = GuestState()
    for r in range(1, 32):
        kind = rnd.random()
        if r in POINTERS:
            g.x[r] = DATA + 0x800 + 8 * rnd.randrange(0, 64)
        elif kind < 0.4:
            g.x[r] = DATA + rnd.randrange(0, DATA_SIZE - 64)
        elif kind < 0.8:
            g.x[r] = rnd.choice([0, 1, 2, MASK64, 1 << 63, 31, 0x7FFFFFFF, 0x80000000])
        else:
            g.x[r] = rnd.getrandbits(64)
    for r in range(32):
        g.f[r] = rnd.choice([rnd.getrandbits(64), 0xFFFFFFFF00000000 | rnd.getrandbits(32),
                             0x3FF0000000000000, 0x7FF8000000000000, 0xFFFFFFFF7FC00000])
    frm = rnd.choice([0, 1, 2, 3, 4] * 6 + [5, 6, 7])    # 5..7: an instruction with rm=DYN traps
    g.fcsr = frm << 5 | rnd.getrandbits(5)
    g.pc = CODE
    g.reservation = rnd.choice([MASK64, g.x[5]])
    return g, mem


def _reference(g: GuestState, mem: GuestMem) -> tuple[int, int, int | None]:
    """Step the Evaluator to the first exit; (code, instructions, fault addr)."""
    cpu = CpuState.from_guest_state(g)
    ev = Evaluator(cpu, mem)
    n, fault = 0, None
    while True:
        pc = cpu.pc
        try:
            raw = mem.fetch(pc)
        except GuestMemoryError:
            code, fault = EXIT_FAULT, pc
            break
        try:
            insn = decode(raw, 0, pc)
        except (DecodeError, IndexError, ValueError):    # as the interpreter reports it
            code, g.exit_info = EXIT_ILLEGAL, int.from_bytes(raw[:4], "little")
            break
        code = ev.execute(insn)
        n += 1
        if code != EXIT_CONTINUE:
            if code == EXIT_FAULT:
                fault = ev.fault.addr
            elif code == EXIT_ILLEGAL:
                g.exit_info = insn.raw
            elif code == EXIT_FENCE_I:
                g.exit_info = (pc + insn.size) & MASK64
            break
    cpu.to_guest_state(g)
    return code, n, fault


def _state(g: GuestState, mem: GuestMem) -> tuple:
    return (list(g.x), list(g.f), g.pc, g.fcsr, g.reservation,
            mem.read_bytes(DATA, DATA_SIZE))


@pytest.mark.parametrize("seed", range(150))
def test_blocks_match_evaluator(seed):
    code = _program(seed)
    g1, m1 = _setup(seed, code)
    g2, m2 = _setup(seed, code)
    want, n_want, fault_want = _reference(g1, m1)
    it = Interpreter(None, memory=m2)
    got = it.run(g2)
    assert got == want
    assert it.insns == n_want
    assert _state(g2, m2) == _state(g1, m1)
    if want == EXIT_FAULT:
        assert it.fault_addr == fault_want
    if want in (EXIT_ILLEGAL, EXIT_FENCE_I):
        assert g2.exit_info == g1.exit_info


def test_random_programs_reach_faults_traps_and_syscalls():
    """The generator exercises the interesting exits (the test above would
    be weak if every program ran straight to its ecall)."""
    seen = set()
    for seed in range(150):
        g, m = _setup(seed, _program(seed))
        seen.add(_reference(g, m)[0])
    assert {EXIT_FAULT, EXIT_ILLEGAL, EXIT_SYSCALL} <= seen


def _insn(mnemonic: str, pc: int = CODE, **kw) -> Insn:
    return Insn(pc, 4, 0, mnemonic, **kw)


def test_fault_mid_block_reports_pc_count_and_committed_state():
    # x5 = 7; x6 = x5 + 1; ld x7, 0(x0) -> fault; x8 = 9 never runs
    words = [0x00700293, 0x00128313, 0x00003383, 0x00900413, 0x00000073]
    code = b"".join(w.to_bytes(4, "little") for w in words)
    g, m = _setup(1, code)
    g.x[8] = 0
    it = Interpreter(None, memory=m)
    assert it.run(g) == EXIT_FAULT
    assert g.pc == CODE + 8 and it.insns == 3 and it.fault_addr == 0
    assert (g.x[5], g.x[6], g.x[8]) == (7, 8, 0)


def test_limit_and_stop_are_honoured():
    words = [0x00100293] * 10 + [0x00000073]        # ten addi x5, x0, 1 then ecall
    code = b"".join(w.to_bytes(4, "little") for w in words)
    g, m = _setup(2, code)
    it = Interpreter(None, memory=m)
    assert it.run(g, limit=3) == EXIT_CONTINUE and g.pc == CODE + 12 and it.insns == 3
    assert it.run(g, stop=lambda pc: pc == CODE + 28) == EXIT_CONTINUE
    assert g.pc == CODE + 28 and it.insns == 7
    assert it.run(g) == EXIT_SYSCALL and g.pc == CODE + 40 and it.insns == 11   # the ecall counts


def test_generated_code_inlines_integer_ops():
    b = PyCodegenBuilder()
    b.lift_insn(_insn("add", rd=5, rs1=6, rs2=7))
    b.lift_insn(_insn("ld", pc=CODE + 4, rd=8, rs1=2, imm=16))
    b.lift_insn(_insn("bne", pc=CODE + 8, rs1=5, rs2=8, imm=-8))
    src = b.finish({}).source
    assert "x[5] = ((x[6] + x[7]) & 0xffffffffffffffff)" in src
    assert "x[8] = (ld8(((x[2] + 16) & 0xffffffffffffffff)))" in src
    assert f"return {hex(CODE)} if (x[5] != x[8]) else {hex(CODE + 12)}" in src


def _i(rd: int, rs1: int, imm: int, f3: int = 0, op: int = 0x13) -> int:
    return ((imm & 0xFFF) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op


def _sd(rs2: int, rs1: int, off: int) -> int:
    return (((off >> 5) & 0x7F) << 25) | (rs2 << 20) | (rs1 << 15) | (3 << 12) | ((off & 0x1F) << 7) | 0x23


def _bne(rs1: int, rs2: int, off: int) -> int:
    o = off & 0x1FFF
    return (((o >> 12) & 1) << 31) | (((o >> 5) & 0x3F) << 25) | (rs2 << 20) | (rs1 << 15) | (1 << 12) \
        | (((o >> 1) & 0xF) << 8) | (((o >> 11) & 1) << 7) | 0x63


def _loop_program(store: bool) -> bytes:
    """x5 = 40; loop: x6 += 1; [sd x6, 0(x8); x8 += 512;] x5 -= 1; bne x5, x0, loop; ecall."""
    body = [_i(6, 6, 1)] + ([_sd(6, 8, 0), _i(8, 8, 512)] if store else []) + [_i(5, 5, -1)]
    words = [_i(5, 0, 40), *body, _bne(5, 0, -4 * len(body)), 0x00000073]
    return b"".join(w.to_bytes(4, "little") for w in words)


@pytest.mark.parametrize("store", [False, True], ids=["runs-out", "faults-in-iteration"])
def test_self_loop_block_counts_iterations_and_faults_exactly(store):
    code = _loop_program(store)
    g1, m1 = _setup(3, code)
    g2, m2 = _setup(3, code)
    want, n_want, fault_want = _reference(g1, m1)
    it = Interpreter(None, memory=m2)
    assert it.run(g2) == want == (EXIT_FAULT if store else EXIT_SYSCALL)
    assert it.insns == n_want and _state(g2, m2) == _state(g1, m1)
    assert any(b.loop for b in it._blocks.values())
    if store:
        assert it.fault_addr == fault_want


def test_self_loop_block_honours_limit_and_stop():
    code = _loop_program(False)
    g, m = _setup(4, code)
    it = Interpreter(None, memory=m)
    assert it.run(g, limit=20) == EXIT_CONTINUE and it.insns == 20    # 1 + 6 loops of 3 + 1
    assert g.pc == CODE + 8 and g.x[5] == 40 - 6
    # stop at the loop head: the block must not loop inside its function
    it2 = Interpreter(None, memory=_setup(4, code)[1])
    g2, _ = _setup(4, code)
    assert it2.run(g2, stop=lambda pc: pc == CODE + 4) == EXIT_CONTINUE and it2.insns == 1
    assert it2.run(g2, stop=lambda pc: pc == CODE + 4) == EXIT_CONTINUE and it2.insns == 4
    assert not any(b.loop for b in it2._blocks.values())
