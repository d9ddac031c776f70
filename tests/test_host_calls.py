"""Guest call/return as host call/return (``LLVMBuilder._host_call``).

Translated code calls the callee's host function for a guest call and goes
on at the return point when the callee's ``ret`` comes back to it.  These
hand-assembled guests check the cases where the host stack and the guest's
calls part ways: recursion deeper than the host stack allows (calls become
tail calls below the limit), callees that return somewhere else (to a later
address, or straight to an outer caller, as longjmp does), and syscalls
inside callees (the host stack unwinds; return points are then entered
through the dispatcher).  Every expected exit status is computed here from
the ISA; each program runs on the AOT image and under the JIT.
"""

from __future__ import annotations

import resource

import pytest
from conftest import aotrun_cmd
from test_guest_exits import ECALL, ENTRY, addi, bne, build, sd

from tests.test_discover import RET, jal
from tests.test_jit import jalr


def ld(rd: int, rs1: int, imm: int) -> int:
    return ((imm & 0xFFF) << 20) | (rs1 << 15) | (3 << 12) | (rd << 7) | 0x03


def lui(rd: int, imm20: int) -> int:
    return ((imm20 & 0xFFFFF) << 12) | (rd << 7) | 0x37


def beq(rs1: int, rs2: int, offset: int) -> int:
    return bne(rs1, rs2, offset) & ~(1 << 12)


RA, SP, T0, A0, A1, A7 = 1, 2, 5, 10, 11, 17
EXIT = [addi(A7, 0, 93), ECALL]
NOP = 0x00000013


def _run(tmp_path, name: str, words: list[int], engine: str, stack_limit: int | None = None):
    """Build and run on the AOT image (JIT fallback for pcs it has no block
    for, e.g. a return to the middle of a block) or under ``--engine=jit``."""
    import subprocess

    image, _ = build(tmp_path, name, words)
    target = [str(image)] if engine == "aot" else ["--engine=jit", str(tmp_path / name)]

    def limit() -> None:
        if stack_limit is not None:
            resource.setrlimit(resource.RLIMIT_STACK, (stack_limit, stack_limit))

    return subprocess.run([*aotrun_cmd(), *target], capture_output=True, timeout=300, preexec_fn=limit,
                          check=False)


def _li(rd: int, value: int) -> list[int]:
    hi, lo = (value + 0x800) >> 12, value & 0xFFF
    return [lui(rd, hi), addi(rd, rd, lo - 0x1000 if lo >= 0x800 else lo)]


def _recursion(depth: int) -> list[int]:
    """main: a0 = depth; call f; exit(a0).  f(n) = n == 1 ? 0 : f(n - 1) + 1,
    keeping ra and n in a 16-byte guest frame."""
    main = [*_li(A0, depth), jal(RA, 12), *EXIT]           # 0..16; f at 20
    f = [addi(SP, SP, -16), sd(RA, SP, 8), sd(A0, SP, 0),  # 20, 24, 28
         addi(A0, A0, -1),                                 # 32
         beq(A0, 0, 12),                                   # 36: -> base (48)
         jal(RA, -20),                                     # 40: f(n - 1)
         addi(A0, A0, 1),                                  # 44
         ld(RA, SP, 8), addi(SP, SP, 16), RET]             # 48: base
    return main + f


@pytest.mark.parametrize("engine", ["aot", "jit"])
def test_recursion_deeper_than_the_host_stack(tmp_path, config_dir, engine):
    """300,000 nested guest calls (4.8 MB of guest stack) under a 4 MiB host
    stack limit: nested host calls need at least 16 bytes each (return
    address and frame), 4.8 MB in all, so below the limit they must become
    tail calls."""
    depth = 300_000
    proc = _run(tmp_path, "deep", _recursion(depth), engine, stack_limit=4 << 20)
    assert proc.returncode == (depth - 1) & 0xFF, proc.stderr.decode()[-2000:]


@pytest.mark.parametrize("engine", ["aot", "jit"])
def test_shallow_recursion(tmp_path, config_dir, engine):
    proc = _run(tmp_path, "shallow", _recursion(1000), engine)
    assert proc.returncode == 999 & 0xFF, proc.stderr.decode()[-2000:]


@pytest.mark.parametrize("engine", ["aot", "jit"])
def test_callee_returns_past_the_return_point(tmp_path, config_dir, engine):
    """g returns to its return point + 4 (skipping ``a0 += 100``); h, called
    by main, calls k, which returns straight into main, past main's own
    return point (the host frames of h and of main see another pc and pass
    the return on, as after a longjmp)."""
    words = [
        addi(A0, 0, 5),         # 0: main
        jal(RA, 32),            # 4: call g (36)
        addi(A0, A0, 100),      # 8: skipped by g's return
        addi(A0, A0, 7),        # 12
        jal(RA, 32),            # 16: call h (48)
        addi(A0, A0, 50),       # 20: main's return point from h: skipped by k
        addi(A0, A0, 1),        # 24: where k returns to
        *EXIT,                  # 28, 32
        addi(RA, RA, 4),        # 36: g: return to ra + 4
        RET,                    # 40
        NOP,                    # 44
        jal(RA, 16),            # 48: h: call k (64)
        addi(A0, A0, 30),       # 52: h's return point: skipped by k
        RET,                    # 56
        NOP,                    # 60
        addi(A0, A0, 2),        # 64: k: a0 += 2, then return to ENTRY + 24
        *_li(RA, ENTRY + 24),   # 68, 72
        RET,                    # 76
    ]
    proc = _run(tmp_path, "elsewhere", words, engine)
    assert proc.returncode == 5 + 7 + 2 + 1, proc.stderr.decode()[-2000:]


@pytest.mark.parametrize("engine", ["aot", "jit"])
def test_syscalls_inside_callees_in_a_loop(tmp_path, config_dir, engine):
    """A loop calling a function that makes a syscall (getpid) 1000 times:
    every syscall unwinds the host stack, and the return point is entered
    again through the dispatcher; the count must still be exact."""
    words = [
        addi(A1, 0, 0),         # 0: count = 0
        addi(T0, 0, 1000),      # 4: n = 1000
        jal(RA, 28),            # 8: loop: call p (36)
        addi(A1, A1, 1),        # 12: count += 1
        addi(T0, T0, -1),       # 16
        bne(T0, 0, -12),        # 20: -> 8
        addi(A0, A1, -900),     # 24: exit(count - 900)
        *EXIT,                  # 28, 32
        addi(A7, 0, 172),       # 36: p: getpid()
        ECALL,                  # 40
        RET,                    # 44
    ]
    proc = _run(tmp_path, "sysloop", words, engine)
    assert proc.returncode == 100, proc.stderr.decode()[-2000:]


@pytest.mark.parametrize("engine", ["aot", "jit"])
def test_indirect_calls_and_the_alternate_link_register(tmp_path, config_dir, engine):
    """``jalr ra`` through a register and its ``ret``; ``jalr t0`` and a
    return through t0."""
    words = [
        *_li(A1, ENTRY + 40),   # 0, 4: a1 = &f
        addi(A0, 0, 3),         # 8
        jalr(RA, A1, 0),        # 12: call f (40)
        jalr(T0, A1, 8),        # 16: call f2 (48), linking t0
        *EXIT,                  # 20, 24
        NOP, NOP, NOP,          # 28, 32, 36
        addi(A0, A0, 10),       # 40: f
        jalr(0, RA, 0),         # 44: ret
        addi(A0, A0, 20),       # 48: f2
        jalr(0, T0, 0),         # 52: return through t0
    ]
    proc = _run(tmp_path, "jalr", words, engine)
    assert proc.returncode == 33, proc.stderr.decode()[-2000:]
