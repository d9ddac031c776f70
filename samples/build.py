#!/usr/bin/env python3
"""Build the aotc guest sample programs reproducibly.

Builds every C sample in samples/src in four flavours (stripped, static,
-O2, no build-id, fixed flags) into samples/bin:

    <name>.riscv64        riscv64-linux-gnu-gcc -static        (glibc)
    <name>.riscv64-musl   python -m ziglang cc -target riscv64-linux-musl
    <name>.x86_64         gcc -static                          (glibc)
    <name>.aarch64        aarch64-linux-gnu-gcc -static        (glibc)

plus rv64_insns.riscv64 (freestanding assembly, riscv64 only) and
hello-dynamic.riscv64 (hello.c linked dynamically: used to check that
dynamic ELFs are refused).

Usage:
    python samples/build.py            build into samples/bin
    python samples/build.py --verify   build twice in scratch directories,
                                       check both builds are byte-identical,
                                       then install into samples/bin
    python samples/build.py -j N       parallel jobs (default: CPU count)
    python samples/build.py --only procwalk
                                       build and install only these samples
                                       (every flavour); the other binaries
                                       and their checksums stay as they are

Writes samples/SHA256SUMS for the installed binaries. Standard library only.
Fails (exit status 1) if a compiler is missing or any build fails.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "samples" / "src"
BIN = ROOT / "samples" / "bin"
SUMS = ROOT / "samples" / "SHA256SUMS"

# C samples (file stems in samples/src); every one is built in every flavour.
C_SAMPLES = [
    "hello", "fileio", "qsort", "switch_interp", "recursion", "setjmp",
    "int128", "floats", "atomics", "strings", "crash", "compute", "abort",
    "jitgen", "selfmod", "procwalk", "forkexec", "signals", "iowait", "threads",
]
ASM_SAMPLES = ["rv64_insns"]  # riscv64 only, no libc

FLAVOURS = ["riscv64", "riscv64-musl", "x86_64", "aarch64"]

# Flags shared by every C build. -ffp-contract=off: never fuse a*b+c
# implicitly (gcc fuses by default on riscv64/aarch64, not on x86_64), so
# floating-point results agree on all ISAs. -ffile-prefix-map keeps the
# checkout path out of the binaries.
COMMON_CFLAGS = [
    "-std=gnu11", "-O2", "-s", "-Wall", "-Wextra", "-Wno-unused-parameter",
    "-ffp-contract=off", "-fno-ident",
    f"-ffile-prefix-map={ROOT}=.", "-Wl,--build-id=none",
]
# glibc (gcc) builds: libatomic for the 8/16-bit atomics gcc 12 does not
# inline on riscv64.
GNU_LIBS = ["-lm", "-latomic"]
# Per-sample extra flags. floats changes the rounding mode at run time:
# without -frounding-math gcc may expand rint() inline in a way that is
# only correct in round-to-nearest (x86_64 fabs/copysign trick).
EXTRA_CFLAGS = {"floats": ["-frounding-math"], "threads": ["-pthread"]}


@dataclass(frozen=True)
class Job:
    name: str        # output binary name, e.g. "hello.riscv64"
    argv: list       # compiler command; the output path is appended
    source: str      # path relative to ROOT (for messages)


def zig_cc() -> list:
    return [sys.executable, "-m", "ziglang", "cc"]


def compilers() -> dict:
    return {
        "riscv64": ["riscv64-linux-gnu-gcc"],
        "riscv64-musl": zig_cc() + ["-target", "riscv64-linux-musl"],
        "x86_64": ["gcc"],
        "aarch64": ["aarch64-linux-gnu-gcc"],
    }


def check_tools() -> dict:
    """Return {tool: version line}; exit loudly if anything is missing."""
    versions, missing = {}, []
    for tool in ["riscv64-linux-gnu-gcc", "aarch64-linux-gnu-gcc", "gcc"]:
        if shutil.which(tool) is None:
            missing.append(tool)
            continue
        out = subprocess.run([tool, "--version"], capture_output=True, text=True)
        versions[tool] = out.stdout.splitlines()[0] if out.stdout else "?"
    try:
        out = subprocess.run(zig_cc()[:-1] + ["version"], capture_output=True,
                             text=True, timeout=120)
        if out.returncode != 0:
            raise OSError(out.stderr.strip())
        versions["zig (ziglang)"] = out.stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        missing.append(f"python -m ziglang (pip install ziglang): {exc}")
    if missing:
        print("build.py: missing compilers:", file=sys.stderr)
        for m in missing:
            print(f"  - {m}", file=sys.stderr)
        print("install: apt-get install gcc gcc-riscv64-linux-gnu "
              "libc6-dev-riscv64-cross gcc-aarch64-linux-gnu "
              "libc6-dev-arm64-cross; pip install ziglang", file=sys.stderr)
        sys.exit(1)
    return versions


def jobs() -> list:
    cc = compilers()
    out = []
    for name in C_SAMPLES:
        src = f"samples/src/{name}.c"
        for fl in FLAVOURS:
            libs = [] if fl == "riscv64-musl" else GNU_LIBS
            argv = (cc[fl] + ["-static"] + COMMON_CFLAGS
                    + EXTRA_CFLAGS.get(name, []) + [src] + libs)
            out.append(Job(f"{name}.{fl}", argv, src))
    for name in ASM_SAMPLES:
        src = f"samples/src/{name}.S"
        argv = cc["riscv64"] + [
            "-nostdlib", "-static", "-march=rv64gc", "-s",
            f"-ffile-prefix-map={ROOT}=.", "-Wl,--build-id=none", src]
        out.append(Job(f"{name}.riscv64", argv, src))
    src = "samples/src/hello.c"
    argv = cc["riscv64"] + COMMON_CFLAGS + [src]  # no -static: dynamic ELF
    out.append(Job("hello-dynamic.riscv64", argv, src))
    return out


def run_job(job: Job, outdir: Path, env: dict) -> tuple:
    target = outdir / job.name
    proc = subprocess.run(job.argv + ["-o", str(target)], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    return job, proc


def build_all(outdir: Path, njobs: int, quiet: bool = False, only: list | None = None) -> dict:
    """Build everything into outdir; return {name: sha256}."""
    outdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["LC_ALL"] = "C"
    env["SOURCE_DATE_EPOCH"] = "0"
    # keep zig's per-project cache out of the work tree (its global cache,
    # where the musl libc build lives, stays in the user's cache directory)
    zig_local = Path(tempfile.mkdtemp(prefix="aotc-zig-local-"))
    env["ZIG_LOCAL_CACHE_DIR"] = str(zig_local)
    todo = [j for j in jobs() if only is None or j.name.split(".", 1)[0] in only]
    failed = []
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=njobs) as pool:
            futures = [pool.submit(run_job, j, outdir, env) for j in todo]
            results = [f.result() for f in futures]
    finally:
        shutil.rmtree(zig_local, ignore_errors=True)
    sums = {}
    for job, proc in results:
        if proc.returncode != 0:
            failed.append(job)
            print(f"FAILED {job.name}: {' '.join(job.argv)}", file=sys.stderr)
            sys.stderr.write(proc.stderr)
            continue
        if proc.stderr.strip() and not quiet:
            print(f"warnings for {job.name}:\n{proc.stderr.rstrip()}")
        data = (outdir / job.name).read_bytes()
        sums[job.name] = hashlib.sha256(data).hexdigest()
        if not quiet:
            print(f"  {job.name:<28} {len(data):>8} bytes  <- {job.source}")
    if failed:
        print(f"build.py: {len(failed)} build(s) failed", file=sys.stderr)
        sys.exit(1)
    return sums


def install(builddir: Path, sums: dict, partial: bool = False) -> None:
    BIN.mkdir(parents=True, exist_ok=True)
    for old in BIN.iterdir():
        if old.is_file() and old.name not in sums and not partial:
            print(f"removing stale {old.relative_to(ROOT)}")
            old.unlink()
    for name in sorted(sums):
        shutil.copyfile(builddir / name, BIN / name)
        os.chmod(BIN / name, 0o755)
    if partial and SUMS.exists():
        kept = {line.split("  bin/", 1)[1]: line.split("  ", 1)[0]
                for line in SUMS.read_text().splitlines() if "  bin/" in line}
        sums = {**kept, **sums}
    SUMS.write_text("".join(f"{sums[n]}  bin/{n}\n" for n in sorted(sums)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--verify", action="store_true",
                    help="build twice and require byte-identical results")
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--only", nargs="+", metavar="SAMPLE",
                    help="build and install only these samples")
    args = ap.parse_args()
    if args.only:
        unknown = set(args.only) - set(C_SAMPLES + ASM_SAMPLES + ["hello-dynamic"])
        if unknown:
            ap.error(f"unknown samples: {sorted(unknown)}")

    versions = check_tools()
    print("compilers: " + "; ".join(f"{k}: {v}" for k, v in versions.items()))
    with tempfile.TemporaryDirectory(prefix="aotc-samples-") as tmp:
        first = Path(tmp) / "a"
        print(f"building {len(jobs())} binaries ..." if not args.only
              else f"building {', '.join(args.only)} ...")
        sums = build_all(first, args.jobs, only=args.only)
        if args.verify:
            print("verify: building everything a second time ...")
            sums2 = build_all(Path(tmp) / "b", args.jobs, quiet=True, only=args.only)
            diff = sorted(n for n in sums if sums[n] != sums2.get(n))
            if diff:
                print("verify: NOT reproducible: " + ", ".join(diff),
                      file=sys.stderr)
                return 1
            print(f"verify: all {len(sums)} binaries byte-identical (sha256)")
        install(first, sums, partial=bool(args.only))
    total = sum((BIN / n).stat().st_size for n in sums)
    print(f"installed {len(sums)} binaries in samples/bin ({total / 1e6:.1f} MB); "
          f"checksums in samples/SHA256SUMS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
