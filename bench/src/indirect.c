/* Indirect-call heavy: function-pointer dispatch ("virtual calls"). */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>

typedef uint64_t (*op_fn)(uint64_t, uint64_t);
__attribute__((noinline)) static uint64_t op_add(uint64_t a, uint64_t b) { return a + b; }
__attribute__((noinline)) static uint64_t op_xor(uint64_t a, uint64_t b) { return a ^ (b << 3); }
__attribute__((noinline)) static uint64_t op_mul(uint64_t a, uint64_t b) { return a * (b | 1); }
__attribute__((noinline)) static uint64_t op_rot(uint64_t a, uint64_t b) { return (a << (b & 31)) | (a >> (64 - (b & 31) - 1)); }
__attribute__((noinline)) static uint64_t op_sub(uint64_t a, uint64_t b) { return a - (b >> 1); }
static op_fn const table[] = {op_add, op_xor, op_mul, op_rot, op_sub};

struct shape { op_fn fn; uint64_t k; };

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 10000;
    enum { N = 4096 };
    struct shape *s = malloc(sizeof *s * N);
    uint32_t x = 7;
    for (int i = 0; i < N; i++) { x = x * 1103515245u + 12345u; s[i].fn = table[(x >> 16) % 5]; s[i].k = x; }
    uint64_t acc = 1;
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < N; i++) acc = s[i].fn(acc, s[i].k + (uint64_t)r);
    printf("indirect %d: %016llx\n", rounds, (unsigned long long)acc);
    free(s);
    return 0;
}
