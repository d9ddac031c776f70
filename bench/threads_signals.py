#!/usr/bin/env python3
"""Threads and signals, measured against native and qemu-riscv64 in the same run.

* Parallel speed-up: ``samples/bin/threads.* bench N ROUNDS`` splits ROUNDS
  over N threads; the ratio time(1 thread) / time(2 threads) on the same
  work shows whether guest threads really run in parallel (2.0 is perfect on
  2 idle cores; the issue's target under aot is 1.7).
* Signal delivery latency: ``bench/signals/latency.c`` sends SIGUSR1 to a
  thread spinning without system calls and times send → handler entry;
  p50/p99 in microseconds.

    python bench/threads_signals.py [--rounds 200000000] [--signals 1000] [--json]

Builds latency.c for riscv64 and x86_64 and the AOT images into
~/.cache/aotc/bench (the build cache makes reruns fast).  Not a test: the
machine's load shows in the figures; run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("AOTC_BENCH_CACHE", Path.home() / ".cache" / "aotc" / "bench"))
SAMPLES = ROOT / "samples" / "bin"


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def build_latency() -> dict[str, Path]:
    CACHE.mkdir(parents=True, exist_ok=True)
    src = ROOT / "bench" / "signals" / "latency.c"
    out = {}
    for flavour, cc in (("riscv64", "riscv64-linux-gnu-gcc"), ("x86_64", "gcc")):
        if shutil.which(cc) is None:
            sys.exit(f"{cc} not found: apt-get install gcc-riscv64-linux-gnu gcc")
        dst = CACHE / f"latency.{flavour}"
        if not dst.exists() or dst.stat().st_mtime < src.stat().st_mtime:
            sh([cc, "-O2", "-static", "-pthread", "-o", str(dst), str(src)])
        out[flavour] = dst
    return out


def image(elf: Path) -> Path:
    img = CACHE / (elf.name + ".so")
    if not img.exists() or img.stat().st_mtime < elf.stat().st_mtime:
        sh([sys.executable, "-m", "aotc.cli", "build", "-q", str(elf), "-o", str(img)], cwd=ROOT)
    return img


def aotrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "runtime.cli", *args]


def seconds(cmd: list[str]) -> float:
    text = sh(cmd, cwd=ROOT).stdout
    return float(re.search(r"seconds=([0-9.]+)", text).group(1))


def latency(cmd: list[str]) -> dict[str, float]:
    text = sh(cmd, cwd=ROOT, timeout=600).stdout
    return {k: float(v) for k, v in re.findall(r"(p50|p90|p99|max)_us=([0-9.]+)", text)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=200_000_000)
    ap.add_argument("--signals", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    lat = build_latency()
    threads_rv, threads_x86 = SAMPLES / "threads.riscv64", SAMPLES / "threads.x86_64"
    runners = {
        "native": lambda elf_rv, elf_x86, *args: [str(elf_x86), *args],
        "qemu": lambda elf_rv, elf_x86, *args: ["qemu-riscv64", str(elf_rv), *args],
        "aot": lambda elf_rv, elf_x86, *args: aotrun(str(image(elf_rv)), *args),
        "jit": lambda elf_rv, elf_x86, *args: aotrun("--engine", "jit", str(elf_rv), *args),
    }
    result: dict = {"speedup": {}, "latency_us": {}}
    for name, run in runners.items():
        if name == "jit":
            continue      # the JIT compiles at -O0: its speed is not the point here
        t1 = [seconds(run(threads_rv, threads_x86, "bench", "1", str(a.rounds))) for _ in range(a.reps)]
        t2 = [seconds(run(threads_rv, threads_x86, "bench", "2", str(a.rounds))) for _ in range(a.reps)]
        m1, m2 = statistics.median(t1), statistics.median(t2)
        result["speedup"][name] = {"one_thread_s": m1, "two_threads_s": m2, "ratio": round(m1 / m2, 3)}
    for name, run in runners.items():
        result["latency_us"][name] = latency(run(lat["riscv64"], lat["x86_64"], str(a.signals)))
    if a.json:
        print(json.dumps(result, indent=2))
        return
    print(f"parallel speed-up, {a.rounds} rounds split over 1 and 2 threads (median of {a.reps}):")
    for name, r in result["speedup"].items():
        print(f"  {name:7s} 1 thread {r['one_thread_s']:.3f} s   2 threads {r['two_threads_s']:.3f} s"
              f"   speed-up {r['ratio']:.2f}x")
    print(f"signal delivery to a thread spinning without system calls ({a.signals} signals):")
    for name, r in result["latency_us"].items():
        print(f"  {name:7s} p50 {r['p50']:9.1f} us   p99 {r['p99']:9.1f} us   max {r['max']:9.1f} us")


if __name__ == "__main__":
    main()
