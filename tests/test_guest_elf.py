"""Tests for aotc.elf.guest_elf: good static executables and every refusal."""

from __future__ import annotations

import hashlib
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from aotc.elf.guest_elf import GuestElf, read_guest_elf, read_guest_elf_bytes
from aotc.elf.segments import PF_R, PF_W, PF_X
from aotc.errors import AotcError, ElfError, UnsupportedGuestError

REPO = Path(__file__).resolve().parent.parent
HELLO_C = "#include <stdio.h>\nint main(void) { puts(\"hello\"); return 0; }\n"

EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
PHDR = struct.Struct("<IIQQQQQQ")


def _compile(cc: str, tmp_path: Path, out: str, *flags: str) -> Path:
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} not installed")
    src = tmp_path / "hello.c"
    src.write_text(HELLO_C)
    dst = tmp_path / out
    r = subprocess.run([cc, *flags, str(src), "-o", str(dst)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"{cc} {' '.join(flags)} failed: {r.stderr.strip()[:200]}")
    return dst


def make_elf(*, machine: int = 243, etype: int = 2, cls: int = 2, data_enc: int = 1,
             phdrs: list[tuple] | None = None, entry: int = 0x10000,
             payload: bytes = b"\x13\x00\x00\x00" * 16) -> bytes:
    """A minimal 64-bit ELF: header, program headers, then ``payload`` at 0x1000."""
    if phdrs is None:
        phdrs = [(1, PF_R | PF_X, 0, 0x10000, 0x10000, 0x1000 + len(payload),
                  0x1000 + len(payload), 0x1000)]
        entry = 0x11000
    ident = b"\x7fELF" + bytes([cls, data_enc, 1, 0]) + bytes(8)
    hdr = EHDR.pack(ident, etype, machine, 1, entry, 64, 0, 0, 64, 56, len(phdrs), 64, 0, 0)
    body = hdr + b"".join(PHDR.pack(*p) for p in phdrs)
    body = body.ljust(0x1000, b"\0") + payload
    return body


# -- good inputs -------------------------------------------------------------

def test_minimal_synthetic_riscv64():
    raw = make_elf()
    elf = read_guest_elf_bytes(raw, "mini")
    assert isinstance(elf, GuestElf)
    assert elf.isa == "riscv64"
    assert elf.entry == 0x11000
    assert len(elf.segments) == 1
    seg = elf.segments[0]
    assert seg.vaddr == 0x10000 and seg.flags == PF_R | PF_X
    assert seg.data == raw
    assert elf.phdr_vaddr == 0x10000 + 64          # inside the first PT_LOAD
    assert elf.phent == 56 and elf.phnum == 1
    assert elf.exec_ranges == ((0x10000, 0x10000 + len(raw)),)
    assert elf.tls is None
    assert elf.symbols == ()
    assert elf.sha256 == hashlib.sha256(raw).hexdigest()
    assert elf.raw == raw


def test_pt_phdr_wins():
    payload = b"\x13\x00\x00\x00" * 4
    phdrs = [(6, PF_R, 64, 0x20040, 0x20040, 112, 112, 8),
             (1, PF_R | PF_X, 0, 0x10000, 0x10000, 0x1010, 0x1010, 0x1000)]
    elf = read_guest_elf_bytes(make_elf(phdrs=phdrs, entry=0x11000, payload=payload), "x")
    assert elf.phdr_vaddr == 0x20040


def test_riscv64_static_cross(tmp_path):
    exe = _compile("riscv64-linux-gnu-gcc", tmp_path, "hello.rv", "-static", "-O2")
    elf = read_guest_elf(exe)
    assert elf.isa == "riscv64"
    assert elf.path == exe
    assert any(s.executable for s in elf.segments)
    assert any(s.flags & PF_W for s in elf.segments)
    assert any(s.contains(elf.entry) for s in elf.segments if s.executable)
    assert elf.phdr_vaddr and elf.phnum >= 2 and elf.phent == 56
    names = {name for _a, _s, name in elf.symbols}
    assert "main" in names and "_start" in names
    assert elf.tls is not None and elf.tls.memsz >= elf.tls.filesz
    for s in elf.segments:
        assert len(s.data) <= s.memsz
        assert s.end <= 1 << 32


def test_host_static(tmp_path):
    exe = _compile("cc", tmp_path, "hello.x86", "-static", "-O2", "-no-pie")
    elf = read_guest_elf(exe)
    assert elf.isa == "x86_64"
    assert elf.exec_ranges
    # AT_PHDR must point at the program headers' bytes in guest memory.
    seg = next(s for s in elf.segments if s.contains(elf.phdr_vaddr))
    off = elf.phdr_vaddr - seg.vaddr
    first = seg.data[off:off + 56]
    ehdr = EHDR.unpack_from(elf.raw)
    assert first == elf.raw[ehdr[5]:ehdr[5] + 56]


@pytest.mark.parametrize("name", ["hello.riscv64"])
def test_sample_if_present(name):
    p = REPO / "samples" / "bin" / name
    if not p.exists():
        pytest.skip("sample not built")
    elf = read_guest_elf(p)
    assert elf.isa == "riscv64"


# -- refusals ----------------------------------------------------------------

def _refused(raw_or_path, cls=ElfError) -> str:
    with pytest.raises(cls) as ei:
        if isinstance(raw_or_path, Path):
            read_guest_elf(raw_or_path)
        else:
            read_guest_elf_bytes(raw_or_path, "bad")
    msg = str(ei.value)
    assert "\n" not in msg
    assert isinstance(ei.value, AotcError)
    return msg


def test_missing_file(tmp_path):
    assert "no such file" in _refused(tmp_path / "nope")


def test_directory(tmp_path):
    assert "directory" in _refused(tmp_path)


def test_unreadable(tmp_path):
    import os
    p = tmp_path / "secret"
    p.write_bytes(make_elf())
    p.chmod(0)
    if os.access(p, os.R_OK):
        pytest.skip("running as root")
    assert "cannot read" in _refused(p)


def test_not_elf(tmp_path):
    p = tmp_path / "script.sh"
    p.write_text("#!/bin/sh\necho hi\n")
    assert "not an ELF file" in _refused(p)
    assert "not an ELF file" in _refused(b"")


def test_truncated_header():
    assert "truncated ELF" in _refused(make_elf()[:40])
    assert "truncated ELF" in _refused(b"\x7fELF\x02\x01")


def test_truncated_program_headers():
    raw = make_elf()
    assert "truncated ELF" in _refused(raw[:80])


def test_truncated_segment():
    raw = make_elf()
    assert "truncated ELF" in _refused(raw[:0x1008])


def test_32bit():
    ident = b"\x7fELF" + bytes([1, 1, 1, 0]) + bytes(8)
    raw = ident + struct.pack("<HHIIIIIHHHHHH", 2, 243, 1, 0x10000, 52, 0, 0, 52, 32, 0, 40, 0, 0)
    msg = _refused(raw, UnsupportedGuestError)
    assert "32-bit ELF is not supported; aotc runs 64-bit guests" in msg


def test_big_endian():
    assert "big-endian" in _refused(make_elf(data_enc=2), UnsupportedGuestError)


@pytest.mark.parametrize("machine, text", [(22, "S/390"), (21, "PowerPC64")])
def test_unsupported_machine(machine, text):
    msg = _refused(make_elf(machine=machine), UnsupportedGuestError)
    assert "unsupported guest ISA:" in msg and text in msg


def test_et_rel(tmp_path):
    if shutil.which("cc") is None:
        pytest.skip("no cc")
    src = tmp_path / "o.c"
    src.write_text("int f(int x) { return x + 1; }\n")
    obj = tmp_path / "o.o"
    subprocess.run(["cc", "-c", str(src), "-o", str(obj)], check=True)
    msg = _refused(obj)
    assert "ET_REL" in msg and "not an executable" in msg


def test_et_core():
    assert "ET_CORE" in _refused(make_elf(etype=4))


def test_dynamic(tmp_path):
    exe = _compile("cc", tmp_path, "hello.dyn", "-O2")
    msg = _refused(exe, UnsupportedGuestError)
    assert "dynamically linked executables are not supported yet (PT_INTERP /lib" in msg
    assert "sysroot" in msg and "link with -static" in msg


def test_static_pie_synthetic_is_placed_at_its_load_base():
    """ET_DYN without PT_INTERP (static-pie) is read, every address rebased
    (more in tests/test_pie.py)."""
    from aotc.elf.guest_elf import ET_DYN_BASE

    elf = read_guest_elf_bytes(make_elf(etype=3), "pie")
    bias = ET_DYN_BASE - 0x10000
    assert elf.pie and elf.load_base == bias
    assert elf.segments[0].vaddr == ET_DYN_BASE and elf.entry == 0x11000 + bias
    assert elf.phdr_vaddr == ET_DYN_BASE + 64
    assert read_guest_elf_bytes(make_elf(), "exec").load_base == 0


def test_no_pt_load():
    phdrs = [(0x6474E551, PF_R | PF_W, 0, 0, 0, 0, 0, 16)]   # PT_GNU_STACK only
    assert "no PT_LOAD" in _refused(make_elf(phdrs=phdrs))


def test_overlapping_segments():
    phdrs = [(1, PF_R | PF_X, 0, 0x10000, 0x10000, 0x1040, 0x1040, 0x1000),
             (1, PF_R | PF_W, 0, 0x10800, 0x10800, 0x100, 0x2000, 0x1000)]
    assert "overlap" in _refused(make_elf(phdrs=phdrs, entry=0x11000))


def test_segment_beyond_4gib():
    phdrs = [(1, PF_R | PF_X, 0, 0xFFFF_F000, 0, 0x1040, 0x1040, 0x1000)]
    msg = _refused(make_elf(phdrs=phdrs, entry=0xFFFF_F000), UnsupportedGuestError)
    assert "segment at 0xfffff000 lies outside the 4 GiB guest arena" in msg


def test_garbage_section_headers_become_elf_error():
    raw = bytearray(make_elf())
    # Point e_shoff inside the file with nonsense counts.
    struct.pack_into("<Q", raw, 0x28, 0x20)
    struct.pack_into("<HHH", raw, 0x3A, 64, 500, 499)
    with pytest.raises(ElfError) as ei:
        read_guest_elf_bytes(bytes(raw), "garbage")
    assert "\n" not in str(ei.value)
