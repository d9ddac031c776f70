"""The riscv64 Linux signal frame: ``siginfo_t``, ``struct rt_sigframe``, rt_sigreturn.

What Linux (arch/riscv/kernel/signal.c) writes on the user stack when it
delivers a signal, and reads back in ``rt_sigreturn``::

    struct rt_sigframe {                 /* 1088 bytes, 16-byte aligned */
        siginfo_t info;                  /*   0: 128 bytes */
        struct ucontext uc;              /* 128: 960 bytes */
    };
    struct ucontext {
        unsigned long uc_flags;          /*   0 (written as 0) */
        struct ucontext *uc_link;        /*   8 (written as NULL) */
        stack_t uc_stack;                /*  16: ss_sp, int ss_flags @8, ss_size @16 */
        sigset_t uc_sigmask;             /*  40: 8 bytes (the kernel's _NSIG = 64) */
        __u8 __unused[120];              /*  48: pads the mask to 1024 bits */
        struct sigcontext uc_mcontext;   /* 176 (16-aligned): */
    };
    struct sigcontext {
        unsigned long sc_regs[32];       /*   0: pc, ra, sp, gp, tp, t0.. = pc, x1..x31 */
        union __riscv_fp_state fp;       /* 256: 528 bytes (the Q layout's size);
                                            d: u64 f[32] @0, u32 fcsr @256;
                                            q.reserved[3] @516 must be 0 (since 6.5:
                                            sc_extdesc.reserved @516 and the END
                                            __riscv_ctx_hdr {magic 0, size 0} @520) */
    };

Verified (tests/test_sigframe.py) against ``offsetof``/``sizeof`` from a C
program built with ``riscv64-linux-gnu-gcc`` (glibc's ``ucontext_t`` and
``siginfo_t`` and the kernel uapi headers' ``struct ucontext``) and against
frames captured from a handler under qemu-riscv64.

The frame goes at ``(sp - 1088) & ~15`` below the interrupted sp, or below
the top of the alternate signal stack when the action has SA_ONSTACK, the
stack is enabled and sp is not already on it.  The handler starts with
sp = frame, a0 = signal, a1 = &frame.info, a2 = &frame.uc, ra = the
sigreturn trampoline (Linux: the vDSO's ``__vdso_rt_sigreturn``; riscv
ignores ``sa_restorer``), pc = handler.  Every other register keeps its
value, as on Linux.  (qemu-user's frame is smaller, 832 bytes, because it
does not reserve the Q layout's size; the offsets of every field are the
same.)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aotc.errors import GuestMemoryError
from aotc.isa.riscv64.state import GuestState

if TYPE_CHECKING:
    from runtime.guest_memory import GuestMemory

__all__ = [
    "SigInfo", "BadSigFrame", "siginfo_layout", "push_frame", "restore_frame", "on_altstack",
    "frame_address", "SIGRETURN_TRAMPOLINE", "SIGINFO_SIZE", "FRAME_SIZE", "UCONTEXT_SIZE",
]

# -- signal numbers (riscv64 uses the asm-generic numbering) -----------------
SIGILL = 4
SIGTRAP = 5
SIGBUS = 7
SIGFPE = 8
SIGKILL = 9
SIGSEGV = 11
SIGCHLD = 17
SIGSTOP = 19
SIGPOLL = SIGIO = 29
SIGSYS = 31

# -- si_code values (include/uapi/asm-generic/siginfo.h) ---------------------
SI_USER = 0          # kill, sigsend, raise (via kill)
SI_KERNEL = 0x80     # sent by the kernel
SI_QUEUE = -1        # sigqueue / rt_sigqueueinfo
SI_TIMER = -2        # POSIX timer expiry
SI_MESGQ = -3        # mq_notify
SI_ASYNCIO = -4      # AIO completion
SI_SIGIO = -5        # queued SIGIO
SI_TKILL = -6        # tkill, tgkill (glibc's and musl's raise)
SI_DETHREAD = -7     # execve killing subsidiary threads
SI_ASYNCNL = -60     # getaddrinfo_a

ILL_ILLOPC, ILL_ILLOPN, ILL_ILLADR, ILL_ILLTRP, ILL_PRVOPC, ILL_PRVREG, ILL_COPROC, ILL_BADSTK = range(1, 9)
FPE_INTDIV, FPE_INTOVF, FPE_FLTDIV, FPE_FLTOVF, FPE_FLTUND, FPE_FLTRES, FPE_FLTINV, FPE_FLTSUB = range(1, 9)
SEGV_MAPERR = 1      # address not mapped
SEGV_ACCERR = 2      # mapped, but the access is not permitted
BUS_ADRALN = 1
BUS_ADRERR = 2       # nonexistent physical address (a file page past EOF)
BUS_OBJERR = 3
BUS_MCEERR_AR = 4
BUS_MCEERR_AO = 5
TRAP_BRKPT = 1       # ebreak
TRAP_TRACE = 2
CLD_EXITED, CLD_KILLED, CLD_DUMPED, CLD_TRAPPED, CLD_STOPPED, CLD_CONTINUED = range(1, 7)
POLL_IN, POLL_OUT, POLL_MSG, POLL_ERR, POLL_PRI, POLL_HUP = range(1, 7)
SYS_SECCOMP = 1

# How many si_code values each signal defines (NSIGILL, ...): above them a
# positive si_code falls back to the kill layout (or poll, up to NSIGPOLL).
_SIG_SPECIFIC = {SIGILL: (11, "fault"), SIGFPE: (15, "fault"), SIGSEGV: (10, "fault"),
                 SIGBUS: (5, "fault"), SIGTRAP: (6, "fault"), SIGCHLD: (6, "chld"),
                 SIGPOLL: (6, "poll"), SIGSYS: (2, "sys")}
_NSIGPOLL = 6

# -- stack_t ------------------------------------------------------------------
SS_ONSTACK = 1
SS_DISABLE = 2
SS_AUTODISARM = 1 << 31
_STACK_T = struct.Struct("<QIIQ")          # ss_sp, ss_flags (int; kept unsigned here), (pad), ss_size
STACK_T_SIZE = _STACK_T.size               # 24

# -- frame layout (byte offsets) ----------------------------------------------
SIGINFO_SIZE = 128
SI_SIGNO, SI_ERRNO, SI_CODE = 0, 4, 8
SI_FIELDS = 16                             # the union (_sifields), 8-aligned on LP64

FRAME_INFO = 0
FRAME_UC = 128
UCONTEXT_SIZE = 960
FRAME_SIZE = 1088                          # sizeof(struct rt_sigframe)
UC_FLAGS = 0
UC_LINK = 8
UC_STACK = 16
UC_SIGMASK = 40
UC_SIGMASK_SIZE = 8                        # the kernel's sigset_t; glibc's is 128 bytes
UC_MCONTEXT = 176
MCONTEXT_SIZE = 784
SC_REGS = 0                                # 32 × u64: pc, x1..x31
SC_FPREGS = 256                            # union __riscv_fp_state, 528 bytes
FP_F = 0                                   # d.f[32] (u64 each)
FP_FCSR = 256                              # d.fcsr (u32)
FP_RESERVED = 516                          # q.reserved[3] / sc_extdesc.{reserved, hdr}
FP_RESERVED_SIZE = 12
FP_STATE_SIZE = 528

# Absolute offsets in the frame, for the runtime.
FRAME_SIGMASK = FRAME_UC + UC_SIGMASK
FRAME_STACK = FRAME_UC + UC_STACK
FRAME_REGS = FRAME_UC + UC_MCONTEXT + SC_REGS
FRAME_FREGS = FRAME_UC + UC_MCONTEXT + SC_FPREGS + FP_F
FRAME_FCSR = FRAME_UC + UC_MCONTEXT + SC_FPREGS + FP_FCSR
FRAME_FP_RESERVED = FRAME_UC + UC_MCONTEXT + SC_FPREGS + FP_RESERVED
assert FRAME_UC + UC_MCONTEXT + MCONTEXT_SIZE == FRAME_SIZE

NR_RT_SIGRETURN = 139
# li a7, 139 (addi a7, zero, 139); ecall -- uncompressed, like the vDSO's.
SIGRETURN_TRAMPOLINE: bytes = struct.pack("<II", 0x08B00893, 0x00000073)

_MASK64 = (1 << 64) - 1
_U64X32 = struct.Struct("<32Q")
_UNBLOCKABLE = (1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1))


class BadSigFrame(GuestMemoryError):
    """rt_sigreturn found a frame Linux refuses (nonzero reserved FP words):
    the guest gets SIGSEGV, as for an unreadable frame."""


def siginfo_layout(signo: int, code: int) -> str:
    """Which member of the ``_sifields`` union Linux uses for (signo, si_code)
    (kernel/signal.c: siginfo_layout): "kill" (pid, uid), "timer" (tid,
    overrun, value), "rt" (pid, uid, value), "chld" (pid, uid, status,
    utime, stime), "fault" (addr), "fault_mceerr" (addr, addr_lsb), "poll"
    (band, fd) or "sys" (call_addr, syscall, arch)."""
    if SI_USER < code < SI_KERNEL:
        spec = _SIG_SPECIFIC.get(signo)
        if spec is not None and code <= spec[0]:
            if signo == SIGBUS and code in (BUS_MCEERR_AR, BUS_MCEERR_AO):
                return "fault_mceerr"
            return spec[1]
        if code <= _NSIGPOLL:
            return "poll"
        return "kill"
    if code == SI_TIMER:
        return "timer"
    if code == SI_SIGIO:
        return "poll"
    if code < 0:
        return "rt"
    return "kill"


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


@dataclass
class SigInfo:
    """A ``siginfo_t`` (128 bytes).  Only the fields of the union member
    ``siginfo_layout(signo, code)`` selects are packed (the rest is zero,
    as Linux clears a siginfo before filling it); ``value`` is the whole
    ``sigval`` (``sival_ptr``; ``sival_int`` is its low 32 bits).  For
    SIGSYS ``addr`` is ``si_call_addr``."""

    signo: int
    code: int
    errno: int = 0
    addr: int = 0
    pid: int = 0
    uid: int = 0
    status: int = 0
    value: int = 0
    timerid: int = 0
    overrun: int = 0
    utime: int = 0
    stime: int = 0
    band: int = 0
    fd: int = 0
    syscall: int = 0
    arch: int = 0
    addr_lsb: int = 0

    @property
    def layout(self) -> str:
        return siginfo_layout(self.signo, self.code)

    def pack(self) -> bytes:
        out = bytearray(SIGINFO_SIZE)
        struct.pack_into("<iii", out, 0, _s32(self.signo), _s32(self.errno), _s32(self.code))
        f = SI_FIELDS
        kind = self.layout
        if kind == "kill":
            struct.pack_into("<iI", out, f, _s32(self.pid), self.uid & 0xFFFFFFFF)
        elif kind == "rt":
            struct.pack_into("<iIQ", out, f, _s32(self.pid), self.uid & 0xFFFFFFFF, self.value & _MASK64)
        elif kind == "timer":
            struct.pack_into("<iiQ", out, f, _s32(self.timerid), _s32(self.overrun), self.value & _MASK64)
        elif kind == "chld":
            struct.pack_into("<iIi4xqq", out, f, _s32(self.pid), self.uid & 0xFFFFFFFF,
                             _s32(self.status), self.utime, self.stime)
        elif kind in ("fault", "fault_mceerr"):
            struct.pack_into("<Q", out, f, self.addr & _MASK64)
            if kind == "fault_mceerr":
                struct.pack_into("<h", out, f + 8, self.addr_lsb)
        elif kind == "poll":
            struct.pack_into("<qi", out, f, self.band, _s32(self.fd))
        elif kind == "sys":
            struct.pack_into("<QiI", out, f, self.addr & _MASK64, _s32(self.syscall), self.arch & 0xFFFFFFFF)
        return bytes(out)

    @classmethod
    def unpack(cls, raw: bytes) -> SigInfo:
        """Decode a guest siginfo (rt_sigqueueinfo, rt_tgsigqueueinfo): the
        header and the fields of the union member its signo/code select."""
        if len(raw) < SIGINFO_SIZE:
            raise ValueError(f"a siginfo_t is {SIGINFO_SIZE} bytes, got {len(raw)}")
        signo, errno, code = struct.unpack_from("<iii", raw, 0)
        info = cls(signo, code, errno)
        f = SI_FIELDS
        kind = info.layout
        if kind == "kill":
            info.pid, info.uid = struct.unpack_from("<iI", raw, f)
        elif kind == "rt":
            info.pid, info.uid, info.value = struct.unpack_from("<iIQ", raw, f)
        elif kind == "timer":
            info.timerid, info.overrun, info.value = struct.unpack_from("<iiQ", raw, f)
        elif kind == "chld":
            info.pid, info.uid, info.status, info.utime, info.stime = struct.unpack_from("<iIi4xqq", raw, f)
        elif kind in ("fault", "fault_mceerr"):
            (info.addr,) = struct.unpack_from("<Q", raw, f)
            if kind == "fault_mceerr":
                (info.addr_lsb,) = struct.unpack_from("<h", raw, f + 8)
        elif kind == "poll":
            info.band, info.fd = struct.unpack_from("<qi", raw, f)
        elif kind == "sys":
            info.addr, info.syscall, info.arch = struct.unpack_from("<QiI", raw, f)
        return info


def on_altstack(sp: int, altstack: tuple[int, int, int]) -> bool:
    """Linux's on_sig_stack(): sp in (ss_sp, ss_sp + ss_size] (the stack
    grows down, so its top counts and its bottom does not).  Never true for
    a disabled stack or one with SS_AUTODISARM."""
    ss_sp, flags, size = altstack
    if size == 0 or flags & SS_DISABLE or flags & SS_AUTODISARM:
        return False
    return ss_sp < sp and sp - ss_sp <= size


def _altstack_enabled(altstack: tuple[int, int, int]) -> bool:
    _ss_sp, flags, size = altstack
    return size != 0 and not flags & SS_DISABLE


def frame_address(sp: int, altstack: tuple[int, int, int], use_altstack: bool) -> int:
    """Where Linux puts the frame (get_sigframe); GuestMemoryError if the
    interrupted sp is on the alternate stack and the frame would overflow it
    (Linux then kills the process with SIGSEGV)."""
    if on_altstack(sp, altstack) and not on_altstack(sp - FRAME_SIZE, altstack):
        raise GuestMemoryError(sp - FRAME_SIZE, FRAME_SIZE)
    if use_altstack and _altstack_enabled(altstack) and not on_altstack(sp, altstack):
        sp = altstack[0] + altstack[2]
    return ((sp - FRAME_SIZE) & ~0xF) & _MASK64


REQUIRES_RESTORER = False      # riscv64 handlers return to the kernel's trampoline


def stack_pointer(state: GuestState) -> int:
    return state.x[2]


def push_frame(mem: GuestMemory, state: GuestState, info: SigInfo, *, blocked: int,
               altstack: tuple[int, int, int], use_altstack: bool, restorer: int,
               handler: int, sig: int) -> int:
    """Deliver a signal to ``state``: write an rt_sigframe into guest memory
    and point the registers at the handler; returns the frame address.

    ``state.pc`` must already be where the guest resumes after the handler
    (the faulting instruction, or the instruction after an ecall whose
    result is in a0).  ``blocked`` is the mask to restore on return (the one
    before the handler's sa_mask was added); ``altstack`` is (ss_sp,
    ss_flags, ss_size) as sigaltstack set it, saved in uc_stack with
    SS_ONSTACK added when the interrupted sp is on it; ``use_altstack`` is
    the action's SA_ONSTACK.  ``restorer`` is the guest address of
    ``SIGRETURN_TRAMPOLINE``.  A frame that does not fit in writable guest
    memory raises GuestMemoryError (Linux: SIGSEGV) and changes nothing.
    The caller applies SS_AUTODISARM (reset the altstack) and the new mask.
    """
    sp = state.x[2]
    frame = frame_address(sp, altstack, use_altstack)
    ss_sp, ss_flags, ss_size = altstack
    if on_altstack(sp, altstack):
        ss_flags |= SS_ONSTACK
    buf = bytearray(FRAME_SIZE)
    buf[FRAME_INFO:FRAME_INFO + SIGINFO_SIZE] = info.pack()
    # uc_flags = 0, uc_link = NULL
    _STACK_T.pack_into(buf, FRAME_STACK, ss_sp & _MASK64, ss_flags & 0xFFFFFFFF, 0, ss_size & _MASK64)
    struct.pack_into("<Q", buf, FRAME_SIGMASK, blocked & _MASK64)
    _U64X32.pack_into(buf, FRAME_REGS, state.pc, *state.x[1:32])
    _U64X32.pack_into(buf, FRAME_FREGS, *state.f[0:32])
    struct.pack_into("<I", buf, FRAME_FCSR, state.fcsr & 0xFF)
    # The reserved FP words and the END context header stay zero.
    mem.write(frame, bytes(buf))
    state.x[2] = frame
    state.x[10] = sig & _MASK64
    state.x[11] = frame + FRAME_INFO
    state.x[12] = frame + FRAME_UC
    state.x[1] = restorer & _MASK64
    state.pc = handler & _MASK64
    state.reservation = _MASK64   # a trap breaks any LR reservation
    return frame


def restore_frame(mem: GuestMemory, state: GuestState) -> tuple[int, tuple[int, int, int]]:
    """rt_sigreturn: read the frame at ``state.x[2]`` (sp), restore pc,
    x1..x31, f0..f31 and fcsr into ``state``; return (signal mask, uc_stack
    as (ss_sp, ss_flags unsigned 32-bit, ss_size)) for the caller to apply
    (Linux applies the altstack through sigaltstack and ignores its errors).  SIGKILL and
    SIGSTOP are dropped from the mask.  a0 is the restored one: the caller
    must not store a syscall result over it.  An unreadable frame raises
    GuestMemoryError, a malformed one BadSigFrame (Linux: SIGSEGV); state
    is then unchanged."""
    frame = state.x[2]
    raw = mem.read(frame, FRAME_SIZE)
    if any(raw[FRAME_FP_RESERVED:FRAME_FP_RESERVED + FP_RESERVED_SIZE]):
        raise BadSigFrame(frame + FRAME_FP_RESERVED, FP_RESERVED_SIZE)
    (mask,) = struct.unpack_from("<Q", raw, FRAME_SIGMASK)
    ss_sp, ss_flags, _pad, ss_size = _STACK_T.unpack_from(raw, FRAME_STACK)
    regs = _U64X32.unpack_from(raw, FRAME_REGS)
    fregs = _U64X32.unpack_from(raw, FRAME_FREGS)
    (fcsr,) = struct.unpack_from("<I", raw, FRAME_FCSR)
    state.pc = regs[0]
    for i in range(1, 32):
        state.x[i] = regs[i]
    for i in range(32):
        state.f[i] = fregs[i]
    state.fcsr = fcsr & 0xFF
    state.reservation = _MASK64
    return mask & ~_UNBLOCKABLE, (ss_sp, ss_flags, ss_size)
