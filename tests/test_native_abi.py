"""The native dispatcher (runtime/native/aotrt.c) and the Python side agree
on the guest state's layout and the exit codes it handles itself."""

from __future__ import annotations

import re
from pathlib import Path

from aotc.isa.riscv64 import state

SOURCE = Path(__file__).resolve().parents[1] / "runtime" / "native" / "aotrt.c"


def test_state_offsets_and_exit_codes_match():
    defines = dict(re.findall(r"^#define (STATE_\w+_OFFSET|EXIT_\w+) (\d+)$", SOURCE.read_text(), re.MULTILINE))
    assert int(defines["STATE_PC_OFFSET"]) == state.OFFSETS["pc"]
    assert int(defines["STATE_FCSR_OFFSET"]) == state.OFFSETS["fcsr"]
    assert int(defines["STATE_SP_LIMIT_OFFSET"]) == state.OFFSETS["host_sp_limit"]
    for name in ("EXIT_CONTINUE", "EXIT_MISS", "EXIT_FAULT", "EXIT_RETURN"):
        assert int(defines[name]) == getattr(state, name), name
