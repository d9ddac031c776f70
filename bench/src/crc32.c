/* Dense loop: bitwise CRC-32 (no table) over a buffer. */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 400;
    enum { N = 1 << 16 };
    uint8_t *buf = malloc(N);
    for (int i = 0; i < N; i++) buf[i] = (uint8_t)(i * 131 + 7);
    uint32_t crc = 0xffffffffu;
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < N; i++) {
            crc ^= buf[i];
            for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xedb88320u & -(crc & 1));
        }
    }
    printf("crc32 %d: %08x\n", rounds, ~crc);
    free(buf);
    return 0;
}
