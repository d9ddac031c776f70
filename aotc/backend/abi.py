"""The contract between generated code and the runtime that runs it."""

# Version of the code generator's output: part of every build-cache key,
# recorded in every image, and an image runs only on a runtime of the same
# version (the block calling convention, the state layout the code assumes
# and the exit codes may change from one version to the next).
CODEGEN_VERSION = 27   # 27: build tiers (cold code unoptimised)

# The key of an empty slot in a block table (the image's aotc_htab, the JIT's
# table): all ones, which no guest pc can be (pcs are at least 2-aligned and
# below 2**32), so an indirect jump to any address, 0 included, misses an
# empty slot.  Until version 20 it was 0, and a jump to address 0 (a NULL
# function pointer) "hit" an empty slot and called its null entry.
HTAB_EMPTY = (1 << 64) - 1

# The block calling convention (LLVM x86_regcallcc with no callee-saved
# registers, every block function):
#   {i64 exit code, i64 x[RETURNED_REGS[0]], ...} @b_<pc>(ptr state,
#                                                       i64 x[PASSED_REGS[0]], ...)
# Guest memory is not an argument: code reaches it through the GS segment,
# whose base the runtime sets to the arena (aotrt.c, set_guest_segment).
# The state pointer travels in rax and the guest registers of PASSED_REGS
# in host registers, in this order (rcx, rdx, rdi, rsi, r8, r9, r12, r13,
# r14, r15), into every block function; the state's copies of them are
# stale while a function runs.  A function gives all of them back
# (RETURNED_REGS, in the same registers, after the exit code in rax).  The
# argument and callee-saved registers a guest call passes and a guest
# return hands back thus never go through memory.  The native trampoline
# (aotrt_enter_block in runtime/native/aotrt.c) does the loads and stores
# for the dispatcher, and reports the same tuples (``_native.block_abi()``),
# which the runtime checks.  An indirect tail call takes its target in r10
# or r11, which are no argument registers.
#   a0, a1, a2, sp, ra, s0, s1, s2, s3, s4
PASSED_REGS: tuple[int, ...] = (10, 11, 12, 2, 1, 8, 9, 18, 19, 20)
RETURNED_REGS: tuple[int, ...] = PASSED_REGS
