"""The shared driver of the atheris harnesses in this directory.

A harness gives a ``target(data)`` that feeds one input to the code under
test and a function that writes its seed corpus.  Any exception that is not
an ``AotcError`` is a crash: the input is saved under ``--crash-dir`` and
the campaign goes on, so one run reports every crash it finds.  The
campaign stops after ``--runs`` executions or ``--max-time`` seconds and
prints what it did; the exit status is 1 if anything crashed.

Options after ``--`` go to libFuzzer unchanged (e.g. ``-- -seed=7``).
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

Target = Callable[[bytes], None]


class Campaign:
    """Counts executions, typed errors and crashes; ends the process when done."""

    def __init__(self, name: str, target: Target, runs: int, max_time: float, crash_dir: Path) -> None:
        self.name = name
        self.target = target
        self.runs = runs
        self.max_time = max_time
        self.crash_dir = crash_dir
        self.executions = 0
        self.crashes: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self.ok = 0
        self.t0 = time.monotonic()

    def one_input(self, data: bytes) -> None:
        from aotc.errors import AotcError

        self.executions += 1
        try:
            self.target(data)
            self.ok += 1
        except AotcError as e:
            self.errors[type(e).__name__] += 1
        except Exception as e:  # noqa: BLE001 - a crash is what the fuzzer looks for
            self._crash(data, e)
        if self.executions >= self.runs or (self.executions % 256 == 0 and self.elapsed() >= self.max_time):
            self.finish()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def _crash(self, data: bytes, error: Exception) -> None:
        kind = f"{type(error).__name__}: {str(error).splitlines()[0][:120] if str(error) else ''}"
        if not self.crashes[kind]:
            import traceback

            self.crash_dir.mkdir(parents=True, exist_ok=True)
            path = self.crash_dir / f"crash-{hashlib.sha1(data).hexdigest()}"
            path.write_bytes(data)
            print(f"\n[{self.name}] CRASH {kind}\n  input saved to {path}", file=sys.stderr)
            traceback.print_exception(error, file=sys.stderr)
        self.crashes[kind] += 1

    def summary(self) -> str:
        crashes = sum(self.crashes.values())
        lines = [f"[{self.name}] executions {self.executions}, crashes {crashes}, "
                 f"accepted {self.ok}, elapsed {self.elapsed():.1f} s "
                 f"({self.executions / max(self.elapsed(), 1e-9):.0f}/s)"]
        lines.append(f"[{self.name}] typed errors: " + (", ".join(
            f"{k} {v}" for k, v in self.errors.most_common()) or "none"))
        for kind, count in self.crashes.most_common():
            lines.append(f"[{self.name}] crash x{count}: {kind}")
        return "\n".join(lines)

    def finish(self) -> None:
        sys.stdout.flush()
        print(self.summary(), file=sys.stderr, flush=True)
        os._exit(1 if self.crashes else 0)     # libFuzzer has no orderly way back


def main(name: str, target_factory: Callable[[], Target], write_seeds: Callable[[Path], None],
         instrument: Callable[[], None], *, max_len: int, argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=f"fuzz/{name}.py", description=f"Fuzz the {name}.")
    parser.add_argument("--runs", type=int, default=100_000, help="executions to run (default 100000)")
    parser.add_argument("--max-time", type=float, default=float("inf"), metavar="SECONDS",
                        help="stop after this many seconds")
    parser.add_argument("--crash-dir", type=Path, default=Path("fuzz-crashes"),
                        help="where crashing inputs are saved (default ./fuzz-crashes)")
    parser.add_argument("--corpus", type=Path, default=None,
                        help="corpus directory to use and grow (default: a temporary one)")
    parser.add_argument("--seed", type=int, default=None, help="libFuzzer random seed")
    parser.add_argument("libfuzzer", nargs="*", help="extra libFuzzer flags, after --")
    args = parser.parse_args(argv)

    import atheris

    instrument()
    target = target_factory()
    corpus = args.corpus or Path(tempfile.mkdtemp(prefix=f"aotc-fuzz-{name}-"))
    corpus.mkdir(parents=True, exist_ok=True)
    write_seeds(corpus)
    campaign = Campaign(name, target, args.runs, args.max_time, args.crash_dir.resolve())
    flags = [sys.argv[0], str(corpus), f"-max_len={max_len}", "-timeout=20", "-rss_limit_mb=4096",
             "-print_final_stats=0", "-close_fd_mask=1"]
    if args.seed is not None:
        flags.append(f"-seed={args.seed}")
    flags += args.libfuzzer
    print(f"[{name}] corpus {corpus}, {len(list(corpus.iterdir()))} seeds; runs {args.runs}",
          file=sys.stderr, flush=True)
    atheris.Setup(flags, campaign.one_input)
    atheris.Fuzz()
    campaign.finish()   # libFuzzer ran out of work (e.g. -runs among the extra flags)
