"""zstd 1.5 (Debian's libzstd source package, cross-built static for
riscv64 with its default multithreading by tests/thirdparty/sources.py)
round-trips a deterministically generated 2 MB file (1 MB on the slow
interpreter) on every engine, and
writes the same compressed bytes as under qemu-riscv64.

``-T2 -B524288`` compresses with two worker threads working on four jobs
(512 KiB chunks; zstd's output is still deterministic); the default invocation uses an
I/O thread pool (asynchronous reads and writes) even at -T1; ``-c`` streams
stdin to stdout.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from thirdparty.corpus import make_corpus
from thirdparty.fixtures import engines_for, need_reference, program, target
from thirdparty.harness import assert_same, reference, under_engine

pytestmark = pytest.mark.thirdparty

SIZE = 2 * 1024 * 1024
ENV = {"LC_ALL": "C"}
# The interpreter runs zstd ~300x slower than qemu (2 MB -T2 took 140 s on
# a busy 2-core machine, the three round trips 9 minutes): it gets the
# first 1 MiB, still two 512 KiB jobs for -T2's two workers.
SIZE_FOR = {"interp": 1024 * 1024}
TIMEOUT = {"interp": 900, "jit": 300, "aot": 300}


def make_input(path: Path, size: int = SIZE) -> bytes:
    """~2 MB, deterministic: text lines (compressible) and hash-chained
    noise (incompressible), so that compression has real work at every
    level and output that differs is a real difference."""
    data = make_corpus(size, noise_one_in=5)
    path.write_bytes(data)
    return data


def _dirs(tmp_path: Path, engine: str) -> tuple[Path, Path, bytes]:
    ref, got = tmp_path / "ref", tmp_path / "got"
    ref.mkdir()
    got.mkdir()
    data = make_input(ref / "input.bin", SIZE_FOR.get(engine, SIZE))
    (got / "input.bin").write_bytes(data)
    return ref, got, data


def _setup(engine, request):
    need_reference()
    zstd = program("zstd")
    return zstd, target(engine, zstd, request)


@pytest.mark.parametrize("engine", engines_for("zstd"))
def test_zstd_two_threads_roundtrip(engine, tmp_path, request):
    zstd, image = _setup(engine, request)
    refdir, gotdir, data = _dirs(tmp_path, engine)
    args = ["-q", "-T2", "-3", "-B524288", "input.bin", "-o", "out.zst"]
    ref = reference(zstd.binary, args, ENV, refdir)
    assert ref.returncode == 0, ref.describe()
    got = under_engine(engine, zstd.binary, args, ENV, gotdir, image=image, timeout=TIMEOUT[engine])
    assert_same(ref, got)
    assert (gotdir / "out.zst").read_bytes() == (refdir / "out.zst").read_bytes(), \
        "-T2 output differs from qemu's (zstd's output is deterministic for given parameters)"
    args = ["-q", "-d", "out.zst", "-o", "back.bin"]
    got = under_engine(engine, zstd.binary, args, ENV, gotdir, image=image, timeout=TIMEOUT[engine])
    assert got.returncode == 0, got.describe()
    assert (gotdir / "back.bin").read_bytes() == data


@pytest.mark.parametrize("engine", engines_for("zstd"))
def test_zstd_default_invocation(engine, tmp_path, request):
    """Plain ``zstd FILE`` then ``zstd -d``: the I/O thread pool."""
    zstd, image = _setup(engine, request)
    refdir, gotdir, data = _dirs(tmp_path, engine)
    ref = reference(zstd.binary, ["input.bin"], ENV, refdir)
    assert ref.returncode == 0, ref.describe()
    got = under_engine(engine, zstd.binary, ["input.bin"], ENV, gotdir, image=image, timeout=TIMEOUT[engine])
    assert_same(ref, got)
    assert (gotdir / "input.bin.zst").read_bytes() == (refdir / "input.bin.zst").read_bytes()
    got = under_engine(engine, zstd.binary, ["-d", "input.bin.zst", "-o", "back.bin"], ENV, gotdir,
                       image=image, timeout=TIMEOUT[engine])
    assert got.returncode == 0, got.describe()
    assert (gotdir / "back.bin").read_bytes() == data


@pytest.mark.parametrize("engine", engines_for("zstd"))
def test_zstd_stdin_to_stdout(engine, tmp_path, request):
    zstd, image = _setup(engine, request)
    refdir, gotdir, data = _dirs(tmp_path, engine)
    ref = reference(zstd.binary, ["-c", "-5"], ENV, refdir, stdin=refdir / "input.bin")
    assert ref.returncode == 0 and len(ref.stdout) < len(data), ref.describe()
    got = under_engine(engine, zstd.binary, ["-c", "-5"], ENV, gotdir, image=image, timeout=TIMEOUT[engine],
                       stdin=gotdir / "input.bin")
    assert_same(ref, got)
    (gotdir / "stream.zst").write_bytes(got.stdout)
    back = under_engine(engine, zstd.binary, ["-d", "-c", "stream.zst"], ENV, gotdir, image=image, timeout=TIMEOUT[engine])
    assert back.returncode == 0 and back.stdout == data, back.describe()


@pytest.mark.parametrize("engine", engines_for("zstd"))
def test_zstd_output_keeps_the_input_times(engine, tmp_path, request):
    """zstd gives its output the input's times and mode (utimensat,
    fchownat, fchmodat) as it does under qemu; a small input, this is about
    the metadata calls."""
    zstd, image = _setup(engine, request)
    refdir, gotdir, data = _dirs(tmp_path, engine)
    for d in (refdir, gotdir):
        (d / "small.bin").write_bytes(data[:65536])
        (d / "small.bin").chmod(0o640)
        os.utime(d / "small.bin", (1_000_000_000, 1_000_000_000))
    ref = reference(zstd.binary, ["-q", "small.bin"], ENV, refdir)
    got = under_engine(engine, zstd.binary, ["-q", "small.bin"], ENV, gotdir, image=image,
                       timeout=TIMEOUT[engine])
    assert_same(ref, got)
    want = (refdir / "small.bin.zst").stat()
    assert (int(want.st_mtime), want.st_mode & 0o777) == (1_000_000_000, 0o640), "qemu's zstd kept no times?"
    have = (gotdir / "small.bin.zst").stat()
    assert (int(have.st_mtime), have.st_mode & 0o777) == (1_000_000_000, 0o640), \
        f"output mtime {have.st_mtime} mode {oct(have.st_mode)}\n{got.describe()}"
