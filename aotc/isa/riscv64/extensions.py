"""Which RISC-V extensions the translator supports, and the named profiles
that limit what a guest is told about them (``aotrun --isa-profile``).

The single source of truth: the runtime derives ``AT_HWCAP`` and the
``riscv_hwprobe`` answers from ``profile_extensions(name)``
(runtime/process.py, runtime/linux/hwprobe.py).  Names are the ISA manual's
(single letters upper case, ``Z…`` capitalised).  A name belongs in
``SUPPORTED`` only when the decoder (decoder.py) accepts every encoding of
the extension and semantics/ gives each one its meaning on every engine.

Plain data and small functions: nothing here imports the runtime.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

__all__ = ["SUPPORTED", "PROFILE_DEFINITIONS", "PROFILES", "DEFAULT_PROFILE", "CACHE_BLOCK_SIZE",
           "implied_closure", "profile_extensions", "single_letters"]

# What the decoder and semantics implement.  Where each lives:
SUPPORTED: Final[frozenset[str]] = frozenset((
    "I",            # rvi.py
    "M",            # rvm.py
    "A",            # rva.py (lr/sc and the AMOs)
    "Zaamo",        # A's AMOs, named on their own (Linux reports them for "a")
    "Zalrsc",       # A's lr/sc
    "F",            # rvf.py
    "D",            # rvf.py
    "C",            # decoder.py: every compressed form expands to its base instruction
    "Zca",          # C without its FP loads/stores
    "Zcd",          # C's c.fld/c.fsd/c.fldsp/c.fsdsp
    "Zicsr",        # zicsr.py (fflags, frm, fcsr and the counters)
    "Zifencei",     # fence.i: a block end, the runtime drops stale translations
    "Zicntr",       # zicsr.py: cycle, time, instret (runtime/guest_clock.py)
    "Zihpm",        # zicsr.py: hpmcounter3..31 read 0 (no event is counted for user mode)
    "Zba",          # rvb.py
    "Zbb",          # rvb.py
    "Zbs",          # rvb.py
    "Zicond",       # rvb.py: czero.eqz, czero.nez
    "Zihintpause",  # pause is a fence encoding (pred=W, succ=0): decodes as fence
    "Zihintntl",    # ntl.* are add x0, x0, x2..x5 and c.ntl.* c.add x0, x2..x5: no-ops
    "Zcb",          # decoder.py: c.lbu..c.mul expand to base/Zbb/Zba instructions
    "Zimop",        # rva23.py: mop.r.N, mop.rr.N write 0
    "Zcmop",        # decoder.py: c.mop.N is addi x0, x0, 0
    "Zawrs",        # rva23.py: wrs.nto, wrs.sto return at once
    "Zicbom",       # rva23.py: cbo.clean/flush/inval are no-ops (coherent host)
    "Zicboz",       # rva23.py: cbo.zero, 64-byte block (CACHE_BLOCK_SIZE)
    "Zicbop",       # prefetch.i/r/w are ori x0 encodings: no-ops
    "Zfa",          # zfa.py (F and D forms)
    "Zfhmin",       # zfh.py
))

# Extensions each one implies (the closure is taken before intersecting).
IMPLIES: Final[dict[str, tuple[str, ...]]] = {
    "A": ("Zaamo", "Zalrsc"),
    "C": ("Zca",),
    "D": ("F",),
    "F": ("Zicsr",),
    "Zcd": ("Zca", "D"),
    "Zcb": ("Zca",),
    "Zcmop": ("Zca", "Zimop"),
    "Zfa": ("F",),
    "Zfhmin": ("F",),
    "Zicntr": ("Zicsr",),
    "Zihpm": ("Zicsr",),
}
# C with D includes the compressed double loads/stores.
_C_WITH_D: Final = ("Zcd",)

_RV64GC: Final = ("I", "M", "A", "F", "D", "C", "Zicsr", "Zifencei")
# The RVA profiles' mandatory user-mode (U64) extensions, as the RISC-V
# profiles specification lists them; what we do not support (or is not an
# instruction-set property we report, such as Ziccif) drops out when
# intersected with SUPPORTED.
_RVA20U64: Final = ("I", "M", "A", "F", "D", "C", "Zicsr", "Zicntr", "Ziccif", "Ziccrse",
                    "Ziccamoa", "Za128rs", "Zicclsm")
_RVA22U64: Final = (*_RVA20U64, "Zihpm", "Zihintpause", "Zba", "Zbb", "Zbs", "Zic64b", "Zicbom",
                    "Zicbop", "Zicboz", "Zfhmin", "Zkt", "Za64rs")
_RVA23U64: Final = (*_RVA22U64, "V", "Zvfhmin", "Zvbb", "Zvkt", "Zihintntl", "Zicond", "Zimop",
                    "Zcmop", "Zcb", "Zfa", "Zawrs", "Supm")

PROFILE_DEFINITIONS: Final[dict[str, tuple[str, ...] | None]] = {
    "rv64gc": _RV64GC,
    "rva20": _RVA20U64,
    "rva22": _RVA22U64,
    "rva23": _RVA23U64,
    "max": None,            # everything SUPPORTED
}
PROFILES: Final[tuple[str, ...]] = tuple(PROFILE_DEFINITIONS)
DEFAULT_PROFILE: Final = "max"

# The cache-block size the Zicbo* instructions act on (Zic64b: 64 bytes),
# reported by riscv_hwprobe's ZICBOZ/ZICBOM/ZICBOP_BLOCK_SIZE keys.
CACHE_BLOCK_SIZE: Final = 64


def implied_closure(names: Iterable[str]) -> frozenset[str]:
    """``names`` with every extension they imply, transitively."""
    out: set[str] = set()
    todo = list(names)
    while todo:
        n = todo.pop()
        if n not in out:
            out.add(n)
            todo.extend(IMPLIES.get(n, ()))
    if "C" in out and "D" in out:
        out.update(_C_WITH_D)
    return frozenset(out)


def profile_extensions(name: str = DEFAULT_PROFILE) -> frozenset[str]:
    """The extensions profile ``name`` advertises: its definition (with what
    that implies) intersected with SUPPORTED.  KeyError for an unknown name."""
    definition = PROFILE_DEFINITIONS[name]
    if definition is None:
        return SUPPORTED
    return implied_closure(definition) & SUPPORTED


def single_letters(extensions: Iterable[str]) -> str:
    """The single-letter extensions among ``extensions``, lower case, in
    alphabetical order ("acdfim" for RV64GC)."""
    return "".join(sorted(e.lower() for e in extensions if len(e) == 1))


# The canonical order of single-letter extensions (the unprivileged ISA's
# "ISA Extension Naming Conventions"); Z extensions sort by the category
# their second letter names, then alphabetically.
_CANONICAL = "imafdqlcbkjtpvh"


def isa_string(extensions: Iterable[str], xlen: int = 64) -> str:
    """The ISA string Linux prints in /proc/cpuinfo's ``isa`` line:
    ``rv64imafdc_zicntr_zicsr_...`` (single letters in canonical order,
    then Z and S extensions, lower case, separated by ``_``)."""
    exts = set(extensions)
    letters = "".join(c for c in _CANONICAL if c.upper() in exts)
    if "I" not in exts:
        letters = "e" + letters
    multi = [e.lower() for e in exts if len(e) > 1]

    def key(name: str) -> tuple[int, int, str]:
        cat = _CANONICAL.find(name[1]) if name[0] == "z" else len(_CANONICAL)
        return ({"z": 0, "s": 1}.get(name[0], 2), cat if cat >= 0 else len(_CANONICAL), name)
    return f"rv{xlen}{letters}" + "".join("_" + n for n in sorted(multi, key=key))
