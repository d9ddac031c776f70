"""--timeout and --max-memory on the translated engines (AOT image, JIT,
interpreter) with hand-assembled riscv64 guests; the KVM engine's own
checks are in test_kvm.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import BIN, aotc_cmd, aotrun_cmd, run_tool
from test_guest_exits import ECALL, addi, tiny_elf

ENGINES = ["aot", "jit", "interp"]
SYS_NANOSLEEP, SYS_MMAP, SYS_EXIT = 101, 222, 93
JUMP_TO_SELF = 0x0000006F                      # jal x0, 0


def lui(rd: int, imm20: int) -> int:
    return ((imm20 & 0xFFFFF) << 12) | (rd << 7) | 0x37


def sd(rs2: int, rs1: int, imm: int) -> int:
    return ((imm >> 5 & 0x7F) << 25) | (rs2 << 20) | (rs1 << 15) | (3 << 12) | ((imm & 0x1F) << 7) | 0x23


def sub(rd: int, rs1: int, rs2: int) -> int:
    return (0x20 << 25) | (rs2 << 20) | (rs1 << 15) | (rd << 7) | 0x33


# nanosleep({10 s, 0}, NULL) on the stack, then exit(0)
SLEEP = [addi(2, 2, -16), addi(5, 0, 10), sd(5, 2, 0), sd(0, 2, 8), addi(10, 2, 0), addi(11, 0, 0),
         addi(17, 0, SYS_NANOSLEEP), ECALL, addi(10, 0, 0), addi(17, 0, SYS_EXIT), ECALL]
# a0 = mmap(NULL, 64 MiB, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
# exit(-a0): 12 (ENOMEM) when refused, the low byte of -address otherwise
MMAP_64M = [addi(10, 0, 0), lui(11, (64 << 20) >> 12), addi(12, 0, 3), addi(13, 0, 0x22),
            addi(14, 0, -1), addi(15, 0, 0), addi(17, 0, SYS_MMAP), ECALL,
            sub(10, 0, 10), addi(17, 0, SYS_EXIT), ECALL]


def target(tmp_path: Path, name: str, words: list[int], engine: str) -> Path:
    elf = tmp_path / name
    elf.write_bytes(tiny_elf(words))
    if engine != "aot":
        return elf
    image = elf.with_suffix(".so")
    proc = run_tool([*aotc_cmd(), "build", "-q", str(elf), "-o", str(image)])
    assert proc.returncode == 0, proc.stderr
    return image


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name,words", [("spin", [JUMP_TO_SELF]), ("sleep", SLEEP)])
def test_timeout_stops_the_guest(engine, name, words, tmp_path, config_dir):
    """A guest spinning in translated code (no syscalls, never back in
    Python) or blocked in a 10 s nanosleep is stopped: exit 124."""
    proc = run_tool([*aotrun_cmd(), f"--engine={engine}", "--timeout", "0.5",
                     str(target(tmp_path, name, words, engine))], timeout=60)
    err = proc.stderr.decode()
    assert proc.returncode == 124, err
    assert "timed out after 0.5 s" in err and "Traceback" not in err, err


@pytest.mark.parametrize("engine", ENGINES)
def test_max_memory_makes_mmap_fail_with_enomem(engine, tmp_path, config_dir):
    guest = target(tmp_path, "bigmmap", MMAP_64M, engine)
    limited = run_tool([*aotrun_cmd(), f"--engine={engine}", "--max-memory", "32M", str(guest)])
    assert limited.returncode == 12, limited.stderr             # ENOMEM
    free = run_tool([*aotrun_cmd(), f"--engine={engine}", str(guest)])
    assert free.returncode not in (12, 124, 125), free.stderr   # mapped: -address & 0xff


def test_max_memory_too_small_to_start_is_125(tmp_path, config_dir):
    """hello's segments and initial stack do not fit in 1 MiB."""
    proc = run_tool([*aotrun_cmd(), "--engine=interp", "--max-memory", "1M",
                     str(BIN / "hello.riscv64-musl")])
    assert proc.returncode == 125, proc.stderr
    assert b"--max-memory" in proc.stderr


def test_timeout_does_not_touch_a_quick_guest(tmp_path, config_dir):
    proc = run_tool([*aotrun_cmd(), "--engine=interp", "--timeout", "30",
                     str(target(tmp_path, "quick", [addi(10, 0, 7), addi(17, 0, SYS_EXIT), ECALL], "interp"))])
    assert proc.returncode == 7, proc.stderr
