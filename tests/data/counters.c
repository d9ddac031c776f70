/* Zicntr probe for tests/test_counters.py: freestanding riscv64 (no libc, so
 * the AOT image builds in seconds).  Modes (argv[1]):
 *   read     print "name value" lines: time/clock_gettime/time around each
 *            other, counter deltas over a 50 ms nanosleep, monotonicity of
 *            10000 reads of each counter, hpmcounter3
 *   write    csrw time (a write to a read-only CSR): SIGILL
 *   csrrs    csrrs with a non-zero source on cycle: SIGILL
 */
typedef unsigned long u64;
typedef long i64;

__asm__(".globl _start\n_start:\n  mv a0, sp\n  call cmain\n");

static i64 sys(i64 n, i64 a, i64 b, i64 c)
{
    register i64 a0 __asm__("a0") = a, a1 __asm__("a1") = b, a2 __asm__("a2") = c;
    register i64 a7 __asm__("a7") = n;
    __asm__ volatile("ecall" : "+r"(a0) : "r"(a1), "r"(a2), "r"(a7) : "memory");
    return a0;
}

static u64 rd_time(void) { u64 v; __asm__ volatile("rdtime %0" : "=r"(v)); return v; }
static u64 rd_cycle(void) { u64 v; __asm__ volatile("rdcycle %0" : "=r"(v)); return v; }
static u64 rd_instret(void) { u64 v; __asm__ volatile("rdinstret %0" : "=r"(v)); return v; }
static u64 rd_hpm3(void) { u64 v; __asm__ volatile("csrr %0, hpmcounter3" : "=r"(v)); return v; }

struct ts { i64 sec, nsec; };

static u64 mono_ns(void)
{
    struct ts t;
    sys(113, 1, (i64)&t, 0);           /* clock_gettime(CLOCK_MONOTONIC) */
    return (u64)t.sec * 1000000000u + (u64)t.nsec;
}

static char out[4096];
static int pos;

static void put(const char *s) { while (*s) out[pos++] = *s++; }

static void num(u64 v)
{
    char b[24];
    int n = 0;
    do { b[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n) out[pos++] = b[--n];
}

static void line(const char *name, u64 v) { put(name); put(" "); num(v); put("\n"); }

static int eq(const char *a, const char *b)
{
    while (*a && *a == *b) a++, b++;
    return *a == *b;
}

static int monotonic(u64 (*rd)(void))
{
    u64 prev = rd();
    for (int i = 0; i < 10000; i++) {
        u64 v = rd();
        if (v < prev)
            return 0;
        prev = v;
    }
    return 1;
}

void cmain(i64 *sp)
{
    i64 argc = sp[0];
    char **argv = (char **)(sp + 1);
    const char *mode = argc > 1 ? argv[1] : "read";
    if (eq(mode, "write")) {
        __asm__ volatile("li t0, 5\n csrw time, t0" ::: "t0");
        put("write survived\n");
    } else if (eq(mode, "csrrs")) {
        __asm__ volatile("li t0, 1\n csrrs a5, cycle, t0" ::: "t0", "a5");
        put("csrrs survived\n");
    } else {
        u64 t0 = rd_time(), ns = mono_ns(), t1 = rd_time();
        line("time_before", t0);
        line("clock_ns", ns);
        line("time_after", t1);
        u64 c0 = rd_cycle(), i0 = rd_instret(), s0 = rd_time(), n0 = mono_ns();
        struct ts req = {0, 50000000};
        sys(101, (i64)&req, 0, 0);     /* nanosleep 50 ms */
        u64 c1 = rd_cycle(), i1 = rd_instret(), s1 = rd_time(), n1 = mono_ns();
        line("sleep_clock_ns", n1 - n0);
        line("sleep_time_ticks", s1 - s0);
        line("sleep_cycles", c1 - c0);
        line("sleep_instret", i1 - i0);
        line("monotonic_time", monotonic(rd_time));
        line("monotonic_cycle", monotonic(rd_cycle));
        line("monotonic_instret", monotonic(rd_instret));
        line("hpmcounter3", rd_hpm3());
    }
    sys(64, 1, (i64)out, pos);
    sys(93, 0, 0, 0);
}
