"""Tiny hand-assembled riscv64 guests: unknown syscalls give -ENOSYS (and are
logged under --strace); undecodable instructions become a guest SIGILL at
their pc, and the build report lists them."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from conftest import aotc_cmd, aotrun_cmd, run_tool

BASE = 0x10000
ENTRY = BASE + 0x78  # right after the ELF header and one program header


def addi(rd: int, rs1: int, imm: int) -> int:
    return ((imm & 0xFFF) << 20) | (rs1 << 15) | (rd << 7) | 0x13


ECALL = 0x00000073


def tiny_elf(words: list[int]) -> bytes:
    """A minimal static riscv64 executable: one R+X PT_LOAD holding the code."""
    code = b"".join(struct.pack("<I", w) for w in words)
    size = 0x78 + len(code)
    ehdr = struct.pack("<16sHHIQQQIHHHHHH", b"\x7fELF\x02\x01\x01" + b"\0" * 9,
                       2, 243, 1, ENTRY, 64, 0, 0, 64, 56, 1, 64, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, BASE, BASE, size, size, 0x1000)
    return ehdr + phdr + code


def build(tmp_path: Path, name: str, words: list[int]) -> tuple[Path, dict]:
    guest = tmp_path / name
    guest.write_bytes(tiny_elf(words))
    image = tmp_path / f"{name}.so"
    proc = run_tool([*aotc_cmd(), "build", "-q", "--json", str(guest), "-o", str(image)])
    assert proc.returncode == 0, proc.stderr
    return image, json.loads(proc.stdout)


def test_unknown_syscall_returns_enosys_and_is_logged(tmp_path, config_dir):
    # a7 = 500 (no such syscall); ecall; a7 = 93 (exit) with a0 = the result
    image, _ = build(tmp_path, "enosys", [addi(17, 0, 500), ECALL, addi(17, 0, 93), ECALL])
    proc = run_tool([*aotrun_cmd(), "--strace", str(image)])
    assert proc.returncode == (-38) & 0xFF, proc.stderr      # exit(-ENOSYS)
    err = proc.stderr.decode()
    assert "= -38 ENOSYS" in err, err


def test_undecodable_instruction_is_guest_sigill(tmp_path, config_dir):
    # a0 = 1; then an all-zero word: the reserved, illegal instruction encoding
    image, report = build(tmp_path, "sigill", [addi(10, 0, 1), 0x00000000])
    assert any(u["pc"] == ENTRY + 4 for u in report["untranslated"]), report["untranslated"]
    proc = run_tool([*aotrun_cmd(), str(image)])
    err = proc.stderr.decode()
    assert proc.returncode == 128 + 4, err                   # SIGILL
    assert f"SIGILL at pc {ENTRY + 4:#x}" in err, err
    assert "Traceback" not in err


def sd(rs2: int, rs1: int, imm: int) -> int:
    imm &= 0xFFF
    return ((imm >> 5) << 25) | (rs2 << 20) | (rs1 << 15) | (3 << 12) | ((imm & 0x1F) << 7) | 0x23


def bne(rs1: int, rs2: int, offset: int) -> int:
    o = offset & 0x1FFF
    imm = ((o >> 12) & 1) << 31 | ((o >> 5) & 0x3F) << 25 | ((o >> 1) & 0xF) << 8 | ((o >> 11) & 1) << 7
    return imm | (rs2 << 20) | (rs1 << 15) | (1 << 12) | 0x63


def test_fault_reports_the_exact_guest_pc(tmp_path, config_dir):
    # a0 = 1; a1 = 2; sd a1, 0(zero) -> SIGSEGV at the store's pc
    image, _ = build(tmp_path, "nullstore", [addi(10, 0, 1), addi(11, 0, 2), sd(11, 0, 0), addi(17, 0, 93), ECALL])
    proc = run_tool([*aotrun_cmd(), str(image)])
    err = proc.stderr.decode()
    assert proc.returncode == 139, err
    assert f"SIGSEGV at pc {ENTRY + 8:#x}: invalid memory access at 0x0" in err, err


def test_fault_pc_inside_an_optimised_loop(tmp_path, config_dir):
    # a0 = BASE + 0x1000 (unmapped, past the code); a2 = a0 + 64
    # loop: a1 += 1; sd a1, -8(a0) ... the store faults; its pc must be reported,
    # even though the loop was optimised as a whole (no per-access bookkeeping).
    lui_a0 = ((BASE + 0x1000) & 0xFFFFF000) | (10 << 7) | 0x37
    words = [lui_a0, addi(12, 10, 64),
             addi(11, 11, 1),            # ENTRY+8: loop head
             addi(10, 10, 8),            # ENTRY+12
             sd(11, 10, -8),             # ENTRY+16: faults (page at BASE+0x1000 is unmapped)
             bne(10, 12, -12),           # ENTRY+20
             addi(17, 0, 93), ECALL]
    image, _ = build(tmp_path, "loopstore", words)
    proc = run_tool([*aotrun_cmd(), str(image)])
    err = proc.stderr.decode()
    assert proc.returncode == 139, err
    assert f"SIGSEGV at pc {ENTRY + 16:#x}: invalid memory access at {BASE + 0x1000:#x}" in err, err


def ld(rd: int, rs1: int, imm: int) -> int:
    return ((imm & 0xFFF) << 20) | (rs1 << 15) | (3 << 12) | (rd << 7) | 0x03


def shift(rd: int, rs1: int, amount: int, right: bool) -> int:
    return (amount << 20) | (rs1 << 15) | ((5 if right else 1) << 12) | (rd << 7) | 0x13


def low32(rd: int, value: int) -> list[int]:
    """rd = value (a 32-bit unsigned value whose low 12 bits are 0)."""
    return [((value & 0xFFFFF000) | (rd << 7) | 0x37),      # lui (sign-extends)
            shift(rd, rd, 32, False), shift(rd, rd, 32, True)]


# Accesses whose immediate takes the address out of the 4 GiB guest space:
# translated code adds the immediate after wrapping the base into the arena,
# so they land in the arena's guards; every engine reports a SIGSEGV at the
# access, at its true 64-bit guest address.
_WRAPS = {
    # sd a1, -8(zero): below address 0
    "below": ([sd(11, 0, -8)], 0xFFFF_FFFF_FFFF_FFF8),
    # a0 = 0xfffffff8; ld a1, 16(a0): past 4 GiB
    "above": ([addi(10, 0, -8), shift(10, 10, 32, False), shift(10, 10, 32, True), ld(11, 10, 16)],
              0x1_0000_0008),
}


def add(rd: int, rs1: int, rs2: int) -> int:
    return (rs2 << 20) | (rs1 << 15) | (rd << 7) | 0x33


def wild_base(rd: int, high: int) -> list[int]:
    """rd = high << 32 | BASE: a base register whose low 32 bits are the
    mapped code's address (t0 is clobbered)."""
    return [addi(rd, 0, high), shift(rd, rd, 32, False), (BASE & 0xFFFFF000) | (5 << 7) | 0x37, add(rd, rd, 5)]


# Base registers outside the guest space whose low 32 bits are a mapped
# guest address (the code at BASE): until CODEGEN_VERSION 21, translated code
# wrapped them onto that address, so a wild pointer silently read or wrote
# guest memory (sandbox issue, item 4); every engine must fault there.
_WRAPS.update({
    "wild-load": ([*wild_base(10, 1), ld(11, 10, 0)], 0x1_0000_0000 + BASE),
    "wild-store": ([*wild_base(10, 1), sd(11, 10, 8)], 0x1_0000_0000 + BASE + 8),
    "negative-base": ([*wild_base(10, -1), ld(11, 10, 16)], 0xFFFF_FFFF_0000_0000 + BASE + 16),
})


@pytest.mark.parametrize("engine", ["aot", "jit", "interp"])
@pytest.mark.parametrize("case", sorted(_WRAPS))
def test_access_past_the_guest_address_space_faults(tmp_path, config_dir, case, engine):
    access, addr = _WRAPS[case]
    words = [addi(11, 0, 2), *access, addi(17, 0, 93), ECALL]
    image, _ = build(tmp_path, f"wrap-{case}", words)
    proc = run_tool([*aotrun_cmd(), "--engine", engine, str(image)])
    err = proc.stderr.decode()
    pc = ENTRY + 4 * len(access)                       # the access is the last of them
    assert proc.returncode == 139, err
    assert f"SIGSEGV at pc {pc:#x}: invalid memory access at {addr:#x}" in err, err


@pytest.mark.parametrize("engine", ["aot", "jit", "interp"])
def test_the_top_of_the_address_space_stays_unmapped(tmp_path, config_dir, engine):
    """mmap(MAP_FIXED) of the guest space's last page fails with ENOMEM (it is
    kept free, see runtime/guest_memory.TOP_RESERVED), so ``-8(r)`` with r
    just past 4 GiB, which translated code sends into the arena's bottom
    guard, faults in the interpreter too."""
    mmap_fixed = [*low32(10, 0xFFFF_F000), addi(11, 0, 1), shift(11, 11, 12, False),   # a1 = 4096
                  addi(12, 0, 3), addi(13, 0, 0x32), addi(14, 0, -1), addi(15, 0, 0),  # RW, PRIVATE|ANON|FIXED
                  addi(17, 0, 222), ECALL, addi(17, 0, 93), ECALL]
    image, _ = build(tmp_path, "mmap-top", mmap_fixed)
    proc = run_tool([*aotrun_cmd(), "--engine", engine, str(image)])
    assert proc.returncode == (-12) & 0xFF, proc.stderr                  # exit(-ENOMEM)
    # a0 = 2^32 + 4; ld a1, -8(a0): guest address 0xfffffffc
    access = [addi(10, 0, 1), shift(10, 10, 32, False), addi(10, 10, 4), ld(11, 10, -8)]
    image, _ = build(tmp_path, "wrap-top", [*access, addi(17, 0, 93), ECALL])
    proc = run_tool([*aotrun_cmd(), "--engine", engine, str(image)])
    err = proc.stderr.decode()
    assert proc.returncode == 139, err
    assert f"SIGSEGV at pc {ENTRY + 12:#x}" in err, err


# A wild base register that a block reads at its entry: block 1 makes a0 wild
# and jumps to block 2, whose accesses through a0 rely on its entry range
# check.  The check fails, and the interpreter runs block 2 with exact
# faults: the first access that faults is the one reported, even when it is
# not the one through a0.
_ENTRY_WILD = {
    # ld a3, 8(a0): the access through the wild register faults
    "wild-access": ([ld(13, 10, 8)], 0, 0x1_0000_0000 + BASE + 8),
    # sd a1, 0(a2) with a2 = 0 faults first; then ld a3, 0(a0)
    "earlier-fault": ([sd(11, 12, 0), ld(13, 10, 0)], 0, 0),
}


@pytest.mark.parametrize("engine", ["aot", "jit", "interp"])
@pytest.mark.parametrize("case", sorted(_ENTRY_WILD))
def test_a_wild_register_at_block_entry_faults_exactly(tmp_path, config_dir, case, engine):
    from test_block_abi import jal

    block2, index, addr = _ENTRY_WILD[case]
    first = wild_base(10, 1)
    words = [*first, jal(0, 4), *block2, addi(17, 0, 93), ECALL]
    image, _ = build(tmp_path, f"entry-{case}", words)
    stats = tmp_path / "stats.json"
    proc = run_tool([*aotrun_cmd(), "--engine", engine, "--stats-json", str(stats), str(image)])
    err = proc.stderr.decode()
    pc = ENTRY + 4 * (len(first) + 1 + index)
    assert proc.returncode == 139, err
    assert f"SIGSEGV at pc {pc:#x}: invalid memory access at {addr:#x}" in err, err
    if engine == "aot":
        assert json.loads(stats.read_text())["interpret_exits"] == 1


def _sp_wild_then(block2: list[int]) -> list[int]:
    """sp = 2^40 (saved in s1), then a jump to ``block2``: the stack pointer
    is far outside the guest space when a block is entered."""
    return [addi(9, 2, 0), addi(2, 0, 1), shift(2, 2, 40, False), jal_next(), *block2]


def jal_next() -> int:
    from test_block_abi import jal

    return jal(0, 4)


@pytest.mark.parametrize("engine", ["aot", "jit", "interp"])
def test_a_wild_stack_pointer_faults_where_it_is_used(tmp_path, config_dir, engine):
    """Blocks access through sp without an entry check (every block exit
    keeps sp near the guest space, and the dispatcher checks it): a block
    that leaves sp wild leaves for the interpreter, and the access through
    it faults there at its true address."""
    words = _sp_wild_then([ld(10, 2, 8), addi(17, 0, 93), ECALL])
    image, _ = build(tmp_path, "sp-wild", words)
    proc = run_tool([*aotrun_cmd(), "--engine", engine, str(image)])
    err = proc.stderr.decode()
    assert proc.returncode == 139, err
    assert f"SIGSEGV at pc {ENTRY + 16:#x}: invalid memory access at {(1 << 40) + 8:#x}" in err, err


@pytest.mark.parametrize("engine", ["aot", "jit", "interp"])
def test_a_stack_pointer_used_as_scratch_is_legal(tmp_path, config_dir, engine):
    """sp holding a non-address across blocks, then restored: runs to the end."""
    words = _sp_wild_then([addi(2, 9, 0), sd(2, 2, -8), ld(10, 2, -8), shift(10, 10, 32, True),
                           addi(17, 0, 93), ECALL])
    image, _ = build(tmp_path, "sp-scratch", words)
    proc = run_tool([*aotrun_cmd(), "--engine", engine, str(image)])
    assert proc.returncode == 0, proc.stderr.decode()      # exit(sp >> 32) with sp restored


@pytest.mark.parametrize("engine", ["aot", "jit", "interp"])
def test_a_sum_of_two_in_range_registers_past_the_space_faults(tmp_path, config_dir, engine):
    """``ld a3, 8(a0 + a1)`` with a0 and a1 both in the guest space but their
    sum past it (a base the entry checks do not cover): the access faults at
    its true address on every engine."""
    words = [*low32(10, 0xF000_0000), *low32(11, 0xF000_0000), jal_next(),
             add(12, 10, 11), ld(13, 12, 8), addi(17, 0, 93), ECALL]
    image, _ = build(tmp_path, "sum-wild", words)
    proc = run_tool([*aotrun_cmd(), "--engine", engine, str(image)])
    err = proc.stderr.decode()
    assert proc.returncode == 139, err
    assert f"SIGSEGV at pc {ENTRY + 32:#x}: invalid memory access at {0x1_E000_0008:#x}" in err, err
