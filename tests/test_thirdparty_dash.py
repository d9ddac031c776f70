"""dash (Debian's source package, cross-built static for riscv64 by
tests/thirdparty/sources.py) runs the shell table of
tests/thirdparty/shell_cases.py on every engine as under qemu-riscv64.

dash has no applets: ``seq``, ``sort``, ``head``, ``sleep``, ``sh``... are
found through PATH, a directory of symlinks to the riscv64 busybox, so each
is a fork and an execve of another riscv64 program (under aotrun: the
engines' guest exec; under qemu: a private binfmt_misc entry).
"""

from __future__ import annotations

import pytest

from thirdparty.fixtures import engines_for, need_reference, program, target
from thirdparty.harness import assert_same, reference, under_engine
from thirdparty.shell_cases import SH_CASES

pytestmark = pytest.mark.thirdparty


@pytest.mark.parametrize("engine", engines_for("dash"))
@pytest.mark.parametrize("case", list(SH_CASES))
def test_dash(case, engine, tmp_path, request):
    need_reference()
    dash = program("dash")
    busybox = program("busybox")
    env = {"PATH": str(busybox.applets), "LC_ALL": "C"}
    image = target(engine, dash, request)
    (tmp_path / "ref").mkdir()
    (tmp_path / "got").mkdir()
    script, stdout, status = SH_CASES[case]
    ref = reference(dash.binary, ["-c", script], env, tmp_path / "ref")
    assert (ref.stdout.decode(), ref.returncode) == (stdout, status), ref.describe()
    got = under_engine(engine, dash.binary, ["-c", script], env, tmp_path / "got", image=image, timeout=120)
    assert_same(ref, got)
