"""``aotc``: build, verify and inspect signed images."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from aotc import __version__
from aotc.build_cache import DEFAULT_TIER
from aotc.cli_errors import ErrorReportingGroup
from aotc.errors import BuildError, ElfError, ImageVerificationError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}


@click.group(name="aotc", cls=ErrorReportingGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="aotc")
def main() -> None:
    """Ahead-of-time translation of Linux user-mode guests into signed host images."""


def _default_output(guest: Path) -> Path:
    name = guest.name[: -len(".elf")] if guest.name.endswith(".elf") and guest.name != ".elf" else guest.name
    return Path.cwd() / f"{name}.so"


@main.command()
@click.argument("guest", type=click.Path(path_type=Path, dir_okay=True))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Image to write (default: <guest basename>.so in the current directory).")
@click.option("--key", "key_path", type=click.Path(path_type=Path), default=None,
              help="Ed25519 private key (PEM) to sign with (default: your per-user key).")
@click.option("--json", "as_json", is_flag=True, help="Print the build report as JSON.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Parallel compile jobs (default: number of CPUs).")
@click.option("-O", "opt_level", type=click.IntRange(0, 3), default=2, show_default=True,
              help="LLVM optimisation level.")
@click.option("--tier", type=click.Choice(["auto", "fast", "opt"]), default=DEFAULT_TIER, show_default=True,
              help="LLVM pipeline per function: the -O level for everything (opt); or for code with "
                   "evidence of being hot (loops, recursion, small leaf functions, the profile's "
                   "hot_pcs) and a fast unoptimised one for the rest (auto: ~25% less build CPU, "
                   "but interpreters' dispatch loops can be missed); or fast for everything.")
@click.option("-q", "--quiet", is_flag=True, help="Do not print progress to stderr.")
@click.option("--profile", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="Add the entry pcs a run missed (aotrun --record-profile) to discovery.")
@click.option("--no-cache", "no_cache", is_flag=True,
              help="Translate afresh: neither reuse nor store a translation in the build cache.")
@click.option("--count", is_flag=True,
              help="Translated code counts the blocks and instructions it runs (aotrun --stats "
                   "reports them and the image's coverage); costs speed in tight loops.")
def build(guest: Path, output: Path | None, key_path: Path | None, as_json: bool,
          jobs: int | None, opt_level: int, quiet: bool, profile: Path | None = None,
          no_cache: bool = False, count: bool = False, tier: str = DEFAULT_TIER) -> None:
    """Translate GUEST (a static riscv64 Linux ELF) into a signed image.

    Translations are cached by content (see `aotc cache info`): building the
    same guest with the same translator and options again reuses the
    translated code and only signs the new image."""
    from aotc.keys import load_or_create_signing_key, load_private_key

    if not guest.exists():
        raise ElfError(f"{guest}: no such file")
    if guest.is_dir():
        raise ElfError(f"{guest}: is a directory")
    output = output if output is not None else _default_output(guest)
    if output.exists() and output.resolve() == guest.resolve():
        raise BuildError(f"output {output} would overwrite the guest; choose another -o")
    key = load_private_key(key_path) if key_path is not None else load_or_create_signing_key()

    from aotc.build import build_image

    progress = None if quiet else (lambda message: click.echo(message, err=True))
    report = build_image(guest, output, key=key, jobs=jobs, opt_level=opt_level, progress=progress,
                         use_cache=not no_cache, **({"count": True} if count else {}),
                         **({"tier": tier} if tier != DEFAULT_TIER else {}),
                         **({"profile": profile} if profile is not None else {}))
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    else:
        click.echo(report.summary())


@main.group()
def cache() -> None:
    """The build cache: translations reused by `aotc build`.

    It lives in $AOTC_CACHE_DIR, else $XDG_CACHE_HOME/aotc, else ~/.cache/aotc;
    its size is bounded by $AOTC_CACHE_MAX_SIZE (default 1G), least recently
    used entries first out."""


@cache.command("info")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def cache_info(as_json: bool) -> None:
    """Show where the build cache is and how big it is."""
    from aotc import build_cache

    data = build_cache.info()
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    click.echo(f"build cache: {data['directory']}\n"
               f"entries:     {data['entries']}\n"
               f"size:        {data['bytes'] / 2**20:.1f} MiB of at most {data['max_bytes'] / 2**20:.0f} MiB")


@cache.command("clear")
def cache_clear() -> None:
    """Delete every cached translation."""
    from aotc import build_cache

    removed = build_cache.clear()
    click.echo(f"removed {removed} cached translation{'s' if removed != 1 else ''} "
               f"from {build_cache.builds_dir()}")


@main.command()
@click.option("--force", is_flag=True, help="Replace an existing key.")
@click.option("--dir", "key_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Key directory (default: $AOTC_CONFIG_DIR, $XDG_CONFIG_HOME/aotc or ~/.config/aotc).")
def keygen(force: bool, key_dir: Path | None) -> None:
    """Create your Ed25519 signing key."""
    from aotc.keys import default_key_dir, fingerprint, generate_key, private_key_path, public_key_path

    key_dir = key_dir if key_dir is not None else default_key_dir()
    key = generate_key(key_dir, force=force)
    click.echo(f"signing key: {private_key_path(key_dir)}")
    click.echo(f"public key:  {public_key_path(key_dir)}")
    click.echo(f"fingerprint: {fingerprint(key.public_key())}")


_trust_option = click.option(
    "--trust", "trust", multiple=True, type=click.Path(path_type=Path),
    help="Also trust this public key (PEM, raw or hex; repeatable).",
)


@main.command()
@click.argument("image", type=click.Path(path_type=Path))
@_trust_option
def verify(image: Path, trust: tuple[Path, ...]) -> None:
    """Check that IMAGE is intact and signed by a trusted key."""
    from aotc.image import verify_signature
    from aotc.keys import fingerprint, trusted_keys
    from loader import read_image_file

    parsed = read_image_file(image)
    keys = trusted_keys(trust)
    try:
        verify_signature(parsed, keys)
    except ImageVerificationError as error:
        raise ImageVerificationError(f"{image}: {error}") from None
    assert parsed.public_key is not None
    click.echo(f"OK: signed by {fingerprint(parsed.public_key)} (trusted)")


def _flags(flags: int) -> str:
    return ("r" if flags & 4 else "-") + ("w" if flags & 2 else "-") + ("x" if flags & 1 else "-")


def _untranslated(meta: dict) -> list:
    """The untranslated-instruction list of ``meta``'s stats ([] if it has none
    or it is not a list: the metadata of an unverified image can hold anything)."""
    stats = meta.get("stats")
    items = stats.get("untranslated") if isinstance(stats, dict) else None
    return items if isinstance(items, list) else []


def describe(image: Path, parsed: Any, status: Any) -> dict:
    contents = parsed.contents
    meta = contents.metadata
    stats = meta.get("stats", {}) if isinstance(meta.get("stats"), dict) else {}
    untranslated = _untranslated(meta)
    return {
        "path": str(image),
        "size": parsed.size,
        "signature": status.to_dict(),
        "guest_isa": meta.get("guest_isa"),
        "host_isa": meta.get("host_isa"),
        "engine": meta.get("engine"),
        "entry": meta.get("entry"),
        "load_base": meta.get("load_base"),
        "input_sha256": meta.get("input_sha256"),
        "tool_version": meta.get("tool_version"),
        "blocks": stats.get("blocks"),
        "instructions": stats.get("instructions"),
        "untranslated_count": len(untranslated),
        "host_code_bytes": len(contents.host_object),
        "segments": [
            {"vaddr": s.vaddr, "memsz": s.memsz, "filesz": len(s.data), "flags": _flags(s.flags)}
            for s in contents.segments
        ],
        "metadata": meta,
    }


def _hex(value: Any) -> str:
    return f"{value:#x}" if isinstance(value, int) else str(value)


def _untranslated_text(item: Any) -> str:
    if isinstance(item, dict):
        text = _hex(item.get("pc"))
        if item.get("mnemonic"):
            text += f" {item['mnemonic']}"
        return text
    return _hex(item)


@main.command()
@click.argument("image", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@_trust_option
def inspect(image: Path, as_json: bool, trust: tuple[Path, ...]) -> None:
    """Show what IMAGE contains and whether its signature is valid and trusted."""
    from aotc.image import signature_status
    from aotc.keys import trusted_keys
    from loader import read_image_file

    parsed = read_image_file(image)
    status = signature_status(parsed, trusted_keys(trust))
    info = describe(image, parsed, status)
    if as_json:
        click.echo(json.dumps(info, indent=2, sort_keys=True))
        return
    click.echo(inspect_text(image, info, status))


def inspect_text(image: Path, info: dict, status: Any) -> str:
    """What ``aotc inspect`` prints for ``info`` (from ``describe``)."""
    sig = status.to_dict()
    if not sig["signed"]:
        sig_text = "NOT SIGNED"
    elif not sig["valid"]:
        sig_text = "INVALID: image was modified"
    elif sig["trusted"]:
        sig_text = f"valid, signed by {sig['fingerprint']} (trusted)"
    else:
        sig_text = f"valid, signed by {sig['fingerprint']} (NOT trusted)"
    untranslated = _untranslated(info["metadata"])
    shown = ", ".join(_untranslated_text(u) for u in untranslated[:5])
    if len(untranslated) > 5:
        shown += f", ... (+{len(untranslated) - 5} more)"
    lines = [
        f"image:         {image} ({info['size']} bytes)",
        f"signature:     {sig_text}",
        f"guest ISA:     {info['guest_isa']}",
        f"host ISA:      {info['host_isa']}",
        f"engine:        {info['engine']}",
        f"entry:         {_hex(info['entry'])}",
        "load base:     " + (f"{_hex(info['load_base'])} (position-independent, placed at build time)"
                              if info["load_base"] is not None else "none (fixed-address executable)"),
        f"input sha256:  {info['input_sha256']}",
        f"tool version:  {info['tool_version']}",
        f"translated:    {info['blocks']} blocks, {info['instructions']} instructions",
        f"untranslated:  {info['untranslated_count']}" + (f" ({shown})" if shown else ""),
        f"host code:     {info['host_code_bytes']} bytes",
        f"segments:      {len(info['segments'])}",
    ]
    for seg in info["segments"]:
        lines.append(
            f"  {seg['vaddr']:#018x}-{seg['vaddr'] + seg['memsz']:#018x} {seg['flags']} "
            f"memsz {seg['memsz']:#x} filesz {seg['filesz']:#x}"
        )
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
