"""Interpreter engine: the guest run instruction by instruction in Python.

``Interpreter`` drives ``aotc.interp.evaluator.Evaluator`` — the evaluating
implementation of the same ``Builder`` protocol the translator lowers to
LLVM IR, so both engines run the one semantics definition — over the
machine's ``GuestMemory`` and ``GuestState``.  It fetches and decodes at
``pc`` from guest-executable memory (decodes cached per pc, dropped at
``fence.i``), executes, and stops at any exit other than "next instruction"
(system call, trap, fault) or, in fallback mode, at the first pc that has a
native translation.  System calls go to the machine's ``LinuxKernel`` like
those of translated code.
"""

from __future__ import annotations

import ctypes

from aotc.errors import DecodeError, GuestMemoryError
from aotc.interp.evaluator import CpuState, Evaluator
from aotc.isa.riscv64.decoder import decode
from aotc.isa.riscv64.state import EXIT_CONTINUE, EXIT_FAULT, EXIT_FENCE_I, EXIT_ILLEGAL

_PROT_READ, _PROT_WRITE, _PROT_EXEC = 1, 2, 4


class GuestMemoryAdapter:
    """The evaluator's ``Memory`` over ``GuestMemory``, with the guest's
    permissions (a refused access raises ``GuestMemoryError`` → SIGSEGV).
    Remembers the last mapping used for reads and for writes."""

    def __init__(self, mem) -> None:
        self.mem = mem
        self._r = (1, 0)   # [start, end) of a readable mapping
        self._w = (1, 0)

    def invalidate(self) -> None:
        self._r = self._w = (1, 0)

    def _range(self, addr: int, size: int, prot: int) -> tuple[int, int]:
        m = self.mem.find_mapping(addr)
        if m is None or (m.prot & prot) != prot or addr + size > m.end:
            if not self.mem.is_mapped(addr, size, prot):
                raise GuestMemoryError(addr, size)
            return (addr, addr + size)
        return (m.start, m.end)

    def read(self, addr: int, size: int) -> int:
        lo, hi = self._r
        if not (lo <= addr and addr + size <= hi):
            self._r = lo, hi = self._range(addr, size, _PROT_READ)
        return int.from_bytes(ctypes.string_at(self.mem.base + addr, size), "little")

    def write(self, addr: int, size: int, value: int) -> None:
        lo, hi = self._w
        if not (lo <= addr and addr + size <= hi):
            self._w = lo, hi = self._range(addr, size, _PROT_WRITE)
        ctypes.memmove(self.mem.base + addr, value.to_bytes(size, "little"), size)

    def fetch(self, pc: int) -> bytes:
        """Up to 4 instruction bytes at pc (guest-executable memory only)."""
        m = self.mem.find_mapping(pc)
        if m is None or not m.prot & _PROT_EXEC:
            raise GuestMemoryError(pc, 2)
        return ctypes.string_at(self.mem.base + pc, min(4, m.end - pc))


class Interpreter:
    def __init__(self, mem) -> None:
        self.memory = GuestMemoryAdapter(mem)
        self.insns = 0                       # instructions executed
        self._decoded: dict[int, object] = {}
        self.fault_addr: int | None = None

    def flush_decoded(self) -> None:
        self._decoded.clear()
        self.memory.invalidate()

    def run(self, gstate, stop=None, limit: int | None = None) -> int:
        """Run from ``gstate.pc`` until an exit other than EXIT_CONTINUE, or
        (EXIT_CONTINUE) until ``stop(pc)`` is true at an instruction
        boundary after the first instruction, or ``limit`` instructions.
        ``gstate`` (a GuestState) is updated in place.  On EXIT_FAULT,
        ``fault_addr`` is the guest address (``gstate.pc`` the faulting pc)."""
        cpu = CpuState.from_guest_state(gstate)
        ev = Evaluator(cpu, self.memory)
        decoded = self._decoded
        n = 0
        code = EXIT_CONTINUE
        try:
            while True:
                pc = cpu.pc
                insn = decoded.get(pc)
                if insn is None:
                    try:
                        raw = self.memory.fetch(pc)
                    except GuestMemoryError as e:
                        self.fault_addr = e.addr if hasattr(e, "addr") else pc
                        code = EXIT_FAULT
                        break
                    try:
                        insn = decode(raw, 0, pc)
                    except (DecodeError, IndexError, ValueError):
                        gstate.exit_info = int.from_bytes(raw[:4], "little") if len(raw) >= 4 else 0
                        code = EXIT_ILLEGAL
                        break
                    decoded[pc] = insn
                code = ev.execute(insn)
                n += 1
                if code != EXIT_CONTINUE:
                    if code == EXIT_FAULT:
                        self.fault_addr = getattr(ev.fault, "addr", None)
                    elif code == EXIT_ILLEGAL:
                        gstate.exit_info = insn.raw
                    elif code == EXIT_FENCE_I:
                        gstate.exit_info = (pc + insn.size) & ((1 << 64) - 1)
                        self.flush_decoded()
                    break
                if (stop is not None and stop(cpu.pc)) or (limit is not None and n >= limit):
                    break
        finally:
            self.insns += n
            cpu.to_guest_state(gstate)
        return code
