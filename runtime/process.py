"""Set up a guest process image: load PT_LOAD segments, build the initial stack.

Both functions work on a ``GuestMemory`` and lay memory out the way the Linux
kernel's ELF loader (fs/binfmt_elf.c) does for a static executable, so the
guest's C library start-up code finds argc/argv/envp/auxv where it expects.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from aotc.elf.segments import PF_R, PF_W, PF_X, GuestSegment
from aotc.errors import RuntimeSetupError
from runtime.guest_memory import (PAGE, PROT_EXEC, PROT_READ, PROT_WRITE, GuestMemory,
                                  page_down, page_up)

__all__ = [
    "AuxvInfo", "load_segments", "build_initial_stack", "segment_prot", "hwcap_for",
    "platform_for", "DEFAULT_STACK_TOP", "DEFAULT_STACK_SIZE",
    "AT_NULL", "AT_PHDR", "AT_PHENT", "AT_PHNUM", "AT_PAGESZ", "AT_BASE", "AT_FLAGS",
    "AT_ENTRY", "AT_UID", "AT_EUID", "AT_GID", "AT_EGID", "AT_PLATFORM", "AT_HWCAP",
    "AT_CLKTCK", "AT_SECURE", "AT_RANDOM", "AT_HWCAP2", "AT_EXECFN", "AT_MINSIGSTKSZ",
]

DEFAULT_STACK_TOP = 0xF000_0000
DEFAULT_STACK_SIZE = 8 << 20

# <linux/auxvec.h>
AT_NULL, AT_PHDR, AT_PHENT, AT_PHNUM, AT_PAGESZ, AT_BASE, AT_FLAGS, AT_ENTRY = 0, 3, 4, 5, 6, 7, 8, 9
AT_UID, AT_EUID, AT_GID, AT_EGID, AT_PLATFORM, AT_HWCAP, AT_CLKTCK = 11, 12, 13, 14, 15, 16, 17
AT_SECURE, AT_RANDOM, AT_HWCAP2, AT_EXECFN, AT_MINSIGSTKSZ = 23, 25, 26, 31, 51


class _AuxvSource(Protocol):
    """What the auxiliary vector needs from the executable (``GuestElf`` fits)."""

    entry: int
    phdr_vaddr: int
    phent: int
    phnum: int


@dataclass(frozen=True, slots=True)
class AuxvInfo:
    """Auxv inputs when no ``GuestElf`` is at hand (images carry these numbers)."""

    entry: int
    phdr_vaddr: int
    phent: int = 56
    phnum: int = 0


def segment_prot(flags: int) -> int:
    """PF_* → PROT_* in the guest's view (executable implies readable)."""
    prot = 0
    if flags & PF_R:
        prot |= PROT_READ
    if flags & PF_W:
        prot |= PROT_WRITE
    if flags & PF_X:
        prot |= PROT_READ | PROT_EXEC
    return prot


def load_segments(mem: GuestMemory, segments: Iterable[GuestSegment]) -> int:
    """Map every PT_LOAD segment, copy its bytes, zero its bss, set guest permissions.

    Segments that share a page get the union of their permissions on that page.
    Returns the initial program break: the page-aligned end of the highest segment.
    """
    segs = [s for s in segments if s.memsz > 0]
    if not segs:
        raise RuntimeSetupError("no loadable segments")
    # Elementary page intervals with the merged permission of every segment touching them.
    spans = [(page_down(s.vaddr), page_up(s.end), segment_prot(s.flags)) for s in segs]
    cuts = sorted({x for a, b, _p in spans for x in (a, b)})
    pieces: list[list[int]] = []          # [start, end, prot], adjacent equal prots merged
    for a, b in zip(cuts, cuts[1:]):
        prot, covered = 0, False
        for s0, s1, p in spans:
            if s0 < b and a < s1:
                prot |= p
                covered = True
        if not covered:
            continue
        if pieces and pieces[-1][1] == a and pieces[-1][2] == prot:
            pieces[-1][1] = b
        else:
            pieces.append([a, b, prot])
    for start, end, prot in pieces:
        if end > mem.limit:
            raise RuntimeSetupError(f"segment range {start:#x}-{end:#x} does not fit the guest arena")
        mem.map(start, end - start, prot, name="[elf]")
    # Fresh pages are zero, so bss (memsz beyond filesz) needs no explicit fill.
    for s in segs:
        if s.data:
            mem.poke(s.vaddr, s.data)
    return page_up(max(s.end for s in segs))


def _free(mem: GuestMemory, start: int, end: int) -> bool:
    return all(m.end <= start or m.start >= end for m in mem.mappings())


# The single-letter extensions Linux reports in a riscv64 AT_HWCAP, one bit
# each at (letter - 'a') (arch/riscv/kernel/cpufeature.c, isa2hwcap).
_RISCV_HWCAP_LETTERS = "imafdcv"


def hwcap_for(isa: str, extensions: Collection[str] | None = None) -> int:
    """AT_HWCAP for ``isa``; for riscv64, of the extensions advertised
    (default: everything the translator supports, the ``max`` profile)."""
    if isa == "riscv64":
        from aotc.isa.riscv64.extensions import profile_extensions, single_letters

        letters = single_letters(profile_extensions() if extensions is None else extensions)
        if "d" not in letters:
            letters = letters.replace("f", "")       # Linux clears F without D
        return sum(1 << (ord(c) - ord("a")) for c in letters if c in _RISCV_HWCAP_LETTERS)
    if isa == "aarch64":
        return 0x3                       # HWCAP_FP | HWCAP_ASIMD
    if isa == "x86_64":
        return 0x178BFBFF                # CPUID.1:EDX of a plain x86-64 CPU
    raise ValueError(f"unknown guest ISA {isa!r}")


def platform_for(isa: str) -> bytes:
    return {"riscv64": b"riscv64", "aarch64": b"aarch64", "x86_64": b"x86_64"}[isa]


def build_initial_stack(mem: GuestMemory, *, argv: Sequence[bytes], envp: Sequence[bytes],
                        auxv_info: _AuxvSource, isa: str,
                        stack_top: int = DEFAULT_STACK_TOP,
                        stack_size: int = DEFAULT_STACK_SIZE,
                        execfn: bytes | None = None,
                        random_bytes: bytes | None = None,
                        extensions: Collection[str] | None = None) -> int:
    """Map the stack below ``stack_top`` and lay out argc/argv/envp/auxv like Linux.

    From the top down: an 8-byte zero end marker, the exec file name (AT_EXECFN),
    the envp strings, the argv strings (argv[0] lowest), the platform string,
    16 random bytes (AT_RANDOM), padding, then the auxv/envp/argv vectors with
    argc at the 16-byte aligned stack pointer that is returned.  ``extensions``
    (riscv64): what AT_HWCAP advertises (``hwcap_for``).
    """
    if stack_top % PAGE or stack_size % PAGE or stack_size <= 0 or stack_top > mem.limit:
        raise RuntimeSetupError(f"bad stack placement top={stack_top:#x} size={stack_size:#x}")
    argv = [bytes(a) for a in argv]
    envp = [bytes(e) for e in envp]
    for s in (*argv, *envp):
        if b"\0" in s:
            raise RuntimeSetupError("argument or environment string contains a NUL byte")
    if execfn is None:
        execfn = argv[0] if argv else b""
    platform = platform_for(isa)
    if random_bytes is None:
        random_bytes = os.urandom(16)
    if len(random_bytes) != 16:
        raise ValueError("random_bytes must be 16 bytes")

    if not _free(mem, stack_top - stack_size, stack_top):
        # A segment lies where the stack would go: put the stack in the
        # highest gap that holds it (with a guard page above), as Linux keeps
        # the stack clear of the program; mapping it over the segment would
        # silently replace the program's bytes.
        got = mem.find_free(stack_size + PAGE, 0x10000, mem.limit)
        if got is None:
            raise RuntimeSetupError(f"no room for the {stack_size >> 20} MiB guest stack "
                                    "beside the program's segments")
        stack_top = got + stack_size
    stack_lo = stack_top - stack_size
    mem.map(stack_lo, stack_size, PROT_READ | PROT_WRITE, name="[stack]")

    strings = b"".join(s + b"\0" for s in (*argv, *envp))
    need = 8 + len(execfn) + 1 + len(strings) + len(platform) + 1 + 16 + 16 \
        + 8 * (3 + len(argv) + len(envp) + 2 * 24) + 64
    # Linux caps argv+envp at a quarter of the stack rlimit.
    if need > stack_size // 4:
        raise RuntimeSetupError(f"arguments and environment ({need} bytes) do not fit "
                                f"the {stack_size >> 20} MiB guest stack")

    p = stack_top - 8                                  # end marker (zero)
    p -= len(execfn) + 1
    execfn_addr = p
    mem.poke(p, execfn + b"\0")
    p -= len(strings)
    strings_addr = p
    mem.poke(p, strings)
    ptrs, off = [], strings_addr
    for s in (*argv, *envp):
        ptrs.append(off)
        off += len(s) + 1
    argv_ptrs, envp_ptrs = ptrs[:len(argv)], ptrs[len(argv):]

    p &= ~15
    p -= len(platform) + 1
    platform_addr = p
    mem.poke(p, platform + b"\0")
    p &= ~15
    p -= 16
    random_addr = p
    mem.poke(p, random_bytes)

    auxv = [
        (AT_HWCAP, hwcap_for(isa, extensions)),
        (AT_PAGESZ, PAGE),
        (AT_CLKTCK, 100),
        (AT_PHDR, auxv_info.phdr_vaddr),
        (AT_PHENT, auxv_info.phent),
        (AT_PHNUM, auxv_info.phnum),
        (AT_BASE, 0),
        (AT_FLAGS, 0),
        (AT_ENTRY, auxv_info.entry),
        (AT_UID, os.getuid()),
        (AT_EUID, os.geteuid()),
        (AT_GID, os.getgid()),
        (AT_EGID, os.getegid()),
        (AT_SECURE, 0),
        (AT_RANDOM, random_addr),
        (AT_HWCAP2, 0),
        (AT_EXECFN, execfn_addr),
        (AT_PLATFORM, platform_addr),
    ]
    if isa in ("x86_64", "aarch64"):
        auxv.insert(0, (AT_MINSIGSTKSZ, 2048 if isa == "x86_64" else 4224))
    auxv.append((AT_NULL, 0))

    words = [len(argv), *argv_ptrs, 0, *envp_ptrs, 0]
    for k, v in auxv:
        words += [k, v]
    sp = (p - 8 * len(words)) & ~15
    mem.poke(sp, struct.pack(f"<{len(words)}Q", *(w & (1 << 64) - 1 for w in words)))
    return sp
