"""Sandbox findings of issue 16 that the runtime and translated code fix
(items 2, 3, 4 in test_guest_exits.py, 5, 10, 11): each test fails on
98da989's behaviour.

* A file mapping truncated under the guest: the host process survived no
  host-side access to it (strace's buffer quote, mremap's copy, the
  interpreter's load died of SIGBUS, exit 135 and no message); now every
  host-side access goes through the native core's fault-safe copy, and the
  guest sees what Linux gives it (-EFAULT, or SIGBUS for its own load).
* A NULL function pointer: an indirect call to address 0 "hit" an empty
  slot of the image's block table and called its null entry (host SIGSEGV).
* A 1 GiB private file mapping was read into a Python buffer first.
* write() with a count of 2^63 wrote the mapped prefix instead of -EFAULT.
* A code segment under the initial stack was replaced by the stack's pages,
  but the image's translation of it kept running.

References are qemu-riscv64's runs of the same binary, made by the test.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import aotc_cmd, aotrun_cmd, run_tool
from test_guest_exits import ECALL, addi, ld

DATA = Path(__file__).parent / "data"
ENGINES = ["aot", "jit", "interp"]
CC = "riscv64-linux-gnu-gcc"
QEMU = "qemu-riscv64"


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (CI installs it: see .ci/run)")


@pytest.fixture(scope="module")
def probe(tmp_path_factory, config_dir) -> tuple[Path, Path]:
    """The freestanding probe (tests/data/sandbox_probe.c) and its image."""
    _need(CC)
    out = tmp_path_factory.mktemp("probe")
    elf = out / "probe"
    subprocess.run([CC, "-nostdlib", "-static", "-O2", "-mno-relax", "-ffreestanding",
                    "-fno-tree-loop-distribute-patterns", "-o", str(elf), str(DATA / "sandbox_probe.c")],
                   check=True, capture_output=True)
    image = out / "probe.so"
    proc = run_tool([*aotc_cmd(), "build", "-q", str(elf), "-o", str(image)])
    assert proc.returncode == 0, proc.stderr
    return elf, image


def _status(rc: int) -> int:
    """A shell's view of a return code: killed by signal n → 128 + n."""
    return 128 - rc if rc < 0 else rc


def _qemu(elf: Path, args: list[str], cwd: Path) -> tuple[int, bytes]:
    _need(QEMU)
    proc = subprocess.run([QEMU, str(elf), *args], capture_output=True, cwd=cwd, timeout=120)
    return _status(proc.returncode), proc.stdout


def _aotrun(engine: str, target: Path, args: list[str], cwd: Path, *opts: str) -> subprocess.CompletedProcess:
    return run_tool([*aotrun_cmd(), "--engine", engine, *opts, str(target), *args], cwd=cwd)


@pytest.mark.parametrize("strace", [False, True], ids=["plain", "strace"])
@pytest.mark.parametrize("what", ["truncated-write", "truncated-mremap", "truncated-load", "huge-write"])
@pytest.mark.parametrize("engine", ENGINES)
def test_probe_matches_qemu(probe, tmp_path, engine, what, strace):
    elf, image = probe
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"
    ref_dir.mkdir()
    run_dir.mkdir()
    want_rc, want_out = _qemu(elf, [what], ref_dir)
    proc = _aotrun(engine, image, [what], run_dir, *(["--strace"] if strace else []))
    err = proc.stderr.decode()
    assert (proc.returncode, proc.stdout) == (want_rc, want_out), err
    if want_rc == 128 + 7:
        assert "guest SIGBUS at pc" in err, err          # the guest's fault, said as such


@pytest.mark.parametrize("engine", ENGINES)
def test_a_large_private_file_mapping_is_not_copied(probe, tmp_path, engine):
    """1 GiB mapped, 8 pages touched: the host's peak RSS stays far below the
    mapping's size (98da989 read the whole file first: 2.1 GB under
    --max-memory 1200M), and --max-memory still counts the mapping."""
    elf, image = probe
    want = _qemu(elf, ["big-private"], tmp_path)
    cmd = [*aotrun_cmd(), "--engine", engine, "--max-memory", "1200M", str(image), "big-private"]
    with open(tmp_path / "out", "wb") as out, open(tmp_path / "err", "wb") as err:
        child = subprocess.Popen(cmd, cwd=tmp_path, stdout=out, stderr=err)
        _pid, status, usage = os.wait4(child.pid, 0)      # this child's own peak RSS
    rc = os.waitstatus_to_exitcode(status)
    assert (_status(rc), (tmp_path / "out").read_bytes()) == want, (tmp_path / "err").read_text()
    peak = usage.ru_maxrss * 1024
    assert peak < 400 << 20, f"peak RSS {peak >> 20} MiB"
    small = subprocess.run([*aotrun_cmd(), "--engine", engine, "--max-memory", "512M", str(image),
                            "big-private"], cwd=tmp_path, capture_output=True, timeout=120)
    assert small.stdout.splitlines()[-1] == b"mmap: -12", small.stderr   # ENOMEM, like RLIMIT_AS


def _elf_at(words: list[int], vaddr: int, offset: int = 0x1000, headers: bool = False) -> bytes:
    """A static riscv64 executable whose only PT_LOAD (R+X) holds ``words``
    at ``vaddr`` (file offset ``offset`` ≡ vaddr mod 4096), entry at vaddr;
    with ``headers`` the segment starts at offset 0 (the ELF headers mapped
    too, as qemu-user wants them)."""
    code = b"".join(struct.pack("<I", w) for w in words)
    ehdr = struct.pack("<16sHHIQQQIHHHHHH", b"\x7fELF\x02\x01\x01" + b"\0" * 9,
                       2, 243, 1, vaddr, 64, 0, 0, 64, 56, 1, 64, 0, 0)
    start = offset if not headers else 0
    size = offset + len(code) - start
    phdr = struct.pack("<IIQQQQQQ", 1, 5, start, vaddr - offset + start, vaddr - offset + start,
                       size, size, 0x1000)
    return (ehdr + phdr).ljust(offset, b"\0") + code


def _build(tmp_path: Path, name: str, data: bytes) -> tuple[Path, Path]:
    elf = tmp_path / name
    elf.write_bytes(data)
    image = tmp_path / f"{name}.so"
    proc = run_tool([*aotc_cmd(), "build", "-q", str(elf), "-o", str(image)])
    assert proc.returncode == 0, proc.stderr
    return elf, image


# ld a2, 16(sp) (argv[1]: NULL when the guest has no arguments); then a call
# (jalr ra, 0(a2)) or a jump (jalr zero, 0(a2)) through it.  The code sits at
# 0x11008 so that no block hashes to slot 0 of the image's table (the slot a
# jump to 0 probes): the image of 98da989 called that empty slot's null entry.
_NULL = {"call": (12 << 15) | (1 << 7) | 0x67, "jump": (12 << 15) | 0x67}


@pytest.mark.parametrize("kind", sorted(_NULL))
@pytest.mark.parametrize("engine", ENGINES)
def test_a_null_function_pointer_is_a_guest_sigsegv(tmp_path, config_dir, engine, kind):
    _elf, image = _build(tmp_path, f"null-{kind}",
                         _elf_at([ld(12, 2, 16), _NULL[kind], addi(17, 0, 93), ECALL], 0x11008, 0x1008))
    proc = _aotrun(engine, image, [], tmp_path)
    err = proc.stderr.decode()
    assert proc.returncode == 139, err
    assert "guest SIGSEGV at pc 0x0" in err, err


@pytest.mark.parametrize("engine", ENGINES)
def test_code_where_the_stack_would_go_runs(tmp_path, config_dir, engine):
    """A segment inside the default stack range (0xef800000-0xf0000000): the
    stack goes elsewhere and the code runs, as on Linux, whose stack sits
    far above any such segment (98da989 mapped the stack over it: the
    interpreter faulted on its zero pages while aot kept running the stale
    translation).  qemu-riscv64 7.2 is no reference here: it exits 1 at
    load time for this layout."""
    # auipc a1, 0; lw a0, 0(a1); andi a0, a0, 0xff: exit(low byte of the
    # auipc's own word, 0x97), so code that runs over stack pages exits 0.
    code = [(11 << 7) | 0x17, (11 << 15) | (2 << 12) | (10 << 7) | 0x03,
            (0xFF << 20) | (10 << 15) | (7 << 12) | (10 << 7) | 0x13, addi(17, 0, 93), ECALL]
    _elf, image = _build(tmp_path, "under-stack", _elf_at(code, 0xEFF0_1000, headers=True))
    proc = _aotrun(engine, image, [], tmp_path)
    assert proc.returncode == 0x97, proc.stderr.decode()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
