"""Robustness of the syscall layer: what fuzz/syscalls.py checks, as fixed cases.

A guest may signal only itself: kill/tkill/tgkill with another host pid, the
process group, or -1 must never reach a host process (issue 16, sandbox).
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys

import pytest

from runtime.guest_memory import PROT_READ, PROT_WRITE, GuestMemory
from runtime.linux import RISCV64_ABI, X86_64_ABI
from runtime.linux.kernel import GuestKilled, LinuxKernel

NR = RISCV64_ABI.numbers


@pytest.fixture
def k():
    mem = GuestMemory()
    mem.map(0x10000, 0x10000, PROT_READ | PROT_WRITE, "scratch")
    kern = LinuxKernel(mem, RISCV64_ABI, brk_start=0x20_0000, exe_path="/usr/bin/guest-prog")
    yield kern
    kern.close()
    mem.release()


@pytest.fixture
def bystander():
    """A host process in our own process group (as in a shell pipeline)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert os.getpgid(proc.pid) == os.getpgid(0)
    yield proc
    proc.kill()
    proc.wait()


def sc(k, name, *args):
    return k.syscall(NR[name], list(args))


def _alive(proc: subprocess.Popen) -> bool:
    return proc.poll() is None


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGSTOP, 0])
def test_guest_cannot_signal_other_host_processes(k, bystander, sig):
    other = bystander.pid
    assert sc(k, "kill", other, sig) == -errno.ESRCH
    assert sc(k, "kill", os.getppid(), sig) == -errno.ESRCH
    # kill(-1): every process the guest may signal is its descendants: none here
    assert sc(k, "kill", -1 & (2**64 - 1), sig) == -errno.ESRCH
    assert sc(k, "tkill", other, sig) == -errno.ESRCH
    assert sc(k, "tgkill", other, other, sig) == -errno.ESRCH
    assert sc(k, "tgkill", k.pid, other, sig) == -errno.ESRCH
    assert sc(k, "tgkill", other, k.tid, sig) == -errno.ESRCH
    assert _alive(bystander)
    os.kill(bystander.pid, signal.SIGCONT)


@pytest.mark.parametrize("target", ["group0", "own_group"])
def test_process_group_kill_stays_inside_the_guest(k, bystander, target):
    """kill(0, sig) and kill(-pgid, sig) signal the guest alone, never the rest of the group."""
    pid = 0 if target == "group0" else -os.getpgid(0)
    with pytest.raises(GuestKilled) as e:
        sc(k, "kill", pid & (2**64 - 1), signal.SIGTERM)
    assert e.value.signal == signal.SIGTERM
    assert sc(k, "kill", pid & (2**64 - 1), 0) == 0
    assert _alive(bystander)


def test_x86_64_kill_numbers_reach_no_host_process(bystander):
    mem = GuestMemory()
    kern = LinuxKernel(mem, X86_64_ABI, brk_start=0x20_0000, exe_path="/usr/bin/guest-prog")
    try:
        assert kern.syscall(X86_64_ABI.nr("kill"), [bystander.pid, signal.SIGKILL]) == -errno.ESRCH
        assert kern.syscall(X86_64_ABI.nr("tgkill"),
                            [bystander.pid, bystander.pid, signal.SIGKILL]) == -errno.ESRCH
    finally:
        kern.close()
        mem.release()
    assert _alive(bystander)
