"""The block calling convention (aotc/backend/abi.py): the guest registers
of PASSED_REGS travel between block functions in host registers, a guest
return hands RETURNED_REGS back in host registers, block functions save no
host registers, and the native trampoline moves the guest registers between
the state and host registers for the dispatcher."""

from __future__ import annotations

import json
import re

import pytest
from conftest import aotrun_cmd, run_tool

from aotc.backend.abi import PASSED_REGS, RETURNED_REGS
from aotc.backend.compile import _FOOTER, chunk_ir, lift_block
from aotc.backend.llvm_builder import STATE_CONVENTION, block_definition_prefix
from aotc.discover import CodeRange, discover
from aotc.errors import RuntimeSetupError
from runtime.machine import _check_block_abi
from test_guest_exits import ECALL, addi, build, ld, sd
from test_jit import addiw, auipc, jalr
from tests.test_discover import BASE, words

A0, A1, A2, A7, SP, RA, T0, T1 = 10, 11, 12, 17, 2, 1, 5, 6
S0, S1, S2, S3 = 8, 9, 18, 19


def add(rd: int, rs1: int, rs2: int) -> int:
    return (rs2 << 20) | (rs1 << 15) | (rd << 7) | 0x33


def sub(rd: int, rs1: int, rs2: int) -> int:
    return add(rd, rs1, rs2) | (0x20 << 25)


def jal(rd: int, offset: int) -> int:
    o = offset & 0x1FFFFF
    imm = ((o >> 20) & 1) << 31 | ((o >> 1) & 0x3FF) << 21 | ((o >> 11) & 1) << 20 | ((o >> 12) & 0xFF) << 12
    return imm | (rd << 7) | 0x6F


RET = (RA << 15) | 0x67          # jalr zero, 0(ra)


def _call_and_sum(syscall_in_callee: bool) -> list[int]:
    """Set a0 a1 a2 s0 s1 s2 s3 t0, call a function that changes some of them
    (and sp, and ra through its own frame), then exit with their sum plus
    sp's change (0)."""
    caller = [addi(A0, 0, 1), addi(A1, 0, 2), addi(A2, 0, 3), addi(S0, 0, 4), addi(S1, 0, 5),
              addi(S2, 0, 6), addi(S3, 0, 7), addi(T0, 0, 8), addi(T1, SP, 0)]
    call_at = len(caller)
    after = [add(A0, A0, A1), add(A0, A0, A2), add(A0, A0, S0), add(A0, A0, S1), add(A0, A0, S2),
             add(A0, A0, S3), add(A0, A0, T0), sub(T1, SP, T1), add(A0, A0, T1),
             addi(A7, 0, 93), ECALL]
    callee_at = call_at + 1 + len(after)
    callee = [addi(SP, SP, -16), sd(RA, SP, 8), addi(A0, A0, 10), addi(A1, A1, 20)]
    if syscall_in_callee:
        # an unknown syscall: a0 = -ENOSYS; the block after it is entered
        # from the dispatcher through the trampoline
        callee += [addi(A7, 0, 500), ECALL, addi(A0, A0, 38 + 11)]
    callee += [addi(S0, S0, 30), addi(S3, S3, 40), addi(T0, T0, 50), ld(RA, SP, 8), addi(SP, SP, 16), RET]
    return [*caller, jal(RA, 4 * (callee_at - call_at)), *after, *callee]


# a0 11 + a1 22 + a2 3 + s0 34 + s1 5 + s2 6 + s3 47 + t0 58 + sp's change 0
_SUM = 11 + 22 + 3 + 34 + 5 + 6 + 47 + 58


@pytest.mark.parametrize("engine", ["aot", "jit", "interp"])
@pytest.mark.parametrize("syscall_in_callee", [False, True], ids=["direct", "syscall-in-callee"])
def test_registers_survive_a_call_and_its_return(tmp_path, config_dir, engine, syscall_in_callee):
    image, _ = build(tmp_path, "callsum", _call_and_sum(syscall_in_callee))
    proc = run_tool([*aotrun_cmd(), "--engine", engine, str(image)])
    assert proc.returncode == _SUM, proc.stderr


def _state_operands(code: list[int]) -> list[int]:
    """Displacements of the x86 memory operands outside guest memory (GS
    segment + index) and the host stack in the optimised translation at
    BASE: the state accesses."""
    from test_memory_access import translated_insns

    out = []
    for insn in translated_insns(words(*code)):
        m = re.search(r"ptr \[(\w+)(?: \+ (0x[0-9a-f]+|\d+))?\]", insn.op_str)
        if m and m.group(1) != "rsp" and "gs:" not in insn.op_str:
            out.append(int(m.group(2) or "0", 0))
    return out


def test_a_leaf_function_touches_no_state_for_passed_registers():
    # a0 = a0 + a1; s0 = s0 + a2; ret: every register it reads or writes is
    # passed, and a0 and s0 go back in host registers, so its only state
    # accesses are the stores of the passed registers not returned (none
    # while RETURNED_REGS is PASSED_REGS) and of the pc.
    offsets = _state_operands([add(A0, A0, A1), add(S0, S0, A2), RET])
    from aotc.isa.riscv64.state import OFFSETS

    stored = sorted(OFFSETS["x"] + 8 * r for r in PASSED_REGS if r not in RETURNED_REGS)
    assert sorted(o for o in offsets if o != OFFSETS["pc"]) == stored, offsets
    assert OFFSETS["x"] + 8 * A0 not in offsets


def test_every_passed_register_comes_back_in_a_host_register():
    assert RETURNED_REGS == PASSED_REGS
    # a3 (not passed) is the one register the leaf loads and stores; the
    # passed a0, a1, a2 and s3 it reads or writes touch no state
    offsets = _state_operands([add(A0, A0, A1), add(13, 13, A2), add(S3, S3, A0), RET])
    from aotc.isa.riscv64.state import OFFSETS

    assert set(offsets) == {OFFSETS["x"] + 8 * 13, OFFSETS["pc"]}, offsets


def _calls_of_every_kind() -> list[int]:
    """A region with a direct guest call, an indirect guest call (t1), a
    tail call to a known block outside it and a guest return."""
    # 0: jal ra, +16 (f at 16); 4: auipc t1, 0; 8: jalr ra, 12(t1) (f at 16);
    # 12: jal zero, +8 (g at 20, a head: reached by a call too); 16: f: ret;
    # 20: g: jal ra, -4 (f); 24: ret
    return [jal(RA, 16), auipc(T1, 0), jalr(RA, T1, 12), jal(0, 8), RET, jal(RA, -4), RET]


def test_every_block_call_and_declaration_saves_no_registers():
    """x86_regcallcc keeps rbx, rbp, r15 and xmm8-15 callee-saved unless
    the function, and at each call site the call, carries
    "no_callee_saved_registers": a call site without it would keep values
    there across a callee that clobbers them."""
    blocks = discover([CodeRange(BASE, words(*_calls_of_every_kind()))], [], {"entry": [BASE]}).blocks
    text = chunk_ir([("region", [blocks[BASE]]), ("copy", [blocks[BASE + 20]])], frozenset(blocks), 15, [])
    groups = dict(re.findall(r"^attributes (#\d+) = \{(.*)\}$", _FOOTER, re.M))
    calls = [ln for ln in text.splitlines() if re.search(r"\bcall x86_regcallcc\b", ln)]
    decls = [ln for ln in text.splitlines() if ln.startswith("declare hidden x86_regcallcc")]
    defs = [ln for ln in text.splitlines() if re.match(r"define .*x86_regcallcc", ln)]
    assert len(calls) >= 4 and decls and len(defs) == 2, text
    for line in calls + decls + defs:
        group = re.findall(r"\) (#\d+)", line)
        assert group and '"no_callee_saved_registers"' in groups[group[-1]], line


def test_a_block_function_saves_no_host_registers():
    # the caller of _call_and_sum keeps eight registers live across its call
    from test_memory_access import translated_insns

    saved = {"rbx", "rbp", "r12", "r13", "r14", "r15"}
    insns = translated_insns(words(*_call_and_sum(False)))
    assert any(i.mnemonic == "call" for i in insns)
    pushed = [f"{i.mnemonic} {i.op_str}" for i in insns if i.mnemonic in ("push", "pop") and i.op_str in saved]
    xmm_saves = [f"{i.mnemonic} {i.op_str}" for i in insns
                 if "rsp" in i.op_str and re.search(r"xmm(8|9|1[0-5])\b", i.op_str)]
    assert not pushed and not xmm_saves, pushed + xmm_saves


def test_a_runtime_built_for_another_convention_is_refused():
    class OtherNative:
        @staticmethod
        def block_abi():
            return (PASSED_REGS[:-1], RETURNED_REGS)

    with pytest.raises(RuntimeSetupError, match="block calling convention"):
        _check_block_abi(OtherNative)
    from runtime import _native

    _check_block_abi(_native)      # the installed module agrees


def test_jit_code_between_image_code_keeps_the_registers(tmp_path, config_dir):
    """Image code (passed registers in host registers) calls F, jumps to a
    computed target the image misses (test_jit.py), where JIT code (every
    register in the state) changes s1 and calls F again; the sum of the
    registers is the exit status, so a register lost at a change of
    convention shows."""
    # t1 = pc; t1 += 12; t1 += 8 (addiw: = the target); jr t1; nop (as test_jit.MISSING_WORDS)
    hop = [auipc(T1, 0), addi(T1, T1, 12), addiw(T1, T1, 8), jalr(0, T1, 0), addi(0, 0, 0)]
    setup = [addi(A0, 0, 1), addi(A1, 0, 2), addi(A2, 0, 3), addi(S0, 0, 4), addi(S1, 0, 5),
             addi(S2, 0, 6), addi(S3, 0, 7), addi(T0, 0, 8)]
    tail = [add(A0, A0, A1), add(A0, A0, A2), add(A0, A0, S0), add(A0, A0, S1), add(A0, A0, S2),
            add(A0, A0, S3), add(A0, A0, T0), addi(A7, 0, 93), ECALL]
    f = [addi(A0, A0, 10), addi(A1, A1, 20), addi(S0, S0, 30), addi(S3, S3, 40), addi(T0, T0, 50), RET]
    first_call = len(setup)
    second_call = first_call + 1 + len(hop) + 1
    f_at = second_call + 1 + len(tail)
    code = [*setup, jal(RA, 4 * (f_at - first_call)), *hop, addi(S1, S1, 100),
            jal(RA, 4 * (f_at - second_call)), *tail, *f]
    assert code[second_call] == jal(RA, 4 * (f_at - second_call))
    image, _ = build(tmp_path, "mixed", code)
    stats_path = tmp_path / "stats.json"
    proc = run_tool([*aotrun_cmd(), "--stats-json", str(stats_path), str(image)])
    # a0 1+10+10, a1 2+20+20, a2 3, s0 4+30+30, s1 5+100, s2 6, s3 7+40+40, t0 8+50+50
    assert proc.returncode == (21 + 42 + 3 + 64 + 105 + 6 + 87 + 108) & 0xFF, proc.stderr
    stats = json.loads(stats_path.read_text())
    assert stats["jit_compiles"] >= 1 and stats["lookup_misses"] >= 1, stats


def test_jit_blocks_take_only_the_state():
    blocks = discover([CodeRange(BASE, words(add(A0, A0, A1), RET))], [], {"entry": [BASE]}).blocks
    text, _ = lift_block(blocks[BASE], frozenset(blocks), 0, [], convention=STATE_CONVENTION)
    assert block_definition_prefix(BASE, cc=STATE_CONVENTION) + "ptr noalias nocapture %st)" in text
    assert "%k0" not in text
    image_text, _ = lift_block(blocks[BASE], frozenset(blocks), 0, [])
    assert f"i64 %k{len(PASSED_REGS) - 1})" in image_text
