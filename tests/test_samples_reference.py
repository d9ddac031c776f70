"""Reference checks for the committed guest samples (samples/).

These check the sample binaries and their recorded expected outputs, not the
translator: every binary in samples/bin has an expected file for every case
of samples/cases.json, the files are well formed and agree across flavours,
the binaries are what samples/build.py promises (static, stripped, right
machine, no build-id), and -- where qemu-riscv64 / qemu-aarch64 are
installed -- re-running the reference reproduces the recorded stdout and
exit code.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import struct
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"


def _load_record():
    spec = importlib.util.spec_from_file_location("aotc_samples_record",
                                                  SAMPLES / "record.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


record = _load_record()

C_SAMPLES = sorted(p.stem for p in (SAMPLES / "src").glob("*.c"))
BINARIES = record.binaries()
RUNS = record.all_runs()
EXPECTED_FIELDS = {"binary", "args", "env", "stdout", "exit_code", "recorded_with"}
E_MACHINE = {"riscv64": 243, "riscv64-musl": 243, "x86_64": 62, "aarch64": 183}


def _expected(case_name: str, flavour: str) -> dict:
    return json.loads(record.expected_path(case_name, flavour).read_text())


# ---------------------------------------------------------------- layout

def test_cases_json_well_formed():
    cases = record.load_cases()
    names = []
    for sample, lst in cases.items():
        assert isinstance(lst, list) and lst, sample
        for case in lst:
            assert set(case) == {"name", "args", "env", "needs_tmpdir"}, case
            assert isinstance(case["args"], list)
            assert all(isinstance(a, str) for a in case["args"])
            assert isinstance(case["env"], dict)
            assert all(isinstance(v, str) for v in case["env"].values())
            uses_tmp = record.TMPDIR_ARG in case["args"]
            assert case["needs_tmpdir"] is uses_tmp, case["name"]
            names.append(case["name"])
    assert len(names) == len(set(names)), "case names must be unique"
    # every sample source has cases
    for stem in C_SAMPLES + ["rv64_insns"]:
        assert stem in cases, f"no cases for sample {stem}"


def test_every_sample_is_built_in_every_flavour():
    have = set(BINARIES)
    missing = [f"{s}.{fl}" for s in C_SAMPLES for fl in record.FLAVOURS
               if f"{s}.{fl}" not in have]
    for extra in ("rv64_insns.riscv64", "hello-dynamic.riscv64"):
        if extra not in have:
            missing.append(extra)
    assert not missing, f"missing binaries (run samples/build.py): {missing}"


def test_samples_bin_size_reasonable():
    total = sum((record.BIN / b).stat().st_size for b in BINARIES)
    assert total < 40e6, f"samples/bin is {total / 1e6:.1f} MB"


def test_sha256sums_match_binaries():
    sums = {}
    for line in (SAMPLES / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(None, 1)
        sums[name.removeprefix("bin/")] = digest
    assert sorted(sums) == sorted(BINARIES)
    for b in BINARIES:
        digest = hashlib.sha256((record.BIN / b).read_bytes()).hexdigest()
        assert digest == sums[b], f"{b} differs from samples/SHA256SUMS"


@pytest.mark.parametrize("binary", BINARIES)
def test_every_binary_has_expected_for_every_case(binary):
    sample, flavour = record.split_binary(binary)
    cases = record.load_cases().get(sample)
    assert cases, f"{binary}: sample {sample!r} has no cases in samples/cases.json"
    for case in cases:
        path = record.expected_path(case["name"], flavour)
        assert path.exists(), f"{binary}: missing {path.relative_to(ROOT)}"
        rec = json.loads(path.read_text())
        assert set(rec) == EXPECTED_FIELDS, path.name
        assert rec["binary"] == f"samples/bin/{binary}"
        assert rec["args"] == case["args"]
        assert rec["env"] == case["env"]
        assert isinstance(rec["exit_code"], int) and 0 <= rec["exit_code"] < 256
        assert rec["stdout"].isascii(), f"{path.name}: stdout is not ASCII"
        assert rec["recorded_with"]


def test_no_orphan_expected_files():
    wanted = {record.expected_path(case["name"], record.split_binary(b)[1]).name
              for b, case in RUNS}
    have = {p.name for p in record.EXPECTED.glob("*.json")}
    assert have - wanted == set(), "expected files without a binary/case"


def test_flavours_agree():
    results = {(case["name"], record.split_binary(b)[1]):
               _expected(case["name"], record.split_binary(b)[1]) for b, case in RUNS}
    assert record.cross_check(results) == []


def test_signal_exit_codes_recorded():
    for fl in record.FLAVOURS:
        assert _expected("crash", fl)["exit_code"] == 139  # SIGSEGV
        assert _expected("abort", fl)["exit_code"] == 134  # SIGABRT
        assert _expected("hello", fl)["exit_code"] == 0
        assert _expected("hello-args", fl)["exit_code"] == 3


# ---------------------------------------------------------------- ELF shape

def _elf_info(path: Path) -> dict:
    data = path.read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, path.name
    (e_type, e_machine, _v, _entry, e_phoff, e_shoff, _fl, _eh, e_phentsize,
     e_phnum, e_shentsize, e_shnum, e_shstrndx) = struct.unpack_from(
        "<HHIQQQIHHHHHH", data, 16)
    ptypes = [struct.unpack_from("<I", data, e_phoff + i * e_phentsize)[0]
              for i in range(e_phnum)]
    sections = []
    if e_shoff and e_shnum:
        def sh(i):
            return struct.unpack_from("<IIQQQQIIQQ", data, e_shoff + i * e_shentsize)
        stroff = sh(e_shstrndx)[4]
        for i in range(e_shnum):
            name_off = sh(i)[0]
            end = data.index(b"\0", stroff + name_off)
            sections.append(data[stroff + name_off:end].decode())
    return {"type": e_type, "machine": e_machine, "ptypes": ptypes,
            "sections": sections}


@pytest.mark.parametrize("binary", BINARIES)
def test_binary_elf_shape(binary):
    sample, flavour = record.split_binary(binary)
    info = _elf_info(record.BIN / binary)
    assert info["machine"] == E_MACHINE[flavour]
    PT_INTERP = 3
    if sample == "hello-dynamic":
        assert PT_INTERP in info["ptypes"], "hello-dynamic must be dynamic"
    else:
        assert PT_INTERP not in info["ptypes"], f"{binary} is not static"
        assert info["type"] == 2, f"{binary} should be ET_EXEC (static, non-PIE)"
    assert ".symtab" not in info["sections"], f"{binary} is not stripped"
    assert ".note.gnu.build-id" not in info["sections"], f"{binary} has a build-id"


# ---------------------------------------------------------------- reference runs

@pytest.mark.parametrize(
    "binary,case",
    [pytest.param(b, c, id=f"{c['name']}.{record.split_binary(b)[1]}") for b, c in RUNS])
def test_reference_reproduces_recording(binary, case):
    flavour = record.split_binary(binary)[1]
    why = record.reference_missing(flavour)
    if why:
        pytest.skip(f"cannot re-run the {flavour} reference here: {why}")
    if record.split_binary(binary)[0] == "hello-dynamic" and \
            not Path(record.RISCV64_SYSROOT, "lib").is_dir():
        pytest.skip(f"{record.RISCV64_SYSROOT} (libc6-riscv64-cross) not installed")
    want = _expected(case["name"], flavour)
    got = record.run_case(binary, case)
    assert got["stdout"] == want["stdout"], got["_stderr"]
    assert got["exit_code"] == want["exit_code"], got["_stderr"]
