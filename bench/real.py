"""The real-program suite of bench/run.py (``--suite real``): programs users
run, built from source for riscv64 and x86_64 with the same flags, timed
natively, under qemu-riscv64 and under aotrun (and, with ``--jit-timed``,
aotrun's JIT engine), interleaved, outputs checked equal across engines.

Programs (nothing third-party is in the repository; builds and aot images
are cached in ``~/.cache/aotc/thirdparty`` by tests/thirdparty/sources.py's
machinery, recipes ``bench-<program>-<arch>``):

- Lua 5.4 (Debian source package ``lua5.4``) running our scripts in
  bench/real/*.lua (fib recursion, string building and gsub, table sort,
  closures and method calls);
- zstd 1.5 (Debian ``libzstd``): levels 1, 3 and 19 and decompression of a
  deterministically generated corpus (``make_corpus``, the generator of
  tests/test_thirdparty_zstd.py at 20 MiB);
- SQLite's speedtest1 (Debian ``sqlite3``: test/speedtest1.c and the
  amalgamation, made with ``./configure && make sqlite3.c``);
- pcre2grep (Debian ``pcre2``, no JIT): regular expressions over the corpus;
- CoreMark, only with ``--coremark-src PATH`` (a checkout of
  https://github.com/eembc/coremark; never fetched by this script nor
  committed): ``git clone https://github.com/eembc/coremark /tmp/coremark``.

All are compiled ``-O2 -static -ffp-contract=off`` (the kernel suite's
flags: no FMA contraction on riscv64 that x86_64 gcc would not do), glibc,
by ``riscv64-linux-gnu-gcc`` and the host's ``gcc``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SCRIPTS = HERE / "real"
for _p in (ROOT, HERE):        # tests.thirdparty.sources; bench/run.py's shared code
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from tests.thirdparty import corpus  # noqa: E402
from tests.thirdparty import sources as tp  # noqa: E402

from run import DOC, END as KERNELS_END, geomean, interleave, run_measured, speeds, tools  # noqa: E402

ARCHES = {"riscv64": "riscv64-linux-gnu-gcc", "x86_64": "gcc"}
CFLAGS = ["-O2", "-ffp-contract=off"]
LDFLAGS = ["-static"]
RECIPE_REV = 1
CORPUS_BYTES = 20 * 1024 * 1024
NOISE_ONE_IN = 50


# --------------------------------------------------------------------------
# builds

def _cc(arch: str) -> str:
    cc = ARCHES[arch]
    tp._need_tools(cc, "make", why=f"the real-program bench set is built for {arch} with {cc}")
    return cc


def _host(arch: str) -> list[str]:
    """configure's --host for a cross build (none for the host itself)."""
    return [f"--host={tp.CROSS[:-1]}"] if arch == "riscv64" else []


def build_lua(arch: str, out: Path, work: Path, logf) -> dict:
    cc = _cc(arch)
    t0 = time.monotonic()
    version, tree = tp.fetch_source("lua5.4", work / "src", logf)
    steps = {"fetch": time.monotonic() - t0}
    srcs = sorted(str(p.relative_to(tree)) for p in (tree / "src").glob("*.c") if p.name != "luac.c")
    # Debian's module-path patch includes a header debian/rules writes
    triplet = "riscv64-linux-gnu" if arch == "riscv64" else "x86_64-linux-gnu"
    (tree / "src" / "lua5.4-deb-multiarch.h").write_text(f'#define DEB_HOST_MULTIARCH "{triplet}"\n')
    out.mkdir(parents=True, exist_ok=True)
    steps["cc"] = logf.run([cc, *CFLAGS, "-DLUA_USE_POSIX", "-DLUA_COMPAT_5_3", "-o", str(out / "lua"),
                            *srcs, *LDFLAGS, "-lm"], cwd=tree)
    return {"package": "lua5.4", "version": version, "steps": steps}


def build_zstd(arch: str, out: Path, work: Path, logf) -> dict:
    cc = _cc(arch)
    t0 = time.monotonic()
    version, tree = tp.fetch_source("libzstd", work / "src", logf, version_prefix="1.5.")
    steps = {"fetch": time.monotonic() - t0}
    make = [f"CC={cc}", f"CFLAGS={' '.join(CFLAGS)}", f"LDFLAGS={' '.join(LDFLAGS)}",
            *(a for a in tp.ZSTD_MAKE if not a.startswith(("CC=", "LDFLAGS=")))]
    steps["make"] = logf.run(["make", f"-j{tp.JOBS}", "-C", "programs", "zstd", *make], cwd=tree)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(tree / "programs" / "zstd", out / "zstd")
    return {"package": "libzstd", "version": version, "steps": steps}


def build_sqlite_src(out: Path, work: Path, logf) -> dict:
    """SQLite's amalgamation and speedtest1.c, made once for both arches
    (``./configure && make sqlite3.c`` on the host takes minutes: tclsh,
    lemon, mkkeywordhash)."""
    t0 = time.monotonic()
    version, tree = tp.fetch_source("sqlite3", work / "src", logf)
    steps = {"fetch": time.monotonic() - t0}
    if not (tree / "sqlite3.c").exists():
        tp._need_tools("tclsh", "gcc", "make", why="SQLite's amalgamation is generated with tclsh (apt-get install tcl)")
        steps["configure"] = logf.run(["./configure"], cwd=tree)
        steps["make sqlite3.c"] = logf.run(["make", "sqlite3.c"], cwd=tree)
    out.mkdir(parents=True, exist_ok=True)
    for f in ("sqlite3.c", "sqlite3.h", "test/speedtest1.c"):
        shutil.copy2(tree / f, out / Path(f).name)
    return {"package": "sqlite3", "version": version, "steps": steps}


def build_sqlite(arch: str, out: Path, work: Path, logf) -> dict:
    cc = _cc(arch)
    src = tp.ensure("bench-sqlite-src", recipes())
    steps = {"amalgamation": 0.0}
    out.mkdir(parents=True, exist_ok=True)
    steps["cc"] = logf.run([cc, *CFLAGS, "-DSQLITE_THREADSAFE=0", "-DSQLITE_OMIT_LOAD_EXTENSION", "-I.",
                            "-o", str(out / "speedtest1"), "speedtest1.c", "sqlite3.c", *LDFLAGS, "-lm"],
                           cwd=src.binary.parent)
    return {"package": "sqlite3", "version": src.manifest["version"], "steps": steps}


def build_pcre2(arch: str, out: Path, work: Path, logf) -> dict:
    cc = _cc(arch)
    t0 = time.monotonic()
    version, tree = tp.fetch_source("pcre2", work / "src", logf)
    steps = {"fetch": time.monotonic() - t0}
    steps["configure"] = logf.run(["./configure", *_host(arch), f"CC={cc}", f"CFLAGS={' '.join(CFLAGS)}",
                                   "--disable-shared", "--enable-static", "--disable-jit",
                                   "--disable-pcre2grep-libz", "--disable-pcre2grep-libbz2"], cwd=tree)
    # libtool's -all-static links the program itself static (-static would
    # only prefer the static libpcre2)
    steps["make"] = logf.run(["make", f"-j{tp.JOBS}", "pcre2grep", "LDFLAGS=-all-static"], cwd=tree)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(tree / "pcre2grep", out / "pcre2grep")
    return {"package": "pcre2", "version": version, "steps": steps}


COREMARK_FILES = ["core_list_join.c", "core_main.c", "core_matrix.c", "core_state.c", "core_util.c",
                  "posix/core_portme.c"]


def coremark_tree_hash(src: Path) -> str:
    """What decides a CoreMark build: its sources' bytes (a checkout, not a
    package: no version to key by)."""
    h = hashlib.sha256()
    for p in sorted([*(src / f for f in COREMARK_FILES), *src.glob("*.h"), *(src / "posix").glob("*.h")]):
        h.update(str(p.relative_to(src)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


def build_coremark(arch: str, src: Path, out: Path, work: Path, logf) -> dict:
    cc = _cc(arch)
    out.mkdir(parents=True, exist_ok=True)
    flags = " ".join(CFLAGS + LDFLAGS)
    steps = {"cc": logf.run([cc, *CFLAGS, "-Iposix", "-I.", f'-DFLAGS_STR="{flags}"', "-o", str(out / "coremark"),
                             *COREMARK_FILES, *LDFLAGS, "-lrt"], cwd=src)}
    return {"package": f"coremark (checkout {src})", "version": coremark_tree_hash(src), "steps": steps}


BUILDERS: dict[str, tuple[Callable, str]] = {
    "lua": (build_lua, "lua"),
    "zstd": (build_zstd, "zstd"),
    "sqlite": (build_sqlite, "speedtest1"),
    "pcre2": (build_pcre2, "pcre2grep"),
}


def recipes(coremark_src: Path | None = None) -> dict:
    """tests/thirdparty/sources.ensure's recipes: bench-<program>-<arch>."""
    out = {}
    for prog, (builder, binary) in BUILDERS.items():
        for arch in ARCHES:
            out[f"bench-{prog}-{arch}"] = (
                (lambda p=prog, a=arch: ["bench", RECIPE_REV, p, a, ARCHES[a], CFLAGS, LDFLAGS]),
                (lambda o, w, lg, b=builder, a=arch: b(a, o, w, lg)), binary)
    out["bench-sqlite-src"] = (lambda: ["bench", RECIPE_REV, "sqlite-src"], build_sqlite_src, "sqlite3.c")
    if coremark_src is not None:
        for arch in ARCHES:
            out[f"bench-coremark-{arch}"] = (
                (lambda a=arch: ["bench", RECIPE_REV, "coremark", a, ARCHES[a], CFLAGS, LDFLAGS,
                                 coremark_tree_hash(coremark_src)]),
                (lambda o, w, lg, a=arch: build_coremark(a, coremark_src, o, w, lg)), "coremark")
    return out


def ensure(prog: str, coremark_src: Path | None = None) -> dict[str, "tp.Built"]:
    """Both builds of ``prog`` (arch -> Built), from the cache or built now."""
    rec = recipes(coremark_src)
    return {arch: tp.ensure(f"bench-{prog}-{arch}", rec) for arch in ARCHES}


# --------------------------------------------------------------------------
# inputs

def make_corpus(size: int = CORPUS_BYTES, noise_one_in: int = NOISE_ONE_IN) -> bytes:
    """The zstd test's generator (tests/thirdparty/corpus.py, where the test
    uses ``noise_one_in=5``). The bench draws noise less often: with one
    draw in five, noise is most of the bytes, which zstd stores raw, and
    decompression has next to nothing to do."""
    return corpus.make_corpus(size, noise_one_in)


# --------------------------------------------------------------------------
# the cases

@dataclass
class Case:
    """One timed command: ``program``'s binary with ``args``, where {lua},
    {corpus}, {zst} and {small} name files of the work directory or our
    scripts; ``compare`` says what must be equal across engines: "bytes"
    (all of stdout, by SHA-256) or a normaliser's name (the program prints
    its own timings)."""
    name: str
    program: str
    args: list[str]
    what: str
    compare: str = "bytes"     # or "discard": stdout to /dev/null, the exit status decides
    cleanup: list[str] = field(default_factory=list)


# Workloads sized to 1-2 s natively on this kind of machine (aotrun's fixed
# start-up, ~0.1 s, would otherwise decide the ratio).
ZSTD_PASSES = {"1": 12, "3": 8, "d": 50}     # the corpus this many times per run (file operands)
ZSTD_19_BYTES = 2 * 1024 * 1024
PCRE2_PATTERNS = [r"(\w+) \1", r"(?i)\b(quebec|zulu) [a-z]+ [a-z]*o\b", r"[a-z]{5,}e \d{4,}$",
                  r"^(?:\w+ ){3}(\w+) .*\b\1\b", r"(?:a|e|i|o|u){2}[^ ]*[0-9]"]
CASES = [
    Case("lua-fib", "lua", ["{lua}/fib.lua", "37"], "fib(37), naive recursion"),
    Case("lua-strings", "lua", ["{lua}/strings.lua", "30"], "string.format, concat, gsub, gmatch, find: 30 rounds"),
    Case("lua-sort", "lua", ["{lua}/sort.lua", "200000"], "table.sort of 200k numbers, strings, records"),
    Case("lua-oop", "lua", ["{lua}/oop.lua", "200"], "metatables, method calls, closures: 200 rounds"),
    Case("zstd-1", "zstd", ["-q", "-1", "-c", *["{corpus}"] * ZSTD_PASSES["1"]],
         f"level 1, the 20 MiB corpus {ZSTD_PASSES['1']}x"),
    Case("zstd-3", "zstd", ["-q", "-3", "-c", *["{corpus}"] * ZSTD_PASSES["3"]],
         f"level 3, the 20 MiB corpus {ZSTD_PASSES['3']}x"),
    Case("zstd-19", "zstd", ["-q", "-19", "-c", "{small}"], f"level 19, the corpus' first {ZSTD_19_BYTES >> 20} MiB"),
    Case("zstd-d", "zstd", ["-q", "-d", "-c", *["{zst}"] * ZSTD_PASSES["d"]],
         f"decompress the corpus (level 3) {ZSTD_PASSES['d']}x to /dev/null (zstd checks each frame's checksum)",
         compare="discard"),
    # unix-none: SQLite's unix VFS without POSIX advisory locks.  The first
    # recorded run needed it (fcntl F_SETLK was EINVAL: "disk I/O error");
    # record locks work since, and the case keeps unix-none so that figures
    # stay comparable with that run.
    Case("sqlite", "sqlite", ["--size", "30", "--nosync", "--vfs", "unix-none", "speedtest1.db"],
         "speedtest1 --size 30, a file database, VFS unix-none (no locks)",
         compare="speedtest1", cleanup=["speedtest1.db", "speedtest1.db-journal"]),
    Case("pcre2grep", "pcre2", ["-a", "-c", *(a for pat in PCRE2_PATTERNS for a in ("-e", pat)), "{corpus}"],
         f"{len(PCRE2_PATTERNS)} regexes (back-references, classes, alternations) over the 20 MiB corpus, "
         "count matching lines"),
    Case("coremark", "coremark", ["0x0", "0x0", "0x66", "40000", "7", "1", "2000"], "40000 iterations",
         compare="coremark"),
]
PROGRAMS = ["lua", "zstd", "sqlite", "pcre2", "coremark"]


def normalise(kind: str, out: bytes) -> bytes:
    """What must be equal across engines of a program that prints timings."""
    text = out.decode(errors="replace")
    if kind == "speedtest1":     # "NNN - what.......   0.123s": drop the times
        return "\n".join(re.sub(r"\s+\d+\.\d+s$", "", line) for line in text.splitlines()).encode()
    if kind == "coremark":       # the checksums and sizes, not ticks, rates, validity
        keep = ("CoreMark Size", "Iterations  ", "seedcrc", "[0]")
        return "\n".join(line for line in text.splitlines() if line.startswith(keep)).encode()
    raise ValueError(kind)


def select(only: str, coremark: bool) -> list[Case]:
    """The cases --only names (a case or a program), CoreMark only with its source."""
    names = {n for n in only.split(",") if n}
    out = [c for c in CASES if (not names or c.name in names or c.program in names)
           and (coremark or c.program != "coremark")]
    return out


def expand(args: list[str], files: dict[str, str]) -> list[str]:
    return [a.format(**files) if a.startswith("{") else a for a in args]


def image_for(built: "tp.Built", reuse: bool = False) -> Path:
    """The cached aot image of ``built``: translated once per ELF and
    translator (tests/thirdparty/sources.image keys it by the hash of every
    aotc source file, so in a tree others are committing to, any edit
    means minutes of translation again); with ``reuse``, the newest cached
    image of the same ELF from any translator (aotrun refuses one of another
    CODEGEN_VERSION; the docs name the translator key used)."""
    if reuse:
        images = sorted((tp.cache_root() / "images").glob(f"{built.binary.name}-{tp._sha256(built.binary)[:16]}-*.so"),
                        key=lambda p: p.stat().st_mtime, reverse=True)
        if images:
            return images[0]
    return tp.image(built)


def image_record(image: Path) -> dict:
    """The cached image's build record (tests/thirdparty/sources.image logs one per build)."""
    rec: dict = {}
    log = image.parent / "build-times.jsonl"
    if log.exists():
        for line in log.read_text().splitlines():
            entry = json.loads(line)
            if entry.get("image") == image.name:
                rec = entry
    return rec


def _git(*args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return proc.stdout.strip()


def run_suite(args: argparse.Namespace) -> dict:
    aotc, aotrun, qemu, env = tools()
    cases = select(args.only, args.coremark_src is not None)
    if not cases:
        sys.exit("no real-suite case selected")
    if args.coremark_src is None:
        print("coremark: left out (--coremark-src PATH: git clone https://github.com/eembc/coremark PATH)",
              flush=True)
    load_before = os.getloadavg()
    programs = [p for p in PROGRAMS if any(c.program == p for c in cases)]
    builds, images, records = {}, {}, {}
    for prog in programs:
        try:
            builds[prog] = ensure(prog, args.coremark_src)
        except (tp.Unavailable, tp.BuildFailed) as e:
            sys.exit(f"{prog}: {e}")
        t0 = time.perf_counter()
        images[prog] = image_for(builds[prog]["riscv64"], args.reuse_images)
        records[prog] = {**image_record(images[prog]), "image_now_s": time.perf_counter() - t0,
                         "image": str(images[prog]),
                         "binaries": {a: str(b.binary) for a, b in builds[prog].items()},
                         "versions": builds[prog]["riscv64"].manifest.get("version")}
        print(f"{prog}: {builds[prog]['riscv64'].manifest.get('package')} "
              f"{records[prog]['versions']}; image {images[prog].name} "
              f"({records[prog].get('seconds', '?')} s to build)", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="aotc-bench-real-") as tmp:
        work = Path(tmp)
        files = {"lua": str(SCRIPTS), "corpus": str(work / "corpus.bin"), "small": str(work / "small.bin"),
                 "zst": str(work / "corpus.zst")}
        if any(c.program in ("zstd", "pcre2") for c in cases):
            corpus = make_corpus()
            (work / "corpus.bin").write_bytes(corpus)
            (work / "small.bin").write_bytes(corpus[:ZSTD_19_BYTES])
            if "zstd" in builds:
                run_measured([str(builds["zstd"]["x86_64"].binary), "-q", "-3", "-c", files["corpus"]], env,
                             stdout=work / "corpus.zst")
        for case in cases:
            rv, native = builds[case.program]["riscv64"].binary, builds[case.program]["x86_64"].binary
            argv = expand(case.args, files)
            runners = {"native": [str(native), *argv], "aotrun": [aotrun, str(images[case.program]), *argv]}
            if qemu:
                runners["qemu"] = [qemu, str(rv), *argv]
            if args.jit_timed:
                runners["jit"] = [aotrun, "--engine", "jit", str(rv), *argv]

            def run(who: str, cmd: list[str]) -> tuple[float, bytes, float]:
                for f in case.cleanup:
                    (work / f).unlink(missing_ok=True)
                if case.compare == "discard":
                    dt, _, cpu = run_measured(cmd, env, cwd=work, stdout=Path(os.devnull))
                    return dt, b"", cpu
                out = work / f"{who}.out"
                dt, _, cpu = run_measured(cmd, env, cwd=work, stdout=out)
                data = out.read_bytes()
                out.unlink()
                key = (hashlib.sha256(data).hexdigest().encode() + b" %d" % len(data)
                       if case.compare == "bytes" else normalise(case.compare, data))
                return dt, key, cpu

            times, outs, cpus = interleave(runners, args.reps, run)
            ref = "qemu" if qemu else "native"
            for who, out in outs.items():
                if who != "native" and out != outs[ref]:
                    sys.exit(f"{case.name}: {who} output differs from {ref}: {out[:200]!r} vs {outs[ref][:200]!r}")
            med = {k: statistics.median(v) for k, v in times.items()}
            cpu = {k: statistics.median(v) for k, v in cpus.items()}
            row = {"case": case.name, "program": case.program, "what": case.what, "args": " ".join(case.args),
                   "native_s": med["native"], "qemu_s": med.get("qemu"), "aotrun_s": med["aotrun"],
                   "jit_s": med.get("jit"), "times": times, "cpu_times": cpus, **speeds(med),
                   **{f"{k}_cpu_s": v for k, v in cpu.items()},
                   **{f"cpu_{k}": v for k, v in speeds(cpu).items()},
                   "native_output_differs": outs["native"] != outs[ref]}
            rows.append(row)
            print(f"{case.name:12s} native {row['native_s']:.3f}s  aotrun {row['aotrun_s']:.3f}s "
                  f"({row['aotrun_vs_native']:.2f}x native)"
                  + (f"  qemu {row['qemu_s']:.3f}s (aotrun {row['aotrun_vs_qemu']:.2f}x qemu)" if qemu else "")
                  + (f"  jit {row['jit_s']:.3f}s" if args.jit_timed else "")
                  + ("  [native output differs from the riscv64 build's]" if row["native_output_differs"] else ""),
                  flush=True)
        start = startup(aotc, aotrun, qemu, env, work, args.reps)
    for r in rows:
        r["aotrun_vs_native_excl_startup"] = speeds(
            {"native": r["native_s"], "aotrun": r["aotrun_s"]}, start["aotrun_s"])["aotrun_vs_native_excl_startup"]
    summary = summarise(rows)
    summary.update(reps=args.reps, startup=start, programs=records, jit_timed=args.jit_timed,
                   load_before=load_before, load_after=os.getloadavg(), date=time.strftime("%Y-%m-%d"),
                   commit=_git("rev-parse", "--short", "HEAD"), aotc_key=tp.aotc_key(),
                   dirty=bool(_git("status", "--porcelain", "--untracked-files=no")),
                   command=command_line(args))
    print_summary(summary)
    return {"rows": rows, "summary": summary}


def startup(aotc: str, aotrun: str, qemu: str | None, env: dict, work: Path, reps: int) -> dict:
    """Start-up: hello (glibc, static), native vs qemu-riscv64 vs aotrun of
    its image (built with aotc build, build cache), at least 10 rounds."""
    samples = ROOT / "samples" / "bin"
    himg = work / "hello.so"
    subprocess.run([aotc, "build", "-q", str(samples / "hello.riscv64"), "-o", str(himg)], check=True,
                   capture_output=True)
    runners = {"native": [str(samples / "hello.x86_64"), "x"], "aotrun": [aotrun, str(himg), "x"]}
    if qemu:
        runners["qemu"] = [qemu, str(samples / "hello.riscv64"), "x"]
    times, outs, cpus = interleave(runners, max(10, reps), lambda who, cmd: run_measured(cmd, env))
    if len(set(outs.values())) != 1:
        sys.exit(f"hello: outputs differ: {outs}")
    return {**{f"{k}_s": statistics.median(v) for k, v in times.items()},
            **{f"{k}_cpu_s": statistics.median(v) for k, v in cpus.items()}}


def summarise(rows: list[dict]) -> dict:
    """Geomeans over the cases, and over the programs (each program the
    geomean of its cases, so Lua's and zstd's four cases count once)."""
    def gm(key: str, rs: list[dict]) -> float | None:
        xs = [r[key] for r in rs if r.get(key)]
        return geomean(xs) if xs else None

    keys = ("aotrun_vs_native", "aotrun_vs_native_excl_startup", "qemu_vs_native", "aotrun_vs_qemu",
            "jit_vs_native", "cpu_aotrun_vs_native", "cpu_qemu_vs_native", "cpu_aotrun_vs_qemu", "cpu_jit_vs_native")
    by_program = {}
    for prog in dict.fromkeys(r["program"] for r in rows):
        rs = [r for r in rows if r["program"] == prog]
        by_program[prog] = {k: gm(k, rs) for k in keys}
    progs = list(by_program.values())
    return {"geomean_cases": {k: gm(k, rows) for k in keys},
            "geomean_programs": {k: gm(k, progs) for k in keys},
            "by_program": by_program}


def print_summary(summary: dict) -> None:
    g, c = summary["geomean_programs"], summary["geomean_cases"]
    fmt = lambda v: f"{v:.3f}" if v else "–"  # noqa: E731
    print(f"real programs, geomean over programs: aotrun {fmt(g['aotrun_vs_native'])}x native "
          f"({fmt(g['aotrun_vs_native_excl_startup'])}x excl. start-up), {fmt(g['aotrun_vs_qemu'])}x qemu "
          f"(qemu {fmt(g['qemu_vs_native'])}x native); over cases: {fmt(c['aotrun_vs_native'])}x native, "
          f"{fmt(c['aotrun_vs_qemu'])}x qemu; CPU time over programs: aotrun {fmt(g['cpu_aotrun_vs_native'])}x native, "
          f"{fmt(g['cpu_aotrun_vs_qemu'])}x qemu")
    s = summary["startup"]
    print("start-up (hello, glibc static): " + ", ".join(f"{k[:-2]} {v:.3f}s" for k, v in s.items()))


def command_line(args: argparse.Namespace) -> str:
    parts = ["python bench/run.py", f"--suite {args.suite}", f"--reps {args.reps}"]
    if args.only:
        parts.append(f"--only {args.only}")
    if args.coremark_src is not None:
        parts.append("--coremark-src PATH")
    if args.jit_timed:
        parts.append("--jit-timed")
    if args.reuse_images:
        parts.append("--reuse-images")
    return " ".join(parts + ["--write-docs"])


# --------------------------------------------------------------------------
# docs/performance.md

BEGIN, END = "<!-- bench/run.py real begin -->", "<!-- bench/run.py real end -->"


def _x(v: float | None) -> str:
    return f"{v:.2f}×" if v else "–"


def doc_lines(result: dict, kernels: dict | None = None) -> list[str]:
    rows, s = result["rows"], result["summary"]
    jit = s["jit_timed"]
    lb, la = s["load_before"], s["load_after"]
    lines = [BEGIN, "",
             f"Generated by `{s['command']}` on {s['date']} at commit {s['commit']}"
             + (" (with uncommitted changes in the tree)" if s["dirty"] else "")
             + f" ({os.cpu_count()} cores, {os.uname().machine}; load average {lb[0]:.1f} before, "
             f"{la[0]:.1f} after). Medians of {s['reps']} interleaved runs; speed = native time / time "
             "(higher is better); wall times, aotrun's include its start-up; \"excl. start-up\" takes the "
             "hello start-up below out of aotrun's time; \"CPU\" columns compare user + sys time of the "
             "process and its threads instead (steadier than wall time on a loaded machine). Outputs of "
             "qemu-riscv64, aotrun" + (" and the JIT" if jit else "") + " are checked equal, a mismatch stops the "
             "run (speedtest1's and CoreMark's without their own timings); native's are compared too: "
             + (", ".join(r["case"] for r in rows if r.get("native_output_differs")) + " differ(s) from riscv64's"
                if any(r.get("native_output_differs") for r in rows) else "equal in every case") + ".", "",
             "| case | what | native s | qemu s | aotrun s |" + (" jit s |" if jit else "")
             + " aotrun vs native | excl. start-up | qemu vs native | aotrun vs qemu "
             "| CPU: aotrun vs native | CPU: aotrun vs qemu |",
             "|---|---|---|---|---|" + ("---|" if jit else "") + "---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['what']} | {r['native_s']:.3f} | "
                     + (f"{r['qemu_s']:.3f}" if r["qemu_s"] else "–") + f" | {r['aotrun_s']:.3f} |"
                     + (f" {r['jit_s']:.3f} |" if jit else "")
                     + f" {_x(r['aotrun_vs_native'])} | {_x(r['aotrun_vs_native_excl_startup'])} "
                     f"| {_x(r['qemu_vs_native'])} | {_x(r['aotrun_vs_qemu'])} "
                     f"| {_x(r.get('cpu_aotrun_vs_native'))} | {_x(r.get('cpu_aotrun_vs_qemu'))} |")
    lines += ["", "Per program (geomean of its cases):", "",
              "| program | source | aotrun vs native | excl. start-up | qemu vs native | aotrun vs qemu "
              "| CPU: aotrun vs native | CPU: aotrun vs qemu | image build s |", "|---|---|---|---|---|---|---|---|---|"]
    for prog, g in s["by_program"].items():
        rec = s["programs"][prog]
        source = f"{prog} {rec['versions']}" if prog != "coremark" else f"coremark (sources {rec['versions']})"
        lines.append(f"| {prog} | {source} | {_x(g['aotrun_vs_native'])} | {_x(g['aotrun_vs_native_excl_startup'])} "
                     f"| {_x(g['qemu_vs_native'])} | {_x(g['aotrun_vs_qemu'])} | {_x(g.get('cpu_aotrun_vs_native'))} "
                     f"| {_x(g.get('cpu_aotrun_vs_qemu'))} | {rec.get('seconds', '–')} |")
    g = s["geomean_programs"]
    lines += ["", f"**Geometric mean over the programs:** aotrun {g['aotrun_vs_native']:.3f}× native "
              f"({_x(g['aotrun_vs_native_excl_startup'])} with start-up taken out), "
              f"{_x(g['aotrun_vs_qemu'])} qemu-riscv64 (qemu itself {_x(g['qemu_vs_native'])} native)"
              + (f", JIT {_x(g['jit_vs_native'])} native" if jit else "") + "; by CPU time "
              f"{_x(g.get('cpu_aotrun_vs_native'))} native, {_x(g.get('cpu_aotrun_vs_qemu'))} qemu. Over the cases "
              f"{s['geomean_cases']['aotrun_vs_native']:.3f}× native, {_x(s['geomean_cases']['aotrun_vs_qemu'])} qemu."]
    if kernels:
        k = kernels["summary"]
        lines.append(f"The kernel suite in the same run (table above): {k['geomean_aotrun_vs_native']:.3f}× native, "
                     f"{_x(k['geomean_aotrun_vs_qemu'])} qemu.")
    keys = sorted({Path(r["image"]).stem.rsplit("-", 1)[-1] for r in s["programs"].values() if r.get("image")})
    if keys and keys != [s.get("aotc_key")]:
        lines += ["", f"Images translated by aotc key(s) {', '.join(keys)} (`--reuse-images`; the tree's key at "
                  f"the run: {s.get('aotc_key')}; aotrun refuses an image of another CODEGEN_VERSION)."]
    st = s["startup"]
    lines += ["", "Start-up, `hello` (glibc, static) median of "
              f"{max(10, s['reps'])} interleaved runs: native {st['native_s']:.3f} s, "
              + (f"qemu-riscv64 {st['qemu_s']:.3f} s, " if "qemu_s" in st else "")
              + f"aotrun of its image {st['aotrun_s']:.3f} s (CPU: native {st.get('native_cpu_s', 0):.3f} s, "
              + (f"qemu {st['qemu_cpu_s']:.3f} s, " if "qemu_cpu_s" in st else "")
              + f"aotrun {st.get('aotrun_cpu_s', 0):.3f} s).", "", END]
    return lines


def write_docs(result: dict, kernels: dict | None = None, doc: Path = DOC) -> None:
    block = "\n".join(doc_lines(result, kernels))
    text = doc.read_text() if doc.exists() else "# Performance\n"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    elif KERNELS_END in text:
        at = text.index(KERNELS_END) + len(KERNELS_END)
        text = text[:at] + "\n\n## Real programs\n\n" + block + text[at:]
    else:
        text = text.rstrip() + "\n\n## Real programs\n\n" + block + "\n"
    doc.write_text(text)
    print(f"wrote {doc}")
