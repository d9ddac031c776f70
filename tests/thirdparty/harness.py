"""Run a third-party program under qemu-riscv64 (the reference) and under one
of aotc's engines, the same way, and compare what they did.

Both sides get exactly the same argv (argv[0] is the ELF's path, also for
an aot image), environment (nothing but ``env``), working directory and
stdin. Each run is its own session, killed whole (children included) when
it overruns its timeout.

qemu-user hands a guest's execve to the host kernel, which cannot run a
riscv64 ELF without a binfmt_misc entry; so the reference runs in a private
user and mount namespace with binfmt_misc mounted (per user namespace since
Linux 6.7) and riscv64 ELFs sent to the same qemu (as samples/record.py
does for the exec samples). Nothing outside the namespace changes.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

QEMU = "qemu-riscv64"
ENGINES = ["interp", "jit", "aot"]

_BINFMT_SCRIPT = ('{mount} -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && '
                  'printf "%s" "$1" > /proc/sys/fs/binfmt_misc/register && shift && exec "$@"')


@dataclass
class Run:
    argv: list[str]
    returncode: int          # as a shell shows it: 128+signal for a signal death
    stdout: bytes
    stderr: bytes
    seconds: float
    timed_out: bool = False

    def describe(self, limit: int = 3000) -> str:
        err = self.stderr.decode(errors="replace")
        if len(err) > limit:
            err = err[:limit // 3] + "\n[...]\n" + err[-2 * limit // 3:]
        state = f"TIMED OUT after {self.seconds:.0f} s" if self.timed_out else f"exit {self.returncode}"
        return (f"$ {' '.join(self.argv)}\n{state} in {self.seconds:.1f} s\n"
                f"--- stdout ---\n{self.stdout.decode(errors='replace')[:limit]}\n--- stderr ---\n{err}")


def run(argv: list[str], env: dict[str, str], cwd: Path, timeout: float,
        stdin: bytes | Path | None = None) -> Run:
    """Run argv in a new session; on timeout kill the whole session."""
    t0 = time.monotonic()
    stdin_fh = open(stdin, "rb") if isinstance(stdin, Path) else None
    proc = subprocess.Popen(argv, env=env, cwd=cwd, start_new_session=True,
                            stdin=stdin_fh or (subprocess.PIPE if stdin is not None else subprocess.DEVNULL),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=_no_core)
    timed_out = False
    try:
        out, err = proc.communicate(input=stdin if isinstance(stdin, bytes) else None, timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        with _suppress():
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    finally:
        if stdin_fh:
            stdin_fh.close()
        with _suppress():       # nothing of this run outlives it
            os.killpg(proc.pid, signal.SIGKILL)
    rc = proc.returncode
    return Run(argv, 128 - rc if rc < 0 else rc, out, err, time.monotonic() - t0, timed_out)


class _suppress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return exc[0] is not None and issubclass(exc[0], (ProcessLookupError, PermissionError))


def _no_core():
    import resource
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))   # qemu writes qemu_*.core otherwise


def qemu_prefix() -> list[str]:
    """argv prefix that runs a riscv64 program under qemu-user with a private
    binfmt_misc entry (so its execve of riscv64 programs works)."""
    qemu = shutil.which(QEMU)
    magic = b"\x7fELF\x02\x01\x01" + b"\x00" * 9 + b"\x02\x00" + (243).to_bytes(2, "little")
    mask = b"\xff" * 7 + b"\x00" + b"\xff" * 8 + b"\xfe\xff\xff\xff"
    esc = "".join(f"\\x{b:02x}" for b in magic) + ":" + "".join(f"\\x{b:02x}" for b in mask)
    entry = f":aotc-thirdparty-{os.getpid()}:M::{esc}:{qemu}:FP"
    return [shutil.which("unshare") or "unshare", "--user", "--map-root-user", "--mount", "/bin/sh", "-c",
            _BINFMT_SCRIPT.format(mount=shutil.which("mount") or "mount"), "sh", entry, qemu]


@lru_cache(maxsize=None)
def reference_unavailable() -> str | None:
    """Why the qemu reference cannot run here, or None."""
    if shutil.which(QEMU) is None:
        return f"{QEMU} is not installed (apt-get install qemu-user)"
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "unshare/mount missing: cannot give qemu a private binfmt_misc entry"
    proc = subprocess.run(qemu_prefix()[:-1] + ["/bin/true"], capture_output=True, timeout=60)
    if proc.returncode != 0:
        return ("cannot register a private binfmt_misc entry for qemu in a user namespace "
                f"(needs Linux >= 6.7 and unprivileged user namespaces): {proc.stderr.decode().strip()}")
    return None


def aotrun_prefix() -> list[str]:
    exe = shutil.which("aotrun")
    return [exe] if exe else [sys.executable, "-m", "runtime.cli"]


def reference(binary: Path, args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120,
              stdin: bytes | Path | None = None) -> Run:
    return run([*qemu_prefix(), str(binary), *args], env, cwd, timeout, stdin)


def under_engine(engine: str, binary: Path, args: list[str], env: dict[str, str], cwd: Path,
                 image: Path | None = None, timeout: float = 300, stdin: bytes | Path | None = None,
                 extra: list[str] | None = None) -> Run:
    """``aotrun`` on ``binary`` (interp, jit) or on its aot ``image``, argv[0]
    the ELF's path either way; aotrun's own --timeout ends it first (exit 124)."""
    if engine == "aot":
        assert image is not None, "the aot engine runs an image"
        target, opts = image, []
    else:
        target, opts = binary, [f"--engine={engine}"]
    argv = [*aotrun_prefix(), *opts, *(extra or []), "--clear-env", *[f"--env={k}={v}" for k, v in env.items()],
            f"--argv0={binary}", f"--timeout={int(timeout)}", str(target), *args]
    host_env = {k: v for k, v in os.environ.items() if k.startswith("AOTC_") or k in ("PATH", "HOME", "PYTHONPATH")}
    return run(argv, host_env, cwd, timeout + 60, stdin)


def assert_same(ref: Run, got: Run, check_stdout: bool = True) -> None:
    """The engine did what qemu did: same exit status and stdout, and aotrun
    itself did not crash."""
    err = got.stderr.decode(errors="replace")
    why = []
    if got.timed_out or ref.timed_out:
        why.append("timed out")
    if "Traceback (most recent call last)" in err:
        why.append("aotrun raised a Python exception")
    if got.returncode != ref.returncode:
        why.append(f"exit status {got.returncode}, qemu {ref.returncode}")
    if check_stdout and got.stdout != ref.stdout:
        why.append("stdout differs")
    if why:
        raise AssertionError("; ".join(why) + f"\n=== qemu-riscv64 ===\n{ref.describe()}\n"
                             f"=== aotrun ===\n{got.describe()}")
