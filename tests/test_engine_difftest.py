"""Cross-engine differential test on random RV64GC code (the bounded CI run).

``tests/rv64gen.py`` generates batches of independent cases over RV64 I, M,
A (LR/SC success and failure, every AMO in .w and .d), F and D (arithmetic,
fused ops, sqrt, min/max, sign injection, compares, fclass, every conversion,
fmv, every static rounding mode and DYN with frm set through the CSRs),
Zicsr on fflags/frm/fcsr (register and immediate forms) and C (C.ADDW,
C.SUBW, the sp-relative forms...), with special operands (0, -1, INT_MIN,
INT_MAX, quiet and signalling NaNs, unboxed singles, ±0, ±inf, subnormals,
rounding boundaries), misaligned accesses and rd/rs aliasing.  Every case
dumps all 32 x registers, all 32 f registers (raw), fcsr and its memory
buffer; one ELF holds a whole batch.

The AOT image, the JIT and the interpreter must agree byte for byte with
qemu-riscv64 (when installed) and, on the profile its model supports, with
Unicorn.  The long campaign is ``python tests/difftest_campaign.py``
(docs/difftest.md).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import rv64gen as g
from difftest_campaign import compare, report, run_engines


def _check(prog: g.Program, outputs: dict[str, bytes]) -> None:
    bad = compare(prog, outputs)
    ref = "qemu" if "qemu" in outputs else "interp"
    if bad:
        msgs = [f"case {i}:\n{report(prog.cases[i], div, ref)}" for i, div in sorted(bad.items())[:3]]
        pytest.fail(f"{len(bad)} of {len(prog.cases)} cases diverge\n" + "\n\n".join(msgs))


def _engines(*extra: str) -> tuple[str, ...]:
    engines = ["aot", "jit", "interp"]
    if g.qemu_path():
        engines.append("qemu")
    else:
        print("qemu-riscv64 not installed: comparing aot, jit and interp among themselves only")
    return (*engines, *extra)


def test_rv64gc_engines_agree(tmp_path, config_dir, build_image_cached):
    """The full RV64GC profile: aot, jit, interp and qemu-riscv64."""
    prog = g.build_program(g.generate(2026, 24, 30))
    outputs = run_engines(prog, tmp_path, _engines(), build_image_cached)
    assert len(outputs["aot"]) == prog.out_size
    _check(prog, outputs)


def test_rv64gc_engines_agree_with_unicorn(tmp_path, config_dir, build_image_cached):
    """The profile Unicorn's riscv model gets right (no singles, no fmin/fmax):
    all five engines."""
    if not g.unicorn_available():
        pytest.skip("unicorn is not installed (pip install unicorn; it is in the test extra)")
    prog = g.build_program(g.generate(2027, 16, 30, g.UNICORN_SAFE))
    _check(prog, run_engines(prog, tmp_path, _engines("unicorn"), build_image_cached))


REPRODUCERS = Path(__file__).parent / "data" / "difftest_reproducers.json"


def load_reproducers() -> list[g.Case]:
    """Divergent cases the campaign found, stored verbatim (initial state and
    instruction bytes), so a change to the generator cannot lose them."""
    cases = []
    for r in json.loads(REPRODUCERS.read_text()):
        items = [[g.Insn(bytes.fromhex(code), text) for code, text in item] for item in r["items"]]
        cases.append(g.Case([int(v, 16) for v in r["x"]], [int(v, 16) for v in r["f"]], int(r["fcsr"], 16),
                            bytes.fromhex(r["mem"]), items))
    return cases


def test_campaign_reproducers(tmp_path, config_dir, build_image_cached):
    """Every divergence the long campaign found (docs/difftest.md), as found."""
    prog = g.build_program(load_reproducers())
    _check(prog, run_engines(prog, tmp_path, _engines(), build_image_cached))


def test_rmm_heavy_engines_agree(tmp_path, config_dir, build_image_cached):
    """FP-heavy cases with RMM as a static mode and as frm (about a fifth of
    the cases start with frm = RMM): static RMM runs in translated code (tie
    correction), DYN operations under frm = RMM leave for the interpreter;
    every engine must agree with qemu."""
    opts = replace(g.GenOptions(), int_ops=0.2, mem_ops=0.1, branch_ops=0.05, amo_ops=0.0, fp_ops=2.0,
                   csr_ops=0.05)
    prog = g.build_program(g.generate(2028, 12, 30, opts))
    _check(prog, run_engines(prog, tmp_path, _engines(), build_image_cached))


def test_generator_encodings_match_gnu_as():
    """The generator's encoders (every instruction form it emits) agree with binutils."""
    if not shutil.which("riscv64-linux-gnu-as"):
        pytest.skip("riscv64-linux-gnu-as not installed (binutils-riscv64-linux-gnu)")
    insns = []
    for seed in range(3):
        cases = g.generate(seed, 20, 40, g.GenOptions())
        insns += [i for c in cases for i in c.body()]
    insns += g.case_code(0, 1, cases[0])
    kinds = {i.text.split()[0] for i in insns}
    for k in ("c.addw", "c.subw", "c.ldsp", "amomaxu.w", "lr.d", "sc.w", "fnmsub.s", "fcvt.lu.d", "csrrci"):
        assert any(x.startswith(k) for x in kinds), k
    mismatches = g.assemble_check(insns)
    assert not mismatches, [(i.text, i.code.hex(), got.hex()) for i, got in mismatches[:10]]
