"""riscv_hwprobe (syscall 258), AT_HWCAP and ``aotrun --isa-profile``
(aotc/isa/riscv64/extensions.py, runtime/linux/hwprobe.py, runtime/process.py).

A static glibc probe (tests/data/hwprobe.c) asks every key, an unknown one,
bad pointers, reserved flags, explicit cpu sets and RISCV_HWPROBE_WHICH_CPUS,
and prints getauxval(AT_HWCAP); it runs under the interpreter and the JIT
(no AOT image: the syscall layer is the same for every engine).  The
expected values are written out here from Linux's uapi header
(arch/riscv/include/uapi/asm/hwprobe.h) and its sys_hwprobe.c, not taken
from the implementation's tables.
"""

from __future__ import annotations

import errno
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from tests.conftest import aotrun_cmd, run_tool

DATA = Path(__file__).resolve().parent / "data"

# RISCV_HWPROBE_IMA_* / RISCV_HWPROBE_EXT_* bit positions (uapi hwprobe.h).
B = {"FD": 0, "C": 1, "V": 2, "ZBA": 3, "ZBB": 4, "ZBS": 5, "ZICBOZ": 6, "ZFHMIN": 28,
     "ZIHINTNTL": 29, "ZFA": 32, "ZICOND": 35, "ZIHINTPAUSE": 36, "ZIMOP": 42, "ZCA": 43,
     "ZCB": 44, "ZCD": 45, "ZCMOP": 47, "ZAWRS": 48, "ZICNTR": 50, "ZIHPM": 51, "ZICBOM": 55,
     "ZAAMO": 56, "ZALRSC": 57, "ZICBOP": 60}


def bits(*names: str) -> int:
    return sum(1 << B[n] for n in names)


# What RV64GC hardware reports on a current kernel: F and D, C (as Zca, and
# Zcd with D), A (as Zaamo and Zalrsc).
RV64GC_EXT0 = bits("FD", "C", "ZCA", "ZCD", "ZAAMO", "ZALRSC")
# What the translator implements today (issue 22), on top of RV64GC.
MAX_EXT0_AT_LEAST = RV64GC_EXT0 | bits("ZBA", "ZBB", "ZBS", "ZICOND", "ZIHINTNTL",
                                       "ZIHINTPAUSE", "ZICNTR", "ZIHPM")
# What "max" may also report as the decoder grows (RVA23's other non-vector extensions).
MAX_EXT0_AT_MOST = MAX_EXT0_AT_LEAST | bits("ZICBOZ", "ZICBOM", "ZICBOP", "ZFHMIN", "ZFA",
                                            "ZIMOP", "ZCMOP", "ZCB", "ZAWRS")
RVA22_EXT0_AT_LEAST = RV64GC_EXT0 | bits("ZBA", "ZBB", "ZBS", "ZIHINTPAUSE", "ZICNTR", "ZIHPM")
# AT_HWCAP: one bit per single-letter extension, at (letter - 'a').
HWCAP_IMAFDC = sum(1 << (ord(c) - ord("a")) for c in "imafdc")
TIME_HZ = 10_000_000            # the Zicntr timebase (tests/test_counters.py)
SV39_TASK_SIZE = 1 << 38
EFAULT, EINVAL = -errno.EFAULT, -errno.EINVAL


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> Path:
    cc = shutil.which("riscv64-linux-gnu-gcc")
    if cc is None:
        pytest.skip("riscv64-linux-gnu-gcc not installed (apt-get install gcc-riscv64-linux-gnu)")
    elf = tmp_path_factory.mktemp("hwprobe") / "hwprobe"
    subprocess.run([cc, "-O2", "-static", "-march=rv64gc", "-o", str(elf), str(DATA / "hwprobe.c")],
                   check=True)
    return elf


def _parse(out: bytes) -> tuple[dict[str, list[int]], dict[int, tuple[int, int]]]:
    lines: dict[str, list[int]] = {}
    pairs: dict[int, tuple[int, int]] = {}
    for line in out.decode().splitlines():
        name, *values = line.split()
        if name == "pair":
            pairs[int(values[0])] = (int(values[1]), int(values[2]))
        else:
            lines[name] = [int(v) for v in values]
    return lines, pairs


def _run(elf: Path, engine: str, *opts: str, env: dict[str, str] | None = None,
         args: tuple[str, ...] = ()):
    proc = run_tool([*aotrun_cmd(), "--engine", engine, *opts, str(elf), *args], env=env,
                    timeout=180)
    assert proc.returncode == 0, proc.stderr.decode()
    return _parse(proc.stdout)


def _check_common(lines, pairs) -> None:
    """What every profile answers alike."""
    assert lines["all"] == [0]
    # known keys come back unchanged; vendor, architecture and implementation ids 0
    for key in range(17):
        assert pairs[key][0] == key, key
    assert pairs[0][1] == pairs[1][1] == pairs[2][1] == 0
    assert pairs[3][1] == 1                                  # BASE_BEHAVIOR_IMA
    assert pairs[5][1] == pairs[9][1] == 3                   # MISALIGNED_SCALAR_FAST
    assert pairs[10][1] == 4                                 # vector: UNSUPPORTED (no V)
    highest = pairs[7][1]
    assert lines["stack"][0] < highest < SV39_TASK_SIZE and (highest + 1) % 4096 == 0
    assert pairs[8][1] == TIME_HZ
    for key in (11, 13, 14, 16):                             # vendor keys, IMA_EXT_1
        assert pairs[key][1] == 0
    # unknown keys: key -1, value 0 (the call still succeeds)
    for key in (17, 1000, -1):
        assert pairs[key] == (-1, 0), key
    ext0 = pairs[4][1]
    assert not ext0 & bits("V")
    # block sizes: 64 exactly when the Zicbo* extension is reported
    for key, name in ((6, "ZICBOZ"), (12, "ZICBOM"), (15, "ZICBOP")):
        assert pairs[key][1] == (64 if ext0 & bits(name) else 0), name
    # argument checking, as Linux's sys_hwprobe.c
    assert lines["none"] == [0]
    assert lines["bad_pairs"] == [EFAULT]
    assert lines["readonly_pairs"] == [EFAULT]
    assert lines["flags2"] == [EINVAL] and lines["flags3"] == [EINVAL]
    assert lines["cpus_cpu0"] == [0, ext0]
    assert lines["cpus_empty"] == [EINVAL]
    assert lines["cpus_bad"] == [EFAULT]
    assert lines["which_v"] == [0, 0]                        # no cpu has V
    assert lines["which_unknown"] == [0, 0, -1]              # an unknown key empties the set
    assert lines["which_nomask"] == [EINVAL]
    assert lines["hwcap"] == [HWCAP_IMAFDC]                  # no V bit, whatever the profile


@pytest.mark.parametrize("engine", ["interp", "jit"])
def test_max_profile_reports_what_is_supported(probe, engine):
    lines, pairs = _run(probe, engine)
    _check_common(lines, pairs)
    ext0 = pairs[4][1]
    assert ext0 & MAX_EXT0_AT_LEAST == MAX_EXT0_AT_LEAST, hex(ext0)
    assert ext0 & ~MAX_EXT0_AT_MOST == 0, hex(ext0 & ~MAX_EXT0_AT_MOST)
    assert lines["which_zba_zbb"] == [0, 1]


@pytest.mark.parametrize("engine", ["interp", "jit"])
def test_rv64gc_profile_hides_the_extensions(probe, engine):
    lines, pairs = _run(probe, engine, "--isa-profile", "rv64gc")
    _check_common(lines, pairs)
    assert pairs[4][1] == RV64GC_EXT0, hex(pairs[4][1])
    assert lines["which_zba_zbb"] == [0, 0]                  # no cpu has Zba and Zbb


def test_profile_from_the_environment_and_across_exec(probe):
    """$AOTRUN_ISA_PROFILE selects the profile; an execve'd program keeps it."""
    lines, pairs = _run(probe, "interp", env={"AOTRUN_ISA_PROFILE": "rva22"}, args=("exec",))
    _check_common(lines, pairs)
    ext0 = pairs[4][1]
    assert ext0 & RVA22_EXT0_AT_LEAST == RVA22_EXT0_AT_LEAST, hex(ext0)
    assert not ext0 & bits("ZICOND", "ZIHINTNTL", "ZIMOP", "ZCMOP", "ZCB", "ZFA", "ZAWRS")
    # the option wins over the environment
    lines, pairs = _run(probe, "interp", "--isa-profile", "rv64gc",
                        env={"AOTRUN_ISA_PROFILE": "rva22"}, args=("exec",))
    assert pairs[4][1] == RV64GC_EXT0


@pytest.mark.parametrize("how", [["--isa-profile", "rv64gcv"], ["--isa-profile=RVA23"]])
def test_an_unknown_profile_is_a_usage_error(probe, how):
    proc = run_tool([*aotrun_cmd(), "--engine", "interp", *how, str(probe)])
    assert proc.returncode == 2
    assert b"--isa-profile: invalid choice" in proc.stderr, proc.stderr.decode()
    assert not proc.stdout


def test_an_unknown_profile_in_the_environment_is_a_usage_error(probe):
    proc = run_tool([*aotrun_cmd(), "--engine", "interp", str(probe)],
                    env={"AOTRUN_ISA_PROFILE": "rv32i"})
    assert proc.returncode == 2
    assert b"AOTRUN_ISA_PROFILE: invalid choice: 'rv32i'" in proc.stderr, proc.stderr.decode()


def test_qemu_agrees_where_it_implements_hwprobe(probe):
    """qemu-riscv64 (8.1+) answers hwprobe too: the shape of its answers
    (which keys it knows, unknown ones as -1, the argument errors) matches;
    its extension bits are its CPU model's, not ours."""
    qemu = shutil.which("qemu-riscv64")
    if qemu is None:
        pytest.skip("qemu-riscv64 not installed (apt-get install qemu-user)")
    proc = subprocess.run([qemu, str(probe)], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    q_lines, q_pairs = _parse(proc.stdout)
    if q_lines["all"] == [-errno.ENOSYS]:
        version = subprocess.run([qemu, "--version"], capture_output=True, text=True).stdout
        pytest.skip(f"this qemu-riscv64 has no riscv_hwprobe ({version.splitlines()[0]})")
    lines, pairs = _run(probe, "interp")
    assert q_lines["all"] == lines["all"] == [0]
    for key in (0, 1, 2, 3, 4, 5, 6):
        assert q_pairs[key][0] == pairs[key][0] == key
    assert q_pairs[3] == pairs[3]
    for key in (1000, -1):
        assert q_pairs[key] == pairs[key] == (-1, 0)
    for name in ("none", "bad_pairs", "flags2"):
        assert q_lines[name] == lines[name], name
    assert q_lines["hwcap"][0] & HWCAP_IMAFDC == HWCAP_IMAFDC


# -- the handler itself, in process -------------------------------------------

def test_the_syscall_is_bound_for_riscv64_only():
    from runtime.linux import AARCH64_ABI, RISCV64_ABI, X86_64_ABI

    assert RISCV64_ABI.nr("riscv_hwprobe") == 258
    assert "riscv_hwprobe" not in AARCH64_ABI.numbers and "riscv_hwprobe" not in X86_64_ABI.numbers


def test_profiles_are_subsets_of_what_is_supported():
    from aotc.isa.riscv64 import extensions as ext
    from runtime.process import hwcap_for

    assert ext.PROFILES == ("rv64gc", "rva20", "rva22", "rva23", "max")
    assert ext.profile_extensions("max") == ext.SUPPORTED
    gc = ext.profile_extensions("rv64gc")
    assert {"I", "M", "A", "F", "D", "C", "Zicsr", "Zifencei"} <= gc
    assert not gc & {"Zba", "Zbb", "Zbs", "Zicond", "Zicntr"}
    for a, b in (("rv64gc", "max"), ("rva20", "rva22"), ("rva22", "rva23"), ("rva23", "max")):
        assert ext.profile_extensions(a) <= ext.profile_extensions(b), (a, b)
    assert "V" not in ext.SUPPORTED
    with pytest.raises(KeyError):
        ext.profile_extensions("rv64gcv")
    assert hwcap_for("riscv64") == hwcap_for("riscv64", gc) == HWCAP_IMAFDC
    # Linux reports F only with D, and V only with V
    assert hwcap_for("riscv64", {"I", "M", "A", "F", "C"}) == sum(1 << (ord(c) - 97) for c in "imac")
    assert hwcap_for("riscv64", {"I", "V"}) == (1 << 8) | (1 << 21)


def test_pairs_straddling_the_end_of_a_mapping():
    """Pairs up to a fault are answered; the call then fails with -EFAULT."""
    from runtime.guest_memory import PROT_READ, PROT_WRITE, GuestMemory
    from runtime.linux import RISCV64_ABI
    from runtime.linux.kernel import LinuxKernel

    mem = GuestMemory()
    try:
        mem.map(0x10000, 0x1000, PROT_READ | PROT_WRITE, "scratch")
        k = LinuxKernel(mem, RISCV64_ABI, brk_start=0x20_0000, exe_path="/bin/guest",
                        install_std_fds=False)
        at = 0x11000 - 16
        mem.write(at, struct.pack("<qQ", 4, 7))
        assert k.syscall(258, [at, 2, 0, 0, 0]) == EFAULT
        key, value = struct.unpack("<qQ", mem.read(at, 16))
        assert key == 4 and value & RV64GC_EXT0 == RV64GC_EXT0
        # a cpu set larger than the kernel's is read only as far as its own
        mem.write(0x10000, (1).to_bytes(8, "little"))
        assert k.syscall(258, [at, 1, 1 << 20, 0x10000, 0]) == 0
        k.close()
    finally:
        mem.release()
