"""Long differential-testing campaign over random RV64GC cases (not run in CI).

    python tests/difftest_campaign.py --cases 20000 --seed 1
    python tests/difftest_campaign.py --check-encoder        # encoders vs GNU as
    python tests/difftest_campaign.py --b 1.0 --cases 2000   # with Zba/Zbb/Zbs (qemu 7.2 has them)
    python tests/difftest_campaign.py --zicond 0.5 --engines aot,jit,interp   # Zicond: no reference emulator
    python tests/difftest_campaign.py --zfh 0.5 --cases 1000         # Zfhmin, qemu with -cpu rv64,Zfh=true
    python tests/difftest_campaign.py --zcb 0.5 --zfa 0.5 --mop 0.3 --engines aot,jit,interp

Cases come from ``tests/rv64gen.py`` in batches (one ELF, one AOT image and
one start of each engine per batch).  Every engine must produce the same
state for every case: the AOT image (``aotrun --fallback=none``), the JIT
(``aotrun --engine jit``), the interpreter (``aotrun --engine interp``),
qemu-riscv64 and Unicorn.  Unicorn's riscv model (qemu 5.0 based) lacks
some RV64 F/D behaviour (see docs/difftest.md); where it differs from
qemu-riscv64 and qemu agrees with our engines, the case is counted under
"unicorn model limits", not as a divergence.

A divergent case is minimised (items are dropped while the same engines
still disagree, every candidate of a round in one batch) and printed with
its initial state, instruction words, assembly text and the differing
registers per engine.  Exit status 1 if anything diverged.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import conftest
import rv64gen as g

OURS = ("aot", "jit", "interp")
TREE: Path | None = None       # --tree: run aotc/aotrun from this source tree


def build_native_module(tree: Path) -> None:
    """Compile ``tree``'s own runtime/_native module (a ``git archive`` has
    none), so its aotrun never imports another tree's."""
    if any((tree / "runtime").glob("_native*.so")):
        return
    print(f"building {tree}/runtime/_native", file=sys.stderr)
    subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=tree, check=True,
                   stdout=subprocess.DEVNULL)


def aotc_cmd() -> list[str]:
    return [sys.executable, "-m", "aotc.cli"] if TREE else conftest.aotc_cmd()


def aotrun_cmd() -> list[str]:
    return [sys.executable, "-m", "runtime.cli"] if TREE else conftest.aotrun_cmd()


# Extra qemu-riscv64 options (``--zfh``: ``-cpu rv64,Zfh=true``).
QEMU_ARGS: list[str] = []


def run_engines(prog: g.Program, workdir: Path, engines: tuple[str, ...], build_image=None) -> dict[str, bytes]:
    """Each engine's output bytes (an EngineFailure propagates)."""
    guest = workdir / "guest"
    guest.write_bytes(prog.elf)
    guest.chmod(0o755)
    out: dict[str, bytes] = {}
    for name in engines:
        try:
            out[name] = _run_one(name, prog, guest, workdir, build_image)
        except g.EngineFailure as e:
            raise g.EngineFailure(f"[{name}] {e}") from e
    return out


def _run_one(name: str, prog: g.Program, guest: Path, workdir: Path, build_image) -> bytes:
    if name == "aot":
        if build_image is not None:
            image = build_image(guest)
        else:
            image = workdir / "guest.so"
            g.run_subprocess([*aotc_cmd(), "build", "-q", str(guest), "-o", str(image)], cwd=TREE)
        return g.run_subprocess([*aotrun_cmd(), "--fallback=none", str(image)], cwd=TREE)
    if name in ("jit", "interp"):
        return g.run_subprocess([*aotrun_cmd(), f"--engine={name}", str(guest)], cwd=TREE)
    if name == "qemu":
        return g.run_subprocess([g.qemu_path(), *QEMU_ARGS, str(guest)])
    if name == "unicorn":
        return g.run_unicorn(prog)
    raise ValueError(f"unknown engine {name}")


def compare(prog: g.Program, outputs: dict[str, bytes]) -> dict[int, dict[str, list]]:
    """Per divergent case index: engine -> [(item, reference value, engine value)].

    The reference is qemu when it ran, otherwise the interpreter."""
    ref_name = "qemu" if "qemu" in outputs else "interp"
    states = {k: g.parse_output(v, len(prog.cases)) for k, v in outputs.items()}
    ref = states[ref_name]
    bad: dict[int, dict[str, list]] = {}
    for i in range(len(prog.cases)):
        for name, st in states.items():
            d = ref[i].diff(st[i])
            if d:
                bad.setdefault(i, {})[name] = d
    return bad


def engines_available(want: tuple[str, ...]) -> tuple[str, ...]:
    have = []
    for e in want:
        if e == "qemu" and not g.qemu_path():
            print("note: qemu-riscv64 not installed: skipping it", file=sys.stderr)
            continue
        if e == "unicorn" and not g.unicorn_available():
            print("note: unicorn not installed (pip install unicorn): skipping it", file=sys.stderr)
            continue
        have.append(e)
    return tuple(have)


def signature(divergence: dict[str, list]) -> frozenset[str]:
    return frozenset(divergence)


def minimise(case: g.Case, engines: tuple[str, ...], workdir: Path, sig: frozenset[str]) -> g.Case:
    """Drop items while the same engines still diverge.

    Each round is one batch holding every variant with one chunk of items
    removed (chunks of n/2, n/4, ... 1 items); the smallest variant that
    still diverges the same way wins."""
    cur = case
    while len(cur.items) > 1:
        n = len(cur.items)
        cands, size = [], n // 2 or 1
        while True:
            cands += [replace(cur, items=cur.items[:k] + cur.items[k + size:]) for k in range(0, n, size)]
            if size == 1:
                break
            size //= 2
        prog = g.build_program(cands)
        try:
            outs = run_engines(prog, workdir, engines)
        except g.EngineFailure:
            return cur
        bad = compare(prog, outs)
        keep = [k for k in sorted(bad) if signature(bad[k]) == sig]
        if not keep:
            return cur
        cur = min((cands[k] for k in keep), key=lambda c: len(c.items))
    return cur


def report(case: g.Case, divergence: dict[str, list], ref: str) -> str:
    lines = ["initial state:", case.initial_state(), "body:", case.listing(), f"differences (vs {ref}):"]
    for eng, diffs in sorted(divergence.items()):
        for what, a, b in diffs[:12]:
            lines.append(f"  {eng:8} {what:8} {ref}={a:#018x}  {eng}={b:#018x}")
    return "\n".join(lines)


def unicorn_only(div: dict[str, list]) -> bool:
    return set(div) == {"unicorn"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=2000, help="number of random cases (default 2000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batch", type=int, default=100, help="cases per ELF (default 100)")
    ap.add_argument("--items", type=int, default=40, help="random items per case (default 40)")
    ap.add_argument("--no-rmm", action="store_true",
                    help="leave out RMM (static rounding mode and frm); it is in by default")
    ap.add_argument("--engines", default="aot,jit,interp,qemu,unicorn")
    ap.add_argument("--no-minimise", action="store_true")
    ap.add_argument("--check-encoder", action="store_true", help="check the encoders against GNU as and exit")
    ap.add_argument("--tree", type=Path, default=None,
                    help="run aotc and aotrun from this source tree (e.g. a clean checkout)")
    ap.add_argument("--time-limit", type=float, default=None, help="stop after this many seconds")
    ap.add_argument("--b", type=float, default=0.0, metavar="WEIGHT",
                    help="draw Zba/Zbb/Zbs instructions with this weight (int_ops is 1.0; default 0: none); "
                         "Unicorn-profile batches never hold them")
    ap.add_argument("--zicond", type=float, default=0.0, metavar="WEIGHT",
                    help="draw czero.eqz/czero.nez with this weight; qemu 7.2 and Unicorn predate Zicond, "
                         "so they are left out of such a run")
    for flag, what in (("zfh", "Zfhmin (flh/fsh, fmv.x.h/h.x, conversions); qemu 7.2 checks them with "
                                "-cpu rv64,Zfh=true, Unicorn cannot"),
                       ("zcb", "Zcb compressed forms; no emulator here has them"),
                       ("zfa", "Zfa (fli, fminm/fmaxm, fround, fcvtmod, fleq/fltq); no emulator here has them"),
                       ("mop", "Zimop/Zcmop, Zawrs and Zicbom/Zicboz; no emulator here has them")):
        ap.add_argument(f"--{flag}", type=float, default=0.0, metavar="WEIGHT",
                        help=f"draw {what} with this weight (default 0: none)")
    args = ap.parse_args(argv)

    if args.check_encoder:
        total = bad = 0
        for s in range(args.seed, args.seed + 5):
            cases = g.generate(s, 40, args.items, g.GenOptions(b_ops=0.5, zicond_ops=0.2))
            insns = [i for c in cases for i in c.body()] + g.case_code(0, 1, cases[0])
            mism = g.assemble_check(insns)
            total += len(insns)
            bad += len(mism)
            for i, got in mism[:10]:
                print(f"MISMATCH {i.text}: ours {i.code[::-1].hex()} as {got[::-1].hex()}")
        print(f"encoder check: {total} instructions, {bad} mismatches")
        return 1 if bad else 0

    if args.tree:
        global TREE
        TREE = args.tree.resolve()
        os.environ["PYTHONPATH"] = str(TREE)
        build_native_module(TREE)
    want = tuple(args.engines.split(","))
    no_emulator = [f"--{f}" for f in ("zicond", "zcb", "zfa", "mop") if getattr(args, f)]
    if no_emulator:
        dropped = [e for e in want if e in ("qemu", "unicorn")]
        if dropped:
            print(f"note: {' '.join(no_emulator)}: leaving out {','.join(dropped)} (they lack these)",
                  file=sys.stderr)
        want = tuple(e for e in want if e not in ("qemu", "unicorn"))
    if args.zfh:
        QEMU_ARGS[:] = ["-cpu", "rv64,Zfh=true"]
    engines = engines_available(want)
    b_exclude: tuple[str, ...] = ()
    if args.b and "qemu" in engines:
        b_exclude = g.QEMU72_B_EXCLUDE
        print(f"note: --b with qemu: leaving out {','.join(b_exclude)} (qemu 7.2 bug, see rv64gen.py)",
              file=sys.stderr)
    opts = g.GenOptions(rmm=not args.no_rmm, b_ops=args.b, zicond_ops=args.zicond, b_exclude=b_exclude,
                        zfh_ops=args.zfh, zcb_ops=args.zcb, zfa_ops=args.zfa, mop_ops=args.mop)
    extensions = opts.b_ops or opts.zicond_ops or opts.zfh_ops or opts.zcb_ops or opts.zfa_ops or opts.mop_ops
    start = time.time()
    run = diverged = unicorn_limits = failures = 0
    seen: set[frozenset[str]] = set()
    with tempfile.TemporaryDirectory(prefix="difftest-") as d:
        workdir = Path(d)
        batch_no = 0
        while run < args.cases:
            if args.time_limit and time.time() - start > args.time_limit:
                print(f"time limit reached after {run} cases", file=sys.stderr)
                break
            n = min(args.batch, args.cases - run)
            seed = args.seed * 1_000_003 + batch_no
            # Every other batch leaves out what Unicorn's model lacks, so
            # Unicorn is a full oracle there; elsewhere qemu is.
            unicorn_safe = batch_no % 2 == 1
            cases = g.generate(seed, n, args.items, replace(g.UNICORN_SAFE, rmm=not args.no_rmm) if unicorn_safe else opts)
            prog = g.build_program(cases)
            # Unicorn has no B or Zicond: it runs only the Unicorn-profile batches then.
            batch_engines = engines
            if not unicorn_safe and extensions:
                batch_engines = tuple(e for e in engines if e != "unicorn")
            try:
                outs = run_engines(prog, workdir, batch_engines)
            except g.EngineFailure as e:
                failures += 1
                print(f"batch seed {seed}: engine failure: {e}")
                run += n
                batch_no += 1
                continue
            bad = compare(prog, outs)
            ref = "qemu" if "qemu" in outs else "interp"
            for i, div in sorted(bad.items()):
                if unicorn_only(div) and not unicorn_safe:
                    unicorn_limits += 1
                    continue
                diverged += 1
                sig = signature(div)
                print(f"\n=== divergence: batch seed {seed} ({'unicorn-safe' if unicorn_safe else 'full'} "
                      f"profile) case {i}: engines {sorted(sig)} ===")
                case = cases[i]
                if not args.no_minimise and sig not in seen:
                    case = minimise(case, batch_engines, workdir, sig)
                    p2 = g.build_program([case])
                    div = compare(p2, run_engines(p2, workdir, batch_engines)).get(0, div)
                seen.add(sig)
                print(report(case, div, ref))
            run += n
            batch_no += 1
            print(f"[{time.time() - start:6.0f}s] {run} cases, {diverged} divergent, "
                  f"{unicorn_limits} unicorn-only, {failures} failed batches", file=sys.stderr)
    print(f"\ncases run: {run}; divergences: {diverged}; unicorn-model-only differences: {unicorn_limits}; "
          f"failed batches: {failures}; engines: {','.join(engines)}; seed {args.seed}; "
          f"{time.time() - start:.0f} s")
    return 1 if diverged or failures else 0


if __name__ == "__main__":
    sys.exit(main())
