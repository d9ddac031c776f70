"""Code discovery: which guest addresses start translatable blocks.

Sources of entry points, strongest first:

1. the ELF entry point and function symbols (when the binary has them);
2. targets of direct branches and calls, and return addresses after calls,
   found by recursive descent from every entry;
3. code addresses stored in data: every aligned 64-bit and 32-bit word in a
   non-executable section (or in the non-code parts of an executable
   segment) whose value points into code — function pointer tables, jump
   tables, vtables, init/fini arrays;
4. a linear sweep of the gaps between discovered code, starting a new entry
   after each block end (functions reached only through computed addresses).

The result is a set of *leaders*; blocks run from a leader to the first
control transfer or the next leader.  Decoding failures never stop the
build: a leader whose bytes do not decode becomes an illegal-instruction
block (guest SIGILL if it ever runs).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Callable, Iterable

from aotc.errors import DecodeError
from aotc.isa.riscv64.decoder import JumpConstants, decode, direct_targets, is_block_end
from aotc.isa.riscv64.fflags_idiom import FFLAGS_CSR, trio_at
from aotc.isa.riscv64.insn import Insn

MAX_BLOCK_INSNS = 400


def _starts_block(insn: Insn | None) -> bool:
    """CSR accesses start a block of their own (see LLVMBuilder.dispatch_only)."""
    return insn is not None and insn.mnemonic.startswith("csrr")


def falls_through(insn: Insn) -> bool:
    """Whether execution can continue at the next instruction after a block
    end: calls (they link), conditional branches, ecall, fence.i and CSR
    accesses do; plain jumps and ebreak don't."""
    unconditional = insn.mnemonic in ("jal", "jalr") and insn.rd == 0
    return not unconditional and insn.mnemonic != "ebreak"


def _form_blocks(code: "_Code", leaders: "Iterable[int]", ends: "set[int] | frozenset[int]",
                 result: "Discovery") -> None:
    """Blocks run from each leader to the first block end or the next entry in ``ends``."""
    for leader in leaders:
        insns: list[Insn] = []
        pc = leader
        bad: int | None = None
        while True:
            insn = code.decode_at(pc)
            if insn is None:
                bad = pc
                break
            insns.append(insn)
            pc = insn.next_pc
            if (code.ends(insn) or pc in ends or len(insns) >= MAX_BLOCK_INSNS
                    or not code.contains(pc) or code.starts(code.decode_at(pc))):
                break
        if bad is not None and not insns:
            result.undecodable.append(leader)
        result.blocks[leader] = Block(leader, tuple(insns), bad, code.raw_at(bad) if bad is not None else 0)


def ends_block(insn: Insn) -> bool:
    """Control transfers, plus CSR accesses: an fcsr write changes the host
    FPU's rounding mode, and the translated block must end right after it."""
    return is_block_end(insn) or insn.mnemonic.startswith("csrr")


@dataclass(frozen=True, slots=True)
class CodeRange:
    start: int
    data: bytes

    @property
    def end(self) -> int:
        return self.start + len(self.data)


@dataclass(frozen=True, slots=True)
class Block:
    pc: int
    insns: tuple[Insn, ...]
    bad_pc: int | None = None     # pc of an undecodable instruction ending the block
    bad_raw: int = 0              # its bits (16 or 32, as far as the code range holds them)

    @property
    def end(self) -> int:
        if self.bad_pc is not None:
            return self.bad_pc
        return self.insns[-1].next_pc if self.insns else self.pc


@dataclass
class Discovery:
    blocks: dict[int, Block] = field(default_factory=dict)
    undecodable: list[int] = field(default_factory=list)   # pcs of trap blocks
    sources: dict[str, int] = field(default_factory=dict)  # entry source -> count

    @property
    def instructions(self) -> int:
        return sum(len(b.insns) for b in self.blocks.values())


class _Code:
    """Executable bytes by address."""

    def __init__(self, ranges: list[CodeRange], fuse: bool = True) -> None:
        self.ranges = sorted(ranges, key=lambda r: r.start)
        self._starts = [r.start for r in self.ranges]
        self._decoded: dict[int, Insn | None] = {}
        # Flag-neutral compares (aotc.isa.riscv64.fflags_idiom) stay inside
        # one block, unless something branches into their middle (``broken``).
        self.fuse = fuse
        self.broken: set[int] = set()

    def fused(self, insn: Insn) -> bool:
        """Whether ``insn`` is the fflags read or write of an intact
        flag-neutral compare (no block boundary at it)."""
        if not self.fuse or insn.csr != FFLAGS_CSR:
            return False
        start = insn.pc if insn.mnemonic == "csrrs" else insn.pc - 8
        return start not in self.broken and trio_at(self.decode_at, start) is not None

    def ends(self, insn: Insn) -> bool:
        return ends_block(insn) and not self.fused(insn)

    def starts(self, insn: Insn | None) -> bool:
        return _starts_block(insn) and not self.fused(insn)  # type: ignore[arg-type]

    def find(self, addr: int) -> CodeRange | None:
        i = bisect.bisect(self._starts, addr) - 1
        if i >= 0 and addr < self.ranges[i].end:
            return self.ranges[i]
        return None

    def contains(self, addr: int) -> bool:
        return addr % 2 == 0 and self.find(addr) is not None

    def raw_at(self, pc: int) -> int:
        """The bits of the instruction at ``pc`` for an illegal-instruction
        report: 16 for a compressed encoding (low bits != 11), else 32 — as
        many of them as the code range holds (0 outside code)."""
        rng = self.find(pc)
        if rng is None:
            return 0
        off = pc - rng.start
        data = rng.data[off:off + 2]
        if len(data) == 2 and data[0] & 3 == 3:
            data = rng.data[off:off + 4]
        return int.from_bytes(data, "little")

    def decode_at(self, pc: int) -> Insn | None:
        """The instruction at ``pc`` (cached), or None if it does not decode."""
        cache = self._decoded
        if pc not in cache:
            rng = self.find(pc)
            insn: Insn | None = None
            if rng is not None:
                try:
                    insn = decode(rng.data, pc - rng.start, pc)
                except (DecodeError, IndexError, ValueError):
                    insn = None
            cache[pc] = insn
        return cache[pc]


def scan_pointers(data: bytes, code: _Code) -> set[int]:
    """Aligned 64- and 32-bit little-endian words that point into code."""
    found: set[int] = set()
    mv = memoryview(data)
    n8 = len(data) // 8
    if n8:
        for value in mv[: n8 * 8].cast("Q"):
            if value and code.contains(value):
                found.add(value)
    n4 = len(data) // 4
    if n4:
        for value in mv[: n4 * 4].cast("I"):
            if value and code.contains(value):
                found.add(value)
    return found


def discover(code_ranges: list[CodeRange], data_ranges: list[bytes], entries: dict[str, list[int]],
             progress: Callable[[str], None] | None = None) -> Discovery:
    code = _Code(code_ranges)
    result = Discovery()
    seeds: list[int] = []
    for source, addrs in entries.items():
        good = [a for a in addrs if code.contains(a)]
        result.sources[source] = len(good)
        seeds.extend(good)
    ptrs: set[int] = set()
    for blob in data_ranges:
        ptrs |= scan_pointers(blob, code)
    result.sources["pointers in data"] = len(ptrs)
    seeds.extend(sorted(ptrs))

    leaders: set[int] = set()
    decode_at = code.decode_at

    # Recursive descent: follow straight-line code and direct targets.
    visited: set[int] = set()

    def descend(work: list[int]) -> None:
        while work:
            pc = work.pop()
            if pc in visited or not code.contains(pc):
                continue
            leaders.add(pc)
            consts = JumpConstants()
            while True:
                visited.add(pc)
                insn = decode_at(pc)
                if insn is None:
                    break
                computed = consts.step(insn)
                for t in (*direct_targets(insn), *(() if computed is None else (computed,))):
                    if code.contains(t):
                        leaders.add(t)
                        if t not in visited:
                            work.append(t)
                if code.ends(insn):
                    if falls_through(insn):
                        nxt = insn.next_pc
                        if code.contains(nxt):
                            leaders.add(nxt)
                            if nxt not in visited:
                                work.append(nxt)
                    break
                pc = insn.next_pc
                if pc in visited:
                    leaders.add(pc)
                    break
                if not code.contains(pc):
                    break

    descend(list(seeds))
    result.sources["recursive descent"] = len(leaders)

    # Linear sweep of the gaps: code after a block end that nothing reached
    # starts a new entry, followed like any other (direct targets included).
    swept = 0
    for rng in code.ranges:
        pc = rng.start
        after_end = True
        while pc < rng.end:
            insn = decode_at(pc)
            if insn is None:
                pc += 2
                after_end = True
                continue
            if pc not in visited:
                if after_end:
                    swept += 1
                    descend([pc])
                visited.add(pc)
            after_end = code.ends(insn)
            pc = insn.next_pc
    result.sources["linear sweep"] = swept
    if progress:
        progress(f"discovered {len(leaders)} block entries")

    # A flag-neutral compare something branches into is three plain CSR
    # accesses and a compare again, with their block boundaries.
    for pc in sorted(visited):
        if pc + 4 in leaders or pc + 8 in leaders:
            trio = trio_at(decode_at, pc)
            if trio is not None:
                code.broken.add(pc)
                leaders |= {p for p in (pc, pc + 4, pc + 8, pc + 12) if code.contains(p)}
    leaders |= {pc for pc in visited if code.starts(decode_at(pc))}
    _form_blocks(code, sorted(leaders), leaders, result)
    return result


def discover_region(code_ranges: list[CodeRange], entry: int, stop: "set[int] | frozenset[int]" = frozenset(),
                    max_blocks: int = 64) -> Discovery:
    """Blocks reachable from ``entry`` by recursive descent, for a run-time
    (JIT) region: addresses in ``stop`` (already translated elsewhere) are
    neither followed nor re-translated, and descent stops after
    ``max_blocks`` leaders (later targets stay untranslated until they are
    reached and missed themselves).  No pointer scan, no linear sweep."""
    # No fusion of flag-neutral compares here: a later region could branch
    # into one this region has fused.
    code = _Code(code_ranges, fuse=False)
    result = Discovery()
    decode_at = code.decode_at
    leaders: list[int] = []
    seen: set[int] = set()
    work = [entry]
    while work and len(leaders) < max_blocks:
        pc = work.pop(0)
        if pc in seen or (pc in stop and pc != entry) or not code.contains(pc):
            continue
        seen.add(pc)
        leaders.append(pc)
        n = 0
        while True:
            insn = decode_at(pc)
            if insn is None:
                break
            n += 1
            work.extend(t for t in direct_targets(insn) if code.contains(t))
            if ends_block(insn):
                if falls_through(insn):
                    work.append(insn.next_pc)
                break
            pc = insn.next_pc
            if pc in stop or n >= MAX_BLOCK_INSNS or _starts_block(decode_at(pc)) or not code.contains(pc):
                work.append(pc)
                break
    result.sources["run-time entry"] = 1
    _form_blocks(code, leaders, set(leaders) | set(stop), result)
    return result
