"""A short run of the syscall-layer fuzzer (fuzz/syscalls.py, fuzz/README.md):
it must set up its sandbox, execute the requested calls and find no crash
or hang; and its outcome classification must count a crash as a crash."""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "fuzz"))

import syscall_sandbox  # noqa: E402
import syscalls  # noqa: E402


def _sandbox_unavailable() -> str | None:
    if shutil.which("unshare") is None:
        return "util-linux unshare is not installed"
    probe = subprocess.run(syscall_sandbox.unshare_prefix() + ["true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot create namespaces here: {probe.stderr.strip()[:200]}"
    return None


def test_syscall_fuzzer_smoke(tmp_path):
    reason = _sandbox_unavailable()
    if reason:
        pytest.skip(f"the fuzzer refuses to run unsandboxed and {reason}")
    calls = 50_000
    proc = subprocess.run([sys.executable, str(ROOT / "fuzz" / "syscalls.py"), "--calls", str(calls),
                           "--seed", "1"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    m = re.search(r"calls executed (\d+), episodes (\d+)", out)
    assert m, out[-4000:]
    assert int(m.group(1)) == calls and int(m.group(2)) > 10
    m = re.search(r"crashes (\d+), hangs (\d+)", out)
    assert m and m.groups() == ("0", "0"), out[-4000:]
    assert "openat" in out and "mmap" in out          # the per-syscall table is there
    assert list(tmp_path.iterdir()) == []              # nothing escaped into the cwd


class _Fds:
    def __contains__(self, gfd: int) -> bool:
        return False


class _Kernel:
    def __init__(self, action):
        self.action = action
        self.fds = _Fds()

    def syscall(self, nr, args):
        return self.action()


def _child(tmp_path):
    opts = syscalls.parse(["--timeout", "0.2", "--work", str(tmp_path)])
    return syscalls.Child(opts, None)


def test_outcomes_are_classified(tmp_path, capsys):
    from runtime.linux.kernel import GuestExit

    c = _child(tmp_path)

    def run(action, name="getpid"):
        return c.call(SimpleNamespace(kernel=_Kernel(action)), 0, 0, name, 1, [0] * 6)

    assert run(lambda: -errno.ENOENT) is True
    assert run(lambda: 5) is True
    assert run(lambda: (_ for _ in ()).throw(GuestExit(3))) is False
    assert run(lambda: {}["missing"]) is False                  # a crash
    assert run(lambda: -(1 << 20)) is False                     # not a register value
    assert run(lambda: __import__("time").sleep(5), "nanosleep") is False   # blocked
    assert run(lambda: __import__("time").sleep(5), "getpid") is False      # a hang
    s = c.stats
    assert s.calls == 7 and s.per_call_err["getpid"] == 1
    assert s.exceptions["GuestExit"] == 1 and s.exceptions["KeyError"] == 1
    assert dict(s.blocked) == {"nanosleep": 1} and dict(s.hangs) == {"getpid": 1}
    kinds = sorted(s.crashes)
    assert len(kinds) == 3 and kinds[0].startswith("BadResult") and kinds[2].startswith("KeyError")
    assert "CRASH KeyError" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []
