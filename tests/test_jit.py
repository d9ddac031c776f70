"""Fallback engines on a guest whose code the image does not cover.

The hand-assembled guest computes a jump target arithmetically (``auipc`` +
``addi`` + ``addiw``) and jumps there with ``jalr``.  Discovery cannot know
the target (it follows ``auipc``/``addi`` into a ``jalr``, not ``addiw``):
no direct branch reaches it, no data word points at it, and the linear sweep
starts its descent at the ``nop`` right after the ``jalr`` and runs straight
through the target, so the target is *inside* a block, never a block entry.
The image therefore misses it, and the fallback engine must run it.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from conftest import aotc_cmd, aotrun_cmd, run_tool
from test_guest_exits import ECALL, ENTRY, addi, tiny_elf

TARGET = ENTRY + 5 * 4


def auipc(rd: int, imm20: int) -> int:
    return ((imm20 & 0xFFFFF) << 12) | (rd << 7) | 0x17


def addiw(rd: int, rs1: int, imm: int) -> int:
    return ((imm & 0xFFF) << 20) | (rs1 << 15) | (rd << 7) | 0x1B


def jalr(rd: int, rs1: int, imm: int) -> int:
    return ((imm & 0xFFF) << 20) | (rs1 << 15) | (rd << 7) | 0x67


# t0 = pc; t0 += 12; t0 += 8 (32-bit add: = TARGET); jr t0; nop; TARGET: a0 = 42; a7 = 93; ecall (exit)
MISSING_WORDS = [auipc(5, 0), addi(5, 5, 12), addiw(5, 5, 8), jalr(0, 5, 0), addi(0, 0, 0),
                 addi(10, 0, 42), addi(17, 0, 93), ECALL]


def build_guest(tmp_path: Path, name: str = "computed") -> Path:
    guest = tmp_path / name
    guest.write_bytes(tiny_elf(MISSING_WORDS))
    return guest


def build(guest: Path, extra: list[str] | None = None) -> Path:
    image = guest.with_suffix(".so")
    proc = run_tool([*aotc_cmd(), "build", "-q", str(guest), "-o", str(image), *(extra or [])])
    assert proc.returncode == 0, proc.stderr
    return image


@pytest.fixture
def missing_image(tmp_path, config_dir) -> Path:
    return build(build_guest(tmp_path))


def test_fallback_none_reports_untranslated_code(missing_image):
    proc = run_tool([*aotrun_cmd(), "--fallback", "none", str(missing_image)])
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert f"untranslated code at pc {TARGET:#x}" in err, err


def test_jit_fallback_runs_missed_block(missing_image, tmp_path):
    stats_path = tmp_path / "stats.json"
    proc = run_tool([*aotrun_cmd(), "--stats", "--stats-json", str(stats_path), str(missing_image)])
    err = proc.stderr.decode()
    assert proc.returncode == 42, err
    stats = json.loads(stats_path.read_text())
    assert stats["fallback"] == "jit"
    assert stats["lookup_misses"] == 1 and stats["jit_compiles"] == 1, stats
    assert stats["jit_blocks"] >= 1 and stats["jit_compile_ms_p50"] > 0
    assert stats["jit_compile_ms"] == [stats["jit_compile_ms_p50"]] == [stats["jit_compile_ms_p99"]]
    assert stats["interp_instructions"] == 0
    assert "lookup misses 1" in err and "jit compiles 1" in err, err


def test_interp_fallback_runs_missed_block(missing_image, tmp_path):
    stats_path = tmp_path / "stats.json"
    proc = run_tool([*aotrun_cmd(), "--fallback", "interp", "--stats-json", str(stats_path),
                     str(missing_image)])
    assert proc.returncode == 42, proc.stderr
    stats = json.loads(stats_path.read_text())
    assert stats["fallback"] == "interp" and stats["jit_compiles"] == 0
    # a0 = 42; a7 = 93; ecall: interpreted up to the ecall (a syscall exit)
    assert stats["interp_instructions"] == 3, stats
    assert stats["lookup_misses"] == 1


@pytest.mark.parametrize("engine", ["jit", "interp"])
def test_engines_run_the_guest_elf(engine, tmp_path, config_dir):
    proc = run_tool([*aotrun_cmd(), f"--engine={engine}", str(build_guest(tmp_path))])
    assert proc.returncode == 42, proc.stderr


def test_stats_fields(tmp_path, config_dir):
    stats_path = tmp_path / "s.json"
    proc = run_tool([*aotrun_cmd(), "--engine=interp", "--stats", "--stats-json", str(stats_path),
                     str(build_guest(tmp_path))])
    assert proc.returncode == 42
    stats = json.loads(stats_path.read_text())
    for key in ("engine", "fallback", "wall_seconds", "native_entries", "lookup_misses", "syscalls",
                "jit_compiles", "jit_blocks", "jit_compile_ms_p50", "jit_compile_ms_p99",
                "interp_instructions", "peak_rss_kib"):
        assert key in stats, key
    assert stats["engine"] == "interp" and stats["native_entries"] == 0
    assert stats["interp_instructions"] == len(MISSING_WORDS) - 1    # the nop is jumped over
    assert stats["syscalls"] == 1 and stats["peak_rss_kib"] > 0
    assert "aotrun stats: engine interp" in proc.stderr.decode()


def test_jit_code_is_never_writable_and_executable(tmp_path, config_dir):
    """Run the JIT in-process and check the host mappings: no page is W+X
    except ones that existed before (e.g. libffi trampolines)."""
    import os

    from aotc.elf.guest_elf import read_guest_elf
    from runtime.machine import Machine

    def wx() -> set[str]:
        with open("/proc/self/maps") as f:
            return {line.split()[0] for line in f if "w" in line.split()[1] and "x" in line.split()[1]}

    before = wx()
    elf = read_guest_elf(build_guest(tmp_path))
    m = Machine(None, argv=[b"g"], envp=[], elf=elf, engine="jit")
    try:
        assert m.run() == 42
        assert m.stats.jit_compiles >= 1
        with open("/proc/self/maps") as f:
            jit_maps = [line for line in f if "aotc-jit" in line]
        assert jit_maps, "JIT code is loaded from sealed memfds"
        assert all("w" not in line.split()[1] or "x" not in line.split()[1] for line in jit_maps)
        assert wx() <= before, wx() - before
    finally:
        m.close()
    _ = os, struct


@pytest.mark.parametrize("engine", ["jit", "interp"])
def test_jump_to_non_executable_memory_is_sigsegv(engine, tmp_path, config_dir):
    # jr sp: the stack is not executable
    guest = tmp_path / "jump-to-stack"
    guest.write_bytes(tiny_elf([jalr(0, 2, 0)]))
    proc = run_tool([*aotrun_cmd(), f"--engine={engine}", str(guest)])
    err = proc.stderr.decode()
    assert proc.returncode == 128 + 11, err
    assert "SIGSEGV" in err and "Traceback" not in err, err


@pytest.mark.parametrize("engine", ["jit", "interp"])
def test_undecodable_instruction_is_sigill(engine, tmp_path, config_dir):
    guest = tmp_path / "sigill"
    guest.write_bytes(tiny_elf([addi(10, 0, 1), 0x00000000]))
    proc = run_tool([*aotrun_cmd(), f"--engine={engine}", str(guest)])
    err = proc.stderr.decode()
    assert proc.returncode == 128 + 4, err
    assert f"SIGILL at pc {ENTRY + 4:#x}" in err, err


def sw(rs2: int, rs1: int, off: int) -> int:
    return (((off >> 5) & 0x7F) << 25) | (rs2 << 20) | (rs1 << 15) | (2 << 12) | ((off & 0x1F) << 7) | 0x23


FENCE_I = 0x0000100F
# t0 = pc; t1 = the word of `addi a0, x0, 42`; store it over the `addi a0, x0, 7`
# five words on; fence.i; then run the patched instruction and exit(a0).
SMC_WORDS = [auipc(5, 0), (0x02A00 << 12) | (6 << 7) | 0x37, addi(6, 6, 0x513), sw(6, 5, 20), FENCE_I,
             addi(10, 0, 7), addi(17, 0, 93), ECALL]


def smc_guest(tmp_path: Path) -> Path:
    data = bytearray(tiny_elf(SMC_WORDS))
    struct.pack_into("<I", data, 64 + 4, 7)        # p_flags: R+W+X, so the guest may patch itself
    guest = tmp_path / "smc"
    guest.write_bytes(bytes(data))
    return guest


@pytest.mark.parametrize("engine", ["jit", "interp"])
def test_self_modifying_code_after_fence_i(engine, tmp_path, config_dir):
    """The JIT translated the patched instruction before the store (same
    region); fence.i drops its translations, so the new bytes run."""
    proc = run_tool([*aotrun_cmd(), f"--engine={engine}", "--stats", str(smc_guest(tmp_path))])
    assert proc.returncode == 42, proc.stderr


def test_self_modifying_code_in_the_image(tmp_path, config_dir):
    """The image translated the patched instruction ahead of time; after the
    store and fence.i the image's code no longer matches, so it is retired
    and the new bytes run (runtime/code_invalidation.py)."""
    image = build(smc_guest(tmp_path))
    proc = run_tool([*aotrun_cmd(), "--stats", str(image)])
    assert proc.returncode == 42, proc.stderr
    assert "image translations retired (instruction cache flush" in proc.stderr.decode()


def test_executed_code_is_counted_per_engine(tmp_path, config_dir):
    """rv64_insns (no libc, 32k instructions of checks) executes exactly the
    same guest instructions on every engine; with `aotc build --count` the
    image counts its own, and a run needing no fallback has coverage 100%."""
    from conftest import BIN

    sample = BIN / "rv64_insns.riscv64"
    image = tmp_path / "counted.so"
    proc = run_tool([*aotc_cmd(), "build", "-q", "--count", str(sample), "-o", str(image)])
    assert proc.returncode == 0, proc.stderr
    counts = {}
    for engine, target in (("aot", image), ("jit", sample), ("interp", sample)):
        path = tmp_path / f"{engine}.json"
        proc = run_tool([*aotrun_cmd(), f"--engine={engine}", f"--stats-json={path}", str(target)])
        assert proc.returncode == 0, proc.stderr
        counts[engine] = json.loads(path.read_text())
    aot, jit, interp = counts["aot"], counts["jit"], counts["interp"]
    assert interp["interp_instructions"] > 30000
    assert aot["aot_instructions"] == jit["jit_instructions"] == interp["interp_instructions"]
    assert aot["jit_instructions"] == 0 and aot["image_coverage"] == 1.0
    assert jit["image_coverage"] == 0.0 and interp["jit_instructions"] == 0
    assert min(aot["aot_blocks_executed"], jit["jit_blocks_executed"], interp["interp_blocks_executed"]) > 1000
    # every compile's latency, in order; the percentiles are taken from that list
    lat = jit["jit_compile_ms"]
    assert len(lat) == jit["jit_compiles"] > 1 and min(lat) > 0
    assert min(lat) <= jit["jit_compile_ms_p50"] <= jit["jit_compile_ms_p99"] <= max(lat)
    assert jit["jit_compile_ms_p50"] in lat and jit["jit_compile_ms_p99"] in lat
    assert sum(lat) == pytest.approx(jit["jit_compile_ms_total"], abs=0.001 * len(lat))
    assert aot["jit_compile_ms"] == interp["jit_compile_ms"] == [] and aot["jit_compiles"] == 0


def test_image_coverage_with_fallback(tmp_path, config_dir):
    """The computed-jump guest: the image runs the first four instructions,
    the JIT the three at the target (the nop is jumped over)."""
    image = build(build_guest(tmp_path), ["--count"])
    path = tmp_path / "stats.json"
    proc = run_tool([*aotrun_cmd(), f"--stats-json={path}", str(image)])
    assert proc.returncode == 42, proc.stderr
    stats = json.loads(path.read_text())
    assert stats["aot_instructions"] == 4 and stats["jit_instructions"] == 3, stats
    assert stats["image_coverage"] == round(4 / 7, 6)
