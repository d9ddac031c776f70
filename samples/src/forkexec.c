/* forkexec: processes -- fork, wait, kill, pipes, vfork, exec, posix_spawn,
 * process groups.  Every line it prints is deterministic (no pids, no
 * timing) and the same on every ISA and libc.
 *
 *   forkexec                    the whole tour (the recorded case)
 *   forkexec execchild K C      (exec'd by the tour) check that fd K survived
 *                               the exec and fd C (O_CLOEXEC) did not
 *   forkexec spawnchild         (posix_spawn'd by the tour)
 *   forkexec showargs ARGS...   print the arguments (a #! interpreter)
 *   forkexec run PATH ARGS...   execv PATH; on failure print the errno name
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static const char *errname(int e) {
    switch (e) {
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case ENOEXEC: return "ENOEXEC";
    case E2BIG: return "E2BIG";
    case EFAULT: return "EFAULT";
    case ECHILD: return "ECHILD";
    case ESRCH: return "ESRCH";
    case EPERM: return "EPERM";
    case ELOOP: return "ELOOP";
    default: return "other";
    }
}

static void describe(const char *what, int status) {
    if (WIFEXITED(status))
        printf("%s: exited with status %d\n", what, WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        printf("%s: killed by signal %d (%s)\n", what, WTERMSIG(status),
               WTERMSIG(status) == SIGTERM ? "SIGTERM" :
               WTERMSIG(status) == SIGSEGV ? "SIGSEGV" :
               WTERMSIG(status) == SIGUSR1 ? "SIGUSR1" : "other");
    else
        printf("%s: status %#x\n", what, status);
}

static int reap(pid_t pid, const char *what) {
    int status = 0;
    pid_t got = waitpid(pid, &status, 0);
    if (got != pid) {
        printf("%s: waitpid failed (%s)\n", what, errname(errno));
        return -1;
    }
    describe(what, status);
    return status;
}

static int exec_child(int argc, char **argv) {
    int kept = atoi(argv[2]), closed = atoi(argv[3]);
    int fl = fcntl(kept, F_GETFD);
    printf("exec child: argc %d, argv[1] %s\n", argc, argv[1]);
    printf("exec child: fd %d open after exec: %s, FD_CLOEXEC %s\n", kept,
           fl >= 0 ? "yes" : "no", fl >= 0 && (fl & FD_CLOEXEC) ? "set" : "clear");
    errno = 0;
    int fc = fcntl(closed, F_GETFD);
    printf("exec child: O_CLOEXEC fd %d closed by exec: %s\n", closed,
           fc == -1 && errno == EBADF ? "yes" : "no");
    char buf[64] = {0};
    ssize_t n = read(kept, buf, sizeof buf - 1);
    printf("exec child: read from fd %d: \"%.*s\"\n", kept, n > 0 ? (int)n : 0, buf);
    const char *v = getenv("FORKEXEC_VAR"), *e = getenv("FORKEXEC_EMPTY");
    printf("exec child: FORKEXEC_VAR=%s, FORKEXEC_EMPTY %s\n", v ? v : "(unset)",
           e ? (*e ? "set" : "set and empty") : "unset");
    int count = 0;
    for (char **p = environ; *p; p++)
        count++;
    printf("exec child: %d environment strings\n", count);
    return 5;
}

static int tour(char *self) {
    int st, p[2], q[2];
    pid_t pid;

    /* 1. fork and an exit status */
    pid = fork();
    if (pid == 0)
        _exit(42);
    printf("fork: parent got a child pid > 0: %s\n", pid > 0 ? "yes" : "no");
    reap(pid, "child 1");

    /* 2. a pipe from the child to the parent */
    if (pipe(p) != 0) return 1;
    pid = fork();
    if (pid == 0) {
        close(p[0]);
        const char msg[] = "hello through a pipe";
        if (write(p[1], msg, sizeof msg - 1) < 0) _exit(1);
        _exit(0);
    }
    close(p[1]);
    {
        char buf[64] = {0};
        ssize_t n, total = 0;
        while ((n = read(p[0], buf + total, sizeof buf - 1 - total)) > 0)
            total += n;
        printf("pipe: parent read \"%s\" (%zd bytes)\n", buf, total);
    }
    close(p[0]);
    reap(pid, "child 2");

    /* 3. WNOHANG before the child exits; waitpid(-1) */
    if (pipe(p) != 0) return 1;
    pid = fork();
    if (pid == 0) {
        char c;
        close(p[1]);
        ssize_t n = read(p[0], &c, 1);     /* until the parent says so */
        _exit(n == 1 ? 3 : 99);
    }
    close(p[0]);
    st = 0;
    pid_t got = waitpid(pid, &st, WNOHANG);
    printf("WNOHANG while the child runs: returned %d\n", (int)got);
    if (write(p[1], "x", 1) != 1) return 1;
    close(p[1]);
    got = waitpid(-1, &st, 0);
    printf("waitpid(-1) returned that child: %s\n", got == pid ? "yes" : "no");
    describe("child 3", st);

    /* 4. killed by SIGTERM from the parent */
    if (pipe(p) != 0 || pipe(q) != 0) return 1;
    pid = fork();
    if (pid == 0) {
        char c;
        close(p[0]);
        close(q[1]);
        if (write(p[1], "r", 1) != 1) _exit(1);
        ssize_t n = read(q[0], &c, 1);      /* blocks: nobody writes */
        _exit(n == 0 ? 98 : 97);
    }
    close(p[1]);
    close(q[0]);
    {
        char c;
        if (read(p[0], &c, 1) != 1) return 1; /* the child is ready */
    }
    printf("kill(child, SIGTERM): %d\n", kill(pid, SIGTERM));
    reap(pid, "child 4");
    close(p[0]);
    close(q[1]);

    /* 5. a child that stores to NULL */
    pid = fork();
    if (pid == 0) {
        *(volatile int *)0 = 1;
        _exit(96);
    }
    reap(pid, "child 5");

    /* 6. vfork and _exit */
    pid = vfork();
    if (pid == 0)
        _exit(7);
    reap(pid, "vfork child");

    /* 7. process groups: the child leads a new group; the parent signals the group */
    printf("getpgid(0) == getpgrp(): %s\n", getpgid(0) == getpgrp() ? "yes" : "no");
    if (pipe(p) != 0 || pipe(q) != 0) return 1;
    pid = fork();
    if (pid == 0) {
        char c;
        close(p[0]);
        close(q[1]);
        int ok = setpgid(0, 0) == 0 && getpgid(0) == getpid();
        if (write(p[1], ok ? "y" : "n", 1) != 1) _exit(1);
        ssize_t n = read(q[0], &c, 1);
        _exit(n == 0 ? 95 : 94);
    }
    close(p[1]);
    close(q[0]);
    setpgid(pid, pid);                       /* either order: the classic race-free idiom */
    {
        char c = '?';
        if (read(p[0], &c, 1) != 1) return 1;
        printf("child: setpgid(0, 0) made it a group leader: %s\n", c == 'y' ? "yes" : "no");
    }
    printf("parent: getpgid(child) == child: %s\n", getpgid(pid) == pid ? "yes" : "no");
    printf("parent: child is in another group: %s\n", getpgid(pid) != getpgid(0) ? "yes" : "no");
    printf("kill(-child's group, SIGUSR1): %d\n", kill(-pid, SIGUSR1));
    reap(pid, "child 6");
    close(p[0]);
    close(q[1]);

    /* 8. execve of ourselves: fd 10 kept across the exec, fd 11 (O_CLOEXEC) not */
    if (pipe(p) != 0) return 1;
    if (dup2(p[0], 10) != 10 || dup3(p[0], 11, O_CLOEXEC) != 11) return 1;
    close(p[0]);
    {
        const char msg[] = "written before exec";
        if (write(p[1], msg, sizeof msg - 1) != (ssize_t)(sizeof msg - 1)) return 1;
        close(p[1]);
    }
    pid = fork();
    if (pid == 0) {
        char *args[] = {self, "execchild", "10", "11", NULL};
        char *env[] = {"FORKEXEC_VAR=hello", "FORKEXEC_EMPTY=", "X=1", NULL};
        execve("/proc/self/exe", args, env);
        printf("execve failed: %s\n", errname(errno));
        _exit(127);
    }
    close(10);
    close(11);
    reap(pid, "exec child");

    /* 9. posix_spawn of ourselves */
    {
        char *args[] = {self, "spawnchild", NULL};
        int rc = posix_spawn(&pid, "/proc/self/exe", NULL, NULL, args, environ);
        printf("posix_spawn: %d\n", rc);
        if (rc == 0)
            reap(pid, "spawned child");
    }

    /* 10. execve errors */
    {
        char *args[] = {"nothing", NULL};
        errno = 0;
        execve("/nonexistent/forkexec-program", args, environ);
        printf("execve of a missing file: %s\n", errname(errno));
        errno = 0;
        execve("/", args, environ);
        printf("execve of a directory: %s\n", errname(errno));
        errno = 0;
        const char *volatile bad = (const char *)8;
        execve(bad, args, environ);
        printf("execve of a bad pointer: %s\n", errname(errno));
    }

    /* nothing left to wait for */
    errno = 0;
    got = waitpid(-1, &st, WNOHANG);
    printf("waitpid with no children: %d %s\n", (int)got, errname(errno));
    printf("done\n");
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc >= 4 && strcmp(argv[1], "execchild") == 0)
        return exec_child(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "spawnchild") == 0) {
        printf("spawned child: argc %d, argv[1] %s\n", argc, argv[1]);
        return 6;
    }
    if (argc >= 2 && strcmp(argv[1], "showargs") == 0) {
        printf("showargs: argc %d\n", argc);
        for (int i = 1; i < argc; i++)
            printf("showargs: argv[%d] = \"%s\"\n", i, argv[i]);
        return 0;
    }
    if (argc >= 3 && strcmp(argv[1], "run") == 0) {
        execv(argv[2], argv + 2);
        printf("execv %s: %s\n", argv[2], errname(errno));
        return 127;
    }
    return tour(argv[0]);
}
