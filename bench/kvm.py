"""KVM engine benchmark (not a test): compute natively vs under aotrun's KVM engine,
and the cost of one guest system call round trip.

    python bench/kvm.py [--reps 5] [--syscalls 200000] [--json]

1. samples/bin/compute.x86_64 (default args): native wall time vs
   ``aotrun image`` end to end (median of interleaved reps), plus the time
   spent inside ``KvmMachine.run`` alone (vCPU execution + syscalls, without
   Python start-up, image verification and VM set-up).
2. A hand-assembled static guest doing N ``getppid`` syscalls in a loop, run
   natively and under KVM; µs per syscall = (T(N) - T(1)) / (N - 1).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
COMPUTE = ROOT / "samples" / "bin" / "compute.x86_64"


def make_elf(path: Path, code: bytes, vaddr: int = 0x400000) -> Path:
    entry = vaddr + 64 + 56
    total = 64 + 56 + len(code)
    ehdr = struct.pack("<16sHHIQQQIHHHHHH", b"\x7fELF\x02\x01\x01" + bytes(9), 2, 62, 1, entry,
                       64, 0, 0, 64, 56, 1, 64, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, vaddr, vaddr, total, total, 0x1000)
    path.write_bytes(ehdr + phdr + code)
    path.chmod(0o755)
    return path


def getppid_loop(n: int) -> bytes:
    return (b"\xbb" + struct.pack("<I", n)          # mov ebx, n
            + b"\xb8\x6e\x00\x00\x00"               # loop: mov eax, 110 (getppid)
            + b"\x0f\x05"                           # syscall
            + b"\xff\xcb"                           # dec ebx
            + b"\x75\xf5"                           # jnz loop
            + b"\x31\xff\xb8\x3c\x00\x00\x00\x0f\x05")  # exit(0)


def timed(cmd: list[str], env: dict | None = None) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode()[-300:]}")
    return dt


def in_process_run(image: Path, argv: list[bytes]) -> tuple[float, dict]:
    """Time KvmMachine.run alone (guest stdout to /dev/null)."""
    from aotc.keys import trusted_keys
    from loader import load_image
    from runtime.kvm.vm import KvmMachine

    img = load_image(image, trusted_keys([]))
    saved = os.dup(1)
    null = os.open(os.devnull, os.O_WRONLY)
    sys.stdout.flush()
    os.dup2(null, 1)                       # before the kernel copies fd 1
    m = KvmMachine(img, argv=argv, envp=[], exe_path=str(image))
    try:
        t0 = time.perf_counter()
        m.run()
        dt = time.perf_counter() - t0
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(null)
        info = {"syscalls": m.syscalls, "vcpu_exits": m.exits,
                "syscall_path": "ring-3 entry, direct return" if m._ring3_entry else "ring-0 stub, sysretq"}
        m.close()
        img.close()
    return dt, info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--syscalls", type=int, default=200_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from aotc.build import build_image
    from aotc.keys import load_or_create_signing_key
    from runtime.kvm.api import kvm_unavailable_message, kvm_unavailable_reason

    reason = kvm_unavailable_reason()
    if reason:
        raise SystemExit(kvm_unavailable_message(reason))
    key = load_or_create_signing_key()
    aotrun = [sys.executable, "-m", "runtime.cli", "--clear-env"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with tempfile.TemporaryDirectory(prefix="aotc-kvm-bench-") as tmp:
        tmp = Path(tmp)
        compute_img = tmp / "compute.so"
        build_image(COMPUTE, compute_img, key=key)
        native, kvm = [], []
        for _ in range(args.reps):
            native.append(timed([str(COMPUTE)], env={}))
            kvm.append(timed([*aotrun, str(compute_img)], env=env))
        inner = []
        for _ in range(args.reps):
            dt, info = in_process_run(compute_img, [b"compute"])
            inner.append(dt)
        n_med, k_med, i_med = (statistics.median(x) for x in (native, kvm, inner))

        n = args.syscalls
        loops = {}
        for count in (1, n):
            elf = make_elf(tmp / f"getppid{count}", getppid_loop(count))
            img = tmp / f"getppid{count}.so"
            build_image(elf, img, key=key)
            loops[count] = (elf, img)
        nat = {1: [], n: []}
        kv = {1: [], n: []}
        for _ in range(args.reps):
            for count in (1, n):
                elf, img = loops[count]
                nat[count].append(timed([str(elf)], env={}))
                kv[count].append(timed([*aotrun, str(img)], env=env))
        nat_us = (statistics.median(nat[n]) - statistics.median(nat[1])) / (n - 1) * 1e6
        kvm_us = (statistics.median(kv[n]) - statistics.median(kv[1])) / (n - 1) * 1e6
        _dt, sinfo = in_process_run(loops[n][1], [b"getppid"])

    result = {
        "compute": {"native_s": round(n_med, 3), "kvm_end_to_end_s": round(k_med, 3),
                    "kvm_in_vcpu_s": round(i_med, 3),
                    "ratio_end_to_end": round(n_med / k_med, 3),
                    "ratio_in_vcpu": round(n_med / i_med, 3), "reps": args.reps,
                    "syscalls": info["syscalls"]},
        "getppid": {"n": n, "native_us_per_syscall": round(nat_us, 3),
                    "kvm_us_per_syscall": round(kvm_us, 2), "syscall_path": sinfo["syscall_path"]},
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    c, g = result["compute"], result["getppid"]
    print(f"compute.x86_64 (default args), median of {args.reps} interleaved reps:")
    print(f"  native            {c['native_s']:.3f} s")
    print(f"  aotrun (kvm)      {c['kvm_end_to_end_s']:.3f} s end to end  -> {c['ratio_end_to_end']:.2f}x native speed")
    print(f"  KvmMachine.run    {c['kvm_in_vcpu_s']:.3f} s in the vCPU   -> {c['ratio_in_vcpu']:.2f}x native speed")
    print(f"getppid round trip ({n} calls, syscall path: {g['syscall_path']}):")
    print(f"  native            {g['native_us_per_syscall']:.3f} us/syscall")
    print(f"  aotrun (kvm)      {g['kvm_us_per_syscall']:.2f} us/syscall")


if __name__ == "__main__":
    main()
