"""Region formation: which guest blocks are compiled together as one function.

A *region* is a single-entry group of blocks connected by direct branches:
its *head* is the only block control enters it through from outside (a tail
call from another region, or the dispatcher); every other member is reached
only by direct branches from blocks of the same region.  The backend
compiles a region as one LLVM function whose internal branches are plain
``br``, so guest registers stay in SSA across the region and loops inside it
are natural LLVM loops.

A guest call is a host call (``LLVMBuilder._host_call``): when the callee
returns to the call's return point, execution goes on in the caller's
function.  A return point inside a loop belongs to its call's region like a
branch target, so loops that call functions stay one LLVM loop; one outside
loops heads a region (the caller tail-calls it after the host call).

Heads are blocks that can be entered from outside anyway:

* call targets (``jal`` with a link register), return points outside
  loops, and blocks nothing reaches by a direct branch or as a return point
  (syscall resumes, indirect-jump targets, entries found in data or
  symbols);
* optional ``fp_barriers`` (blocks that must stay function boundaries; the
  AOT backend passes none: CSR accesses are ordered inside a region, see
  ``LLVMBuilder.fp_env``);
* ``extra_heads`` (e.g. blocks the JIT enters through the dispatcher);
* blocks reached from two regions (fixpoint), and blocks past the size cap.

Every non-head block is still a valid dispatcher entry (the table lists all
blocks): the backend also emits a small unoptimised stand-alone function
for it, used only when something enters the middle of a region.  Return
points are entered that way whenever the host stack was unwound while the
callee ran (a syscall, a miss, a deep recursion's tail calls): the
stand-alone copies then chain until they reach a head or an *entry*.  So
that this never means a whole loop in unoptimised code, every cycle of
non-head blocks a return point reaches gets an entry (its first block in
depth-first order from the region's head): instead of a stand-alone copy,
an entry is compiled as a second, optimised function holding every block of
its region it reaches.  The region itself stays whole, so a function whose
loop calls itself (``fib`` after gcc turned one of its calls into a loop)
is one LLVM function, not three joined by tail calls.  Only small entries
are compiled twice: one that would reach more than ``MAX_ENTRY_INSNS``
instructions (the big loops of ``vfprintf``, say) becomes a head instead,
splitting its region there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from aotc.discover import Block
from aotc.isa.riscv64.semantics.rvi import LINK_REGS

# Guest instructions per region, bounding LLVM's work per function.
MAX_REGION_INSNS = 1200
# Guest instructions per entry function (code compiled twice); a loop entry
# that would reach more heads a region of its own instead.
MAX_ENTRY_INSNS = 48


def successors(block: Block) -> tuple[tuple[int, ...], int | None]:
    """Successors of ``block`` inside a region (direct branch targets, and a
    call's return point) and the target of a call (``jal`` linking a
    register), if the block ends in one."""
    if block.bad_pc is not None or not block.insns:
        return (), None
    last = block.insns[-1]
    m = last.mnemonic
    if m == "jal":
        target = (last.pc + last.imm) & (2**64 - 1)
        if last.rd in LINK_REGS:
            return (last.next_pc,), target
        return (target,), (target if last.rd != 0 else None)
    if m in ("beq", "bne", "blt", "bge", "bltu", "bgeu"):
        return ((last.pc + last.imm) & (2**64 - 1), last.next_pc), None
    if m == "jalr" and last.rd in LINK_REGS:
        return (last.next_pc,), None
    if m in ("jalr", "ecall", "ebreak", "fence.i") or _always_traps(last):
        return (), None
    return (last.next_pc,), None


def ends_in_indirect_jump(block: Block) -> bool:
    """True if ``block`` ends in a jump through a register that is neither a
    call nor a return (``jr t0``): a switch's jump table, an interpreter's
    dispatch, a tail call through a pointer.  Its targets are not in the
    control-flow graph, so a loop through it is invisible there."""
    if block.bad_pc is not None or not block.insns:
        return False
    last = block.insns[-1]
    return last.mnemonic == "jalr" and last.rd not in LINK_REGS and last.rs1 not in LINK_REGS


def return_point(block: Block) -> int | None:
    """The return point of the call ``block`` ends in, if it ends in one."""
    if block.bad_pc is not None or not block.insns:
        return None
    last = block.insns[-1]
    if last.mnemonic in ("jal", "jalr") and last.rd in LINK_REGS:
        return last.next_pc
    return None


def _always_traps(insn) -> bool:
    from aotc.isa.riscv64.decoder import is_block_end

    return is_block_end(insn) and not insn.mnemonic.startswith("csrr")


@dataclass(frozen=True, slots=True)
class Regions:
    head_of: dict[int, int]             # block pc -> its region's head pc
    members: dict[int, tuple[int, ...]]  # head pc -> member pcs, head first
    # entry pc -> the blocks of its region it reaches, entry first (see the
    # module docstring); an entry is never a head.
    entries: dict[int, tuple[int, ...]] = field(default_factory=dict)

    @property
    def heads(self) -> frozenset[int]:
        return frozenset(self.members)


def form_regions(blocks: dict[int, Block], fp_barriers: Iterable[int] = (),
                 extra_heads: Iterable[int] = (), max_insns: int = MAX_REGION_INSNS,
                 max_entry_insns: int = MAX_ENTRY_INSNS) -> Regions:
    succ: dict[int, tuple[int, ...]] = {}
    preds: dict[int, int] = {pc: 0 for pc in blocks}
    heads: set[int] = set()
    for pc, b in blocks.items():
        s, call = successors(b)
        s = tuple(t for t in s if t in blocks)
        succ[pc] = s
        if call is not None and call in blocks:
            heads.add(call)
        for t in s:
            preds[t] += 1
    heads |= {pc for pc, n in preds.items() if n == 0}
    # Return points outside loops head regions of their own (entered by a
    # direct tail call after the host call returns): the code after a call
    # often sets up a loop, which then sees its constants in SSA, and the
    # dispatcher's entry there after an unwind is optimised code.
    in_loops = {pc for scc in _cycles(set(blocks), succ) for pc in scc}
    return_points = {rp for b in blocks.values() if (rp := return_point(b)) is not None and rp in blocks}
    heads |= return_points - in_loops
    heads |= {pc for pc in fp_barriers if pc in blocks}
    heads |= {pc for pc in extra_heads if pc in blocks}
    size = {pc: max(1, len(b.insns)) for pc, b in blocks.items()}
    while True:
        owner: dict[int, int] = {}
        new_heads: set[int] = set()
        for h in sorted(heads):
            owner[h] = h
            total = size[h]
            work = [h]
            while work:
                pc = work.pop()
                for t in succ[pc]:
                    if t in heads:
                        continue
                    o = owner.get(t)
                    if o is None:
                        if total + size[t] > max_insns:
                            new_heads.add(t)
                            continue
                        owner[t] = h
                        total += size[t]
                        work.append(t)
                    elif o != h:
                        new_heads.add(t)
        if not new_heads:
            # Cycles nothing outside reaches: start a region at their lowest pc.
            rest = sorted(pc for pc in blocks if pc not in owner)
            if rest:
                new_heads.add(rest[0])
            else:
                entries = _return_loop_entries(return_points - heads, succ, heads, owner)
                # An entry whose function would be large heads a region instead.
                new_heads = {e for e, pcs in entries.items()
                             if sum(size[pc] for pc in pcs) > max_entry_insns}
                if not new_heads:
                    break
        heads |= new_heads
    members: dict[int, list[int]] = {h: [h] for h in heads}
    for pc in sorted(owner):
        if pc not in heads:
            members[owner[pc]].append(pc)
    return Regions(owner, {h: tuple(m) for h, m in members.items()}, entries)


def _within_region(start: int, succ: dict[int, tuple[int, ...]], heads: set[int],
                   owner: dict[int, int], stop: set[int] | frozenset[int] = frozenset()) -> set[int]:
    """Non-head blocks of ``start``'s region reachable from it by branches
    inside the region (not past a block of ``stop`` other than ``start``)."""
    seen: set[int] = set()
    work = [start]
    while work:
        pc = work.pop()
        if pc in seen:
            continue
        seen.add(pc)
        if pc in stop and pc != start:
            continue
        work.extend(t for t in succ[pc] if t not in heads and owner.get(t) == owner.get(start))
    return seen


def _return_loop_entries(starts: set[int], succ: dict[int, tuple[int, ...]],
                         heads: set[int], owner: dict[int, int]) -> dict[int, tuple[int, ...]]:
    """One entry per cycle of non-head blocks that a return point (of
    ``starts``, the non-head ones) reaches
    (its first block in depth-first order from the region head), so the
    stand-alone copies entered at a return point reach optimised code within
    one trip around any loop; each with the blocks of its region it reaches.
    Cycles that still avoid every entry (an inner loop whose outer loop's
    entry lies outside it) get entries of their own, until none is left."""
    order: dict[int, int] = {}
    for h in sorted(heads):
        # Depth-first preorder of each region from its head.
        stack = [h]
        while stack:
            pc = stack.pop()
            if pc in order:
                continue
            order[pc] = len(order)
            stack.extend(t for t in reversed(succ[pc])
                         if t not in heads and owner.get(t) == owner[h] and t not in order)
    entries: set[int] = set()
    while True:
        # Blocks the copies run through from a return point before they
        # reach a head or an entry.
        reach: set[int] = set()
        for rp in sorted(starts):
            if rp not in entries:
                reach |= _within_region(rp, succ, heads, owner, entries) - entries
        new = {min(scc, key=lambda pc: order.get(pc, 1 << 62)) for scc in _cycles(reach, succ)}
        if not new:
            break
        entries |= new
    out: dict[int, tuple[int, ...]] = {}
    for e in sorted(entries):
        out[e] = (e, *sorted(_within_region(e, succ, heads, owner) - {e}))
    return out


def _cycles(nodes: set[int], succ: dict[int, tuple[int, ...]]) -> list[list[int]]:
    """Strongly connected components of ``nodes`` that contain a cycle
    (iterative Tarjan)."""
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[int] = []
    out: list[list[int]] = []
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter([t for t in succ[root] if t in nodes]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            pc, it = work[-1]
            for t in it:
                if t not in index:
                    index[t] = low[t] = len(index)
                    stack.append(t)
                    on_stack.add(t)
                    work.append((t, iter([u for u in succ[t] if u in nodes])))
                    break
                if t in on_stack:
                    low[pc] = min(low[pc], index[t])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[pc])
                if low[pc] == index[pc]:
                    scc = []
                    while True:
                        t = stack.pop()
                        on_stack.discard(t)
                        scc.append(t)
                        if t == pc:
                            break
                    if len(scc) > 1 or pc in succ[pc]:
                        out.append(scc)
    return out
