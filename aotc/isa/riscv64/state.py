"""The riscv64 guest CPU state, defined once.

Translated code, the interpreter, the runtime and the syscall layer all use
these offsets.  ``GuestState`` is the ctypes view; ``OFFSETS`` names every
field's byte offset for code generators.
"""

from __future__ import annotations

import ctypes


class GuestState(ctypes.Structure):
    _fields_ = [
        ("x", ctypes.c_uint64 * 32),     # integer registers; x[0] stays 0
        ("f", ctypes.c_uint64 * 32),     # FP registers, raw bits (singles NaN-boxed)
        ("pc", ctypes.c_uint64),         # guest pc to resume at / of the exit
        ("fcsr", ctypes.c_uint64),       # frm << 5 | fflags
        ("reservation", ctypes.c_uint64),  # LR/SC reserved address, or ~0
        ("fault_pc", ctypes.c_uint64),   # pc of the last memory access (fault reports)
        ("exit_info", ctypes.c_uint64),  # extra word for an exit (e.g. illegal bits)
        # Executed-code counters (``--stats``), bumped at block entry by
        # counting code: JIT code always, image code when built with --count.
        ("aot_blocks", ctypes.c_uint64),
        ("aot_insns", ctypes.c_uint64),
        ("jit_blocks", ctypes.c_uint64),
        ("jit_insns", ctypes.c_uint64),
        # Host stack pointer below which translated code stops nesting host
        # calls for guest calls (set by the native dispatcher at entry).
        ("host_sp_limit", ctypes.c_uint64),
        # Non-zero asks translated code to leave at the next safe point
        # (a backward branch or call, an indirect jump) with EXIT_INTERRUPT:
        # a signal is waiting for this thread (runtime/linux/signals.py).
        ("interrupt", ctypes.c_uint64),
        # The value LR loaded (SC succeeds only if memory still holds it).
        ("reservation_value", ctypes.c_uint64),
        # The time CSR (Zicntr): time = time_base + ((tsc - time_tsc0) * time_mult >> 32),
        # tsc being the host's time-stamp counter; set by runtime/guest_clock.py.
        ("time_tsc0", ctypes.c_uint64),
        ("time_mult", ctypes.c_uint64),
        ("time_base", ctypes.c_uint64),
    ]


OFFSETS: dict[str, int] = {name: getattr(GuestState, name).offset for name, _ in GuestState._fields_}
STATE_SIZE = ctypes.sizeof(GuestState)

# Exit codes a translated block returns to the native dispatch loop.
EXIT_CONTINUE = 0   # look up state.pc and keep running (dispatcher-internal)
EXIT_SYSCALL = 1    # ecall at state.pc
EXIT_MISS = 2       # no translation for state.pc
EXIT_ILLEGAL = 3    # illegal instruction at state.pc (exit_info = bits)
EXIT_BREAK = 4      # ebreak at state.pc
EXIT_FAULT = 5      # host fault inside the arena (set by the fault handler)
EXIT_FENCE_I = 6    # fence.i at state.pc; resume at state.pc + size
EXIT_FP_MODE = 7    # FP op with rm = DYN at state.pc while frm is RMM or reserved: interpret it
EXIT_RETURN = 8     # guest return to state.pc: the host caller continues there if it is its
                    # return point, else it passes this on (dispatcher-internal, like CONTINUE)
EXIT_INTERPRET = 9  # a block's entry range check failed: interpret from state.pc (precise faults)
EXIT_INTERRUPT = 10  # state.interrupt was set: every register is in the state, resume at state.pc
EXIT_RESUME = 11    # (the native dispatcher's, not translated code's) a guest signal handler run
                    # for a fault went elsewhere: resume at state.pc (runtime/native/aotrt.c)
