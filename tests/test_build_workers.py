"""The parallel compile of `aotc build`: a compile worker that dies (LLVM
aborts the process on a fatal error rather than raising) fails the build
with a one-line BuildError instead of leaving it waiting forever."""

from __future__ import annotations

import faulthandler
import os
import signal
from pathlib import Path

import pytest

import aotc.backend.compile as compile_mod
from aotc.build import _code_and_data
from aotc.discover import discover
from aotc.elf.guest_elf import read_guest_elf
from aotc.errors import BuildError

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "bin" / "hello.riscv64-musl"


def _blocks():
    elf = read_guest_elf(SAMPLE)
    code, data = _code_and_data(elf)
    return discover(code, data, {"entry": [elf.entry], "symbols": [a for a, _s, _n in elf.symbols]}).blocks


def test_a_dying_compile_worker_fails_the_build(monkeypatch):
    real = compile_mod.compile_ir

    def abort_in_chunk1(ir, opt_level, name="chunk"):
        if name == "chunk1":               # in the forked worker only
            faulthandler.disable()         # (pytest's would print a traceback)
            os.abort()
        return real(ir, opt_level, name)

    monkeypatch.setattr(compile_mod, "compile_ir", abort_in_chunk1)

    def hung(*_a):
        raise AssertionError("the build still waits for a dead worker")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(300)
    try:
        with pytest.raises(BuildError, match="compile worker process died"):
            compile_mod.compile_blocks(_blocks(), jobs=2)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
