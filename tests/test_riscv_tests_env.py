"""The riscv-tests harness itself (tests/riscv_tests.py and its environment
header tests/riscv_tests_env/riscv_test.h), on hand-written tests.

riscv-tests is not available to CI (docs/difftest.md, "riscv-tests' user
suites"), so these tests build a miniature checkout of our own: a
``test_macros.h`` with the two macros the tests below use, written here,
and a few .S files in the suites' style.  They check what the runner relies
on: pass exits 0, a failing case exits with its number, a failure before any
case is told apart (255), ``_start`` zeroes the registers and fcsr, data is
not reached through gp (TESTNUM; the link does not relax), code in
.data can be patched and run after fence.i (the one-RWX-segment link), the
Makefrag test list, the case lookup, and the report.  Interp and jit.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import riscv_tests as rt

pytestmark = pytest.mark.skipif(
    not (shutil.which("riscv64-linux-gnu-gcc") and shutil.which("riscv64-linux-gnu-ld")),
    reason="needs gcc-riscv64-linux-gnu (riscv64-linux-gnu-gcc and -ld)")

MACROS = r"""
#define TEST_CASE(testnum, testreg, correctval, code...) \
test_ ## testnum: \
    li TESTNUM, testnum; \
    code; \
    li x7, correctval; \
    bne testreg, x7, fail;

#define TEST_PASSFAIL \
    bne x0, TESTNUM, pass; \
fail: \
    RVTEST_FAIL; \
pass: \
    RVTEST_PASS
"""

HEAD = '#include "riscv_test.h"\n#include "test_macros.h"\n'
DATA = "  .data\nRVTEST_DATA_BEGIN\n  .dword 0\nRVTEST_DATA_END\n"

TESTS = {
    "good": HEAD + """RVTEST_RV64U
RVTEST_CODE_BEGIN
  TEST_CASE( 2, a0, 5, li a0, 2; addi a0, a0, 3 )
  TEST_CASE( 3, a1, -1, li a1, 0; not a1, a1 )
  TEST_PASSFAIL
RVTEST_CODE_END
""" + DATA,
    "bad": HEAD + """RVTEST_RV64U
RVTEST_CODE_BEGIN
  TEST_CASE( 2, a0, 5, li a0, 5 )
  TEST_CASE( 3, a0, 6, li a0, 7 )
  TEST_CASE( 4, a0, 8, li a0, 8 )
  TEST_PASSFAIL
RVTEST_CODE_END
""" + DATA,
    "nocase": HEAD + """RVTEST_RV64U
RVTEST_CODE_BEGIN
  TEST_PASSFAIL
RVTEST_CODE_END
""" + DATA,
    "zeroed": HEAD + """RVTEST_RV64UF
RVTEST_CODE_BEGIN
  .irp r, 1,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30
  or x31, x31, x\\r
  .endr
  mv a0, x31
  TEST_CASE( 2, a0, 0, nop )
  TEST_CASE( 3, a1, 0, frcsr a1 )
  TEST_PASSFAIL
RVTEST_CODE_END
""" + DATA,
    # data the Linux linker script would reach through __global_pointer$:
    # gp is TESTNUM, so the link must not relax to gp-relative addresses
    "gpdata": HEAD + """RVTEST_RV64U
RVTEST_CODE_BEGIN
  TEST_CASE( 2, a0, 0x1234, la a1, value; ld a0, 0(a1) )
  TEST_CASE( 3, a0, 0x5678, ld a0, value2 )
  TEST_PASSFAIL
RVTEST_CODE_END
  .data
RVTEST_DATA_BEGIN
  .pushsection .sdata, "aw"
value: .dword 0x1234
value2: .dword 0x5678
  .popsection
RVTEST_DATA_END
""",
    "smc": HEAD + """RVTEST_RV64U
RVTEST_CODE_BEGIN
  la t0, patched
  TEST_CASE( 2, a0, 1, jalr ra, t0, 0 )
  lw t1, newinsn
  sw t1, 0(t0)
  fence.i
  TEST_CASE( 3, a0, 7, jalr ra, t0, 0 )
  TEST_PASSFAIL
RVTEST_CODE_END
  .data
RVTEST_DATA_BEGIN
patched:
  li a0, 1
  ret
newinsn:
  li a0, 7
RVTEST_DATA_END
""",
}

EXPECTED = {"good": ("pass", None), "bad": ("fail", 3), "nocase": ("fail", 255),
            "zeroed": ("pass", None), "gpdata": ("pass", None), "smc": ("pass", None)}


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("riscv-tests")
    (src / "isa" / "macros" / "scalar").mkdir(parents=True)
    (src / "isa" / "macros" / "scalar" / "test_macros.h").write_text(MACROS)
    suite = src / "isa" / "rv64ui"
    suite.mkdir()
    (suite / "Makefrag").write_text("rv64ui_sc_tests = \\\n\tgood bad \\\n\tnocase zeroed gpdata smc \\\n\n"
                                    "rv64ui_p_tests = $(addprefix rv64ui-p-, $(rv64ui_sc_tests))\n")
    for name, text in TESTS.items():
        (suite / f"{name}.S").write_text(text)
    return src


@pytest.fixture(scope="module")
def toolchain() -> rt.Toolchain:
    return rt.Toolchain(gcc=shutil.which("riscv64-linux-gnu-gcc"), ld=shutil.which("riscv64-linux-gnu-ld"),
                        zig=False, qemu=None)


@pytest.fixture(scope="module")
def elves(checkout, toolchain, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("elves")
    built = {}
    for name in TESTS:
        elf, err = rt.build_elf(toolchain, checkout, rt.SUITES["rv64ui"], name, out / name)
        assert elf is not None, err
        built[name] = elf
    return built


def test_makefrag_lists_the_tests(checkout):
    assert rt.suite_tests(checkout, "rv64ui") == ["good", "bad", "nocase", "zeroed", "gpdata", "smc"]


def test_find_case_names_the_failing_line(checkout):
    assert rt.find_case(checkout, "rv64ui", "bad", 3) == "TEST_CASE( 3, a0, 6, li a0, 7 )"
    assert rt.find_case(checkout, "rv64ui", "bad", 9) is None


def test_entry_is_start_in_one_rwx_segment(elves):
    import struct
    data = elves["good"].read_bytes()
    e_entry, e_phoff = struct.unpack_from("<QQ", data, 24)
    e_phentsize, e_phnum = struct.unpack_from("<HH", data, 54)
    loads = [struct.unpack_from("<II", data, e_phoff + i * e_phentsize)
             for i in range(e_phnum)]
    flags = [f for typ, f in loads if typ == 1]
    assert flags == [7], flags                     # PT_LOAD, R|W|X, just one
    assert e_entry != 0


@pytest.mark.parametrize("engine", ["interp", "jit"])
@pytest.mark.parametrize("name", list(TESTS))
def test_outcome(elves, engine, name):
    o = rt.run_engine(engine, elves[name], None, None, timeout=60)
    status, testnum = EXPECTED[name]
    assert (o.status, o.testnum) == (status, testnum), o


@pytest.mark.skipif(not shutil.which("qemu-riscv64"), reason="qemu-user not installed")
def test_outcomes_on_qemu(elves):
    """The environment is plain Linux user mode: qemu agrees."""
    for name, elf in elves.items():
        o = rt.run_engine("qemu", elf, None, "rv64", timeout=60)
        assert (o.status, o.testnum) == EXPECTED[name], (name, o)


def test_report_counts_and_exit_status(checkout, toolchain, elves):
    results = []
    for name, elf in elves.items():
        r = rt.TestResult("rv64ui", name)
        r.outcomes["interp"] = rt.run_engine("interp", elf, None, None, timeout=60)
        results.append(r)
    summary = rt.summarize(results, [rt.SUITES["rv64ui"]], ["interp"], toolchain, checkout)
    es = summary["suites"]["rv64ui"]["engines"]["interp"]
    assert (es["passed"], es["total"]) == (4, 6)
    assert es["failures"]["bad"]["case"] == "TEST_CASE( 3, a0, 6, li a0, 7 )"
    assert rt.regressions(summary) == 2
    text = rt.render(summary)
    assert "rv64ui" in text and "4/6" in text and "rv64ui-bad: interp #3" in text
    # the same failures in a suite of an extension aotc lacks are reported, not counted
    summary["suites"]["rv64ui"]["implemented"] = False
    assert rt.regressions(summary) == 0
    assert "[not implemented]" in rt.render(summary)
