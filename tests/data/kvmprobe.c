/* Probes for tests/test_kvm_threads_signals.py: x86_64 guests in KVM, one
 * behaviour per mode (argv[1]); compiled at test time with the host gcc
 * (static glibc) and run both natively and under aotrun: the output must
 * be the same.  (tests/data/sigprobe.c has the modes shared with the
 * riscv64 tests: exit from a thread, SIGINT from outside, EINTR.) */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <ucontext.h>
#include <unistd.h>

static void on(int sig, void (*fn)(int, siginfo_t *, void *), int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = fn;
    sa.sa_flags = SA_SIGINFO | flags;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, NULL))
        perror("sigaction");
}

static void alarm_in(long usec)
{
    struct itimerval it;
    memset(&it, 0, sizeof it);
    it.it_value.tv_sec = usec / 1000000;
    it.it_value.tv_usec = usec % 1000000;
    setitimer(ITIMER_REAL, &it, NULL);
}

/* ---- parallel: N threads, mutex + condvar + join ---------------------- */
#define NT 4
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int turn, shared_total;
static uint64_t results[NT];

static void *worker(void *arg)
{
    long id = (long)arg;
    uint64_t x = (uint64_t)id + 1, acc = 0;
    for (long i = 0; i < 20000000; i++) {          /* pure computation, no syscalls */
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        acc += x % 1000;
    }
    results[id] = acc;
    pthread_mutex_lock(&mu);
    while (turn != id)                             /* finish in id order */
        pthread_cond_wait(&cv, &mu);
    shared_total += (int)(acc % 1000);
    turn++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    return (void *)(id * 10);
}

static int parallel(void)
{
    pthread_t t[NT];
    for (long i = 0; i < NT; i++)
        pthread_create(&t[i], NULL, worker, (void *)i);
    for (int i = 0; i < NT; i++) {
        void *r;
        pthread_join(t[i], &r);
        printf("thread %d: acc=%llu ret=%ld\n", i, (unsigned long long)results[i], (long)r);
    }
    printf("total=%d turn=%d\n", shared_total, turn);
    return 0;
}

/* ---- many short threads (vCPUs are reused) ------------------------------ */
static void *tiny(void *arg) { return (void *)((long)arg + 1); }

static int many_threads(void)
{
    long sum = 0;
    for (long i = 0; i < 300; i++) {
        pthread_t t;
        void *r;
        pthread_create(&t, NULL, tiny, (void *)i);
        pthread_join(t, &r);
        sum += (long)r;
    }
    printf("300 threads, sum=%ld\n", sum);
    return 0;
}

/* ---- SIGSEGV with siglongjmp, si_addr and the sigcontext ---------------- */
static sigjmp_buf jb;
static volatile void *fault_addr;
static volatile int fault_code, fault_trapno, fault_err_write, cr2_ok;

static void on_segv(int sig, siginfo_t *si, void *uc_)
{
    ucontext_t *uc = uc_;
    fault_addr = si->si_addr;
    fault_code = si->si_code;
    fault_trapno = (int)uc->uc_mcontext.gregs[REG_TRAPNO];
    fault_err_write = (uc->uc_mcontext.gregs[REG_ERR] & 2) != 0;
    cr2_ok = (void *)uc->uc_mcontext.gregs[REG_CR2] == si->si_addr;
    siglongjmp(jb, sig);
}

static int segv(void)
{
    on(SIGSEGV, on_segv, 0);
    volatile int *p = (int *)0x10;
    if (sigsetjmp(jb, 1) == 0) {
        *p = 1;
        printf("no fault?\n");
    }
    printf("null store: si_addr ok %s code %s trapno %d write %d cr2 %d\n",
           fault_addr == (void *)p ? "yes" : "no", fault_code == SEGV_MAPERR ? "MAPERR" : "?",
           fault_trapno, fault_err_write, cr2_ok);
    char *page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (sigsetjmp(jb, 1) == 0) {
        page[100] = 1;
        printf("no fault?\n");
    }
    printf("read-only store: si_addr ok %s code %s write %d\n",
           fault_addr == page + 100 ? "yes" : "no", fault_code == SEGV_ACCERR ? "ACCERR" : "?",
           fault_err_write);
    sigset_t cur;
    sigprocmask(SIG_BLOCK, NULL, &cur);
    printf("after siglongjmp: SIGSEGV blocked %d\n", sigismember(&cur, SIGSEGV));
    return 0;
}

/* ---- a handler that changes the context: skip the faulting instruction,
 * every other register (rcx and r11 too) as it was ---------------------- */
static void on_segv_skip(int sig, siginfo_t *si, void *uc_)
{
    (void)sig; (void)si;
    ucontext_t *uc = uc_;
    uc->uc_mcontext.gregs[REG_RIP] += 3;           /* mov %eax,(%rbx) is 2 bytes; padded to 3 below */
    uc->uc_mcontext.gregs[REG_RDX] = 0x1234;       /* and a register the handler sets */
}

static int skip(void)
{
    on(SIGSEGV, on_segv_skip, 0);
    uint64_t rcx, r11, rdx, r12;
    __asm__ volatile(
        "mov $0x1111222233334444, %%rcx\n\t"
        "mov $0x5555666677778888, %%r11\n\t"
        "mov $0x9999aaaabbbbcccc, %%r12\n\t"
        "xor %%edx, %%edx\n\t"
        "xor %%ebx, %%ebx\n\t"
        "mov %%eax, (%%rbx)\n\t"          /* 89 03: faults, the handler skips 3 bytes */
        "nop\n\t"
        "mov %%rcx, %0\n\t"
        "mov %%r11, %1\n\t"
        "mov %%rdx, %2\n\t"
        "mov %%r12, %3\n\t"
        : "=m"(rcx), "=m"(r11), "=m"(rdx), "=m"(r12)
        :
        : "rax", "rbx", "rcx", "rdx", "r11", "r12", "memory");
    printf("skipped: rcx %s r11 %s r12 %s rdx %#llx\n", rcx == 0x1111222233334444ull ? "kept" : "LOST",
           r11 == 0x5555666677778888ull ? "kept" : "LOST", r12 == 0x9999aaaabbbbccccull ? "kept" : "LOST",
           (unsigned long long)rdx);
    return 0;
}

/* ---- other synchronous signals ------------------------------------------ */
static volatile uintptr_t trap_rip;
static volatile int trap_sig, trap_code;

static void on_trap(int sig, siginfo_t *si, void *uc_)
{
    ucontext_t *uc = uc_;
    trap_sig = sig;
    trap_code = si->si_code;
    trap_rip = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    siglongjmp(jb, sig);
}

extern char ud2_here[], int3_after[], div_here[];

static int traps(void)
{
    on(SIGILL, on_trap, 0);
    on(SIGTRAP, on_trap, 0);
    on(SIGFPE, on_trap, 0);
    if (sigsetjmp(jb, 1) == 0)
        __asm__ volatile("ud2_here: ud2");
    printf("ud2: SIGILL %d code ILL_ILLOPN %d rip at ud2 %d\n", trap_sig == SIGILL,
           trap_code == ILL_ILLOPN, trap_rip == (uintptr_t)ud2_here);
    if (sigsetjmp(jb, 1) == 0)
        __asm__ volatile("int3\nint3_after: nop");
    printf("int3: SIGTRAP %d code SI_KERNEL %d rip after int3 %d\n", trap_sig == SIGTRAP,
           trap_code == SI_KERNEL, trap_rip == (uintptr_t)int3_after);
    if (sigsetjmp(jb, 1) == 0) {
        int zero = 0;
        __asm__ volatile("xor %%edx, %%edx\n\tmov $7, %%eax\ndiv_here: divl %0" : : "r"(zero) : "rax", "rdx");
    }
    printf("div by zero: SIGFPE %d code FPE_INTDIV %d rip at div %d\n", trap_sig == SIGFPE,
           trap_code == FPE_INTDIV, trap_rip == (uintptr_t)div_here);
    return 0;
}

/* ---- SIGALRM interrupting loops that make no system calls --------------- */
static volatile int alarmed;
static volatile double handler_junk;

static void on_alarm(int sig, siginfo_t *si, void *uc)
{
    (void)sig; (void)si; (void)uc;
    double a = 3.25;                       /* clobber FP registers in the handler */
    for (int i = 0; i < 100; i++)
        a = a * 1.0001 + 0.5;
    handler_junk = a;
    alarmed = 1;
}

static int alarm_loop(void)
{
    on(SIGALRM, on_alarm, 0);
    alarm_in(100000);
    volatile unsigned long n = 0;
    while (!alarmed)
        n++;
    printf("busy loop interrupted: n > 0 %d\n", n > 0);
    /* FP state survives a handler: the loop keeps its values in xmm registers */
    alarmed = 0;
    alarm_in(100000);
    double acc = 1.0, step = 0.5;
    unsigned long k = 0;
    while (!alarmed) {
        acc = acc * 0.5 + step;            /* stays exactly 1.0 */
        acc = acc + 1.0 - 1.0;
        k++;
    }
    printf("fp loop: acc == 1.0 %d k > 0 %d\n", acc == 1.0, k > 0);
    return 0;
}

/* ---- sigaltstack ----------------------------------------------------------- */
static char *alt_base;
static size_t alt_size;
static volatile int on_alt, ss_onstack;

static void on_usr1_alt(int sig, siginfo_t *si, void *uc)
{
    (void)sig; (void)si; (void)uc;
    char local;
    on_alt = &local >= alt_base && &local < alt_base + alt_size;
    stack_t cur;
    sigaltstack(NULL, &cur);
    ss_onstack = (cur.ss_flags & SS_ONSTACK) != 0;
}

static int altstack(void)
{
    alt_size = 65536;
    alt_base = malloc(alt_size);
    stack_t ss = {.ss_sp = alt_base, .ss_size = alt_size, .ss_flags = 0};
    printf("sigaltstack: %d\n", sigaltstack(&ss, NULL));
    on(SIGUSR1, on_usr1_alt, SA_ONSTACK);
    raise(SIGUSR1);
    printf("SA_ONSTACK: handler on the altstack %d, SS_ONSTACK inside %d\n", on_alt, ss_onstack);
    stack_t cur;
    sigaltstack(NULL, &cur);
    printf("outside: SS_ONSTACK %d\n", (cur.ss_flags & SS_ONSTACK) != 0);
    on(SIGUSR1, on_usr1_alt, 0);
    raise(SIGUSR1);
    printf("no SA_ONSTACK: handler on the altstack %d\n", on_alt);
    return 0;
}

/* ---- SA_SIGINFO fields ---------------------------------------------------- */
static volatile int info_signo, info_code, info_pid_ok, info_value;

static void on_info(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    info_signo = si->si_signo == sig;
    info_code = si->si_code;
    info_pid_ok = si->si_pid == getpid();
    info_value = si->si_value.sival_int;
}

static int siginfo(void)
{
    on(SIGUSR2, on_info, 0);
    kill(getpid(), SIGUSR2);
    printf("kill: signo ok %d code SI_USER %d pid ok %d\n", info_signo, info_code == SI_USER, info_pid_ok);
    raise(SIGUSR2);
    printf("raise: code SI_TKILL %d pid ok %d\n", info_code == SI_TKILL, info_pid_ok);
    union sigval v = {.sival_int = 4321};
    sigqueue(getpid(), SIGUSR2, v);
    printf("sigqueue: code SI_QUEUE %d value %d\n", info_code == SI_QUEUE, info_value);
    return 0;
}

/* ---- blocked, then unblocked ---------------------------------------------- */
static volatile int usr1_count;

static void count_usr1(int sig, siginfo_t *si, void *uc)
{
    (void)sig; (void)si; (void)uc;
    usr1_count++;
}

static int pending(void)
{
    on(SIGUSR1, count_usr1, 0);
    sigset_t set, pend;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, NULL);
    raise(SIGUSR1);
    raise(SIGUSR1);                                /* standard signals do not queue */
    sigpending(&pend);
    printf("blocked: ran %d pending %d\n", usr1_count, sigismember(&pend, SIGUSR1));
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    sigpending(&pend);
    printf("unblocked: ran %d pending %d\n", usr1_count, sigismember(&pend, SIGUSR1));
    return 0;
}

/* ---- a signal to another thread that spins without system calls ---------- */
static volatile int spin_stop;
static volatile pid_t handled_tid;

static void on_usr2_thread(int sig, siginfo_t *si, void *uc)
{
    (void)sig; (void)si; (void)uc;
    handled_tid = (pid_t)syscall(SYS_gettid);
    spin_stop = 1;
}

static volatile pid_t spinner_tid;

static void *spinner(void *arg)
{
    (void)arg;
    spinner_tid = (pid_t)syscall(SYS_gettid);
    while (!spin_stop)
        ;
    return NULL;
}

static int thread_signal(void)
{
    on(SIGUSR2, on_usr2_thread, 0);
    pthread_t t;
    pthread_create(&t, NULL, spinner, NULL);
    while (!spinner_tid)
        usleep(1000);
    usleep(50000);
    pthread_kill(t, SIGUSR2);
    pthread_join(t, NULL);
    printf("pthread_kill to a spinning thread: handled in it %d\n", handled_tid == spinner_tid);
    return 0;
}

/* ---- threads spinning forever (for --timeout) ------------------------------- */
static void *spin_forever(void *arg)
{
    (void)arg;
    for (volatile unsigned long n = 0;; n++)
        ;
    return NULL;
}

static int spin_threads(void)
{
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, spin_forever, NULL);
    printf("ready\n");
    pthread_join(t[0], NULL);
    return 0;
}

/* ---- latency: system calls, and signals to a spinning thread ---------------- */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int latency(void)
{
    int n = 20000;
    double t0 = now();
    for (int i = 0; i < n; i++)
        syscall(SYS_getppid);
    double t1 = now();
    fprintf(stderr, "getppid: %.2f us per call\n", (t1 - t0) / n * 1e6);
    /* signal round trip: raise() → handler → sigreturn */
    on(SIGUSR1, count_usr1, 0);
    int m = 2000;
    t0 = now();
    for (int i = 0; i < m; i++)
        raise(SIGUSR1);
    t1 = now();
    fprintf(stderr, "raise+handler+sigreturn: %.2f us per signal\n", (t1 - t0) / m * 1e6);
    printf("latency done\n");
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    static const struct { const char *name; int (*fn)(void); } modes[] = {
        {"parallel", parallel}, {"many-threads", many_threads}, {"segv", segv}, {"skip", skip},
        {"traps", traps}, {"alarm", alarm_loop}, {"altstack", altstack}, {"siginfo", siginfo},
        {"pending", pending}, {"thread-signal", thread_signal}, {"spin-threads", spin_threads},
        {"latency", latency},
    };
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        if (!strcmp(mode, modes[i].name))
            return modes[i].fn();
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}
