"""The real-program bench runner's own logic (bench/real.py, bench/run.py
--suite): nothing here builds or times anything."""

from __future__ import annotations

import hashlib
import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import real  # noqa: E402
import run  # noqa: E402


def test_corpus_is_deterministic():
    a, b = real.make_corpus(300_000), real.make_corpus(300_000)
    assert a == b and len(a) == 300_000
    # a prefix of a longer corpus: the 20 MiB corpus starts with the same bytes
    assert real.make_corpus(400_000)[:300_000] == a
    # pinned: a changed generator changes every input of the zstd and pcre2 cases
    assert hashlib.sha256(a).hexdigest()[:16] == PINNED_CORPUS_PREFIX
    # compressible text and incompressible noise both
    text = sum(1 for c in a if 32 <= c < 127 or c == 10)
    assert 0.5 < text / len(a) < 0.95


PINNED_CORPUS_PREFIX = "d2a0b156496a2fdd"


def test_corpus_matches_the_zstd_test(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    zstd_test = pytest.importorskip("test_thirdparty_zstd", reason="the zstd test module (tests/thirdparty) does not import here")
    assert zstd_test.make_input(tmp_path / "x", 100_000) == real.make_corpus(100_000, noise_one_in=5)


def test_normalise_drops_timings_only():
    st = (b"-- Speedtest1 for SQLite 3.40.1\n 100 - 50000 INSERTs into table with no index......  0.054s\n"
          b"       TOTAL.......................................................    1.234s\n")
    st2 = st.replace(b"0.054s", b"0.910s").replace(b"1.234s", b"12.000s")
    assert real.normalise("speedtest1", st) == real.normalise("speedtest1", st2)
    assert real.normalise("speedtest1", st) != real.normalise("speedtest1", st.replace(b"50000", b"50001"))
    cm = (b"CoreMark Size    : 666\nTotal ticks      : 1731\nIterations/Sec   : 11554.0\n"
          b"Iterations       : 20000\nseedcrc          : 0xe9f5\n[0]crcfinal      : 0x382f\nErrors detected\n")
    cm2 = cm.replace(b"1731", b"9999").replace(b"11554.0", b"3.0").replace(b"Errors detected",
                                                                          b"Correct operation validated.")
    assert real.normalise("coremark", cm) == real.normalise("coremark", cm2)
    assert b"0x382f" in real.normalise("coremark", cm)
    assert real.normalise("coremark", cm) != real.normalise("coremark", cm.replace(b"0x382f", b"0x0000"))
    with pytest.raises(ValueError):
        real.normalise("nope", b"")


def test_select_and_expand():
    names = [c.name for c in real.select("", coremark=False)]
    assert "coremark" not in names and {"lua-fib", "zstd-19", "sqlite", "pcre2grep"} <= set(names)
    assert "coremark" in [c.name for c in real.select("", coremark=True)]
    assert [c.program for c in real.select("zstd", coremark=False)] == ["zstd"] * 4
    assert [c.name for c in real.select("lua-sort,sqlite", coremark=True)] == ["lua-sort", "sqlite"]
    assert real.select("coremark", coremark=False) == []
    case = real.select("zstd-1", coremark=False)[0]
    argv = real.expand(case.args, {"corpus": "/w/c.bin", "lua": "", "small": "", "zst": ""})
    assert argv[:3] == ["-q", "-1", "-c"] and argv[3:] == ["/w/c.bin"] * real.ZSTD_PASSES["1"]
    # every case's program is built, every placeholder known
    known = {"lua": "L", "corpus": "C", "small": "S", "zst": "Z"}
    for c in real.CASES:
        assert c.program in real.PROGRAMS
        assert not any("{" in a for a in real.expand(c.args, known) if a.startswith("{"))
    assert all((real.SCRIPTS / Path(a.split("/", 1)[1]).name).is_file()
               for c in real.CASES for a in c.args if a.startswith("{lua}"))


def test_recipes_per_program_and_arch(tmp_path):
    rec = real.recipes()
    assert set(rec) == {f"bench-{p}-{a}" for p in ("lua", "zstd", "sqlite", "pcre2")
                        for a in ("riscv64", "x86_64")} | {"bench-sqlite-src"}
    keys = {name: r[0]() for name, r in rec.items()}
    assert len({str(k) for k in keys.values()}) == len(keys)       # no two share a cache entry
    assert rec["bench-sqlite-x86_64"][2] == "speedtest1"
    src = tmp_path / "coremark"
    (src / "posix").mkdir(parents=True)
    for f in real.COREMARK_FILES:
        (src / f).write_text(f"/* {f} */\n")
    (src / "coremark.h").write_text("/* h */\n")
    with_cm = real.recipes(src)
    key1 = with_cm["bench-coremark-riscv64"][0]()
    (src / "coremark.h").write_text("/* changed */\n")
    assert with_cm["bench-coremark-riscv64"][0]() != key1            # a changed checkout rebuilds


def test_parse_args():
    a = run.parse_args([])
    assert a.suite == "kernels" and a.reps == 3 and a.coremark_src is None and not a.jit_timed
    assert not a.reuse_images and run.parse_args(["--reuse-images"]).reuse_images
    a = run.parse_args(["--suite", "real", "--reps", "1", "--only", "lua", "--jit-timed"])
    assert (a.suite, a.reps, a.only, a.jit_timed) == ("real", 1, "lua", True)
    with pytest.raises(SystemExit):
        run.parse_args(["--suite", "nope"])
    with pytest.raises(SystemExit):
        run.parse_args(["--reps", "0"])
    with pytest.raises(SystemExit):
        run.parse_args(["--coremark-src", "/nonexistent"])
    assert real.command_line(_ns(coremark_src=Path("x"), only="lua")) == (
        "python bench/run.py --suite real --reps 3 --only lua --coremark-src PATH --write-docs")


def _ns(**kw):
    import argparse

    base = dict(suite="real", reps=3, only="", coremark_src=None, jit_timed=False, reuse_images=False)
    return argparse.Namespace(**{**base, **kw})


def test_interleave_alternates_and_checks_outputs():
    calls = []

    def fake(who, cmd):
        calls.append(who)
        return float(len(calls)), b"same", 0.5

    times, outs, cpus = run.interleave({"native": ["n"], "aotrun": ["a"], "qemu": ["q"]}, 3, fake)
    assert calls == ["native", "aotrun", "qemu"] * 3
    assert cpus["qemu"] == [0.5] * 3
    assert times["aotrun"] == [2.0, 5.0, 8.0] and outs == {"native": b"same", "aotrun": b"same", "qemu": b"same"}
    n = iter([b"x", b"y"])
    with pytest.raises(SystemExit):
        run.interleave({"native": ["n"]}, 2, lambda who, cmd: (1.0, next(n), 1.0))


def test_speeds_geomean_and_summary():
    s = run.speeds({"native": 1.0, "aotrun": 2.0, "qemu": 4.0, "jit": 2.5}, startup=0.5)
    assert s["aotrun_vs_native"] == 0.5 and s["qemu_vs_native"] == 0.25 and s["aotrun_vs_qemu"] == 2.0
    assert s["jit_vs_native"] == 0.4 and s["aotrun_vs_native_excl_startup"] == pytest.approx(1 / 1.5)
    assert run.speeds({"native": 1.0, "aotrun": 0.1}, startup=0.2)["aotrun_vs_native_excl_startup"] is None
    assert run.speeds({"native": 1.0, "aotrun": 2.0})["qemu_vs_native"] is None
    assert run.geomean([0.5, 2.0]) == pytest.approx(1.0) and math.isnan(run.geomean([]))
    rows = [_row("lua-a", "lua", 0.25, 2.0), _row("lua-b", "lua", 1.0, 8.0), _row("zstd-1", "zstd", 0.5, 1.0)]
    summ = real.summarise(rows)
    assert summ["by_program"]["lua"]["aotrun_vs_native"] == pytest.approx(0.5)
    # programs count once each: geomean(0.5 (lua), 0.5 (zstd)); cases: (0.25*1*0.5)^(1/3)
    assert summ["geomean_programs"]["aotrun_vs_native"] == pytest.approx(0.5)
    assert summ["geomean_cases"]["aotrun_vs_native"] == pytest.approx(0.125 ** (1 / 3))
    assert summ["geomean_programs"]["aotrun_vs_qemu"] == pytest.approx(math.sqrt(4.0 * 1.0))
    assert summ["geomean_programs"]["jit_vs_native"] is None


def _row(case, prog, vs_native, vs_qemu):
    return {"case": case, "program": prog, "what": case, "args": "", "native_s": vs_native, "qemu_s": 1 / vs_qemu,
            "aotrun_s": 1.0, "jit_s": None, "aotrun_vs_native": vs_native, "aotrun_vs_native_excl_startup": None,
            "qemu_vs_native": vs_native * vs_qemu, "aotrun_vs_qemu": vs_qemu}


def _result(rows):
    summary = real.summarise(rows)
    summary.update(reps=3, jit_timed=False, load_before=(4.0, 0, 0), load_after=(5.0, 0, 0), date="2026-12-03",
                   commit="abc1234", dirty=True, command="python bench/run.py --suite real --reps 3 --write-docs",
                   startup={"native_s": 0.001, "qemu_s": 0.02, "aotrun_s": 0.1},
                   programs={p: {"versions": "1.0", "seconds": 99.0} for p in summary["by_program"]})
    return {"rows": rows, "summary": summary}


def test_write_docs_goes_after_the_kernel_table_and_replaces_itself(tmp_path):
    doc = tmp_path / "performance.md"
    doc.write_text(f"# Performance\n\n## Benchmark suite\n\n{run.BEGIN}\nkernels\n{run.END}\n\n## Signals\n\ntail\n")
    res = _result([_row("lua-a", "lua", 0.25, 2.0), _row("zstd-1", "zstd", 0.5, 1.0)])
    real.write_docs(res, doc=doc)
    text = doc.read_text()
    assert text.index(run.END) < text.index("## Real programs") < text.index(real.BEGIN) < text.index("## Signals")
    assert "| lua-a |" in text and "| zstd | zstd 1.0 |" in text and "abc1234" in text and "load average 4.0" in text
    assert "qemu-riscv64 0.020 s, aotrun of its image 0.100 s" in text
    res["rows"][0]["native_s"] = 7.777
    real.write_docs(res, kernels={"summary": {"geomean_aotrun_vs_native": 0.777, "geomean_aotrun_vs_qemu": 3.2}},
                    doc=doc)
    text2 = doc.read_text()
    assert text2.count(real.BEGIN) == 1 and text2.count("## Real programs") == 1 and "7.777" in text2
    assert "kernel suite in the same run (table above): 0.777× native" in text2
    assert text2.endswith("## Signals\n\ntail\n")
