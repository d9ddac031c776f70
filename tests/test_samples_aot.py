"""Every riscv64 sample, glibc and musl, translated by ``aotc build`` and run
by ``aotrun``, prints exactly its recorded stdout and exits with its recorded
status (recorded under qemu-riscv64, see samples/README.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import BIN, EXPECTED, run_recorded_case

FLAVOURS = ("riscv64", "riscv64-musl")


def _cases() -> list:
    params = []
    for path in sorted(EXPECTED.glob("*.json")):
        rec = json.loads(path.read_text())
        binary = Path(rec["binary"])
        flavour = binary.name.split(".", 1)[1] if "." in binary.name else ""
        if flavour not in FLAVOURS or binary.name.startswith("hello-dynamic"):
            continue
        params.append(pytest.param(rec, id=path.stem))
    return params


@pytest.mark.parametrize("rec", _cases())
def test_sample_matches_reference(rec, build_image_cached, tmp_path):
    binary = BIN / Path(rec["binary"]).name
    image = build_image_cached(binary)
    proc = run_recorded_case(image, rec, tmp_path)
    stderr = proc.stderr.decode(errors="replace")
    assert "Traceback" not in stderr, stderr
    assert proc.stdout.decode(errors="replace") == rec["stdout"], stderr
    assert proc.returncode == rec["exit_code"], stderr
