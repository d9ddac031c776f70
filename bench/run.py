#!/usr/bin/env python3
"""The benchmark runner: native x86_64 vs qemu-riscv64 vs aotrun, in one run.

For every program in bench/bin it translates the riscv64 build with `aotc
build` (timed), then runs native, qemu-riscv64 (when installed) and aotrun
interleaved, --reps times each, checks all three print the same output, and
reports medians, per-program ratios and geometric means; also build speed,
image size vs guest code, aotrun start-up for hello, and peak memory.
Unless --no-jit, each program also runs once on the JIT engine (`aotrun
--engine jit guest.elf`, output checked against native) for JIT compile
latency: per program compiles, p50/p99 and wall time, and p50/p99 of all
compiles in the suite pooled.
Not a test: machines are noisy, so only ratios from one run mean anything.

Workloads: each program runs with the argument in WORKLOADS, sized so the
native binary runs for 1-2 s here; aotrun's fixed start-up (~0.1 s of Python,
reported on its own from hello) would otherwise decide the ratio of a
0.2 s program.  ``--workload short`` runs the programs' built-in defaults
(0.15-0.35 s natively) instead.  The JIT run always uses the defaults: it
measures compile latency, which does not depend on the workload.

    python bench/run.py [--suite kernels|real|all] [--reps 3] [--only crc32,matmul]
                        [--workload long|short] [--no-jit] [--json] [--write-docs]
                        [--coremark-src PATH] [--jit-timed]

--suite real runs the real-program set instead (bench/real.py: Lua, zstd,
SQLite's speedtest1, pcre2grep, CoreMark with --coremark-src; built from
source into ~/.cache/aotc/thirdparty), all both; the measuring, the
interleaving, medians, ratios and geomeans are shared (``interleave``,
``speeds``, ``geomean``).

--write-docs replaces the generated section(s) of docs/performance.md and
writes docs/performance.png (needs matplotlib; skipped with a note if absent).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "bench" / "bin"
DOC = ROOT / "docs" / "performance.md"
CHART = ROOT / "docs" / "performance.png"
BEGIN, END = "<!-- bench/run.py begin -->", "<!-- bench/run.py end -->"
# --workload long: each program's argument (rounds, steps or depth; see
# bench/src), about 5x its built-in default.
WORKLOADS = {"crc32": "2000", "indirect": "50000", "intmix": "10000", "matmul": "1000",
             "nbody": "15000000", "recurse": "43", "stream": "75"}


def run_measured(cmd: list[str], env: dict[str, str], cwd: str | Path | None = None,
                 stdout: Path | None = None) -> tuple[float, bytes, float]:
    """Wall time, stdout and CPU time (user + sys of the child and its
    threads) of one child process (peak RSS: see peak_rss). With ``stdout``
    a path, the output goes to that file (big outputs) and b"" is returned
    for it."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    if stdout is None:
        proc = subprocess.run(cmd, capture_output=True, env=env, cwd=cwd)
    else:
        with open(stdout, "wb") as fh:
            proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.PIPE, env=env, cwd=cwd)
    dt = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr.decode(errors='replace')[-2000:]}")
    return dt, proc.stdout or b"", (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)


Times = dict[str, list[float]]


def interleave(runners: dict[str, list[str]], reps: int,
               run: Callable[[str, list[str]], tuple[float, bytes, float]]) -> tuple[Times, dict[str, bytes], Times]:
    """Every runner once per round, ``reps`` rounds (so a machine's slow
    spell hits all of them alike): wall times per runner, each runner's
    output and CPU times (``run(who, cmd)`` gives the wall time, what to
    compare and the CPU time, like run_measured); a runner whose output
    changes between its own runs is an error."""
    times: Times = {k: [] for k in runners}
    cpus: Times = {k: [] for k in runners}
    outs: dict[str, bytes] = {}
    for _ in range(reps):
        for who, cmd in runners.items():
            dt, out, cpu = run(who, cmd)
            if who in outs and outs[who] != out:
                sys.exit(f"{who}: output differs between runs of {' '.join(cmd)}")
            times[who].append(dt)
            cpus[who].append(cpu)
            outs[who] = out
    return times, outs, cpus


def speeds(med: dict[str, float], startup: float | None = None) -> dict[str, float | None]:
    """Ratios from medians (keys native, aotrun, qemu and optionally jit):
    speed = native time / time, aotrun vs qemu = qemu time / aotrun time;
    with ``startup``, aotrun's speed with that much taken out of its time."""
    nat, aot, qemu = med["native"], med["aotrun"], med.get("qemu")
    out: dict[str, float | None] = {
        "aotrun_vs_native": nat / aot,
        "qemu_vs_native": nat / qemu if qemu else None,
        "aotrun_vs_qemu": qemu / aot if qemu else None,
    }
    if "jit" in med:
        out["jit_vs_native"] = nat / med["jit"]
    if startup is not None:
        out["aotrun_vs_native_excl_startup"] = nat / (aot - startup) if aot > startup else None
    return out


def peak_rss(cmd: list[str], env: dict[str, str]) -> int:
    """Peak RSS in KiB via wait4 (Popen.wait would reap the child first)."""
    pid = os.posix_spawn(cmd[0], cmd, env, file_actions=[
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)])
    _, _, usage = os.wait4(pid, 0)
    return usage.ru_maxrss


def geomean(xs: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def percentile(xs: list[float], q: float) -> float | None:
    """The same rank rule as aotrun's jit_compile_ms_p50/p99 (runtime/machine.py)."""
    lat = sorted(xs)
    return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else None


def jit_run(aotrun: str, guest: Path, env: dict[str, str], tmp: str) -> tuple[dict, bytes]:
    """One run of the guest ELF on the JIT engine: its --stats-json and stdout."""
    stats_path = Path(tmp, f"{guest.stem}.jit-stats.json")
    dt, out, _ = run_measured([aotrun, "--engine", "jit", "--stats-json", str(stats_path), str(guest)], env)
    stats = json.loads(stats_path.read_text())
    lat = stats["jit_compile_ms"]
    if len(lat) != stats["jit_compiles"]:
        sys.exit(f"{guest.name}: jit_compile_ms has {len(lat)} entries, jit_compiles is {stats['jit_compiles']}")
    return {"jit_s": dt, "jit_compiles": stats["jit_compiles"], "jit_blocks": stats["jit_blocks"],
            "jit_compile_ms_p50": stats["jit_compile_ms_p50"], "jit_compile_ms_p99": stats["jit_compile_ms_p99"],
            "jit_compile_ms_total": stats["jit_compile_ms_total"], "jit_compile_ms": lat}, out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="aotc benchmark runner")
    ap.add_argument("--suite", choices=("kernels", "real", "all"), default="kernels",
                    help="kernels: bench/src (default); real: bench/real.py's programs; all: both")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", default="", help="comma-separated program (or real-suite case) names")
    ap.add_argument("--write-docs", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--workload", choices=("long", "short"), default="long",
                    help="long: the arguments in WORKLOADS (1-2 s natively); short: the programs' defaults")
    ap.add_argument("--no-jit", action="store_true",
                    help="kernels: skip the JIT-engine run per program (JIT compile latency)")
    ap.add_argument("--jit-timed", action="store_true",
                    help="real: also time aotrun --engine jit on the guest ELF, interleaved with the others")
    ap.add_argument("--reuse-images", action="store_true",
                    help="real: run the newest cached aot image of each ELF even if aotc's sources changed since "
                         "(in a tree others commit to, every commit would mean translating again)")
    ap.add_argument("--coremark-src", type=Path, default=None, metavar="PATH",
                    help="real: a checkout of https://github.com/eembc/coremark to build CoreMark from "
                         "(git clone https://github.com/eembc/coremark PATH); without it CoreMark is left out")
    args = ap.parse_args(argv)
    if args.reps < 1:
        ap.error("--reps must be at least 1")
    if args.coremark_src is not None and not (args.coremark_src / "core_main.c").is_file():
        ap.error(f"--coremark-src {args.coremark_src}: no core_main.c there (a checkout of "
                 "https://github.com/eembc/coremark)")
    return args


def tools() -> tuple[str, str, str | None, dict[str, str]]:
    """aotc, aotrun, qemu-riscv64 (None when absent) and the children's environment."""
    aotc, aotrun, qemu = shutil.which("aotc"), shutil.which("aotrun"), shutil.which("qemu-riscv64")
    if not (aotc and aotrun):
        sys.exit("aotc/aotrun not on PATH: pip install -e .")
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "AOTC_CONFIG_DIR")}
    return aotc, aotrun, qemu, env


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    results = {}
    if args.suite in ("kernels", "all"):
        results["kernels"] = run_kernels(args)
    if args.suite in ("real", "all"):
        import real

        results["real"] = real.run_suite(args)
    if args.json:
        print(json.dumps(results[args.suite] if args.suite != "all" else results, indent=2))
    if args.write_docs:
        if "kernels" in results:
            write_docs(*results["kernels"].values())
        if "real" in results:
            import real

            real.write_docs(results["real"], kernels=results.get("kernels"))


def run_kernels(args: argparse.Namespace) -> dict:
    aotc, aotrun, qemu, env = tools()
    names = sorted(p.name.split(".")[0] for p in BIN.glob("*.riscv64"))
    if args.only:
        names = [n for n in names if n in args.only.split(",")]
    if not names:
        sys.exit("no benchmark binaries: run python bench/build.py")
    rows = []
    with tempfile.TemporaryDirectory(prefix="aotc-bench-") as tmp:
        for name in names:
            guest, native = BIN / f"{name}.riscv64", BIN / f"{name}.x86_64"
            image = Path(tmp, f"{name}.so")
            t0 = time.perf_counter()
            # --no-cache: the "build s" column measures translation, not a cache hit.
            rep = subprocess.run([aotc, "build", "-q", "--json", "--no-cache", str(guest), "-o", str(image)],
                                 check=True, capture_output=True)
            build_s = time.perf_counter() - t0
            report = json.loads(rep.stdout)
            extra = [WORKLOADS[name]] if args.workload == "long" and name in WORKLOADS else []
            runners = {"native": [str(native), *extra], "aotrun": [aotrun, str(image), *extra]}
            if qemu:
                runners["qemu"] = [qemu, str(guest), *extra]
            times, outs, _ = interleave(runners, args.reps, lambda who, cmd: run_measured(cmd, env))
            jit: dict = {}
            if not args.no_jit:
                jit, jit_out = jit_run(aotrun, guest, env, tmp)
                want = run_measured([str(native)], env)[1] if extra else outs["native"]
                if jit_out != want:
                    sys.exit(f"{name}: jit output differs from native: {jit_out[:120]!r} vs {want[:120]!r}")
            for who, out in outs.items():
                if out != outs["native"]:
                    sys.exit(f"{name}: {who} output differs from native: {out[:120]!r} vs {outs['native'][:120]!r}")
            med = {k: statistics.median(v) for k, v in times.items()}
            row = {
                "program": name, "args": " ".join(extra),
                "native_s": med["native"], "aotrun_s": med["aotrun"], "qemu_s": med.get("qemu"),
                **speeds(med),
                "build_s": build_s, "instructions": report["instructions"],
                "insns_per_s": report["instructions"] / build_s,
                "image_bytes": report["image_bytes"], "guest_code_bytes": report["guest_code_bytes"],
                "aotrun_peak_kib": peak_rss([aotrun, str(image)], env),
                "native_peak_kib": peak_rss([str(native)], env),
                **jit,
            }
            rows.append(row)
            print(f"{name:9s} native {row['native_s']:.3f}s  aotrun {row['aotrun_s']:.3f}s "
                  f"({row['aotrun_vs_native']:.2f}x native)"
                  + (f"  qemu {row['qemu_s']:.3f}s (aotrun {row['aotrun_vs_qemu']:.2f}x qemu)" if qemu else "")
                  + (f"  jit {row['jit_s']:.3f}s: {row['jit_compiles']} compiles, p50 {row['jit_compile_ms_p50']} ms, "
                     f"p99 {row['jit_compile_ms_p99']} ms" if jit else ""),
                  flush=True)
        # start-up: hello (musl: smallest) translated once, run several times
        hello = ROOT / "samples" / "bin" / "hello.riscv64-musl"
        himg = Path(tmp, "hello.so")
        subprocess.run([aotc, "build", "-q", str(hello), "-o", str(himg)], check=True, capture_output=True)
        starts = [run_measured([aotrun, str(himg), "x"], env)[0] for _ in range(5)]
        hello_glibc = ROOT / "samples" / "bin" / "hello.riscv64"
        gimg = Path(tmp, "hello-glibc.so")
        subprocess.run([aotc, "build", "-q", str(hello_glibc), "-o", str(gimg)], check=True, capture_output=True)
        gstarts = [run_measured([aotrun, str(gimg), "x"], env)[0] for _ in range(5)]
    startup = statistics.median(gstarts)
    for r in rows:
        # Compute speed with aotrun's fixed start-up (glibc hello, this run) taken out.
        r["aotrun_vs_native_excl_startup"] = (r["native_s"] / (r["aotrun_s"] - startup)
                                              if r["aotrun_s"] > startup else None)
    summary = {
        "reps": args.reps, "workload": args.workload,
        "geomean_aotrun_vs_native": geomean([r["aotrun_vs_native"] for r in rows]),
        "geomean_aotrun_vs_native_excl_startup": geomean(
            [r["aotrun_vs_native_excl_startup"] for r in rows if r["aotrun_vs_native_excl_startup"]]),
        "geomean_aotrun_vs_qemu": geomean([r["aotrun_vs_qemu"] for r in rows if r["aotrun_vs_qemu"]]) if qemu else None,
        "geomean_qemu_vs_native": geomean([r["qemu_vs_native"] for r in rows if r["qemu_vs_native"]]) if qemu else None,
        "hello_musl_startup_s": statistics.median(starts),
        "hello_glibc_startup_s": statistics.median(gstarts),
        "jit_latency": None if args.no_jit else jit_summary(rows),
    }
    print(f"geomean: aotrun {summary['geomean_aotrun_vs_native']:.3f}x native "
          f"({summary['geomean_aotrun_vs_native_excl_startup']:.3f}x with start-up taken out)"
          + (f", {summary['geomean_aotrun_vs_qemu']:.2f}x qemu (qemu {summary['geomean_qemu_vs_native']:.3f}x native)" if qemu else ""))
    print(f"aotrun start-up (hello): musl {summary['hello_musl_startup_s']:.3f}s, glibc {summary['hello_glibc_startup_s']:.3f}s")
    if summary["jit_latency"]:
        j = summary["jit_latency"]
        print(f"JIT compile latency (all {j['compiles']} compiles pooled): p50 {j['p50_ms']:.3f} ms, "
              f"p99 {j['p99_ms']:.3f} ms; JIT run wall time total {j['jit_s_total']:.1f}s")
    else:
        print("JIT compile latency: skipped (--no-jit)")
    return {"rows": rows, "summary": summary}


def jit_summary(rows: list[dict]) -> dict:
    """Compile latencies of every program's JIT run, pooled."""
    pooled = [ms for r in rows for ms in r["jit_compile_ms"]]
    return {"compiles": len(pooled), "p50_ms": percentile(pooled, 0.50), "p99_ms": percentile(pooled, 0.99),
            "jit_s_total": sum(r["jit_s"] for r in rows)}


def jit_doc_lines(rows: list[dict], summary: dict) -> list[str]:
    """The JIT compile latency table of the generated section (empty with --no-jit)."""
    j = summary["jit_latency"]
    if not j:
        return ["JIT compile latency: not measured (`--no-jit`).", ""]
    lines = [("JIT compile latency: each program run once with `aotrun --engine jit guest.elf` "
              "(every block JIT-compiled; one compile translates a region of blocks; latency = "
              "discovery + lifting + compile + link + load, per compile)."), "",
             "| program | JIT compiles | blocks | p50 ms | p99 ms | compile total s | JIT run wall s |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['program']} | {r['jit_compiles']} | {r['jit_blocks']} | {r['jit_compile_ms_p50']:.1f} "
                     f"| {r['jit_compile_ms_p99']:.1f} | {r['jit_compile_ms_total'] / 1000:.2f} | {r['jit_s']:.2f} |")
    lines += ["", (f"**JIT compile latency, all {j['compiles']} compiles pooled:** p50 {j['p50_ms']:.1f} ms, "
                   f"p99 {j['p99_ms']:.1f} ms."), ""]
    return lines


def write_docs(rows: list[dict], summary: dict) -> None:
    lines = [BEGIN, "",
             f"Generated by `python bench/run.py --reps {summary['reps']} --workload {summary['workload']} "
             f"--write-docs` on {time.strftime('%Y-%m-%d')} ({os.cpu_count()} cores, {os.uname().machine}). "
             "Speed = native time / time (higher is better); all wall times, aotrun's include its "
             "start-up; \"excl. start-up\" takes the glibc hello start-up of this run out of aotrun's time.", "",
             "| program | args | native s | aotrun s | qemu s | aotrun vs native | excl. start-up "
             "| qemu vs native | aotrun vs qemu "
             "| build s | insns | insns/s built | image / guest code | peak RSS aotrun / native (MiB) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    fmt = lambda v, f: (f.format(v) if v is not None else "–")  # noqa: E731
    for r in rows:
        lines.append(
            f"| {r['program']} | {r['args'] or '–'} | {r['native_s']:.3f} | {r['aotrun_s']:.3f} | {fmt(r['qemu_s'], '{:.3f}')} "
            f"| {r['aotrun_vs_native']:.2f}× | {fmt(r['aotrun_vs_native_excl_startup'], '{:.2f}×')} "
            f"| {fmt(r['qemu_vs_native'], '{:.2f}×')} | {fmt(r['aotrun_vs_qemu'], '{:.2f}×')} "
            f"| {r['build_s']:.1f} | {r['instructions']} | {r['insns_per_s']:.0f} "
            f"| {r['image_bytes'] / r['guest_code_bytes']:.1f}× | {r['aotrun_peak_kib'] / 1024:.0f} / {r['native_peak_kib'] / 1024:.0f} |")
    lines += ["", f"**Geometric mean:** aotrun {summary['geomean_aotrun_vs_native']:.3f}× native "
              f"({summary['geomean_aotrun_vs_native_excl_startup']:.3f}× with start-up taken out)"
              + (f", {summary['geomean_aotrun_vs_qemu']:.2f}× qemu-riscv64 (qemu itself {summary['geomean_qemu_vs_native']:.3f}× native)."
                 if summary["geomean_aotrun_vs_qemu"] else "."),
              f"aotrun start-up for hello: {summary['hello_musl_startup_s']:.3f} s (musl), "
              f"{summary['hello_glibc_startup_s']:.3f} s (glibc).", ""]
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 3.5))
        xs = range(len(rows))
        ax.bar([x - 0.2 for x in xs], [r["aotrun_vs_native"] for r in rows], 0.4, label="aotrun")
        if summary["geomean_qemu_vs_native"]:
            ax.bar([x + 0.2 for x in xs], [r["qemu_vs_native"] for r in rows], 0.4, label="qemu-riscv64")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks(list(xs), [r["program"] for r in rows])
        ax.set_ylabel("speed vs native x86_64")
        ax.legend()
        fig.tight_layout()
        fig.savefig(CHART, dpi=100)
        lines.insert(-1, "![speed vs native](performance.png)")
    except ImportError:
        lines.insert(-1, "(chart skipped: matplotlib is not installed)")
    lines += jit_doc_lines(rows, summary)
    lines.append(END)
    text = DOC.read_text() if DOC.exists() else "# Performance\n"
    block = "\n".join(lines)
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n## Benchmark suite\n\n" + block + "\n"
    DOC.write_text(text)
    print(f"wrote {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
