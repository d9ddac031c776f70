"""Zicntr on every engine (runtime/guest_clock.py, semantics/zicsr.py): a
freestanding probe (tests/data/counters.c) reads ``time``, ``cycle`` and
``instret`` and the host's CLOCK_MONOTONIC through clock_gettime, and the
test checks the counters against that clock: ``time`` counts at 10 MHz on
CLOCK_MONOTONIC, cycle and instret move at a plausible rate, all three never
go backwards, hpmcounter3 reads 0, and writing a counter is SIGILL."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import aotc_cmd, aotrun_cmd, run_tool

DATA = Path(__file__).resolve().parent / "data"
ENGINES = ["aot", "jit", "interp"]
TIME_HZ = 10_000_000


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> dict[str, Path]:
    cc = shutil.which("riscv64-linux-gnu-gcc")
    if cc is None:
        pytest.skip("riscv64-linux-gnu-gcc not installed (apt-get install gcc-riscv64-linux-gnu)")
    d = tmp_path_factory.mktemp("counters")
    elf = d / "counters"
    subprocess.run([cc, "-O2", "-static", "-nostdlib", "-ffreestanding", "-fno-stack-protector",
                    "-march=rv64gc", "-o", str(elf), str(DATA / "counters.c")], check=True)
    image = d / "counters.so"
    proc = run_tool([*aotc_cmd(), "build", str(elf), "-o", str(image)], timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()
    return {"elf": elf, "image": image}


def _run(probe: dict[str, Path], engine: str, mode: str) -> subprocess.CompletedProcess:
    target = probe["image"] if engine == "aot" else probe["elf"]
    extra = [] if engine == "aot" else ["--engine", engine]
    return run_tool([*aotrun_cmd(), *extra, str(target), mode], timeout=120)


@pytest.mark.parametrize("engine", ENGINES)
def test_counters_follow_the_host_clock(probe, engine):
    proc = _run(probe, engine, "read")
    assert proc.returncode == 0, proc.stderr.decode()
    v = {name: int(value) for name, value in
         (line.split() for line in proc.stdout.decode().splitlines())}
    ns_per_tick = 1_000_000_000 // TIME_HZ
    slack = 2_000_000      # 2 ms: the calibration error is ~1e-5 of the uptime at most
    # time read before and after clock_gettime(CLOCK_MONOTONIC) brackets it
    assert v["time_before"] <= v["time_after"]
    assert v["time_before"] * ns_per_tick <= v["clock_ns"] + slack, v
    assert v["clock_ns"] <= v["time_after"] * ns_per_tick + slack, v
    # over a 50 ms sleep, time advances with the clock (within 5%)
    assert v["sleep_clock_ns"] >= 50_000_000
    assert abs(v["sleep_time_ticks"] * ns_per_tick - v["sleep_clock_ns"]) <= \
        0.05 * v["sleep_clock_ns"] + slack, v
    # cycle and instret run at a plausible rate: 10 MHz .. 20 GHz
    for name in ("sleep_cycles", "sleep_instret"):
        rate = v[name] * 1e9 / v["sleep_clock_ns"]
        assert 1e7 <= rate <= 2e10, (name, rate)
    assert v["monotonic_time"] == v["monotonic_cycle"] == v["monotonic_instret"] == 1
    assert v["hpmcounter3"] == 0


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("mode,word", [("write", "0xc0129073"), ("csrrs", "0xc002a7f3")])
def test_writing_a_counter_is_an_illegal_instruction(probe, engine, mode, word):
    proc = _run(probe, engine, mode)
    assert proc.returncode == 128 + 4, (proc.returncode, proc.stderr.decode())
    assert b"survived" not in proc.stdout
    assert f"illegal instruction {word}".encode() in proc.stderr, proc.stderr.decode()
