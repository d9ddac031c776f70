/*
 * A freestanding riscv64 guest (no libc: it builds in a blink and translates
 * in about a second) that probes the sandbox findings of issue 16 through
 * raw system calls.  argv[1] picks the probe; each prints what the guest
 * sees, so the test compares it with qemu-riscv64's run of the same binary.
 *
 *   truncated-write  map a file MAP_SHARED, truncate it, write() the mapped
 *                    range: -EFAULT (the host must not die of SIGBUS)
 *   truncated-mremap the same mapping grown and moved with mremap, then
 *                    written: mremap succeeds, write() gives -EFAULT
 *   truncated-load   the same mapping read by a plain load: guest SIGBUS
 *   huge-write       write() with a count of 2^63 from a valid buffer: -EFAULT
 *   big-private      a 1 GiB private file mapping, one byte read every
 *                    128 MiB (the host must not copy the file)
 */
typedef unsigned long u64;
typedef long s64;

static s64 sys6(s64 n, s64 a, s64 b, s64 c, s64 d, s64 e, s64 f)
{
    register s64 a7 __asm__("a7") = n;
    register s64 a0 __asm__("a0") = a;
    register s64 a1 __asm__("a1") = b;
    register s64 a2 __asm__("a2") = c;
    register s64 a3 __asm__("a3") = d;
    register s64 a4 __asm__("a4") = e;
    register s64 a5 __asm__("a5") = f;
    __asm__ volatile("ecall" : "+r"(a0) : "r"(a7), "r"(a1), "r"(a2), "r"(a3), "r"(a4), "r"(a5) : "memory");
    return a0;
}

#define SYS_openat 56
#define SYS_close 57
#define SYS_ftruncate 46
#define SYS_write 64
#define SYS_exit 93
#define SYS_munmap 215
#define SYS_mremap 216
#define SYS_mmap 222
#define AT_FDCWD -100
#define O_RDWR 2
#define O_CREAT 0100
#define O_TRUNC 01000
#define PROT_READ 1
#define PROT_WRITE 2
#define MAP_SHARED 1
#define MAP_PRIVATE 2
#define MREMAP_MAYMOVE 1

static u64 len(const char *s) { u64 n = 0; while (s[n]) n++; return n; }
static void out(const char *s) { sys6(SYS_write, 1, (s64)s, (s64)len(s), 0, 0, 0); }

static void num(const char *label, s64 v)
{
    char buf[32], *p = buf + sizeof buf;
    int neg = v < 0;
    u64 u = neg ? -(u64)v : (u64)v;
    *--p = 0;
    *--p = '\n';
    do { *--p = (char)('0' + u % 10); u /= 10; } while (u);
    if (neg) *--p = '-';
    out(label);
    out(p);
}

static int same(const char *a, const char *b)
{
    while (*a && *a == *b) { a++; b++; }
    return *a == *b;
}

/* A file of n bytes of 'x' in the working directory, open read-write. */
static s64 file_of(const char *name, u64 n)
{
    static char page[4096];
    for (int i = 0; i < 4096; i++) page[i] = 'x';
    s64 fd = sys6(SYS_openat, AT_FDCWD, (s64)name, O_RDWR | O_CREAT | O_TRUNC, 0600, 0, 0);
    for (u64 done = 0; done < n; done += 4096)
        sys6(SYS_write, fd, (s64)page, 4096, 0, 0, 0);
    return fd;
}

static int probe(const char *what)
{
    if (same(what, "truncated-write") || same(what, "truncated-mremap") || same(what, "truncated-load")) {
        s64 fd = file_of("probe.dat", 8192);
        char *p = (char *)sys6(SYS_mmap, 0, 8192, PROT_READ, MAP_SHARED, fd, 0);
        num("first byte: ", p[0]);
        num("ftruncate: ", sys6(SYS_ftruncate, fd, 0, 0, 0, 0, 0));
        if (same(what, "truncated-mremap")) {
            char *q = (char *)sys6(SYS_mremap, (s64)p, 8192, 16384, MREMAP_MAYMOVE, 0, 0);
            num("mremap failed: ", (s64)q < 0 && (s64)q > -4096 ? (s64)q : 0);
            p = q;
        }
        if (same(what, "truncated-load")) {
            out("loading\n");
            num("byte: ", ((volatile char *)p)[4096]);
            return 0;
        }
        num("write: ", sys6(SYS_write, 1, (s64)p, 8192, 0, 0, 0));
        return 0;
    }
    if (same(what, "huge-write")) {
        static const char msg[] = "abc\n";
        num("write: ", sys6(SYS_write, 1, (s64)msg, (s64)1 << 63, 0, 0, 0));
        num("write 4: ", sys6(SYS_write, 1, (s64)msg, 4, 0, 0, 0));
        return 0;
    }
    if (same(what, "big-private")) {
        s64 fd = sys6(SYS_openat, AT_FDCWD, (s64)"big.dat", O_RDWR | O_CREAT | O_TRUNC, 0600, 0, 0);
        num("ftruncate: ", sys6(SYS_ftruncate, fd, (s64)1 << 30, 0, 0, 0, 0));
        volatile char *p = (volatile char *)sys6(SYS_mmap, 0, (s64)1 << 30, PROT_READ | PROT_WRITE,
                                                 MAP_PRIVATE, fd, 0);
        if ((s64)p < 0 && (s64)p > -4096) {
            num("mmap: ", (s64)p);
            return 1;
        }
        s64 sum = 0;
        for (u64 off = 0; off < ((u64)1 << 30); off += (u64)128 << 20) {
            sum += p[off];
            p[off] = 1;
        }
        num("sum: ", sum);
        num("munmap: ", sys6(SYS_munmap, (s64)p, (s64)1 << 30, 0, 0, 0, 0));
        return 0;
    }
    out("unknown probe\n");
    return 2;
}

__attribute__((used)) int probe_main(long argc, char **argv)
{
    return probe(argc > 1 ? argv[1] : "");
}

/* _start: a0 = argc, a1 = argv from the initial stack, then exit(probe_main). */
__asm__(".globl _start\n"
        "_start:\n"
        "  ld a0, 0(sp)\n"
        "  addi a1, sp, 8\n"
        "  call probe_main\n"
        "  li a7, 93\n"
        "  ecall\n");
