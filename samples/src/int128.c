/* int128: __int128 multiply/divide/shift (compiler helper calls such as
 * __multi3/__divti3/__udivti3 or inline sequences), plus 32- and 64-bit
 * signed/unsigned division and remainder over many operand pairs.
 *
 * Only divisions that are defined in C are actually executed. The cases C
 * leaves undefined (x/0, INT_MIN/-1) are NOT executed; for those the
 * program prints the RISC-V-defined result computed with portable unsigned
 * arithmetic (quotient all ones / dividend for x/0; INT_MIN and 0 for
 * INT_MIN/-1), marked "def". So the output is identical on every ISA.
 * Operands go through volatile variables so real divide instructions run. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef __int128 i128;
typedef unsigned __int128 u128;

static char *u128_str(u128 v, char *buf)
{
    char tmp[48];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + (int)(v % 10));
        v /= 10;
    } while (v);
    for (int i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    buf[n] = '\0';
    return buf;
}

static char *i128_str(i128 v, char *buf)
{
    if (v < 0) {
        buf[0] = '-';
        u128_str((u128)0 - (u128)v, buf + 1);
    } else {
        u128_str((u128)v, buf);
    }
    return buf;
}

static void print_hex128(const char *label, u128 v)
{
    printf("%s=0x%016" PRIx64 "%016" PRIx64 "\n", label, (uint64_t)(v >> 64),
           (uint64_t)v);
}

static const int64_t vals64[] = {
    0, 1, -1, 2, -2, 3, -3, 7, -7, 10, -10, 255, 1000000007, -1000000007,
    INT32_MAX, INT32_MIN, (int64_t)INT32_MAX + 1, UINT32_MAX,
    INT64_MAX, INT64_MIN, INT64_MIN + 1, 0x123456789abcdefLL,
    -0x123456789abcdefLL, 0x7fffffff00000001LL,
};

int main(void)
{
    const int n = (int)(sizeof vals64 / sizeof vals64[0]);
    char b1[64], b2[64], b3[64], b4[64];

    /* 64-bit signed division/remainder */
    uint64_t h = 0;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++) {
            volatile int64_t a = vals64[i], b = vals64[j];
            int64_t q, r;
            int def = 0;
            if (b == 0) {
                q = -1;
                r = a;
                def = 1;
            } else if (a == INT64_MIN && b == -1) {
                q = (int64_t)((uint64_t)0 - (uint64_t)a); /* wraps to INT64_MIN */
                r = 0;
                def = 1;
            } else {
                q = a / b;
                r = a % b;
            }
            volatile uint64_t ua = (uint64_t)vals64[i], ub = (uint64_t)vals64[j];
            uint64_t uq, ur;
            if (ub == 0) {
                uq = UINT64_MAX;
                ur = ua;
            } else {
                uq = ua / ub;
                ur = ua % ub;
            }
            h = h * 1000003u ^ (uint64_t)q;
            h = h * 1000003u ^ (uint64_t)r;
            h = h * 1000003u ^ uq;
            h = h * 1000003u ^ ur;
            if ((i % 5 == 0 && j % 3 == 1) || def || (i == 19 && j < 6))
                printf("div64 %" PRId64 " / %" PRId64 ": q=%" PRId64 " r=%" PRId64
                       " uq=%" PRIu64 " ur=%" PRIu64 "%s\n",
                       vals64[i], vals64[j], q, r, uq, ur,
                       def ? " (def)" : "");
        }
    }
    printf("div64 hash=%016" PRIx64 "\n", h);

    /* 32-bit signed/unsigned division */
    h = 0;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++) {
            volatile int32_t a = (int32_t)vals64[i], b = (int32_t)vals64[j];
            int32_t q, r;
            int def = 0;
            if (b == 0) {
                q = -1;
                r = a;
                def = 1;
            } else if (a == INT32_MIN && b == -1) {
                q = (int32_t)((uint32_t)0 - (uint32_t)a);
                r = 0;
                def = 1;
            } else {
                q = a / b;
                r = a % b;
            }
            volatile uint32_t ua = (uint32_t)vals64[i], ub = (uint32_t)vals64[j];
            uint32_t uq = ub ? ua / ub : UINT32_MAX;
            uint32_t ur = ub ? ua % ub : ua;
            h = h * 1000003u ^ (uint32_t)q;
            h = h * 1000003u ^ (uint32_t)r;
            h = h * 1000003u ^ uq;
            h = h * 1000003u ^ ur;
            if ((i % 6 == 1 && j % 4 == 2) || (def && i % 4 == 0))
                printf("div32 %" PRId32 " / %" PRId32 ": q=%" PRId32 " r=%" PRId32
                       " uq=%" PRIu32 " ur=%" PRIu32 "%s\n",
                       (int32_t)vals64[i], (int32_t)vals64[j], q, r, uq, ur,
                       def ? " (def)" : "");
        }
    }
    printf("div32 hash=%016" PRIx64 "\n", h);

    /* 64x64 -> 128 products (mulh/mulhu/mulhsu equivalents) */
    h = 0;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++) {
            volatile int64_t a = vals64[i], b = vals64[j];
            i128 ss = (i128)a * (i128)b;
            u128 uu = (u128)(uint64_t)a * (u128)(uint64_t)b;
            i128 su = (i128)a * (i128)(u128)(uint64_t)b;
            h = h * 31 + (uint64_t)(ss >> 64);
            h = h * 31 + (uint64_t)(uu >> 64);
            h = h * 31 + (uint64_t)((u128)su >> 64);
            h = h * 31 + (uint64_t)uu;
        }
    }
    printf("mul128 high-part hash=%016" PRIx64 "\n", h);

    /* 128-bit arithmetic */
    u128 f = 1;
    for (int k = 1; k <= 34; k++) {
        f *= (u128)k;
        if (k >= 20 && k % 2 == 0)
            printf("%d! = %s\n", k, u128_str(f, b1));
    }
    print_hex128("34!", f);
    volatile i128 big = (i128)0x0123456789abcdefLL * (i128)0x7edcba9876543210LL;
    big = big * 977 - 12345;
    i128 ds[] = {3, -7, 1000000007, -((i128)1 << 70), ((i128)1 << 64) + 1,
                 (i128)INT64_MIN, 0x10000000000LL};
    for (unsigned k = 0; k < sizeof ds / sizeof ds[0]; k++) {
        volatile i128 d = ds[k];
        i128 q = big / d, r = big % d;
        printf("%s / %s = %s rem %s\n", i128_str(big, b1), i128_str(d, b2),
               i128_str(q, b3), i128_str(r, b4));
        u128 uq = (u128)big / (u128)d, ur = (u128)big % (u128)d;
        print_hex128("  uq", uq);
        print_hex128("  ur", ur);
    }
    volatile i128 neg = -big;
    printf("-big = %s\n", i128_str(neg, b1));
    printf("-big >> 7 = %s\n", i128_str(neg >> 7, b1));
    print_hex128("(u)-big >> 7", (u128)neg >> 7);
    print_hex128("big << 37", (u128)big << 37);
    printf("big < -big: %d, (u)big < (u)-big: %d\n", big < neg,
           (u128)big < (u128)neg);

    /* shifts and rotates on 32/64-bit values with variable amounts */
    h = 0;
    for (volatile int s = 0; s < 64; s++) {
        uint64_t x = 0x8123456789abcdefull;
        int64_t sx = (int64_t)x;
        uint32_t y = 0x89abcdefu;
        int32_t sy = (int32_t)y;
        h = h * 131 + (x << s) + (x >> s) + (uint64_t)(sx >> s);
        h = h * 131 + (uint32_t)(y << (s & 31)) + (y >> (s & 31)) +
            (uint32_t)(sy >> (s & 31));
        h = h * 131 + ((x << s) | (x >> ((64 - s) & 63)));
    }
    printf("shift hash=%016" PRIx64 "\n", h);
    return 0;
}
