"""How translated code addresses guest memory: ``imm(r)`` is ``%gs:imm(
wrap32(r))``, the GS base being the arena (runtime/guest_memory.py,
runtime/native/aotrt.c), one 32-bit move per base register value, with the
immediate as the x86 displacement, and no host register holding the
arena's address; LLVM sees
neighbouring slots as neighbours (and merges their accesses).  Faults of
accesses whose immediate leaves the guest address space are in
tests/test_guest_exits.py."""

from __future__ import annotations

import io
import re

import capstone
from elftools.elf.elffile import ELFFile

from aotc.backend.compile import chunk_ir, compile_ir
from aotc.discover import CodeRange, discover
from test_guest_exits import addi, ld, sd
from tests.test_discover import BASE, ECALL, words

SP = 2
# An x86 guest-memory operand: the GS segment (the arena) + index register
# [+ displacement].
_GUEST_OPERAND = re.compile(r"ptr gs:\[(\w+)(?: \+ (0x[0-9a-f]+|\d+))?\]")


def translated_insns(code: bytes, heads: tuple[int, ...] = (BASE,)) -> list:
    """The x86 instructions (capstone) of the optimised translation of
    ``code`` at BASE, one region per block in ``heads``, in that order."""
    blocks = discover([CodeRange(BASE, code)], [], {"entry": [BASE]}).blocks
    ir = chunk_ir([("region", [blocks[h]]) for h in heads], frozenset(blocks), 15, [])
    text = ELFFile(io.BytesIO(compile_ir(ir, 2))).get_section_by_name(".text").data()
    return list(capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64).disasm(text, 0))


def _guest_accesses(code: bytes) -> list[tuple[str, int]]:
    """(index register, displacement) of each x86 access to guest memory in
    the optimised translation of the region at BASE."""
    out = []
    for insn in translated_insns(code):
        m = _GUEST_OPERAND.search(insn.op_str)
        if m:
            out.append((m.group(1), int(m.group(2) or "0", 0)))
    return out


def test_accesses_through_one_base_share_its_wrap():
    # sd a1, 8(sp); sd a2, 40(sp); ld a3, 72(sp); sd a3, 104(sp); ecall
    # (slots apart, so LLVM merges no two accesses into one)
    acc = _guest_accesses(words(sd(11, SP, 8), sd(12, SP, 40), ld(13, SP, 72), sd(13, SP, 104), ECALL))
    assert sorted(d for _, d in acc) == [8, 40, 72, 104], acc
    assert len({r for r, _ in acc}) == 1, acc


def test_a_stored_slot_is_forwarded_to_its_load():
    # sd a1, 8(sp); sd a2, 16(sp); ld a3, 8(sp): the load reads a1, no memory
    acc = _guest_accesses(words(sd(11, SP, 8), sd(12, SP, 40), ld(13, SP, 8), ECALL))
    assert len(acc) == 2, acc


def test_neighbouring_slots_are_seen_as_neighbours():
    # sd a4, 8(sp); sd a5, 16(sp): 16 contiguous bytes, one x86 store
    # (with the immediate added before the wrap, 16(sp) could be at 0).
    # a4 and a5 are neighbours in the state too (a0-a2 would arrive in two
    # host registers, aotc/backend/abi.py, and be stored one by one).
    acc = _guest_accesses(words(sd(14, SP, 8), sd(15, SP, 16), ECALL))
    assert acc == [(acc[0][0], 8)], acc


def test_guest_code_run_from_another_thread_reaches_the_arena(tmp_path):
    """The GS base is per thread: a machine set up in one thread and run in
    another, started before the machine existed (a new thread inherits its
    parent's GS base), still reaches its arena.  ``run`` points the running
    thread's GS base at it; without that the store would hit host address
    -8 and kill the process, so the check runs in a child."""
    import subprocess
    import sys
    from pathlib import Path

    from test_guest_exits import tiny_elf

    # a1 = 42; sd a1, -8(sp); ld a0, -8(sp); exit(a0)
    guest = tmp_path / "stack"
    guest.write_bytes(tiny_elf([addi(11, 0, 42), sd(11, SP, -8), ld(10, SP, -8),
                                addi(17, 0, 93), ECALL]))
    script = (
        "import sys, threading\n"
        "from aotc.elf.guest_elf import read_guest_elf\n"
        "from runtime.machine import Machine\n"
        "out, ready = [], threading.Event()\n"
        "t = threading.Thread(target=lambda: ready.wait() and out.append(m.run()))\n"
        "t.start()\n"
        f"m = Machine(None, argv=[b'g'], envp=[], elf=read_guest_elf({str(guest)!r}), engine='jit')\n"
        "ready.set(); t.join()\n"
        "print(out[0], m.stats.jit_compiles)\n")
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, cwd=root, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    code, compiles = proc.stdout.split()
    assert int(code) == 42 and int(compiles) >= 1, proc.stdout


def test_guest_accesses_never_alias_the_state():
    """A guest access and a state access never overlap, and LLVM is told so
    (type-based alias metadata; a GS-relative pointer is not based on any
    argument): region A adds 1 to t0 and jumps to region B, which loads
    guest memory and adds 2 more before its exit.  Once B is inlined into A,
    A's store of t0 to the state is dead despite the guest load between the
    two stores, and only one store (+3) is left."""
    from test_block_abi import jal

    from aotc.isa.riscv64.state import OFFSETS

    t0, a3 = 5, 13
    # B's load is at a constant address (base x0), so B has no entry range
    # check: a check's exit to the interpreter would need A's store.
    code = words(addi(t0, t0, 1), jal(0, 4), ld(a3, 0, 64), addi(t0, t0, 2), addi(17, 0, 93), ECALL)
    slot = f"[rax + {OFFSETS['x'] + 8 * t0:#x}]"     # the state comes in rax (abi.py)
    first = []
    for insn in translated_insns(code, heads=(BASE, BASE + 8)):
        if insn.mnemonic == "ret":
            break                       # the end of A (B follows)
        first.append(f"{insn.mnemonic} {insn.op_str}")
    writes = [i for i in first if i.split(" ", 1)[1].startswith(f"qword ptr {slot}")]
    assert any("gs:" in i for i in first), first          # B's load was inlined
    assert writes == [f"add qword ptr {slot}, 3"], first


def test_alias_metadata_only_where_code_is_optimised():
    # -O0 JIT code and optnone copies would only spend compile time on it.
    from aotc.backend.compile import lift_block

    blocks = discover([CodeRange(BASE, words(sd(11, SP, 8), ld(13, SP, 16), ECALL))], [],
                      {"entry": [BASE]}).blocks
    optimised, _ = lift_block(blocks[BASE], frozenset(blocks), 0, [])
    assert "!tbaa !10" in optimised and "!tbaa !9" in optimised
    jit_o0, _ = lift_block(blocks[BASE], frozenset(blocks), 0, [], alias_types=False)
    optnone, _ = lift_block(blocks[BASE], frozenset(blocks), 0, [], optnone=True)
    assert "!tbaa" not in jit_o0 and "!tbaa" not in optnone
