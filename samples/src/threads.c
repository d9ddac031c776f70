/* threads: POSIX threads on real concurrency.
 *
 * - N workers each sum a deterministic series (compute in parallel; the
 *   `threads bench N ROUNDS` mode splits ROUNDS over N threads and times
 *   it: the speed-up test compares 1 and 2 threads on the same work).
 * - a mutex-protected counter and a C11 atomic counter incremented by every
 *   thread (lost updates would show), a condition variable hand-off chain,
 *   a barrier, a rwlock, thread-local storage, pthread_join return values,
 *   a detached thread, pthread_once, pthread_kill with a per-thread handler,
 *   per-thread signal masks, pthread_exit from a worker, and a thread that
 *   is cancelled while waiting.
 * Output is deterministic on every ISA.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WORKERS 4
#define INCREMENTS 20000

static uint64_t series(uint64_t seed, long rounds)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1, acc = 0;
    for (long i = 0; i < rounds; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        acc += x % 1000003;
    }
    return acc;
}

struct work { int id; long rounds; uint64_t result; };

static void *compute(void *arg)
{
    struct work *w = arg;
    w->result = series((uint64_t)w->id + 1, w->rounds);
    return (void *)(intptr_t)(w->id * 10);
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long locked_counter;
static atomic_long atomic_counter;
static __thread int tls_value = 7;

static void *increment(void *arg)
{
    (void)arg;
    tls_value += 1;                       /* every thread starts from 7 */
    for (int i = 0; i < INCREMENTS; i++) {
        pthread_mutex_lock(&lock);
        locked_counter++;
        pthread_mutex_unlock(&lock);
        atomic_fetch_add(&atomic_counter, 1);
    }
    return (void *)(intptr_t)tls_value;
}

/* A chain: thread i waits for turn == i, then passes the turn on. */
static pthread_mutex_t turn_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t turn_cond = PTHREAD_COND_INITIALIZER;
static int turn;
static char order[WORKERS + 1];

static void *chain(void *arg)
{
    int id = (int)(intptr_t)arg;
    pthread_mutex_lock(&turn_lock);
    while (turn != id)
        pthread_cond_wait(&turn_cond, &turn_lock);
    order[id] = (char)('A' + id);
    turn++;
    pthread_cond_broadcast(&turn_cond);
    pthread_mutex_unlock(&turn_lock);
    return NULL;
}

static pthread_barrier_t barrier;
static atomic_int before_barrier, after_barrier_seen;

static void *barrier_worker(void *arg)
{
    (void)arg;
    atomic_fetch_add(&before_barrier, 1);
    pthread_barrier_wait(&barrier);
    if (atomic_load(&before_barrier) == WORKERS)
        atomic_fetch_add(&after_barrier_seen, 1);
    return NULL;
}

static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
static long shared_value;

static void *reader_writer(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int i = 0; i < 2000; i++) {
        if ((i + id) % 4 == 0) {
            pthread_rwlock_wrlock(&rw);
            shared_value += 2;
            pthread_rwlock_unlock(&rw);
        } else {
            pthread_rwlock_rdlock(&rw);
            long v = shared_value;
            pthread_rwlock_unlock(&rw);
            if (v & 1)
                abort();
        }
    }
    return NULL;
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int once_runs;
static void once_fn(void) { once_runs++; }
static void *call_once(void *arg) { (void)arg; pthread_once(&once, once_fn); return NULL; }

static atomic_int detached_done;
static void *detached(void *arg) { (void)arg; atomic_store(&detached_done, 1); return NULL; }

static volatile sig_atomic_t usr1_in_thread;
static pthread_t usr1_target;
static void on_usr1(int sig)
{
    (void)sig;
    usr1_in_thread = pthread_equal(pthread_self(), usr1_target) ? 1 : 2;
}

static atomic_int target_ready;
static void *signal_target(void *arg)
{
    (void)arg;
    atomic_store(&target_ready, 1);
    while (!usr1_in_thread)
        ;                                    /* spins without system calls */
    return NULL;
}

static void *exits_early(void *arg)
{
    (void)arg;
    pthread_exit((void *)(intptr_t)42);
    return NULL;
}

static void *waits_forever(void *arg)
{
    (void)arg;
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    pthread_mutex_lock(&m);
    for (;;)
        pthread_cond_wait(&c, &m);           /* a cancellation point */
    return NULL;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int bench(int nthreads, long rounds)
{
    pthread_t th[64];
    struct work w[64];
    if (nthreads < 1 || nthreads > 64)
        return 2;
    double t0 = now();
    for (int i = 0; i < nthreads; i++) {
        w[i] = (struct work){ .id = i, .rounds = rounds / nthreads };
        pthread_create(&th[i], NULL, compute, &w[i]);
    }
    uint64_t total = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(th[i], NULL);
        total += w[i].result;
    }
    printf("threads=%d rounds=%ld total=%llu seconds=%.3f\n", nthreads, rounds,
           (unsigned long long)total, now() - t0);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "bench") == 0)
        return bench(atoi(argv[2]), atol(argv[3]));

    pthread_t th[WORKERS];
    struct work w[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        w[i] = (struct work){ .id = i, .rounds = 200000 };
        pthread_create(&th[i], NULL, compute, &w[i]);
    }
    for (int i = 0; i < WORKERS; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        printf("worker %d: series=%llu joined=%ld\n", i, (unsigned long long)w[i].result,
               (long)(intptr_t)ret);
    }

    for (int i = 0; i < WORKERS; i++)
        pthread_create(&th[i], NULL, increment, NULL);
    int tls_ok = 1;
    for (int i = 0; i < WORKERS; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        tls_ok &= (intptr_t)ret == 8;
    }
    printf("mutex counter=%ld atomic counter=%ld tls per thread=%s main tls=%d\n", locked_counter,
           atomic_load(&atomic_counter), tls_ok ? "yes" : "no", tls_value);

    for (int i = WORKERS - 1; i >= 0; i--)
        pthread_create(&th[i], NULL, chain, (void *)(intptr_t)i);
    for (int i = 0; i < WORKERS; i++)
        pthread_join(th[i], NULL);
    printf("condvar chain order=%s\n", order);

    pthread_barrier_init(&barrier, NULL, WORKERS);
    for (int i = 0; i < WORKERS; i++)
        pthread_create(&th[i], NULL, barrier_worker, NULL);
    for (int i = 0; i < WORKERS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&barrier);
    printf("barrier: all %d arrived before any left: %s\n", WORKERS,
           atomic_load(&after_barrier_seen) == WORKERS ? "yes" : "no");

    for (int i = 0; i < WORKERS; i++)
        pthread_create(&th[i], NULL, reader_writer, (void *)(intptr_t)i);
    for (int i = 0; i < WORKERS; i++)
        pthread_join(th[i], NULL);
    printf("rwlock value=%ld\n", shared_value);

    for (int i = 0; i < WORKERS; i++)
        pthread_create(&th[i], NULL, call_once, NULL);
    for (int i = 0; i < WORKERS; i++)
        pthread_join(th[i], NULL);
    printf("once ran %d time(s)\n", once_runs);

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t d;
    pthread_create(&d, &attr, detached, NULL);
    pthread_attr_destroy(&attr);
    while (!atomic_load(&detached_done))
        sched_yield();
    printf("detached thread ran: yes\n");

    /* pthread_kill: the handler runs in the target thread, which spins
     * without system calls (a thread-directed signal). */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    pthread_create(&usr1_target, NULL, signal_target, NULL);
    while (!atomic_load(&target_ready))
        sched_yield();
    pthread_kill(usr1_target, SIGUSR1);
    pthread_join(usr1_target, NULL);
    printf("pthread_kill handled in target thread: %s\n", usr1_in_thread == 1 ? "yes" : "no");

    void *ret;
    pthread_t e;
    pthread_create(&e, NULL, exits_early, NULL);
    pthread_join(e, &ret);
    printf("pthread_exit value=%ld\n", (long)(intptr_t)ret);

    pthread_t c;
    pthread_create(&c, NULL, waits_forever, NULL);
    usleep(20000);
    pthread_cancel(c);
    pthread_join(c, &ret);
    printf("cancelled: %s\n", ret == PTHREAD_CANCELED ? "yes" : "no");
    return 0;
}
