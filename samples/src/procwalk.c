/* procwalk: the process's own /proc.
 *
 * Without arguments: checks that hold on Linux and under every aotc engine
 * and print only yes/no (no pids, addresses or paths): /proc/self, stat,
 * status, cmdline, environ, exe, maps, auxv, fd/, thread-self, chdir into
 * /proc (only what qemu-user, the reference, also gets right).
 *
 * "dump DIR": walks /proc/self, /proc/<pid>, /proc/thread-self, task/<tid>
 * and other spellings of them (//, ./, .., root/, symlinks made in DIR,
 * openat, chdir, fchdir) and prints every listing, link and file content
 * (non-printable bytes as \xNN), plus what opening mem and the like gives.
 * tests/test_procfs.py scans that for anything of the host.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

extern char **environ;

static char buf[1 << 20];

/* Read a whole file (relative to dirfd); length, or -errno. */
static long slurp_at(int dirfd, const char *path, char *out, size_t cap)
{
    int fd = openat(dirfd, path, O_RDONLY);
    if (fd < 0)
        return -errno;
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, out + n, cap - 1 - n);
        if (r < 0) {
            int e = errno;
            close(fd);
            return -e;
        }
        if (r == 0 || n + (size_t)r >= cap - 1) {
            n += (size_t)r;
            break;
        }
        n += (size_t)r;
    }
    out[n] = 0;
    close(fd);
    return (long)n;
}

static long slurp(const char *path, char *out, size_t cap)
{
    return slurp_at(AT_FDCWD, path, out, cap);
}

static const char *yesno(int ok) { return ok ? "yes" : "no"; }

/* ------------------------------------------------------------ checks */

static int maps_has(const char *maps, uintptr_t addr, char perm)
{
    const char *p = maps;
    while (*p) {
        unsigned long lo, hi;
        char perms[8];
        if (sscanf(p, "%lx-%lx %7s", &lo, &hi, perms) == 3 && lo <= addr && addr < hi)
            return perm == 0 || strchr(perms, perm) != NULL;
        p = strchr(p, '\n');
        if (!p)
            break;
        p++;
    }
    return 0;
}

static int dir_has(const char *path, const char *const *names, int want_self_fd)
{
    DIR *d = opendir(path);
    if (!d)
        return 0;
    int found = 0, n = 0, self = 0;
    char me[16];
    snprintf(me, sizeof me, "%d", dirfd(d));
    while (names[n])
        n++;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        for (int i = 0; i < n; i++)
            if (strcmp(e->d_name, names[i]) == 0)
                found |= 1 << i;
        if (strcmp(e->d_name, me) == 0)
            self = 1;
    }
    closedir(d);
    return found == (1 << n) - 1 && (!want_self_fd || self);
}

static int status_pid_is(const char *path, int pid)
{
    char want[32];
    snprintf(want, sizeof want, "\nPid:\t%d\n", pid);
    return slurp(path, buf, sizeof buf) > 0 && strstr(buf, want) != NULL;
}

static int checks(int argc, char **argv)
{
    int pid = getpid();
    char s[64], link[4096];
    long n;

    snprintf(s, sizeof s, "%d", pid);
    n = readlink("/proc/self", link, sizeof link - 1);
    printf("self link is pid: %s\n", yesno(n > 0 && (link[n] = 0, strcmp(link, s) == 0)));

    snprintf(s, sizeof s, "%d (", pid);
    printf("stat starts with pid: %s\n",
           yesno(slurp("/proc/self/stat", buf, sizeof buf) > 0 && strncmp(buf, s, strlen(s)) == 0));
    printf("status Pid matches: %s\n", yesno(status_pid_is("/proc/self/status", pid)));

    n = slurp("/proc/self/cmdline", buf, sizeof buf);
    {
        size_t off = 0;
        int ok = n > 0;
        for (int i = 0; ok && i < argc; i++) {
            size_t l = strlen(argv[i]) + 1;
            ok = off + l <= (size_t)n && memcmp(buf + off, argv[i], l) == 0;
            off += l;
        }
        printf("cmdline matches argv: %s\n", yesno(ok && off == (size_t)n));
    }

    n = slurp("/proc/self/environ", buf, sizeof buf);
    {
        size_t off = 0;
        int ok = n >= 0;
        for (char **e = environ; ok && *e; e++) {
            size_t l = strlen(*e) + 1;
            ok = off + l <= (size_t)n && memcmp(buf + off, *e, l) == 0;
            off += l;
        }
        printf("environ matches: %s\n", yesno(ok && off == (size_t)n));
    }

    n = readlink("/proc/self/exe", link, sizeof link - 1);
    if (n > 0) {
        link[n] = 0;
        char *base = strrchr(link, '/');
        base = base ? base + 1 : link;
        base[strcspn(base, ".")] = 0;
        printf("exe basename: %s\n", base);
    } else {
        printf("exe readlink failed\n");
    }

    int local = 1;
    n = slurp("/proc/self/maps", buf, sizeof buf);
    printf("maps has a stack variable: %s\n", yesno(n > 0 && maps_has(buf, (uintptr_t)&local, 'w')));
    printf("maps has main, executable: %s\n", yesno(n > 0 && maps_has(buf, (uintptr_t)&checks, 'x')));

    n = slurp("/proc/self/auxv", buf, sizeof buf);
    {
        unsigned long pagesz = 0, entry = 0;
        for (long i = 0; i + 16 <= n; i += 16) {
            uint64_t k, v;
            memcpy(&k, buf + i, 8);
            memcpy(&v, buf + i + 8, 8);
            if (k == 6)
                pagesz = v;
            if (k == 9)
                entry = v;
        }
        printf("auxv AT_PAGESZ: %lu\n", pagesz);
        printf("auxv AT_ENTRY in maps, executable: %s\n",
               yesno(entry && maps_has(slurp("/proc/self/maps", buf, sizeof buf) > 0 ? buf : "",
                                    entry, 'x')));
    }

    static const char *const fds[] = {"0", "1", "2", ".", "..", NULL};
    printf("fd dir lists 0 1 2 and itself: %s\n", yesno(dir_has("/proc/self/fd", fds, 1)));
    static const char *const self[] = {"maps", "status", "exe", "fd", "cmdline", "task", NULL};
    printf("self dir lists maps status exe fd cmdline task: %s\n", yesno(dir_has("/proc/self", self, 0)));
    printf("thread-self status Pid matches: %s\n",
           yesno(status_pid_is("/proc/thread-self/status", pid)));

    int here = open(".", O_RDONLY | O_DIRECTORY);
    int ok = chdir("/proc/self") == 0;
    ok = ok && status_pid_is("status", pid);
    char cwd[4096];
    ok = ok && getcwd(cwd, sizeof cwd) && strncmp(cwd, "/proc/", 6) == 0;
    printf("chdir /proc/self, relative status, getcwd: %s\n", yesno(ok));
    printf("fchdir back: %s\n", yesno(here >= 0 && fchdir(here) == 0));
    close(here);

    int sfd = open("/proc/self/status", O_RDONLY);
    snprintf(s, sizeof s, "/proc/self/fd/%d", sfd);
    n = readlink(s, link, sizeof link - 1);
    char want[64];
    snprintf(want, sizeof want, "/proc/%d/status", pid);
    printf("fd link of an opened status file: %s\n", yesno(n > 0 && (link[n] = 0, strcmp(link, want) == 0)));
    printf("write to it fails: %s\n", yesno(write(sfd, "x", 1) < 0));
    close(sfd);
    return 0;
}

/* ------------------------------------------------------------ dump */

static void emit(const char *data, long n)
{
    for (long i = 0; i < n; i++) {
        unsigned char c = (unsigned char)data[i];
        if (c == '\n' || c == '\t' || (c >= 32 && c < 127))
            putchar(c);
        else
            printf("\\x%02x", c);
    }
    putchar('\n');
}

static void dump_file(int dirfd, const char *label, const char *path)
{
    long n = slurp_at(dirfd, path, buf, sizeof buf);
    printf("== file %s: ", label);
    if (n < 0) {
        printf("error %ld\n", -n);
        return;
    }
    printf("%ld bytes\n", n);
    emit(buf, n > 65536 ? 65536 : n);
}

static void dump_link(int dirfd, const char *label, const char *path)
{
    char link[4096];
    ssize_t n = readlinkat(dirfd, path, link, sizeof link - 1);
    if (n < 0) {
        printf("== link %s: error %d\n", label, errno);
        return;
    }
    link[n] = 0;
    printf("== link %s -> ", label);
    emit(link, n);
}

static void walk(const char *dir, int depth)
{
    DIR *d = opendir(dir);
    if (!d) {
        printf("== dir %s: error %d\n", dir, errno);
        return;
    }
    char names[256][256];
    int count = 0;
    struct dirent *e;
    printf("== dir %s:", dir);
    while ((e = readdir(d)) != NULL) {
        printf(" %s", e->d_name);
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && count < 256)
            snprintf(names[count++], sizeof names[0], "%s", e->d_name);
    }
    printf("\n");
    closedir(d);
    for (int i = 0; i < count; i++) {
        char path[8192];
        snprintf(path, sizeof path, "%.4000s/%.255s", dir, names[i]);
        struct stat st;
        if (lstat(path, &st) != 0) {
            printf("== lstat %s: error %d\n", path, errno);
            continue;
        }
        if (S_ISLNK(st.st_mode)) {
            dump_link(AT_FDCWD, path, path);
            /* not the guest binary itself, nor our own files (stdout!) */
            if (strcmp(names[i], "exe") == 0 || (strlen(dir) > 3 && strcmp(dir + strlen(dir) - 3, "/fd") == 0))
                continue;
            if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
                dump_file(AT_FDCWD, path, path);
        } else if (S_ISDIR(st.st_mode)) {
            if (depth > 0)
                walk(path, depth - 1);
        } else {
            dump_file(AT_FDCWD, path, path);
        }
    }
}

static void try_open(const char *path, int flags)
{
    int fd = open(path, flags);
    if (fd < 0) {
        printf("== open %s flags %d: error %d\n", path, flags, errno);
        return;
    }
    /* It opened: show what it gives (the test fails on this line for mem). */
    char tmp[64];
    ssize_t n = pread(fd, tmp, sizeof tmp, 0x10000);
    printf("== open %s flags %d: OPENED, pread %zd\n", path, flags, n);
    if (n > 0)
        emit(tmp, n);
    if (flags & O_RDWR)
        printf("== write back %zd\n", n > 0 ? pwrite(fd, tmp, (size_t)n, 0x10000) : (ssize_t)-1);
    close(fd);
}

static int dump(const char *tmp)
{
    int pid = getpid(), tid = (int)gettid();
    char p[512], q[512];
    const char *prefixes[16];
    char store[16][512];
    int np = 0;
#define PREFIX(...) (snprintf(store[np], sizeof store[np], __VA_ARGS__), prefixes[np] = store[np], np++)
    PREFIX("/proc/self");
    PREFIX("/proc/%d", pid);
    PREFIX("/proc/thread-self");
    PREFIX("/proc/self/task/%d", tid);
    PREFIX("/proc//self");
    PREFIX("/proc/./self");
    PREFIX("/proc/self/../self");
    PREFIX("/proc/self/root/proc/self");
    PREFIX("/proc/%d/task/%d/root/proc/thread-self", pid, tid);
    PREFIX("/dev/fd/..");
    snprintf(p, sizeof p, "%s/selflink", tmp);
    if (symlink("/proc/self", p) != 0)
        printf("symlink failed %d\n", errno);
    PREFIX("%s/selflink", tmp);
    snprintf(p, sizeof p, "%s/proclink", tmp);
    if (symlink("/proc/", p) != 0)
        printf("symlink failed %d\n", errno);
    PREFIX("%s/proclink/self", tmp);

    printf("== pid %d tid %d\n", pid, tid);
    walk("/proc", 0);
    for (int i = 0; i < np; i++)
        walk(prefixes[i], 2);

    static const char *const hidden[] = {"mem", "pagemap", "syscall", "stack", "wchan",
                                         "smaps_rollup", "map_files", "io", "personality",
                                         "mountinfo", "environ", NULL};
    for (int i = 0; i < np; i++)
        for (int j = 0; hidden[j]; j++) {
            snprintf(q, sizeof q, "%s/%s", prefixes[i], hidden[j]);
            try_open(q, O_RDONLY);
        }
    for (int i = 0; i < np; i++) {
        snprintf(q, sizeof q, "%s/mem", prefixes[i]);
        try_open(q, O_RDWR);
    }
    try_open("/proc/kcore", O_RDONLY);
    try_open("/proc/1/maps", O_RDONLY);
    snprintf(q, sizeof q, "/proc/%d/maps", getppid());
    try_open(q, O_RDONLY);
    snprintf(q, sizeof q, "/proc/%d/maps", pid + 1);
    try_open(q, O_RDONLY);

    /* openat relative to a /proc directory fd */
    int pfd = open("/proc", O_RDONLY | O_DIRECTORY);
    printf("== /proc dirfd %d\n", pfd);
    dump_file(pfd, "openat(/proc, self/maps)", "self/maps");
    dump_file(pfd, "openat(/proc, ./self/../thread-self/smaps)", "./self/../thread-self/smaps");
    dump_link(pfd, "readlinkat(/proc, self/exe)", "self/exe");
    int mfd = openat(pfd, "self/mem", O_RDWR);
    printf("== openat(/proc, self/mem, O_RDWR): %s %d\n", mfd < 0 ? "error" : "OPENED",
           mfd < 0 ? errno : mfd);
    int rfd = open("/", O_RDONLY | O_DIRECTORY);
    dump_file(rfd, "openat(/, proc/self/maps)", "proc/self/maps");
    close(rfd);

    /* chdir into /proc, relative opens */
    int here = open(".", O_RDONLY | O_DIRECTORY);
    printf("== chdir /proc: %d\n", chdir("/proc"));
    dump_file(AT_FDCWD, "cwd=/proc self/maps", "self/maps");
    dump_file(AT_FDCWD, "cwd=/proc ./self/../self/status", "./self/../self/status");
    dump_link(AT_FDCWD, "cwd=/proc self/cwd", "self/cwd");
    walk(".", 0);
    walk("self/fd", 0);
    char cwd[4096];
    printf("== getcwd: %s\n", getcwd(cwd, sizeof cwd) ? cwd : "(error)");
    try_open("self/mem", O_RDWR);

    /* fchdir into /proc/self */
    int sfd = openat(pfd, "self", O_RDONLY | O_DIRECTORY);
    printf("== fchdir /proc/self: %d\n", fchdir(sfd));
    dump_file(AT_FDCWD, "cwd=/proc/self maps", "maps");
    dump_link(AT_FDCWD, "cwd=/proc/self exe", "exe");
    dump_link(AT_FDCWD, "cwd=/proc/self root", "root");
    dump_file(AT_FDCWD, "cwd=/proc/self environ", "environ");
    printf("== getcwd: %s\n", getcwd(cwd, sizeof cwd) ? cwd : "(error)");
    try_open("mem", O_RDWR);
    try_open("task/../mem", O_RDWR);
    fchdir(here);
    close(sfd);
    close(pfd);
    close(here);
    unlink(p);
    snprintf(p, sizeof p, "%s/selflink", tmp);
    unlink(p);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "dump") == 0)
        return dump(argv[2]);
    return checks(argc, argv);
}
