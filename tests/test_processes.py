"""Guest processes: fork, wait, exec, signals to children, process groups
(docs/architecture.md, "Processes: fork, exec, wait").

The forkexec sample runs on every engine (an image from ``aotc build``, the
JIT and the interpreter straight from the ELF) and must print its recorded
reference; focused checks cover ``#!`` scripts, the refusal of host
programs, fds across exec and how a guest's signal death ends aotrun.
Every guest runs in an aotrun subprocess: nothing here forks pytest.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess

import pytest
from conftest import BIN, EXPECTED, aotrun_cmd, run_recorded_case, run_tool

GLIBC = BIN / "forkexec.riscv64"
MUSL = BIN / "forkexec.riscv64-musl"


def _rec(flavour: str) -> dict:
    return json.loads((EXPECTED / f"forkexec.{flavour}.json").read_text())


@pytest.mark.parametrize("engine", ["aot", "jit", "interp"])
def test_forkexec_matches_reference(engine, tmp_path, build_image_cached):
    rec = _rec("riscv64")
    if engine == "aot":
        target, extra = build_image_cached(GLIBC), []
    else:
        target, extra = GLIBC, [f"--engine={engine}"]
    proc = run_recorded_case(target, rec, tmp_path, extra, timeout=600)
    err = proc.stderr.decode(errors="replace")
    assert "Traceback" not in err, err
    assert proc.stdout.decode() == rec["stdout"], err
    assert proc.returncode == rec["exit_code"], err
    # The child that stored to NULL reported its fault as aotrun does.
    assert err.count("guest SIGSEGV at pc") == 1, err


def test_exec_under_aot_uses_the_build_cache(tmp_path):
    """An exec'd guest ELF runs from an image made from the build cache when
    `aotc build` translated it before (else the JIT runs the ELF)."""
    from conftest import aotc_cmd

    image = tmp_path / "m.so"
    proc = run_tool([*aotc_cmd(), "build", "-q", str(MUSL), "-o", str(image)], timeout=600)
    assert proc.returncode == 0, proc.stderr
    proc = run_tool([*aotrun_cmd(), "--strace", "--clear-env", str(image), "run", str(MUSL), "showargs", "q"],
                    timeout=300)
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, err
    assert proc.stdout.decode().splitlines()[-1] == 'showargs: argv[2] = "q"'
    line = next(x for x in err.splitlines() if x.startswith("[aotc] execve:"))
    assert "--engine=aot" in line and "/exec-images/" in line, line


def _interp(*args: str, cwd=None, strace: bool = False) -> subprocess.CompletedProcess:
    opts = ["--engine=interp", "--clear-env"] + (["--strace"] if strace else [])
    return run_tool([*aotrun_cmd(), *opts, *args], timeout=300, cwd=cwd)


def test_exec_of_a_script_runs_its_interpreter(tmp_path):
    """binfmt_script: argv becomes [interpreter, its argument, the script as
    named, the original arguments...]."""
    script = tmp_path / "script"
    script.write_text(f"#!{MUSL}  showargs  \necho this line is never read\n")
    script.chmod(0o755)
    proc = _interp(str(MUSL), "run", "./script", "a", "b c", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().splitlines() == [
        "showargs: argc 5",
        'showargs: argv[1] = "showargs"',
        'showargs: argv[2] = "./script"',
        'showargs: argv[3] = "a"',
        'showargs: argv[4] = "b c"',
    ]


def test_nested_and_bad_scripts(tmp_path):
    inner = tmp_path / "inner"
    inner.write_text(f"#!{MUSL} showargs\n")
    outer = tmp_path / "outer"
    outer.write_text(f"#!{inner}\n")
    empty = tmp_path / "empty"
    empty.write_text("#!\n")
    for p in (inner, outer, empty):
        p.chmod(0o755)
    proc = _interp(str(MUSL), "run", str(outer), "x", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().splitlines()[1:] == [
        'showargs: argv[1] = "showargs"', f'showargs: argv[2] = "{inner}"',
        f'showargs: argv[3] = "{outer}"', 'showargs: argv[4] = "x"']
    proc = _interp(str(MUSL), "run", str(empty))
    assert proc.stdout.decode() == f"execv {empty}: ENOEXEC\n"


@pytest.mark.parametrize("program,errname,why", [
    ("/bin/true", "ENOEXEC", "host (x86_64) program"),
    (str(BIN / "hello.x86_64"), "ENOEXEC", "host (x86_64) program"),
    (str(BIN / "hello.aarch64"), "ENOEXEC", "aarch64 ELF"),
    (str(BIN / "hello-dynamic.riscv64"), "ENOEXEC", "cannot run"),
])
def test_programs_the_sandbox_cannot_run_are_refused(program, errname, why):
    """A riscv64 guest can exec riscv64 guest programs only: anything else
    is ENOEXEC (the sandbox never runs host code), strace says why."""
    proc = _interp(str(MUSL), "run", program, strace=True)
    assert proc.stdout.decode() == f"execv {program}: {errname}\n"
    assert proc.returncode == 127
    err = proc.stderr.decode()
    assert f"execve refused ({errname})" in err and why in err, err


def test_exec_errors(tmp_path):
    plain = tmp_path / "plain"
    plain.write_bytes(bytes(MUSL.read_bytes()))
    plain.chmod(0o644)                          # no execute permission
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"not a program\n")
    garbage.chmod(0o755)
    for program, name in ((plain, "EACCES"), (garbage, "ENOEXEC"), (tmp_path / "missing", "ENOENT"),
                          (tmp_path, "EACCES")):
        proc = _interp(str(MUSL), "run", str(program))
        assert proc.stdout.decode() == f"execv {program}: {name}\n", proc.stderr


def test_fds_keep_their_numbers_across_exec(tmp_path):
    """Guest fd 0 (a file here) and the O_CLOEXEC state of the others survive
    an exec that no fork precedes; the exec keeps the pid."""
    data = tmp_path / "data"
    data.write_text("the same open file")
    with open(data, "rb") as stdin:
        proc = subprocess.run([*aotrun_cmd(), "--engine=interp", "--clear-env", str(MUSL), "run",
                               str(MUSL), "execchild", "0", "7"], stdin=stdin, capture_output=True,
                              timeout=300)
    out = proc.stdout.decode()
    assert proc.returncode == 5, proc.stderr
    assert "exec child: fd 0 open after exec: yes, FD_CLOEXEC clear" in out
    assert "exec child: O_CLOEXEC fd 7 closed by exec: yes" in out      # never open
    assert 'exec child: read from fd 0: "the same open file"' in out


def test_a_guest_killed_by_a_signal_kills_aotrun_by_it(tmp_path):
    """A parent (a shell, a guest's wait4) sees WIFSIGNALED with the guest's
    signal; the one line is still printed and no core file is written."""
    proc = subprocess.run([*aotrun_cmd(), "--engine=interp", str(BIN / "crash.riscv64-musl")],
                          capture_output=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == -11, proc.stderr
    err = proc.stderr.decode()
    assert err.count("aotrun: guest SIGSEGV at pc") == 1 and "Traceback" not in err, err
    assert list(tmp_path.iterdir()) == []
    proc = subprocess.run(["sh", "-c", f"{' '.join(aotrun_cmd())} --engine=interp {BIN / 'abort.riscv64-musl'}; "
                           "echo status $?"], capture_output=True, timeout=300, cwd=tmp_path)
    assert proc.stdout.decode().endswith("status 134\n"), proc.stderr


def test_process_control_needs_an_aotrun_process():
    """A kernel embedded in another program (this test, the syscall fuzzer)
    never forks or replaces its host process; wait and kill stay scoped."""
    from runtime.guest_memory import GuestMemory
    from runtime.linux import process_calls
    from runtime.linux.abi import RISCV64_ABI
    from runtime.linux.kernel import LinuxKernel

    assert process_calls._LAUNCH is None
    mem = GuestMemory()
    try:
        k = LinuxKernel(mem, RISCV64_ABI, brk_start=0x100000, exe_path="/nonexistent")
        nr = RISCV64_ABI.numbers
        assert k.syscall(nr["clone"], [17, 0, 0, 0, 0, 0]) == -errno.ENOSYS
        assert k._fork_process(0, 0, 0, 0, 0, 17) == -errno.ENOSYS
        assert k.syscall(nr["wait4"], [-1 & (2**64 - 1), 0, 0, 0, 0, 0]) == -errno.ECHILD
        assert k.syscall(nr["wait4"], [os.getpid(), 0, 1, 0, 0, 0]) == -errno.ECHILD
        # Signals only to descendants: the test runner and init are not ours.
        assert k._kill_other(os.getppid(), 0) == -errno.ESRCH
        assert k._kill_other(1, 15) == -errno.ESRCH
        assert k._tgkill_other(os.getppid(), os.getppid(), 15) == -errno.ESRCH
        assert k._kill_other(-1, 0) == -errno.ESRCH
        assert k.syscall(nr["getpgid"], [os.getppid(), 0, 0, 0, 0, 0]) == -errno.ESRCH
        assert k.syscall(nr["setsid"], [0] * 6) == -errno.EPERM
        assert k.syscall(nr["setpgid"], [1, 0, 0, 0, 0, 0]) == -errno.ESRCH
        k.close()
    finally:
        mem.release()
