/* Dense loop: 32-bit integer matrix multiply. */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>

enum { N = 160 };
static int32_t a[N][N], b[N][N], c[N][N];

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 150;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) { a[i][j] = (i * 7 + j * 3) % 17 - 8; b[i][j] = (i * 5 - j * 11) % 13; }
    uint32_t check = 0;
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++) {
                int32_t s = 0;
                for (int k = 0; k < N; k++) s += a[i][k] * b[k][j];
                c[i][j] = s;
            }
        check = check * 31 + (uint32_t)c[r % N][(r * 7) % N];
        a[r % N][r % N] += 1;
    }
    printf("matmul %d: %u\n", rounds, check);
    return 0;
}
