"""runtime/linux/sigframe.py against the real riscv64 layout.

The offsets come from a C program built with riscv64-linux-gnu-gcc (glibc's
``ucontext_t``/``siginfo_t``/``stack_t`` and the kernel uapi headers'
``struct ucontext``/``sigcontext``) run under qemu-riscv64; the contents of
frames come from a second program whose SA_SIGINFO handler copies the
siginfo and ucontext it was given (under qemu-riscv64, which builds frames
as Linux does).  Without riscv64-linux-gnu-gcc or qemu-riscv64 those tests
skip; the rest (round trips, alignment, altstack choice, siginfo bytes
captured once from the same program) always run.
"""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from aotc.errors import GuestMemoryError
from aotc.isa.riscv64.state import GuestState
from runtime.guest_memory import PROT_READ, PROT_WRITE, GuestMemory
from runtime.linux import sigframe as sf
from runtime.linux.sigframe import SigInfo

# -- the C programs -----------------------------------------------------------

_LAYOUT_GLIBC_C = r'''#define _GNU_SOURCE
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <ucontext.h>

void kernel_layout(void (*emit)(const char *, long));

static void emit(const char *name, long v) { printf("%s %ld\n", name, v); }
#define OFF(T, f) emit(#T "." #f, (long)offsetof(T, f))
#define SZ(T) emit("sizeof." #T, (long)sizeof(T))

int main(void) {
    SZ(siginfo_t);
    OFF(siginfo_t, si_signo); OFF(siginfo_t, si_errno); OFF(siginfo_t, si_code);
    OFF(siginfo_t, si_pid); OFF(siginfo_t, si_uid); OFF(siginfo_t, si_status);
    OFF(siginfo_t, si_utime); OFF(siginfo_t, si_stime);
    OFF(siginfo_t, si_value); OFF(siginfo_t, si_int); OFF(siginfo_t, si_ptr);
    OFF(siginfo_t, si_timerid); OFF(siginfo_t, si_overrun);
    OFF(siginfo_t, si_addr); OFF(siginfo_t, si_addr_lsb);
    OFF(siginfo_t, si_band); OFF(siginfo_t, si_fd);
    OFF(siginfo_t, si_call_addr); OFF(siginfo_t, si_syscall); OFF(siginfo_t, si_arch);
    SZ(stack_t);
    OFF(stack_t, ss_sp); OFF(stack_t, ss_flags); OFF(stack_t, ss_size);
    SZ(ucontext_t); SZ(mcontext_t);
    OFF(ucontext_t, __uc_flags); OFF(ucontext_t, uc_link); OFF(ucontext_t, uc_stack);
    OFF(ucontext_t, uc_sigmask); OFF(ucontext_t, uc_mcontext);
    OFF(mcontext_t, __gregs); OFF(mcontext_t, __fpregs);
    OFF(mcontext_t, __fpregs.__d.__f); OFF(mcontext_t, __fpregs.__d.__fcsr);
    emit("sizeof.fpregs", (long)sizeof(((mcontext_t *)0)->__fpregs));
    emit("alignof.ucontext_t", (long)_Alignof(ucontext_t));
    emit("SS_ONSTACK", SS_ONSTACK); emit("SS_DISABLE", SS_DISABLE);
    emit("SI_USER", SI_USER); emit("SI_KERNEL", SI_KERNEL); emit("SI_QUEUE", SI_QUEUE);
    emit("SI_TIMER", SI_TIMER); emit("SI_MESGQ", SI_MESGQ); emit("SI_ASYNCIO", SI_ASYNCIO);
    emit("SI_SIGIO", SI_SIGIO); emit("SI_TKILL", SI_TKILL);
    emit("SEGV_MAPERR", SEGV_MAPERR); emit("SEGV_ACCERR", SEGV_ACCERR);
    emit("BUS_ADRALN", BUS_ADRALN); emit("BUS_ADRERR", BUS_ADRERR); emit("BUS_OBJERR", BUS_OBJERR);
    emit("ILL_ILLOPC", ILL_ILLOPC); emit("TRAP_BRKPT", TRAP_BRKPT); emit("TRAP_TRACE", TRAP_TRACE);
    emit("FPE_INTDIV", FPE_INTDIV);
    emit("CLD_EXITED", CLD_EXITED); emit("CLD_KILLED", CLD_KILLED); emit("CLD_DUMPED", CLD_DUMPED);
    emit("CLD_TRAPPED", CLD_TRAPPED); emit("CLD_STOPPED", CLD_STOPPED); emit("CLD_CONTINUED", CLD_CONTINUED);
    emit("POLL_IN", POLL_IN);
    kernel_layout(emit);
    return 0;
}
'''

_LAYOUT_KERNEL_C = r'''#include <stddef.h>
#include <linux/types.h>
#include <asm/signal.h>
#include <asm/siginfo.h>
#include <asm/ptrace.h>
#include <asm/sigcontext.h>
#include <asm/ucontext.h>
#include <asm/unistd.h>

#define OFF(T, f) emit("k." #T "." #f, (long)offsetof(T, f))
#define SZ(T) emit("k.sizeof." #T, (long)sizeof(T))
typedef struct ucontext kuc;
typedef struct sigcontext ksc;
typedef struct user_regs_struct kregs;
typedef union __riscv_fp_state kfp;
typedef struct { siginfo_t info; struct ucontext uc; } rt_sigframe;

void kernel_layout(void (*emit)(const char *, long)) {
    SZ(siginfo_t); SZ(sigset_t); SZ(stack_t);
    SZ(kuc); SZ(ksc); SZ(kregs); SZ(kfp); SZ(rt_sigframe);
    OFF(rt_sigframe, info); OFF(rt_sigframe, uc);
    OFF(kuc, uc_flags); OFF(kuc, uc_link); OFF(kuc, uc_stack); OFF(kuc, uc_sigmask);
    OFF(kuc, __unused); OFF(kuc, uc_mcontext);
    OFF(ksc, sc_regs); OFF(ksc, sc_fpregs);
    OFF(kregs, pc); OFF(kregs, ra); OFF(kregs, sp); OFF(kregs, gp); OFF(kregs, tp);
    OFF(kregs, t0); OFF(kregs, t2); OFF(kregs, s0); OFF(kregs, s1); OFF(kregs, a0);
    OFF(kregs, a7); OFF(kregs, s2); OFF(kregs, s11); OFF(kregs, t3); OFF(kregs, t6);
    OFF(kfp, d.f); OFF(kfp, d.fcsr); OFF(kfp, q.f); OFF(kfp, q.fcsr); OFF(kfp, q.reserved);
    OFF(kfp, f.fcsr);
    emit("k.__NR_rt_sigreturn", __NR_rt_sigreturn);
}
'''

_CAPTURE_C = r'''#define _GNU_SOURCE
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

static unsigned char got_info[128];
static unsigned char got_uc[sizeof(ucontext_t)];
static uintptr_t got_info_addr, got_uc_addr, got_local_addr;
static volatile sig_atomic_t got;
static sigjmp_buf jb;
static int jump_out;

static void handler(int sig, siginfo_t *si, void *uc) {
    volatile char local = 0;
    memcpy(got_info, si, 128);
    memcpy(got_uc, uc, sizeof(ucontext_t));
    got_info_addr = (uintptr_t)si; got_uc_addr = (uintptr_t)uc;
    got_local_addr = (uintptr_t)&local;
    got = sig;
    if (jump_out) siglongjmp(jb, 1);
}

static void on(int sig, int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO | flags;
    sigaction(sig, &sa, 0);
}

static void hex(const char *tag, const unsigned char *p, size_t n) {
    printf("%s ", tag);
    for (size_t i = 0; i < n; i++) printf("%02x", p[i]);
    printf("\n");
}

/* info NAME HEX / fields NAME k=v ... : the raw bytes and glibc's view. */
static void dump_info(const char *name) {
    siginfo_t si;
    memcpy(&si, got_info, sizeof si);
    char tag[64];
    snprintf(tag, sizeof tag, "info %s", name);
    hex(tag, got_info, 128);
    printf("fields %s signo=%d errno=%d code=%d pid=%d uid=%u status=%d utime=%ld stime=%ld "
           "value=%lu addr=%lu timerid=%d overrun=%d\n", name, si.si_signo, si.si_errno, si.si_code,
           si.si_pid, si.si_uid, si.si_status, (long)si.si_utime, (long)si.si_stime,
           (unsigned long)si.si_value.sival_ptr, (unsigned long)si.si_addr, si.si_timerid,
           si.si_overrun);
}

/* Registers: trigger(tid, sig, &saved_sp) sets x5..x31 (but sp, gp, tp, a0, a1, a7),
   ra, f0..f31 and fcsr to patterns, stores its sp and issues tkill. */
extern void trigger(long tid, long sig, uintptr_t *sp_out, uintptr_t *pc_out);
__asm__(
".text\n.globl trigger\ntrigger:\n"
"  addi sp, sp, -256\n"
"  sd ra, 0(sp)\n sd s0, 8(sp)\n sd s1, 16(sp)\n sd s2, 24(sp)\n sd s3, 32(sp)\n sd s4, 40(sp)\n"
"  sd s5, 48(sp)\n sd s6, 56(sp)\n sd s7, 64(sp)\n sd s8, 72(sp)\n sd s9, 80(sp)\n sd s10, 88(sp)\n sd s11, 96(sp)\n"
"  fsd fs0, 104(sp)\n fsd fs1, 112(sp)\n fsd fs2, 120(sp)\n fsd fs3, 128(sp)\n fsd fs4, 136(sp)\n fsd fs5, 144(sp)\n"
"  fsd fs6, 152(sp)\n fsd fs7, 160(sp)\n fsd fs8, 168(sp)\n fsd fs9, 176(sp)\n fsd fs10, 184(sp)\n fsd fs11, 192(sp)\n"
"  frcsr t0\n sd t0, 200(sp)\n"
"  sd sp, 0(a2)\n"
"  lla t0, 1f\n sd t0, 0(a3)\n"
"  .irp n,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31\n"
"  li t0, 0xf00000000000f000 + \\n * 0x0001000000000001\n fmv.d.x f\\n, t0\n"
"  .endr\n"
"  li t0, 0x61\n fscsr t0\n"
"  li ra, 0x0100000000000001\n"
"  .irp n,5,6,7,8,9,12,13,14,15,16,18,19,20,21,22,23,24,25,26,27,28,29,30,31\n"
"  li x\\n, 0x0000000000000000 + \\n * 0x0100000000000001\n"
"  .endr\n"
"  li a7, 130\n ecall\n"
"1:\n"
"  ld t0, 200(sp)\n fscsr t0\n"
"  ld ra, 0(sp)\n ld s0, 8(sp)\n ld s1, 16(sp)\n ld s2, 24(sp)\n ld s3, 32(sp)\n ld s4, 40(sp)\n"
"  ld s5, 48(sp)\n ld s6, 56(sp)\n ld s7, 64(sp)\n ld s8, 72(sp)\n ld s9, 80(sp)\n ld s10, 88(sp)\n ld s11, 96(sp)\n"
"  fld fs0, 104(sp)\n fld fs1, 112(sp)\n fld fs2, 120(sp)\n fld fs3, 128(sp)\n fld fs4, 136(sp)\n fld fs5, 144(sp)\n"
"  fld fs6, 152(sp)\n fld fs7, 160(sp)\n fld fs8, 168(sp)\n fld fs9, 176(sp)\n fld fs10, 184(sp)\n fld fs11, 192(sp)\n"
"  addi sp, sp, 256\n ret\n");

static void dump_uc(const char *name, uintptr_t sp) {
    char tag[64];
    printf("frame %s info_to_uc=%ld sp_minus_info=%lu info_align=%lu\n", name,
           (long)(got_uc_addr - got_info_addr), (unsigned long)(sp - got_info_addr),
           (unsigned long)(got_info_addr & 15));
    snprintf(tag, sizeof tag, "uc %s", name);
    hex(tag, got_uc, sizeof got_uc);
}

static char altbuf[65536] __attribute__((aligned(16)));

static void alt_handler(int sig, siginfo_t *si, void *uc) {
    volatile char local = 0;
    ucontext_t *u = uc;
    uintptr_t lo = (uintptr_t)altbuf, hi = lo + sizeof altbuf;
    printf("alt sig=%d on_alt=%d ss_flags=%d ss_sp_is_buf=%d ss_size=%lu hi_minus_info=%lu\n", sig,
           (uintptr_t)&local >= lo && (uintptr_t)&local < hi, u->uc_stack.ss_flags,
           u->uc_stack.ss_sp == altbuf, (unsigned long)u->uc_stack.ss_size,
           (unsigned long)(hi - (uintptr_t)si));
    if (sig == SIGUSR2) raise(SIGURG);
}

int main(void) {
    setvbuf(stdout, 0, _IOLBF, 0);
    printf("pid %d uid %u\n", getpid(), getuid());
    on(SIGUSR1, 0); on(SIGUSR2, 0); on(SIGSEGV, 0); on(SIGCHLD, 0); on(SIGALRM, 0);
    on(SIGTRAP, 0); on(SIGILL, 0); on(SIGBUS, 0);

    kill(getpid(), SIGUSR1); dump_info("kill");
    raise(SIGUSR1); dump_info("tkill");
    union sigval v; v.sival_ptr = (void *)0x1122334455667788UL;
    sigqueue(getpid(), SIGUSR2, v); dump_info("sigqueue");
    jump_out = 1;
    if (!sigsetjmp(jb, 1)) *(volatile int *)16 = 1;
    dump_info("segv_maperr");
    char *p = mmap(0, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("prot_none_page %lu\n", (unsigned long)p);
    if (!sigsetjmp(jb, 1)) (void)*(volatile char *)(p + 24);
    dump_info("segv_accerr");
    if (!sigsetjmp(jb, 1)) __asm__ volatile("ebreak");
    dump_info("trap");
    if (!sigsetjmp(jb, 1)) __asm__ volatile(".4byte 0");
    dump_info("ill");
    {
        char path[] = "/tmp/sfbusXXXXXX";
        int fd = mkstemp(path); unlink(path);
        ftruncate(fd, 100);
        char *m = mmap(0, 8192, PROT_READ, MAP_SHARED, fd, 0);
        printf("bus_page %lu\n", (unsigned long)m);
        if (!sigsetjmp(jb, 1)) (void)*(volatile char *)(m + 4096 + 8);
        dump_info("bus");
        close(fd);
    }
    jump_out = 0;
    {
        sigset_t b, o; sigemptyset(&b); sigaddset(&b, SIGCHLD); sigprocmask(SIG_BLOCK, &b, &o);
        pid_t c = fork();
        if (c == 0) _exit(7);
        printf("child1 %d\n", c);
        sigsuspend(&o); dump_info("chld_exited");
        waitpid(c, 0, 0);
        c = fork();
        if (c == 0) { for (;;) pause(); }
        printf("child2 %d\n", c);
        kill(c, SIGKILL);
        sigsuspend(&o); dump_info("chld_killed");
        waitpid(c, 0, 0);
        sigprocmask(SIG_SETMASK, &o, 0);
    }
    {
        timer_t t; struct sigevent ev; memset(&ev, 0, sizeof ev);
        ev.sigev_notify = SIGEV_SIGNAL; ev.sigev_signo = SIGALRM; ev.sigev_value.sival_ptr = (void *)0x5566UL;
        timer_create(CLOCK_MONOTONIC, &ev, &t);
        struct itimerspec its = {{0, 0}, {0, 1000000}};
        got = 0;
        timer_settime(t, 0, &its, 0);
        while (!got) ;
        dump_info("timer");
        timer_delete(t);
    }
    {
        sigset_t b; sigemptyset(&b); sigaddset(&b, SIGUSR2); 
        sigprocmask(SIG_BLOCK, &b, 0);
        uintptr_t sp, pc;
        trigger(syscall(SYS_gettid), SIGUSR1, &sp, &pc);
        printf("trigger sp=%lu pc=%lu\n", (unsigned long)sp, (unsigned long)pc);
        dump_info("trigger");
        dump_uc("trigger", sp);
        sigprocmask(SIG_UNBLOCK, &b, 0);
    }
    {
        stack_t ss = {altbuf, 0, sizeof altbuf};
        sigaltstack(&ss, 0);
        struct sigaction sa; memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = alt_handler; sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigaction(SIGUSR2, &sa, 0); sigaction(SIGURG, &sa, 0);
        raise(SIGUSR2);
    }
    return 0;
}
'''

# -- running them ---------------------------------------------------------------

_CC = "riscv64-linux-gnu-gcc"
_QEMU = "qemu-riscv64"


def _need_tools() -> None:
    for tool, pkg in ((_CC, "gcc-riscv64-linux-gnu"), (_QEMU, "qemu-user")):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed ({pkg}; CI installs it)")


def _build_and_run(tmp: Path, name: str, sources: dict[str, str]) -> str:
    _need_tools()
    paths = []
    for fname, text in sources.items():
        p = tmp / fname
        p.write_text(text)
        paths.append(str(p))
    exe = tmp / name
    cc = subprocess.run([_CC, "-static", "-O1", "-o", str(exe), *paths], capture_output=True, text=True)
    assert cc.returncode == 0, cc.stderr
    run = subprocess.run([_QEMU, str(exe)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return run.stdout


@pytest.fixture(scope="module")
def c_layout(tmp_path_factory) -> dict[str, int]:
    """name → value lines of the layout program."""
    out = _build_and_run(tmp_path_factory.mktemp("layout"), "layout",
                         {"layout_glibc.c": _LAYOUT_GLIBC_C, "layout_kernel.c": _LAYOUT_KERNEL_C})
    return {k: int(v) for k, v in (line.split() for line in out.splitlines())}


class Capture:
    """What the capture program printed."""

    def __init__(self, out: str) -> None:
        self.info: dict[str, bytes] = {}
        self.fields: dict[str, dict[str, int]] = {}
        self.misc: dict[str, dict[str, int]] = {}
        self.uc: dict[str, bytes] = {}
        self.alt: list[dict[str, int]] = []
        for line in out.splitlines():
            kind, _, rest = line.partition(" ")
            if kind == "info":
                name, hexs = rest.split()
                self.info[name] = bytes.fromhex(hexs)
            elif kind == "uc":
                name, hexs = rest.split()
                self.uc[name] = bytes.fromhex(hexs)
            elif kind in ("fields", "frame", "trigger"):
                words = rest.split()
                if kind == "trigger":
                    name, kv = "trigger", words
                else:
                    name, kv = words[0], words[1:]
                d = {k: int(v) for k, v in (w.split("=") for w in kv)}
                (self.fields if kind == "fields" else self.misc).setdefault(name, {}).update(d)
            elif kind == "alt":
                self.alt.append({k: int(v) for k, v in (w.split("=") for w in rest.split())})


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> Capture:
    out = _build_and_run(tmp_path_factory.mktemp("capture"), "capture", {"capture.c": _CAPTURE_C})
    return Capture(out)


@pytest.fixture(scope="module")
def mem():
    m = GuestMemory()
    m.map(0x10000, 0x40000, PROT_READ | PROT_WRITE)
    yield m
    m.release()


STACK_TOP = 0x40000


# -- layout ----------------------------------------------------------------------

def test_offsets_match_the_c_layout(c_layout):
    L = c_layout
    assert L["sizeof.siginfo_t"] == L["k.sizeof.siginfo_t"] == sf.SIGINFO_SIZE
    assert (L["siginfo_t.si_signo"], L["siginfo_t.si_errno"], L["siginfo_t.si_code"]) == \
        (sf.SI_SIGNO, sf.SI_ERRNO, sf.SI_CODE)
    f = sf.SI_FIELDS
    # kill / rt / chld
    assert (L["siginfo_t.si_pid"], L["siginfo_t.si_uid"]) == (f, f + 4)
    assert L["siginfo_t.si_value"] == L["siginfo_t.si_int"] == L["siginfo_t.si_ptr"] == f + 8
    assert (L["siginfo_t.si_status"], L["siginfo_t.si_utime"], L["siginfo_t.si_stime"]) == (f + 8, f + 16, f + 24)
    # timer, fault, poll, sys
    assert (L["siginfo_t.si_timerid"], L["siginfo_t.si_overrun"]) == (f, f + 4)
    assert (L["siginfo_t.si_addr"], L["siginfo_t.si_addr_lsb"]) == (f, f + 8)
    assert (L["siginfo_t.si_band"], L["siginfo_t.si_fd"]) == (f, f + 8)
    assert (L["siginfo_t.si_call_addr"], L["siginfo_t.si_syscall"], L["siginfo_t.si_arch"]) == (f, f + 8, f + 12)
    # stack_t
    assert L["sizeof.stack_t"] == L["k.sizeof.stack_t"] == sf.STACK_T_SIZE
    assert (L["stack_t.ss_sp"], L["stack_t.ss_flags"], L["stack_t.ss_size"]) == (0, 8, 16)
    # the frame
    assert L["k.sizeof.rt_sigframe"] == sf.FRAME_SIZE
    assert (L["k.rt_sigframe.info"], L["k.rt_sigframe.uc"]) == (sf.FRAME_INFO, sf.FRAME_UC)
    assert L["sizeof.ucontext_t"] == L["k.sizeof.kuc"] == sf.UCONTEXT_SIZE
    assert L["alignof.ucontext_t"] == 16
    for glibc, kernel, ours in (("__uc_flags", "uc_flags", sf.UC_FLAGS), ("uc_link", "uc_link", sf.UC_LINK),
                                ("uc_stack", "uc_stack", sf.UC_STACK),
                                ("uc_sigmask", "uc_sigmask", sf.UC_SIGMASK),
                                ("uc_mcontext", "uc_mcontext", sf.UC_MCONTEXT)):
        assert L[f"ucontext_t.{glibc}"] == L[f"k.kuc.{kernel}"] == ours, glibc
    assert L["k.kuc.__unused"] == sf.UC_SIGMASK + sf.UC_SIGMASK_SIZE == sf.UC_SIGMASK + L["k.sizeof.sigset_t"]
    assert L["sizeof.mcontext_t"] == L["k.sizeof.ksc"] == sf.MCONTEXT_SIZE
    assert L["mcontext_t.__gregs"] == L["k.ksc.sc_regs"] == sf.SC_REGS
    assert L["mcontext_t.__fpregs"] == L["k.ksc.sc_fpregs"] == sf.SC_FPREGS
    assert L["sizeof.fpregs"] == L["k.sizeof.kfp"] == sf.FP_STATE_SIZE
    assert L["mcontext_t.__fpregs.__d.__f"] - L["mcontext_t.__fpregs"] == L["k.kfp.d.f"] == sf.FP_F
    assert L["mcontext_t.__fpregs.__d.__fcsr"] - L["mcontext_t.__fpregs"] == L["k.kfp.d.fcsr"] == sf.FP_FCSR
    assert L["k.kfp.q.reserved"] == sf.FP_RESERVED
    assert L["k.kfp.q.reserved"] + sf.FP_RESERVED_SIZE == sf.FP_STATE_SIZE
    # sc_regs: pc, then x1..x31 in register order
    regs = {"pc": 0, "ra": 1, "sp": 2, "gp": 3, "tp": 4, "t0": 5, "t2": 7, "s0": 8, "s1": 9, "a0": 10,
            "a7": 17, "s2": 18, "s11": 27, "t3": 28, "t6": 31}
    assert L["k.sizeof.kregs"] == 256
    for name, idx in regs.items():
        assert L[f"k.kregs.{name}"] == 8 * idx, name
    # constants
    for name in ("SS_ONSTACK", "SS_DISABLE", "SI_USER", "SI_KERNEL", "SI_QUEUE", "SI_TIMER", "SI_MESGQ",
                 "SI_ASYNCIO", "SI_SIGIO", "SI_TKILL", "SEGV_MAPERR", "SEGV_ACCERR", "BUS_ADRALN",
                 "BUS_ADRERR", "BUS_OBJERR", "ILL_ILLOPC", "TRAP_BRKPT", "TRAP_TRACE", "FPE_INTDIV",
                 "CLD_EXITED", "CLD_KILLED", "CLD_DUMPED", "CLD_TRAPPED", "CLD_STOPPED", "CLD_CONTINUED",
                 "POLL_IN"):
        assert getattr(sf, name) == L[name], name
    assert L["k.__NR_rt_sigreturn"] == sf.NR_RT_SIGRETURN


def test_trampoline_is_li_a7_rt_sigreturn_ecall(tmp_path):
    if shutil.which("riscv64-linux-gnu-as") is None:
        pytest.skip("riscv64-linux-gnu-as not installed (binutils-riscv64-linux-gnu; CI installs it)")
    src = tmp_path / "t.s"
    src.write_text(".option norvc\nli a7, 139\necall\n")
    obj = tmp_path / "t.o"
    subprocess.run(["riscv64-linux-gnu-as", "-march=rv64g", "-o", str(obj), str(src)], check=True)
    raw = subprocess.run(["riscv64-linux-gnu-objcopy", "-O", "binary", "-j", ".text", str(obj), "/dev/stdout"],
                         check=True, capture_output=True).stdout
    assert raw == sf.SIGRETURN_TRAMPOLINE
    assert sf.NR_RT_SIGRETURN == 139


# -- siginfo ---------------------------------------------------------------------

# Bytes 0..48 of siginfos a handler received under qemu-riscv64 7.2 (the
# capture program above; pid 12421, uid 0), with what glibc's accessors read
# from them.  qemu leaves bytes outside the fields it fills as they were on
# the stack (Linux zeroes them), so only the fields of each layout compare.
_CAPTURED = {
    # kill(getpid(), SIGUSR1)
    "kill": ("0a0000000000000000000000000000008530000000000000000000000000000000000000000000000000000000000000",
             SigInfo(10, sf.SI_USER, pid=12421, uid=0)),
    # raise(SIGUSR1) (tgkill)
    "tkill": ("0a00000000000000faffffff000000008530000000000000000000000000000000000000000000000802800040000000",
              SigInfo(10, sf.SI_TKILL, pid=12421, uid=0)),
    # sigqueue(getpid(), SIGUSR2, {.sival_ptr = 0x1122334455667788})
    "sigqueue": ("0c00000000000000ffffffff40000000853000000000000088776655443322114015080000000000a80a010000000000",
                 SigInfo(12, sf.SI_QUEUE, pid=12421, uid=0, value=0x1122334455667788)),
    # *(int *)16 = 1
    "segv_maperr": ("0b0000000000000001000000400000001000000000000000c0c301000000000000000000000000000180adfb00000000",
                    SigInfo(11, sf.SEGV_MAPERR, addr=16)),
    # a read of a PROT_NONE page + 24
    "segv_accerr": ("0b0000000000000002000000400000001820800040000000c0c301000000000000000000000000000180adfb00000000",
                    SigInfo(11, sf.SEGV_ACCERR, addr=274886303768)),
    # ebreak at 0x10d12
    "trap": ("05000000000000000100000040000000120d010000000000c0c301000000000000000000000000000180adfb00000000",
             SigInfo(5, sf.TRAP_BRKPT, addr=68882)),
    # .4byte 0 at 0x10d2c
    "ill": ("040000000000000001000000400000002c0d010000000000c0c301000000000000000000000000000180adfb00000000",
            SigInfo(4, sf.ILL_ILLOPC, addr=68908)),
    # a read 8 bytes into the page past the end of a 100-byte file
    "bus": ("070000000000000002000000400000000840800040000000000000000000000000000000000000000180adfb00000000",
            SigInfo(7, sf.BUS_ADRERR, addr=274886311944)),
    # a child's _exit(7)
    "chld_exited": ("110000000000000001000000000000008730000000000000070000004000000000000000000000000000000000000000",
                    SigInfo(17, sf.CLD_EXITED, pid=12423, uid=0, status=7)),
    # kill(child, SIGKILL)
    "chld_killed": ("110000000000000002000000000000008930000000000000090000004000000000000000000000000000000000000000",
                    SigInfo(17, sf.CLD_KILLED, pid=12425, uid=0, status=9)),
    # timer_create(CLOCK_MONOTONIC, {SIGEV_SIGNAL, SIGALRM, .sival_ptr = 0x5566})
    "timer": ("0e00000000000000feffffff400000000000000000000000665500000000000000000000000000000180adfb00000000",
              SigInfo(14, sf.SI_TIMER, timerid=0, overrun=0, value=0x5566)),
}


def _significant(info: SigInfo) -> list[tuple[int, int]]:
    """The byte ranges a kernel (and qemu) fills for this siginfo."""
    head = [(0, 12)]
    kind = info.layout
    if kind == "kill" or (kind == "rt" and info.code == sf.SI_TKILL):
        # tkill's value is zero on Linux; qemu-user leaves it unwritten.
        return head + [(16, 24)]
    if kind in ("rt", "timer"):
        return head + [(16, 32)]
    if kind == "chld":
        return head + [(16, 28), (32, 48)]
    if kind == "fault":
        return head + [(16, 24)]
    raise AssertionError(kind)


def _check_against(info: SigInfo, captured: bytes) -> None:
    packed = info.pack()
    assert len(packed) == 128
    for lo, hi in _significant(info):
        assert packed[lo:hi] == captured[lo:hi], (info, lo, hi)
    # Everything outside the layout's fields is zero (Linux clears a siginfo).
    covered = set()
    for lo, hi in _significant(info):
        covered.update(range(lo, hi))
    assert all(b == 0 for i, b in enumerate(packed) if i not in covered)


@pytest.mark.parametrize("name", sorted(_CAPTURED))
def test_siginfo_pack_matches_captured_bytes(name):
    hexs, info = _CAPTURED[name]
    _check_against(info, bytes.fromhex(hexs).ljust(128, b"\0"))


def test_siginfo_layouts_cover_each_union_kind():
    assert {info.layout for _h, info in _CAPTURED.values()} == {"kill", "rt", "fault", "chld", "timer"}
    assert SigInfo(29, sf.POLL_IN).layout == "poll"
    assert SigInfo(29, sf.SI_SIGIO).layout == "poll"
    assert SigInfo(31, 1).layout == "sys"
    assert SigInfo(7, sf.BUS_MCEERR_AR).layout == "fault_mceerr"
    assert SigInfo(11, sf.SI_KERNEL).layout == "kill"
    assert SigInfo(11, 99).layout == "kill"       # beyond NSIGSEGV and NSIGPOLL
    assert SigInfo(10, 3).layout == "poll"        # Linux: 0 < code <= NSIGPOLL for other signals
    assert SigInfo(10, sf.SI_MESGQ).layout == "rt"


def test_siginfo_pack_matches_live_capture(capture):
    names = set(_CAPTURED)
    assert names <= set(capture.info), sorted(names - set(capture.info))
    pid = capture.fields["kill"]["pid"]
    for name in sorted(names):
        fields = capture.fields[name]
        info = SigInfo(**fields)
        assert info.signo == _CAPTURED[name][1].signo and info.code == _CAPTURED[name][1].code, name
        _check_against(info, capture.info[name])
    assert capture.fields["kill"]["code"] == sf.SI_USER
    assert capture.fields["tkill"]["code"] == sf.SI_TKILL
    assert capture.fields["sigqueue"]["pid"] == pid
    assert capture.fields["sigqueue"]["value"] == 0x1122334455667788
    assert capture.fields["segv_maperr"]["addr"] == 16


def test_siginfo_unpack_round_trip():
    cases = [SigInfo(10, sf.SI_USER, pid=5, uid=1000),
             SigInfo(12, sf.SI_QUEUE, pid=7, uid=3, value=(1 << 64) - 2),
             SigInfo(34, -42, pid=-1, uid=0xFFFFFFFF, value=0xAB),
             SigInfo(14, sf.SI_TIMER, timerid=3, overrun=-5, value=0x1234),
             SigInfo(17, sf.CLD_DUMPED, pid=99, uid=2, status=11, utime=-3, stime=1 << 40),
             SigInfo(11, sf.SEGV_ACCERR, errno=4, addr=0xFFFF_FFFF_FFFF_F000),
             SigInfo(7, sf.BUS_MCEERR_AO, addr=0x1000, addr_lsb=12),
             SigInfo(29, sf.POLL_HUP, band=-7, fd=9),
             SigInfo(31, sf.SYS_SECCOMP, addr=0x10074, syscall=435, arch=0xC00000F3)]
    for info in cases:
        raw = info.pack()
        back = SigInfo.unpack(raw)
        assert back == info, info
        assert back.pack() == raw
    # Fields outside the layout are not carried.
    assert SigInfo.unpack(SigInfo(10, sf.SI_USER, pid=5, addr=77).pack()).addr == 0
    with pytest.raises(ValueError):
        SigInfo.unpack(b"\0" * 64)


# -- frames ----------------------------------------------------------------------

def _random_state(rng: random.Random, sp: int) -> GuestState:
    st = GuestState()
    for i in range(1, 32):
        st.x[i] = rng.getrandbits(64)
    st.x[2] = sp
    for i in range(32):
        st.f[i] = rng.getrandbits(64)
    st.pc = rng.getrandbits(64) & ~1
    st.fcsr = rng.getrandbits(8)
    st.reservation = 0x12340
    return st


def _snapshot(st: GuestState) -> tuple:
    return tuple(st.x), tuple(st.f), st.pc, st.fcsr


NO_ALTSTACK = (0, sf.SS_DISABLE, 0)


def test_push_restore_round_trip(mem):
    rng = random.Random(17)
    for trial in range(20):
        sp = STACK_TOP - 0x100 - rng.randrange(0x2000)
        st = _random_state(rng, sp)
        before = _snapshot(st)
        mask = rng.getrandbits(64)
        alt = (0x30000, 0, 0x4000) if trial % 2 else NO_ALTSTACK
        info = SigInfo(10, sf.SI_TKILL, pid=42, uid=7)
        frame = sf.push_frame(mem, st, info, blocked=mask, altstack=alt, use_altstack=False,
                              restorer=0x1000, handler=0x2000, sig=10)
        assert frame == (sp - sf.FRAME_SIZE) & ~15
        assert (st.x[2], st.x[10], st.x[11], st.x[12]) == (frame, 10, frame, frame + 128)
        assert (st.x[1], st.pc, st.reservation) == (0x1000, 0x2000, (1 << 64) - 1)
        assert mem.read(frame, 128) == info.pack()
        # the handler clobbers everything
        for i in range(1, 32):
            st.x[i] = 0xDEAD
        for i in range(32):
            st.f[i] = 0xBEEF
        st.fcsr = 0xE0
        st.pc = 0x1004
        st.reservation = 0x5000
        st.x[2] = frame
        got_mask, got_alt = sf.restore_frame(mem, st)
        assert _snapshot(st) == before
        assert st.reservation == (1 << 64) - 1
        assert got_mask == mask & ~((1 << 8) | (1 << 18))     # never SIGKILL, SIGSTOP
        assert got_alt == alt


def test_frame_alignment(mem):
    rng = random.Random(3)
    for sp in [STACK_TOP - 0x800 - k for k in range(0, 40)] + [rng.randrange(0x20000, STACK_TOP) for _ in range(50)]:
        st = _random_state(rng, sp)
        frame = sf.push_frame(mem, st, SigInfo(14, sf.SI_USER), blocked=0, altstack=NO_ALTSTACK,
                              use_altstack=True, restorer=0, handler=0, sig=14)
        assert frame % 16 == 0
        assert sp - sf.FRAME_SIZE - 16 < frame <= sp - sf.FRAME_SIZE


def _saved_stack(mem, frame: int) -> tuple[int, int, int]:
    ss_sp, flags, _pad, size = struct.unpack("<QIIQ", mem.read(frame + 128 + 16, 24))
    return ss_sp, flags, size


def test_altstack_choice(mem):
    alt = (0x20000, 0, 0x8000)                   # (ss_sp, ss_flags, ss_size)
    alt_top = 0x28000
    sp = STACK_TOP - 0x100
    rng = random.Random(5)
    # SA_ONSTACK and enabled, not on it: top of the alternate stack.
    st = _random_state(rng, sp)
    f1 = sf.push_frame(mem, st, SigInfo(12, 0), blocked=0, altstack=alt, use_altstack=True,
                       restorer=0, handler=0, sig=12)
    assert f1 == alt_top - sf.FRAME_SIZE
    assert _saved_stack(mem, f1) == alt              # not on it when interrupted
    # A second signal while on it: below the interrupted sp, SS_ONSTACK saved.
    st.x[2] = f1 - 40
    f2 = sf.push_frame(mem, st, SigInfo(23, 0), blocked=0, altstack=alt, use_altstack=True,
                       restorer=0, handler=0, sig=23)
    assert f2 == (f1 - 40 - sf.FRAME_SIZE) & ~15
    assert _saved_stack(mem, f2) == (0x20000, sf.SS_ONSTACK, 0x8000)
    # Without SA_ONSTACK: the normal stack, even with an altstack set.
    st = _random_state(rng, sp)
    assert sf.push_frame(mem, st, SigInfo(12, 0), blocked=0, altstack=alt, use_altstack=False,
                         restorer=0, handler=0, sig=12) == (sp - sf.FRAME_SIZE) & ~15
    # Disabled: the normal stack; uc_stack says so.
    st = _random_state(rng, sp)
    f = sf.push_frame(mem, st, SigInfo(12, 0), blocked=0, altstack=NO_ALTSTACK, use_altstack=True,
                      restorer=0, handler=0, sig=12)
    assert f == (sp - sf.FRAME_SIZE) & ~15
    assert _saved_stack(mem, f) == NO_ALTSTACK
    # SS_AUTODISARM: never "on" it, so always its top (Linux).
    auto = (0x20000, sf.SS_AUTODISARM, 0x8000)
    st = _random_state(rng, alt_top - 0x2000)
    f = sf.push_frame(mem, st, SigInfo(12, 0), blocked=0, altstack=auto, use_altstack=True,
                      restorer=0, handler=0, sig=12)
    assert f == alt_top - sf.FRAME_SIZE
    assert _saved_stack(mem, f)[1] == sf.SS_AUTODISARM


def test_on_altstack_bounds():
    alt = (0x20000, 0, 0x8000)
    assert not sf.on_altstack(0x20000, alt)          # the bottom is not on it
    assert sf.on_altstack(0x20001, alt)
    assert sf.on_altstack(0x28000, alt)              # the top is (the stack is empty there)
    assert not sf.on_altstack(0x28001, alt)
    assert not sf.on_altstack(0x24000, (0x20000, sf.SS_DISABLE, 0x8000))
    assert not sf.on_altstack(0x24000, (0x20000, 0, 0))
    assert not sf.on_altstack(0x24000, (0x20000, sf.SS_AUTODISARM, 0x8000))


def test_altstack_overflow_and_faults_leave_state_alone(mem):
    rng = random.Random(9)
    alt = (0x20000, 0, 0x8000)
    st = _random_state(rng, 0x20000 + 100)           # on the altstack, no room for a frame
    before = _snapshot(st)
    with pytest.raises(GuestMemoryError):
        sf.push_frame(mem, st, SigInfo(11, 1), blocked=0, altstack=alt, use_altstack=True,
                      restorer=0, handler=0, sig=11)
    assert _snapshot(st) == before
    st = _random_state(rng, 0x10000 + 0x200)         # the frame would reach below the mapping
    before = _snapshot(st)
    with pytest.raises(GuestMemoryError):
        sf.push_frame(mem, st, SigInfo(11, 1), blocked=0, altstack=NO_ALTSTACK, use_altstack=False,
                      restorer=0, handler=0, sig=11)
    assert _snapshot(st) == before
    st.x[2] = 0x10000 + 0x40000 - 0x100                # the frame runs past the mapping's end
    before = _snapshot(st)
    with pytest.raises(GuestMemoryError):
        sf.restore_frame(mem, st)
    assert _snapshot(st) == before


def test_restore_refuses_nonzero_reserved_fp_words(mem):
    rng = random.Random(11)
    st = _random_state(rng, STACK_TOP - 0x400)
    frame = sf.push_frame(mem, st, SigInfo(10, 0), blocked=0, altstack=NO_ALTSTACK, use_altstack=False,
                          restorer=0, handler=0, sig=10)
    raw = mem.read(frame, sf.FRAME_SIZE)
    assert raw[sf.FRAME_FP_RESERVED:sf.FRAME_SIZE] == b"\0" * 12   # END header: magic 0, size 0
    for off in (sf.FRAME_FP_RESERVED, sf.FRAME_FP_RESERVED + 4, sf.FRAME_FP_RESERVED + 8):
        mem.write(off + frame, b"\1")
        before = _snapshot(st)
        with pytest.raises(sf.BadSigFrame):
            sf.restore_frame(mem, st)
        assert _snapshot(st) == before
        mem.write(off + frame, b"\0")
    sf.restore_frame(mem, st)


# The registers capture.c's trigger() loads before its tkill ecall.
_TRIGGER_X = {n: n * 0x0100000000000001 for n in
              (5, 6, 7, 8, 9, 12, 13, 14, 15, 16, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31)}
_TRIGGER_X[1] = 0x0100000000000001
_TRIGGER_F = [0xF00000000000F000 + n * 0x0001000000000001 for n in range(32)]
_SIGUSR1, _SIGUSR2 = 10, 12


def test_frame_matches_the_one_a_handler_sees(mem, capture):
    """Registers as trigger() set them; the ucontext a glibc handler got
    under qemu-riscv64 and the one push_frame writes agree field by field."""
    uc = capture.uc["trigger"]
    sp, pc = capture.misc["trigger"]["sp"], capture.misc["trigger"]["pc"]
    assert capture.misc["trigger"]["info_to_uc"] == sf.FRAME_UC
    assert capture.misc["trigger"]["info_align"] == 0
    gregs = struct.unpack_from("<32Q", uc, sf.UC_MCONTEXT)
    st = GuestState()
    for n, v in _TRIGGER_X.items():
        st.x[n] = v
    st.x[2] = STACK_TOP - 0x300
    st.x[3], st.x[4] = gregs[3], gregs[4]            # gp, tp: glibc's, not ours to choose
    st.x[10], st.x[11], st.x[17] = 0, _SIGUSR1, 130  # tkill returned 0 in a0; a1 = sig; a7 = nr
    for n, v in enumerate(_TRIGGER_F):
        st.f[n] = v
    st.fcsr = 0x61
    st.pc = pc
    frame = sf.push_frame(mem, st, SigInfo(_SIGUSR1, sf.SI_TKILL, pid=capture.fields["kill"]["pid"]),
                          blocked=1 << (_SIGUSR2 - 1), altstack=NO_ALTSTACK, use_altstack=False,
                          restorer=0x1000, handler=0x2000, sig=_SIGUSR1)
    ours = bytearray(mem.read(frame + sf.FRAME_UC, sf.UCONTEXT_SIZE))
    struct.pack_into("<Q", ours, sf.UC_MCONTEXT + 16, sp)   # the interrupted sp differs
    theirs = uc
    ranges = [(sf.UC_FLAGS, 16), (sf.UC_STACK, 12), (sf.UC_STACK + 16, 8),  # (skip ss_flags' padding)
              (sf.UC_SIGMASK, 8), (sf.UC_MCONTEXT, 256),
              (sf.UC_MCONTEXT + sf.SC_FPREGS, 256 + 4)]
    for off, n in ranges:
        assert ours[off:off + n] == theirs[off:off + n], off
    # and what that means, spelled out
    assert gregs[0] == pc and gregs[1] == _TRIGGER_X[1] and gregs[2] == sp
    assert gregs[5] == _TRIGGER_X[5] and gregs[31] == _TRIGGER_X[31]
    assert struct.unpack_from("<Q", uc, sf.UC_SIGMASK)[0] == 1 << (_SIGUSR2 - 1)
    assert struct.unpack_from("<QiiQ", uc, sf.UC_STACK)[0::3] == (0, 0)
    assert struct.unpack_from("<i", uc, sf.UC_STACK + 8)[0] == sf.SS_DISABLE
    assert struct.unpack_from("<I", uc, sf.UC_MCONTEXT + sf.SC_FPREGS + sf.FP_FCSR)[0] == 0x61


def test_altstack_flags_match_a_handler(capture):
    """qemu-riscv64: the first SA_ONSTACK handler was entered from the
    normal stack (uc_stack.ss_flags 0), the nested one from the altstack
    (SS_ONSTACK); both ran on the altstack."""
    assert [(a["sig"], a["on_alt"], a["ss_flags"], a["ss_sp_is_buf"], a["ss_size"]) for a in capture.alt] == \
        [(12, 1, 0, 1, 65536), (23, 1, sf.SS_ONSTACK, 1, 65536)]
    first, nested = capture.alt
    assert first["hi_minus_info"] < nested["hi_minus_info"]
