/*
 * aotrt: the native core of aotrun.
 *
 * - run(): the dispatch loop.  It looks the guest pc up in the image's
 *   native hash table and calls the translated block's host entry directly.
 *   Translated blocks chain to each other with tail calls, so control comes
 *   back here only for syscalls, misses, traps and table-probe slow paths;
 *   it returns to Python only for the first three.  A guest call is a host
 *   call (a guest return a host return, checked against the return point),
 *   nested as long as the host stack pointer stays above the limit set here.
 * - A SIGSEGV/SIGBUS handler that turns a fault on a guest-arena address,
 *   raised while translated code runs, into an EXIT_FAULT return (via
 *   siglongjmp) with the faulting guest address and signal; the same for
 *   the out-of-range trap of translated code (SIGILL at a marked ud2, the
 *   guest address in rax and the guest pc in rdx: llvm_builder.py).  Any
 *   other fault is passed on to the previous handler: it is a bug, not a
 *   guest fault.
 * - Fault-safe copies between host buffers and guest memory (copy_out,
 *   copy_in, copy_move): the one primitive through which the runtime's
 *   Python code touches guest bytes.  A fault inside the copied range (a
 *   file mapping truncated under the guest: SIGBUS) makes the copy fail
 *   instead of killing the host process.
 * - SIGINT/SIGTERM keep their default action while guest code runs, so a
 *   looping guest can be interrupted (Python's handlers only set a flag).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <ucontext.h>
#include <unistd.h>
#include <errno.h>
#include <sys/syscall.h>
#ifdef __x86_64__
#include <asm/prctl.h>
#include <xmmintrin.h>
#endif

#define STATE_SP_OFFSET 16
#define STATE_PC_OFFSET 512
#define STATE_FCSR_OFFSET 520
#define STATE_SP_LIMIT_OFFSET 584
#define STATE_INTERRUPT_OFFSET 592
#define EXIT_CONTINUE 0
#define EXIT_MISS 2
#define EXIT_FAULT 5
#define EXIT_RETURN 8
#define EXIT_INTERPRET 9
#define EXIT_INTERRUPT 10
#define EXIT_RESUME 11
/* An empty slot of a block table: no guest pc is all ones (pcs are aligned),
 * so a jump to any address, 0 included, never matches one (abi.py). */
#define HTAB_EMPTY UINT64_MAX
/* The bytes after the ud2 of translated code's out-of-range trap. */
#define OOB_TRAP_MARK0 0x41
#define OOB_TRAP_MARK1 0x4f

typedef uint64_t (*block_fn)(void *state);
struct htab_entry { uint64_t pc; block_fn fn; };

/*
 * Translated blocks use LLVM's x86 regcall convention with no callee-saved
 * registers (arguments and results in rax, rcx, rdx, rdi, rsi, r8, r9, r12,
 * r13, r14, r15; every register but rsp may be clobbered) with the block
 * calling convention of aotc/backend/abi.py: the state comes in rax, then
 * the guest registers PASSED_REGS = a0 a1 a2 sp ra s0 s1 s2 s3 s4 (rcx
 * ... r15), and after the exit code (rax) the same guest registers come back
 * (RETURNED_REGS) in the same host registers.  Guest memory is addressed
 * through %gs, whose base run() sets to the arena (set_guest_segment).
 * aotrt_enter_block(fn, state) saves the C ABI's callee-saved registers and
 * the state pointer around the call and moves the passed and returned
 * registers between the state and host registers.
 * block_abi() reports both lists, so the runtime can check they agree with
 * the code generator's.  After 6 pushes and 8 bytes the stack is 16-byte
 * aligned again, as the call expects.
 */
/* Keep these lists in step with the loads and stores of the asm below
 * (state offset of x[r] = 8 * r). */
static const int passed_regs[] = {10, 11, 12, 2, 1, 8, 9, 18, 19, 20};
static const int returned_regs[] = {10, 11, 12, 2, 1, 8, 9, 18, 19, 20};
#ifdef __x86_64__
__attribute__((visibility("hidden"))) uint64_t aotrt_enter_block(block_fn fn, void *state);
__asm__(".text\n"
        ".p2align 4\n"
        ".globl aotrt_enter_block\n"
        ".hidden aotrt_enter_block\n"
        ".type aotrt_enter_block,@function\n"
        "aotrt_enter_block:\n"
        "  pushq %rbp\n  pushq %r15\n  pushq %r14\n  pushq %r13\n  pushq %r12\n  pushq %rbx\n"
        "  subq $8, %rsp\n"
        "  movq %rsi, (%rsp)\n"       /* the state, for after the call */
        "  movq %rdi, %r10\n  movq %rsi, %rax\n"
        "  movq 80(%rax), %rcx\n"     /* a0 */
        "  movq 88(%rax), %rdx\n"     /* a1 */
        "  movq 96(%rax), %rdi\n"     /* a2 */
        "  movq 16(%rax), %rsi\n"     /* sp */
        "  movq 8(%rax), %r8\n"       /* ra */
        "  movq 64(%rax), %r9\n"      /* s0 */
        "  movq 72(%rax), %r12\n"     /* s1 */
        "  movq 144(%rax), %r13\n"    /* s2 */
        "  movq 152(%rax), %r14\n"    /* s3 */
        "  movq 160(%rax), %r15\n"    /* s4 */
        "  callq *%r10\n"
        "  movq (%rsp), %r10\n"
        "  movq %rcx, 80(%r10)\n"     /* a0 */
        "  movq %rdx, 88(%r10)\n"     /* a1 */
        "  movq %rdi, 96(%r10)\n"     /* a2 */
        "  movq %rsi, 16(%r10)\n"     /* sp */
        "  movq %r8, 8(%r10)\n"       /* ra */
        "  movq %r9, 64(%r10)\n"      /* s0 */
        "  movq %r12, 72(%r10)\n"     /* s1 */
        "  movq %r13, 144(%r10)\n"    /* s2 */
        "  movq %r14, 152(%r10)\n"    /* s3 */
        "  movq %r15, 160(%r10)\n"    /* s4 */
        "  addq $8, %rsp\n"
        "  popq %rbx\n  popq %r12\n  popq %r13\n  popq %r14\n  popq %r15\n  popq %rbp\n"
        "  retq\n"
        ".size aotrt_enter_block, .-aotrt_enter_block\n");
/* JIT code (table 2) keeps every guest register in the state (the state
 * convention: no passed or returned registers; the state in rax). */
__attribute__((visibility("hidden"))) uint64_t aotrt_enter_state_block(block_fn fn, void *state);
__asm__(".text\n"
        ".p2align 4\n"
        ".globl aotrt_enter_state_block\n"
        ".hidden aotrt_enter_state_block\n"
        ".type aotrt_enter_state_block,@function\n"
        "aotrt_enter_state_block:\n"
        "  pushq %rbp\n  pushq %r15\n  pushq %r14\n  pushq %r13\n  pushq %r12\n  pushq %rbx\n"
        "  subq $8, %rsp\n"
        "  movq %rsi, %rax\n"
        "  callq *%rdi\n"
        "  addq $8, %rsp\n"
        "  popq %rbx\n  popq %r12\n  popq %r13\n  popq %r14\n  popq %r15\n  popq %rbp\n"
        "  retq\n"
        ".size aotrt_enter_state_block, .-aotrt_enter_state_block\n");
#define CALL_BLOCK(fn, state) aotrt_enter_block((fn), (state))
#define CALL_STATE_BLOCK(fn, state) aotrt_enter_state_block((fn), (state))
#else
/* Translated code is x86_64 code: no block runs on another host. */
#define CALL_BLOCK(fn, state) ((void)(fn), (void)(state), (uint64_t)EXIT_MISS)
#define CALL_STATE_BLOCK CALL_BLOCK
#endif

/* Per host thread (every guest thread runs on its own host thread): static
 * TLS, since the handler must not call __tls_get_addr. */
#define TLS __thread __attribute__((tls_model("initial-exec")))
static TLS sigjmp_buf fault_env;
static TLS volatile sig_atomic_t in_guest;
static uintptr_t arena_lo, arena_hi, arena_base;
static TLS volatile uint64_t fault_addr, fault_host_pc, fault_guest_pc;
static TLS volatile int fault_sig;
static struct sigaction old_segv, old_bus, old_ill;
static int handler_installed;
static TLS char *alt_stack;

/* A fault-safe copy in progress on this thread: faults at [lo, hi) of either
 * range end it. */
static TLS sigjmp_buf copy_env;
static TLS volatile int copy_active;
static TLS uintptr_t copy_lo[2], copy_hi[2];

static int in_copy_range(uintptr_t addr)
{
    for (int i = 0; i < 2; i++)
        if (addr >= copy_lo[i] && addr < copy_hi[i])
            return 1;
    return 0;
}

/*
 * A guest fault in translated code whose signal the guest handles: the
 * guest's handler runs *nested*, from inside this host signal handler, on
 * the thread's (large) alternate stack: the runtime's callback pushes the
 * guest signal frame and runs the handler until its rt_sigreturn.  If the
 * handler returns the context unchanged (it fixed the cause, e.g. mprotect),
 * returning from this host handler retries the faulting host instruction
 * with every guest register exactly as it was: translated code keeps them
 * in host registers, so nothing but this resumption is precise.  Otherwise
 * (siglongjmp out of the handler, a changed context, the process ending)
 * the outer run is abandoned and run() returns EXIT_RESUME: the state holds
 * where the guest goes on.
 */
static PyObject *fault_callback;
static TLS int nested_depth;
static TLS int fault_resume;

static int run_nested_fault(int sig)
{
    if (!fault_callback || nested_depth >= 16)
        return 2;
    sigjmp_buf saved;
    memcpy(saved, fault_env, sizeof saved);
    nested_depth++;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *r = PyObject_CallFunction(fault_callback, "iKKK", sig, (unsigned long long)fault_addr,
                                        (unsigned long long)fault_host_pc,
                                        (unsigned long long)fault_guest_pc);
    int code = 2;
    if (r) {
        code = (int)PyLong_AsLong(r);
        Py_DECREF(r);
    }
    if (PyErr_Occurred()) {
        PyErr_Print();
        code = 2;
    }
    PyGILState_Release(g);
    nested_depth--;
    memcpy(fault_env, saved, sizeof saved);
    return code;
}

static void put_hex(char *buf, size_t *n, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";
    buf[(*n)++] = '0';
    buf[(*n)++] = 'x';
    for (int i = 60; i >= 0; i -= 4)
        buf[(*n)++] = digits[(v >> i) & 15];
}

static void report_host_fault(int sig, uintptr_t addr, ucontext_t *uc)
{
    char buf[160];
    size_t n = 0;
    const char *head = "aotrun: internal error: host signal ";
    for (const char *p = head; *p; p++)
        buf[n++] = *p;
    buf[n++] = (char)('0' + sig / 10);
    buf[n++] = (char)('0' + sig % 10);
    const char *a = " at address ";
    for (const char *p = a; *p; p++)
        buf[n++] = *p;
    put_hex(buf, &n, addr);
#ifdef __x86_64__
    const char *r = ", host pc ";
    for (const char *p = r; *p; p++)
        buf[n++] = *p;
    put_hex(buf, &n, (uint64_t)uc->uc_mcontext.gregs[REG_RIP]);
#else
    (void)uc;
#endif
    buf[n++] = in_guest ? '*' : ' ';
    buf[n++] = '\n';
    ssize_t w = write(2, buf, n);
    (void)w;
}

static void fault_handler(int sig, siginfo_t *info, void *ctx)
{
    uintptr_t addr = (uintptr_t)info->si_addr;
    ucontext_t *uc = (ucontext_t *)ctx;
    if (sig != SIGILL && copy_active && in_copy_range(addr)) {
        copy_active = 0;
        siglongjmp(copy_env, sig);
    }
#ifdef __x86_64__
    if (sig == SIGILL && in_guest) {
        const uint8_t *ip = (const uint8_t *)uc->uc_mcontext.gregs[REG_RIP];
        if (ip[0] == 0x0f && ip[1] == 0x0b && ip[2] == OOB_TRAP_MARK0 && ip[3] == OOB_TRAP_MARK1) {
            fault_addr = (uint64_t)uc->uc_mcontext.gregs[REG_RAX];
            fault_guest_pc = (uint64_t)uc->uc_mcontext.gregs[REG_RDX];
            fault_host_pc = (uint64_t)(uintptr_t)ip;
            fault_sig = SIGSEGV;
            in_guest = 0;
            siglongjmp(fault_env, SIGSEGV);
        }
    }
#endif
    if (sig != SIGILL && in_guest && addr >= arena_lo && addr < arena_hi) {
        /* Below the arena (its bottom guard): a negative guest address. */
        fault_addr = (uint64_t)(addr - arena_base);
#ifdef __x86_64__
        fault_host_pc = (uint64_t)uc->uc_mcontext.gregs[REG_RIP];
#else
        (void)uc;
        fault_host_pc = 0;
#endif
        fault_guest_pc = UINT64_MAX;
        fault_sig = sig;
        in_guest = 0;
        int nested = run_nested_fault(sig);
        if (nested == 0) {          /* handled: retry the instruction */
            in_guest = 1;
            return;
        }
        if (nested == 1)            /* the guest went on elsewhere */
            fault_resume = 1;
        siglongjmp(fault_env, sig);
    }
    /* Not ours: say where (an internal error: async-signal-safe write), then
     * restore the previous disposition and let the fault recur. */
    report_host_fault(sig, addr, uc);
    struct sigaction *old = sig == SIGSEGV ? &old_segv : sig == SIGBUS ? &old_bus : &old_ill;
    sigaction(sig, old, NULL);
}

/* Install the handler for SIGSEGV, SIGBUS and SIGILL (again each time:
 * someone, e.g. faulthandler, may have replaced it). */
static int ensure_alt_stack(void)
{
    if (!alt_stack) {
        /* Large: a guest handler may run nested on it (run_nested_fault);
         * reserved, not committed, until used. */
        size_t sz = 16u << 20;
        void *p = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                       -1, 0);
        if (p == MAP_FAILED)
            return -1;
        alt_stack = p;
        stack_t ss = { .ss_sp = alt_stack, .ss_size = sz, .ss_flags = 0 };
        sigaltstack(&ss, NULL);
    }
    return 0;
}

static int install_handlers(void)
{
    if (ensure_alt_stack() != 0)
        return -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = fault_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    static const int sigs[3] = {SIGSEGV, SIGBUS, SIGILL};
    struct sigaction *olds[3] = {&old_segv, &old_bus, &old_ill};
    for (int i = 0; i < 3; i++) {
        struct sigaction prev;
        sigaction(sigs[i], &sa, &prev);
        if (prev.sa_sigaction != fault_handler)
            *olds[i] = prev;
    }
    handler_installed = 1;
    return 0;
}

/*
 * Fault-safe copies.  ``dst``/``src`` ranges that may fault are declared in
 * copy_lo/copy_hi; a fault there longjmps back and the copy reports failure.
 * The copy is done with memmove (no allocation, no locks inside).
 */
static int safe_move(void *dst, const void *src, size_t n, int guard_dst, int guard_src)
{
    if (!handler_installed && install_handlers() != 0)
        return -1;
    copy_lo[0] = guard_dst ? (uintptr_t)dst : 1;
    copy_hi[0] = guard_dst ? (uintptr_t)dst + n : 0;
    copy_lo[1] = guard_src ? (uintptr_t)src : 1;
    copy_hi[1] = guard_src ? (uintptr_t)src + n : 0;
    if (sigsetjmp(copy_env, 0) != 0)
        return -1;
    copy_active = 1;
    memmove(dst, src, n);
    copy_active = 0;
    return 0;
}

static PyObject *py_copy_out(PyObject *self, PyObject *args)
{
    unsigned long long src;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "Kn", &src, &n))
        return NULL;
    if (n < 0)
        return PyErr_Format(PyExc_ValueError, "negative length");
    PyObject *out = PyBytes_FromStringAndSize(NULL, n);
    if (!out)
        return NULL;
    if (safe_move(PyBytes_AS_STRING(out), (const void *)(uintptr_t)src, (size_t)n, 0, 1) != 0) {
        Py_DECREF(out);
        Py_RETURN_NONE;
    }
    return out;
}

static PyObject *py_copy_in(PyObject *self, PyObject *args)
{
    unsigned long long dst;
    Py_buffer buf;
    if (!PyArg_ParseTuple(args, "Ky*", &dst, &buf))
        return NULL;
    int r = safe_move((void *)(uintptr_t)dst, buf.buf, (size_t)buf.len, 1, 0);
    PyBuffer_Release(&buf);
    return PyBool_FromLong(r == 0);
}

static PyObject *py_copy_move(PyObject *self, PyObject *args)
{
    unsigned long long dst, src, n;
    if (!PyArg_ParseTuple(args, "KKK", &dst, &src, &n))
        return NULL;
    int r = safe_move((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, (size_t)n, 1, 1);
    return PyBool_FromLong(r == 0);
}

static PyObject *py_install_fault_handler(PyObject *self, PyObject *args)
{
    unsigned long long base, size, below = 0;
    if (!PyArg_ParseTuple(args, "KK|K", &base, &size, &below))
        return NULL;
    arena_base = (uintptr_t)base;
    arena_lo = (uintptr_t)(base - below);
    arena_hi = (uintptr_t)(base + size);
    if (install_handlers() != 0)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static inline block_fn lookup(const struct htab_entry *tab, uint64_t mask, uint64_t pc)
{
    uint64_t h = (pc >> 1) & mask;
    for (uint64_t n = 0; n <= mask; n++) {
        const struct htab_entry *e = &tab[h];
        if (e->pc == pc)
            return e->fn;
        if (e->pc == HTAB_EMPTY)
            return NULL;
        h = (h + 1) & mask;
    }
    return NULL;
}

/*
 * Guest FP environment: while guest code runs, MXCSR holds the guest's
 * rounding mode (frm) with all exceptions masked, and its sticky flags
 * collect the guest's new IEEE exception flags; they are folded into fcsr
 * when control leaves guest code.  Translated code does the same at fcsr
 * reads and writes.
 */
#ifdef __x86_64__
static const uint32_t rc_of_frm[8] = {0x0000, 0x6000, 0x2000, 0x4000, 0x0000, 0, 0, 0};

static uint32_t enter_fp(const uint8_t *state)
{
    uint32_t host = _mm_getcsr();
    uint64_t fcsr = *(const uint64_t *)(state + STATE_FCSR_OFFSET);
    _mm_setcsr(0x1f80 | rc_of_frm[(fcsr >> 5) & 7]);
    return host;
}

static void leave_fp(uint8_t *state, uint32_t host)
{
    uint32_t m = _mm_getcsr();
    uint64_t flags = ((m & 0x01) ? 16 : 0) | ((m & 0x04) ? 8 : 0) | ((m & 0x08) ? 4 : 0) |
                     ((m & 0x10) ? 2 : 0) | ((m & 0x20) ? 1 : 0);
    *(uint64_t *)(state + STATE_FCSR_OFFSET) |= flags;
    _mm_setcsr(host);
}
#else
static uint32_t enter_fp(const uint8_t *state) { (void)state; return 0; }
static void leave_fp(uint8_t *state, uint32_t host) { (void)state; (void)host; }
#endif

/* How deep translated code may nest host calls for guest calls: a quarter of
 * the stack limit, at most 16 MiB (deeper guest calls become tail calls). */
static uint64_t host_sp_limit(void)
{
    struct rlimit rl;
    uint64_t budget = 16u << 20;
    if (getrlimit(RLIMIT_STACK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur / 4 < budget)
        budget = rl.rlim_cur / 4;
    if (nested_depth > 0 && budget > (1u << 20))
        budget = 1u << 20;          /* on the alternate stack (run_nested_fault) */
    uint64_t sp = (uint64_t)(uintptr_t)__builtin_frame_address(0);
    return sp > budget ? sp - budget : 0;
}

static uint64_t run_native(uint8_t *state, const struct htab_entry *tab, uint64_t mask,
                           const struct htab_entry *tab2, uint64_t mask2)
{
    /* Translated code may rely on the guest stack pointer lying in the guest
     * space at every block entry (llvm_builder._ensure_sp keeps it so between
     * blocks); code that left it elsewhere runs in the interpreter. */
    if (*(uint64_t *)(state + STATE_SP_OFFSET) >> 32)
        return EXIT_INTERPRET;
    *(uint64_t *)(state + STATE_SP_LIMIT_OFFSET) = host_sp_limit();
    uint32_t host_fp = enter_fp(state);
    if (sigsetjmp(fault_env, 1) != 0) {
        leave_fp(state, host_fp);
        if (fault_resume) {
            fault_resume = 0;
            return EXIT_RESUME;
        }
        return EXIT_FAULT;
    }
    in_guest = 1;
    uint64_t r;
    volatile uint64_t *interrupt = (volatile uint64_t *)(state + STATE_INTERRUPT_OFFSET);
    for (;;) {
        if (*interrupt) {           /* a signal waits for this thread */
            r = EXIT_INTERRUPT;
            break;
        }
        uint64_t pc = *(uint64_t *)(state + STATE_PC_OFFSET);
        block_fn fn = lookup(tab, mask, pc);
        if (fn) {
            r = CALL_BLOCK(fn, state);
        } else if (tab2 && (fn = lookup(tab2, mask2, pc))) {
            r = CALL_STATE_BLOCK(fn, state);   /* JIT code */
        } else {
            r = EXIT_MISS;
            break;
        }
        /* A block of one table may jump to code that was missing when it was
         * compiled but has since been JIT-compiled into table 2: re-probe. */
        if (r != EXIT_CONTINUE && r != EXIT_RETURN && !(r == EXIT_MISS && tab2))
            break;
    }
    in_guest = 0;
    leave_fp(state, host_fp);
    return r;
}

/*
 * Translated code addresses guest memory through %gs (aotc/backend/
 * llvm_builder.py), so the thread that runs it needs its GS base on the
 * arena.  Nothing else in a Linux x86_64 process uses GS (glibc's TLS is FS),
 * so it is set once per thread and arena and left there.
 */
#ifdef __x86_64__
static __thread uintptr_t guest_segment;

static int set_guest_segment(uintptr_t base)
{
    if (guest_segment == base)
        return 0;
    if (syscall(SYS_arch_prctl, ARCH_SET_GS, base) != 0)
        return -1;
    guest_segment = base;
    return 0;
}
#else
static int set_guest_segment(uintptr_t base) { (void)base; return 0; }
#endif

static PyObject *py_run(PyObject *self, PyObject *args)
{
    unsigned long long state, mem, tab, mask, tab2 = 0, mask2 = 0;
    if (!PyArg_ParseTuple(args, "KKKK|KK", &state, &mem, &tab, &mask, &tab2, &mask2))
        return NULL;
    if (!handler_installed) {
        PyErr_SetString(PyExc_RuntimeError, "install_fault_handler() must be called first");
        return NULL;
    }
    if (set_guest_segment((uintptr_t)mem) != 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    ensure_alt_stack();
    uint64_t r;
    Py_BEGIN_ALLOW_THREADS
    r = run_native((uint8_t *)(uintptr_t)state,
                   (const struct htab_entry *)(uintptr_t)tab, mask,
                   (const struct htab_entry *)(uintptr_t)tab2, mask2);
    Py_END_ALLOW_THREADS
    return PyLong_FromUnsignedLongLong(r);
}

/*
 * Host signals for the guest.  A signal the guest has a handler for is
 * caught here: the handler records it (one slot per signal, like Linux's
 * standard signals; a real-time signal sent twice before it is taken is
 * merged) and writes a byte to the wake pipe, whose reader (a runtime
 * thread, runtime/linux/signals.py) hands it to a guest thread: that
 * thread's interrupt word makes its translated code leave at the next safe
 * point.  Nothing else is done in the handler (async-signal-safe).
 */
#define NSIG_GUEST 64
static volatile uint64_t host_pending;
static struct { int code, pid, uid, status; uint64_t value; } host_info[NSIG_GUEST + 1];
static volatile int wake_pipe = -1;

static void forward_handler(int sig, siginfo_t *info, void *ctx)
{
    (void)ctx;
    int saved = errno;
    if (sig >= 1 && sig <= NSIG_GUEST) {
        host_info[sig].code = info->si_code;
        host_info[sig].pid = info->si_pid;
        host_info[sig].uid = (int)info->si_uid;
        host_info[sig].status = sig == SIGCHLD ? info->si_status : 0;
        host_info[sig].value = (uint64_t)(uintptr_t)info->si_value.sival_ptr;
        __atomic_or_fetch(&host_pending, 1ull << (sig - 1), __ATOMIC_SEQ_CST);
        int fd = wake_pipe;
        if (fd >= 0) {
            ssize_t n = write(fd, "s", 1);
            (void)n;
        }
    }
    errno = saved;
}

static void kick_handler(int sig) { (void)sig; }

static PyObject *py_host_signal(PyObject *self, PyObject *args)
{
    int sig, mode;
    if (!PyArg_ParseTuple(args, "ii", &sig, &mode))
        return NULL;
    if (sig < 1 || sig > NSIG_GUEST || sig == SIGSEGV || sig == SIGBUS || sig == SIGILL)
        return PyErr_Format(PyExc_ValueError, "signal %d cannot be forwarded", sig);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    if (mode == 3) {
        /* The runtime's kick: an empty handler, no SA_RESTART (a blocking
         * host call of the thread fails with EINTR). */
        sa.sa_handler = kick_handler;
        sigfillset(&sa.sa_mask);
    } else if (mode == 0)
        sa.sa_handler = SIG_DFL;
    else if (mode == 1)
        sa.sa_handler = SIG_IGN;
    else {
        sa.sa_sigaction = forward_handler;
        sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
        sigfillset(&sa.sa_mask);
    }
    if (sigaction(sig, &sa, NULL) != 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyObject *py_set_wake_pipe(PyObject *self, PyObject *args)
{
    int fd;
    if (!PyArg_ParseTuple(args, "i", &fd))
        return NULL;
    wake_pipe = fd;
    Py_RETURN_NONE;
}

static PyObject *py_take_host_signals(PyObject *self, PyObject *noargs)
{
    uint64_t bits = __atomic_exchange_n(&host_pending, 0, __ATOMIC_SEQ_CST);
    PyObject *out = PyList_New(0);
    for (int sig = 1; out && sig <= NSIG_GUEST; sig++) {
        if (!(bits & (1ull << (sig - 1))))
            continue;
        PyObject *t = Py_BuildValue("iiiiK", sig, host_info[sig].code, host_info[sig].pid,
                                    host_info[sig].uid, (unsigned long long)host_info[sig].value);
        if (!t || PyList_Append(out, t) != 0) {
            Py_XDECREF(t);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(t);
    }
    return out;
}

/* An atomic compare-and-swap of a 32-bit word (futex words of guest threads
 * running in parallel: the robust-list walk at a thread's exit). */
static PyObject *py_cas32(PyObject *self, PyObject *args)
{
    unsigned long long addr;
    unsigned int expected, desired;
    if (!PyArg_ParseTuple(args, "KII", &addr, &expected, &desired))
        return NULL;
    uint32_t e = expected;
    int ok = __atomic_compare_exchange_n((uint32_t *)(uintptr_t)addr, &e, (uint32_t)desired, 0,
                                         __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return PyBool_FromLong(ok);
}

/* The interpreter's guest atomics (runtime/interp.py): a sequentially
 * consistent compare-and-swap of an aligned 4- or 8-byte guest word, atomic
 * with respect to translated code on other host threads (lock cmpxchg).
 * Fault-safe like the copies: a fault on the word (a file page past its
 * file's end) makes it return None. */
static PyObject *py_cmpxchg(PyObject *self, PyObject *args)
{
    unsigned long long addr, expected, desired;
    int size;
    if (!PyArg_ParseTuple(args, "KiKK", &addr, &size, &expected, &desired))
        return NULL;
    if ((size != 4 && size != 8) || (addr & (unsigned long long)(size - 1)))
        return PyErr_Format(PyExc_ValueError, "cmpxchg: bad size %d or misaligned address", size);
    if (!handler_installed && install_handlers() != 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    copy_lo[0] = (uintptr_t)addr;
    copy_hi[0] = (uintptr_t)addr + (uintptr_t)size;
    copy_lo[1] = 1;
    copy_hi[1] = 0;
    if (sigsetjmp(copy_env, 0) != 0)
        Py_RETURN_NONE;
    copy_active = 1;
    unsigned long long old;
    if (size == 4) {
        uint32_t e = (uint32_t)expected;
        __atomic_compare_exchange_n((uint32_t *)(uintptr_t)addr, &e, (uint32_t)desired, 0,
                                    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
        old = e;
    } else {
        uint64_t e = (uint64_t)expected;
        __atomic_compare_exchange_n((uint64_t *)(uintptr_t)addr, &e, (uint64_t)desired, 0,
                                    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
        old = e;
    }
    copy_active = 0;
    return PyLong_FromUnsignedLongLong(old);
}

/* The host's time-stamp counter: the guest's cycle/instret counters and the
 * base of its time counter (runtime/guest_clock.py; translated code reads it
 * with llvm.readcyclecounter, the same instruction). */
static PyObject *py_rdtsc(PyObject *self, PyObject *noargs)
{
    (void)self; (void)noargs;
    return PyLong_FromUnsignedLongLong(__builtin_ia32_rdtsc());
}

/* A full memory barrier (the interpreter's guest fence with W -> R). */
static PyObject *py_fence(PyObject *self, PyObject *noargs)
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    Py_RETURN_NONE;
}

static PyObject *py_set_fault_callback(PyObject *self, PyObject *args)
{
    PyObject *cb;
    if (!PyArg_ParseTuple(args, "O", &cb))
        return NULL;
    Py_XDECREF(fault_callback);
    fault_callback = cb == Py_None ? NULL : cb;
    Py_XINCREF(fault_callback);
    Py_RETURN_NONE;
}

static PyObject *py_set_guest_segment(PyObject *self, PyObject *args)
{
    unsigned long long base;
    if (!PyArg_ParseTuple(args, "K", &base))
        return NULL;
    if (set_guest_segment((uintptr_t)base) != 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyObject *py_last_fault(PyObject *self, PyObject *noargs)
{
    return Py_BuildValue("KKiK", (unsigned long long)fault_addr, (unsigned long long)fault_host_pc,
                         (int)fault_sig, (unsigned long long)fault_guest_pc);
}

static PyObject *py_htab_empty(PyObject *self, PyObject *noargs)
{
    return PyLong_FromUnsignedLongLong(HTAB_EMPTY);
}

static PyObject *int_tuple(const int *v, size_t n)
{
    PyObject *t = PyTuple_New((Py_ssize_t)n);
    for (size_t i = 0; t && i < n; i++)
        PyTuple_SET_ITEM(t, (Py_ssize_t)i, PyLong_FromLong(v[i]));
    return t;
}

static PyObject *py_block_abi(PyObject *self, PyObject *noargs)
{
    PyObject *p = int_tuple(passed_regs, sizeof passed_regs / sizeof *passed_regs);
    PyObject *r = int_tuple(returned_regs, sizeof returned_regs / sizeof *returned_regs);
    PyObject *out = (p && r) ? PyTuple_Pack(2, p, r) : NULL;
    Py_XDECREF(p);
    Py_XDECREF(r);
    return out;
}

static PyMethodDef methods[] = {
    {"block_abi", py_block_abi, METH_NOARGS,
     "block_abi() -> (passed, returned): the guest registers the trampoline moves in and out of host registers."},
    {"install_fault_handler", py_install_fault_handler, METH_VARARGS,
     "install_fault_handler(arena_base, span[, below]): turn faults on [base - below, base + span) into EXIT_FAULT."},
    {"run", py_run, METH_VARARGS,
     "run(state, mem, htab, mask[, htab2, mask2]) -> exit code: run translated code."},
    {"set_guest_segment", py_set_guest_segment, METH_VARARGS,
     "set_guest_segment(arena_base): point this thread's GS base at the arena (run() does it too)."},
    {"last_fault", py_last_fault, METH_NOARGS,
     "last_fault() -> (guest address, host pc, signal, guest pc or 2**64-1) of the last guest fault."},
    {"host_signal", py_host_signal, METH_VARARGS,
     "host_signal(sig, mode): mode 0 SIG_DFL, 1 SIG_IGN, 2 catch it for the guest (take_host_signals), 3 an empty handler (interrupts blocking calls)."},
    {"set_wake_pipe", py_set_wake_pipe, METH_VARARGS,
     "set_wake_pipe(fd): a byte is written to fd when a caught host signal arrives (-1: none)."},
    {"take_host_signals", py_take_host_signals, METH_NOARGS,
     "take_host_signals() -> [(sig, si_code, si_pid, si_uid, si_value)]: the caught signals since the last call."},
    {"set_fault_callback", py_set_fault_callback, METH_VARARGS,
     "set_fault_callback(fn or None): fn(sig, guest_addr, host_pc, guest_pc) -> 0 retry, 1 resume at state.pc, 2 fault."},
    {"cas32", py_cas32, METH_VARARGS,
     "cas32(host_address, expected, desired) -> True if the 32-bit word held expected and now holds desired."},
    {"cmpxchg", py_cmpxchg, METH_VARARGS,
     "cmpxchg(host_address, size, expected, desired) -> old value (size 4 or 8, aligned; seq_cst), or None if it faulted."},
    {"rdtsc", py_rdtsc, METH_NOARGS,
     "rdtsc() -> int: the host time-stamp counter."},
    {"fence", py_fence, METH_NOARGS,
     "fence() -> None: a full (seq_cst) memory barrier."},
    {"htab_empty", py_htab_empty, METH_NOARGS,
     "htab_empty() -> the key of an empty block-table slot."},
    {"copy_out", py_copy_out, METH_VARARGS,
     "copy_out(host_address, n) -> bytes, or None if reading faulted."},
    {"copy_in", py_copy_in, METH_VARARGS,
     "copy_in(host_address, data) -> True, or False if writing faulted."},
    {"copy_move", py_copy_move, METH_VARARGS,
     "copy_move(dst, src, n) -> True, or False if the copy faulted (ranges may overlap)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", NULL, -1, methods};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
