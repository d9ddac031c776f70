/* signals: signal()/sigaction handlers for raise() and kill(getpid()),
 * SA_SIGINFO fields, sigqueue values, SIGSEGV handlers that siglongjmp out
 * (NULL store, PROT_NONE read) or fix the page and return (the store is
 * retried), SIGALRM interrupting a loop that makes no system calls (integer
 * and floating point; the handler's FP work and rounding-mode change do not
 * leak), sigaltstack with SA_ONSTACK, the handler's signal mask, a blocked
 * signal pending until sigprocmask unblocks it, SA_RESETHAND, SA_NODEFER
 * versus deferred nesting, sigsuspend, sigtimedwait, nanosleep interrupted
 * with EINTR, errno saved by a handler.  Prints yes/no and counts only. */
#define _GNU_SOURCE
#include <errno.h>
#include <fenv.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *yesno(int c) { return c ? "yes" : "no"; }

static const char *code_name(int code)
{
    switch (code) {
    case SI_USER: return "SI_USER";
    case SI_TKILL: return "SI_TKILL";
    case SI_QUEUE: return "SI_QUEUE";
    case SI_KERNEL: return "SI_KERNEL";
    case SI_TIMER: return "SI_TIMER";
    default: return "other";
    }
}

/* qemu-riscv64 7.2 (the reference) reads the riscv kernel struct sigaction
 * as if it had sa_restorer: it takes sa_mask from the word after the real
 * one, which musl leaves uninitialised (glibc passes zeros there).  Zeroing
 * the stack that sigaction's frames are about to use makes that word 0, the
 * empty sa_mask every action here has.  (For the same reason no action
 * here uses sa_mask.) */
static __attribute__((noinline)) void scrub_stack(void)
{
    volatile char buf[4096];
    for (unsigned i = 0; i < sizeof buf; i++)
        buf[i] = 0;
}

static void set_signal(int sig, void (*h)(int))
{
    scrub_stack();
    signal(sig, h);
}

static void set_handler(int sig, void (*h)(int), int flags)
{
    struct sigaction sa;
    scrub_stack();
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = h;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

static void set_action(int sig, void (*h)(int, siginfo_t *, void *), int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = h;
    sa.sa_flags = SA_SIGINFO | flags;
    sigemptyset(&sa.sa_mask);
    scrub_stack();
    sigaction(sig, &sa, NULL);
}

static void one_shot_timer(long usec)
{
    struct itimerval it;
    memset(&it, 0, sizeof it);
    it.it_value.tv_sec = usec / 1000000;
    it.it_value.tv_usec = usec % 1000000;
    setitimer(ITIMER_REAL, &it, NULL);
}

/* -- plain handlers ---------------------------------------------------- */
static volatile sig_atomic_t plain_count, plain_sig;

static void plain(int sig)
{
    plain_count++;
    plain_sig = sig;
}

/* -- SA_SIGINFO --------------------------------------------------------- */
static volatile sig_atomic_t info_count;
static volatile int info_signo, info_code, info_pid, info_value, info_uc_set;

static void with_info(int sig, siginfo_t *si, void *uc)
{
    info_count++;
    info_signo = si->si_signo;
    info_code = si->si_code;
    info_pid = si->si_pid;
    info_value = si->si_code == SI_QUEUE ? si->si_value.sival_int : 0;
    info_uc_set = uc != NULL;
}

/* -- SIGSEGV ------------------------------------------------------------ */
static sigjmp_buf segv_jump;
static void *volatile segv_addr;
static volatile int segv_code;
static char *retry_page;
static volatile sig_atomic_t retry_count;

static void segv_out(int sig, siginfo_t *si, void *uc)
{
    segv_addr = si->si_addr;
    segv_code = si->si_code;
    siglongjmp(segv_jump, 1);
}

static void segv_fix(int sig, siginfo_t *si, void *uc)
{
    retry_count++;
    segv_addr = si->si_addr;
    segv_code = si->si_code;
    /* unconditionally: a wrong si_addr must print "no", not fault forever */
    mprotect(retry_page, 4096, PROT_READ | PROT_WRITE);
}

/* -- SIGALRM ------------------------------------------------------------ */
static volatile sig_atomic_t alarm_flag;
static volatile double handler_sink;

static void on_alarm(int sig)
{
    /* FP work in the handler (caller-saved FP registers get used) and a
     * rounding-mode change it does not undo: sigreturn restores both. */
    double a = handler_sink + 1.5, b = a * 3.25, c = b / 7.0, d = c - a;
    fesetround(FE_UPWARD);
    handler_sink = a + b + c + d;
    alarm_flag = 1;
}

/* -- sigaltstack -------------------------------------------------------- */
static char alt_stack[65536] __attribute__((aligned(16)));
static volatile int alt_local_on, alt_query_onstack;

static void on_alt(int sig)
{
    volatile char local = 0;
    uintptr_t p = (uintptr_t)&local, lo = (uintptr_t)alt_stack;
    stack_t cur;
    alt_local_on = p >= lo && p < lo + sizeof alt_stack;
    alt_query_onstack = sigaltstack(NULL, &cur) == 0 && (cur.ss_flags & SS_ONSTACK);
    (void)local;
}

/* -- the handler's mask ------------------------------------------------- */
/* (Not sa_mask: see scrub_stack.) */
static volatile int mask_own_blocked, mask_other_blocked;

static void mask_probe(int sig)
{
    sigset_t cur;
    sigprocmask(SIG_BLOCK, NULL, &cur);
    mask_own_blocked = sigismember(&cur, sig);
    mask_other_blocked = sigismember(&cur, SIGHUP);
}

/* -- nesting ------------------------------------------------------------ */
static volatile char events[64];
static volatile int nevents;
static volatile sig_atomic_t depth, entries;

static void print_events(const char *label)
{
    char buf[64];
    int i;
    for (i = 0; i < nevents && i < 63; i++)
        buf[i] = events[i];
    buf[i] = 0;
    printf("%s: %s\n", label, buf);
}

static void nest(int sig)
{
    int me = ++entries;
    depth++;
    events[nevents++] = 'a' + me - 1;   /* enter: a, b */
    if (me == 1)
        raise(sig);
    events[nevents++] = 'A' + me - 1;   /* leave: A, B */
    depth--;
}

/* -- errno -------------------------------------------------------------- */
static void errno_clobber(int sig)
{
    int saved = errno;
    close(-1);              /* EBADF */
    errno = saved;
}

static void errno_careless(int sig)
{
    close(-1);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    pid_t me = getpid();
    sigset_t set, old;

    /* signal(): raise and kill */
    set_signal(SIGUSR1, plain);
    raise(SIGUSR1);
    printf("signal+raise: count %d sig is USR1 %s\n", (int)plain_count, yesno(plain_sig == SIGUSR1));
    kill(me, SIGUSR1);
    printf("signal+kill: count %d (handler stays installed)\n", (int)plain_count);
    set_signal(SIGUSR1, SIG_IGN);
    raise(SIGUSR1);
    printf("SIG_IGN: count %d\n", (int)plain_count);

    /* sigaction with SA_SIGINFO */
    set_action(SIGUSR2, with_info, 0);
    raise(SIGUSR2);
    printf("siginfo raise: count %d signo ok %s code %s uc %s\n", (int)info_count,
           yesno(info_signo == SIGUSR2), code_name(info_code), yesno(info_uc_set));
    kill(me, SIGUSR2);
    printf("siginfo kill: count %d signo ok %s code %s si_pid is getpid %s\n", (int)info_count,
           yesno(info_signo == SIGUSR2), code_name(info_code), yesno(info_pid == me));
    union sigval val;
    val.sival_int = 1234;
    sigqueue(me, SIGUSR2, val);
    printf("sigqueue: count %d code %s value %d si_pid is getpid %s\n", (int)info_count,
           code_name(info_code), info_value, yesno(info_pid == me));

    /* SIGSEGV, leaving the handler with siglongjmp */
    set_action(SIGSEGV, segv_out, 0);
    int *volatile nullp = NULL;
    if (sigsetjmp(segv_jump, 1) == 0) {
        *nullp = 1;
        printf("null store: not caught\n");
    } else {
        printf("null store: caught, si_addr is the address %s, code %s\n",
               yesno(segv_addr == (void *)nullp), segv_code == SEGV_MAPERR ? "SEGV_MAPERR" : "other");
    }
    char *page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    volatile char *probe = page + 100;
    if (sigsetjmp(segv_jump, 1) == 0) {
        char c = *probe;
        printf("PROT_NONE read: not caught %d\n", c);
    } else {
        printf("PROT_NONE read: caught, si_addr is the address %s, code %s\n",
               yesno(segv_addr == (void *)probe), segv_code == SEGV_ACCERR ? "SEGV_ACCERR" : "other");
    }
    sigprocmask(SIG_BLOCK, NULL, &set);
    printf("after siglongjmp: SIGSEGV unblocked %s\n", yesno(!sigismember(&set, SIGSEGV)));
    munmap(page, 4096);

    /* SIGSEGV, the handler fixes the page and returns: the store is retried */
    retry_page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    set_action(SIGSEGV, segv_fix, 0);
    volatile int *target = (volatile int *)(retry_page + 8);
    *target = 42;
    printf("fault and retry: handler ran %d, si_addr is the address %s, code %s, value %d\n",
           (int)retry_count, yesno(segv_addr == (void *)target),
           segv_code == SEGV_ACCERR ? "SEGV_ACCERR" : "other", *target);
    munmap(retry_page, 4096);
    set_signal(SIGSEGV, SIG_DFL);

    /* SIGALRM interrupts loops that make no system calls */
    set_handler(SIGALRM, on_alarm, 0);
    alarm_flag = 0;
    unsigned long counter = 0;
    one_shot_timer(20000);
    while (!alarm_flag)
        counter++;
    printf("alarm: busy loop interrupted, counter > 0 %s\n", yesno(counter > 0));
    fesetround(FE_TONEAREST);
    alarm_flag = 0;
    double acc = 0.0, scale = 0.5;
    unsigned long n = 0;
    for (int i = 0; i < 1000 && !alarm_flag; i++)      /* warm-up: translated before the timer runs */
        acc = acc * scale + 1.0;
    acc = 0.0;
    one_shot_timer(20000);
    while (!alarm_flag) {
        acc = acc * scale + 1.0;
        n++;
    }
    printf("alarm: fp loop interrupted, acc == 2.0 %s, n > 100 %s, rounding still to nearest %s\n",
           yesno(acc == 2.0), yesno(n > 100), yesno(fegetround() == FE_TONEAREST));

    /* sigaltstack + SA_ONSTACK */
    stack_t ss;
    ss.ss_sp = alt_stack;
    ss.ss_size = sizeof alt_stack;
    ss.ss_flags = 0;
    printf("sigaltstack set: %s\n", yesno(sigaltstack(&ss, NULL) == 0));
    set_handler(SIGUSR1, on_alt, SA_ONSTACK);
    raise(SIGUSR1);
    stack_t cur;
    sigaltstack(NULL, &cur);
    printf("altstack: handler local on it %s, SS_ONSTACK inside %s, outside %s\n",
           yesno(alt_local_on), yesno(alt_query_onstack), yesno(cur.ss_flags & SS_ONSTACK));
    set_handler(SIGUSR1, on_alt, 0);
    raise(SIGUSR1);
    printf("no SA_ONSTACK: handler local on the altstack %s\n", yesno(alt_local_on));
    ss.ss_flags = SS_DISABLE;
    sigaltstack(&ss, NULL);
    sigaltstack(NULL, &cur);
    printf("altstack disabled: %s\n", yesno(cur.ss_flags & SS_DISABLE));

    /* the mask while a handler runs: its own signal is blocked */
    set_handler(SIGUSR1, mask_probe, 0);
    raise(SIGUSR1);
    sigprocmask(SIG_BLOCK, NULL, &set);
    printf("handler mask: own signal blocked %s, others %s; after return: %s\n",
           yesno(mask_own_blocked), yesno(mask_other_blocked), yesno(sigismember(&set, SIGUSR1)));

    /* a blocked signal stays pending until unblocked */
    set_signal(SIGUSR1, plain);
    plain_count = 0;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, &old);
    raise(SIGUSR1);
    sigset_t pend;
    sigpending(&pend);
    printf("blocked: handler ran %d, pending %s\n", (int)plain_count, yesno(sigismember(&pend, SIGUSR1)));
    sigprocmask(SIG_SETMASK, &old, NULL);
    int after_unblock = plain_count;
    sigpending(&pend);
    printf("unblocked: handler ran %d by the time sigprocmask returned, pending %s\n",
           after_unblock, yesno(sigismember(&pend, SIGUSR1)));

    /* SA_RESETHAND */
    plain_count = 0;
    set_handler(SIGUSR2, plain, SA_RESETHAND);
    raise(SIGUSR2);
    struct sigaction q;
    sigaction(SIGUSR2, NULL, &q);
    printf("SA_RESETHAND: handler ran %d, disposition now SIG_DFL %s\n", (int)plain_count,
           yesno(q.sa_handler == SIG_DFL));

    /* re-raising inside the handler: deferred by default, nested with SA_NODEFER */
    nevents = 0;
    entries = 0;
    set_handler(SIGUSR1, nest, 0);
    raise(SIGUSR1);
    print_events("re-raise, default");
    nevents = 0;
    entries = 0;
    set_handler(SIGUSR1, nest, SA_NODEFER);
    raise(SIGUSR1);
    print_events("re-raise, SA_NODEFER");

    /* sigsuspend: SIGALRM blocked, becomes pending, sigsuspend takes it */
    set_handler(SIGALRM, on_alarm, 0);
    sigemptyset(&set);
    sigaddset(&set, SIGALRM);
    sigprocmask(SIG_BLOCK, &set, &old);
    alarm_flag = 0;
    one_shot_timer(10000);
    sigset_t wait_mask;
    sigprocmask(SIG_BLOCK, NULL, &wait_mask);
    sigdelset(&wait_mask, SIGALRM);
    int r = sigsuspend(&wait_mask);
    int e = errno;
    sigprocmask(SIG_BLOCK, NULL, &set);
    printf("sigsuspend: returned %d EINTR %s, handler ran %s, SIGALRM blocked again %s\n", r,
           yesno(e == EINTR), yesno(alarm_flag), yesno(sigismember(&set, SIGALRM)));
    sigprocmask(SIG_SETMASK, &old, NULL);
    fesetround(FE_TONEAREST);

    /* sigtimedwait */
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, &old);
    plain_count = 0;
    set_signal(SIGUSR1, plain);
    raise(SIGUSR1);
    siginfo_t si;
    struct timespec ts = {1, 0};
    memset(&si, 0, sizeof si);
    r = sigtimedwait(&set, &si, &ts);
    /* glibc's sigtimedwait reports SI_TKILL as SI_USER, musl's does not */
    printf("sigtimedwait after raise: USR1 %s, si_code SI_USER or SI_TKILL %s, handler ran %d\n",
           yesno(r == SIGUSR1), yesno(si.si_code == SI_USER || si.si_code == SI_TKILL), (int)plain_count);
    kill(me, SIGUSR1);
    memset(&si, 0, sizeof si);
    r = sigtimedwait(&set, &si, &ts);
    printf("sigtimedwait after kill: USR1 %s, si_code %s, si_pid is getpid %s\n", yesno(r == SIGUSR1),
           code_name(si.si_code), yesno(si.si_pid == me));
    ts.tv_sec = 0;
    ts.tv_nsec = 10000000;
    r = sigtimedwait(&set, &si, &ts);
    e = errno;
    printf("sigtimedwait, nothing pending: %d EAGAIN %s\n", r, yesno(e == EAGAIN));
    sigprocmask(SIG_SETMASK, &old, NULL);

    /* nanosleep interrupted by a timer signal */
    set_handler(SIGALRM, on_alarm, 0);
    alarm_flag = 0;
    struct timespec req = {5, 0}, rem = {0, 0}, warm = {0, 1};
    nanosleep(&warm, NULL);      /* the same path once first: a JIT translates it before the timer runs */
    one_shot_timer(30000);
    r = nanosleep(&req, &rem);
    e = errno;
    printf("nanosleep: interrupted %s, EINTR %s, handler ran %s, remaining > 0 %s\n", yesno(r == -1),
           yesno(e == EINTR), yesno(alarm_flag), yesno(rem.tv_sec > 0 || rem.tv_nsec > 0));
    fesetround(FE_TONEAREST);

    /* errno across a handler that saves and restores it */
    set_handler(SIGUSR1, errno_clobber, 0);
    errno = ENOENT;
    raise(SIGUSR1);
    e = errno;
    printf("errno kept by a careful handler: %s\n", yesno(e == ENOENT));
    set_handler(SIGUSR1, errno_careless, 0);
    errno = ENOENT;
    kill(me, SIGUSR1);
    e = errno;
    printf("errno after a careless handler: EBADF %s\n", yesno(e == EBADF));

    printf("done\n");
    return 0;
}
