"""The guest's counters (riscv64 Zicntr: ``cycle``, ``time``, ``instret``).

Linux lets user mode read all three, and programs do: Go's runtime reads
``time`` (``rdtime``) for ``cputicks`` from its first instruction on, and
benchmarks read ``cycle``.  Every engine serves them without leaving
generated code and without a system call:

* ``cycle`` and ``instret`` are the host's time-stamp counter (monotonic, a
  few GHz: plausible for both; an exact retired-instruction count would cost a
  counter update per block).
* ``time`` counts at ``TIME_HZ`` (10 MHz, the timebase Linux reports on
  qemu's virt machine and on most boards) on the host's CLOCK_MONOTONIC:
  ``time = base + ((tsc - tsc0) * mult >> 32)``, the TSC converted with a
  32.32 fixed-point factor measured between this module's import and the
  guest's start (normally 50 ms or more of start-up; at least ``MIN_SPAN_NS``).
  The error of the factor is ~1e-5, so ``time`` stays within ~1 ms of
  ``clock_gettime(CLOCK_MONOTONIC)`` for the first minutes and drifts by at most
  that rate after.

Translated code computes the same formula from ``GuestState.time_*``
(aotc/backend/llvm_builder.py ``read_counter``); the interpreter calls
:func:`read_counter`.  This needs an invariant TSC (``constant_tsc`` and
``nonstop_tsc``, which every x86_64 host of the last decade has).
"""

from __future__ import annotations

import threading
import time

from runtime import _native

TIME_HZ = 10_000_000
MIN_SPAN_NS = 2_000_000
COUNTERS = ("cycle", "time", "instret")

_MASK64 = (1 << 64) - 1
_start = (_native.rdtsc(), time.monotonic_ns())
_lock = threading.Lock()
_calibration: tuple[int, int, int] | None = None   # (tsc0, mult, base)


def _pair() -> tuple[int, int]:
    """A (tsc, monotonic ns) pair read as close together as Python allows."""
    best = None
    for _ in range(3):
        t0 = _native.rdtsc()
        ns = time.monotonic_ns()
        t1 = _native.rdtsc()
        if best is None or t1 - t0 < best[0]:
            best = (t1 - t0, (t0 + t1) // 2, ns)
    assert best is not None
    return best[1], best[2]


def calibration() -> tuple[int, int, int]:
    """(tsc0, mult, base): measured once per process, on first use."""
    global _calibration
    with _lock:
        if _calibration is None:
            tsc_a, ns_a = _start
            span = time.monotonic_ns() - ns_a
            if span < MIN_SPAN_NS:
                time.sleep((MIN_SPAN_NS - span) / 1e9)
            tsc_b, ns_b = _pair()
            ticks = max(1, tsc_b - tsc_a)
            mult = ((ns_b - ns_a) * TIME_HZ << 32) // (ticks * 1_000_000_000)
            _calibration = (tsc_b, mult, ns_b * TIME_HZ // 1_000_000_000)
        return _calibration


def install(state) -> None:  # type: ignore[no-untyped-def]
    """Give a GuestState the calibration its translated code converts with."""
    state.time_tsc0, state.time_mult, state.time_base = calibration()


def read_counter(which: str) -> int:
    """The counter's value now (the interpreter's ``read_counter``)."""
    tsc = _native.rdtsc()
    if which != "time":
        return tsc
    tsc0, mult, base = calibration()
    return (base + ((max(0, tsc - tsc0) * mult) >> 32)) & _MASK64
