"""Stale translations: code the guest generates, rewrites, patches in its own
text, unmaps or makes non-executable (runtime/code_invalidation.py).

The samples jitgen and selfmod (samples/src) run under every engine in the
sample sweeps (test_samples_aot.py, test_engines.py, test_kvm.py); here their
statistics show *how* the default configuration got the right answer, and
hand-assembled guests check the mapping-change triggers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import BIN, EXPECTED, aotc_cmd, aotrun_cmd, load_expected, run_recorded_case, run_tool
from test_guest_exits import BASE, ECALL, ENTRY, addi, tiny_elf

SYS_MUNMAP, SYS_MPROTECT, SYS_EXIT = 215, 226, 93
PROT_READ, PROT_EXEC = 1, 4


def lui(rd: int, imm20: int) -> int:
    return ((imm20 & 0xFFFFF) << 12) | (rd << 7) | 0x37


def run_sample(name: str, build_image_cached, tmp_path: Path) -> tuple[dict, dict]:
    rec = load_expected(EXPECTED / f"{name}.riscv64-musl.json")
    image = build_image_cached(BIN / f"{name}.riscv64-musl")
    stats_path = tmp_path / "stats.json"
    proc = run_recorded_case(image, rec, tmp_path, [f"--stats-json={stats_path}"])
    assert proc.stdout.decode() == rec["stdout"], proc.stderr
    assert proc.returncode == rec["exit_code"], proc.stderr
    return rec, json.loads(stats_path.read_text())


def test_patched_image_text_retires_the_image(build_image_cached, tmp_path):
    """selfmod patches a function the image translated ahead of time; after
    its riscv_flush_icache the image's code no longer matches its bytes, so
    the image is retired and the JIT runs the new instructions."""
    _, stats = run_sample("selfmod", build_image_cached, tmp_path)
    assert stats["image_retired"] and "instruction cache flush" in stats["image_retired"], stats
    assert stats["jit_compiles"] > 0 and stats["jit_flushes"] >= 1, stats


def test_rewritten_generated_code_is_translated_again(build_image_cached, tmp_path):
    """jitgen writes code into mmap'd memory (not the image): the JIT
    translates it, and drops the translation when it is rewritten; the
    image's own code is untouched and stays in use."""
    _, stats = run_sample("jitgen", build_image_cached, tmp_path)
    assert stats["image_retired"] is None, stats
    # first version, rewrite via mprotect, eight rewrites of g: >= 10 compiles
    assert stats["jit_compiles"] >= 10 and stats["jit_flushes"] >= 9, stats


def mprotect_then_exit(prot: int, syscall: int = SYS_MPROTECT) -> list[int]:
    """mprotect(BASE, 4096, prot) (or munmap(BASE, 4096)) on the page holding
    this very code, then exit(42) from the same page."""
    return [lui(10, BASE >> 12), lui(11, 1), addi(12, 0, prot), addi(17, 0, syscall), ECALL,
            addi(10, 0, 42), addi(17, 0, SYS_EXIT), ECALL]


def guest(tmp_path: Path, words: list[int], name: str) -> Path:
    path = tmp_path / name
    path.write_bytes(tiny_elf(words))
    return path


def image_of(elf: Path) -> Path:
    image = elf.with_suffix(".so")
    proc = run_tool([*aotc_cmd(), "build", "-q", str(elf), "-o", str(image)])
    assert proc.returncode == 0, proc.stderr
    return image


def test_unchanged_code_keeps_the_image(tmp_path, config_dir):
    """An mprotect over the image's text that leaves it executable and
    unchanged does not retire the image: no lookup misses, no JIT."""
    image = image_of(guest(tmp_path, mprotect_then_exit(PROT_READ | PROT_EXEC), "same-prot"))
    stats_path = tmp_path / "stats.json"
    proc = run_tool([*aotrun_cmd(), "--fallback=none", f"--stats-json={stats_path}", str(image)])
    assert proc.returncode == 42, proc.stderr
    stats = json.loads(stats_path.read_text())
    assert stats["image_retired"] is None and stats["lookup_misses"] == 0, stats


@pytest.mark.parametrize("engine", ["aot", "jit", "interp"])
@pytest.mark.parametrize("what", ["mprotect-read-only", "munmap"])
def test_code_made_unexecutable_faults(engine, what, tmp_path, config_dir):
    """Once the page holding the running code is no longer executable (or no
    longer mapped), the next instruction fetch from it is a guest SIGSEGV at
    that pc — even though a translation of it exists."""
    words = (mprotect_then_exit(PROT_READ) if what == "mprotect-read-only"
             else mprotect_then_exit(0, SYS_MUNMAP))
    elf = guest(tmp_path, words, what)
    target = image_of(elf) if engine == "aot" else elf
    proc = run_tool([*aotrun_cmd(), f"--engine={engine}", str(target)])
    err = proc.stderr.decode()
    assert proc.returncode == 128 + 11, err
    assert f"SIGSEGV at pc {ENTRY + 5 * 4:#x}" in err, err
    assert "Traceback" not in err, err
