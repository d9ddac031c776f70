/* Probes for tests/test_threads_signals.py: one behaviour per mode (argv[1]),
 * printing one line; compiled at test time for riscv64 (static glibc). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t got;
static void on_sig(int sig) { got = sig; }

static void handler(int sig, int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sig;
    sa.sa_flags = flags;
    sigaction(sig, &sa, NULL);
}

static void *exit_from_thread(void *arg)
{
    (void)arg;
    usleep(20000);
    exit(3);                          /* exit_group from a second thread */
}

static void *spin_forever(void *arg)
{
    (void)arg;
    for (volatile unsigned long n = 0;; n++)
        ;
    return NULL;
}

/* fork (or vfork) from a thread that is not the first; the child ends by
 * the way given: thread exit, exit_group, or a fatal signal */
static void *fork_in_thread(void *arg)
{
    const char *how = arg;
    pid_t pid = !strcmp(how, "vfork-exec-fails") ? vfork() : fork();
    if (pid == 0) {
        if (!strcmp(how, "exit"))
            syscall(SYS_exit, 7);       /* the child's only thread ends: the process does */
        if (!strcmp(how, "exit_group"))
            _exit(9);
        if (!strcmp(how, "signal"))
            *(volatile int *)0 = 1;
        if (!strcmp(how, "vfork-exec-fails")) {
            char *av[] = {"/nonexistent/program", NULL};
            execve(av[0], av, av + 1);
            syscall(SYS_exit, 253);     /* as Go's forkAndExecInChild does */
        }
        _exit(99);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    printf("%s: exited %d status %d signaled %d signal %d\n", how, WIFEXITED(st),
           WIFEXITED(st) ? WEXITSTATUS(st) : -1, WIFSIGNALED(st), WIFSIGNALED(st) ? WTERMSIG(st) : -1);
    return NULL;
}

static void alarm_in(long usec)
{
    struct itimerval it;
    memset(&it, 0, sizeof it);
    it.it_value.tv_usec = usec;
    setitimer(ITIMER_REAL, &it, NULL);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "exit-from-thread")) {
        pthread_t t, s;
        pthread_create(&s, NULL, spin_forever, NULL);   /* must not keep the process alive */
        pthread_create(&t, NULL, exit_from_thread, NULL);
        pthread_join(t, NULL);
        return 0;
    }
    if (!strcmp(mode, "wait-for-sigint")) {
        /* A terminal's SIGINT from outside reaches the guest's handler while
         * the guest spins without system calls. */
        handler(SIGINT, 0);
        printf("ready\n");
        fflush(stdout);
        while (!got)
            ;
        printf("got SIGINT\n");
        return 0;
    }
    if (!strcmp(mode, "spin")) {      /* default SIGINT/SIGTERM: dies by it */
        printf("ready\n");
        fflush(stdout);
        for (volatile unsigned long n = 0;; n++)
            ;
    }
    if (!strcmp(mode, "read-restart") || !strcmp(mode, "read-eintr")) {
        /* read() on an empty pipe, SIGALRM after 50 ms: with SA_RESTART the
         * read goes on (and gets the byte a child thread writes at 200 ms),
         * without it fails with EINTR. */
        int fds[2];
        pipe(fds);
        handler(SIGALRM, !strcmp(mode, "read-restart") ? SA_RESTART : 0);
        alarm_in(50000);
        if (!strcmp(mode, "read-restart")) {
            if (fork() == 0) {
                usleep(200000);
                write(fds[1], "x", 1);
                _exit(0);
            }
        }
        char c;
        ssize_t n = read(fds[0], &c, 1);
        printf("read=%zd errno=%s handler=%s\n", n, n < 0 && errno == EINTR ? "EINTR" : "-",
               got == SIGALRM ? "ran" : "no");
        return 0;
    }
    if (!strcmp(mode, "fork-in-thread")) {
        const char *hows[] = {"exit", "exit_group", "signal", "vfork-exec-fails"};
        for (int i = 0; i < 4; i++) {
            pthread_t t;
            pthread_create(&t, NULL, fork_in_thread, (void *)hows[i]);
            pthread_join(t, NULL);
            fflush(stdout);
        }
        return 0;
    }
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}
