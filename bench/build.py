#!/usr/bin/env python3
"""Build the benchmark suite: each program for riscv64 and x86_64, same source,
same compiler flags (gcc 12, -O2, static glibc), stripped, no build id.

    python bench/build.py      # writes bench/bin/<name>.{riscv64,x86_64}
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"
OUT = HERE / "bin"
FLAGS = ["-O2", "-static", "-s", "-std=gnu11", "-ffp-contract=off", "-fno-ident",
         f"-ffile-prefix-map={HERE}=.", "-Wl,--build-id=none"]
COMPILERS = {"riscv64": "riscv64-linux-gnu-gcc", "x86_64": "gcc"}


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for flavour, cc in COMPILERS.items():
        if shutil.which(cc) is None:
            sys.exit(f"{cc} not found: apt-get install gcc-riscv64-linux-gnu gcc")
    for src in sorted(SRC.glob("*.c")):
        for flavour, cc in COMPILERS.items():
            out = OUT / f"{src.stem}.{flavour}"
            subprocess.run([cc, *FLAGS, "-o", str(out), str(src), "-lm"], check=True)
            print(f"built {out.relative_to(HERE.parent)} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
