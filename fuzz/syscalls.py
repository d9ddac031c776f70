"""Fuzz aotc's emulated Linux system call layer (runtime/linux/kernel.py).

    python fuzz/syscalls.py --calls 1000000 [--seed N] [--isa riscv64]

The parent process starts a sandboxed child (fuzz/syscall_sandbox.py: own
PID/mount/net namespaces, everything read-only except a tmpfs work
directory, /dev cut down to null/zero/full/random/urandom) that runs
episodes: a fresh guest (fuzz/syscall_gen.py: mapped code, data, stack, a
work directory of fixtures) and up to ``--episode-len`` random calls into
``LinuxKernel.syscall``.  Outcomes of one call:

* a result: an int in [-4095, 2**64) (anything else is a crash, BadResult);
* ``GuestExit``/``GuestKilled``: the guest ended as it asked; the episode ends;
* any other exception: a crash (first of each kind printed with the call
  that raised it and the episode to replay); the episode ends;
* cut by the per-call alarm (``--timeout``, 2 s): "blocked" if the call is
  one that blocks on Linux too (nanosleep, clock_nanosleep, futex wait with
  a timeout: the generator asks for a real sleep in about 1 of 200
  timespecs), else a hang;
* pipe I/O: read/write/readv/writev/pread64/pwrite64 on a blocking pipe
  would block forever in a one-thread guest that holds both ends, so the
  harness makes the pipe O_NONBLOCK for the duration of that call and counts
  an -EAGAIN as "would block" (what Linux does there is to block);
* the child dying (SIGSEGV, SIGBUS, ...): a crash; the parent starts a new
  child at the next episode.

Every choice comes from ``random.Random(f"{seed}:{isa}:{episode}")``:
``--replay EP --trace`` runs one episode again and prints each call.
Exit status 1 when anything crashed or hung.
"""

from __future__ import annotations

import argparse
import collections
import errno
import faulthandler
import fcntl
import io
import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _p in (str(ROOT), str(ROOT / "fuzz")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

# Calls that may legitimately wait without bound on valid arguments (a
# socket or pipe nobody writes, a signal nobody sends, a child that never
# exits): the per-call alarm cuts them, and that is not a hang.
SLEEPERS = {"nanosleep", "clock_nanosleep", "futex", "poll", "ppoll", "select", "pselect6",
            "epoll_wait", "epoll_pwait", "epoll_pwait2", "accept", "accept4", "connect",
            "recvfrom", "recvmsg", "recvmmsg", "sendto", "sendmsg", "sendmmsg", "splice", "tee",
            "vmsplice", "sendfile", "copy_file_range", "wait4", "waitid", "pause", "rt_sigsuspend",
            "rt_sigtimedwait", "flock", "read", "readv", "pread64", "preadv", "preadv2"}
PIPE_IO = {"read", "write", "readv", "writev", "pread64", "pwrite64"}
MASK64 = (1 << 64) - 1


class CallTimeout(BaseException):
    """Raised by the per-call alarm (a BaseException: no handler may swallow it)."""


class Stats:
    """What a child did; the parent adds up its children's."""

    def __init__(self) -> None:
        self.calls = 0
        self.episodes = 0
        self.per_call: collections.Counter[str] = collections.Counter()
        self.per_call_err: collections.Counter[str] = collections.Counter()
        self.exceptions: collections.Counter[str] = collections.Counter()
        self.crashes: collections.Counter[str] = collections.Counter()
        self.hangs: collections.Counter[str] = collections.Counter()
        self.blocked: collections.Counter[str] = collections.Counter()
        self.would_block = 0

    def to_json(self) -> dict[str, Any]:
        return {k: (dict(v) if isinstance(v, collections.Counter) else v) for k, v in vars(self).items()}

    def add(self, d: dict[str, Any]) -> None:
        for k, v in d.items():
            cur = getattr(self, k)
            if isinstance(cur, collections.Counter):
                cur.update(v)
            else:
                setattr(self, k, cur + v)


# ------------------------------------------------------------------------------
# The child: runs inside the sandbox
# ------------------------------------------------------------------------------

class Child:
    def __init__(self, opts: argparse.Namespace, report: io.TextIOBase | None) -> None:
        from runtime.linux.abi import abi_for_isa

        self.o = opts
        self.abi = abi_for_isa(opts.isa)
        self.work = Path(opts.work)
        self.report = report
        self.stats = Stats()
        self.in_call = False
        self.exe = Path(sys.executable).read_bytes()[:4096]
        signal.signal(signal.SIGALRM, self._alarm)

    def _alarm(self, _sig: int, _frame: object) -> None:
        if self.in_call:
            raise CallTimeout()

    def send(self, msg: dict[str, Any]) -> None:
        if self.report is not None:
            self.report.write(json.dumps(msg) + "\n")
            self.report.flush()

    def reset_work(self) -> None:
        os.chdir(self.work)
        os.umask(0o022)
        for entry in os.listdir(self.work):
            p = self.work / entry
            if stat.S_ISDIR(os.lstat(p).st_mode):
                shutil.rmtree(p, onerror=lambda f, path, e: (os.chmod(path, 0o700), f(path)))
            else:
                p.unlink()

    def run(self, first: int, limit: int, only_one: bool = False) -> None:
        ep = first
        while self.stats.calls < limit:
            self.send({"episode": ep})
            self.episode(ep, limit)
            self.stats.episodes += 1
            self.send({"stats": self.stats.to_json()})
            ep += 1
            if only_one:
                break

    def episode(self, ep: int, limit: int) -> None:
        from syscall_gen import CallGenerator, GuestWorld, populate

        rng = random.Random(f"{self.o.seed}:{self.o.isa}:{ep}")
        self.reset_work()
        populate(self.work, self.exe)
        strace = io.StringIO() if rng.random() < 0.25 else None
        world = GuestWorld(self.abi, self.work, rng, strace)
        gen = CallGenerator(world, rng)
        try:
            for i in range(self.o.episode_len):
                if self.stats.calls >= limit:
                    return
                name, nr, args = gen.next_call()
                if not self.call(world, ep, i, name, nr, args):
                    return
                if strace is not None and strace.tell() > 1 << 20:
                    strace.seek(0)
                    strace.truncate()
        finally:
            world.close()

    def _pipe_nonblock(self, world: Any, name: str, args: list[int]) -> tuple[int, int] | None:
        if name not in PIPE_IO:
            return None
        gfd = args[0] & 0xFFFF_FFFF
        gfd = gfd - (1 << 32) if gfd & 0x8000_0000 else gfd
        if gfd not in world.kernel.fds:
            return None
        hfd = world.kernel.fds.host(gfd)
        mode = os.fstat(hfd).st_mode
        if stat.S_ISREG(mode) or stat.S_ISDIR(mode):   # pipes, sockets, eventfds, timerfds may block
            return None
        flags = fcntl.fcntl(hfd, fcntl.F_GETFL)
        if flags & os.O_NONBLOCK:
            return None
        try:
            fcntl.fcntl(hfd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        except OSError:                  # an O_PATH fd: the call cannot block either
            return None
        return hfd, flags

    def call(self, world: Any, ep: int, i: int, name: str, nr: int, args: list[int]) -> bool:
        """One call; False when the episode is over."""
        from runtime.linux.kernel import GuestExit, GuestKilled

        s = self.stats
        s.calls += 1
        s.per_call[name] += 1
        restore = self._pipe_nonblock(world, name, args)
        try:
            try:
                self.in_call = True
                signal.setitimer(signal.ITIMER_REAL, self.o.timeout)
                ret = world.kernel.syscall(nr, args)
            finally:
                self.in_call = False
                signal.setitimer(signal.ITIMER_REAL, 0)
        except (GuestExit, GuestKilled) as e:
            s.exceptions[type(e).__name__] += 1
            self.trace(name, args, type(e).__name__)
            return False
        except CallTimeout:
            s.exceptions["CallTimeout"] += 1
            (s.blocked if name in SLEEPERS else s.hangs)[name] += 1
            self.trace(name, args, "cut by the alarm")
            if name not in SLEEPERS:
                self.crash("Hang", f"{name} ran for more than {self.o.timeout} s", ep, i, name, args, "")
            return False
        except Exception as e:  # noqa: BLE001 - a crash is what we look for
            s.exceptions[type(e).__name__] += 1
            tb = traceback.extract_tb(e.__traceback__)
            where = f"{Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else "?"
            kind = f"{type(e).__name__} at {where} in {name}: {str(e)[:100]}"
            self.crash(kind, str(e), ep, i, name, args, "".join(traceback.format_exception(e)))
            return False
        finally:
            if restore is not None:
                try:
                    fcntl.fcntl(restore[0], fcntl.F_SETFL, restore[1])
                except OSError:
                    pass
        self.trace(name, args, ret)
        if not isinstance(ret, int) or not -4095 <= ret <= MASK64:
            self.crash(f"BadResult in {name}", repr(ret), ep, i, name, args, "")
            return False
        if ret < 0:
            s.per_call_err[name] += 1
            if ret == -errno.EAGAIN and restore is not None:
                s.would_block += 1
        return True

    def crash(self, kind: str, msg: str, ep: int, i: int, name: str, args: list[int], tb: str) -> None:
        first = kind not in self.stats.crashes
        self.stats.crashes[kind] += 1
        if first:
            call = f"{name}({', '.join(hex(a) for a in args)})"
            print(f"\n[syscalls] CRASH {kind}\n  episode {ep} call {i}: {call}\n  replay: "
                  f"python fuzz/syscalls.py --replay {ep} --seed {self.o.seed} --isa {self.o.isa} "
                  f"--trace\n{tb}", file=sys.stderr, flush=True)

    def trace(self, name: str, args: list[int], result: object) -> None:
        if self.o.trace:
            shown = result if not isinstance(result, int) or result >= 0 \
                else f"{result} {errno.errorcode.get(-result, '?')}"
            print(f"{name}({', '.join(hex(a) for a in args)}) = {shown}", file=sys.stderr)


def child_main(opts: argparse.Namespace) -> int:
    import syscall_sandbox

    syscall_sandbox.enter(Path(opts.work))
    faulthandler.enable()
    report = os.fdopen(opts.report_fd, "w") if opts.report_fd >= 0 else None
    child = Child(opts, report)
    if opts.replay is not None:
        child.run(opts.replay, 1 << 62, only_one=True)
    else:
        child.run(opts.start_episode, opts.calls)
    if report is None:
        print(json.dumps(child.stats.to_json()), file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------
# The parent: starts children, adds up, prints
# ------------------------------------------------------------------------------

def spawn(opts: argparse.Namespace, work: str, first: int, calls: int) -> tuple[subprocess.Popen, int]:
    import syscall_sandbox

    r, w = os.pipe()
    cmd = syscall_sandbox.unshare_prefix() + [
        sys.executable, str(Path(__file__).resolve()), "--child", "--work", work,
        "--report-fd", str(w), "--seed", str(opts.seed), "--isa", opts.isa,
        "--start-episode", str(first), "--calls", str(calls),
        "--episode-len", str(opts.episode_len), "--timeout", str(opts.timeout)]
    if opts.replay is not None:
        cmd += ["--replay", str(opts.replay)]
    if opts.trace:
        cmd.append("--trace")
    proc = subprocess.Popen(cmd, pass_fds=(w,), stdin=subprocess.DEVNULL, cwd=work)
    os.close(w)
    return proc, r


def parent_main(opts: argparse.Namespace) -> int:
    total = Stats()
    deaths: list[str] = []
    t0 = time.monotonic()
    work = tempfile.mkdtemp(prefix="aotc-syscall-fuzz-")
    next_ep = opts.start_episode
    signal.signal(signal.SIGTERM, lambda _s, _f: sys.exit(128 + signal.SIGTERM))
    proc: subprocess.Popen | None = None
    try:
        while total.calls < opts.calls:
            proc, r = spawn(opts, work, next_ep, opts.calls - total.calls)
            last: dict[str, Any] = {}
            ep = -1
            with os.fdopen(r) as lines:
                for line in lines:
                    msg = json.loads(line)
                    if "episode" in msg:
                        ep = msg["episode"]
                    else:
                        last = msg["stats"]
            rc = proc.wait()
            total.add(last)
            if rc != 0 and ep < 0:
                print(f"[syscalls] the child failed before its first episode (status {rc}): "
                      "no sandbox, no fuzzing", file=sys.stderr)
                return 2
            if rc != 0:
                deaths.append(f"child exit status {rc} in episode {ep} (replay: --replay {ep} --trace)")
                what = f"host process death (signal {-rc})" if rc < 0 else f"harness error (status {rc})"
                total.crashes[what] += 1
                print(f"[syscalls] CRASH child died with status {rc} in episode {ep}", file=sys.stderr)
                if opts.replay is not None or len(deaths) > 20:
                    break
            if opts.replay is not None:
                break
            next_ep = ep + 1
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()                 # unshare --kill-child takes the child with it
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)
    elapsed = time.monotonic() - t0
    print(summary(opts, total, elapsed))
    return 1 if total.crashes or total.hangs else 0


def summary(opts: argparse.Namespace, s: Stats, elapsed: float) -> str:
    lines = [f"[syscalls] isa {opts.isa} seed {opts.seed}: calls executed {s.calls}, episodes "
             f"{s.episodes}, elapsed {elapsed:.1f} s ({s.calls / max(elapsed, 1e-9):.0f} calls/s)",
             f"[syscalls] crashes {sum(s.crashes.values())}, hangs {sum(s.hangs.values())}, "
             f"blocked as Linux would {sum(s.blocked.values())} (cut by the {opts.timeout} s alarm: "
             f"{dict(s.blocked)}), would block on a pipe (-EAGAIN) {s.would_block}",
             "[syscalls] exceptions by type: " + (", ".join(f"{k} {v}" for k, v in
                                                          sorted(s.exceptions.items())) or "none")]
    for kind, n in sorted(s.crashes.items()):
        lines.append(f"[syscalls]   crash x{n}: {kind}")
    per = ", ".join(f"{k} {v}/{s.per_call_err.get(k, 0)}" for k, v in sorted(s.per_call.items()))
    lines.append(f"[syscalls] per-syscall calls/errors: {per}")
    return "\n".join(lines)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=100_000, help="system calls to execute")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--isa", default="riscv64", choices=["riscv64", "aarch64", "x86_64"])
    ap.add_argument("--episode-len", type=int, default=300, help="calls per fresh guest")
    ap.add_argument("--timeout", type=float, default=2.0, help="seconds before a call is cut")
    ap.add_argument("--start-episode", type=int, default=0)
    ap.add_argument("--replay", type=int, help="run this one episode only")
    ap.add_argument("--trace", action="store_true", help="print every call and its result")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    ap.add_argument("--report-fd", type=int, default=-1, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    return child_main(opts) if opts.child else parent_main(opts)


if __name__ == "__main__":
    sys.exit(main())
