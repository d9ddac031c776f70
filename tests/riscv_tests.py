"""riscv-tests' user-level ISA suites on aotc's engines (local; not run in CI).

    python tests/riscv_tests.py --src ~/.cache/aotc/riscv-tests
    python tests/riscv_tests.py --src PATH --suites rv64ui,rv64uzbb --engines jit,interp -j 4
    python tests/riscv_tests.py --src PATH --json report.json      # or --json - for stdout
    python tests/riscv_tests.py --src PATH --rvc                   # assembled as rv64gc (compressed)

riscv-tests (github.com/riscv-software-src/riscv-tests) is in no package
registry CI may use and nothing of it is committed here: ``--src`` is a
checkout the user provides.  Each test of the user-level suites
(``isa/rv64u*``; the ``-p`` environment's tests, one .S each) is assembled
against our own environment header, ``tests/riscv_tests_env/riscv_test.h``
(``_start`` with no privileged setup; pass is ``exit(0)``, a failed case
exits with its number, TESTNUM), and the suite's ``test_macros.h``, then
linked as a static Linux program with one read-write-execute segment
(``ld -N``: fence_i and ziccid store into code).  Each program then runs on

* ``aot``: ``aotc build`` then ``aotrun IMAGE`` (default fallback, the JIT,
  for code the image does not cover; ``--aot-fallback none`` to forbid it),
* ``jit`` and ``interp``: ``aotrun --engine jit|interp ELF``,
* ``qemu``: ``qemu-riscv64 -cpu rv64,<the suite's extensions>`` as a
  cross-check of the build and the environment (a suite whose extension the
  installed qemu lacks is "n/a" there).

Assembler: GNU as (``riscv64-linux-gnu-gcc``) when it accepts the suite's
``-march`` (as upstream's Makefile probes), else LLVM's (``python -m ziglang
cc``; binutils 2.40 has no Zicond); linking is GNU ld either way.

Suites of extensions aotc does not implement (Zfh beyond Zfhmin, Zbc, Zbkb,
Zbkx) run too and are reported as "not implemented": their failures are
expected and do not set the exit status.  Exit status 1 if a test of an
implemented suite fails on an aotc engine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENV_DIR = HERE / "riscv_tests_env"
DEFAULT_WORK = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "aotc" / "riscv-tests-build"
ENGINES = ("aot", "jit", "interp", "qemu")
AOTC_ENGINES = ("aot", "jit", "interp")


@dataclass(frozen=True)
class Suite:
    name: str
    exts: tuple[str, ...] = ()     # beyond rv64g, as in upstream's -march
    implemented: bool = True       # aotc implements the extension the suite tests
    note: str = ""
    fp: bool = True                # -mabi=lp64d (upstream uses lp64 for a few; no FP there anyway)


SUITES: dict[str, Suite] = {s.name: s for s in (
    Suite("rv64ui"), Suite("rv64um"), Suite("rv64ua"), Suite("rv64uf"), Suite("rv64ud"),
    Suite("rv64uc"),
    Suite("rv64uzba", ("zba",)), Suite("rv64uzbb", ("zbb",)), Suite("rv64uzbs", ("zbs",)),
    Suite("rv64uzicond", ("zicond",)),
    Suite("rv64uzfh", ("zfh",), implemented=False,
          note="aotc implements Zfhmin (flh/fsh, fmv.x.h/fmv.h.x, fcvt between half and "
               "single/double), not Zfh's half-precision arithmetic, compares, fclass or "
               "integer conversions"),
    Suite("rv64uziccid", implemented=False,
          note="Ziccid (instruction fetch sees stores without fence.i) is not claimed: "
               "aotc guarantees new code only after fence.i / riscv_flush_icache or a "
               "mapping change"),
    Suite("rv64uzbc", ("zbc",), implemented=False, note="Zbc (carry-less multiply) is not implemented"),
    Suite("rv64uzbkb", ("zbkb",), implemented=False, note="Zbkb is not implemented (only the Zbb subset)"),
    Suite("rv64uzbkx", ("zbkx",), implemented=False, note="Zbkx is not implemented"),
)}

# Upstream suites deliberately not built, with the reason.
OUT_OF_SCOPE = {
    "rv64up": "P (packed SIMD) is a draft extension aotc does not implement; "
              "neither assembler here knows its current encodings",
    "rv64si, rv64mi, rv64mzicbo, rv64ssvnapot, hypervisor*": "supervisor/machine mode, not user-mode Linux",
    "the -v variants": "the virtual-memory environment runs tests under a supervisor kernel",
}

# Tests of the built suites that cannot be user-mode Linux programs: none so
# far (no rv64u* test installs a trap handler; fence_i's code in .data runs
# because the program is one RWX segment).  Kept as the place to say why.
EXCLUDED: dict[str, str] = {}

# qemu-riscv64 -cpu property per extension; both spellings (7.2 has "Zfh", 8+ "zfh").
QEMU_PROPS = {"zba": ("zba",), "zbb": ("zbb",), "zbs": ("zbs",), "zbc": ("zbc",), "zbkb": ("zbkb",),
              "zbkx": ("zbkx",), "zicond": ("zicond", "x-zicond"), "zfh": ("zfh", "Zfh")}


# ---------------------------------------------------------------------------
# the upstream checkout
# ---------------------------------------------------------------------------

def suite_tests(src: Path, suite: str) -> list[str]:
    """The test names of ``suite`` from its Makefrag's ``<suite>_sc_tests``
    list (upstream's authority on what is a test); the .S files if absent."""
    d = src / "isa" / suite
    frag = d / "Makefrag"
    if frag.exists():
        text = frag.read_text().replace("\\\n", " ")
        m = re.search(rf"^{re.escape(suite)}_sc_tests\s*=(.*)$", text, re.M)
        if m:
            return m.group(1).split()
    return sorted(p.stem for p in d.glob("*.S"))


def find_case(src: Path, suite: str, test: str, testnum: int) -> str | None:
    """The source line of case ``testnum`` in the test (or a file it
    includes): the first ``MACRO( testnum, ...`` line."""
    path = src / "isa" / suite / f"{test}.S"
    pat = re.compile(rf"\b[A-Z_0-9]+\s*\(\s*{testnum}\s*,")
    seen: set[Path] = set()
    while path.exists() and path not in seen:
        seen.add(path)
        text = path.read_text(errors="replace")
        for line in text.splitlines():
            if pat.search(line):
                return line.strip()
        inc = re.search(r'#include\s+"(\.\./[^"]+\.S)"', text)
        if not inc:
            break
        path = (path.parent / inc.group(1)).resolve()
    return None


# ---------------------------------------------------------------------------
# toolchain
# ---------------------------------------------------------------------------

@dataclass
class Toolchain:
    gcc: str | None
    ld: str | None
    zig: bool
    qemu: str | None
    qemu_props: dict[str, str] = field(default_factory=dict)   # extension -> accepted property
    _gnu_ok: dict[str, bool] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def detect(cls) -> "Toolchain":
        import importlib.util
        tc = cls(gcc=shutil.which("riscv64-linux-gnu-gcc"), ld=shutil.which("riscv64-linux-gnu-ld"),
                 zig=importlib.util.find_spec("ziglang") is not None, qemu=shutil.which("qemu-riscv64"))
        if tc.qemu:
            tc.qemu_props = probe_qemu(tc.qemu)
        return tc

    def march(self, suite: Suite, rvc: bool) -> str:
        return "rv64g" + ("c" if rvc else "") + "".join(f"_{e}" for e in suite.exts)

    def gnu_accepts(self, march: str) -> bool:
        with self._lock:
            if march not in self._gnu_ok:
                ok = False
                if self.gcc:
                    p = subprocess.run([self.gcc, f"-march={march}", "-mabi=lp64d", "-c", "-x", "assembler",
                                        "/dev/null", "-o", "/dev/null"], capture_output=True)
                    ok = p.returncode == 0
                self._gnu_ok[march] = ok
            return self._gnu_ok[march]

    def assembler_for(self, suite: Suite, rvc: bool) -> str | None:
        if self.gnu_accepts(self.march(suite, rvc)):
            return "gnu"
        return "llvm" if self.zig else None

    def qemu_cpu(self, suite: Suite) -> str | None:
        """``-cpu`` for the suite, or None if this qemu lacks an extension."""
        props = []
        for e in suite.exts:
            if e not in self.qemu_props:
                return None
            props.append(f"{self.qemu_props[e]}=true")
        return ",".join(["rv64", *props])


def probe_qemu(qemu: str) -> dict[str, str]:
    """Which extension properties qemu's rv64 CPU accepts.  The CPU is set up
    before the program is loaded, so any existing file will do (this x86
    interpreter is then refused as a wrong-architecture ELF); a missing file
    would end qemu before the properties are checked."""
    found: dict[str, str] = {}
    for ext, names in QEMU_PROPS.items():
        for name in names:
            p = subprocess.run([qemu, "-cpu", f"rv64,{name}=true", os.path.realpath(sys.executable)],
                               capture_output=True, text=True)
            if "not found" not in p.stderr and "Property" not in p.stderr:
                found[ext] = name
                break
    return found


def build_elf(tc: Toolchain, src: Path, suite: Suite, test: str, out: Path, rvc: bool = False,
              env_dir: Path = ENV_DIR, pic: bool = False) -> tuple[Path | None, str]:
    """Assemble and link one test; (ELF, "") or (None, the error).

    Not position-independent by default, as upstream's bare-metal builds
    (``la`` is ``auipc; addi``); ``pic`` keeps the Linux toolchain's default,
    where ``la`` loads the address from the GOT (``auipc; ld``)."""
    how = tc.assembler_for(suite, rvc)
    if how is None or not tc.ld:
        return None, "no assembler for " + tc.march(suite, rvc) + ("" if tc.ld else " (no riscv64-linux-gnu-ld)")
    out.parent.mkdir(parents=True, exist_ok=True)
    source = src / "isa" / suite.name / f"{test}.S"
    obj = out.with_suffix(".o")
    incs = [f"-I{env_dir}", f"-I{src / 'isa' / 'macros' / 'scalar'}"]
    if how == "gnu":
        cmd = [tc.gcc, f"-march={tc.march(suite, rvc)}", "-mabi=lp64d"]
    else:
        feats = "+m+a+f+d+zicsr+zifencei" + ("+c" if rvc else "") + "".join(f"+{e}" for e in suite.exts)
        cmd = [sys.executable, "-m", "ziglang", "cc", "-target", "riscv64-linux-musl",
               f"-mcpu=generic_rv64{feats}", "-mabi=lp64d"]
    pic_flags = ["-fPIC"] if pic else ["-fno-pic", "-fno-pie"]
    p = subprocess.run([*cmd, *pic_flags, "-c", *incs, str(source), "-o", str(obj)], capture_output=True, text=True)
    if p.returncode != 0:
        return None, f"{how} assembler: " + p.stderr.strip()[-2000:]
    # --no-relax: Linux's default linker script defines __global_pointer$,
    # and relaxation would turn data addresses into gp-relative ones; gp is
    # TESTNUM here (upstream's link.ld has no global pointer either).
    p = subprocess.run([tc.ld, "-static", "-N", "--no-warn-rwx-segments", "--no-relax", "-e", "_start", str(obj),
                        "-o", str(out)], capture_output=True, text=True)
    obj.unlink(missing_ok=True)
    if p.returncode != 0:
        return None, "ld: " + p.stderr.strip()[-2000:]
    return out, ""


# ---------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------

def _tool(name: str, module: str) -> list[str]:
    exe = shutil.which(name)
    return [exe] if exe else [sys.executable, "-m", module]


@dataclass
class Outcome:
    status: str                 # pass | fail | signal | timeout | error | n/a
    testnum: int | None = None  # the failing case (status fail)
    detail: str = ""

    def short(self) -> str:
        if self.status == "fail":
            return f"#{self.testnum}" + (f" ({self.detail})" if self.detail else "")
        return self.status if not self.detail or self.status in ("pass",) else f"{self.status}: {self.detail}"


def classify(rc: int, stderr: str, timed_out: bool, runner: str) -> Outcome:
    if timed_out or (runner == "aotrun" and rc == 124):
        return Outcome("timeout")
    if rc == 0:
        return Outcome("pass")
    last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        return Outcome("signal", detail=f"{name} {last}".strip())
    if runner == "aotrun" and last.startswith("aotrun: error"):
        return Outcome("error", detail=last)
    # a test prints nothing: anything on stderr is the runner's (aotrun, qemu)
    return Outcome("fail", testnum=rc, detail=last)


def run_engine(engine: str, elf: Path, image: Path | None, cpu: str | None, timeout: float,
               aot_fallback: str = "jit") -> Outcome:
    if engine == "qemu":
        if cpu is None:
            return Outcome("n/a", detail="qemu lacks the extension")
        cmd = ["qemu-riscv64", "-cpu", cpu, str(elf)]
        runner = "qemu"
    elif engine == "aot":
        if image is None:
            return Outcome("error", detail="no image")
        cmd = [*_tool("aotrun", "runtime.cli"), f"--timeout={timeout}", f"--fallback={aot_fallback}", str(image)]
        runner = "aotrun"
    else:
        cmd = [*_tool("aotrun", "runtime.cli"), f"--timeout={timeout}", f"--engine={engine}", str(elf)]
        runner = "aotrun"
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 30)
    except subprocess.TimeoutExpired:
        return classify(0, "", True, runner)
    return classify(p.returncode, p.stderr, False, runner)


def aot_build(elf: Path, image: Path, timeout: float = 600) -> tuple[Path | None, str, list[dict]]:
    """``aotc build``; (image, "", untranslated) or (None, error, [])."""
    try:
        p = subprocess.run([*_tool("aotc", "aotc.cli"), "build", "-q", "--json", "-j", "1", str(elf),
                            "-o", str(image)], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "aotc build timed out", []
    if p.returncode != 0:
        return None, (p.stderr.strip().splitlines() or ["aotc build failed"])[-1], []
    try:
        untranslated = json.loads(p.stdout).get("untranslated", [])
    except ValueError:
        untranslated = []
    return image, "", untranslated


@dataclass
class TestResult:
    suite: str
    test: str
    build_error: str = ""
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    aot_untranslated: list[dict] = field(default_factory=list)


def run_test(tc: Toolchain, src: Path, work: Path, suite: Suite, test: str, engines: list[str],
             rvc: bool, timeout: float, aot_fallback: str, pic: bool = False) -> TestResult:
    res = TestResult(suite.name, test)
    elf, err = build_elf(tc, src, suite, test, work / suite.name / test, rvc, pic=pic)
    if elf is None:
        res.build_error = err
        for e in engines:
            res.outcomes[e] = Outcome("error", detail="build failed")
        return res
    image = None
    if "aot" in engines:
        image, err, res.aot_untranslated = aot_build(elf, work / suite.name / f"{test}.so")
        if image is None:
            res.outcomes["aot"] = Outcome("error", detail=f"aotc build: {err}")
    cpu = tc.qemu_cpu(suite) if tc.qemu else None
    for e in engines:
        if e not in res.outcomes:
            res.outcomes[e] = run_engine(e, elf, image, cpu, timeout, aot_fallback)
    return res


# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------

class Progress:
    """A one-line counter on a terminal's stderr (nothing otherwise)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.done, self.enabled, self.t0 = total, 0, enabled, time.monotonic()

    def step(self, label: str) -> None:
        self.done += 1
        if self.enabled:
            width = 30
            filled = width * self.done // max(self.total, 1)
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                             f"{time.monotonic() - self.t0:5.0f}s {label[:40]:<40}")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def summarize(results: list[TestResult], suites: list[Suite], engines: list[str],
              tc: Toolchain, src: Path | None = None) -> dict:
    out: dict = {"engines": engines, "suites": {}, "out_of_scope": OUT_OF_SCOPE, "excluded": EXCLUDED}
    for s in suites:
        rs = [r for r in results if r.suite == s.name]
        entry: dict = {"implemented": s.implemented, "note": s.note, "tests": len(rs),
                       "march": tc.march(s, False), "qemu_cpu": tc.qemu_cpu(s) if tc.qemu else None,
                       "build_errors": {r.test: r.build_error for r in rs if r.build_error}, "engines": {}}
        for e in engines:
            oc = {r.test: r.outcomes[e] for r in rs if e in r.outcomes}
            na = all(o.status == "n/a" for o in oc.values()) and oc
            fails = {}
            for t, o in oc.items():
                if o.status in ("pass", "n/a"):
                    continue
                d = asdict(o)
                if o.status == "fail" and src is not None and o.testnum is not None:
                    d["case"] = find_case(src, s.name, t, o.testnum)
                fails[t] = d
            entry["engines"][e] = {"passed": sum(o.status == "pass" for o in oc.values()),
                                   "total": len(oc), "n/a": bool(na), "failures": fails}
        aot_jit = {r.test: r.aot_untranslated for r in rs if r.aot_untranslated}
        if aot_jit:
            entry["aot_untranslated"] = aot_jit
        out["suites"][s.name] = entry
    return out


def render(summary: dict) -> str:
    engines = summary["engines"]
    lines = []
    head = f"{'suite':<13} {'tests':>5}  " + "  ".join(f"{e:>8}" for e in engines) + "  status"
    lines += [head, "-" * len(head)]
    for name, s in summary["suites"].items():
        cells = []
        for e in engines:
            es = s["engines"][e]
            cell = "n/a" if es["n/a"] else f"{es['passed']}/{es['total']}"
            cells.append(f"{cell:>8}")
        status = "implemented" if s["implemented"] else "not implemented"
        lines.append(f"{name:<13} {s['tests']:>5}  " + "  ".join(cells) + f"  {status}")
    notes = [(n, s) for n, s in summary["suites"].items() if s["note"]]
    if notes:
        lines.append("")
        lines += [f"{n}: {s['note']}" for n, s in notes]
    fail_lines = []
    for name, s in summary["suites"].items():
        by_test: dict[str, list[str]] = {}
        for e in engines:
            for t, f in s["engines"][e]["failures"].items():
                o = Outcome(f["status"], f["testnum"], f["detail"])
                by_test.setdefault(t, []).append(f"{e} {o.short()}")
        for t, errs in s["build_errors"].items():
            fail_lines.append(f"  {name}-{t}: build error: {errs.splitlines()[-1] if errs else ''}")
        for t, items in sorted(by_test.items()):
            if t in s["build_errors"]:
                continue
            case = next((f.get("case") for e in engines for tt, f in s["engines"][e]["failures"].items()
                         if tt == t and f.get("case")), None)
            tag = "" if s["implemented"] else " [not implemented]"
            fail_lines.append(f"  {name}-{t}{tag}: " + "; ".join(items) + (f"\n      case: {case}" if case else ""))
    if fail_lines:
        lines += ["", "failures (#N: the test exited with failing case N, TESTNUM):", *fail_lines]
    return "\n".join(lines)


def regressions(summary: dict) -> int:
    return sum(len(s["engines"][e]["failures"]) for s in summary["suites"].values() if s["implemented"]
               for e in summary["engines"] if e in AOTC_ENGINES)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", type=Path, required=True, help="a riscv-tests checkout (its isa/ directory is used)")
    ap.add_argument("--suites", default="all",
                    help="comma-separated suites, or 'all' (default): " + ",".join(SUITES))
    ap.add_argument("--tests", default="", help="only these tests (comma-separated names, e.g. jalr,fence_i)")
    ap.add_argument("--engines", default=",".join(ENGINES), help=f"comma-separated, of {','.join(ENGINES)}")
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1, help="tests in parallel")
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK, help=f"build directory (default {DEFAULT_WORK})")
    ap.add_argument("--rvc", action="store_true", help="assemble with C (rv64gc): compressed encodings throughout")
    ap.add_argument("--pic", action="store_true",
                    help="position-independent, the Linux toolchain's default: 'la' loads from the GOT")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per run (default 30)")
    ap.add_argument("--aot-fallback", choices=("jit", "interp", "none"), default="jit",
                    help="aotrun --fallback for the aot engine (default jit, aotrun's default)")
    ap.add_argument("--json", metavar="PATH", help="write the report as JSON ('-' for stdout)")
    args = ap.parse_args(argv)

    src = args.src.expanduser().resolve()
    if not (src / "isa").is_dir():
        ap.error(f"{src}: not a riscv-tests checkout (no isa/ directory)")
    names = list(SUITES) if args.suites == "all" else [n.strip() for n in args.suites.split(",") if n.strip()]
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        ap.error(f"unknown suite(s) {', '.join(unknown)}; known: {', '.join(SUITES)}")
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if any(e not in ENGINES for e in engines):
        ap.error(f"--engines: choose from {', '.join(ENGINES)}")
    tc = Toolchain.detect()
    if not tc.gcc and not tc.zig:
        print("error: no riscv64 assembler: install gcc-riscv64-linux-gnu (and/or pip install ziglang)",
              file=sys.stderr)
        return 2
    if "qemu" in engines and not tc.qemu:
        print("note: qemu-riscv64 not found: no qemu column", file=sys.stderr)
        engines.remove("qemu")
    suites = [SUITES[n] for n in names if (src / "isa" / n).is_dir()]
    only = {t.strip() for t in args.tests.split(",") if t.strip()}
    jobs = [(s, t) for s in suites for t in suite_tests(src, s.name)
            if f"{s.name}-{t}" not in EXCLUDED and (not only or t in only)]
    variant = ("rv64gc" if args.rvc else "rv64g") + ("-pic" if args.pic else "")
    work = args.work.expanduser() / variant

    progress = Progress(len(jobs), sys.stderr.isatty())
    results: list[TestResult] = []
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futs = {pool.submit(run_test, tc, src, work, s, t, engines, args.rvc, args.timeout, args.aot_fallback,
                            args.pic):
                (s, t) for s, t in jobs}
        for f in as_completed(futs):
            s, t = futs[f]
            results.append(f.result())
            progress.step(f"{s.name}-{t}")
    progress.close()
    order = {(s.name, t): i for i, (s, t) in enumerate(jobs)}
    results.sort(key=lambda r: order[(r.suite, r.test)])

    summary = summarize(results, suites, engines, tc, src)
    summary["src"] = str(src)
    summary["variant"] = variant
    summary["aot_fallback"] = args.aot_fallback
    summary["toolchain"] = {"gnu": tc.gcc, "llvm (ziglang)": tc.zig, "ld": tc.ld, "qemu": tc.qemu,
                            "qemu_props": tc.qemu_props}
    if args.json == "-":
        print(json.dumps(summary, indent=1))
    else:
        print(render(summary))
        if args.json:
            Path(args.json).write_text(json.dumps(summary, indent=1) + "\n")
    return 1 if regressions(summary) else 0


if __name__ == "__main__":
    sys.exit(main())
