"""Tests for runtime.process: segment loading and the initial stack layout."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess

import pytest

from aotc.elf.segments import PF_R, PF_W, PF_X, GuestSegment
from aotc.errors import GuestMemoryError
from runtime.guest_memory import PROT_EXEC, PROT_READ, PROT_WRITE, GuestMemory
from runtime.process import (AT_BASE, AT_CLKTCK, AT_ENTRY, AT_EXECFN, AT_HWCAP, AT_NULL,
                             AT_PAGESZ, AT_PHDR, AT_PHENT, AT_PHNUM, AT_PLATFORM, AT_RANDOM,
                             AT_SECURE, AT_UID, AuxvInfo, build_initial_stack, load_segments)


@pytest.fixture
def mem():
    m = GuestMemory()
    yield m
    m.release()


def test_load_segments_shared_page_and_bss(mem):
    text = GuestSegment(vaddr=0x10000, memsz=0x1234, flags=PF_R | PF_X, data=b"\xaa" * 0x1234)
    # data starts inside text's last page: that page must become R|W|X.
    data = GuestSegment(vaddr=0x11800, memsz=0x3000, flags=PF_R | PF_W, data=b"\xbb" * 0x100)
    brk = load_segments(mem, [text, data])
    assert brk == 0x15000
    assert mem.read(0x10000, 0x1234) == b"\xaa" * 0x1234
    assert mem.read(0x11234, 0x11800 - 0x11234) == bytes(0x11800 - 0x11234)
    assert mem.read(0x11800, 0x100) == b"\xbb" * 0x100
    assert mem.read(0x11900, 0x14800 - 0x11900) == bytes(0x14800 - 0x11900)   # bss zero
    prot = {m.start: m.prot for m in mem.mappings()}
    assert prot[0x10000] == PROT_READ | PROT_EXEC
    assert prot[0x11000] == PROT_READ | PROT_WRITE | PROT_EXEC
    assert prot[0x12000] == PROT_READ | PROT_WRITE
    # Text is read-only for the guest.
    with pytest.raises(GuestMemoryError):
        mem.write(0x10000, b"x")
    mem.write(0x12000, b"y")


def test_exec_only_segment_is_readable(mem):
    load_segments(mem, [GuestSegment(0x20000, 0x10, PF_X, b"\x13" * 0x10)])
    assert mem.find_mapping(0x20000).prot == PROT_READ | PROT_EXEC


def _parse_stack(mem, sp):
    argc = mem.read_u64(sp)
    p = sp + 8
    argv = [mem.read_u64(p + 8 * i) for i in range(argc)]
    p += 8 * argc
    assert mem.read_u64(p) == 0
    p += 8
    envp = []
    while (v := mem.read_u64(p)) != 0:
        envp.append(v)
        p += 8
    p += 8
    auxv = []
    while True:
        k, v = mem.read_u64(p), mem.read_u64(p + 8)
        auxv.append((k, v))
        p += 16
        if k == AT_NULL:
            break
    return argc, argv, envp, auxv


def test_initial_stack_layout(mem):
    info = AuxvInfo(entry=0x10100, phdr_vaddr=0x10040, phent=56, phnum=7)
    sp = build_initial_stack(mem, argv=[b"/bin/prog", b"-x", b""], envp=[b"A=1", b"PATH=/bin"],
                             auxv_info=info, isa="riscv64", random_bytes=b"R" * 16)
    assert sp % 16 == 0
    assert 0xF000_0000 - (8 << 20) <= sp < 0xF000_0000
    stack = mem.find_mapping(sp)
    assert stack.start == 0xF000_0000 - (8 << 20) and stack.end == 0xF000_0000
    assert stack.prot == PROT_READ | PROT_WRITE
    argc, argv, envp, auxv = _parse_stack(mem, sp)
    assert argc == 3
    assert [mem.read_cstring(a) for a in argv] == [b"/bin/prog", b"-x", b""]
    assert [mem.read_cstring(e) for e in envp] == [b"A=1", b"PATH=/bin"]
    # Strings are above the vectors, in order, argv first.
    assert sp < argv[0] < argv[1] < argv[2] < envp[0] < envp[1]
    a = dict(auxv)
    assert auxv[-1] == (AT_NULL, 0)
    assert a[AT_PHDR] == 0x10040 and a[AT_PHENT] == 56 and a[AT_PHNUM] == 7
    assert a[AT_ENTRY] == 0x10100 and a[AT_PAGESZ] == 4096 and a[AT_BASE] == 0
    assert a[AT_CLKTCK] == 100 and a[AT_SECURE] == 0 and a[AT_UID] == os.getuid()
    assert a[AT_HWCAP] == sum(1 << (ord(c) - 97) for c in "imafdc")
    assert mem.read(a[AT_RANDOM], 16) == b"R" * 16
    assert mem.read_cstring(a[AT_PLATFORM]) == b"riscv64"
    assert mem.read_cstring(a[AT_EXECFN]) == b"/bin/prog"
    # The end marker: the last 8 bytes below the top are zero.
    assert mem.read(0xF000_0000 - 8, 8) == bytes(8)


def test_initial_stack_custom_top_and_random(mem):
    info = AuxvInfo(entry=1, phdr_vaddr=2)
    sp = build_initial_stack(mem, argv=[b"p"], envp=[], auxv_info=info, isa="x86_64",
                             stack_top=0x8000_0000, stack_size=1 << 20)
    assert sp % 16 == 0 and 0x8000_0000 - (1 << 20) <= sp < 0x8000_0000
    a = dict(_parse_stack(mem, sp)[3])
    assert mem.read_cstring(a[AT_PLATFORM]) == b"x86_64"
    assert mem.read(a[AT_RANDOM], 16) != bytes(16)


def test_riscv64_elf_with_qemu_compare(mem, tmp_path):
    """Load a real static riscv64 executable; its headers appear at AT_PHDR."""
    if shutil.which("riscv64-linux-gnu-gcc") is None:
        pytest.skip("no riscv64 cross compiler")
    from aotc.elf.guest_elf import read_guest_elf
    src = tmp_path / "t.c"
    src.write_text("int main(void) { return 0; }\n")
    exe = tmp_path / "t"
    subprocess.run(["riscv64-linux-gnu-gcc", "-static", "-O2", str(src), "-o", str(exe)], check=True)
    elf = read_guest_elf(exe)
    brk = load_segments(mem, elf.segments)
    assert brk % 4096 == 0 and brk >= max(s.end for s in elf.segments)
    e_phoff = struct.unpack_from("<Q", elf.raw, 0x20)[0]
    assert mem.read(elf.phdr_vaddr, 56 * elf.phnum) == elf.raw[e_phoff:e_phoff + 56 * elf.phnum]
    sp = build_initial_stack(mem, argv=[str(exe).encode()], envp=[], auxv_info=elf, isa=elf.isa)
    assert dict(_parse_stack(mem, sp)[3])[AT_ENTRY] == elf.entry
