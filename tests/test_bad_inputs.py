"""Bad input through the real command line tools: one clear line, nonzero
exit, never a Python traceback (guide principle 6)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from conftest import BIN, aotc_cmd, aotrun_cmd, run_tool

HELLO = BIN / "hello.riscv64-musl"


def _check_refused(proc, *needles: str) -> str:
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode != 0, err
    assert "Traceback" not in err and "Traceback" not in proc.stdout.decode(errors="replace")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err          # one line, not a dump
    for needle in needles:
        assert needle in err, err
    return err


# -- aotc build: guest ELF validation -------------------------------------

def _elf_variant(tmp_path: Path, name: str, patch) -> Path:
    data = bytearray(HELLO.read_bytes())
    patch(data)
    p = tmp_path / name
    p.write_bytes(bytes(data))
    return p


@pytest.mark.parametrize("case, needles", [
    ("not-elf", ("not an ELF",)),
    ("truncated", ("truncated",)),
    ("elf32", ("32-bit",)),
    ("s390x", ("unsupported guest ISA",)),
    ("dynamic", ("dynamically linked", "not supported yet")),
    ("aarch64-aot", ("aarch64", "not supported yet")),
    ("missing", ("no such file",)),
])
def test_build_refuses_bad_guest(case, needles, tmp_path, config_dir):
    if case == "not-elf":
        guest = tmp_path / "notes.txt"
        guest.write_text("this is not a program\n")
    elif case == "truncated":
        guest = tmp_path / "trunc.elf"
        guest.write_bytes(HELLO.read_bytes()[:40])
    elif case == "elf32":
        guest = _elf_variant(tmp_path, "elf32", lambda d: d.__setitem__(4, 1))     # EI_CLASS = ELFCLASS32
    elif case == "s390x":
        guest = _elf_variant(tmp_path, "s390x", lambda d: d.__setitem__(slice(18, 20), struct.pack("<H", 22)))
    elif case == "dynamic":
        guest = BIN / "hello-dynamic.riscv64"
    elif case == "aarch64-aot":      # (x86_64 guests build kvm images on x86_64 hosts)
        guest = BIN / "hello.aarch64"
    else:
        guest = tmp_path / "does-not-exist"
    proc = run_tool([*aotc_cmd(), "build", "-q", str(guest), "-o", str(tmp_path / "out.so")])
    _check_refused(proc, *needles)
    assert not (tmp_path / "out.so").exists()


# -- aotrun: image verification --------------------------------------------

def _footer(data: bytes) -> tuple:
    from aotc.image.layout import FOOTER

    return FOOTER.unpack(data[-FOOTER.size:])


def _flip(data: bytes, offset: int) -> bytes:
    out = bytearray(data)
    out[offset] ^= 0x01
    return bytes(out)


@pytest.fixture(scope="module")
def good_image(build_image_cached) -> Path:
    return build_image_cached(HELLO)


def test_good_image_runs(good_image):
    proc = run_tool([*aotrun_cmd(), "--clear-env", str(good_image), "world"])
    assert proc.returncode == 0, proc.stderr
    assert b"hello, world" in proc.stdout


@pytest.mark.parametrize("region", ["code", "metadata", "signature", "public-key"])
def test_aotrun_refuses_flipped_byte(region, good_image, tmp_path):

    data = good_image.read_bytes()
    f = _footer(data)
    host_size, meta_offset = f[4], f[6]
    if region == "code":
        # A byte inside the translated code (the .text of the host object).
        from elftools.elf.elffile import ELFFile
        import io

        text = ELFFile(io.BytesIO(data[:host_size])).get_section_by_name(".text")
        offset = text["sh_offset"] + text["sh_size"] // 2
    elif region == "metadata":
        offset = meta_offset + 10
    elif region == "signature":
        offset = len(data) - 10
    else:
        offset = len(data) - 64 - 16
    bad = tmp_path / f"flipped-{region}.so"
    bad.write_bytes(_flip(data, offset))
    proc = run_tool([*aotrun_cmd(), str(bad)])
    err = _check_refused(proc)
    assert "modified" in err or "untrusted" in err, err
    assert b"hello" not in proc.stdout


def test_aotrun_refuses_untrusted_key(good_image, tmp_path):
    other = tmp_path / "other-config"
    proc = run_tool([*aotrun_cmd(), str(good_image)], env={"AOTC_CONFIG_DIR": str(other)})
    _check_refused(proc, "untrusted key")


def test_aotrun_trusts_key_given_with_trust(good_image, tmp_path, config_dir):
    other = tmp_path / "other-config"
    pub = Path(config_dir) / "signing-key.pub"
    proc = run_tool([*aotrun_cmd(), "--trust", str(pub), "--clear-env", str(good_image), "x"],
                    env={"AOTC_CONFIG_DIR": str(other)})
    assert proc.returncode == 0, proc.stderr
    assert b"hello, x" in proc.stdout


def test_aotrun_refuses_unsigned_image(good_image, tmp_path):
    from aotc.image import write_image
    from loader import read_image_file

    unsigned = tmp_path / "unsigned.so"
    write_image(unsigned, read_image_file(good_image).contents, None)
    proc = run_tool([*aotrun_cmd(), str(unsigned)])
    _check_refused(proc, "not signed")


@pytest.mark.parametrize("case", ["truncated", "not-image", "empty", "missing", "plain-elf"])
def test_aotrun_refuses_non_images(case, good_image, tmp_path):
    p = tmp_path / f"{case}.so"
    if case == "truncated":
        p.write_bytes(good_image.read_bytes()[:-100])
    elif case == "not-image":
        p.write_text("hello\n")
    elif case == "empty":
        p.write_bytes(b"")
    elif case == "plain-elf":
        p.write_bytes(HELLO.read_bytes())
    proc = run_tool([*aotrun_cmd(), str(p)])
    _check_refused(proc)


def test_aotrun_wrong_host_image(good_image, tmp_path):
    """An image whose host object is for another machine is refused before mapping."""
    from aotc.image import ImageContents, write_image
    from aotc.keys import load_or_create_signing_key
    from loader import read_image_file

    contents = read_image_file(good_image).contents
    host = bytearray(contents.host_object)
    host[18:20] = struct.pack("<H", 183)  # EM_AARCH64
    meta = dict(contents.metadata, host_isa="aarch64")
    bad = tmp_path / "aarch64-host.so"
    write_image(bad, ImageContents(bytes(host), meta, contents.segments), load_or_create_signing_key())
    proc = run_tool([*aotrun_cmd(), str(bad)])
    _check_refused(proc, "aarch64")


@pytest.mark.parametrize("version", ["older", "missing"])
def test_aotrun_refuses_other_codegen_version(version, good_image, tmp_path):
    """An image from another code generator version (a validly signed one:
    say, made by an older aotc) may assume another calling convention or
    state layout, so it is refused before any of its code runs."""
    from aotc.backend.abi import CODEGEN_VERSION
    from aotc.image import ImageContents, write_image
    from aotc.keys import load_or_create_signing_key
    from loader import read_image_file

    contents = read_image_file(good_image).contents
    assert contents.metadata["codegen_version"] == CODEGEN_VERSION
    meta = dict(contents.metadata, codegen_version=CODEGEN_VERSION - 1)
    if version == "missing":
        del meta["codegen_version"]
    bad = tmp_path / f"{version}.so"
    write_image(bad, ImageContents(contents.host_object, meta, contents.segments), load_or_create_signing_key())
    proc = run_tool([*aotrun_cmd(), "--clear-env", str(bad), "x"])
    _check_refused(proc, "code generator version")
    assert b"hello" not in proc.stdout


def test_guest_crash_is_reported_with_pc(build_image_cached):
    image = build_image_cached(BIN / "crash.riscv64-musl")
    proc = run_tool([*aotrun_cmd(), "--clear-env", str(image)])
    err = proc.stderr.decode()
    assert proc.returncode == 139, err
    assert "SIGSEGV at pc 0x" in err and "Traceback" not in err


def test_strace_logs_calls(build_image_cached):
    image = build_image_cached(HELLO)
    proc = run_tool([*aotrun_cmd(), "--strace", "--clear-env", str(image), "world"])
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    assert "exit_group(0" in err
    assert any(line.startswith("write") or line.startswith("writev") for line in err.splitlines()), err
