"""Threads and signals of x86_64 guests under the KVM engine (docs/kvm.md,
"Threads" and "Signals"): probe programs built at test time with the host
gcc (static glibc) run natively and under aotrun; stdout and the exit status
must be the same.  tests/data/kvmprobe.c has the x86_64 probes (parallel
threads with mutex/condvar/join, SIGSEGV with siglongjmp and si_addr, a
handler that changes the context, ud2/int3/div-by-zero, SIGALRM in loops
without system calls, sigaltstack, SA_SIGINFO fields, blocked-then-unblocked,
a signal to a spinning thread); tests/data/sigprobe.c the modes shared with
the riscv64 tests (exit from a thread, SIGINT from outside, EINTR)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import aotrun_cmd, run_tool

from runtime.kvm.api import kvm_unavailable_message, kvm_unavailable_reason

DATA = Path(__file__).resolve().parent / "data"

_REASON = kvm_unavailable_reason()
if _REASON is not None:
    print(f"test_kvm_threads_signals: skipping, {kvm_unavailable_message(_REASON)}")
pytestmark = pytest.mark.skipif(_REASON is not None, reason=f"KVM unusable: {_REASON}")


def _gcc(source: Path, out: Path) -> Path:
    cc = shutil.which("gcc")
    if cc is None:
        pytest.skip("no host gcc to build the x86_64 probe")
    proc = subprocess.run([cc, "-static", "-O2", "-pthread", "-o", str(out), str(source)],
                          capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"gcc -static failed (static glibc missing?): {proc.stderr.decode()[-300:]}")
    return out


@pytest.fixture(scope="module")
def kvmprobe(tmp_path_factory, build_image_cached) -> tuple[Path, Path]:
    exe = _gcc(DATA / "kvmprobe.c", tmp_path_factory.mktemp("kvmprobe") / "kvmprobe")
    return exe, build_image_cached(exe)


@pytest.fixture(scope="module")
def sigprobe(tmp_path_factory, build_image_cached) -> Path:
    exe = _gcc(DATA / "sigprobe.c", tmp_path_factory.mktemp("sigprobe") / "sigprobe")
    return build_image_cached(exe)


MODES = ["parallel", "many-threads", "segv", "skip", "traps", "alarm", "altstack", "siginfo",
         "pending", "thread-signal"]


@pytest.mark.parametrize("mode", MODES)
def test_probe_matches_native(kvmprobe, mode):
    exe, image = kvmprobe
    native = run_tool([str(exe), mode], timeout=60)
    assert native.returncode == 0, native.stderr.decode()
    got = run_tool([*aotrun_cmd(), str(image), mode], timeout=120)
    assert got.stdout.decode() == native.stdout.decode(), got.stderr.decode()
    assert got.returncode == native.returncode, got.stderr.decode()


def test_exit_from_a_thread_ends_every_vcpu(sigprobe):
    """exit() in a second thread is exit_group: every vCPU stops, although
    one spins without system calls."""
    t0 = time.monotonic()
    proc = run_tool([*aotrun_cmd(), str(sigprobe), "exit-from-thread"], timeout=60)
    assert proc.returncode == 3, proc.stderr.decode()
    assert time.monotonic() - t0 < 30


def test_interrupted_read_without_sa_restart_fails_with_eintr(sigprobe):
    proc = run_tool([*aotrun_cmd(), str(sigprobe), "read-eintr"], timeout=60)
    assert proc.stdout == b"read=-1 errno=EINTR handler=ran\n", proc.stderr.decode()


def _start(image: Path, mode: str) -> subprocess.Popen:
    proc = subprocess.Popen([*aotrun_cmd(), str(image), mode], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout.readline() == b"ready\n"
    time.sleep(0.2)                       # well into the loop
    return proc


def test_sigint_from_outside_reaches_the_guest_handler(sigprobe):
    proc = _start(sigprobe, "wait-for-sigint")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert out == b"got SIGINT\n", err.decode()
    assert proc.returncode == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_default_action_of_an_outside_signal_kills_by_it(sigprobe, sig):
    proc = _start(sigprobe, "spin")
    proc.send_signal(sig)
    proc.communicate(timeout=30)
    assert proc.returncode == -sig


def test_timeout_stops_every_vcpu(kvmprobe):
    """--timeout while three threads wait or spin without system calls: 124, promptly."""
    _exe, image = kvmprobe
    t0 = time.monotonic()
    proc = run_tool([*aotrun_cmd(), "--timeout", "1", str(image), "spin-threads"], timeout=60)
    assert proc.returncode == 124, proc.stderr.decode()
    assert proc.stdout == b"ready\n"
    assert time.monotonic() - t0 < 20


@pytest.fixture(scope="module")
def goprobe(tmp_path_factory, build_image_cached) -> tuple[Path, Path]:
    go = shutil.which("go")
    if go is None:
        pytest.skip("no Go toolchain (apt-get install golang-go)")
    out = tmp_path_factory.mktemp("goprobe") / "goprobe"
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(out.parent), "CGO_ENABLED": "0",
           "GOOS": "linux", "GOARCH": "amd64", "GOCACHE": str(out.parent / "cache"), "GOFLAGS": "-mod=mod",
           "GO111MODULE": "off"}
    proc = subprocess.run([go, "build", "-o", str(out), str(DATA / "kvm_goprobe.go")],
                          capture_output=True, env=env)
    if proc.returncode != 0:
        pytest.skip(f"go build failed: {proc.stderr.decode()[-300:]}")
    return out, build_image_cached(out)


def test_go_threads_preemption_and_signals(goprobe):
    """A static Go program: goroutines on several vCPUs, asynchronous
    preemption of a loop without calls (SIGURG handler changing the frame's
    context), os/signal, timers; as natively."""
    exe, image = goprobe
    native = run_tool([str(exe)], timeout=60)
    got = run_tool([*aotrun_cmd(), str(image)], timeout=120)
    assert got.stdout.decode() == native.stdout.decode(), got.stderr.decode()
    assert got.returncode == native.returncode == 0
