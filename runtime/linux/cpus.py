"""The CPUs a guest sees: as many as aotrun may run on, numbered 0..n-1.

Guest threads are host threads running translated code in parallel, so the
guest is told the truth about parallelism: thread pools sized from
``sched_getaffinity`` (Go's GOMAXPROCS, Rust's available_parallelism,
``nproc``) get one worker per host CPU aotrun may use.  The host's own CPU
numbers are not shown; cpu ``i`` of the guest is the ``i``-th CPU of
aotrun's affinity mask.
"""

from __future__ import annotations

import os

from runtime.host_libc import load_libc

__all__ = ["guest_cpu_count", "online_mask", "cpumask_size", "current_cpu"]

MAX_CPUS = 1024


def guest_cpu_count() -> int:
    return max(1, min(len(os.sched_getaffinity(0)), MAX_CPUS))


def online_mask(n: int) -> int:
    return (1 << n) - 1


def cpumask_size(n: int) -> int:
    """Linux's cpumask_size(): whole longs covering ``n`` cpus."""
    return (n + 63) // 64 * 8


_sched_getcpu = getattr(load_libc(), "sched_getcpu", None)


def current_cpu(n: int) -> int:
    """The guest number of the host CPU this thread runs on (0 if unknown)."""
    if _sched_getcpu is None:
        return 0
    host = _sched_getcpu()
    if host < 0:
        return 0
    try:
        return sorted(os.sched_getaffinity(0)).index(host) % n
    except ValueError:
        return 0
