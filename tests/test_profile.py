"""Profile feedback: ``aotrun --record-profile`` records the entry pcs the
image missed; ``aotc build --profile`` makes them block entries, so the
rebuilt image runs the same guest with no miss at all."""

from __future__ import annotations

import json

from conftest import aotrun_cmd, run_tool
from test_jit import TARGET, build, build_guest


def test_profile_round_trip(tmp_path, config_dir):
    guest = build_guest(tmp_path)
    first = build(guest)
    prof = tmp_path / "prof.json"
    stats1 = tmp_path / "s1.json"
    proc = run_tool([*aotrun_cmd(), "--record-profile", str(prof), "--stats-json", str(stats1),
                     str(first)])
    assert proc.returncode == 42, proc.stderr
    assert json.loads(stats1.read_text())["jit_compiles"] == 1
    profile = json.loads(prof.read_text())
    assert profile["missed_pcs"] == [f"{TARGET:#x}"], profile

    rebuilt_guest = tmp_path / "computed2"
    rebuilt_guest.write_bytes(guest.read_bytes())
    second = build(rebuilt_guest, ["--profile", str(prof)])
    stats2 = tmp_path / "s2.json"
    proc = run_tool([*aotrun_cmd(), "--fallback", "none", "--stats-json", str(stats2), str(second)])
    assert proc.returncode == 42, proc.stderr
    stats = json.loads(stats2.read_text())
    assert stats["lookup_misses"] == 0 and stats["jit_compiles"] == 0, stats
