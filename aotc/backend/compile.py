"""Lift discovered blocks to LLVM IR, optimise, emit objects, link a .so.

Stages (each timed, see ``BuildTimings``): lift (Python, IR text) →
parse + optimise (LLVM new pass manager) → emit object (LLVM codegen) →
link (system ``ld -shared``).  Lifting and compilation run in independent
chunks across worker processes; each chunk is one LLVM module whose calls to
blocks in other chunks are resolved by the linker (hidden symbols, so the
calls are direct, never through the PLT).
"""

from __future__ import annotations

import math
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from aotc.backend.abi import CODEGEN_VERSION
from aotc.backend.llvm_builder import (
    HTAB_SYMBOL,
    IMAGE_CONVENTION,
    Convention,
    DebugInfo,
    LLVMBuilder,
    block_declaration,
    block_symbol,
)
from aotc.backend.regions import _cycles, ends_in_indirect_jump, form_regions, return_point, successors
from aotc.discover import Block
from aotc.errors import AotcError, BuildError, CompileWorkerDied
from aotc.isa.riscv64.fflags_idiom import fflags_read_dead, trio_starts

TRIPLE = "x86_64-unknown-linux-gnu"
INFO_SYMBOL = "aotc_image_info"

# --tier: "auto" (hot code opt, the rest fast), "fast" or "opt" (everything).
TIERS = ("auto", "fast", "opt")
# Guest instructions (unit weights, see compile_units) per chunk at most: a
# chunk of 8000 peaks at about 250 MB in its worker at -O2 (measured on
# hello.riscv64; docs/adr/0002-build-tiers.md), whatever the program's size.
CHUNK_MAX_INSNS = 8000
# Chunks of a tier are split further, down to this size and up to
# CHUNK_SPREAD chunks, so a small program still keeps a few workers busy.
CHUNK_MIN_INSNS = 1000
CHUNK_SPREAD = 8
# A region of at most this weight that calls nothing and is not a return
# point or a syscall resume is a small leaf function: opt tier (an indirect
# call target in a loop, say), it costs little there.
SMALL_LEAF_INSNS = 12


@dataclass(frozen=True, slots=True)
class Untranslated:
    pc: int
    mnemonic: str
    reason: str


@dataclass
class ChunkResult:
    obj: bytes
    untranslated: list[Untranslated] = field(default_factory=list)
    lift_seconds: float = 0.0
    llvm_seconds: float = 0.0
    ir_bytes: int = 0
    cpu_seconds: float = 0.0      # the worker's CPU time for lift + LLVM


@dataclass
class Chunk:
    """Units compiled together as one LLVM module, all of one tier."""
    tier: str                       # "opt" or "fast"
    units: list                     # [Unit]
    weight: int = 0                 # guest instructions (unit weights)


def fp_barrier_blocks(blocks: dict[int, Block]) -> frozenset[int]:
    """Blocks that start with a CSR access or right after one (never inlined)."""
    out: set[int] = set()
    for pc, b in blocks.items():
        if b.insns and b.insns[0].mnemonic.startswith("csrr"):
            out.add(pc)
            out.add(b.insns[0].next_pc)
    return frozenset(out)


def htab_size(count: int) -> int:
    size = 16
    while size < 2 * count:
        size *= 2
    return size


def fused_roles(block: Block, dead_reads: frozenset[int] = frozenset()) -> dict[int, str]:
    """Instruction index -> role in a flag-neutral compare of ``block``:
    "read" (or "dead read": rX is dead, see ``dead_fflags_reads``),
    "compare" (its flags are discarded) and "write" (nothing to do)."""
    roles: dict[int, str] = {}
    for i in trio_starts(block.insns):
        roles[i] = "dead read" if block.insns[i].pc in dead_reads else "read"
        roles[i + 1] = "compare"
        roles[i + 2] = "write"
    return roles


def dead_fflags_reads(blocks: dict[int, Block]) -> frozenset[int]:
    """pcs of flag-neutral compares' fflags reads whose register is dead."""
    out: set[int] = set()
    for pc, block in blocks.items():
        for i in trio_starts(block.insns):
            if fflags_read_dead(blocks, pc, i + 2, block.insns[i].rd):
                out.add(block.insns[i].pc)
    return frozenset(out)


def needs_fp_env(block: Block, dead_reads: frozenset[int] = frozenset()) -> bool:
    """Whether ``block`` accesses the FP environment (a CSR instruction other
    than a flag-neutral compare's write or dead read)."""
    role = fused_roles(block, dead_reads)
    return any(insn.mnemonic.startswith("csrr") and role.get(i) not in ("write", "dead read")
               for i, insn in enumerate(block.insns))


def lift_insns(b: LLVMBuilder, block: Block, untranslated: list[Untranslated],
               count: str | None = None, dead_reads: frozenset[int] = frozenset()) -> None:
    """Lift one block's instructions into ``b`` (in region mode as a new
    basic block) and end it; an instruction that cannot be lowered becomes a
    trap.  ``count`` ("aot"/"jit"): bump that engine's executed-code
    counters in the guest state when the block is entered.  ``dead_reads``:
    see ``dead_fflags_reads``."""
    from aotc.isa.riscv64.semantics import SEMANTICS, lift

    size = len(block.insns) + (block.bad_pc is not None)
    mark = len(b.lines)
    if b.region is not None:
        b.begin_block(block.pc)
    if count:
        b.count_block(count, size)
    role = fused_roles(block, dead_reads)

    def lift_one(j: int, insn) -> None:
        r = role.get(j)
        if r is None:
            lift(b, insn)
        elif r == "compare":
            b.discard_flags = True
            try:
                lift(b, insn)
            finally:
                b.discard_flags = False
        elif r == "read":
            lift(b, insn)
        # "dead read" and "write": nothing to do (see fflags_idiom)

    for i, insn in enumerate(block.insns):
        b.set_insn(insn.pc, insn.next_pc, insn.raw)
        if insn.mnemonic not in SEMANTICS:
            untranslated.append(Untranslated(insn.pc, insn.mnemonic, "no semantics"))
            b.trap_illegal()
            return
        try:
            lift_one(i, insn)
        except AotcError as e:
            untranslated.append(Untranslated(insn.pc, insn.mnemonic, str(e)))
            # Re-lift the prefix, then trap at the failing instruction.
            b.rollback(mark, block.pc)
            if count:
                b.count_block(count, size)
            for j, good in enumerate(block.insns[:i]):
                b.set_insn(good.pc, good.next_pc, good.raw)
                lift_one(j, good)
                if b.ended:
                    return
            b.set_insn(insn.pc, insn.next_pc, insn.raw)
            b.trap_illegal()
            return
        if b.exit_after_insn and not b.ended:
            b.jump(insn.next_pc)
        if b.ended:
            return
    if block.bad_pc is not None:
        b.set_insn(block.bad_pc, block.bad_pc + 2, block.bad_raw)
        untranslated.append(Untranslated(block.bad_pc, "(undecodable)", "not a valid instruction"))
        b.trap_illegal()
    else:
        b.jump(b.next_pc)


def lift_block(block: Block, known: "frozenset[int] | set[int]", htab_mask: int,
               untranslated: list[Untranslated],
               dispatch_only: frozenset[int] = frozenset(),
               debug: DebugInfo | None = None,
               barriers: frozenset[int] = frozenset(),
               optnone: bool = False, count: str | None = None,
               dead_reads: frozenset[int] = frozenset(),
               convention: Convention = IMAGE_CONVENTION,
               alias_types: bool = True) -> tuple[str, LLVMBuilder]:
    """Lift one block as its own function (``alias_types``: see LLVMBuilder)."""
    b = LLVMBuilder(block.pc, known, htab_mask=htab_mask, dispatch_only=dispatch_only,
                    fault_pc_stores=debug is None, noinline=block.pc in barriers, optnone=optnone,
                    convention=convention, alias_types=alias_types)
    lift_insns(b, block, untranslated, count, dead_reads)
    return b.finish(debug), b


def lift_region(members: list[Block], known: "frozenset[int] | set[int]", htab_mask: int,
                untranslated: list[Untranslated], debug: DebugInfo | None = None,
                barriers: frozenset[int] = frozenset(),
                count: str | None = None,
                dead_reads: frozenset[int] = frozenset()) -> tuple[str, LLVMBuilder]:
    """Lift a region (head first) as one function named after its head."""
    head = members[0].pc
    fp_env = any(needs_fp_env(m, dead_reads) for m in members)
    b = LLVMBuilder(head, known, htab_mask=htab_mask, fault_pc_stores=debug is None,
                    noinline=head in barriers, region=frozenset(m.pc for m in members),
                    fp_env=fp_env)
    for block in members:
        lift_insns(b, block, untranslated, count, dead_reads)
    return b.finish(debug), b


_HEADER = f'target triple = "{TRIPLE}"\n'
# "no-builtins" on block functions: LLVM must not turn a loop of guest
# stores into memset/memcpy (loop idiom recognition), which it cannot lower
# in the guest address space (256) and which would bypass the range checks.
_FOOTER = ('attributes #0 = { nounwind "frame-pointer"="none" "no_callee_saved_registers" "no-builtins" }\n'
           'attributes #1 = { noinline nounwind strictfp }\n'
           'attributes #2 = { strictfp }\n'
           'attributes #3 = { noinline nounwind "frame-pointer"="none" "no_callee_saved_registers" "no-builtins" }\n'
           'attributes #4 = { noinline optnone nounwind "frame-pointer"="none" "no_callee_saved_registers" '
           '"no-builtins" }\n'
           'attributes #5 = { noinline "no_callee_saved_registers" }\n'
           'attributes #6 = { nounwind memory(none) }\n'
           'attributes #7 = { "no_callee_saved_registers" }\n'
           '!0 = !{!"branch_weights", i32 1000, i32 1}\n'
           # !1-!5 and !11 on: DebugInfo.  The alias types of llvm_builder's
           # _STATE_TBAA and _GUEST_TBAA: the state and guest memory.
           '!6 = !{!"aotc"}\n'
           '!7 = !{!"state", !6, i64 0}\n'
           '!8 = !{!"guest", !6, i64 0}\n'
           '!9 = !{!7, !7, i64 0}\n'
           '!10 = !{!8, !8, i64 0}\n')


# A unit of compilation: a region (member blocks head first; also a region
# entry's second function, see aotc.backend.regions) or the stand-alone copy
# of a block that belongs to a region it is neither the head nor an entry of.
Unit = tuple[str, list[Block]]


def chunk_ir(units: Iterable[Unit], known: frozenset[int], htab_mask: int,
             untranslated: list[Untranslated], barriers: frozenset[int] = frozenset(),
             count: str | None = None, dead_reads: frozenset[int] = frozenset()) -> str:
    defined: set[int] = set()
    callees: set[int] = set()
    decls: set[str] = set()
    uses_htab = False
    parts = [_HEADER]
    debug = DebugInfo()
    for kind, members in units:
        if kind in ("region", "entry"):
            # An entry's instructions are reported by the region that holds them.
            text, b = lift_region(members, known, htab_mask,
                                  untranslated if kind == "region" else [], debug=debug,
                                  count=count, dead_reads=dead_reads)
        else:
            # Stand-alone copies: their instructions are already reported by
            # the region that holds them.
            text, b = lift_block(members[0], known, htab_mask, [], debug=debug,
                                 barriers=barriers, optnone=kind == "copy", count=count,
                                 dead_reads=dead_reads)
        parts.append(text)
        defined.add(members[0].pc)
        callees |= b.callees
        decls |= b.intrinsics
        uses_htab |= b.uses_htab
    for pc in sorted(callees - defined):
        parts.append(block_declaration(pc))
    parts.extend(sorted(decls))
    if uses_htab:
        parts.append(f"@{HTAB_SYMBOL} = external hidden global [0 x [2 x i64]]")
    parts.append(_FOOTER)
    parts.append(debug.text())
    return "\n".join(parts)


def compile_units(blocks: dict[int, Block], barriers: frozenset[int], tier: str = "opt",
                  hot_pcs: "frozenset[int] | set[int]" = frozenset()) -> list[tuple[int, Unit, str]]:
    """Regions and stand-alone copies, each with its weight (instructions)
    and its tier ("opt" or "fast"; ``tier`` "auto": see ``unit_tiers``)."""
    # CSR accesses need no region boundary (see LLVMBuilder.fp_env); the
    # stand-alone copies of such blocks keep the barriers.
    regions = form_regions(blocks)
    units: list[tuple[int, Unit]] = []
    for kind, all_pcs in (("region", regions.members.values()), ("entry", regions.entries.values())):
        for pcs in all_pcs:
            members = [blocks[pc] for pc in pcs]
            units.append((sum(len(m.insns) + 1 for m in members), (kind, members)))
    for pcs in regions.members.values():
        for m in pcs[1:]:
            if m not in regions.entries:
                units.append(((len(blocks[m].insns) + 1) // 3, ("copy", [blocks[m]])))
    if tier == "auto":
        tiers = unit_tiers(blocks, regions, units, hot_pcs)
    elif tier in ("opt", "fast"):
        tiers = [tier] * len(units)
    else:
        raise ValueError(f"unknown tier {tier!r}")
    return [(w, u, t) for (w, u), t in zip(units, tiers)]


def unit_tiers(blocks: dict[int, Block], regions, units: list[tuple[int, Unit]],
               hot_pcs: "frozenset[int] | set[int]" = frozenset()) -> list[str]:
    """The tier of each unit from static evidence (and a profile's hot pcs).

    Opt: a region with a block on a cycle of the control-flow graph (a loop,
    calls inside it included), an entry (a second function for such a
    loop), a region in a cycle of the direct call graph (recursion), a region
    with an indirect jump that is not a call or return (a jump table: an
    interpreter's dispatch loop runs through one, and the graph cannot see
    that cycle; Lua was 2-2.8x slower without this), a small leaf function
    (``SMALL_LEAF_INSNS``), and any unit holding a pc of
    ``hot_pcs``.  Fast: the rest, and every stand-alone copy (entered only
    when something enters the middle of a region; already unoptimised)."""
    succ: dict[int, tuple[int, ...]] = {}
    calls: dict[int, set[int]] = {}
    return_points: set[int] = set()
    resumes: set[int] = set()
    for pc, b in blocks.items():
        s, call = successors(b)
        succ[pc] = tuple(t for t in s if t in blocks)
        if call is not None and call in blocks:
            calls.setdefault(regions.head_of[pc], set()).add(call)
        rp = return_point(b)
        if rp is not None:
            return_points.add(rp)
        if b.insns and b.insns[-1].mnemonic == "ecall":
            resumes.add(b.insns[-1].next_pc)
    in_loop = {pc for scc in _cycles(set(blocks), succ) for pc in scc}
    heads = set(regions.members)
    call_graph = {h: tuple(t for t in calls.get(h, ()) if t in heads) for h in heads}
    recursive = {h for scc in _cycles(heads, call_graph) for h in scc}

    def small_leaf(weight: int, members: list[Block]) -> bool:
        head = members[0].pc
        return (weight <= SMALL_LEAF_INSNS and head not in return_points and head not in resumes
                and all(successors(m)[1] is None and return_point(m) is None
                        and not (m.insns and m.insns[-1].mnemonic == "ecall") for m in members))

    out = []
    for weight, (kind, members) in units:
        if kind == "copy":
            hot = False
        elif kind == "entry":
            hot = True
        else:
            hot = (any(m.pc in in_loop or ends_in_indirect_jump(m) for m in members)
                   or members[0].pc in recursive or small_leaf(weight, members))
        hot = hot or any(m.pc in hot_pcs for m in members)
        out.append("opt" if hot else "fast")
    return out


def plan_chunks(units: list[tuple[int, Unit, str]], max_insns: int = CHUNK_MAX_INSNS) -> list[Chunk]:
    """Units into chunks: per tier, ceil(weight / max_insns) chunks or more
    (see CHUNK_SPREAD), filled largest unit first into the lightest chunk.
    A unit heavier than ``max_insns`` (a region is at most MAX_REGION_INSNS)
    gets a chunk of its own.  Opt chunks first, heaviest first."""
    out: list[Chunk] = []
    for tier in ("opt", "fast"):
        mine = sorted(((w, u) for w, u, t in units if t == tier), key=lambda u: (-u[0], u[1][1][0].pc))
        total = sum(w for w, _u in mine)
        if not mine:
            continue
        n = max(math.ceil(total / max_insns), min(CHUNK_SPREAD, total // CHUNK_MIN_INSNS), 1)
        chunks = [Chunk(tier, []) for _ in range(min(n, len(mine)))]
        for weight, unit in mine:
            c = min(chunks, key=lambda c: c.weight)
            if c.units and c.weight + weight > max_insns:
                c = Chunk(tier, [])
                chunks.append(c)
            c.units.append(unit)
            c.weight += weight
        out.extend(sorted(chunks, key=lambda c: -c.weight))
    return out


def table_ir(block_pcs: list[int], htab_mask: int, metadata_words: dict[str, int]) -> str:
    """The native lookup table and the exported image info record."""
    size = htab_mask + 1
    slots: list[int | None] = [None] * size
    for pc in block_pcs:
        h = (pc >> 1) & htab_mask
        while slots[h] is not None:
            h = (h + 1) & htab_mask
        slots[h] = pc
    lines = [_HEADER]
    for pc in block_pcs:
        lines.append(block_declaration(pc))
    entries = []
    for pc in slots:
        if pc is None:
            entries.append("{ i64, ptr } { i64 -1, ptr null }")   # HTAB_EMPTY
        else:
            entries.append(f"{{ i64, ptr }} {{ i64 {pc}, ptr @{block_symbol(pc)} }}")
    lines.append(f"@{HTAB_SYMBOL} = hidden constant [{size} x {{ i64, ptr }}] [\n  "
                 + ",\n  ".join(entries) + "\n]")
    # aotc_image_info: { htab, mask, block count, codegen version }
    lines.append(f"@{INFO_SYMBOL} = constant {{ ptr, i64, i64, i64 }} "
                 f"{{ ptr @{HTAB_SYMBOL}, i64 {htab_mask}, i64 {len(block_pcs)}, "
                 f"i64 {metadata_words.get('codegen_version', CODEGEN_VERSION)} }}")
    return "\n".join(lines) + "\n"


def _target_machine(opt_level: int):
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    llvm.initialize_native_asmparser()   # the few non-empty inline asm strings (movq)
    # Baseline x86-64-v2 keeps images portable across x86_64 hosts.
    return llvm.Target.from_triple(TRIPLE).create_target_machine(
        cpu="x86-64-v2", opt=min(opt_level, 3), reloc="pic", codemodel="small")


def compile_ir(ir: str, opt_level: int, name: str = "chunk") -> bytes:
    import llvmlite.binding as llvm

    tm = _target_machine(opt_level)
    try:
        mod = llvm.parse_assembly(ir)
        mod.name = name
        mod.verify()
    except RuntimeError as e:
        raise BuildError(f"generated LLVM IR for {name} is invalid: {str(e).splitlines()[0]}") from e
    if opt_level > 0:
        pto = llvm.create_pipeline_tuning_options(speed_level=opt_level)
        pb = llvm.create_pass_builder(tm, pto)
        pb.getModulePassManager().run(mod, pb)
    return tm.emit_object(mod)


# Worker state, inherited through fork.
_WORK: dict = {}


def _compile_chunk(index: int) -> ChunkResult:
    chunk: Chunk = _WORK["chunks"][index]
    untranslated: list[Untranslated] = []
    c0 = time.process_time()
    t0 = time.perf_counter()
    ir = chunk_ir(chunk.units, _WORK["known"], _WORK["mask"], untranslated, _WORK["barriers"],
                  "aot" if _WORK["count"] else None, _WORK["dead_reads"])
    t1 = time.perf_counter()
    if _WORK.get("dump_dir"):
        Path(_WORK["dump_dir"], f"chunk{index:03d}.ll").write_text(ir)
    # The fast tier: no IR passes, codegen at CodeGenOpt::None (compile_ir at 0).
    obj = compile_ir(ir, _WORK["opt"] if chunk.tier == "opt" else 0, f"chunk{index}")
    t2 = time.perf_counter()
    return ChunkResult(obj, untranslated, t1 - t0, t2 - t1, len(ir), time.process_time() - c0)


def _tier_stats(chunks: list[Chunk], results: list[ChunkResult]) -> dict[str, dict]:
    """Per tier: chunks, functions, blocks and guest instructions (of regions:
    entries and copies repeat them), CPU seconds and instructions per second."""
    out: dict[str, dict] = {}
    for chunk, r in zip(chunks, results):
        t = out.setdefault(chunk.tier, {"chunks": 0, "functions": 0, "blocks": 0, "instructions": 0,
                                        "weight": 0, "cpu_seconds": 0.0})
        t["chunks"] += 1
        t["functions"] += len(chunk.units)
        t["weight"] += chunk.weight
        t["cpu_seconds"] += r.cpu_seconds
        for kind, members in chunk.units:
            if kind == "region":
                t["blocks"] += len(members)
                t["instructions"] += sum(len(m.insns) for m in members)
    for t in out.values():
        t["cpu_seconds"] = round(t["cpu_seconds"], 3)
        t["instructions_per_second"] = round(t["weight"] / t["cpu_seconds"]) if t["cpu_seconds"] else None
    return out


def compile_blocks(blocks: dict[int, Block], *, opt_level: int = 2, jobs: int | None = None,
                   progress: Callable[[str], None] | None = None,
                   dump_dir: Path | None = None,
                   count: bool = False, tier: str = "opt",
                   hot_pcs: "frozenset[int] | set[int]" = frozenset(),
                   max_chunk_insns: int = CHUNK_MAX_INSNS) -> tuple[list[bytes], list[Untranslated], dict]:
    """Compile every block into object files (chunked, in parallel); with
    ``count``, translated code counts the blocks and instructions it runs.
    ``tier``: see TIERS; ``hot_pcs`` (tier "auto"): units holding one are opt."""
    pcs = sorted(blocks)
    known = frozenset(pcs)
    mask = htab_size(len(pcs)) - 1
    jobs = jobs or os.cpu_count() or 1
    barriers = fp_barrier_blocks(blocks)
    chunks = plan_chunks(compile_units(blocks, barriers, tier, hot_pcs), max_chunk_insns)
    n_chunks = len(chunks)
    _WORK.update(chunks=chunks, known=known, mask=mask, opt=opt_level, dump_dir=dump_dir,
                 barriers=barriers, count=count, dead_reads=dead_fflags_reads(blocks))
    results: list[ChunkResult] = [None] * n_chunks  # type: ignore[list-item]
    try:
        if jobs > 1 and n_chunks > 1:
            _compile_in_workers(min(jobs, n_chunks), chunks, results, progress)
        else:
            for i in range(n_chunks):
                results[i] = _compile_chunk(i)
                if progress:
                    progress(f"compiled chunk {i + 1}/{n_chunks}")
    finally:
        _WORK.clear()
    objects = [r.obj for r in results]
    objects.append(compile_ir(table_ir(pcs, mask, {}), 0, "table"))
    untranslated = sorted((u for r in results for u in r.untranslated), key=lambda u: u.pc)
    timings = {
        "lift_seconds": round(sum(r.lift_seconds for r in results), 3),
        "llvm_seconds": round(sum(r.llvm_seconds for r in results), 3),
        "ir_bytes": sum(r.ir_bytes for r in results),
        "chunks": n_chunks,
        "tiers": _tier_stats(chunks, results),
    }
    return objects, untranslated, timings


def _worker_loop(conn) -> None:
    """A compile worker: chunk indices in, ("ok", result) or ("error", exception) out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the parent handles ^C and ends us
    while True:
        try:
            index = conn.recv()
        except EOFError:
            return
        if index is None:
            return
        try:
            reply = ("ok", _compile_chunk(index))
        except Exception as e:   # noqa: BLE001 -- handed to the parent, which raises it
            reply = ("error", e)
        try:
            conn.send(reply)
        except Exception as e:   # noqa: BLE001 -- an exception that does not pickle
            conn.send(("error", BuildError(f"compiling chunk {index} failed: {e}")))


def _died(index: int, chunk: Chunk, n_chunks: int, exitcode: int | None) -> CompileWorkerDied:
    what = (f"chunk {index + 1}/{n_chunks} ({chunk.tier} tier, {chunk.weight} guest instructions "
            f"in {len(chunk.units)} functions)")
    if exitcode is not None and exitcode < 0:
        try:
            how = f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            how = f"killed by signal {-exitcode}"
    else:
        how = f"exited with status {exitcode}"
    if exitcode == -signal.SIGKILL:
        hint = ("most likely the kernel's out-of-memory killer (see `dmesg`): free memory or "
                "build with fewer jobs (-j)")
    else:
        hint = "LLVM aborted? `aotc build -j 1` shows LLVM's own message"
    return CompileWorkerDied(f"a compile worker process died ({how}) while compiling {what}: {hint}",
                             chunk=index, tier=chunk.tier, instructions=chunk.weight,
                             exitcode=exitcode)


def _compile_in_workers(workers: int, chunks: list[Chunk], results: list[ChunkResult],
                        progress: Callable[[str], None] | None) -> None:
    """Compile the chunks in forked worker processes (they inherit _WORK),
    handing each worker one chunk at a time, so no more than ``workers``
    modules are in LLVM at once and the parent knows which chunk each worker
    holds: a worker that dies (LLVM aborts on a fatal error instead of
    raising; the OOM killer) fails the build with a CompileWorkerDied naming
    the chunk."""
    ctx = multiprocessing.get_context("fork")
    n_chunks = len(chunks)
    todo = deque(range(n_chunks))        # plan_chunks put the heaviest first
    pool: list[list] = []                # [process, connection, chunk index or None]
    try:
        for _ in range(workers):
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(target=_worker_loop, args=(theirs,), daemon=True)
            proc.start()
            theirs.close()
            pool.append([proc, mine, None])

        def feed(w: list) -> None:
            w[2] = todo.popleft() if todo else None
            w[1].send(w[2])

        for w in pool:
            feed(w)
        done = 0
        while done < n_chunks:
            busy = [w for w in pool if w[2] is not None]
            ready = multiprocessing.connection.wait([w[1] for w in busy] + [w[0].sentinel for w in busy])
            for w in busy:
                if w[1] not in ready and w[0].sentinel not in ready:
                    continue
                try:
                    reply = w[1].recv() if w[1].poll() else None
                except (EOFError, OSError):
                    reply = None
                if reply is None:
                    w[0].join(5)
                    raise _died(w[2], chunks[w[2]], n_chunks, w[0].exitcode)
                if reply[0] == "error":
                    raise reply[1]
                results[w[2]] = reply[1]
                done += 1
                if progress:
                    progress(f"compiled chunk {done}/{n_chunks}")
                feed(w)
    finally:
        for proc, conn, _index in pool:
            if proc.is_alive():
                proc.kill()
            proc.join()
            conn.close()


def link_shared_object(objects: list[bytes]) -> bytes:
    """Link objects into one x86_64 shared object with the system linker."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise BuildError("no C compiler driver ('cc') found to run the system linker (install gcc)")
    with tempfile.TemporaryDirectory(prefix="aotc-link-") as tmp:
        paths = []
        for i, obj in enumerate(objects):
            p = Path(tmp, f"o{i:04d}.o")
            p.write_bytes(obj)
            paths.append(str(p))
        out = Path(tmp, "image.so")
        # libm only for the rare FP helper LLVM calls out to (fma without FMA3);
        # libgcc (static: the image needs nothing beyond libc/libm) for the
        # binary128 soft-float of RMM rounding (aotc/backend/rmm.py).
        cmd = [cc, "-shared", "-nostartfiles", "-static-libgcc", "-o", str(out), *paths, "-lm",
               "-Wl,--build-id=none,--hash-style=gnu,-z,now,-z,relro,-z,noexecstack,"
               "-z,separate-code,--no-undefined"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BuildError("linking the image failed: " + (proc.stderr.strip().splitlines() or ["?"])[0])
        return out.read_bytes()
