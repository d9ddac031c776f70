/* Call-heavy: recursion with returns (fib, ackermann, tree build/sum). */
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) static long fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
__attribute__((noinline)) static int ack(int m, int n) {
    if (m == 0) return n + 1;
    if (n == 0) return ack(m - 1, 1);
    return ack(m - 1, ack(m, n - 1));
}
struct tree { struct tree *l, *r; int v; };
__attribute__((noinline)) static struct tree *build(int d, int *k) {
    if (d == 0) return NULL;
    struct tree *t = malloc(sizeof *t);
    t->v = (*k)++;
    t->l = build(d - 1, k); t->r = build(d - 1, k);
    return t;
}
__attribute__((noinline)) static long sum(struct tree *t) { return t ? t->v + sum(t->l) + sum(t->r) : 0; }
static void drop(struct tree *t) { if (t) { drop(t->l); drop(t->r); free(t); } }

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 40;
    long f = fib(n);
    int a = ack(2, n * 10);
    int k = 0;
    struct tree *t = build(16, &k);
    long s = 0;
    for (int i = 0; i < n / 3; i++) s += sum(t);
    drop(t);
    printf("recurse %d: fib %ld ack %d tree %ld\n", n, f, a, s);
    return 0;
}
