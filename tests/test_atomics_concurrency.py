"""RV64A under true concurrency: guest threads run on host threads in
parallel (translated code holds no global lock), so AMOs must be host atomic
read-modify-writes, SC a host compare-and-swap, and fences host barriers
where x86-TSO is weaker than the fence (docs/architecture.md, "Memory
model: RVWMO on x86-TSO").

A riscv64 program, compiled here with riscv64-linux-gnu-gcc -static -O2
-pthread, has four threads increment shared counters through every path:
amoadd.w and amoadd.d, LR/SC retry loops (.w plain, .d with aq/rl), an
amoswap.w.aq spinlock released by ``fence rw,w; sw`` (whose waiters spin
with a plain ``lw``, as does every thread on the start flag), and a glibc
mutex around a plain counter.  Every total must be exact under the JIT, the
interpreter and an AOT image.

The interpreter runs fewer iterations (25 000 per thread instead of
200 000): it is ~100 times slower, and its threads hold the GIL, so they
interleave only at bytecode boundaries (every switch interval); its atomics
are still host ``lock cmpxchg`` (``_native.cmpxchg``), correct against
native threads too.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import aotrun_cmd, run_tool

SOURCE = r"""
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>

#define THREADS 4
static long iters;
static int32_t amo_w;
static int64_t amo_d;
static int32_t lrsc_w;
static int64_t lrsc_d;
static int32_t spin_lock;
static long spin_counter;
static long mutex_counter;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int go;

static void lock_spin(void)
{
    int32_t old;
    for (;;) {
        __asm__ volatile("amoswap.w.aq %0, %2, (%1)" : "=r"(old) : "r"(&spin_lock), "r"(1) : "memory");
        if (!old)
            return;
        while (__atomic_load_n(&spin_lock, __ATOMIC_RELAXED))   /* a plain lw in a loop */
            ;
    }
}

static void unlock_spin(void)
{
    __asm__ volatile("fence rw, w\n\tsw zero, 0(%0)" : : "r"(&spin_lock) : "memory");
}

static void *worker(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&go, __ATOMIC_RELAXED))             /* relaxed spin: start together */
        ;
    for (long i = 0; i < iters; i++) {
        int32_t ow;
        int64_t od;
        long tmp, fail;
        __asm__ volatile("amoadd.w %0, %2, (%1)" : "=r"(ow) : "r"(&amo_w), "r"(1) : "memory");
        __asm__ volatile("amoadd.d.aqrl %0, %2, (%1)" : "=r"(od) : "r"(&amo_d), "r"(1L) : "memory");
        __asm__ volatile("1: lr.w %0, (%2)\n\t"
                         "addiw %0, %0, 1\n\t"
                         "sc.w %1, %0, (%2)\n\t"
                         "bnez %1, 1b"
                         : "=&r"(tmp), "=&r"(fail) : "r"(&lrsc_w) : "memory");
        __asm__ volatile("1: lr.d.aq %0, (%2)\n\t"
                         "addi %0, %0, 1\n\t"
                         "sc.d.rl %1, %0, (%2)\n\t"
                         "bnez %1, 1b"
                         : "=&r"(tmp), "=&r"(fail) : "r"(&lrsc_d) : "memory");
        lock_spin();
        spin_counter++;
        unlock_spin();
        pthread_mutex_lock(&mu);
        mutex_counter++;
        pthread_mutex_unlock(&mu);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    iters = argc > 1 ? atol(argv[1]) : 200000;
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, worker, NULL) != 0)
            return 2;
    __atomic_store_n(&go, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    printf("amoadd.w %d\namoadd.d %ld\nlr/sc.w %d\nlr/sc.d %ld\nspinlock %ld\nmutex %ld\n",
           amo_w, (long)amo_d, lrsc_w, (long)lrsc_d, spin_counter, mutex_counter);
    return 0;
}
"""

THREADS = 4
COUNTERS = ("amoadd.w", "amoadd.d", "lr/sc.w", "lr/sc.d", "spinlock", "mutex")
CC = "riscv64-linux-gnu-gcc"


@pytest.fixture(scope="module")
def program(tmp_path_factory) -> Path:
    cc = shutil.which(CC)
    if cc is None:
        print(f"{CC} is not installed: cannot build the riscv64 test program")
        pytest.skip(f"{CC} is not installed (apt-get install gcc-riscv64-linux-gnu)")
    d = tmp_path_factory.mktemp("atomics")
    src = d / "atomics.c"
    src.write_text(SOURCE)
    out = d / "atomics"
    subprocess.run([cc, "-static", "-O2", "-pthread", str(src), "-o", str(out)], check=True,
                   capture_output=True, timeout=300)
    return out


def _check(proc: subprocess.CompletedProcess, iters: int) -> None:
    stderr = proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, stderr
    want = "".join(f"{name} {THREADS * iters}\n" for name in COUNTERS)
    assert proc.stdout.decode() == want, stderr


@pytest.mark.parametrize("engine, iters", [("jit", 200_000), ("interp", 25_000)])
def test_counters_exact_on_engine(program, engine, iters, config_dir):
    proc = run_tool([*aotrun_cmd(), f"--engine={engine}", str(program), str(iters)], timeout=600)
    _check(proc, iters)


def test_counters_exact_in_image(program, build_image_cached, config_dir):
    image = build_image_cached(program)
    proc = run_tool([*aotrun_cmd(), str(image), "200000"], timeout=600)
    _check(proc, 200_000)


def _amo(funct5: int, width: int, rd: int, rs1: int, rs2: int) -> int:
    return (funct5 << 27) | (rs2 << 20) | (rs1 << 15) | (width << 12) | (rd << 7) | 0x2F


@pytest.mark.parametrize("funct5, name", [(0x08, "amoor"), (0x0C, "amoand"), (0x04, "amoxor"),
                                          (0x00, "amoadd")])
def test_locked_instructions_address_guest_memory(funct5, name):
    """``amoor.w a0, a1, (a2)`` with a1 = 32 and only bit 5 of the result
    tested (glibc's ``atomic_fetch_or (&pd->cancelhandling, bit) & bit``):
    LLVM's x86 backend made that ``lock bts [rdi], 5`` without the %gs
    segment (its bit-test intrinsics drop the address space) and the host
    crashed; the result now goes through an opaque copy.  Every locked
    instruction must address guest memory through %gs."""
    import io

    import capstone
    from elftools.elf.elffile import ELFFile

    from aotc.backend.compile import chunk_ir, compile_ir
    from aotc.discover import CodeRange, discover
    from tests.test_discover import BASE, ECALL, words

    def addi(rd: int, rs1: int, imm: int, f3: int = 0) -> int:
        return ((imm & 0xFFF) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | 0x13

    bnez_over_one = (0 << 25) | (10 << 15) | (1 << 12) | (8 << 7) | 0x63        # bne a0, x0, +8
    code = words(addi(11, 0, 32), _amo(funct5, 2, 10, 12, 11), addi(10, 10, 32, f3=7),  # andi
                 bnez_over_one, ECALL, ECALL)
    blocks = discover([CodeRange(BASE, code)], [], {"entry": [BASE]}).blocks
    ir = chunk_ir([("region", [blocks[BASE]])], frozenset(blocks), 15, [])
    text = ELFFile(io.BytesIO(compile_ir(ir, 2))).get_section_by_name(".text").data()
    locked = [f"{i.mnemonic} {i.op_str}" for i in capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64).disasm(text, 0)
              if "lock" in i.mnemonic or i.mnemonic.startswith("xchg")]
    assert locked, f"{name}: no locked instruction"
    assert all("gs:" in s for s in locked), locked
