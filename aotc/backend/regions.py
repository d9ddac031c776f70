"""Region formation: which guest blocks are compiled together as one function.

A *region* is a single-entry group of blocks connected by direct branches:
its *head* is the only block control enters it through from outside (a tail
call from another region, or the dispatcher); every other member is reached
only by direct branches from blocks of the same region.  The backend
compiles a region as one LLVM function whose internal branches are plain
``br``, so guest registers stay in SSA across the region and loops inside it
are natural LLVM loops.

Heads are blocks that can be entered from outside anyway:

* call targets (``jal`` with a link register) and blocks no direct branch
  reaches (return points after calls, syscall resumes, indirect-jump targets,
  entries found in data or symbols);
* optional ``fp_barriers`` (blocks that must stay function boundaries; the
  AOT backend passes none: CSR accesses are ordered inside a region, see
  ``LLVMBuilder.fp_env``);
* ``extra_heads`` (e.g. blocks the JIT enters through the dispatcher);
* blocks reached from two regions (fixpoint), and blocks past the size cap.

Every non-head block is still a valid dispatcher entry (the table lists all
blocks): the backend also emits a small unoptimised stand-alone function
for it, used only when something enters the middle of a region (a rare slow
path: resuming at an unusual pc).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aotc.discover import Block

# Guest instructions per region, bounding LLVM's work per function.
MAX_REGION_INSNS = 1200


def successors(block: Block) -> tuple[tuple[int, ...], int | None]:
    """Direct successors of ``block`` (as the lifter emits them) and the
    target of a call (``jal`` linking a register), if the block ends in one."""
    if block.bad_pc is not None or not block.insns:
        return (), None
    last = block.insns[-1]
    m = last.mnemonic
    if m == "jal":
        target = (last.pc + last.imm) & (2**64 - 1)
        return (target,), (target if last.rd != 0 else None)
    if m in ("beq", "bne", "blt", "bge", "bltu", "bgeu"):
        return ((last.pc + last.imm) & (2**64 - 1), last.next_pc), None
    if m in ("jalr", "ecall", "ebreak", "fence.i") or _always_traps(last):
        return (), None
    return (last.next_pc,), None


def _always_traps(insn) -> bool:
    from aotc.isa.riscv64.decoder import is_block_end

    return is_block_end(insn) and not insn.mnemonic.startswith("csrr")


@dataclass(frozen=True, slots=True)
class Regions:
    head_of: dict[int, int]             # block pc -> its region's head pc
    members: dict[int, tuple[int, ...]]  # head pc -> member pcs, head first

    @property
    def heads(self) -> frozenset[int]:
        return frozenset(self.members)


def form_regions(blocks: dict[int, Block], fp_barriers: Iterable[int] = (),
                 extra_heads: Iterable[int] = (), max_insns: int = MAX_REGION_INSNS) -> Regions:
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
            if not rest:
                break
            new_heads.add(rest[0])
        heads |= new_heads
    members: dict[int, list[int]] = {h: [h] for h in heads}
    for pc in sorted(owner):
        if pc not in heads:
            members[owner[pc]].append(pc)
    return Regions(owner, {h: tuple(m) for h, m in members.items()})
