"""Interpreter engine: the guest run block by block as generated Python.

``Interpreter`` forms a basic block at ``pc`` (fetched and decoded from
guest-executable memory), compiles it once with
``aotc.interp.pycodegen.PyCodegenBuilder`` — the shared instruction semantics
lifted to Python source, with the primitives of ``aotc.interp.ops`` — and
caches the resulting function per block start pc (dropped at ``fence.i`` and
on mapping changes: ``flush_decoded``).  A block that branches back to its
own start runs as a ``while`` loop inside its function.  It stops at any exit other than
"next instruction" (system call, trap, fault) or, in fallback mode, at the
first pc that has a native translation: blocks end before any pc for which
``stop`` is true when the block is formed, and ``stop`` is asked again after
every block.  System calls go to the machine's ``LinuxKernel`` like those of
translated code.

Faults are exact: the generated code writes registers and memory in program
order, and the instruction that raised is found from the traceback
(``CompiledBlock.insn_at``), so ``gstate.pc``, the registers and
``insns`` are those of the faulting instruction.  The per-instruction
``Evaluator`` (same semantics, same primitives) runs what a ``limit`` leaves
of a block.
"""

from __future__ import annotations

import ctypes
import struct

from aotc.errors import DecodeError, GuestMemoryError
from aotc.interp.evaluator import CpuState, Evaluator
from aotc.interp.ops import IllegalTrap
from aotc.interp.pycodegen import CompiledBlock, PyCodegenBuilder
from aotc.isa.riscv64.decoder import decode
from aotc.isa.riscv64.state import EXIT_CONTINUE, EXIT_FAULT, EXIT_FENCE_I, EXIT_ILLEGAL
from runtime import _native, guest_clock

_PROT_READ, _PROT_WRITE, _PROT_EXEC = 1, 2, 4
_MASK64 = (1 << 64) - 1
MAX_BLOCK = 64          # instructions per compiled block
_SIGSEGV, _SIGBUS = 11, 7
_NO_LIMIT = 1 << 62     # loop iterations when run() has no limit


def _fault_signal(e: object) -> int:
    """SIGBUS for a file page past its file's end (GuestMemoryError.bus), else SIGSEGV."""
    return _SIGBUS if getattr(e, "bus", False) else _SIGSEGV


class GuestMemoryAdapter:
    """The interpreter's memory over ``GuestMemory``, with the guest's
    permissions (a refused access raises ``GuestMemoryError`` → SIGSEGV).
    Remembers the last mapping used for reads and for writes.

    ``read``/``write``/``cas``/``fence`` serve the Evaluator; ``namespace()``
    gives the block compiler's ``ld1``..``ld8``/``st1``..``st8``/``cas``/
    ``fence`` (same checks).

    Atomics (``cas``) are host atomics on the guest word (``_native.cmpxchg``,
    a ``lock cmpxchg``) after a store's permission check, so they are atomic
    with respect to translated code running on other host threads, not only
    to other interpreter threads (which the GIL interleaves at bytecode
    boundaries anyway).  The native swap is fault-safe like the copies: on a
    file mapping, a page past the file's end fails it (SIGBUS) instead of
    killing the process, so file mappings need no lock either."""

    def __init__(self, mem) -> None:
        self.mem = mem
        self._ns: dict | None = None
        self._reset = lambda: None

    def invalidate(self) -> None:
        self._reset()

    def _range(self, addr: int, size: int, prot: int) -> tuple[int, int, bool]:
        """The range the fast path may use after this access, and whether the
        access must go through the fault-safe copy (a file mapping's page may
        fault although mapped: SIGBUS past the file's end)."""
        m = self.mem.find_mapping(addr)
        if m is None or (m.prot & prot) != prot or addr + size > m.end:
            if not self.mem.is_mapped(addr, size, prot):
                raise GuestMemoryError(addr, size)
            backed = any(x.backed for x in self.mem.mappings() if x.start < addr + size and x.end > addr)
            return (addr, addr + size, backed)
        return (m.start, m.end, m.backed)

    def namespace(self) -> dict:
        if self._ns is None:
            self._ns = self._build()
        return self._ns

    def _build(self) -> dict:
        view = memoryview((ctypes.c_ubyte * self.mem.size).from_address(self.mem.base)).cast("B")
        base = self.mem.base
        native_cas = _native.cmpxchg
        rng = self._range
        mem = self.mem
        rlo, rhi, wlo, whi = 1, 0, 1, 0       # [lo, hi) of the last readable / writable mapping
        # (never a file mapping: those are read and written through the
        # fault-safe copies, every access)

        def reset() -> None:
            nonlocal rlo, rhi, wlo, whi
            rlo, rhi, wlo, whi = 1, 0, 1, 0

        def slow_ld(a: int, size: int) -> int:
            nonlocal rlo, rhi
            lo, hi, backed = rng(a, size, _PROT_READ)
            if backed:
                return int.from_bytes(mem.copy_out(a, size), "little")
            rlo, rhi = lo, hi
            return int.from_bytes(view[a:a + size], "little")

        def slow_st(a: int, size: int, v: int) -> None:
            nonlocal wlo, whi
            lo, hi, backed = rng(a, size, _PROT_WRITE)
            data = (v & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
            if backed:
                mem.copy_in(a, data)
                return
            wlo, whi = lo, hi
            view[a:a + size] = data

        def ld1(a: int) -> int:
            if not (rlo <= a < rhi):
                return slow_ld(a, 1)
            return view[a]

        def loader(size: int, fmt: str):  # type: ignore[no-untyped-def]
            unpack = struct.Struct(fmt).unpack_from

            def ld(a: int) -> int:
                if not (rlo <= a and a + size <= rhi):
                    return slow_ld(a, size)
                return unpack(view, a)[0]
            return ld

        def cas(a: int, size: int, expected: int, desired: int) -> int:
            """Atomic compare-and-swap of an aligned word (ops.cmpxchg checked
            the alignment): the old value."""
            nonlocal wlo, whi
            if not (wlo <= a and a + size <= whi):
                lo, hi, backed = rng(a, size, _PROT_WRITE)
                if not backed:
                    wlo, whi = lo, hi
            old = native_cas(base + a, size, expected, desired)
            if old is None:             # a fault inside the word: a file page past its end
                raise GuestMemoryError(a, size, bus=True)
            return old

        def st1(a: int, v: int) -> None:
            if not (wlo <= a < whi):
                slow_st(a, 1, v)
                return
            view[a] = v

        def storer(size: int, fmt: str):  # type: ignore[no-untyped-def]
            pack = struct.Struct(fmt).pack_into

            def st(a: int, v: int) -> None:
                if not (wlo <= a and a + size <= whi):
                    slow_st(a, size, v)
                    return
                pack(view, a, v)
            return st

        self._reset = reset
        return {"ld1": ld1, "ld2": loader(2, "<H"), "ld4": loader(4, "<I"), "ld8": loader(8, "<Q"),
                "st1": st1, "st2": storer(2, "<H"), "st4": storer(4, "<I"), "st8": storer(8, "<Q"),
                "cas": cas, "fence": _native.fence, "read_counter": guest_clock.read_counter}

    # -- the Evaluator's Memory protocol ---------------------------------------
    def read(self, addr: int, size: int) -> int:
        ns = self.namespace()
        if size in (1, 2, 4, 8):
            return ns[f"ld{size}"](addr)
        return sum(ns["ld1"](addr + i) << (8 * i) for i in range(size))

    def write(self, addr: int, size: int, value: int) -> None:
        self.namespace()[f"st{size}"](addr, value)

    def cas(self, addr: int, size: int, expected: int, desired: int) -> int:
        return self.namespace()["cas"](addr, size, expected, desired)

    def fence(self) -> None:
        _native.fence()

    def read_counter(self, which: str) -> int:
        return guest_clock.read_counter(which)

    def fetch(self, pc: int) -> bytes:
        """Up to 4 instruction bytes at pc (guest-executable memory only)."""
        m = self.mem.find_mapping(pc)
        if m is None or not m.prot & _PROT_EXEC:
            raise GuestMemoryError(pc, 2)
        return self.mem.copy_out(pc, min(4, m.end - pc))


class Interpreter:
    def __init__(self, mem, memory=None) -> None:
        """``mem``: the machine's GuestMemory; ``memory`` (tests) replaces the
        adapter with any object that has fetch/read/write/namespace."""
        self.memory = memory if memory is not None else GuestMemoryAdapter(mem)
        self.insns = 0                       # instructions executed
        self.blocks_run = 0                  # compiled-block executions (loop iterations included)
        self.blocks_compiled = 0
        self._blocks: dict[int, CompiledBlock] = {}
        self._decoded: dict[int, object] = {}
        self._code_pages: set[int] = set()   # guest pages instructions were decoded from
        self.fault_addr: int | None = None
        self.fault_signal = _SIGSEGV         # of the last EXIT_FAULT: SIGBUS for a file page past its end
        self._exit_info = 0
        self._globals: dict | None = None    # the generated functions' globals

    def flush_decoded(self) -> None:
        """Drop every compiled block and decode (code bytes may have changed)."""
        self._blocks.clear()
        self._decoded.clear()
        self._code_pages.clear()
        self.memory.invalidate()

    def mapping_changed(self, start: int, end: int) -> None:
        """Guest mappings in [start, end) changed: forget cached permissions,
        and the compiled blocks if any instruction came from that range."""
        from runtime.code_invalidation import pages_overlap

        if pages_overlap(self._code_pages, start, end):
            self.flush_decoded()
        else:
            self.memory.invalidate()

    # -- block formation ---------------------------------------------------------
    def _fetch_decode(self, pc: int):  # type: ignore[no-untyped-def]
        """The instruction at pc, or an EXIT_FAULT/EXIT_ILLEGAL code (with
        ``fault_addr``/``_exit_info`` set)."""
        insn = self._decoded.get(pc)
        if insn is not None:
            return insn
        try:
            raw = self.memory.fetch(pc)
        except GuestMemoryError as e:
            self.fault_addr = e.addr if hasattr(e, "addr") else pc
            self.fault_signal = _fault_signal(e)
            return EXIT_FAULT
        try:
            insn = decode(raw, 0, pc)
        except (DecodeError, IndexError, ValueError):
            n = 2 if len(raw) >= 2 and raw[0] & 3 != 3 else 4   # the word's own length
            self._exit_info = int.from_bytes(raw[:n], "little")
            return EXIT_ILLEGAL
        self._decoded[pc] = insn
        self._code_pages.add(pc >> 12)
        self._code_pages.add((pc + insn.size - 1) >> 12)
        return insn

    def _form(self, pc: int, stop) -> CompiledBlock | int:  # type: ignore[no-untyped-def]
        """Compile the block at pc: up to a control transfer or exit, MAX_BLOCK
        instructions, an undecodable/unfetchable instruction, or a pc where
        ``stop`` is true.  Returns an exit code when pc itself cannot run."""
        b = PyCodegenBuilder()
        p = pc
        while True:
            insn = self._fetch_decode(p)
            if isinstance(insn, int):
                if not len(b):
                    return insn
                break                    # reported when (if) execution gets there
            if len(b) and stop is not None and stop(p):
                break
            if b.lift_insn(insn) or len(b) >= MAX_BLOCK:
                break
            p = (p + insn.size) & _MASK64
        if self._globals is None:
            self._globals = dict(self.memory.namespace())
        # A block that branches back to its start may loop inside its function
        # unless the caller wants to stop at its start.
        blk = b.finish(self._globals, loop=stop is None or not stop(pc))
        self._blocks[pc] = blk
        self.blocks_compiled += 1
        return blk

    # -- running -------------------------------------------------------------------
    def run(self, gstate, stop=None, limit: int | None = None) -> int:
        """Run from ``gstate.pc`` until an exit other than EXIT_CONTINUE, or
        (EXIT_CONTINUE) until ``stop(pc)`` is true at an instruction
        boundary after the first instruction, or ``limit`` instructions.
        ``gstate`` (a GuestState) is updated in place.  On EXIT_FAULT,
        ``fault_addr`` is the guest address (``gstate.pc`` the faulting pc)."""
        cpu = CpuState.from_guest_state(gstate)
        x, f = cpu.x, cpu.f
        blocks = self._blocks
        n = nb = 0
        pc = cpu.pc
        code = EXIT_CONTINUE
        try:
            while True:
                blk = blocks.get(pc)
                if blk is None:
                    blk = self._form(pc, stop)
                    if isinstance(blk, int):
                        code = blk
                        if code == EXIT_ILLEGAL:
                            gstate.exit_info = self._exit_info
                        break
                if limit is not None and n + blk.n > limit:
                    cpu.pc = pc
                    code, done = self._step(cpu, gstate, stop, limit - n)
                    n += done
                    pc = cpu.pc
                    break
                try:
                    if blk.loop:
                        cpu.iters = 0
                        npc = blk.fn(x, f, cpu, _NO_LIMIT if limit is None else (limit - n) // blk.n)
                        n += blk.n * (cpu.iters - 1)
                    else:
                        npc = blk.fn(x, f, cpu)
                    nb += cpu.iters if blk.loop else 1
                except (GuestMemoryError, IllegalTrap) as e:
                    # Stopped inside the block: count up to and including
                    # the instruction that faulted or trapped.
                    i = blk.insn_at(e.__traceback__)
                    if blk.loop:
                        n += blk.n * (cpu.iters - 1)
                    n += i + 1
                    pc = blk.pcs[i]
                    if isinstance(e, IllegalTrap):
                        gstate.exit_info = blk.insns[i].raw
                        code = EXIT_ILLEGAL
                    else:
                        self.fault_addr = getattr(e, "addr", None)
                        self.fault_signal = _fault_signal(e)
                        code = EXIT_FAULT
                    break
                n += blk.n
                code = blk.exit
                if code != EXIT_CONTINUE:
                    last = blk.insns[-1]
                    pc = last.pc
                    if code == EXIT_ILLEGAL:
                        gstate.exit_info = last.raw
                    elif code == EXIT_FENCE_I:
                        gstate.exit_info = (last.pc + last.size) & _MASK64
                        self.flush_decoded()
                    break
                pc = npc
                if (stop is not None and stop(pc)) or (limit is not None and n >= limit):
                    break
        finally:
            self.insns += n
            self.blocks_run += nb
            cpu.pc = pc
            cpu.to_guest_state(gstate)
        return code

    def _step(self, cpu: CpuState, gstate, stop, budget: int) -> tuple[int, int]:  # type: ignore[no-untyped-def]
        """Up to ``budget`` instructions one at a time on the Evaluator;
        returns (exit code, instructions run)."""
        ev = Evaluator(cpu, self.memory)
        n = 0
        code = EXIT_CONTINUE
        while n < budget:
            pc = cpu.pc
            insn = self._fetch_decode(pc)
            if isinstance(insn, int):
                code = insn
                if code == EXIT_ILLEGAL:
                    gstate.exit_info = self._exit_info
                break
            code = ev.execute(insn)
            n += 1
            if code != EXIT_CONTINUE:
                if code == EXIT_FAULT:
                    self.fault_addr = getattr(ev.fault, "addr", None)
                    self.fault_signal = _fault_signal(ev.fault)
                elif code == EXIT_ILLEGAL:
                    gstate.exit_info = insn.raw
                elif code == EXIT_FENCE_I:
                    gstate.exit_info = (pc + insn.size) & _MASK64
                    self.flush_decoded()
                break
            if stop is not None and stop(cpu.pc):
                break
        return code, n
