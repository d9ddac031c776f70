/* jitgen: run-time generated code, then rewritten.
 * Writes machine code for "long f(long x) { return x + k; }" into mmap'd
 * memory, makes it executable, calls it, rewrites it with another k and
 * calls it again; in a read-write-execute buffer, rewrites one of two
 * functions on a page many times and checks the other stays intact.
 * An engine that keeps running a stale translation prints the wrong sums.
 * Exit status 0 when every result is the expected one, 1 otherwise.
 */
#include <stdio.h>
#include <sys/mman.h>

#include "codegen_arch.h"

typedef long (*fn_t)(long);

static int failures;

static void check(const char *what, long got, long want)
{
    printf("%-28s %ld%s\n", what, got, got == want ? "" : "  <-- WRONG");
    if (got != want)
        failures++;
}

int main(void)
{
    /* 1. write, mprotect to read+execute, call; then rewrite through
     *    read+write and back. */
    unsigned char *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) {
        perror("mmap");
        return 2;
    }
    int n = emit_add_imm(page, 5);
    if (mprotect(page, 4096, PROT_READ | PROT_EXEC) != 0) {
        perror("mprotect");
        return 2;
    }
    flush_code(page, n);
    fn_t f = (fn_t)(void *)page;
    check("generated f(10)", f(10), 15);
    check("generated f(-3)", f(-3), 2);

    mprotect(page, 4096, PROT_READ | PROT_WRITE);
    n = emit_add_imm(page, 100);
    mprotect(page, 4096, PROT_READ | PROT_EXEC);
    flush_code(page, n);
    check("rewritten f(10)", f(10), 110);

    /* 2. a read-write-execute page holding two functions; g is rewritten
     *    eight times while h stays the same. */
    unsigned char *rwx = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (rwx == MAP_FAILED) {
        perror("mmap rwx");
        return 2;
    }
    fn_t g = (fn_t)(void *)rwx;
    fn_t h = (fn_t)(void *)(rwx + 64);
    flush_code(rwx + 64, emit_add_imm(rwx + 64, 7));
    long gsum = 0, hsum = 0, want_g = 0;
    for (long i = 0; i < 8; i++) {
        flush_code(rwx, emit_add_imm(rwx, 3 * i));
        gsum += g(i);
        hsum += h(i);
        want_g += i + 3 * i;
    }
    check("sum of rewritten g(i)", gsum, want_g);
    check("sum of untouched h(i)", hsum, 28 + 8 * 7);

    munmap(page, 4096);
    munmap(rwx, 4096);
    printf("%s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
