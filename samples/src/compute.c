/* compute: a mixed compute benchmark. Usage: compute [SCALE]
 * Each round does: crc32 over a buffer, a small integer and a small double
 * matrix multiply, a prime sieve, sorting (own merge sort + insertion
 * sort), an open-addressing hash map, and some double math (+-* / sqrt
 * only; no libm transcendentals, so results are bit-identical everywhere;
 * built with -ffp-contract=off). SCALE (default 2500) is the number of
 * rounds; the default takes roughly a second natively on x86_64 at -O2.
 * Prints per-part checksums and a final checksum depending on all work. */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
    return h;
}

/* --- crc32 (reflected, poly 0xEDB88320), table driven --- */
static uint32_t crc_table[256];
static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}
static uint32_t crc32_buf(const uint8_t *p, size_t n, uint32_t crc)
{
    crc = ~crc;
    while (n--)
        crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* --- matrices --- */
#define MN 24
static uint64_t matmul_int(int round)
{
    static int32_t a[MN][MN], b[MN][MN];
    static int64_t c[MN][MN];
    for (int i = 0; i < MN; i++)
        for (int j = 0; j < MN; j++) {
            a[i][j] = (int32_t)((i * 31 + j * 17 + round) % 201) - 100;
            b[i][j] = (int32_t)((i * 7 + j * 13 + round * 3) % 199) - 99;
        }
    for (int i = 0; i < MN; i++)
        for (int j = 0; j < MN; j++) {
            int64_t s = 0;
            for (int k = 0; k < MN; k++)
                s += (int64_t)a[i][k] * b[k][j];
            c[i][j] = s;
        }
    uint64_t h = 0;
    for (int i = 0; i < MN; i++)
        for (int j = 0; j < MN; j++)
            h = mix(h, (uint64_t)c[i][j]);
    return h;
}

static double matmul_double(int round)
{
    static double a[MN][MN], b[MN][MN], c[MN][MN];
    for (int i = 0; i < MN; i++)
        for (int j = 0; j < MN; j++) {
            a[i][j] = (double)((i + 1) * (j + 2) % 17) / 8.0 - 1.0 + round * 1e-3;
            b[i][j] = 1.0 / (double)(i + j + 1 + round % 5);
        }
    for (int i = 0; i < MN; i++)
        for (int j = 0; j < MN; j++) {
            double s = 0;
            for (int k = 0; k < MN; k++)
                s += a[i][k] * b[k][j];
            c[i][j] = s;
        }
    double tr = 0;
    for (int i = 0; i < MN; i++)
        tr += c[i][i] * (double)(i + 1) + c[i][MN - 1 - i];
    return tr;
}

/* --- sieve --- */
static uint64_t sieve(uint32_t n, uint32_t *count)
{
    static uint8_t comp[200001];
    memset(comp, 0, n + 1);
    uint64_t sum = 0;
    uint32_t cnt = 0;
    for (uint32_t i = 2; i <= n; i++) {
        if (comp[i])
            continue;
        cnt++;
        sum += i;
        for (uint64_t j = (uint64_t)i * i; j <= n; j += i)
            comp[j] = 1;
    }
    *count = cnt;
    return sum;
}

/* --- sorting --- */
static void merge_sort(uint32_t *v, uint32_t *tmp, size_t n)
{
    if (n <= 16) {
        for (size_t i = 1; i < n; i++) {
            uint32_t x = v[i];
            size_t j = i;
            while (j > 0 && v[j - 1] > x) {
                v[j] = v[j - 1];
                j--;
            }
            v[j] = x;
        }
        return;
    }
    size_t h = n / 2;
    merge_sort(v, tmp, h);
    merge_sort(v + h, tmp, n - h);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = v[i] <= v[j] ? v[i++] : v[j++];
    while (i < h)
        tmp[k++] = v[i++];
    while (j < n)
        tmp[k++] = v[j++];
    memcpy(v, tmp, n * sizeof *v);
}

/* --- hash map: open addressing, linear probing, u64 -> u64 --- */
#define HCAP 8192
struct slot {
    uint64_t key, val;
    int used;
};
static struct slot table[HCAP];
static uint64_t hm_hash(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return k;
}
static void hm_add(uint64_t key, uint64_t delta)
{
    size_t i = hm_hash(key) & (HCAP - 1);
    while (table[i].used && table[i].key != key)
        i = (i + 1) & (HCAP - 1);
    if (!table[i].used) {
        table[i].used = 1;
        table[i].key = key;
        table[i].val = 0;
    }
    table[i].val += delta;
}
static int hm_get(uint64_t key, uint64_t *val)
{
    size_t i = hm_hash(key) & (HCAP - 1);
    while (table[i].used) {
        if (table[i].key == key) {
            *val = table[i].val;
            return 1;
        }
        i = (i + 1) & (HCAP - 1);
    }
    return 0;
}

/* --- double math: newton iterations, series, sqrt --- */
static double dmath(int round)
{
    double x = 2.0 + round % 7;
    double r = x;
    for (int i = 0; i < 30; i++)
        r = 0.5 * (r + x / r);
    double s = 0, t = 1;
    for (int k = 1; k < 200; k++) {
        t *= 0.5 / (double)k * (round % 3 + 1);
        s += (k & 1) ? t : -t;
        s += sqrt((double)k + round) * 1e-6;
    }
    return r - sqrt(x) + s;
}

int main(int argc, char **argv)
{
    long scale = argc > 1 ? strtol(argv[1], NULL, 10) : 2500;
    if (scale < 1)
        scale = 1;
    crc_init();

    enum { BUF = 16384, NSORT = 4096 };
    static uint8_t buf[BUF];
    static uint32_t arr[NSORT], tmp[NSORT];
    uint32_t crc = 0;
    uint64_t h_mat = 0, h_sieve = 0, h_sort = 0, h_map = 0;
    double d_mat = 0, d_math = 0;
    uint32_t primes = 0;

    for (long r = 0; r < scale; r++) {
        for (int i = 0; i < BUF; i += 8) {
            uint64_t v = rng();
            memcpy(buf + i, &v, 8);
        }
        crc = crc32_buf(buf, BUF, crc);

        h_mat = mix(h_mat, matmul_int((int)r));
        d_mat += matmul_double((int)r);

        uint32_t cnt;
        h_sieve = mix(h_sieve, sieve(20000 + (uint32_t)(r % 10) * 1000, &cnt));
        primes += cnt;

        for (int i = 0; i < NSORT; i++)
            arr[i] = (uint32_t)(rng() >> 40);
        merge_sort(arr, tmp, NSORT);
        for (int i = 0; i < NSORT; i += 97)
            h_sort = mix(h_sort, arr[i]);
        for (int i = 1; i < NSORT; i++)
            if (arr[i - 1] > arr[i])
                h_sort ^= 1; /* never happens */

        for (int i = 0; i < 2000; i++) {
            uint64_t k = rng() % 3000;
            hm_add(k, (uint64_t)i + (uint64_t)r);
        }
        uint64_t v;
        for (uint64_t k = 0; k < 3000; k += 7)
            if (hm_get(k, &v))
                h_map = mix(h_map, v ^ k);

        d_math += dmath((int)r);
    }
    uint64_t dm_bits, dd_bits;
    memcpy(&dm_bits, &d_mat, 8);
    memcpy(&dd_bits, &d_math, 8);
    printf("scale=%ld\n", scale);
    printf("crc32=%08" PRIx32 "\n", crc);
    printf("matint=%016" PRIx64 "\n", h_mat);
    printf("matdouble=%.17g bits=%016" PRIx64 "\n", d_mat, dm_bits);
    printf("sieve=%016" PRIx64 " primes=%" PRIu32 "\n", h_sieve, primes);
    printf("sort=%016" PRIx64 "\n", h_sort);
    printf("map=%016" PRIx64 "\n", h_map);
    printf("dmath=%.17g bits=%016" PRIx64 "\n", d_math, dd_bits);
    uint64_t total = 0;
    total = mix(total, crc);
    total = mix(total, h_mat);
    total = mix(total, dm_bits);
    total = mix(total, h_sieve);
    total = mix(total, primes);
    total = mix(total, h_sort);
    total = mix(total, h_map);
    total = mix(total, dd_bits);
    printf("checksum=%016" PRIx64 "\n", total);
    return 0;
}
