/* Signal delivery latency to a thread that spins without system calls.
 *
 * The main thread sends SIGUSR1 to the spinner with pthread_kill ROUNDS
 * times; each time it takes CLOCK_MONOTONIC just before the kill, the
 * handler (running in the spinner) takes it on entry, and the main thread
 * waits (spinning on an atomic) until the handler has run.  Prints the
 * p50/p90/p99/max of handler-entry minus send time, in microseconds.
 *
 *     latency [ROUNDS]        (default 1000)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static atomic_long handled;
static atomic_int stop, ready;
static volatile long long entered_ns;
static volatile unsigned long spins;

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void on_usr1(int sig)
{
    (void)sig;
    entered_ns = now_ns();
    atomic_fetch_add(&handled, 1);
}

static void *spinner(void *arg)
{
    (void)arg;
    atomic_store(&ready, 1);
    while (!atomic_load_explicit(&stop, memory_order_relaxed))
        spins++;                       /* no system call in the loop */
    return NULL;
}

static int cmp(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 1000;
    if (rounds < 1)
        rounds = 1;
    long long *lat = calloc((size_t)rounds, sizeof *lat);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    pthread_t t;
    pthread_create(&t, NULL, spinner, NULL);
    while (!atomic_load(&ready))
        ;
    for (int i = 0; i < rounds; i++) {
        long long sent = now_ns();
        pthread_kill(t, SIGUSR1);
        while (atomic_load(&handled) != i + 1)
            ;
        lat[i] = entered_ns - sent;
    }
    atomic_store(&stop, 1);
    pthread_join(t, NULL);
    qsort(lat, (size_t)rounds, sizeof *lat, cmp);
    printf("rounds=%d p50_us=%.1f p90_us=%.1f p99_us=%.1f max_us=%.1f\n", rounds,
           lat[rounds / 2] / 1e3, lat[rounds * 9 / 10] / 1e3, lat[rounds * 99 / 100] / 1e3,
           lat[rounds - 1] / 1e3);
    return 0;
}
