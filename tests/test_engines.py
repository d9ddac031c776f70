"""Every riscv64-musl sample case run straight from its guest ELF by the JIT
engine and by the interpreter engine (``aotrun --engine jit|interp``, no
image) prints exactly its recorded stdout and exits with its recorded status
— the same references the AOT sweep (test_samples_aot.py) checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import BIN, EXPECTED, run_recorded_case

# The interpreter compiles each basic block to a Python function (1-4 M guest
# instructions/s): every case runs in seconds to tens of seconds (strings, the
# longest, executes 93 M instructions).


def _cases() -> list:
    params = []
    for path in sorted(EXPECTED.glob("*.riscv64-musl.json")):
        rec = json.loads(path.read_text())
        params.append(pytest.param(rec, id=path.stem))
    return params


def _engine_cases() -> list:
    params = []
    for engine in ("jit", "interp"):
        for case in _cases():
            params.append(pytest.param(engine, case.values[0], id=f"{case.id}-{engine}"))
    return params


def run_engine(engine: str, rec: dict, tmp_path: Path, extra: list[str] | None = None):
    binary = BIN / Path(rec["binary"]).name
    return run_recorded_case(binary, rec, tmp_path, [f"--engine={engine}", *(extra or [])],
                             timeout=300)


@pytest.mark.parametrize("engine,rec", _engine_cases())
def test_engine_matches_reference(engine, rec, tmp_path, config_dir):
    proc = run_engine(engine, rec, tmp_path)
    stderr = proc.stderr.decode(errors="replace")
    assert "Traceback" not in stderr, stderr
    assert proc.stdout.decode(errors="replace") == rec["stdout"], stderr
    assert proc.returncode == rec["exit_code"], stderr
