/* Memory-bound streaming: copy, scale, add, triad over arrays bigger than cache. */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 15;
    enum { N = 4 << 20 };
    int64_t *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b), *c = malloc(N * sizeof *c);
    for (long i = 0; i < N; i++) { a[i] = i; b[i] = 2 * i + 1; c[i] = 0; }
    for (int r = 0; r < rounds; r++) {
        for (long i = 0; i < N; i++) c[i] = a[i];
        for (long i = 0; i < N; i++) b[i] = 3 * c[i];
        for (long i = 0; i < N; i++) c[i] = a[i] + b[i];
        for (long i = 0; i < N; i++) a[i] = b[i] + 3 * c[i] + r;
    }
    uint64_t s = 0;
    for (long i = 0; i < N; i += 4097) s += (uint64_t)a[i] ^ (uint64_t)c[i];
    printf("stream %d: %llu\n", rounds, (unsigned long long)s);
    free(a); free(b); free(c);
    return 0;
}
