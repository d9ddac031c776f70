"""Read a guest ELF executable into a ``GuestElf``.

Only what running a static Linux user-mode guest needs is kept: the loadable
segments, the entry point, where the program headers live in guest memory
(AT_PHDR), function symbols (if not stripped), the TLS template and a hash
of the file, and the section headers (hints only: see ``aotc.elf.sections``).

A position-independent executable without an interpreter (static-pie,
``ET_DYN``) is placed at a load base (``ET_DYN_BASE``, or the caller's) here,
once: every address the ``GuestElf`` holds (segments, entry, AT_PHDR, TLS,
symbols, sections) is already rebased, so discovery, the image and the
runtime all see the addresses the program runs at.  The segments' bytes are
the file's: the program relocates its own data at start.
Every problem is reported as one ``ElfError`` (or its subclass
``UnsupportedGuestError`` for well-formed ELFs this version cannot run) with a
one-line message, whatever the field values: every offset, size and address
is checked before it is used, and nothing else is raised.
"""

from __future__ import annotations

import dataclasses
import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

from aotc.elf.dynamic import relocated_pointers
from aotc.elf.sections import Section, function_symbols, read_sections
from aotc.elf.segments import PF_R, PF_W, PF_X, GuestSegment
from aotc.errors import ElfError, UnsupportedGuestError

__all__ = ["GuestElf", "GuestTls", "read_guest_elf", "read_guest_elf_bytes",
           "ARENA_SIZE", "ET_DYN_BASE", "ET_DYN_TOP", "PF_R", "PF_W", "PF_X"]

# Our guest arena is 32 bits wide (see runtime/guest_memory.py).
ARENA_SIZE = 1 << 32

# Where a position-independent executable without an interpreter (static-pie)
# is loaded.  Linux puts ET_DYN programs at ELF_ET_DYN_BASE, two thirds of the
# way up the address space: clear of fixed-address executables (linked at
# 0x10000 on riscv64, 0x400000 on x86_64) and the break after them, with the
# mmap area above.  Our guest space is 4 GiB, and the runtime puts mmap
# top-down below ET_DYN_TOP (``LinuxKernel``'s mmap base) and the stack below
# 0xF000_0000 (runtime/process.py): two thirds of ET_DYN_TOP, rounded down to
# 64 KiB, leaves a program's break 1.3 GiB before the mmap area, and mmap
# the space on both sides of the program (tests/test_pie.py checks the
# constants against the runtime's layout).  A program too large to fit below
# ET_DYN_TOP from there is placed lower, ending at ET_DYN_TOP.
ET_DYN_TOP = 0xE000_0000
ET_DYN_BASE = (ET_DYN_TOP * 2 // 3) & ~0xFFFF    # 0x9555_0000
_PAGE = 0x1000
# Larger p_align values than this are not honoured (Linux caps them too).
_MAX_ALIGN = 1 << 24

EM_X86_64 = 62
EM_AARCH64 = 183
EM_RISCV = 243
_ISA_BY_MACHINE = {EM_RISCV: "riscv64", EM_X86_64: "x86_64", EM_AARCH64: "aarch64"}
# Instruction alignment: riscv64 with the C extension fetches 2-byte parcels;
# aarch64 instructions are 4 bytes; x86_64 has none.
_ENTRY_ALIGN = {"riscv64": 2, "aarch64": 4, "x86_64": 1}

ET_REL, ET_EXEC, ET_DYN, ET_CORE = 1, 2, 3, 4
PT_LOAD, PT_INTERP, PT_PHDR, PT_TLS = 1, 3, 6, 7

_EHDR64 = struct.Struct("<16sHHIQQQIHHHHHH")   # 64 bytes
_PHDR64 = struct.Struct("<IIQQQQQQ")           # 56 bytes


@dataclass(frozen=True, slots=True)
class GuestTls:
    """The PT_TLS template: initialised part [vaddr, vaddr+filesz), total memsz."""

    vaddr: int
    filesz: int
    memsz: int
    align: int


@dataclass(frozen=True)
class GuestElf:
    path: Path
    isa: str                                  # "riscv64" | "x86_64" | "aarch64"
    entry: int
    segments: tuple[GuestSegment, ...]        # PT_LOAD only, sorted by vaddr
    phdr_vaddr: int                           # AT_PHDR (0 if not in guest memory)
    phent: int                                # AT_PHENT
    phnum: int                                # AT_PHNUM
    sha256: str                               # hex digest of the file bytes
    symbols: tuple[tuple[int, int, str], ...]  # (addr, size, name) of STT_FUNC, sorted
    exec_ranges: tuple[tuple[int, int], ...]  # [start, end) of executable segments
    tls: GuestTls | None
    raw: bytes
    sections: tuple[Section, ...] = ()       # section headers: hints, never what runs
    # ET_DYN (static-pie): placed at a load base; every address above is rebased.
    pie: bool = False
    load_base: int = 0                        # added to every link-time address (0 for ET_EXEC)
    # Values the dynamic relocations store (rebased): code pointers in data (pie only).
    relocated_pointers: tuple[int, ...] = ()

    @property
    def name(self) -> str:
        return self.path.name

    def __repr__(self) -> str:  # keep ``raw`` out of reprs and test failures
        return (f"GuestElf(path={str(self.path)!r}, isa={self.isa!r}, entry={self.entry:#x}, "
                f"segments={len(self.segments)}, symbols={len(self.symbols)})")


def read_guest_elf(path: Path | str, *, load_base: int | None = None) -> GuestElf:
    """Read and validate the guest executable at ``path`` (``load_base``:
    where a static-pie goes instead of ``ET_DYN_BASE``)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ElfError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ElfError(f"{path}: is a directory, not an ELF file") from None
    except OSError as e:
        raise ElfError(f"{path}: cannot read: {e.strerror or e}") from None
    return read_guest_elf_bytes(data, path, load_base=load_base)


def _machine_name(machine: int) -> str:
    try:
        from elftools.elf.descriptions import describe_e_machine
        from elftools.elf.enums import ENUM_E_MACHINE
    except ImportError:  # pragma: no cover - pyelftools is a dependency
        return f"e_machine {machine}"
    for key, value in ENUM_E_MACHINE.items():
        if value == machine and key.startswith("EM_"):
            desc = describe_e_machine(key)
            return f"{desc} ({key})" if desc and desc != key else key
    return f"unknown machine (e_machine {machine})"


def _pie_bias(loads: list, requested: int | None) -> int:
    """What to add to a static-pie's link-time addresses to place it at
    ``requested`` (a page-aligned address) or by default at ``ET_DYN_BASE``,
    aligned to the segments' largest p_align, as Linux aligns its load bias."""
    lo = min(ph[3] for ph in loads) & ~(_PAGE - 1)
    hi = max(ph[3] + ph[6] for ph in loads)
    align = max([ph[7] for ph in loads if ph[7] & (ph[7] - 1) == 0 and ph[7] <= _MAX_ALIGN] + [_PAGE])
    if requested is not None:
        if requested % _PAGE or requested < 0:
            raise ValueError(f"load base {requested:#x} is not page-aligned")
        base = requested
    else:
        base = ET_DYN_BASE if ET_DYN_BASE + (hi - lo) <= ET_DYN_TOP else ET_DYN_TOP - (hi - lo)
        base &= ~(align - 1)
    # A program linked above its base (prelinked) stays where it was linked.
    return max(base - lo, 0)


def read_guest_elf_bytes(data: bytes, name: str | Path = "<memory>", *,
                         load_base: int | None = None) -> GuestElf:
    """Validate ``data`` (the bytes of an ELF file called ``name``); a
    static-pie is placed at ``load_base`` (default ``ET_DYN_BASE``)."""
    data = bytes(data)
    path = Path(name)

    def fail(msg: str, cls: type[ElfError] = ElfError) -> ElfError:
        return cls(f"{path}: {msg}")

    # -- e_ident: decide early with precise messages ------------------------
    if len(data) < 4 or data[:4] != b"\x7fELF":
        raise fail("not an ELF file")
    if len(data) < 16:
        raise fail(f"truncated ELF: {len(data)} bytes, the ELF identification needs 16")
    ei_class, ei_data = data[4], data[5]
    if ei_class == 1:
        raise fail("32-bit ELF is not supported; aotc runs 64-bit guests", UnsupportedGuestError)
    if ei_class != 2:
        raise fail(f"invalid ELF class {ei_class}")
    if ei_data == 2:
        raise fail("big-endian ELF is not supported; aotc runs little-endian guests",
                   UnsupportedGuestError)
    if ei_data != 1:
        raise fail(f"invalid ELF data encoding {ei_data}")
    if len(data) < _EHDR64.size:
        raise fail(f"truncated ELF: {len(data)} bytes, the ELF header needs {_EHDR64.size}")
    (_ident, e_type, e_machine, _e_version, e_entry, e_phoff, e_shoff, _e_flags,
     _e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum, _e_shstrndx) = _EHDR64.unpack_from(data)

    isa = _ISA_BY_MACHINE.get(e_machine)
    if isa is None:
        raise fail(f"unsupported guest ISA: {_machine_name(e_machine)}", UnsupportedGuestError)
    if e_type == ET_REL:
        raise fail("relocatable object file (ET_REL), not an executable; link it first")
    if e_type == ET_CORE:
        raise fail("core dump (ET_CORE), not an executable")
    if e_type not in (ET_EXEC, ET_DYN):
        raise fail(f"not an executable (ELF type {e_type:#x})")

    # -- program headers ------------------------------------------------------
    if e_phnum == 0:
        raise fail("no program headers; not an executable")
    if e_phnum == 0xFFFF:
        raise fail("extended program header numbering (PN_XNUM) is not supported",
                   UnsupportedGuestError)
    if e_phentsize != _PHDR64.size:
        raise fail(f"bad program header entry size {e_phentsize} (expected {_PHDR64.size})")
    if e_phoff + e_phnum * e_phentsize > len(data):
        raise fail(f"truncated ELF: program headers at {e_phoff:#x} (+{e_phnum * e_phentsize}) "
                   f"extend past the end of the {len(data)}-byte file")
    phdrs = [_PHDR64.unpack_from(data, e_phoff + i * e_phentsize) for i in range(e_phnum)]

    for p_type, _f, p_offset, _v, _pa, p_filesz, _m, _al in phdrs:
        if p_type == PT_INTERP:
            interp = data[p_offset:p_offset + p_filesz].split(b"\0", 1)[0]
            interp_s = interp.decode("utf-8", "replace") or "?"
            kind = "position-independent executable" if e_type == ET_DYN else "executable"
            raise fail(f"dynamically linked executables are not supported yet (PT_INTERP {interp_s}): "
                       f"this {kind} needs its interpreter and shared libraries from a sysroot "
                       f"of the guest's system, which aotc cannot take yet (planned: aotrun -L "
                       f"SYSROOT); link with -static or -static-pie", UnsupportedGuestError)

    loads = sorted((ph for ph in phdrs if ph[0] == PT_LOAD), key=lambda ph: ph[3])
    if not loads:
        raise fail("no PT_LOAD segments; nothing to load")
    link_phdrs = phdrs
    bias = 0
    if e_type == ET_DYN:
        # Static-pie: place it at its load base, every address at once.
        bias = _pie_bias(loads, load_base)
        phdrs = [(t, f, o, v + bias, pa, fs, ms, al) for t, f, o, v, pa, fs, ms, al in phdrs]
        loads = sorted((ph for ph in phdrs if ph[0] == PT_LOAD), key=lambda ph: ph[3])
        e_entry += bias

    segments: list[GuestSegment] = []
    for _t, p_flags, p_offset, p_vaddr, _pa, p_filesz, p_memsz, _al in loads:
        if p_filesz > p_memsz:
            raise fail(f"segment at {p_vaddr:#x}: file size {p_filesz:#x} exceeds memory size {p_memsz:#x}")
        if p_offset + p_filesz > len(data):
            raise fail(f"truncated ELF: segment at {p_vaddr:#x} needs file bytes "
                       f"{p_offset:#x}-{p_offset + p_filesz:#x} but the file has {len(data):#x}")
        if p_vaddr + p_memsz > ARENA_SIZE:
            raise fail(f"segment at {p_vaddr:#x} lies outside the 4 GiB guest arena",
                       UnsupportedGuestError)
        if p_memsz == 0:
            continue
        seg = GuestSegment(vaddr=p_vaddr, memsz=p_memsz, flags=p_flags & (PF_R | PF_W | PF_X),
                           data=data[p_offset:p_offset + p_filesz])
        if segments and segments[-1].end > seg.vaddr:
            prev = segments[-1]
            raise fail(f"segments at {prev.vaddr:#x} and {seg.vaddr:#x} overlap")
        segments.append(seg)
    if not segments:
        raise fail("no PT_LOAD segment has a non-zero size; nothing to load")
    if not any(s.contains(e_entry) and s.executable for s in segments):
        raise fail(f"entry point {e_entry:#x} is not inside an executable segment")
    if e_entry % _ENTRY_ALIGN[isa]:
        raise fail(f"entry point {e_entry:#x} is not aligned to {_ENTRY_ALIGN[isa]} bytes, "
                   f"as {isa} instructions must be")

    # AT_PHDR: PT_PHDR if present, else the program headers inside a PT_LOAD.
    phdr_vaddr = 0
    for p_type, _f, _o, p_vaddr, _pa, _fs, _m, _al in phdrs:
        if p_type == PT_PHDR:
            phdr_vaddr = p_vaddr
            break
    else:
        for _t, _f, p_offset, p_vaddr, _pa, p_filesz, _m, _al in loads:
            if p_offset <= e_phoff < p_offset + p_filesz:
                phdr_vaddr = p_vaddr + (e_phoff - p_offset)
                break

    tls = None
    for p_type, _f, _o, p_vaddr, _pa, p_filesz, p_memsz, p_align in phdrs:
        if p_type == PT_TLS:
            if p_filesz > p_memsz or p_vaddr + p_memsz > ARENA_SIZE:
                raise fail(f"malformed PT_TLS segment at {p_vaddr:#x} (file size {p_filesz:#x}, "
                           f"memory size {p_memsz:#x})")
            tls = GuestTls(vaddr=p_vaddr, filesz=p_filesz, memsz=p_memsz, align=max(p_align, 1))
            break

    sections = read_sections(data, e_shoff, e_shentsize, e_shnum, fail)
    symbols = function_symbols(data, sections, fail)
    pointers: tuple[int, ...] = ()
    if e_type == ET_DYN:
        sections = tuple(dataclasses.replace(s, addr=s.addr + bias) if s.alloc else s for s in sections)
        symbols = tuple((addr + bias, size, sym) for addr, size, sym in symbols)
        pointers = relocated_pointers(data, e_machine, link_phdrs, bias)

    return GuestElf(
        path=path,
        isa=isa,
        entry=e_entry,
        segments=tuple(segments),
        phdr_vaddr=phdr_vaddr,
        phent=e_phentsize,
        phnum=e_phnum,
        sha256=hashlib.sha256(data).hexdigest(),
        symbols=symbols,
        exec_ranges=tuple((s.vaddr, s.end) for s in segments if s.executable),
        tls=tls,
        raw=data,
        sections=sections,
        pie=e_type == ET_DYN,
        load_base=bias,
        relocated_pointers=pointers,
    )

