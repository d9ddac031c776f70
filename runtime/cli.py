"""``aotrun IMAGE [GUEST ARGS...]``: verify a signed image and run the guest.

The command line is parsed with argparse rather than click (which ``aotc``
uses): importing click costs aotrun 25-50 ms of a start-up that is otherwise
~0.1 s of Python.  As with click's ``allow_interspersed_args=False``, options
go before IMAGE; everything after IMAGE is the guest's, verbatim.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aotc import __version__
from aotc.errors import AotcError, GuestFault
from aotc.isa.riscv64.extensions import DEFAULT_PROFILE as _DEFAULT_ISA_PROFILE
from aotc.isa.riscv64.extensions import PROFILES as _ISA_PROFILES
from runtime.host_exit import die_by_signal

USAGE = "aotrun [OPTIONS] IMAGE [GUEST_ARGS]..."
ISA_PROFILE_ENV = "AOTRUN_ISA_PROFILE"


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not > 0")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="aotrun", usage=USAGE, allow_abbrev=False, add_help=False,
        description="Run IMAGE, an image made by `aotc build`, passing GUEST_ARGS to the guest. "
                    "With --engine jit or interp, IMAGE may also be a static riscv64 guest ELF.")
    p.add_argument("image", metavar="IMAGE", type=Path)
    p.add_argument("--trust", action="append", default=[], type=Path, metavar="PATH",
                   help="Also trust this public key (repeatable).")
    p.add_argument("--strace", action="store_true", help="Log every guest system call to stderr.")
    p.add_argument("--argv0", default=None, metavar="TEXT",
                   help="The guest's argv[0] (default: the image path).")
    p.add_argument("--clear-env", action="store_true", help="Start the guest with an empty environment.")
    p.add_argument("-E", "--env", dest="env_items", action="append", default=[], metavar="NAME=VALUE",
                   help="Set a guest environment variable (repeatable).")
    p.add_argument("--engine", choices=["aot", "jit", "interp", "kvm"], default="aot",
                   help="How guest code runs: the image's translated code (aot), code JIT-compiled at "
                        "run time (jit) or the interpreter (interp); jit and interp also run a guest "
                        "ELF directly.  [default: aot]")
    p.add_argument("--fallback", choices=["jit", "interp", "none"], default="jit",
                   help="What runs guest code the image does not cover (none: stop with an error).  "
                        "[default: jit]")
    p.add_argument("--stats", dest="show_stats", action="store_true",
                   help="Print run statistics to stderr at exit.")
    p.add_argument("--stats-json", type=Path, default=None, metavar="PATH",
                   help="Write run statistics as JSON to this file.")
    p.add_argument("--record-profile", type=Path, default=None, metavar="PATH",
                   help="Write the guest pcs that missed the image to this JSON file "
                        "(feed it back with `aotc build --profile`).")
    p.add_argument("--timeout", type=_positive_seconds, default=None, metavar="SECONDS",
                   help="Stop the guest after SECONDS (exit status 124).")
    p.add_argument("--isa-profile", default=None, metavar="PROFILE",
                   help=f"The riscv64 extensions AT_HWCAP and riscv_hwprobe advertise to the guest: "
                        f"{', '.join(_ISA_PROFILES)} (the translator does not make the others trap).  "
                        f"[default: ${ISA_PROFILE_ENV} or {_DEFAULT_ISA_PROFILE}]")
    p.add_argument("--max-memory", default=None, metavar="BYTES",
                   help="Cap guest memory, e.g. 64M: growth beyond fails with ENOMEM; a guest that "
                        "needs more at start exits with status 125.")
    # Internal: a guest execve hands its argv, envp and fds to the new aotrun
    # through this memfd (runtime/linux/process_calls.py, ExecHandover).
    p.add_argument("--exec-handover", dest="exec_handover", type=int, default=None,
                   help=argparse.SUPPRESS)
    p.add_argument("--version", action="version", version=f"aotrun, version {__version__}",
                   help="Show the version and exit.")
    p.add_argument("-h", "--help", action="help", help="Show this message and exit.")
    return p


def _split_at_image(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[list[str], list[str]]:
    """(aotrun's arguments up to and including IMAGE, the guest's arguments)."""
    takes_value = {opt for opt, action in parser._option_string_actions.items() if action.nargs != 0}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return argv[:i + 2], argv[i + 2:]
        if arg.startswith("-") and arg != "-":
            # "--opt value" and "-E value" take the next word; "--opt=value", "-Evalue" do not.
            i += 2 if arg in takes_value else 1
            continue
        return argv[:i + 1], argv[i + 1:]
    return argv, []


def main(argv: list[str] | None = None) -> None:
    """The one exception boundary of aotrun: an ``AotcError`` (bad input, a
    guest fault) becomes one line on stderr and its exit status; anything
    else is a bug and keeps its traceback."""
    try:
        status = _main(argv)
    except GuestFault as e:
        sys.stdout.flush()
        print(f"aotrun: {e}", file=sys.stderr)
        sys.stderr.flush()
        die_by_signal(e.signal, e.exit_code)
    except AotcError as e:
        sys.stdout.flush()
        print(f"aotrun: error: {' '.join(str(e).split())}", file=sys.stderr)
        sys.exit(e.exit_code)
    sys.exit(status)


def _main(argv: list[str] | None) -> int:
    import os
    import time

    started = time.monotonic()
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    own, guest_args = _split_at_image(parser, argv)
    args = parser.parse_args(own)
    env = {} if args.clear_env else dict(os.environ)
    for item in args.env_items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"argument -E/--env: expected NAME=VALUE, got {item!r}")
        env[name] = value
    max_memory = _size_option(parser, args.max_memory)
    isa_profile = _isa_profile_option(parser, args.isa_profile)
    show_stats, stats_json, record_profile = args.show_stats, args.stats_json, args.record_profile
    stats: dict | None = {} if (show_stats or stats_json or record_profile) else None

    from runtime.linux import process_calls

    argv0 = args.argv0
    if args.exec_handover is not None:
        # A guest execve'd this program: its argv and envp exactly, its fds.
        handover = process_calls.ExecHandover.read_fd(args.exec_handover)
        process_calls.set_pending_handover(handover)
        argv0 = os.fsdecode(handover.argv[0])
        guest_args = [os.fsdecode(a) for a in handover.argv[1:]]
        env = process_calls.EnvPairs(handover.envp)      # type: ignore[assignment]
    process_calls.enable_process_control(process_calls.LaunchOptions(
        engine=args.engine, fallback=args.fallback, trust=tuple(str(t) for t in args.trust),
        deadline=started + args.timeout if args.timeout is not None else None,
        argv_prefix=(sys.executable, "-P", "-m", "runtime.cli"), isa_profile=isa_profile))

    from runtime.machine import run_image

    pid = os.getpid()
    try:
        return run_image(args.image, tuple(guest_args), trust=tuple(args.trust), env=env,
                         argv0=argv0, strace=sys.stderr if args.strace else None,
                         engine=args.engine, fallback=args.fallback, stats=stats,
                         timeout=args.timeout, max_memory=max_memory, isa_profile=isa_profile)
    finally:
        # A process the guest forked reports nothing: the files are the parent's.
        if stats and os.getpid() == pid:
            _report_stats(stats, show_stats, stats_json, record_profile, args.image)


def _size_option(parser: argparse.ArgumentParser, text: str | None) -> int | None:
    from aotc.sizes import parse_size

    if text is None:
        return None
    try:
        return parse_size(text)
    except ValueError as e:
        parser.error(f"argument --max-memory: {e}")


def _isa_profile_option(parser: argparse.ArgumentParser, text: str | None) -> str:
    """--isa-profile, else $AOTRUN_ISA_PROFILE, else max; an unknown name is a usage error."""
    import os

    source = "argument --isa-profile"
    if text is None:
        text = os.environ.get(ISA_PROFILE_ENV) or None
        source = ISA_PROFILE_ENV
    if text is None:
        return _DEFAULT_ISA_PROFILE
    if text not in _ISA_PROFILES:
        parser.error(f"{source}: invalid choice: {text!r} (choose from {', '.join(_ISA_PROFILES)})")
    return text


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
              f"interp instructions {stats['interp_instructions']}, "
              + (f"fp-mode exits {stats['fp_mode_exits']}, " if stats.get("fp_mode_exits") else "")
              + (f"range-check exits {stats['interpret_exits']}, " if stats.get("interpret_exits") else "")
              + f"syscalls {stats['syscalls']}, "
              f"peak RSS {stats['peak_rss_kib']} KiB", file=sys.stderr)
        aot = ("not counted (image built without --count)" if stats["aot_instructions"] is None
               else f"{stats['aot_instructions']} insns / {stats['aot_blocks_executed']} blocks")
        cov = stats["image_coverage"]
        print(f"aotrun stats: executed: aot {aot}; jit {stats['jit_instructions']} insns / "
              f"{stats['jit_blocks_executed']} blocks; interp {stats['interp_instructions']} insns / "
              f"{stats['interp_blocks_executed']} blocks; image coverage "
              f"{'n/a' if cov is None else f'{100 * cov:.2f}%'}", file=sys.stderr)
        if stats.get("image_retired"):
            print(f"aotrun stats: image translations retired ({stats['image_retired']}), "
                  f"JIT flushes {stats['jit_flushes']}", file=sys.stderr)
    if json_path is not None:
        _write_report(json_path, json.dumps(stats, indent=2) + "\n")
    if profile is not None:
        _write_report(profile, json.dumps({"format": "aotc-profile", "version": 1,
                                           "program": str(image),
                                           "missed_pcs": [f"{pc:#x}" for pc in missed]},
                                          indent=2) + "\n")


def _write_report(path: Path, text: str) -> None:
    try:
        Path(path).write_text(text)
    except OSError as e:
        raise AotcError(f"cannot write {path}: {e.strerror or e}") from None


if __name__ == "__main__":
    main()
