"""busybox (Debian's source package, cross-built static for riscv64 by
tests/thirdparty/sources.py) runs shell scripts on every engine as it does
under qemu-riscv64: pipelines, command substitution, background jobs,
traps, loops, redirections, exit statuses (tests/thirdparty/shell_cases.py).

The shell forks for pipelines and subshells and re-executes itself through
/proc/self/exe for applets that cannot run in a forked child; signals
(kill -INT $$, a killed job) go through the engines' signal delivery.
"""

from __future__ import annotations

import pytest

from thirdparty.fixtures import engines_for, need_reference, program, target
from thirdparty.harness import assert_same, reference, under_engine
from thirdparty.shell_cases import SH_CASES

pytestmark = pytest.mark.thirdparty

ENV = {"PATH": "/nonexistent", "LC_ALL": "C"}   # applets only, never a host program


def _run_both(engine, args, tmp_path, request):
    need_reference()
    bb = program("busybox")
    image = target(engine, bb, request)
    (tmp_path / "ref").mkdir()
    (tmp_path / "got").mkdir()
    ref = reference(bb.binary, args, ENV, tmp_path / "ref")
    got = under_engine(engine, bb.binary, args, ENV, tmp_path / "got", image=image, timeout=120)
    return ref, got


@pytest.mark.parametrize("engine", engines_for("busybox"))
@pytest.mark.parametrize("case", list(SH_CASES))
def test_busybox_sh(case, engine, tmp_path, request):
    script, stdout, status = SH_CASES[case]
    ref, got = _run_both(engine, ["sh", "-c", script], tmp_path, request)
    assert (ref.stdout.decode(), ref.returncode) == (stdout, status), ref.describe()
    assert_same(ref, got)


@pytest.mark.parametrize("engine", engines_for("busybox"))
def test_busybox_applet_direct(engine, tmp_path, request):
    """An applet run directly (no shell): the smallest busybox run."""
    ref, got = _run_both(engine, ["seq", "-s", ",", "1", "5"], tmp_path, request)
    assert ref.stdout == b"1,2,3,4,5\n"
    assert_same(ref, got)
