"""``aotc build``: translate a guest ELF into a signed host shared-object image."""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from aotc import __version__
from aotc.build_cache import DEFAULT_TIER
from aotc.errors import ElfError, UnsupportedGuestError

ARENA_BITS = 32
SUPPORTED_AOT_ISAS = ("riscv64",)
# Report fields a build cache entry keeps from the build that translated it.
CACHED_REPORT_FIELDS = ("blocks", "instructions", "untranslated", "entry_sources",
                        "host_code_bytes", "guest_code_bytes", "timings", "tier", "tiers")


@dataclass
class BuildReport:
    guest: str
    output: str
    guest_isa: str
    engine: str
    blocks: int = 0
    instructions: int = 0
    untranslated: list[dict] = field(default_factory=list)
    entry_sources: dict[str, int] = field(default_factory=dict)
    image_bytes: int = 0
    host_code_bytes: int = 0
    guest_code_bytes: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    # --tier, and per tier actually used ("opt", "fast"): chunks, functions,
    # blocks and instructions (of regions), CPU seconds of lifting and LLVM,
    # instructions per CPU second (see aotc.backend.compile._tier_stats).
    tier: str = DEFAULT_TIER
    tiers: dict[str, dict] = field(default_factory=dict)
    # "hit" (translation reused from the build cache), "miss" (translated and
    # stored) or "off" (--no-cache, a --dump-dir build, or a KVM image).
    cache: str = "off"
    cache_key: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        how = " (build cache hit)" if self.cache == "hit" else ""
        lines = [f"{self.output}: {self.guest_isa} guest, engine {self.engine}, "
                 f"{self.blocks} blocks / {self.instructions} instructions translated{how} "
                 f"in {self.timings.get('total_seconds', 0):.1f} s"]
        if self.untranslated:
            shown = ", ".join(f"{u['pc']:#x} {u['mnemonic']}" for u in self.untranslated[:5])
            more = f" (+{len(self.untranslated) - 5} more)" if len(self.untranslated) > 5 else ""
            lines.append(f"  {len(self.untranslated)} instructions become SIGILL traps: {shown}{more}")
        if self.tiers and self.cache != "hit":
            lines.append("  tiers: " + "; ".join(
                f"{name} {t['blocks']} blocks / {t['instructions']} instructions in {t['cpu_seconds']:.1f} "
                f"CPU s ({t['instructions_per_second'] or 0} instructions/s)"
                for name, t in sorted(self.tiers.items())))
        return "\n".join(lines)


def load_profile(path: Path) -> list[int]:
    """The missed entry pcs recorded by ``aotrun --record-profile``."""
    return load_profile_pcs(path)[0]


def load_profile_pcs(path: Path) -> tuple[list[int], list[int]]:
    """A run profile's missed entry pcs (``missed_pcs``, recorded by
    ``aotrun --record-profile``) and hot pcs (optional ``hot_pcs``: blocks
    the opt tier compiles whatever static evidence says)."""
    import json

    from aotc.errors import BuildError

    def pcs(values) -> list[int]:
        return [int(pc, 0) if isinstance(pc, str) else int(pc) for pc in values]

    try:
        data = json.loads(path.read_text())
        return pcs(data["missed_pcs"]), pcs(data.get("hot_pcs", []))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise BuildError(f"{path}: not a usable run profile ({e})") from None


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``[start, end)`` ranges sorted, empty ones dropped and overlapping ones
    joined (touching ones are kept apart, as the sections they came from)."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(r for r in ranges if r[0] < r[1]):
        if out and lo < out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _segment_bytes(segments, ranges: list[tuple[int, int]]) -> list[tuple[int, bytes]]:
    """(start, bytes) of each part of ``ranges`` that ``segments`` map from the file."""
    out: list[tuple[int, bytes]] = []
    for lo, hi in ranges:
        for seg in segments:
            a, b = max(lo, seg.vaddr), min(hi, seg.vaddr + len(seg.data))
            if a < b:
                out.append((a, seg.data[a - seg.vaddr:b - seg.vaddr]))
    return out


def _code_and_data(elf) -> tuple[list, list[bytes]]:
    """The guest's code to translate and its data to scan for code pointers.

    Only the PT_LOAD segments define what runs, so every byte comes from
    them.  Section headers are hints: executable sections say which parts of
    the executable segments are code (the rest, .rodata in a text segment,
    is not swept as code), allocated non-executable sections which bytes are
    data.  Without usable hints the executable segments are code and the
    other segments data."""
    from aotc.discover import CodeRange

    exec_segs = [s for s in elf.segments if s.executable]
    hinted = [(s.addr, s.addr + s.size) for s in elf.sections
              if s.alloc and s.in_file and s.executable]
    code = [CodeRange(a, blob) for a, blob in _segment_bytes(exec_segs, _merge(hinted))]
    if code:
        data_hints = [(s.addr, s.addr + s.size) for s in elf.sections
                      if s.alloc and s.in_file and not s.executable]
        data = [blob for _a, blob in _segment_bytes(elf.segments, data_hints)]
        return code, data
    code = [CodeRange(s.vaddr, s.data) for s in exec_segs if s.data]
    return code, [s.data for s in elf.segments if not s.executable and s.data]


def guest_metadata(elf, guest: Path, *, engine: str) -> dict:
    """The metadata every image carries about its guest, whatever the engine."""
    return {
        "format_version": 1,
        "guest_isa": elf.isa,
        "host_isa": platform.machine(),
        "engine": engine,
        "entry": elf.entry,
        "phdr_vaddr": elf.phdr_vaddr,
        "phent": elf.phent,
        "phnum": elf.phnum,
        "input_name": guest.name,
        "input_sha256": elf.sha256,
        "tool_version": __version__,
        "arena_bits": ARENA_BITS,
        # A static-pie is translated at the load base the ELF reader chose;
        # its segments and addresses above are already there.
        **({"load_base": elf.load_base} if elf.pie else {}),
    }


def build_image(guest: Path, output: Path, *, key, jobs: int | None = None, opt_level: int = 2,
                progress: Callable[[str], None] | None = None,
                dump_dir: Path | None = None, profile: Path | None = None,
                use_cache: bool = False, count: bool = False, tier: str = DEFAULT_TIER) -> BuildReport:
    """Translate ``guest`` and write the signed image to ``output``.

    With ``use_cache`` the translation is looked up in (and stored into) the
    build cache (``aotc.build_cache``); a build with ``dump_dir`` never is,
    since it is asked to produce the intermediate files.  ``tier``: which
    LLVM pipeline each unit gets (aotc.backend.compile.TIERS)."""
    from aotc.elf.guest_elf import read_guest_elf

    t0 = time.perf_counter()
    say = progress or (lambda _msg: None)
    elf = read_guest_elf(Path(guest))
    if elf.isa == platform.machine():
        # Same ISA as the host: no translation, the guest runs in a KVM vCPU.
        from aotc.kvm_image import build_kvm_image

        return build_kvm_image(elf, Path(guest), Path(output), key=key, t0=t0)
    if elf.isa not in SUPPORTED_AOT_ISAS:
        raise UnsupportedGuestError(
            f"ahead-of-time translation of {elf.isa} guests is not supported yet "
            f"(supported: {', '.join(SUPPORTED_AOT_ISAS)})")
    from aotc.image import ImageContents, write_image

    # Entry pcs a previous run missed (aotrun --record-profile).
    profile_pcs, hot_pcs = load_profile_pcs(Path(profile)) if profile is not None else (None, [])
    cache_key = None
    if use_cache and dump_dir is None:
        from aotc import build_cache

        cache_key = build_cache.build_key(
            input_sha256=elf.sha256, opt_level=opt_level, profile_pcs=profile_pcs, host_isa=platform.machine(), arena_bits=ARENA_BITS,
            count=count, tier=tier, hot_pcs=hot_pcs or None)
        try:
            cached = build_cache.load(cache_key)
        except build_cache.CorruptEntry as e:
            say(f"build cache entry {cache_key[:16]} is corrupt ({e}); translating again")
            cached = None
        if cached is not None:
            say(f"build cache hit {cache_key[:16]}")
            metadata = {**guest_metadata(elf, Path(guest), engine="aot"), **cached.translation}
            write_image(Path(output), ImageContents(cached.host_object, metadata, tuple(elf.segments)), key)
            kept = {k: cached.report[k] for k in CACHED_REPORT_FIELDS if k in cached.report}
            return BuildReport(
                **{**kept, "guest": str(guest), "output": str(output), "guest_isa": elf.isa,
                   "engine": "aot", "image_bytes": Path(output).stat().st_size,
                   "timings": {"total_seconds": round(time.perf_counter() - t0, 3)},
                   "cache": "hit", "cache_key": cache_key})

    from aotc.backend.abi import CODEGEN_VERSION
    from aotc.backend.compile import compile_blocks, link_shared_object
    from aotc.discover import discover

    code, data = _code_and_data(elf)
    if not code:
        raise ElfError(f"{guest}: no executable code found")
    entries = {"entry": [elf.entry], "symbols": [a for a, _s, _n in elf.symbols]}
    if elf.relocated_pointers:     # a static-pie's code pointers in data
        entries["relocations"] = list(elf.relocated_pointers)
    if profile_pcs is not None:
        entries["profile"] = profile_pcs
    say(f"decoding {sum(len(c.data) for c in code)} bytes of {elf.isa} code")
    t1 = time.perf_counter()
    disc = discover(code, data, entries, progress=say)
    t2 = time.perf_counter()
    say(f"lifting and compiling {len(disc.blocks)} blocks ({disc.instructions} instructions)")
    objects, untranslated, timings = compile_blocks(disc.blocks, opt_level=opt_level, jobs=jobs,
                                                    progress=say, dump_dir=dump_dir, count=count,
                                                    tier=tier, hot_pcs=frozenset(hot_pcs))
    t3 = time.perf_counter()
    host_object = link_shared_object(objects)
    t4 = time.perf_counter()
    untranslated_list = [{"pc": u.pc, "mnemonic": u.mnemonic, "reason": u.reason} for u in untranslated]
    # What the translation decides (the rest of the metadata is the guest's).
    translation = {
        "codegen_version": CODEGEN_VERSION,
        "opt_level": opt_level,
        "tier": tier,
        "counted": count,
        "stats": {
            "blocks": len(disc.blocks),
            "instructions": disc.instructions,
            "entry_sources": disc.sources,
            "untranslated": untranslated_list,
        },
    }
    metadata = {**guest_metadata(elf, Path(guest), engine="aot"), **translation}
    write_image(Path(output), ImageContents(host_object, metadata, tuple(elf.segments)), key)
    t5 = time.perf_counter()
    tiers = timings.pop("tiers", {})
    report = BuildReport(
        guest=str(guest), output=str(output), guest_isa=elf.isa, engine="aot", tier=tier, tiers=tiers,
        blocks=len(disc.blocks), instructions=disc.instructions, untranslated=untranslated_list,
        entry_sources=disc.sources, image_bytes=Path(output).stat().st_size,
        host_code_bytes=len(host_object), guest_code_bytes=sum(len(c.data) for c in code),
        timings={"decode_seconds": round(t2 - t1, 3), **timings,
                 "compile_seconds": round(t3 - t2, 3), "link_seconds": round(t4 - t3, 3),
                 "total_seconds": round(t5 - t0, 3)},
        cache="miss" if cache_key is not None else "off", cache_key=cache_key,
    )
    if cache_key is not None:
        from aotc import build_cache

        stored = build_cache.store(cache_key, build_cache.CachedBuild(
            host_object=host_object, translation=translation,
            report={k: getattr(report, k) for k in CACHED_REPORT_FIELDS}))
        if stored is None:
            say("build cache is not writable; the translation was not stored")
    return report
