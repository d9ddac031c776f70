"""``aotrun IMAGE [GUEST ARGS...]``: verify a signed image and run the guest."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from aotc import __version__
from aotc.errors import AotcError, GuestFault


@click.command(context_settings={"allow_interspersed_args": False,
                                 "help_option_names": ["-h", "--help"]})
@click.argument("image", type=click.Path(path_type=Path))
@click.argument("guest_args", nargs=-1, type=click.UNPROCESSED)
@click.option("--trust", "trust", multiple=True, type=click.Path(path_type=Path),
              help="Also trust this public key (repeatable).")
@click.option("--strace", is_flag=True, help="Log every guest system call to stderr.")
@click.option("--argv0", default=None, help="The guest's argv[0] (default: the image path).")
@click.option("--clear-env", is_flag=True, help="Start the guest with an empty environment.")
@click.option("-E", "--env", "env_items", multiple=True, metavar="NAME=VALUE",
              help="Set a guest environment variable (repeatable).")
@click.option("--engine", type=click.Choice(["aot", "jit", "interp", "kvm"]), default="aot", show_default=True,
              help="How guest code runs: the image's translated code (aot), code JIT-compiled at "
                   "run time (jit) or the interpreter (interp); jit and interp also run a guest "
                   "ELF directly.")
@click.option("--fallback", type=click.Choice(["jit", "interp", "none"]), default="jit", show_default=True,
              help="What runs guest code the image does not cover (none: stop with an error).")
@click.option("--stats", "show_stats", is_flag=True, help="Print run statistics to stderr at exit.")
@click.option("--stats-json", type=click.Path(path_type=Path), default=None,
              help="Write run statistics as JSON to this file.")
@click.option("--record-profile", type=click.Path(path_type=Path), default=None,
              help="Write the guest pcs that missed the image to this JSON file "
                   "(feed it back with `aotc build --profile`).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Stop the guest after SECONDS (exit status 124).")
@click.option("--max-memory", default=None, metavar="BYTES",
              help="Cap guest memory, e.g. 64M: growth beyond fails with ENOMEM; a guest that "
                   "needs more at start exits with status 125.")
@click.version_option(__version__, prog_name="aotrun")
def main(image: Path, guest_args: tuple[str, ...], trust: tuple[Path, ...], strace: bool,
         argv0: str | None, clear_env: bool, env_items: tuple[str, ...], engine: str = "aot",
         fallback: str = "jit", show_stats: bool = False, stats_json: Path | None = None,
         record_profile: Path | None = None, timeout: float | None = None,
         max_memory: str | None = None) -> None:
    """Run IMAGE, an image made by `aotc build`, passing GUEST_ARGS to the guest.
    With --engine jit or interp, IMAGE may also be a static riscv64 guest ELF."""
    import os

    from runtime.machine import run_image

    env = {} if clear_env else dict(os.environ)
    for item in env_items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="--env")
        env[name] = value
    stats: dict | None = {} if (show_stats or stats_json or record_profile) else None
    try:
        try:
            status = run_image(image, guest_args, trust=trust, env=env, argv0=argv0,
                               strace=sys.stderr if strace else None, engine=engine,
                               fallback=fallback, stats=stats, timeout=timeout,
                               max_memory=_size_option(max_memory))
        finally:
            if stats:
                _report_stats(stats, show_stats, stats_json, record_profile, image)
    except GuestFault as e:
        sys.stdout.flush()
        print(f"aotrun: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except AotcError as e:
        print(f"aotrun: error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    sys.exit(status)


def _size_option(text: str | None) -> int | None:
    from runtime.limits import parse_size

    if text is None:
        return None
    try:
        return parse_size(text)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--max-memory") from None


def _report_stats(stats: dict, show: bool, json_path: Path | None, profile: Path | None,
                  image: Path) -> None:
    import json

    missed = stats.pop("missed_pcs", [])
    if show and "jit_compiles" not in stats:      # another engine's counters (kvm)
        sys.stdout.flush()
        print("aotrun stats: " + ", ".join(f"{k} {v}" for k, v in stats.items()), file=sys.stderr)
    elif show:
        sys.stdout.flush()
        p50, p99 = stats["jit_compile_ms_p50"], stats["jit_compile_ms_p99"]
        jit = (f"jit compiles {stats['jit_compiles']} ({stats['jit_blocks']} blocks, "
               f"p50 {p50} ms, p99 {p99} ms)" if stats["jit_compiles"] else "jit compiles 0")
        print(f"aotrun stats: engine {stats['engine']} (fallback {stats['fallback']}), "
              f"wall {stats['wall_seconds']:.3f} s, native entries {stats['native_entries']}, "
              f"lookup misses {stats['lookup_misses']}, {jit}, "
              f"interp instructions {stats['interp_instructions']}, syscalls {stats['syscalls']}, "
              f"peak RSS {stats['peak_rss_kib']} KiB", file=sys.stderr)
        if stats.get("image_retired"):
            print(f"aotrun stats: image translations retired ({stats['image_retired']}), "
                  f"JIT flushes {stats['jit_flushes']}", file=sys.stderr)
    if json_path is not None:
        Path(json_path).write_text(json.dumps(stats, indent=2) + "\n")
    if profile is not None:
        Path(profile).write_text(json.dumps({"format": "aotc-profile", "version": 1,
                                             "program": str(image),
                                             "missed_pcs": [f"{pc:#x}" for pc in missed]},
                                            indent=2) + "\n")


if __name__ == "__main__":
    main()
