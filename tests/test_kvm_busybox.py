"""Debian's static busybox (package busybox-static) as a KVM guest: each applet
run prints exactly what the same busybox prints natively, with the same exit
status.  The image is built once per session (conftest.build_image_cached)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import aotrun_cmd, run_tool

from runtime.kvm.api import kvm_unavailable_message, kvm_unavailable_reason

BUSYBOX = Path("/bin/busybox")
_REASON = kvm_unavailable_reason()


def _static_busybox() -> str | None:
    if not BUSYBOX.exists():
        return f"{BUSYBOX} is missing (apt-get install busybox-static)"
    from aotc.elf.guest_elf import read_guest_elf
    from aotc.errors import ElfError

    try:
        read_guest_elf(BUSYBOX)
    except ElfError as e:
        return f"{BUSYBOX} is not a static executable ({e}); install busybox-static"
    return None


_WHY_NOT = (kvm_unavailable_message(_REASON) if _REASON else None) or _static_busybox()
if _WHY_NOT:
    print(f"test_kvm_busybox: skipping, {_WHY_NOT}")
pytestmark = pytest.mark.skipif(bool(_WHY_NOT), reason=_WHY_NOT or "")


@pytest.fixture(scope="session")
def busybox_image(build_image_cached) -> Path:
    return build_image_cached(BUSYBOX)


@pytest.fixture
def data_file(tmp_path) -> Path:
    p = tmp_path / "words.txt"
    words = [f"{(i * 7919) % 1000:03d} line {i}" for i in range(300)]
    p.write_text("\n".join(words) + "\n")
    return p


CASES = {
    "echo": ["echo", "hello", "world"],
    "seq": ["seq", "1", "1000"],
    "sha256sum": ["sha256sum", "{data}"],
    "md5sum": ["md5sum", "{data}"],
    "sort": ["sort", "{data}"],
    "sort-rn": ["sort", "-r", "-n", "{data}"],
    "wc": ["wc", "{data}"],
    "wc-l": ["wc", "-l", "{data}"],
    "expr": ["expr", "6", "*", "7"],
    "expr-false": ["expr", "1", "=", "2"],
    "false": ["false"],
    "sh-builtins": ["sh", "-c", 'x=$((6*7)); echo "v=$x"; for i in 1 2 3; do printf "%s," "$i"; done; '
                                'echo; test -n "$x" && echo yes; set -- a b c; echo "$# $2"; exit 3'],
    "head": ["head", "-n", "5", "{data}"],
    "cat-missing": ["cat", "/nonexistent/file"],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_busybox_applet_matches_native(name, busybox_image, data_file):
    args = [a.replace("{data}", str(data_file)) for a in CASES[name]]
    env = {"LC_ALL": "C"}
    native = subprocess.run([str(BUSYBOX), *args], capture_output=True, env=env, timeout=60)
    proc = run_tool([*aotrun_cmd(), "--clear-env", "--env=LC_ALL=C", f"--argv0={BUSYBOX}",
                     str(busybox_image), *args], timeout=120)
    stderr = proc.stderr.decode(errors="replace")
    assert "Traceback" not in stderr, stderr
    assert proc.stdout == native.stdout, stderr
    assert proc.returncode == native.returncode, stderr
    if native.stderr:
        assert proc.stderr == native.stderr
