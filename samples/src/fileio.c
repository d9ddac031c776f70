/* fileio: file-system syscalls inside a directory given as argv[1].
 * Uses mkdir, openat, write, read, lseek, fstat, pread/pwrite, rename,
 * unlink, rmdir, ftruncate, and opendir/readdir (getdents64 underneath).
 * Prints only path-independent results (sizes, contents, sorted names) and
 * removes everything it created. Exit status 0 on success, 1 on failure. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static int failures;
#define CHECK(cond, what)                                                      \
    do {                                                                       \
        if (!(cond)) {                                                         \
            printf("FAIL: %s (errno %s)\n", what, errno ? "set" : "clear");    \
            failures++;                                                        \
        }                                                                      \
    } while (0)

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* list a directory (relative to dirfd), sorted, skipping . and .. */
static void list_dir(int dirfd, const char *rel, const char *label)
{
    int fd = openat(dirfd, rel, O_RDONLY | O_DIRECTORY);
    CHECK(fd >= 0, "openat dir");
    if (fd < 0)
        return;
    DIR *d = fdopendir(fd);
    CHECK(d != NULL, "fdopendir");
    if (!d)
        return;
    char *names[64];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (n < 64)
            names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof names[0], cmp_str);
    printf("%s: %d entries:", label, n);
    for (int i = 0; i < n; i++) {
        printf(" %s", names[i]);
        free(names[i]);
    }
    printf("\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        printf("usage: fileio DIR\n");
        return 2;
    }
    int dfd = open(argv[1], O_RDONLY | O_DIRECTORY);
    CHECK(dfd >= 0, "open base dir");
    if (dfd < 0)
        return 1;

    /* create and write a file */
    int fd = openat(dfd, "a.txt", O_CREAT | O_RDWR | O_TRUNC, 0644);
    CHECK(fd >= 0, "openat create a.txt");
    const char *msg = "The quick brown fox jumps over the lazy dog\n";
    ssize_t w = write(fd, msg, strlen(msg));
    printf("write returned %zd\n", w);
    /* write a larger block so reads cross page boundaries */
    char big[10000];
    for (int i = 0; i < (int)sizeof big; i++)
        big[i] = (char)('a' + (i * 7) % 26);
    w = write(fd, big, sizeof big);
    printf("write big returned %zd\n", w);

    /* the creation mode depends on the umask: set it explicitly */
    CHECK(fchmod(fd, 0640) == 0, "fchmod");
    struct stat st;
    CHECK(fstat(fd, &st) == 0, "fstat");
    printf("fstat size=%lld regular=%d mode=%o\n", (long long)st.st_size,
           S_ISREG(st.st_mode) ? 1 : 0, (unsigned)(st.st_mode & 0777));

    off_t off = lseek(fd, 4, SEEK_SET);
    printf("lseek SEEK_SET 4 -> %lld\n", (long long)off);
    char buf[64];
    ssize_t r = read(fd, buf, 15);
    buf[r > 0 ? r : 0] = '\0';
    printf("read %zd: '%s'\n", r, buf);
    off = lseek(fd, -10, SEEK_END);
    printf("lseek SEEK_END -10 -> %lld\n", (long long)off);
    r = read(fd, buf, sizeof buf - 1);
    buf[r > 0 ? r : 0] = '\0';
    printf("read %zd: '%s'\n", r, buf);
    off = lseek(fd, 0, SEEK_CUR);
    printf("lseek SEEK_CUR 0 -> %lld\n", (long long)off);
    r = read(fd, buf, 10);
    printf("read at eof -> %zd\n", r);

    /* pwrite/pread do not move the offset */
    w = pwrite(fd, "QUICK", 5, 4);
    r = pread(fd, buf, 19, 0);
    buf[r > 0 ? r : 0] = '\0';
    printf("pwrite %zd pread %zd: '%s' offset=%lld\n", w, r, buf,
           (long long)lseek(fd, 0, SEEK_CUR));

    /* read the whole file back and checksum it */
    lseek(fd, 0, SEEK_SET);
    unsigned long sum = 0, total = 0;
    char chunk[4096];
    while ((r = read(fd, chunk, sizeof chunk)) > 0) {
        for (ssize_t i = 0; i < r; i++)
            sum = sum * 31 + (unsigned char)chunk[i];
        total += (unsigned long)r;
    }
    printf("read back total=%lu checksum=%lu\n", total, sum);

    CHECK(ftruncate(fd, 20) == 0, "ftruncate");
    CHECK(fstat(fd, &st) == 0, "fstat 2");
    printf("after ftruncate size=%lld\n", (long long)st.st_size);
    close(fd);

    /* mkdir, files in a subdirectory */
    CHECK(mkdirat(dfd, "sub", 0755) == 0, "mkdirat sub");
    errno = 0;
    int rc = mkdirat(dfd, "sub", 0755);
    printf("mkdir existing -> %d errno==EEXIST %d\n", rc, errno == EEXIST);
    const char *names[] = {"zeta", "alpha", "mid", "beta.txt", "Upper"};
    for (int i = 0; i < 5; i++) {
        char p[64];
        snprintf(p, sizeof p, "sub/%s", names[i]);
        int f = openat(dfd, p, O_CREAT | O_WRONLY | O_EXCL, 0600);
        CHECK(f >= 0, "openat create in sub");
        char line[32];
        int len = snprintf(line, sizeof line, "file %d\n", i);
        for (int k = 0; k <= i; k++)
            CHECK(write(f, line, len) == len, "write in sub");
        close(f);
    }
    errno = 0;
    fd = openat(dfd, "sub/zeta", O_CREAT | O_WRONLY | O_EXCL, 0600);
    printf("O_EXCL on existing -> %d errno==EEXIST %d\n", fd, errno == EEXIST);
    errno = 0;
    fd = openat(dfd, "missing", O_RDONLY);
    printf("open missing -> %d errno==ENOENT %d\n", fd, errno == ENOENT);

    list_dir(dfd, ".", "top");
    list_dir(dfd, "sub", "sub");

    /* rename across directories, then stat sizes */
    CHECK(renameat(dfd, "a.txt", dfd, "sub/renamed.txt") == 0, "renameat");
    CHECK(renameat(dfd, "sub/mid", dfd, "sub/middle") == 0, "renameat 2");
    list_dir(dfd, ".", "top");
    list_dir(dfd, "sub", "sub");
    const char *check[] = {"sub/renamed.txt", "sub/middle", "sub/Upper"};
    for (int i = 0; i < 3; i++) {
        CHECK(fstatat(dfd, check[i], &st, 0) == 0, "fstatat");
        printf("size of %s = %lld\n", check[i], (long long)st.st_size);
    }
    fd = openat(dfd, "sub/renamed.txt", O_RDONLY);
    r = read(fd, buf, sizeof buf - 1);
    buf[r > 0 ? r : 0] = '\0';
    printf("renamed content: '%s'\n", buf);
    close(fd);

    /* stdio on top of the same files */
    FILE *fp = fopen("/dev/null", "w");
    CHECK(fp != NULL, "fopen /dev/null");
    if (fp) {
        fprintf(fp, "discard\n");
        fclose(fp);
    }

    /* clean up */
    const char *rm[] = {"sub/zeta", "sub/alpha", "sub/middle", "sub/beta.txt",
                        "sub/Upper", "sub/renamed.txt"};
    for (int i = 0; i < 6; i++)
        CHECK(unlinkat(dfd, rm[i], 0) == 0, "unlinkat");
    errno = 0;
    rc = unlinkat(dfd, "sub/zeta", 0);
    printf("unlink missing -> %d errno==ENOENT %d\n", rc, errno == ENOENT);
    list_dir(dfd, "sub", "sub");
    CHECK(unlinkat(dfd, "sub", AT_REMOVEDIR) == 0, "rmdir sub");
    list_dir(dfd, ".", "top");
    close(dfd);
    printf("failures=%d\n", failures);
    return failures ? 1 : 0;
}
