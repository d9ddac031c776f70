"""The x86_64 Linux signal frame (KVM guests): ``struct rt_sigframe``, its
XSAVE area, and rt_sigreturn.

What Linux (arch/x86/kernel/signal.c, signal_64.c, fpu/signal.c) writes on
the user stack when it delivers a signal to a 64-bit task, and reads back in
``rt_sigreturn``::

    struct rt_sigframe {                 /* 440 bytes */
        char *pretcode;                  /*   0: sa_restorer (the handler's return address) */
        struct ucontext uc;              /*   8: 304 bytes */
        struct siginfo info;             /* 312: 128 bytes */
    };
    struct ucontext {
        unsigned long uc_flags;          /*   0: UC_FP_XSTATE|UC_SIGCONTEXT_SS|UC_STRICT_RESTORE_SS */
        struct ucontext *uc_link;        /*   8: NULL */
        stack_t uc_stack;                /*  16: ss_sp, int ss_flags @8, ss_size @16 */
        struct sigcontext uc_mcontext;   /*  40: 256 bytes */
        sigset_t uc_sigmask;             /* 296: 8 bytes */
    };
    struct sigcontext {                  /* glibc's gregs[] order */
        u64 r8..r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags;  /* 0..143 */
        u16 cs, gs, fs, ss;              /* 144 */
        u64 err, trapno, oldmask, cr2;   /* 152 */
        u64 fpstate;                     /* 184: the XSAVE area below */
        u64 reserved1[8];                /* 192 */
    };

Below the 128-byte red zone (or at the top of the alternate stack) comes
the XSAVE image (standard format, 64-byte aligned; ``sw_reserved`` at 464
holds ``struct _fpx_sw_bytes`` {FP_XSTATE_MAGIC1, extended_size, xfeatures,
xstate_size}, FP_XSTATE_MAGIC2 follows the image), then the frame at
``round_down(sp, 16) - 8`` (so rsp + 8 is 16-aligned at the handler's
entry, as after a call).  The handler starts with rdi = signal, rsi =
&info, rdx = &uc, rax = 0, rsp = frame, rip = handler, DF/TF/RF cleared,
and the FPU in its initial state.  x86_64 handlers must have SA_RESTORER
(glibc always sets it); without one Linux forces SIGSEGV.

``state`` is the KVM engine's per-thread ``X86State`` (runtime/kvm/vm.py):
``ctx`` (a ``kvm_regs`` with the user context), ``get_xsave()`` /
``set_xsave()`` (the vCPU's standard-format XSAVE area), ``xstate_size``,
``xfeatures``, and ``trapno``/``err``/``cr2`` of a fault being delivered.
"""

from __future__ import annotations

import struct

from aotc.errors import GuestMemoryError
from runtime.linux.sigframe import BadSigFrame, on_altstack, SigInfo  # noqa: F401  (re-exported)

FRAME_SIZE = 440
FRAME_UC = 8
FRAME_INFO = 312
UC_FLAGS, UC_LINK, UC_STACK, UC_MCONTEXT, UC_SIGMASK = 0, 8, 16, 40, 296
SC = FRAME_UC + UC_MCONTEXT
SC_CS, SC_ERR, SC_TRAPNO, SC_OLDMASK, SC_CR2, SC_FPSTATE = 144, 152, 160, 168, 176, 184
# kvm_regs field names in sigcontext order (offsets 0..143)
SC_REGS = ("r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rdi", "rsi", "rbp", "rbx",
           "rdx", "rax", "rcx", "rsp", "rip", "rflags")
UC_FP_XSTATE, UC_SIGCONTEXT_SS, UC_STRICT_RESTORE_SS = 1, 2, 4
FP_XSTATE_MAGIC1, FP_XSTATE_MAGIC2 = 0x46505853, 0x46505845
SW_RESERVED = 464                     # struct _fpx_sw_bytes in the FXSAVE area
XSTATE_HEADER = 512
FXSAVE_SIZE = 512
REDZONE = 128
# Flags rt_sigreturn takes from the frame (FIX_EFLAGS): AC OF DF TF SF ZF AF PF CF RF
FIX_EFLAGS = 0x40000 | 0x800 | 0x400 | 0x100 | 0x80 | 0x40 | 0x10 | 0x4 | 0x1 | 0x10000
EFLAGS_DF, EFLAGS_TF, EFLAGS_RF = 0x400, 0x100, 0x10000
SEL_UCODE, SEL_UDATA = 0x2B, 0x23
REQUIRES_RESTORER = True

_SS_ONSTACK, _SS_DISABLE, _SS_AUTODISARM = 1, 2, 1 << 31
_MASK64 = (1 << 64) - 1
_UNBLOCKABLE = (1 << 8) | (1 << 18)   # SIGKILL, SIGSTOP
_REGS = struct.Struct("<18Q")
_STACK_T = struct.Struct("<QIIQ")


def stack_pointer(state) -> int:
    return state.ctx.rsp


def _sas_flags(sp: int, altstack: tuple[int, int, int]) -> int:
    ss_sp, flags, size = altstack
    if not size or flags & _SS_DISABLE:
        return _SS_DISABLE
    return _SS_ONSTACK if on_altstack(sp, altstack) else 0


def frame_address(sp: int, altstack: tuple[int, int, int], use_altstack: bool,
                  math_size: int) -> tuple[int, int]:
    """(frame, fpstate) as get_sigframe places them; GuestMemoryError where
    Linux answers with its always-bogus address (an overflowing altstack)."""
    nested = on_altstack(sp, altstack)
    entering = False
    sp -= REDZONE
    if use_altstack and _sas_flags(sp, altstack) == 0:
        sp = altstack[0] + altstack[2]
        entering = True
    fp = (sp - math_size) & ~63
    frame = ((fp - FRAME_SIZE) & ~15) - 8
    if (nested or entering) and not on_altstack(frame, altstack):
        raise GuestMemoryError(frame, FRAME_SIZE)
    return frame & _MASK64, fp & _MASK64


def init_xsave() -> bytes:
    """The FPU as a signal handler starts with it (fpu__clear_user_states):
    FCW 0x37f, MXCSR 0x1f80, every register zero, x87|SSE in XSTATE_BV."""
    buf = bytearray(4096)
    struct.pack_into("<H", buf, 0, 0x37F)
    struct.pack_into("<I", buf, 24, 0x1F80)
    struct.pack_into("<Q", buf, XSTATE_HEADER, 3)
    return bytes(buf)


def push_frame(mem, state, info: SigInfo, *, blocked: int, altstack: tuple[int, int, int],
               use_altstack: bool, restorer: int, handler: int, sig: int) -> int:
    """Deliver a signal to ``state``: the XSAVE image and the rt_sigframe go
    on the guest stack, ``state.ctx`` becomes the handler's context and the
    FPU its initial state; returns the frame address.  ``state.ctx`` must
    be the interrupted user context (rip where the guest resumes).  No
    restorer, or no room for the frame, raises GuestMemoryError (Linux:
    SIGSEGV) and changes nothing."""
    if not restorer:
        raise GuestMemoryError(0, FRAME_SIZE)            # x86_64 requires SA_RESTORER
    ctx = state.ctx
    sp = ctx.rsp
    xsize = state.xstate_size
    frame, fp = frame_address(sp, altstack, use_altstack, xsize + 4)
    xsave = bytearray(state.get_xsave()[:xsize])
    struct.pack_into("<IIQI28x", xsave, SW_RESERVED, FP_XSTATE_MAGIC1, xsize + 4,
                     state.xfeatures, xsize)
    bv = struct.unpack_from("<Q", xsave, XSTATE_HEADER)[0] | 3      # FP|SSE, as Linux does
    struct.pack_into("<Q", xsave, XSTATE_HEADER, bv)
    xsave += struct.pack("<I", FP_XSTATE_MAGIC2)
    buf = bytearray(FRAME_SIZE)
    struct.pack_into("<Q", buf, 0, restorer & _MASK64)
    struct.pack_into("<QQ", buf, FRAME_UC + UC_FLAGS,
                     UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS, 0)
    ss_sp, ss_flags, ss_size = altstack
    _STACK_T.pack_into(buf, FRAME_UC + UC_STACK, ss_sp & _MASK64,
                       _sas_flags(sp, altstack) | (ss_flags & _SS_AUTODISARM), 0, ss_size & _MASK64)
    _REGS.pack_into(buf, SC, *(getattr(ctx, n) & _MASK64 for n in SC_REGS))
    struct.pack_into("<HHHH", buf, SC + SC_CS, SEL_UCODE, 0, 0, SEL_UDATA)
    struct.pack_into("<QQQQQ", buf, SC + SC_ERR, state.err & _MASK64, state.trapno & _MASK64,
                     blocked & 0xFFFFFFFF, state.cr2 & _MASK64, fp)
    struct.pack_into("<Q", buf, FRAME_UC + UC_SIGMASK, blocked & _MASK64)
    buf[FRAME_INFO:FRAME_INFO + 128] = info.pack()
    mem.write(fp, bytes(xsave))
    mem.write(frame, bytes(buf))
    ctx.rdi = sig & _MASK64
    ctx.rax = 0
    ctx.rsi = frame + FRAME_INFO
    ctx.rdx = frame + FRAME_UC
    ctx.rip = handler & _MASK64
    ctx.rsp = frame
    ctx.rflags &= ~(EFLAGS_DF | EFLAGS_TF | EFLAGS_RF)
    state.set_xsave(init_xsave())
    state.frame_pushed = True
    return frame


def restore_frame(mem, state) -> tuple[int, tuple[int, int, int]]:
    """rt_sigreturn: the frame is at rsp - 8 (the handler's ``ret`` popped
    pretcode).  Restores every general register, rip, rsp, the flags Linux
    lets a frame change, and the FPU/XSAVE state; returns (signal mask,
    uc_stack) like the riscv64 ``restore_frame``.  An unreadable frame
    raises GuestMemoryError, a malformed one BadSigFrame; state is then
    unchanged."""
    ctx = state.ctx
    frame = (ctx.rsp - 8) & _MASK64
    raw = mem.read(frame, FRAME_SIZE)
    values = _REGS.unpack_from(raw, SC)
    (fp,) = struct.unpack_from("<Q", raw, SC + SC_FPSTATE)
    (mask,) = struct.unpack_from("<Q", raw, FRAME_UC + UC_SIGMASK)
    ss_sp, ss_flags, _pad, ss_size = _STACK_T.unpack_from(raw, FRAME_UC + UC_STACK)
    if fp:
        if fp & 63:
            raise BadSigFrame(fp, FXSAVE_SIZE)
        fx = bytearray(mem.read(fp, FXSAVE_SIZE))
        magic1, ext, xfeat, xsize = struct.unpack_from("<IIQI", fx, SW_RESERVED)
        full = (magic1 == FP_XSTATE_MAGIC1 and xsize == state.xstate_size and ext == xsize + 4
                and struct.unpack("<I", mem.read(fp + xsize, 4))[0] == FP_XSTATE_MAGIC2)
        if full:
            img = bytearray(mem.read(fp, xsize))
            bv = struct.unpack_from("<Q", img, XSTATE_HEADER)[0] & xfeat & state.xfeatures
            img[XSTATE_HEADER:XSTATE_HEADER + 64] = struct.pack("<Q", bv) + bytes(56)
        else:                                           # an FXSAVE image only: x87 and SSE
            img = fx + struct.pack("<Q", 3) + bytes(56)
        img[SW_RESERVED:FXSAVE_SIZE] = bytes(FXSAVE_SIZE - SW_RESERVED)
        mxcsr = struct.unpack_from("<I", img, 24)[0]
        if mxcsr & ~0xFFFF:
            raise BadSigFrame(fp + 24, 4)
        xsave = bytes(img) + bytes(4096 - len(img))
    else:
        xsave = init_xsave()
    for name, v in zip(SC_REGS[:17], values[:17]):
        setattr(ctx, name, v)
    ctx.rflags = (ctx.rflags & ~FIX_EFLAGS) | (values[17] & FIX_EFLAGS) | 2
    state.set_xsave(xsave)
    return mask & ~_UNBLOCKABLE, (ss_sp, ss_flags, ss_size)
