#!/usr/bin/env python3
"""Benchmark: the compute sample natively, under qemu-riscv64, and under aotrun.

Runs all three in one process, interleaved, several repetitions each, and
prints median wall times and ratios (higher "speed vs native" is better).
Not a test: machines are noisy, so only ratios measured in the same run mean
anything.

    python bench/compute.py [--reps 5] [--scale N] [--flavour riscv64|riscv64-musl] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "samples" / "bin"


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"benchmark command failed ({proc.returncode}): {' '.join(cmd)}\n"
                 f"{proc.stderr.decode(errors='replace')}")
    return dt, proc.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--scale", type=str, default=None, help="argument passed to compute (work size)")
    ap.add_argument("--flavour", default="riscv64", choices=["riscv64", "riscv64-musl"])
    ap.add_argument("--json", action="store_true", help="print machine-readable results")
    args = ap.parse_args()

    native = BIN / "compute.x86_64"
    guest = BIN / f"compute.{args.flavour}"
    for p in (native, guest):
        if not p.exists():
            sys.exit(f"missing sample binary {p} (run python samples/build.py)")
    qemu = shutil.which("qemu-riscv64")
    aotc = shutil.which("aotc")
    aotrun = shutil.which("aotrun")
    if not (aotc and aotrun):
        sys.exit("aotc/aotrun not on PATH: pip install -e .")
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "AOTC_CONFIG_DIR")}
    extra = [args.scale] if args.scale else []
    with tempfile.TemporaryDirectory(prefix="aotc-bench-") as tmp:
        image = Path(tmp, "compute.so")
        t0 = time.perf_counter()
        subprocess.run([aotc, "build", "--no-cache", str(guest), "-o", str(image)], check=True,
                       stdout=subprocess.DEVNULL)
        build_s = time.perf_counter() - t0
        runners = {"native": [str(native), *extra], "aotrun": [aotrun, str(image), *extra]}
        if qemu:
            runners["qemu-riscv64"] = [qemu, str(guest), *extra]
        times: dict[str, list[float]] = {k: [] for k in runners}
        outputs: dict[str, bytes] = {}
        for _ in range(args.reps):
            for name, cmd in runners.items():   # interleaved: one of each per round
                dt, out = timed(cmd, env)
                times[name].append(dt)
                outputs[name] = out
        ref = outputs["native"]
        for name, out in outputs.items():
            if out != ref:
                sys.exit(f"{name} printed different output than native:\n{out[:200]!r}\nvs\n{ref[:200]!r}")
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "guest": guest.name, "reps": args.reps, "build_seconds": round(build_s, 2),
        "median_seconds": {k: round(v, 4) for k, v in med.items()},
        "speed_vs_native": {k: round(med["native"] / v, 3) for k, v in med.items()},
    }
    if "qemu-riscv64" in med:
        result["aotrun_speedup_vs_qemu"] = round(med["qemu-riscv64"] / med["aotrun"], 2)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"compute benchmark ({guest.name}, {args.reps} interleaved reps, median wall time)")
    print(f"  aotc build: {build_s:.1f} s")
    for name, t in med.items():
        print(f"  {name:13s} {t:8.3f} s   speed vs native {med['native'] / t:6.3f}x")
    if "qemu-riscv64" in med:
        print(f"  aotrun is {result['aotrun_speedup_vs_qemu']:.2f}x faster than qemu-riscv64")
    else:
        print("  qemu-riscv64 not installed: no qemu comparison")


if __name__ == "__main__":
    main()
