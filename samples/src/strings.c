/* strings: malloc/realloc/free-heavy string processing.
 * Builds text, splits it into words, reverses, sorts and deduplicates
 * them, does replacements with growing buffers, and grows one buffer to
 * 512 KiB so that large (mmap-backed) allocations and big reallocs happen
 * too (sized so that even the interpreter engine runs it in seconds). Prints checksums and a few strings; no addresses. */
#define _GNU_SOURCE /* memmem */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t fnv1a(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) {
        printf("out of memory\n");
        exit(1);
    }
    return p;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (!p) {
        printf("out of memory\n");
        exit(1);
    }
    return p;
}

struct sbuf {
    char *s;
    size_t len, cap;
    unsigned reallocs;
};

static void sb_append(struct sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 16;
        while (cap < b->len + n + 1)
            cap = cap * 3 / 2 + 1;
        b->s = xrealloc(b->s, cap);
        b->cap = cap;
        b->reallocs++;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_puts(struct sbuf *b, const char *s) { sb_append(b, s, strlen(s)); }

static int cmp_words(const void *a, const void *b)
{
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    size_t lx = strlen(x), ly = strlen(y);
    if (lx != ly)
        return lx < ly ? -1 : 1;
    return strcmp(x, y);
}

static char *reverse_dup(const char *s)
{
    size_t n = strlen(s);
    char *r = xmalloc(n + 1);
    for (size_t i = 0; i < n; i++)
        r[i] = s[n - 1 - i];
    r[n] = '\0';
    return r;
}

/* replace every occurrence of `from` with `to`; returns a new string */
static char *replace_all(const char *s, const char *from, const char *to)
{
    struct sbuf b = {0};
    size_t fl = strlen(from), left = strlen(s);
    const char *p;
    /* memmem with the remaining length, not strstr: the musl build's strstr
       measures the whole haystack on every call (quadratic here) */
    while ((p = memmem(s, left, from, fl)) != NULL) {
        sb_append(&b, s, (size_t)(p - s));
        sb_puts(&b, to);
        left -= (size_t)(p - s) + fl;
        s = p + fl;
    }
    sb_puts(&b, s);
    return b.s;
}

static const char *lorem[] = {
    "lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing",
    "elit", "sed", "do", "eiusmod", "tempor", "incididunt", "ut", "labore",
    "et", "dolore", "magna", "aliqua", "enim", "ad", "minim", "veniam",
    "quis", "nostrud", "exercitation", "ullamco", "laboris", "nisi",
};

int main(void)
{
    const int nl = (int)(sizeof lorem / sizeof lorem[0]);
    uint64_t seed = 12345;

    /* 1. build a text of pseudo-random words */
    struct sbuf text = {0};
    for (int i = 0; i < 5000; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        const char *w = lorem[(seed >> 33) % (unsigned)nl];
        sb_puts(&text, w);
        sb_puts(&text, (i % 17 == 16) ? ".\n" : " ");
    }
    printf("text: len=%zu reallocs=%u fnv=%08x\n", text.len, text.reallocs,
           fnv1a(text.s, text.len));
    printf("text starts: %.60s\n", text.s);

    /* 2. split into words (strdup each), count, sort, dedupe */
    size_t cap = 8, nw = 0;
    char **words = xmalloc(cap * sizeof *words);
    char *copy = strdup(text.s);
    /* line by line: the musl build's strtok and strchr measure the rest of
       their string on every call, which would make them quadratic over the
       whole text */
    for (char *line = copy, *next; *line; line = next) {
        for (next = line; *next && *next != '\n'; next++)
            ;
        if (*next)
            *next++ = '\0';
        for (char *tok = strtok(line, " ."); tok; tok = strtok(NULL, " .")) {
            if (nw == cap) {
                cap *= 2;
                words = xrealloc(words, cap * sizeof *words);
            }
            words[nw++] = strdup(tok);
        }
    }
    free(copy);
    printf("words: %zu\n", nw);
    qsort(words, nw, sizeof *words, cmp_words);
    size_t uniq = 0;
    for (size_t i = 0; i < nw; i++) {
        if (uniq == 0 || strcmp(words[uniq - 1], words[i]) != 0)
            words[uniq++] = words[i];
        else
            free(words[i]);
    }
    printf("unique words: %zu:", uniq);
    for (size_t i = 0; i < uniq; i++)
        printf(" %s", words[i]);
    printf("\n");

    /* 3. reverse each unique word, uppercase, join */
    struct sbuf joined = {0};
    for (size_t i = 0; i < uniq; i++) {
        char *r = reverse_dup(words[i]);
        for (char *c = r; *c; c++)
            *c = (char)toupper((unsigned char)*c);
        if (i)
            sb_puts(&joined, "-");
        sb_puts(&joined, r);
        free(r);
    }
    printf("reversed: %s\n", joined.s ? joined.s : "");
    for (size_t i = 0; i < uniq; i++)
        free(words[i]);
    free(words);

    /* 4. replacements that grow and shrink */
    char *r1 = replace_all(text.s, "dolor", "<DOLOR-REPLACED>");
    char *r2 = replace_all(r1, "e", "");
    char *r3 = replace_all(r2, " ", "  ");
    printf("replace: %zu -> %zu -> %zu -> %zu fnv=%08x/%08x/%08x\n", text.len, strlen(r1),
           strlen(r2), strlen(r3), fnv1a(r1, strlen(r1)), fnv1a(r2, strlen(r2)),
           fnv1a(r3, strlen(r3)));
    printf("r2 starts: %.50s\n", r2);
    free(r1);
    free(r2);
    free(r3);

    /* 5. many small allocations of varying sizes, freed in a scrambled order */
    enum { NSMALL = 5000 };
    char **small = xmalloc(NSMALL * sizeof *small);
    uint32_t hs = 0;
    for (int i = 0; i < NSMALL; i++) {
        size_t n = 1 + (size_t)(i * 37 % 200);
        small[i] = xmalloc(n);
        memset(small[i], 'a' + i % 26, n - 1);
        small[i][n - 1] = '\0';
    }
    for (int i = 0; i < NSMALL; i++) {
        int j = (int)((unsigned)i * 7919u % NSMALL);
        hs = hs * 31 + fnv1a(small[j], strlen(small[j]));
        if (j % 3 == 0) {
            small[j] = xrealloc(small[j], strlen(small[j]) + 100);
            strcat(small[j], "+grown");
        }
    }
    for (int i = 0; i < NSMALL; i++)
        hs = hs * 31 + (uint32_t)strlen(small[i]);
    for (int i = NSMALL - 1; i >= 0; i -= 2)
        free(small[i]);
    for (int i = 0; i < NSMALL; i += 2)
        free(small[i]);
    free(small);
    printf("small allocs hash=%08x\n", hs);

    /* 6. grow one buffer to a few MB (mmap-backed realloc), then shrink */
    struct sbuf big = {0};
    char line[128];
    int lines = 0;
    while (big.len < 512u * 1024) {
        int n = snprintf(line, sizeof line, "line %06d: %s %s %s\n", lines,
                         lorem[lines % nl], lorem[(lines * 7) % nl], lorem[(lines * 13) % nl]);
        sb_append(&big, line, (size_t)n);
        lines++;
    }
    printf("big: lines=%d len=%zu reallocs=%u fnv=%08x\n", lines, big.len, big.reallocs,
           fnv1a(big.s, big.len));
    char *last = strrchr(big.s, 'l');
    printf("big tail: %.40s", last ? last - 10 : "");
    printf("\n");
    big.s = xrealloc(big.s, 1000);
    big.s[999] = '\0';
    printf("shrunk fnv=%08x\n", fnv1a(big.s, 999));
    free(big.s);

    /* 7. a large calloc (mmap-backed: must be zeroed) */
    unsigned char *z = calloc(1024 * 1024, 1);
    size_t nz = 0;
    for (size_t i = 0; i < 1024u * 1024; i++)
        nz += z[i] != 0;
    printf("calloc 1MB nonzero=%zu\n", nz);
    free(z);

    /* 8. string functions */
    char buf[256];
    snprintf(buf, sizeof buf, "%s|%10s|%-6s|%.3s|%c%c", "abc", "right", "left", "truncate", 'x', 'y');
    printf("snprintf: %s\n", buf);
    printf("strchr=%td strrchr=%td strspn=%zu strcspn=%zu strncmp=%d memcmp=%d\n",
           strchr(buf, '|') - buf, strrchr(buf, '|') - buf, strspn(buf, "abc"),
           strcspn(buf, "r"), strncmp("abcdef", "abcxyz", 3) == 0,
           memcmp("abc", "abd", 3) < 0);
    char *dup = strndup("hello world", 5);
    printf("strndup=%s strtol=%ld strtoul=%lu atoi=%d\n", dup, strtol("-0x1F", NULL, 16),
           strtoul("777", NULL, 8), atoi("  123xyz"));
    free(dup);
    free(text.s);
    free(joined.s);
    return 0;
}
