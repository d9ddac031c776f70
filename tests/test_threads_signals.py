"""Threads and signals end to end (docs/architecture.md, "Threads and
signals"): a probe program (tests/data/sigprobe.c) built for riscv64 at test
time and run under the JIT and the interpreter (the samples `threads` and
`signals` cover every engine, the AOT image included, against recorded
qemu-riscv64 references).  Also: the implemented system-call counts the
capability matrix states are the kernel's."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import aotrun_cmd, run_tool

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
ENGINES = ["jit", "interp"]


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> Path:
    cc = shutil.which("riscv64-linux-gnu-gcc")
    if cc is None:
        pytest.skip("riscv64-linux-gnu-gcc not installed (apt-get install gcc-riscv64-linux-gnu)")
    out = tmp_path_factory.mktemp("sigprobe") / "sigprobe"
    subprocess.run([cc, "-O2", "-static", "-pthread", "-o", str(out), str(DATA / "sigprobe.c")], check=True)
    return out


@pytest.mark.parametrize("engine", ENGINES)
def test_exit_from_a_thread_ends_every_thread(probe, engine):
    """exit() in a second thread is exit_group: the process ends with its
    status although another thread spins without system calls."""
    t0 = time.monotonic()
    proc = run_tool([*aotrun_cmd(), "--engine", engine, str(probe), "exit-from-thread"], timeout=60)
    assert proc.returncode == 3, proc.stderr.decode()
    assert time.monotonic() - t0 < 30


def _start(probe: Path, engine: str, mode: str) -> subprocess.Popen:
    proc = subprocess.Popen([*aotrun_cmd(), "--engine", engine, str(probe), mode],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline() == b"ready\n"
    time.sleep(0.2)                       # well into the loop
    return proc


@pytest.mark.parametrize("engine", ENGINES)
def test_a_child_forked_by_a_second_thread_ends_with_its_own_status(probe, engine):
    """fork/vfork in a thread that is not the first: in the child that thread
    is the only one, so its exit (SYS_exit), exit_group and fatal signal end
    the child with that status, as Linux does (Go's os/exec: vfork in any
    thread, execve fails, SYS_exit(253)); the parent sees it in waitpid."""
    proc = run_tool([*aotrun_cmd(), "--engine", engine, str(probe), "fork-in-thread"], timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode() == (
        "exit: exited 1 status 7 signaled 0 signal -1\n"
        "exit_group: exited 1 status 9 signaled 0 signal -1\n"
        "signal: exited 0 status -1 signaled 1 signal 11\n"
        "vfork-exec-fails: exited 1 status 253 signaled 0 signal -1\n"), proc.stderr.decode()


@pytest.mark.parametrize("engine", ENGINES)
def test_sigint_from_outside_reaches_the_guest_handler(probe, engine):
    proc = _start(probe, engine, "wait-for-sigint")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert out == b"got SIGINT\n", err.decode()
    assert proc.returncode == 0


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_default_action_of_an_outside_signal_kills_by_it(probe, engine, sig):
    proc = _start(probe, engine, "spin")
    proc.send_signal(sig)
    proc.communicate(timeout=30)
    assert proc.returncode == -sig


@pytest.mark.parametrize("engine", ENGINES)
def test_sa_restart_restarts_an_interrupted_read(probe, engine):
    proc = run_tool([*aotrun_cmd(), "--engine", engine, str(probe), "read-restart"], timeout=60)
    assert proc.stdout == b"read=1 errno=- handler=ran\n", proc.stderr.decode()


@pytest.mark.parametrize("engine", ENGINES)
def test_an_interrupted_read_without_sa_restart_fails_with_eintr(probe, engine):
    proc = run_tool([*aotrun_cmd(), "--engine", engine, str(probe), "read-eintr"], timeout=60)
    assert proc.stdout == b"read=-1 errno=EINTR handler=ran\n", proc.stderr.decode()


def test_capability_matrix_states_the_implemented_syscall_counts():
    from runtime.linux import abi
    from runtime.linux.kernel import LinuxKernel  # noqa: F401  (registers every mixin's handlers)
    from runtime.linux.syscall_base import SYSCALLS

    text = (ROOT / "docs" / "capability-matrix.md").read_text()
    for table in (abi.RISCV64_ABI, abi.X86_64_ABI, abi.AARCH64_ABI):
        count = sum(1 for name in table.numbers if name in SYSCALLS)
        m = re.search(rf"{table.name}: (\d+) of (\d+)", text)
        assert m, f"no count for {table.name} in the capability matrix"
        assert (int(m.group(1)), int(m.group(2))) == (count, len(table.numbers)), table.name


@pytest.mark.parametrize("engine", ENGINES)
def test_threads_mapping_memory_at_once_each_get_their_own(engine, tmp_path):
    """mmap/mprotect/munmap from four threads at once (malloc arenas, thread
    stacks): the kernel picks a free range and then maps it, so without one
    lock over the memory-map calls two threads were handed the same range
    and the guest crashed on the other's bytes (SIGSEGV within 3000 rounds)."""
    cc = shutil.which("riscv64-linux-gnu-gcc")
    if cc is None:
        pytest.skip("riscv64-linux-gnu-gcc not installed (apt-get install gcc-riscv64-linux-gnu)")
    prog = tmp_path / "mmaprace"
    subprocess.run([cc, "-O2", "-static", "-pthread", "-o", str(prog), str(DATA / "mmaprace.c")], check=True)
    proc = run_tool([*aotrun_cmd(), "--engine", engine, str(prog), "3000"], timeout=240)
    assert (proc.stdout, proc.returncode) == (b"mmap race: ok\n", 0), proc.stderr.decode()
