"""Lift discovered blocks to LLVM IR, optimise, emit objects, link a .so.

Stages (each timed, see ``BuildTimings``): lift (Python, IR text) →
parse + optimise (LLVM new pass manager) → emit object (LLVM codegen) →
link (system ``ld -shared``).  Lifting and compilation run in independent
chunks across worker processes; each chunk is one LLVM module whose calls to
blocks in other chunks are resolved by the linker (hidden symbols, so the
calls are direct, never through the PLT).
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
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
from aotc.backend.regions import form_regions
from aotc.discover import Block
from aotc.errors import AotcError, BuildError
from aotc.isa.riscv64.fflags_idiom import fflags_read_dead, trio_starts

TRIPLE = "x86_64-unknown-linux-gnu"
INFO_SYMBOL = "aotc_image_info"


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


def compile_units(blocks: dict[int, Block], barriers: frozenset[int]) -> list[tuple[int, Unit]]:
    """Regions and stand-alone copies, each with its weight (instructions)."""
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
    return units


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
    units: list[Unit] = _WORK["chunks"][index]
    untranslated: list[Untranslated] = []
    t0 = time.perf_counter()
    ir = chunk_ir(units, _WORK["known"], _WORK["mask"], untranslated, _WORK["barriers"],
                  "aot" if _WORK["count"] else None, _WORK["dead_reads"])
    t1 = time.perf_counter()
    if _WORK.get("dump_dir"):
        Path(_WORK["dump_dir"], f"chunk{index:03d}.ll").write_text(ir)
    obj = compile_ir(ir, _WORK["opt"], f"chunk{index}")
    t2 = time.perf_counter()
    return ChunkResult(obj, untranslated, t1 - t0, t2 - t1, len(ir))


def compile_blocks(blocks: dict[int, Block], *, opt_level: int = 2, jobs: int | None = None,
                   progress: Callable[[str], None] | None = None,
                   dump_dir: Path | None = None,
                   count: bool = False) -> tuple[list[bytes], list[Untranslated], dict]:
    """Compile every block into object files (chunked, in parallel); with
    ``count``, translated code counts the blocks and instructions it runs."""
    pcs = sorted(blocks)
    known = frozenset(pcs)
    mask = htab_size(len(pcs)) - 1
    jobs = jobs or os.cpu_count() or 1
    # Enough chunks to balance the workers, each big enough to amortise LLVM.
    n_chunks = max(1, min(len(pcs) // 400 + 1, jobs * 4))
    barriers = fp_barrier_blocks(blocks)
    chunks: list[list[Unit]] = [[] for _ in range(n_chunks)]
    load = [0] * n_chunks
    for weight, unit in sorted(compile_units(blocks, barriers), key=lambda u: (-u[0], u[1][1][0].pc)):
        i = load.index(min(load))
        chunks[i].append(unit)
        load[i] += weight
    _WORK.update(chunks=chunks, known=known, mask=mask, opt=opt_level, dump_dir=dump_dir,
                 barriers=barriers, count=count, dead_reads=dead_fflags_reads(blocks))
    results: list[ChunkResult] = [None] * n_chunks  # type: ignore[list-item]
    try:
        if jobs > 1 and n_chunks > 1:
            _compile_in_workers(min(jobs, n_chunks), n_chunks, results, progress)
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
    }
    return objects, untranslated, timings


def _compile_in_workers(workers: int, n_chunks: int, results: list[ChunkResult],
                        progress: Callable[[str], None] | None) -> None:
    """Compile the chunks in forked worker processes (they inherit _WORK).

    A worker that dies (LLVM aborts on a fatal error instead of raising)
    fails the build with a BuildError: a multiprocessing.Pool would wait
    for its result forever."""
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        futures = {pool.submit(_compile_chunk, i): i for i in range(n_chunks)}
        try:
            for done, fut in enumerate(as_completed(futures), start=1):
                results[futures[fut]] = fut.result()
                if progress:
                    progress(f"compiled chunk {done}/{n_chunks}")
        except BrokenProcessPool:
            raise BuildError("a compile worker process died (LLVM aborted?); `aotc build -j 1` "
                             "shows LLVM's own message") from None


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
