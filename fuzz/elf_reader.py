#!/usr/bin/env python3
"""Coverage-guided fuzzing of the guest ELF reader and the build front end.

Each input goes through what ``aotc build`` does before it compiles:
``read_guest_elf_bytes`` (headers, segments, sections, symbols), the
code/data split (``aotc.build._code_and_data``) and code discovery on the
first 256 bytes of the first two code ranges (the LLVM compile is far too slow to fuzz).  Any
exception that is not an ``AotcError`` is a crash.

Seeds, written at start-up into the corpus directory: the small samples in
samples/bin (at most 64 KiB each), and crafted tiny riscv64 executables
(tests/elf_craft.py) with and without a symbol table.

    python fuzz/elf_reader.py --runs 1000000
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import runner  # noqa: E402

MAX_LEN = 64 * 1024
DISCOVER_BYTES = 256      # code discovery looks at this much of the first two code ranges


def instrument() -> None:
    import atheris

    with atheris.instrument_imports(include=["aotc"]):
        import aotc.build  # noqa: F401
        import aotc.discover  # noqa: F401
        import aotc.elf.guest_elf  # noqa: F401
        import aotc.elf.sections  # noqa: F401
        import aotc.isa.riscv64.decoder  # noqa: F401


def make_target() -> runner.Target:
    from aotc.build import _code_and_data
    from aotc.discover import CodeRange, discover
    from aotc.elf.guest_elf import read_guest_elf_bytes

    def target(data: bytes) -> None:
        elf = read_guest_elf_bytes(data, "fuzz.elf")
        code, blobs = _code_and_data(elf)
        code = [CodeRange(c.start, c.data[:DISCOVER_BYTES]) for c in code[:2]]
        blobs = [b[:DISCOVER_BYTES] for b in blobs[:2]]
        if elf.isa == "riscv64":
            discover(code, blobs, {"entry": [elf.entry],
                                   "symbols": [a for a, _s, _n in elf.symbols[:64]]})

    return target


def write_seeds(corpus: Path) -> None:
    sys.path.insert(0, str(runner.ROOT / "tests"))
    from elf_craft import exit_program, tiny_elf

    for sample in sorted((runner.ROOT / "samples" / "bin").iterdir()):
        if sample.is_file() and sample.stat().st_size <= MAX_LEN:
            (corpus / f"sample-{sample.name}").write_bytes(sample.read_bytes())
    (corpus / "tiny").write_bytes(tiny_elf(exit_program(0)))
    (corpus / "tiny-symbols").write_bytes(tiny_elf(exit_program(3), symbols=True))
    (corpus / "tiny-decoy").write_bytes(tiny_elf(exit_program(0), decoy=exit_program(5),
                                                 text_from_decoy=True))


if __name__ == "__main__":
    runner.main("elf_reader", make_target, write_seeds, instrument, max_len=MAX_LEN)
