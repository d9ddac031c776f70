/* A position-independent probe (built -static-pie by tests/test_pie.py):
 * calls through function pointers that live in relocated data, walks a
 * global table of pointers, prints addresses only relative to a symbol of
 * the program (the load base differs between runners), its argv and one
 * environment variable, and exits with a status computed from all that. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <elf.h>
#include <sys/auxv.h>

extern const char __ehdr_start[];          /* the ELF header: the load base */
extern char _start[];

static int add(int a, int b) { return a + b; }
static int mul(int a, int b) { return a * b; }
static int sub(int a, int b) { return a - b; }

struct op { const char *name; int (*fn)(int, int); };

/* Relocated data: every name and fn is an R_*_RELATIVE relocation. */
static const struct op ops[] = { {"add", add}, {"mul", mul}, {"sub", sub} };
static const char *const words[] = { "alpha", "beta", "gamma", NULL };
static int counter = 7;
static __thread int tls_counter = 5;       /* PT_TLS, placed with the program */
int *const counter_ptr = &counter;
int (*volatile pick)(int, int) = mul;

static long rel(const void *p) { return (const char *)p - (const char *)ops; }

int main(int argc, char **argv)
{
    int acc = 1;
    for (unsigned i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        acc = ops[i].fn(acc + 3, (int)i + 2);
        printf("%s -> %d\n", ops[i].name, acc);
    }
    for (const char *const *w = words; *w; w++)
        printf("word %ld %s\n", (long)(w - words), *w);
    printf("pick %d\n", pick(6, 7));
    *counter_ptr += argc;
    printf("counter %d\n", counter);
    printf("words-ops %ld counter-ops %ld\n", rel(words), rel(&counter));
    printf("fn pointers distinct %d, main aligned %d\n",
           add != mul && mul != sub, ((unsigned long)main & 1) == 0);
    /* The loader's auxv agrees with where the program found itself. */
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)__ehdr_start;
    printf("AT_ENTRY is _start %d, AT_PHDR is ours %d, AT_BASE %lu\n",
           getauxval(AT_ENTRY) == (unsigned long)_start,
           getauxval(AT_PHDR) == (unsigned long)__ehdr_start + eh->e_phoff,
           getauxval(AT_BASE));
    tls_counter += argc;
    printf("tls %d\n", tls_counter);
    for (int i = 1; i < argc; i++)
        printf("argv[%d] = %s\n", i, argv[i]);
    const char *v = getenv("PIE_PROBE");
    printf("PIE_PROBE=%s\n", v ? v : "(unset)");
    return (acc + counter + argc) & 0x7f;
}
