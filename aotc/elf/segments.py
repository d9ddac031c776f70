"""A guest loadable segment, as carried from the ELF into the image."""

from __future__ import annotations

from dataclasses import dataclass

PF_X, PF_W, PF_R = 1, 2, 4


@dataclass(frozen=True, slots=True)
class GuestSegment:
    vaddr: int
    memsz: int
    flags: int          # PF_R | PF_W | PF_X
    data: bytes         # the file-backed part (p_filesz bytes); the rest is zero

    @property
    def end(self) -> int:
        return self.vaddr + self.memsz

    @property
    def executable(self) -> bool:
        return bool(self.flags & PF_X)

    def contains(self, addr: int) -> bool:
        return self.vaddr <= addr < self.vaddr + self.memsz
