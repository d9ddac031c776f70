"""The contract between generated code and the runtime that runs it."""

# Version of the code generator's output: part of every build-cache key,
# recorded in every image, and an image runs only on a runtime of the same
# version (the block calling convention, the state layout the code assumes
# and the exit codes may change from one version to the next).
CODEGEN_VERSION = 19

# The block calling convention (LLVM preserve_none, every block function):
#   {i64 exit code, i64 x[RETURNED_REGS[0]], ...} @b_<pc>(ptr state,
#                                                       i64 x[PASSED_REGS[0]], ...)
# Guest memory is not an argument: code reaches it through the GS segment,
# whose base the runtime sets to the arena (aotrt.c, set_guest_segment).
# The guest registers in PASSED_REGS travel in host registers, in this order,
# into every block function (r13, r14, r15, rdi, rsi, rdx, rcx, r8, r9)
# and the state's copies of them are stale while a function runs; on return
# those in RETURNED_REGS come back in rdx and rcx after the exit code (rax)
# and the rest of PASSED_REGS are stored in the state.  The argument and
# callee-saved registers a guest call passes and a guest return hands back
# thus never go through memory.  The native trampoline (aotrt_enter_block in
# runtime/native/aotrt.c) does the loads and stores for the dispatcher, and
# reports the same tuples (``_native.block_abi()``), which the runtime checks.
# preserve_none has two more argument registers, r11 and rax; an indirect
# tail call needs one of them for its target (LLVM runs out of registers
# without it).
#   a0, a1, a2, sp, ra, s0, s1, s2, s3
PASSED_REGS: tuple[int, ...] = (10, 11, 12, 2, 1, 8, 9, 18, 19)
#   a0, sp
RETURNED_REGS: tuple[int, ...] = (10, 2)
