#!/usr/bin/env python3
"""Where an aot image spends its time, in guest terms: a ``perf record`` of
``aotrun IMAGE ...`` summed per DSO, per translated block (the image's
``b_<guest pc>`` symbols) and per guest function (the guest ELF's symbols,
via riscv64 addr2line). perf shows the image as ``memfd:aotc-image:...``
and cannot symbolise it itself. Not a test.

    perf record -F 999 -o prof.data -- aotrun IMAGE args...
    python bench/perf_blocks.py prof.data IMAGE GUEST_ELF [--top 40]
"""

from __future__ import annotations

import argparse
import bisect
import collections
import subprocess


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("image")
    ap.add_argument("guest")
    ap.add_argument("--top", type=int, default=40, help="blocks attributed to guest functions")
    args = ap.parse_args()
    out = subprocess.run(["perf", "report", "-i", args.data, "--no-children", "--sort", "dso,sym", "-g", "none"],
                         capture_output=True, text=True, check=True).stdout
    syms = []
    for line in subprocess.run(["nm", "-n", "--defined-only", args.image], capture_output=True, text=True,
                               check=True).stdout.splitlines():
        p = line.split()
        if len(p) == 3:
            syms.append((int(p[0], 16), p[2]))
    addrs = [a for a, _ in syms]
    blocks: collections.Counter = collections.Counter()
    dsos: collections.Counter = collections.Counter()
    for line in out.splitlines():
        if "%" not in line or line.startswith("#"):
            continue
        p = line.split()
        pct = float(p[0].rstrip("%"))
        if "memfd:aotc-image" in line:
            i = bisect.bisect_right(addrs, int(p[-1], 16)) - 1
            blocks[syms[i][1] if i >= 0 else "?"] += pct
            dsos["image"] += pct
        else:
            dsos[p[1]] += pct
    top = [k for k, _ in blocks.most_common(args.top) if k.startswith("b_")]
    names = subprocess.run(["riscv64-linux-gnu-addr2line", "-f", "-e", args.guest, *("0x" + b[2:] for b in top)],
                           capture_output=True, text=True, check=True).stdout.splitlines()[::2]
    funcs: collections.Counter = collections.Counter()
    for b, n in zip(top, names):
        funcs[n] += blocks[b]
    print("by DSO:", ", ".join(f"{k} {v:.1f}%" for k, v in dsos.most_common(6)))
    print(f"image, by guest function (its top {args.top} blocks):",
          ", ".join(f"{k} {v:.1f}%" for k, v in funcs.most_common(10)))
    print("top blocks:", ", ".join(f"{k} {v:.1f}%" for k, v in blocks.most_common(10)))


if __name__ == "__main__":
    main()
