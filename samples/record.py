#!/usr/bin/env python3
"""Record reference outputs of the aotc guest samples.

Runs every binary in samples/bin for every case of its sample
(samples/cases.json) under its reference:

    <name>.riscv64, <name>.riscv64-musl   qemu-riscv64
    hello-dynamic.riscv64                 qemu-riscv64 -L /usr/riscv64-linux-gnu
    <name>.aarch64                        qemu-aarch64
    <name>.x86_64                         natively (x86_64 hosts only)

with exactly the case's environment (env -i semantics), and writes
samples/expected/<case>.<flavour>.json:

    {"binary", "args", "env", "stdout", "exit_code", "recorded_with"}

exit_code is as a shell shows it (128+signal for a killed process). Then
cross-checks that all flavours of a case agree on stdout and exit code and
lists any disagreement.

Usage: python samples/record.py [--check] [--only SAMPLE ...]
    --check   re-run everything and compare with the committed expected
              files instead of writing them (exit status 1 on mismatch)
    --only    record (or check) only these samples; other expected files
              stay as they are

The helpers here (load_cases, binaries, reference_argv, run_case, ...) are
also used by tests/test_samples_reference.py. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
BIN = SAMPLES / "bin"
EXPECTED = SAMPLES / "expected"
CASES = SAMPLES / "cases.json"

FLAVOURS = ["riscv64", "riscv64-musl", "x86_64", "aarch64"]
RISCV64_SYSROOT = "/usr/riscv64-linux-gnu"  # for the dynamic sample only
TIMEOUT = 300
TMPDIR_ARG = "{tmpdir}"


def load_cases() -> dict:
    """{sample: [case, ...]} from samples/cases.json."""
    return json.loads(CASES.read_text())


def split_binary(name: str) -> tuple:
    """'hello.riscv64-musl' -> ('hello', 'riscv64-musl')."""
    sample, _, flavour = name.partition(".")
    return sample, flavour


def binaries() -> list:
    """Sorted names of the sample binaries in samples/bin."""
    if not BIN.is_dir():
        return []
    return sorted(p.name for p in BIN.iterdir()
                  if p.is_file() and split_binary(p.name)[1] in FLAVOURS)


def expected_path(case_name: str, flavour: str) -> Path:
    return EXPECTED / f"{case_name}.{flavour}.json"


def tool_for(flavour: str) -> str | None:
    """The reference runner program for a flavour (None: run natively)."""
    if flavour.startswith("riscv64"):
        return "qemu-riscv64"
    if flavour == "aarch64":
        return "qemu-aarch64"
    if flavour == "x86_64":
        return None
    raise ValueError(f"unknown flavour {flavour!r}")


def reference_missing(flavour: str) -> str | None:
    """Why the reference for flavour cannot run here, or None if it can."""
    tool = tool_for(flavour)
    if tool is None:
        if platform.machine() not in ("x86_64", "AMD64"):
            return f"x86_64 binaries need an x86_64 host (this is {platform.machine()})"
        return None
    if shutil.which(tool) is None:
        return f"{tool} is not installed (apt-get install qemu-user)"
    return None


@lru_cache(maxsize=None)
def tool_version(tool: str | None) -> str:
    if tool is None:
        return f"native {platform.machine()} host, Linux {platform.release()}"
    out = subprocess.run([tool, "--version"], capture_output=True, text=True)
    return out.stdout.splitlines()[0].strip() if out.stdout else tool


def reference_argv(binary: str) -> list:
    """Command (relative to ROOT) that runs samples/bin/<binary> under its
    reference, without the guest arguments."""
    sample, flavour = split_binary(binary)
    rel = f"samples/bin/{binary}"
    tool = tool_for(flavour)
    if tool is None:
        return [rel]
    if sample == "hello-dynamic":
        return [tool, "-L", RISCV64_SYSROOT, rel]
    if sample in EXEC_SAMPLES and binfmt_available(tool):
        return binfmt_wrapper(tool) + [rel]
    return [tool, rel]


# Samples whose programs execve guest programs of their own ISA (forkexec
# runs itself again). qemu-user hands an execve to the host kernel, which
# cannot run a riscv64 or aarch64 ELF without a binfmt_misc entry, so these
# references run in a private user and mount namespace with binfmt_misc
# mounted (per user namespace since Linux 6.7) and that ISA's ELFs sent to
# the same qemu; nothing outside the namespace changes.
EXEC_SAMPLES = {"forkexec"}
_BINFMT_MACHINE = {"qemu-riscv64": 243, "qemu-aarch64": 183}
_BINFMT_SCRIPT = ('mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && '
                  'printf "%s" "$1" > /proc/sys/fs/binfmt_misc/register && shift && exec "$@"')


def binfmt_wrapper(tool: str) -> list:
    """argv prefix that runs ``tool PROGRAM`` with a private binfmt_misc
    entry for the tool's ISA (static ELF executables, ET_EXEC)."""
    qemu = shutil.which(tool) or tool
    magic = b"\x7fELF\x02\x01\x01" + b"\x00" * 9 + b"\x02\x00" + \
        _BINFMT_MACHINE[tool].to_bytes(2, "little")
    mask = b"\xff" * 7 + b"\x00" + b"\xff" * 8 + b"\xfe\xff\xff\xff"
    esc = "".join(f"\\x{b:02x}" for b in magic) + ":" + "".join(f"\\x{b:02x}" for b in mask)
    entry = f":aotc-{tool}:M::{esc}:{qemu}:F"
    return ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", _BINFMT_SCRIPT,
            "sh", entry, qemu]


@lru_cache(maxsize=None)
def binfmt_available(tool: str) -> bool:
    """Whether binfmt_wrapper works here (unshare, user namespaces, Linux >= 6.7)."""
    if shutil.which("unshare") is None or shutil.which(tool) is None:
        return False
    try:
        proc = subprocess.run(binfmt_wrapper(tool)[:-1] + ["true"], capture_output=True,
                              timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0


def _no_core():
    # no core files (qemu-user writes qemu_*.core into the cwd otherwise)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_case(binary: str, case: dict) -> dict:
    """Run one case under the reference; return the expected-file record."""
    args = list(case["args"])
    env = {str(k): str(v) for k, v in case["env"].items()}
    tmp = None
    if case.get("needs_tmpdir"):
        tmp = tempfile.mkdtemp(prefix="aotc-sample-")
    try:
        real_args = [tmp if a == TMPDIR_ARG and tmp else a for a in args]
        argv = reference_argv(binary)
        proc = subprocess.run(argv + real_args, cwd=ROOT, env=env,
                              stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=TIMEOUT, preexec_fn=_no_core)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    rc = proc.returncode
    exit_code = 128 - rc if rc < 0 else rc  # killed by signal -> 128+sig
    env_words = [f"{k}={v}" for k, v in env.items()]
    cmd = shlex.join(["env", "-i"] + env_words + argv + args)
    return {
        "binary": f"samples/bin/{binary}",
        "args": args,
        "env": env,
        "stdout": proc.stdout.decode("utf-8"),
        "exit_code": exit_code,
        "recorded_with": f"{cmd}  [{tool_version(tool_for(split_binary(binary)[1]))}]",
        "_stderr": proc.stderr.decode("utf-8", "replace"),
    }


def all_runs() -> list:
    """[(binary, case)] for every binary in samples/bin and every case of
    its sample."""
    cases = load_cases()
    runs = []
    for b in binaries():
        sample, _ = split_binary(b)
        for case in cases.get(sample, []):
            runs.append((b, case))
    return runs


def write_expected(path: Path, rec: dict) -> None:
    rec = {k: v for k, v in rec.items() if not k.startswith("_")}
    path.write_text(json.dumps(rec, indent=1, ensure_ascii=False) + "\n")


def cross_check(results: dict) -> list:
    """results: {(case, flavour): record}. Returns disagreement messages."""
    by_case = {}
    for (case, flavour), rec in results.items():
        by_case.setdefault(case, {})[flavour] = rec
    problems = []
    for case, recs in sorted(by_case.items()):
        ref_fl = next((f for f in FLAVOURS if f in recs), None)
        ref = recs[ref_fl]
        for fl, rec in sorted(recs.items()):
            if rec["stdout"] != ref["stdout"]:
                a, b = ref["stdout"].splitlines(), rec["stdout"].splitlines()
                first = next((i for i in range(max(len(a), len(b)))
                              if i >= len(a) or i >= len(b) or a[i] != b[i]), 0)
                problems.append(
                    f"{case}: stdout of {fl} differs from {ref_fl} at line "
                    f"{first + 1}: {b[first] if first < len(b) else '<eof>'!r} vs "
                    f"{a[first] if first < len(a) else '<eof>'!r}")
            if rec["exit_code"] != ref["exit_code"]:
                problems.append(f"{case}: exit code of {fl} is {rec['exit_code']}, "
                                f"{ref_fl} has {ref['exit_code']}")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true",
                    help="compare with committed expected files, write nothing")
    ap.add_argument("--only", nargs="+", metavar="SAMPLE",
                    help="record only these samples (keep the other expected files)")
    args = ap.parse_args()

    runs = all_runs()
    if args.only:
        runs = [(b, c) for b, c in runs if split_binary(b)[0] in args.only]
    if not runs:
        print("record.py: no binaries in samples/bin; run samples/build.py first",
              file=sys.stderr)
        return 1
    missing = {fl: why for fl in FLAVOURS if (why := reference_missing(fl))}
    if missing:
        for fl, why in missing.items():
            print(f"record.py: cannot run {fl} reference: {why}", file=sys.stderr)
        return 1
    for tool in ("qemu-riscv64", "qemu-aarch64", None):
        print(f"reference: {tool or 'native'}: {tool_version(tool)}")

    EXPECTED.mkdir(exist_ok=True)
    results, written, mismatches = {}, set(), []
    for binary, case in runs:
        flavour = split_binary(binary)[1]
        rec = run_case(binary, case)
        results[(case["name"], flavour)] = rec
        path = expected_path(case["name"], flavour)
        status = f"exit {rec['exit_code']:>3}, {len(rec['stdout']):>6} chars"
        if args.check:
            old = json.loads(path.read_text()) if path.exists() else None
            ok = (old is not None and old["stdout"] == rec["stdout"]
                  and old["exit_code"] == rec["exit_code"])
            if not ok:
                mismatches.append(path.name)
            print(f"  {'ok  ' if ok else 'DIFF'} {path.name:<40} {status}")
        else:
            write_expected(path, rec)
            written.add(path.name)
            print(f"  {path.name:<40} {status}")

    if not args.check and not args.only:
        for old in EXPECTED.glob("*.json"):
            if old.name not in written:
                print(f"removing stale {old.relative_to(ROOT)}")
                old.unlink()

    problems = cross_check(results)
    if problems:
        print(f"WARNING: {len(problems)} flavour disagreement(s):")
        for p in problems:
            print(f"  - {p}")
    else:
        print(f"cross-check: all flavours agree ({len(results)} runs, "
              f"{len({c for c, _ in results})} cases)")
    if args.check and mismatches:
        print(f"check: {len(mismatches)} mismatch(es): {', '.join(mismatches)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
