/* Threads mapping, filling, checking and unmapping memory at once: every
 * mapping a thread gets must be its own (two threads handed the same range
 * would see each other's bytes).  Prints "mmap race: ok" or what broke. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define THREADS 4
static int rounds = 3000;
static long broken[THREADS];

static void *worker(void *arg)
{
    long id = (long)arg;
    unsigned x = 12345u + (unsigned)id;
    for (int r = 0; r < rounds; r++) {
        x = x * 1103515245u + 12345u;
        size_t pages = 1 + (x >> 16) % 8;
        size_t len = pages * 4096;
        unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            broken[id]++;
            continue;
        }
        memset(p, (int)(id + 1), len);
        for (volatile int spin = 0; spin < 200; spin++)
            ;
        for (size_t i = 0; i < len; i += 512)
            if (p[i] != id + 1) {
                broken[id]++;
                break;
            }
        if (r % 3 == 0 && mprotect(p, 4096, PROT_READ) != 0)
            broken[id]++;
        munmap(p, len);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        rounds = atoi(argv[1]);
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, worker, (void *)i);
    long total = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        total += broken[i];
    }
    if (total)
        printf("mmap race: %ld broken mappings\n", total);
    else
        printf("mmap race: ok\n");
    return total != 0;
}
