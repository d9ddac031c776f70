/* Integer mix: linked-list walking and a table-free state machine. */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>

struct node { struct node *next; uint32_t value; };

static uint32_t rng = 12345;
static uint32_t next_rand(void) { rng ^= rng << 13; rng ^= rng >> 17; rng ^= rng << 5; return rng; }

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 2000;
    enum { N = 20000 };
    struct node *nodes = malloc(sizeof *nodes * N);
    int *order = malloc(sizeof *order * N);
    for (int i = 0; i < N; i++) order[i] = i;
    for (int i = N - 1; i > 0; i--) { int j = next_rand() % (i + 1); int t = order[i]; order[i] = order[j]; order[j] = t; }
    for (int i = 0; i < N; i++) { nodes[order[i]].next = i + 1 < N ? &nodes[order[i + 1]] : NULL; nodes[order[i]].value = next_rand(); }
    uint64_t sum = 0;
    int state = 0;
    for (int r = 0; r < rounds; r++) {
        for (struct node *n = &nodes[order[0]]; n; n = n->next) {
            uint32_t v = n->value + (uint32_t)r;
            switch (state) {
            case 0: state = (v & 3) ? 1 : 2; sum += v; break;
            case 1: state = (v & 8) ? 3 : 0; sum ^= v << 1; break;
            case 2: state = (v & 16) ? 0 : 3; sum += v >> 3; break;
            default: state = (int)(v % 3); sum -= v; break;
            }
        }
    }
    printf("intmix %d: %llu state %d\n", rounds, (unsigned long long)sum, state);
    free(nodes); free(order);
    return 0;
}
