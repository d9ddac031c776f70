"""A short run of each fuzz harness (fuzz/README.md): it must start, execute
the requested number of inputs and find no crash.  atheris is in the test
extras; without it this fails rather than skips."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("harness, runs", [("elf_reader", 3000), ("image_parser", 5000)])
def test_fuzz_harness_smoke(harness, runs, tmp_path):
    assert importlib.util.find_spec("atheris") is not None, \
        "atheris is not installed: pip install -e '.[test]' (it is in the test extras)"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "fuzz" / f"{harness}.py"), "--runs", str(runs), "--max-time", "30",
         "--seed", "1", "--crash-dir", str(tmp_path / "crashes"), "--corpus", str(tmp_path / "corpus")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    summary = [ln for ln in proc.stderr.splitlines() if ln.startswith(f"[{harness}] ")]
    assert proc.returncode == 0, "\n".join(summary) or proc.stderr[-3000:]
    m = re.search(rf"\[{harness}\] executions (\d+), crashes (\d+)", proc.stderr)
    assert m, proc.stderr[-3000:]
    executions, crashes = int(m.group(1)), int(m.group(2))
    assert crashes == 0
    assert executions >= min(runs, 500)      # --max-time may stop a slow machine early
    assert not (tmp_path / "crashes").exists()


def test_campaign_counts_only_non_aotc_errors_as_crashes(tmp_path):
    sys.path.insert(0, str(ROOT / "fuzz"))
    import runner

    from aotc.errors import ElfError

    def target(data: bytes) -> None:
        if data == b"typed":
            raise ElfError("refused")
        if data == b"bug":
            raise KeyError("oops")

    campaign = runner.Campaign("t", target, runs=10**9, max_time=float("inf"), crash_dir=tmp_path)
    for data in (b"ok", b"typed", b"bug", b"bug"):
        campaign.one_input(data)
    assert campaign.executions == 4 and campaign.ok == 1
    assert dict(campaign.errors) == {"ElfError": 1}
    assert sum(campaign.crashes.values()) == 2
    assert [p.read_bytes() for p in tmp_path.iterdir()] == [b"bug"]
    assert "crashes 2" in campaign.summary()
