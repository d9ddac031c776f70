/* atomics: C11 <stdatomic.h> operations on 8/16/32/64-bit objects,
 * single-threaded: fetch_add/sub/and/or/xor, exchange, load/store with
 * several memory orders, compare_exchange_strong/weak (success and
 * failure), atomic_flag, fences. On riscv64 these become amo*.w/amo*.d and
 * lr/sc loops (and lr/sc sequences or libatomic-style masking for the
 * 8/16-bit cases). */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

static _Atomic uint32_t a32 = 0x12345678u;
static _Atomic uint64_t a64 = 0x0123456789abcdefull;
static _Atomic int32_t s32 = -5;
static _Atomic int64_t s64 = -5;
static _Atomic uint16_t a16 = 0xfff0;
static _Atomic uint8_t a8 = 0xf0;
static atomic_flag flag = ATOMIC_FLAG_INIT;
static _Atomic(void *) aptr;

int main(void)
{
    uint32_t o32;
    uint64_t o64;

    o32 = atomic_fetch_add(&a32, 0x11111111u);
    printf("fetch_add32 old=%08" PRIx32 " new=%08" PRIx32 "\n", o32, atomic_load(&a32));
    o32 = atomic_fetch_sub_explicit(&a32, 0x01234567u, memory_order_relaxed);
    printf("fetch_sub32 old=%08" PRIx32 " new=%08" PRIx32 "\n", o32, atomic_load(&a32));
    o32 = atomic_fetch_and_explicit(&a32, 0xf0f0f0f0u, memory_order_acquire);
    printf("fetch_and32 old=%08" PRIx32 " new=%08" PRIx32 "\n", o32, atomic_load(&a32));
    o32 = atomic_fetch_or_explicit(&a32, 0x0000ffffu, memory_order_release);
    printf("fetch_or32  old=%08" PRIx32 " new=%08" PRIx32 "\n", o32, atomic_load(&a32));
    o32 = atomic_fetch_xor_explicit(&a32, 0xffffffffu, memory_order_acq_rel);
    printf("fetch_xor32 old=%08" PRIx32 " new=%08" PRIx32 "\n", o32, atomic_load(&a32));
    o32 = atomic_exchange(&a32, 0xdeadbeefu);
    printf("exchange32  old=%08" PRIx32 " new=%08" PRIx32 "\n", o32,
           atomic_load_explicit(&a32, memory_order_acquire));

    o64 = atomic_fetch_add(&a64, 0xffffffffull);
    printf("fetch_add64 old=%016" PRIx64 " new=%016" PRIx64 "\n", o64, atomic_load(&a64));
    o64 = atomic_fetch_sub(&a64, 0x0123456789abcdefull);
    printf("fetch_sub64 old=%016" PRIx64 " new=%016" PRIx64 "\n", o64, atomic_load(&a64));
    o64 = atomic_fetch_and(&a64, 0xff00ff00ff00ff00ull);
    printf("fetch_and64 old=%016" PRIx64 " new=%016" PRIx64 "\n", o64, atomic_load(&a64));
    o64 = atomic_fetch_or(&a64, 0x8000000000000001ull);
    printf("fetch_or64  old=%016" PRIx64 " new=%016" PRIx64 "\n", o64, atomic_load(&a64));
    o64 = atomic_fetch_xor(&a64, 0x5555555555555555ull);
    printf("fetch_xor64 old=%016" PRIx64 " new=%016" PRIx64 "\n", o64, atomic_load(&a64));
    o64 = atomic_exchange_explicit(&a64, 42, memory_order_seq_cst);
    printf("exchange64  old=%016" PRIx64 " new=%016" PRIx64 "\n", o64, atomic_load(&a64));

    /* signed: min/max-like loops via CAS, negative values (sign extension
       of 32-bit results on riscv64) */
    int32_t so = atomic_fetch_add(&s32, -10);
    printf("s32 fetch_add old=%" PRId32 " new=%" PRId32 "\n", so, atomic_load(&s32));
    int64_t so64 = atomic_fetch_sub(&s64, INT64_C(0x7fffffff00000000));
    printf("s64 fetch_sub old=%" PRId64 " new=%" PRId64 "\n", so64, atomic_load(&s64));
    for (int32_t v = -20; v <= 20; v += 7) {
        int32_t cur = atomic_load(&s32);
        while (v > cur && !atomic_compare_exchange_weak(&s32, &cur, v))
            ;
    }
    printf("s32 max-by-cas=%" PRId32 "\n", atomic_load(&s32));

    /* compare_exchange strong: success and failure */
    uint32_t exp32 = 0xdeadbeefu;
    _Bool ok = atomic_compare_exchange_strong(&a32, &exp32, 0xcafef00du);
    printf("cas32 strong ok=%d expected=%08" PRIx32 " value=%08" PRIx32 "\n", ok, exp32,
           atomic_load(&a32));
    exp32 = 0x11111111u;
    ok = atomic_compare_exchange_strong(&a32, &exp32, 0x22222222u);
    printf("cas32 strong ok=%d expected=%08" PRIx32 " value=%08" PRIx32 "\n", ok, exp32,
           atomic_load(&a32));
    uint64_t exp64 = 42;
    ok = atomic_compare_exchange_strong_explicit(&a64, &exp64, UINT64_C(0xfedcba9876543210),
                                                 memory_order_acq_rel, memory_order_acquire);
    printf("cas64 strong ok=%d expected=%016" PRIx64 " value=%016" PRIx64 "\n", ok, exp64,
           atomic_load(&a64));
    exp64 = 0;
    ok = atomic_compare_exchange_strong(&a64, &exp64, 1);
    printf("cas64 strong ok=%d expected=%016" PRIx64 " value=%016" PRIx64 "\n", ok, exp64,
           atomic_load(&a64));
    /* cas where the value has bit 31 set (32-bit sign extension pitfalls) */
    atomic_store(&a32, 0x80000001u);
    exp32 = 0x80000001u;
    ok = atomic_compare_exchange_strong(&a32, &exp32, 0x7fffffffu);
    printf("cas32 signbit ok=%d value=%08" PRIx32 "\n", ok, atomic_load(&a32));

    /* weak CAS in a loop: a counter */
    uint64_t spins = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t cur = atomic_load_explicit(&a64, memory_order_relaxed);
        while (!atomic_compare_exchange_weak(&a64, &cur, cur * 3 + 1))
            spins++;
    }
    printf("cas64 weak loop value=%016" PRIx64 " (spins not printed)\n", atomic_load(&a64));
    (void)spins;
    uint32_t c32 = 0;
    for (int i = 0; i < 1000; i++) {
        uint32_t cur = atomic_load(&a32);
        while (!atomic_compare_exchange_weak_explicit(&a32, &cur, cur * 5 + 7,
                                                     memory_order_release, memory_order_relaxed))
            c32++;
    }
    printf("cas32 weak loop value=%08" PRIx32 "\n", atomic_load(&a32));
    (void)c32;

    /* small types */
    uint16_t o16 = atomic_fetch_add(&a16, 0x20);
    printf("a16 fetch_add old=%04x new=%04x\n", o16, atomic_load(&a16));
    uint16_t e16 = 0x0010;
    ok = atomic_compare_exchange_strong(&a16, &e16, 0xabcd);
    printf("a16 cas ok=%d value=%04x\n", ok, atomic_load(&a16));
    uint8_t o8 = atomic_fetch_or(&a8, 0x0f);
    printf("a8 fetch_or old=%02x new=%02x\n", o8, atomic_load(&a8));
    o8 = atomic_exchange(&a8, 7);
    printf("a8 exchange old=%02x new=%02x\n", o8, atomic_load(&a8));

    /* flag and pointer */
    int t1 = atomic_flag_test_and_set(&flag);
    int t2 = atomic_flag_test_and_set(&flag);
    printf("flag test_and_set: %d %d\n", t1, t2);
    atomic_flag_clear(&flag);
    printf("flag after clear: %d\n", atomic_flag_test_and_set(&flag));
    static int target[4];
    atomic_store(&aptr, &target[1]);
    void *expp = &target[1];
    ok = atomic_compare_exchange_strong(&aptr, &expp, &target[3]);
    printf("ptr cas ok=%d index=%d\n", ok, (int)((int *)atomic_load(&aptr) - target));

    atomic_thread_fence(memory_order_seq_cst);
    atomic_signal_fence(memory_order_acq_rel);
    printf("lock-free: 8=%d 16=%d 32=%d 64=%d\n", atomic_is_lock_free(&a8) ? 1 : 0,
           atomic_is_lock_free(&a16) ? 1 : 0, atomic_is_lock_free(&a32) ? 1 : 0,
           atomic_is_lock_free(&a64) ? 1 : 0);
    return 0;
}
