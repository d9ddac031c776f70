/* qsort: libc qsort/bsearch with comparator callbacks (indirect calls into
 * our code from libc), function-pointer tables and callbacks through
 * structs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rec {
    int key;
    char name[12];
    double weight;
};

static unsigned long long seed = 0x243F6A8885A308D3ull;
static unsigned rnd(void)
{
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    return (unsigned)(seed >> 33);
}

static int cmp_int_asc(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}
static int cmp_int_desc(const void *a, const void *b) { return cmp_int_asc(b, a); }
static int cmp_int_mod7(const void *a, const void *b)
{
    int x = *(const int *)a % 7, y = *(const int *)b % 7;
    if (x != y)
        return x - y;
    return cmp_int_asc(a, b);
}
/* total order on records, so results do not depend on the (unstable)
   qsort algorithm of the libc */
static int rec_tiebreak(const struct rec *x, const struct rec *y)
{
    if (x->key != y->key)
        return (x->key > y->key) - (x->key < y->key);
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    return (x->weight > y->weight) - (x->weight < y->weight);
}
static int cmp_rec_key(const void *a, const void *b)
{
    const struct rec *x = a, *y = b;
    if (x->key != y->key)
        return (x->key > y->key) - (x->key < y->key);
    return rec_tiebreak(x, y);
}
static int cmp_rec_name(const void *a, const void *b)
{
    const struct rec *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : rec_tiebreak(x, y);
}
static int cmp_rec_weight(const void *a, const void *b)
{
    const struct rec *x = a, *y = b;
    if (x->weight != y->weight)
        return x->weight < y->weight ? -1 : 1;
    return rec_tiebreak(x, y);
}
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef int (*cmp_fn)(const void *, const void *);
static const struct {
    const char *name;
    cmp_fn fn;
} int_sorts[] = {
    {"asc", cmp_int_asc},
    {"desc", cmp_int_desc},
    {"mod7", cmp_int_mod7},
};

/* a table of arithmetic operations called through pointers */
static long op_add(long a, long b) { return a + b; }
static long op_sub(long a, long b) { return a - b; }
static long op_mul(long a, long b) { return a * b; }
static long op_xor(long a, long b) { return a ^ b; }
static long op_max(long a, long b) { return a > b ? a : b; }
static long (*const ops[])(long, long) = {op_add, op_sub, op_mul, op_xor, op_max};

static unsigned long hash_ints(const int *v, int n)
{
    unsigned long h = 1469598103934665603ul;
    for (int i = 0; i < n; i++)
        h = (h ^ (unsigned)v[i]) * 1099511628211ul;
    return h;
}

int main(void)
{
    enum { N = 2000 };
    static int base[N], v[N];
    for (int i = 0; i < N; i++)
        base[i] = (int)(rnd() % 100000) - 50000;

    for (unsigned s = 0; s < sizeof int_sorts / sizeof int_sorts[0]; s++) {
        memcpy(v, base, sizeof v);
        qsort(v, N, sizeof v[0], int_sorts[s].fn);
        int ok = 1;
        for (int i = 1; i < N; i++)
            if (int_sorts[s].fn(&v[i - 1], &v[i]) > 0)
                ok = 0;
        printf("sort %-4s ok=%d first=%d last=%d hash=%016lx\n",
               int_sorts[s].name, ok, v[0], v[N - 1], hash_ints(v, N));
    }

    /* bsearch on ascending data */
    memcpy(v, base, sizeof v);
    qsort(v, N, sizeof v[0], cmp_int_asc);
    int found = 0, missing = 0;
    for (int k = -50000; k < 50000; k += 37) {
        int *p = bsearch(&k, v, N, sizeof v[0], cmp_int_asc);
        if (p) {
            found++;
            if (*p != k)
                printf("bsearch mismatch\n");
        } else
            missing++;
    }
    printf("bsearch found=%d missing=%d\n", found, missing);
    for (int i = 0; i < N; i += 401) {
        int *p = bsearch(&v[i], v, N, sizeof v[0], cmp_int_asc);
        printf("bsearch v[%d]=%d -> %s\n", i, v[i], p && *p == v[i] ? "hit" : "miss");
    }

    /* records */
    static struct rec recs[300];
    static const char *syll[] = {"ka", "lo", "mi", "ne", "ru", "sa", "to", "vi"};
    for (int i = 0; i < 300; i++) {
        recs[i].key = (int)(rnd() % 1000);
        /* three separate statements: argument evaluation order is unspecified */
        unsigned s0 = rnd() % 8, s1 = rnd() % 8, s2 = rnd() % 8;
        snprintf(recs[i].name, sizeof recs[i].name, "%s%s%s", syll[s0], syll[s1],
                 syll[s2]);
        recs[i].weight = (double)(rnd() % 10000) / 16.0;
    }
    cmp_fn rec_cmps[] = {cmp_rec_key, cmp_rec_name, cmp_rec_weight};
    const char *rec_names[] = {"key", "name", "weight"};
    for (int s = 0; s < 3; s++) {
        qsort(recs, 300, sizeof recs[0], rec_cmps[s]);
        unsigned long h = 0;
        for (int i = 0; i < 300; i++)
            h = h * 131 + (unsigned)recs[i].key;
        printf("recs by %-6s: [0]=%d/%s/%.4f [299]=%d/%s/%.4f h=%lu\n",
               rec_names[s], recs[0].key, recs[0].name, recs[0].weight,
               recs[299].key, recs[299].name, recs[299].weight, h);
    }
    struct rec probe;
    memset(&probe, 0, sizeof probe);
    qsort(recs, 300, sizeof recs[0], cmp_rec_name);
    strcpy(probe.name, recs[150].name);
    probe.key = recs[150].key;
    probe.weight = recs[150].weight;
    struct rec *hit = bsearch(&probe, recs, 300, sizeof recs[0], cmp_rec_name);
    printf("bsearch rec %s/%d -> %s\n", probe.name, probe.key, hit ? "hit" : "miss");

    /* strings */
    char *words[] = {"pear", "apple", "fig", "banana", "kiwi", "cherry",
                     "date", "elderberry", "grape", "apricot", "lime"};
    int nw = (int)(sizeof words / sizeof words[0]);
    qsort(words, nw, sizeof words[0], cmp_str);
    printf("words:");
    for (int i = 0; i < nw; i++)
        printf(" %s", words[i]);
    printf("\n");
    char *key = "grape";
    char **wp = bsearch(&key, words, nw, sizeof words[0], cmp_str);
    printf("bsearch grape -> index %ld\n", wp ? (long)(wp - words) : -1L);

    /* function pointer table */
    long acc = 1;
    for (int i = 0; i < 100; i++)
        acc = ops[(unsigned)i % 5](acc, i + 3) & 0xffffffffl;
    printf("ops acc=%ld\n", acc);
    return 0;
}
