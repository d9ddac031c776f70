/* selfmod: a program that patches its own text.
 * patchme() is a 16-byte function in .text (defined in assembly below, so
 * the compiler cannot inline or fold it).  main calls it, makes its page
 * writable (mprotect read+write+execute), overwrites it with
 * "return x + 1000", flushes the instruction cache and calls it again,
 * then once more with "return x + 2000".  An ahead-of-time translation of
 * the original bytes must not survive the patch.
 * Exit status 0 when every result is the expected one, 1 otherwise.
 */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>

#include "codegen_arch.h"

long patchme(long x);

#if defined(__riscv)
__asm__(".text\n.globl patchme\n.type patchme, @function\n.p2align 4\npatchme:\n"
        ".option push\n.option norvc\n"
        "addi a0, a0, 1\nret\nnop\nnop\n"
        ".option pop\n.size patchme, 16\n");
#elif defined(__aarch64__)
__asm__(".text\n.globl patchme\n.type patchme, %function\n.p2align 4\npatchme:\n"
        "add x0, x0, #1\nret\nnop\nnop\n.size patchme, 16\n");
#elif defined(__x86_64__)
__asm__(".text\n.globl patchme\n.type patchme, @function\n.p2align 4\npatchme:\n"
        "leaq 1(%rdi), %rax\nret\n.fill 11, 1, 0x90\n.size patchme, 16\n");
#endif

static int failures;

static void check(const char *what, long got, long want)
{
    printf("%-24s %ld%s\n", what, got, got == want ? "" : "  <-- WRONG");
    if (got != want)
        failures++;
}

/* a little ordinary work after the patch: the rest of the program must
   still run correctly */
static __attribute__((noinline)) long collatz_steps(long n)
{
    long steps = 0;
    while (n != 1) {
        n = (n & 1) ? 3 * n + 1 : n / 2;
        steps++;
    }
    return steps;
}

int main(void)
{
    long (*volatile fp)(long) = patchme;
    check("original patchme(10)", fp(10), 11);

    uintptr_t start = (uintptr_t)patchme & ~(uintptr_t)4095;
    uintptr_t end = ((uintptr_t)patchme + 16 + 4095) & ~(uintptr_t)4095;
    if (mprotect((void *)start, end - start, PROT_READ | PROT_WRITE | PROT_EXEC) != 0) {
        perror("mprotect");
        return 2;
    }
    unsigned char *code = (unsigned char *)(uintptr_t)patchme;
    flush_code(code, emit_add_imm(code, 1000));
    check("patched patchme(10)", fp(10), 1010);
    flush_code(code, emit_add_imm(code, 2000));
    check("repatched patchme(10)", fp(10), 2010);
    mprotect((void *)start, end - start, PROT_READ | PROT_EXEC);
    check("repatched patchme(-1)", fp(-1), 1999);

    long total = 0;
    for (long i = 1; i <= 300; i++)
        total += collatz_steps(i);
    check("collatz steps 1..300", total, 14167);  /* sum computed independently (Python) */
    printf("%s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
