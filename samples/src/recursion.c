/* recursion: deep and branching recursion (ackermann, fib, mutual
 * recursion, tower of hanoi move counts), exercising calls, returns and the
 * stack. */
#include <stdio.h>
#include <stdlib.h>

static unsigned long ack(unsigned long m, unsigned long n)
{
    if (m == 0)
        return n + 1;
    if (n == 0)
        return ack(m - 1, 1);
    return ack(m - 1, ack(m, n - 1));
}

static long fib(int n)
{
    return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

static int is_odd(unsigned n);
static int is_even(unsigned n) { return n == 0 ? 1 : is_odd(n - 1); }
static int is_odd(unsigned n) { return n == 0 ? 0 : is_even(n - 1); }

static unsigned long moves;
static int peg_sum;
static void hanoi(int n, int from, int to, int via)
{
    if (n == 0)
        return;
    hanoi(n - 1, from, via, to);
    moves++;
    peg_sum += from * 3 + to;
    hanoi(n - 1, via, to, from);
}

/* recursion with many live values across calls (callee-saved registers) */
static unsigned long mix(int depth, unsigned long a, unsigned long b,
                         unsigned long c, unsigned long d, unsigned long e,
                         unsigned long f)
{
    if (depth == 0)
        return a ^ b ^ c ^ d ^ e ^ f;
    unsigned long r = mix(depth - 1, b + 1, c * 3, d - a, e ^ f, f + depth, a);
    return r + a * 7 - b + (c >> 1) + d + e + f;
}

/* recursion with a local array (stack frames of varying size) */
static unsigned sumdigits(unsigned n, int depth)
{
    volatile char buf[64];
    for (int i = 0; i < 64; i++)
        buf[i] = (char)(n + i + depth);
    if (n < 10)
        return n + (unsigned char)buf[depth % 64] % 2;
    return n % 10 + sumdigits(n / 10, depth + 1) + (unsigned char)buf[3] % 2;
}

int main(void)
{
    for (unsigned long m = 0; m <= 3; m++)
        for (unsigned long n = 0; n <= 5; n++)
            printf("ack(%lu,%lu)=%lu\n", m, n, ack(m, n));
    printf("ack(2,100)=%lu\n", ack(2, 100));
    for (int i = 0; i <= 30; i += 5)
        printf("fib(%d)=%ld\n", i, fib(i));
    printf("is_even(10001)=%d is_odd(10001)=%d is_even(50000)=%d\n",
           is_even(10001), is_odd(10001), is_even(50000));
    for (int n = 1; n <= 18; n += 3) {
        moves = 0;
        peg_sum = 0;
        hanoi(n, 1, 3, 2);
        printf("hanoi(%d): moves=%lu pegsum=%d\n", n, moves, peg_sum);
    }
    for (int d = 0; d <= 40; d += 10)
        printf("mix(%d)=%lu\n", d, mix(d, 1, 2, 3, 4, 5, 6));
    printf("sumdigits=%u %u\n", sumdigits(123456789u, 0), sumdigits(4000000000u, 0));
    return 0;
}
