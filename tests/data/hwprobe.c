/* riscv_hwprobe (syscall 258) and AT_HWCAP probe for tests/test_hwprobe.py:
 * static glibc riscv64.  Prints one "name values..." line per question:
 *   hwcap H                 getauxval(AT_HWCAP)
 *   pair K RK V             key K asked, key RK and value V returned (all keys
 *                           in one call, returned 0)
 *   stack A                 the address of a local (below the highest address)
 *   NAME R [...]            the return value (0 or -errno) of the call NAME
 *                           and what it wrote back
 * With the argument "exec" it first execs itself (argv[0]) without it: the
 * new program must see the same profile.
 */
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sys/auxv.h>

struct pair { int64_t key; uint64_t value; };

static long hwprobe(void *pairs, unsigned long count, unsigned long cpusetsize, void *cpus,
                    unsigned long flags)
{
    register long a0 __asm__("a0") = (long)pairs;
    register long a1 __asm__("a1") = (long)count;
    register long a2 __asm__("a2") = (long)cpusetsize;
    register long a3 __asm__("a3") = (long)cpus;
    register long a4 __asm__("a4") = (long)flags;
    register long a7 __asm__("a7") = 258;
    __asm__ volatile("ecall" : "+r"(a0) : "r"(a1), "r"(a2), "r"(a3), "r"(a4), "r"(a7) : "memory");
    return a0;
}

static const struct pair readonly_pairs[1] = {{4, 0}};

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "exec") == 0) {
        execl(argv[0], argv[0], (char *)NULL);
        perror("execl");
        return 1;
    }
    static const int64_t keys[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                   17, 1000, -1};
    enum { N = sizeof keys / sizeof keys[0] };
    struct pair p[N];
    volatile int local = 0;
    long r;

    printf("hwcap %lu\n", getauxval(AT_HWCAP));
    printf("stack %lu\n", (unsigned long)&local);
    for (int i = 0; i < N; i++)
        p[i] = (struct pair){keys[i], 0xdeadbeef};
    r = hwprobe(p, N, 0, NULL, 0);
    printf("all %ld\n", r);
    for (int i = 0; i < N; i++)
        printf("pair %lld %lld %llu\n", (long long)keys[i], (long long)p[i].key,
               (unsigned long long)p[i].value);

    /* no pairs at all */
    printf("none %ld\n", hwprobe(NULL, 0, 0, NULL, 0));
    /* a bad pairs pointer, and pairs the kernel cannot write */
    printf("bad_pairs %ld\n", hwprobe((void *)8, 1, 0, NULL, 0));
    printf("readonly_pairs %ld\n", hwprobe((void *)readonly_pairs, 1, 0, NULL, 0));
    /* reserved flags */
    struct pair one = {4, 0};
    printf("flags2 %ld\n", hwprobe(&one, 1, 0, NULL, 2));
    printf("flags3 %ld\n", hwprobe(&one, 1, 8, NULL, 3));

    /* an explicit cpu set: cpu 0; an empty one; a bad pointer */
    unsigned long mask = 1;
    one = (struct pair){4, 0};
    r = hwprobe(&one, 1, sizeof mask, &mask, 0);
    printf("cpus_cpu0 %ld %llu\n", r, (unsigned long long)one.value);
    mask = 0;
    printf("cpus_empty %ld\n", hwprobe(&one, 1, sizeof mask, &mask, 0));
    printf("cpus_bad %ld\n", hwprobe(&one, 1, sizeof mask, (void *)8, 0));

    /* RISCV_HWPROBE_WHICH_CPUS: which cpus have Zba and Zbb (bits 3 and 4)? */
    struct pair want = {4, (1u << 3) | (1u << 4)};
    mask = 1;
    r = hwprobe(&want, 1, sizeof mask, &mask, 1);
    printf("which_zba_zbb %ld %lu\n", r, mask);
    want = (struct pair){4, 1u << 2};          /* V */
    mask = 1;
    r = hwprobe(&want, 1, sizeof mask, &mask, 1);
    printf("which_v %ld %lu\n", r, mask);
    struct pair unknown[2] = {{1000, 0}, {3, 1}};
    mask = 1;
    r = hwprobe(unknown, 2, sizeof mask, &mask, 1);
    printf("which_unknown %ld %lu %lld\n", r, mask, (long long)unknown[0].key);
    printf("which_nomask %ld\n", hwprobe(&want, 1, 0, NULL, 1));
    return 0;
}
