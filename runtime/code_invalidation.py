"""When translations go stale: self-modifying and run-time generated code.

Triggers (see docs/engines.md, "Self-modifying code"):

* ``fence.i`` and the ``riscv_flush_icache`` system call: the two ways a
  RISC-V Linux program makes new instruction bytes visible to instruction
  fetch (``__builtin___clear_cache`` is the latter).  On hardware a program
  that does neither may keep running the old instructions, so these are the
  points where we must, and may, notice new code.
* any change to the guest's mappings (``mmap`` over, ``munmap``,
  ``mprotect``) of a range that holds translated code: executing an
  unmapped or no-longer-executable page must fault, and the usual JIT
  pattern (write, then ``mprotect`` to read+execute) is caught here too.

What is dropped:

* JIT translations: all of them at a flush (they are cheap to make again on
  the next miss), only when the changed range holds JIT-translated code at a
  mapping change.
* The image's translations are *checked*, not assumed stale: the image's
  executable segments are compared with the bytes that were translated
  (carried in the signed image) and must still be mapped executable.  If any
  byte differs or a page lost execute permission, the whole image is retired
  for the rest of the run: its table is replaced by an empty one and the
  program continues in the fallback engine.  The whole image, not the
  changed blocks: translated blocks chain to each other directly and LLVM
  inlines across them, so the translation of an unchanged block may embed
  the changed one.
"""

from __future__ import annotations

from collections.abc import Iterable

from aotc.elf.segments import GuestSegment
from runtime.guest_memory import PAGE, PROT_EXEC, GuestMemory


class ImageCode:
    """The guest code bytes an image was translated from."""

    def __init__(self, segments: Iterable[GuestSegment]) -> None:
        self.ranges = [(s.vaddr, s.data) for s in segments if s.executable and s.data]

    def overlaps(self, start: int, end: int) -> bool:
        return any(v < end and start < v + len(d) for v, d in self.ranges)

    def intact(self, mem: GuestMemory) -> bool:
        """True while every translated byte is still mapped executable and unchanged."""
        for vaddr, data in self.ranges:
            if not mem.is_mapped(vaddr, len(data), PROT_EXEC):
                return False
            if mem.read_prefix(vaddr, len(data)) != data:
                return False
        return True


def pages_overlap(pages: set[int], start: int, end: int) -> bool:
    """Whether any page number in ``pages`` lies in [start, end)."""
    first, last = start // PAGE, (end - 1) // PAGE
    if last - first < len(pages):
        return any(p in pages for p in range(first, last + 1))
    return any(first <= p <= last for p in pages)
