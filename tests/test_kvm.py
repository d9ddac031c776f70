"""The same-ISA path: x86_64 static guests built into engine-"kvm" images and run
by aotrun in a KVM vCPU (runtime/kvm, docs/kvm.md).

Every x86_64 sample prints exactly its recorded stdout and exit status; hand-
assembled guests check faults (signals and exit statuses 128+n), page-table
updates after munmap, --timeout (124) and --max-memory (ENOMEM, 125).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from conftest import BIN, EXPECTED, aotc_cmd, aotrun_cmd, run_recorded_case, run_tool

from runtime.kvm.api import kvm_unavailable_message, kvm_unavailable_reason

_REASON = kvm_unavailable_reason()
if _REASON is not None:
    print(f"test_kvm: skipping, {kvm_unavailable_message(_REASON)}")
needs_kvm = pytest.mark.skipif(_REASON is not None, reason=f"KVM unusable: {_REASON}")


def make_elf(path: Path, code: bytes, vaddr: int = 0x400000) -> Path:
    """A minimal static x86_64 ELF: one R+X PT_LOAD holding the headers and ``code``."""
    entry = vaddr + 64 + 56
    total = 64 + 56 + len(code)
    ehdr = struct.pack("<16sHHIQQQIHHHHHH", b"\x7fELF\x02\x01\x01" + bytes(9), 2, 62, 1, entry,
                       64, 0, 0, 64, 56, 1, 64, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, vaddr, vaddr, total, total, 0x1000)
    path.write_bytes(ehdr + phdr + code)
    path.chmod(0o755)
    return path


def asm(*hexes: str) -> bytes:
    return bytes.fromhex("".join(hexes).replace(" ", ""))


EXIT_WITH_NEG_RAX = asm("f7d8", "89c7", "b83c000000", "0f05")       # neg eax; exit(eax)


def mmap_anon(length: int) -> bytes:
    return asm("31ff", "be" + struct.pack("<I", length).hex(), "ba03000000", "41ba22000000",
               "49c7c0ffffffff", "4d31c9", "b809000000", "0f05")


def _x86_cases() -> list:
    params = []
    for path in sorted(EXPECTED.glob("*.x86_64.json")):
        rec = json.loads(path.read_text())
        # A KVM guest cannot fork: its VM belongs to the process that made it
        # (docs/architecture.md, "Processes: fork, exec, wait").
        missing = {
            "forkexec": "fork of a KVM guest is not supported",
        }
        why = missing.get(path.stem.split(".")[0])
        marks = [pytest.mark.skip(reason=why)] if why else []
        params.append(pytest.param(rec, id=path.stem, marks=marks))
    return params


@pytest.fixture(scope="module")
def kvm_image(build_image_cached, tmp_path_factory):
    """Build (once per session) an engine-kvm image of a guest ELF."""
    def build(binary: Path) -> Path:
        return build_image_cached(binary)
    return build


@needs_kvm
@pytest.mark.parametrize("rec", _x86_cases())
def test_x86_sample_matches_reference_under_kvm(rec, kvm_image, tmp_path):
    image = kvm_image(BIN / Path(rec["binary"]).name)
    proc = run_recorded_case(image, rec, tmp_path, timeout=120)
    stderr = proc.stderr.decode(errors="replace")
    assert "Traceback" not in stderr, stderr
    assert proc.stdout.decode(errors="replace") == rec["stdout"], stderr
    assert proc.returncode == rec["exit_code"], stderr


def test_build_makes_kvm_image(config_dir, tmp_path):
    out = tmp_path / "hello.so"
    proc = run_tool([*aotc_cmd(), "build", str(BIN / "hello.x86_64"), "-o", str(out)])
    assert proc.returncode == 0, proc.stderr
    assert b"engine kvm" in proc.stdout
    from loader import read_image_file

    meta = read_image_file(out).contents.metadata
    assert meta["engine"] == "kvm" and meta["guest_isa"] == "x86_64"
    assert meta["stats"]["blocks"] == 0 and meta["entry"] > 0 and meta["phnum"] > 0
    inspect = run_tool([*aotc_cmd(), "inspect", str(out)])
    assert inspect.returncode == 0 and b"kvm" in inspect.stdout


@needs_kvm
def test_crash_reports_sigsegv_pc(kvm_image):
    proc = run_tool([*aotrun_cmd(), str(kvm_image(BIN / "crash.x86_64"))])
    assert proc.returncode == 139
    assert b"SIGSEGV at pc 0x" in proc.stderr


@needs_kvm
def test_abort_is_134(kvm_image):
    proc = run_tool([*aotrun_cmd(), str(kvm_image(BIN / "abort.x86_64"))])
    assert proc.returncode == 134
    assert b"SIGABRT" in proc.stderr


def _build(tmp_path: Path, name: str, code: bytes) -> Path:
    elf = make_elf(tmp_path / name, code)
    out = tmp_path / f"{name}.so"
    proc = run_tool([*aotc_cmd(), "build", str(elf), "-o", str(out)])
    assert proc.returncode == 0, proc.stderr
    return out


@needs_kvm
@pytest.mark.parametrize("name,code,status,text", [
    ("int3", asm("90", "cc"), 133, b"guest SIGTRAP at pc 0x400079"),
    ("ud2", asm("0f0b"), 132, b"guest SIGILL at pc 0x400078"),
    ("div0", asm("31c9", "f7f1"), 136, b"guest SIGFPE at pc 0x40007a"),
    ("user_out", asm("e680"), 139, b"guest SIGSEGV at pc 0x400078"),
    ("read_kernel", asm("48a1" + struct.pack("<Q", 0xFFFF_FFFF_FFE0_0000).hex()), 139,
     b"read of protected address 0xffffffffffe00000"),
    ("write_text", asm("488d05f9ffffff", "8900"), 139, b"write to protected address 0x400078"),
    ("jump_null", asm("31c0", "ffe0"), 139, b"instruction fetch at unmapped address 0x0"),
])
def test_guest_exceptions_become_signals(config_dir, tmp_path, name, code, status, text):
    image = _build(tmp_path, name, code)
    proc = run_tool([*aotrun_cmd(), str(image)], timeout=60)
    assert proc.returncode == status, proc.stderr
    assert text in proc.stderr, proc.stderr
    assert b"Traceback" not in proc.stderr


@needs_kvm
def test_munmap_revokes_the_page(config_dir, tmp_path):
    """mmap, touch, munmap, touch again: the stale TLB entry must be gone."""
    code = (mmap_anon(0x1000)
            + asm("488900", "4889c3",                      # mov [rax], rax; mov rbx, rax
                  "4889df", "be00100000", "b80b000000", "0f05",   # munmap(rbx, 4096)
                  "48891b"))                               # mov [rbx], rbx -> SIGSEGV
    image = _build(tmp_path, "munmap", code)
    proc = run_tool([*aotrun_cmd(), str(image)], timeout=60)
    assert proc.returncode == 139, proc.stderr
    assert b"write to unmapped address" in proc.stderr


@needs_kvm
def test_mprotect_read_only_faults_on_write(config_dir, tmp_path):
    code = (mmap_anon(0x1000)
            + asm("488900", "4889c3",                                  # touch, keep address
                  "4889df", "be00100000", "ba01000000", "b80a000000", "0f05",  # mprotect(R)
                  "488b0b",                                             # read is fine
                  "48891b"))                                            # write faults
    image = _build(tmp_path, "mprotect", code)
    proc = run_tool([*aotrun_cmd(), str(image)], timeout=60)
    assert proc.returncode == 139, proc.stderr
    assert b"write to protected address" in proc.stderr


@needs_kvm
def test_timeout_stops_a_spinning_guest(config_dir, tmp_path):
    image = _build(tmp_path, "spin", asm("ebfe"))             # jmp .
    proc = run_tool([*aotrun_cmd(), "--timeout", "0.5", str(image)], timeout=30)
    assert proc.returncode == 124, proc.stderr
    assert b"timed out after 0.5 s" in proc.stderr


@needs_kvm
def test_timeout_stops_a_guest_blocked_in_a_syscall(config_dir, tmp_path):
    code = asm("6a00", "6a0a", "4889e7", "31f6", "b823000000", "0f05",   # nanosleep({10, 0})
               "31ff", "b83c000000", "0f05")
    image = _build(tmp_path, "sleep", code)
    proc = run_tool([*aotrun_cmd(), "--timeout", "0.5", str(image)], timeout=30)
    assert proc.returncode == 124, proc.stderr
    assert b"timed out after 0.5 s" in proc.stderr and b"Traceback" not in proc.stderr


@needs_kvm
def test_max_memory_makes_mmap_fail_with_enomem(config_dir, tmp_path):
    image = _build(tmp_path, "bigmmap", mmap_anon(64 << 20) + EXIT_WITH_NEG_RAX)
    limited = run_tool([*aotrun_cmd(), "--max-memory", "32M", str(image)], timeout=60)
    assert limited.returncode == 12, limited.stderr            # ENOMEM
    free = run_tool([*aotrun_cmd(), str(image)], timeout=60)
    assert free.returncode != 12, free.stderr


@needs_kvm
def test_max_memory_too_small_to_start_is_125(kvm_image):
    proc = run_tool([*aotrun_cmd(), "--max-memory", "1M", str(kvm_image(BIN / "hello.x86_64"))])
    assert proc.returncode == 125
    assert b"--max-memory" in proc.stderr


@needs_kvm
def test_engine_kvm_refuses_a_riscv64_image(kvm_image):
    proc = run_tool([*aotrun_cmd(), "--engine", "kvm", str(kvm_image(BIN / "hello.riscv64"))])
    assert proc.returncode != 0
    assert b"not kvm" in proc.stderr


def test_unavailable_message_names_the_reason(tmp_path):
    reason = kvm_unavailable_reason(str(tmp_path / "no-kvm"))
    assert reason is not None and reason.startswith("cannot open")
    assert kvm_unavailable_message(reason) == f"KVM is not available: {reason}"
    not_kvm = kvm_unavailable_reason("/dev/null")
    assert not_kvm is not None and "/dev/null" in not_kvm


def test_aotrun_without_usable_kvm_says_so(kvm_image, tmp_path):
    """AOTC_KVM_DEVICE points the engine at another device node (here: none, /dev/null)."""
    image = kvm_image(BIN / "hello.x86_64")
    for device, why in ((tmp_path / "no-kvm", b"cannot open"), ("/dev/null", b"/dev/null")):
        proc = run_tool([*aotrun_cmd(), str(image)], env={"AOTC_KVM_DEVICE": str(device)})
        assert proc.returncode == 1, proc.stderr
        lines = proc.stderr.decode().splitlines()
        assert len(lines) == 1 and lines[0].startswith("aotrun: error: KVM is not available: "), lines
        assert why in proc.stderr and proc.stdout == b""


def test_parse_size():
    from aotc.sizes import parse_size

    assert parse_size("4096") == 4096
    assert parse_size("64M") == 64 << 20
    assert parse_size("1g") == 1 << 30
    assert parse_size("512KiB") == 512 << 10
    with pytest.raises(ValueError):
        parse_size("lots")
