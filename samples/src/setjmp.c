/* setjmp: setjmp/longjmp across several frames, nested jump buffers,
 * re-entry of the same setjmp point, volatile locals preserved. */
#include <setjmp.h>
#include <stdio.h>

static jmp_buf outer, inner;
static int depth_reached;

static void deep(int n, int target, jmp_buf *where, int val)
{
    volatile char pad[128];
    pad[n % 128] = (char)n;
    depth_reached = n;
    if (n == target)
        longjmp(*where, val + pad[n % 128] * 0);
    if (n < 1000)
        deep(n + 1, target, where, val);
    pad[0]++; /* not reached for the targets used here */
}

static int nested(int k)
{
    volatile int local = 100 + k;
    int r = setjmp(inner);
    if (r == 0) {
        deep(0, 5 + k, &inner, 7 + k);
        return -1;
    }
    printf("  inner caught %d at depth %d local=%d\n", r, depth_reached, local);
    if (k == 2)
        deep(0, 3, &outer, 99); /* jump out through the outer buffer */
    return r * 10;
}

static long double_f(long x) { return x * 2; }

int main(void)
{
    volatile int counter = 0;
    volatile long acc = 0;
    int r = setjmp(outer);
    printf("setjmp returned %d (counter=%d)\n", r, counter);
    counter++;
    if (counter < 5) {
        acc += double_f(counter);
        /* longjmp with value 0 must make setjmp return 1 */
        deep(0, counter * 3, &outer, counter == 3 ? 0 : counter * 11);
    }
    printf("after loop counter=%d acc=%ld\n", counter, acc);

    for (volatile int k = 0; k < 3; k++) {
        int res;
        if (setjmp(outer) == 0) {
            res = nested(k);
            printf("nested(%d) returned %d\n", k, res);
        } else {
            printf("nested(%d) escaped via outer, depth %d\n", k, depth_reached);
        }
    }

    /* sigsetjmp variant without signal mask saving */
    sigjmp_buf sj;
    volatile int tries = 0;
    int v = sigsetjmp(sj, 0);
    tries++;
    if (v < 3)
        siglongjmp(sj, v + 1);
    printf("sigsetjmp final v=%d tries=%d\n", v, tries);
    return 0;
}
