#!/usr/bin/env python3
"""A/B: the bench programs' images from two source trees, run interleaved.

Each tree builds its own images with its own aotc and runs them on its own
runtime (``python -P -m`` with PYTHONPATH=tree, so neither tree's code leaks
into the other), so the A/B compares code generator and runtime together,
as a user would see a change.  Per program, the runs alternate A, B, A, B…
and the script reports the median CPU time (user + sys of the aotrun
process, from wait4) of each side and B/A; on a noisy machine CPU time
varies less than wall time.  With ``--instructions`` it counts instructions
instead (valgrind's callgrind, two workloads per program, their
difference): exact and repeatable on a noisy machine, blind to how fast
each instruction is.  Not a test.

    python bench/ab.py --a /path/to/base-checkout [--b .] [--reps 5]
                       [--only crc32,nbody] [--workload short|long] [--images DIR]
                       [--instructions]

The tree given as --a needs its runtime/_native built in place
(``python setup.py build_ext --inplace`` in that tree); a ``git worktree
add /tmp/base <rev>`` makes one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from run import WORKLOADS  # noqa: E402  (the suite's long workloads)


def tool(tree: Path, module: str) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    return [sys.executable, "-P", "-m", module], env


def build(tree: Path, guest: Path, image: Path) -> None:
    cmd, env = tool(tree, "aotc.cli")
    subprocess.run([*cmd, "build", "-q", "--no-cache", str(guest), "-o", str(image)],
                   check=True, env=env, stdout=subprocess.DEVNULL)


def cpu_seconds(tree: Path, image: Path, args: list[str]) -> tuple[float, bytes]:
    cmd, env = tool(tree, "runtime.cli")
    with tempfile.TemporaryFile() as out:
        child = subprocess.Popen([*cmd, str(image), *args], env=env, stdout=out, stderr=subprocess.DEVNULL)
        _pid, status, usage = os.wait4(child.pid, 0)
        out.seek(0)
        data = out.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{image} {args} failed with status {os.waitstatus_to_exitcode(status)}")
    return usage.ru_utime + usage.ru_stime, data


# --instructions: two workloads per program; the difference of their guest
# instruction counts is the translated code's work alone (start-up and the
# runtime's Python cancel out).  About 1/20 of the long workloads.
COUNT_WORKLOADS = {"crc32": ("50", "100"), "indirect": ("1250", "2500"), "intmix": ("250", "500"),
                   "matmul": ("25", "50"), "nbody": ("200000", "400000"), "recurse": ("30", "31"),
                   "stream": ("2", "4")}


def instructions(tree: Path, image: Path, args: list[str]) -> int:
    """Instructions the whole aotrun process executes (valgrind's callgrind:
    exact and repeatable, whatever else the machine does)."""
    cmd, env = tool(tree, "runtime.cli")
    proc = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                           *cmd, str(image), *args], env=env, capture_output=True, text=True)
    for line in proc.stderr.splitlines():
        if "Collected :" in line:
            return int(line.rsplit(":", 1)[1])
    raise SystemExit(f"no instruction count from valgrind for {image}:\n{proc.stderr[-2000:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", type=Path, required=True, help="the baseline source tree")
    ap.add_argument("--b", type=Path, default=BENCH.parent, help="the tree under test (default: this one)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--only", default="", help="comma-separated program names")
    ap.add_argument("--workload", choices=["long", "short"], default="long")
    ap.add_argument("--instructions", action="store_true",
                    help="compare instruction counts of the translated code (valgrind) instead of CPU time")
    ap.add_argument("--images", type=Path, default=None,
                    help="keep the images here as NAME.A.so / NAME.B.so and reuse those present")
    opts = ap.parse_args()
    names = sorted(p.name.split(".")[0] for p in (BENCH / "bin").glob("*.riscv64"))
    if opts.only:
        names = [n for n in names if n in opts.only.split(",")]
    trees = {"A": opts.a.resolve(), "B": opts.b.resolve()}
    ratios = []
    with tempfile.TemporaryDirectory(prefix="aotc-ab-") as tmp:
        where = opts.images or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        if opts.instructions:
            print(f"{'program':10} {'A insns':>14} {'B insns':>14} {'B/A':>6}  (guest work: count at the "
                  "second workload minus the first)")
        else:
            print(f"{'program':10} {'A s':>8} {'B s':>8} {'B/A':>6}  (median CPU seconds of {opts.reps} "
                  "interleaved runs)")
        for name in names:
            guest = BENCH / "bin" / f"{name}.riscv64"
            args = [str(WORKLOADS[name])] if opts.workload == "long" and name in WORKLOADS else []
            images = {}
            for side, tree in trees.items():
                images[side] = where / f"{name}.{side}.so"
                if not images[side].exists():
                    build(tree, guest, images[side])
            if opts.instructions:
                lo, hi = COUNT_WORKLOADS[name]
                work = {side: instructions(trees[side], images[side], [hi])
                        - instructions(trees[side], images[side], [lo]) for side in trees}
                ratios.append(work["B"] / work["A"])
                print(f"{name:10} {work['A']:14,} {work['B']:14,} {work['B'] / work['A']:6.3f}", flush=True)
                continue
            times: dict[str, list[float]] = {"A": [], "B": []}
            outputs = set()
            for _ in range(opts.reps):
                for side in ("A", "B"):
                    t, out = cpu_seconds(trees[side], images[side], args)
                    times[side].append(t)
                    outputs.add(out)
            if len(outputs) != 1:
                raise SystemExit(f"{name}: A and B print different output")
            a, b = statistics.median(times["A"]), statistics.median(times["B"])
            ratios.append(b / a)
            spread = lambda v: f"{min(v):.2f}-{max(v):.2f}"  # noqa: E731
            print(f"{name:10} {a:8.3f} {b:8.3f} {b / a:6.3f}  A {spread(times['A'])}  B {spread(times['B'])}",
                  flush=True)
    geo = statistics.geometric_mean(ratios)
    print(f"{'geomean':10} {'':8} {'':8} {geo:6.3f}")


if __name__ == "__main__":
    main()
