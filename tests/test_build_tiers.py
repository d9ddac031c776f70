"""Build tiers and bounded chunks (aotc.backend.compile, docs/adr/0002-build-tiers.md):
which LLVM pipeline each unit gets (loops, recursion and small leaf
functions opt, the rest fast), chunks of one tier and bounded size, a
killed compile worker reported as such, and images of both tiers that run."""

from __future__ import annotations

import faulthandler
import json
import os
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest

import aotc.backend.compile as compile_mod
from aotc.backend.compile import compile_units, plan_chunks
from aotc.discover import CodeRange, discover
from aotc.errors import CompileWorkerDied
from tests.test_discover import BASE, ECALL, RET, addi, bne, jal, words

ROOT = Path(__file__).resolve().parents[1]
MUSL_HELLO = ROOT / "samples" / "bin" / "hello.riscv64-musl"

# Hand-assembled functions (pcs below): main calls each once.
MAIN, LOOP, STRAIGHT, LEAF, REC = BASE, 0x10100, 0x10200, 0x10300, 0x10400
DISPATCH = 0x10480      # reached from the entry list only
JR_A5 = (15 << 15) | 0x67                   # jalr x0, 0(a5): a jump-table jump


def _program() -> bytes:
    code = bytearray(0x500)

    def put(pc: int, *insns: int) -> None:
        code[pc - BASE:pc - BASE + 4 * len(insns)] = words(*insns)

    put(MAIN, addi(5, 0, 3),
        jal(1, LOOP - (MAIN + 4)),          # a call
        jal(1, STRAIGHT - (MAIN + 8)),      # a return point outside loops: a region head
        jal(1, LEAF - (MAIN + 12)),
        jal(1, REC - (MAIN + 16)),
        ECALL)
    put(LOOP, addi(5, 5, -1), bne(5, 0, -4), RET)                   # a loop
    put(STRAIGHT, *[addi(10, 10, 1)] * 20, RET)                     # straight-line, 20 instructions
    put(LEAF, addi(10, 10, 1), RET)                                 # a small leaf function
    put(REC, *[addi(10, 10, -1)] * 14, bne(10, 0, 8), RET,          # recursion without a loop
        jal(1, REC - (REC + 4 * 16)), RET)
    put(DISPATCH, *[addi(10, 10, 1)] * 20, JR_A5)                  # an interpreter's dispatch
    return bytes(code)


def _units(tier: str):
    disc = discover([CodeRange(BASE, _program())], [], {"entry": [MAIN, DISPATCH]})
    return compile_units(disc.blocks, frozenset(), tier)


def _tier_of(units, pc: int, kind: str = "region") -> str:
    (tier,) = [t for _w, (k, members), t in units if k == kind and members[0].pc == pc]
    return tier


def test_auto_sends_loops_recursion_and_small_leaves_to_opt_and_the_rest_to_fast():
    units = _units("auto")
    assert _tier_of(units, LOOP) == "opt"
    assert _tier_of(units, REC) == "opt"
    assert _tier_of(units, LEAF) == "opt"
    # a jump through a register (a jump table) may close a loop the graph cannot see
    assert _tier_of(units, DISPATCH) == "opt"
    assert _tier_of(units, STRAIGHT) == "fast"
    assert _tier_of(units, MAIN) == "fast"
    copies = [t for _w, (k, _m), t in units if k == "copy"]
    assert copies and set(copies) == {"fast"}     # only entered mid-region: cold by design


@pytest.mark.parametrize("tier", ["opt", "fast"])
def test_a_single_tier_takes_everything(tier):
    assert {t for _w, _u, t in _units(tier)} == {tier}


def _fake_units(weights: list[tuple[int, str]]):
    return [(w, ("region", [SimpleNamespace(pc=0x10000 + 4 * i)]), t) for i, (w, t) in enumerate(weights)]


def test_chunks_are_bounded_single_tier_and_independent_of_jobs():
    units = _fake_units([(w, "opt" if i % 3 else "fast") for i, w in enumerate([1200, 900, 40, 7, 300] * 200)])
    chunks = plan_chunks(units, max_insns=5000)
    placed = sorted(u[1][0].pc for c in chunks for u in c.units)
    assert placed == sorted(u[1][1][0].pc for u in units)        # every unit exactly once
    for c in chunks:
        assert c.weight <= 5000
        assert c.weight == sum(w for w, u, t in units if any(u is x for x in c.units))
        assert {t for _w, u, t in units if any(u is x for x in c.units)} == {c.tier}
    total = sum(w for w, _u, _t in units)
    assert len(chunks) <= total // 5000 + 4                      # not many more than needed
    # A unit heavier than the bound gets a chunk of its own.
    big = plan_chunks(_fake_units([(9000, "opt"), (10, "opt")]), max_insns=5000)
    assert sorted(c.weight for c in big) == [10, 9000]


def test_a_small_program_gets_a_few_chunks_not_one_per_unit():
    chunks = plan_chunks(_fake_units([(5, "fast")] * 300 + [(20, "opt")] * 10))
    assert 2 <= len(chunks) <= 3


def _musl_blocks():
    from aotc.build import _code_and_data
    from aotc.elf.guest_elf import read_guest_elf

    elf = read_guest_elf(MUSL_HELLO)
    code, data = _code_and_data(elf)
    return discover(code, data, {"entry": [elf.entry], "symbols": [a for a, _s, _n in elf.symbols]}).blocks


def test_compile_blocks_respects_the_chunk_bound():
    blocks = _musl_blocks()
    seen = []
    real = compile_mod.compile_ir

    def record(ir, opt_level, name="chunk"):
        if name.startswith("chunk"):
            seen.append(int(name[5:]))
        return real(ir, opt_level, name)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(compile_mod, "compile_ir", record)
        chunks = plan_chunks(compile_units(blocks, compile_mod.fp_barrier_blocks(blocks), "fast"), 1500)
        _objects, _untranslated, timings = compile_mod.compile_blocks(blocks, jobs=1, tier="fast",
                                                                      max_chunk_insns=1500)
    assert timings["chunks"] == len(chunks) == len(seen) >= 6
    assert all(c.weight <= 1500 for c in chunks)
    fast = timings["tiers"]["fast"]
    assert fast["chunks"] == len(chunks) and fast["instructions_per_second"] > 0
    assert set(timings["tiers"]) == {"fast"}


def test_a_killed_compile_worker_is_reported_with_its_chunk(monkeypatch):
    real = compile_mod.compile_ir

    def oom_in_chunk1(ir, opt_level, name="chunk"):
        if name == "chunk1":               # in the forked worker only
            faulthandler.disable()
            os.kill(os.getpid(), signal.SIGKILL)   # as the kernel's OOM killer does
        return real(ir, opt_level, name)

    monkeypatch.setattr(compile_mod, "compile_ir", oom_in_chunk1)

    def hung(*_a):
        raise AssertionError("the build still waits for a dead worker")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(300)
    try:
        with pytest.raises(CompileWorkerDied, match=r"killed by SIGKILL.* chunk 2/\d+ \(fast tier, \d+ guest "
                                                    r"instructions.*out-of-memory") as info:
            compile_mod.compile_blocks(_musl_blocks(), jobs=2, tier="fast")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert info.value.chunk == 1 and info.value.tier == "fast" and info.value.instructions > 0
    assert info.value.exitcode == -signal.SIGKILL


@pytest.mark.parametrize("tier", ["fast", "auto", "opt"])
def test_an_image_of_each_tier_runs_correctly(tier, build_image_cached, config_dir, tmp_path):
    from conftest import EXPECTED, run_recorded_case

    rec = json.loads((EXPECTED / "recursion.riscv64-musl.json").read_text())
    binary = ROOT / rec["binary"]
    if tier == "opt":
        image = build_image_cached(binary)          # the default build (shared with test_samples_aot)
    else:
        from aotc.build import build_image
        from aotc.keys import load_or_create_signing_key

        image = tmp_path / f"{tier}.so"
        report = build_image(binary, image, key=load_or_create_signing_key(), tier=tier)
        assert report.tier == tier
        assert set(report.tiers) == ({"fast"} if tier == "fast" else {"fast", "opt"})
    proc = run_recorded_case(image, rec, tmp_path)
    assert proc.stdout.decode(errors="replace") == rec["stdout"], proc.stderr.decode(errors="replace")
    assert proc.returncode == rec["exit_code"]
