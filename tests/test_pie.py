"""Position-independent executables (ET_DYN) on every engine.

A static-pie guest (no PT_INTERP) is placed at a load base by the ELF
reader (``aotc.elf.guest_elf.ET_DYN_BASE``) and relocates its own data at
start. ``tests/data/pieprobe.c``, built -static-pie for riscv64 (musl, with
``python -m ziglang cc``: Debian's riscv64 glibc ships no rcrt1.o), calls
through function pointers in relocated data, walks a pointer table, uses
TLS, checks AT_ENTRY/AT_PHDR against where it found itself, prints
addresses only relative to its own symbols, its argv and environment, and
exits with a status computed from them: each engine must match
qemu-riscv64. A PIE that needs an interpreter (dynamically linked) is
refused with one line that says it needs a sysroot.
"""

from __future__ import annotations

import importlib.util
import inspect
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BIN, aotc_cmd, aotrun_cmd, run_tool

from aotc.elf.guest_elf import ET_DYN_BASE, ET_DYN_TOP, read_guest_elf, read_guest_elf_bytes
from aotc.elf.segments import PF_R, PF_W, PF_X
from aotc.errors import UnsupportedGuestError

DATA = Path(__file__).parent / "data"
ARGS = ["one", "two words", ""]
ENV = {"PIE_PROBE": "set by the test"}


# -- the probe, qemu's reference ----------------------------------------------

@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> Path:
    if importlib.util.find_spec("ziglang") is None:
        pytest.skip("ziglang not installed (pip install ziglang): it builds the riscv64 static-pie")
    out = tmp_path_factory.mktemp("pie") / "pieprobe"
    proc = subprocess.run([sys.executable, "-m", "ziglang", "cc", "-target", "riscv64-linux-musl",
                           "-static-pie", "-fPIE", "-O2", "-s", "-o", str(out), str(DATA / "pieprobe.c")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    elf = read_guest_elf(out)
    assert elf.pie and elf.load_base == ET_DYN_BASE, elf
    return out


@pytest.fixture(scope="module")
def reference(probe) -> tuple[str, int]:
    qemu = shutil.which("qemu-riscv64")
    if qemu is None:
        pytest.skip("qemu-riscv64 not installed (apt-get install qemu-user)")
    proc = subprocess.run([qemu, str(probe), *ARGS], capture_output=True, env=ENV, timeout=60)
    out = proc.stdout.decode()
    assert "add -> 6" in out and "AT_ENTRY is _start 1, AT_PHDR is ours 1, AT_BASE 0" in out, out
    return out, proc.returncode


@pytest.fixture(scope="module")
def image(probe, config_dir) -> Path:
    out = probe.with_suffix(".so")
    proc = run_tool([*aotc_cmd(), "build", "-q", str(probe), "-o", str(out)], timeout=900)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return out


def _run(target: Path, *opts: str) -> tuple[str, int, str]:
    env = [f"--env={k}={v}" for k, v in ENV.items()]
    proc = run_tool([*aotrun_cmd(), *opts, "--clear-env", *env, str(target), *ARGS], timeout=300)
    err = proc.stderr.decode(errors="replace")
    assert "Traceback" not in err, err
    return proc.stdout.decode(), proc.returncode, err


@pytest.mark.parametrize("engine", ["interp", "jit"])
def test_static_pie_matches_qemu_from_the_elf(probe, reference, engine):
    out, status, err = _run(probe, f"--engine={engine}")
    assert (out, status) == reference, err


def test_static_pie_image_matches_qemu(image, reference):
    out, status, err = _run(image, "--stats")
    assert (out, status) == reference, err
    # Discovery found the code at the base it runs at: nothing missed.
    assert "lookup misses 0" in err, err


def test_static_pie_image_records_its_base(image):
    proc = run_tool([*aotc_cmd(), "inspect", str(image)])
    text = proc.stdout.decode()
    assert f"load base:     {ET_DYN_BASE:#x} (position-independent" in text, text
    assert f"  {ET_DYN_BASE:#018x}-" in text, text         # the first segment is at the base
    import json

    meta = json.loads(run_tool([*aotc_cmd(), "inspect", "--json", str(image)]).stdout)["metadata"]
    assert meta["load_base"] == ET_DYN_BASE
    assert meta["stats"]["entry_sources"]["relocations"] > 0   # code pointers the relocations store


def test_a_guest_execs_a_static_pie(probe, reference):
    """exec of a static-pie from a guest (the interpreter carries over)."""
    proc = run_tool([*aotrun_cmd(), "--engine=interp", "--clear-env",
                     *[f"--env={k}={v}" for k, v in ENV.items()],
                     str(BIN / "forkexec.riscv64-musl"), "run", str(probe), *ARGS], timeout=300)
    assert (proc.stdout.decode(), proc.returncode) == reference, proc.stderr.decode(errors="replace")


# -- dynamically linked PIEs: refused, one line --------------------------------

DYNAMIC = BIN / "hello-dynamic.riscv64"


def _one_line_refusal(proc) -> str:
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode not in (0, None) and proc.returncode < 128, (proc.returncode, err)
    assert "Traceback" not in err, err
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1, err
    assert "dynamically linked" in lines[0] and "PT_INTERP /lib/ld-linux-riscv64" in lines[0], err
    assert "sysroot" in lines[0], err
    return lines[0]


def test_dynamic_pie_is_refused_by_read_guest_elf():
    with pytest.raises(UnsupportedGuestError, match="position-independent executable needs .* sysroot"):
        read_guest_elf(DYNAMIC)


def test_dynamic_pie_is_refused_by_aotc_build(tmp_path, config_dir):
    out = tmp_path / "dyn.so"
    _one_line_refusal(run_tool([*aotc_cmd(), "build", "-q", str(DYNAMIC), "-o", str(out)]))
    assert not out.exists()


@pytest.mark.parametrize("engine", ["aot", "jit", "interp"])
def test_dynamic_pie_is_refused_by_aotrun(engine):
    line = _one_line_refusal(run_tool([*aotrun_cmd(), f"--engine={engine}", str(DYNAMIC)]))
    assert line.startswith("aotrun: error: "), line


# -- the reader: one load base for every address ------------------------------

EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
PHDR = struct.Struct("<IIQQQQQQ")
RELA = struct.Struct("<QQq")


def _pie(phdrs: list[tuple], entry: int, body: bytes) -> bytes:
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    hdr = EHDR.pack(ident, 3, 243, 1, entry, 64, 0, 0, 64, 56, len(phdrs), 64, 0, 0)
    head = hdr + b"".join(PHDR.pack(*p) for p in phdrs)
    return head + body[len(head):]


def _synthetic_pie() -> bytes:
    """Text at 0 (0x2000 bytes, nops), data at 0x2000 with a RELA table, a
    RELR table, the words they locate, PT_DYNAMIC, PT_TLS and PT_PHDR."""
    body = bytearray(0x3000)
    body[0x1000:0x2000] = b"\x13\x00\x00\x00" * 0x400
    # RELA at 0x2100: two RELATIVE (3) to code, one IRELATIVE (58), one other type (2).
    rela = [(0x2800, 3, 0x1040), (0x2808, 3, 0x1100), (0x2810, 58, 0x1200), (0x2818, 2, 0x1300)]
    for i, (off, typ, add) in enumerate(rela):
        RELA.pack_into(body, 0x2100 + 24 * i, off, typ, add)
    # RELR at 0x2200: address 0x2820, then a bitmap whose bit 1 is the next word, 0x2828.
    struct.pack_into("<QQ", body, 0x2200, 0x2820, 0b11)
    struct.pack_into("<QQ", body, 0x2820, 0x1400, 0x1500)     # link-time values in place
    dyn = [(7, 0x2100), (8, 24 * len(rela)), (9, 24), (36, 0x2200), (35, 16), (37, 8), (0, 0)]
    for i, (tag, val) in enumerate(dyn):
        struct.pack_into("<qQ", body, 0x2400 + 16 * i, tag, val)
    phdrs = [(6, PF_R, 64, 64, 64, 6 * 56, 6 * 56, 8),
             (1, PF_R | PF_X, 0, 0, 0, 0x2000, 0x2000, 0x1000),
             (1, PF_R | PF_W, 0x2000, 0x2000, 0x2000, 0x1000, 0x3000, 0x1000),
             (2, PF_R | PF_W, 0x2400, 0x2400, 0x2400, 16 * len(dyn), 16 * len(dyn), 8),
             (7, PF_R, 0x2900, 0x2900, 0x2900, 8, 16, 8),
             (0x6474E551, PF_R | PF_W, 0, 0, 0, 0, 0, 16)]     # PT_GNU_STACK
    return _pie(phdrs, 0x1010, bytes(body))


def test_every_address_is_rebased():
    elf = read_guest_elf_bytes(_synthetic_pie(), "pie")
    b = ET_DYN_BASE
    assert elf.pie and elf.load_base == b
    assert elf.entry == b + 0x1010
    assert [(s.vaddr, s.memsz) for s in elf.segments] == [(b, 0x2000), (b + 0x2000, 0x3000)]
    assert elf.exec_ranges == ((b, b + 0x2000),)
    assert elf.phdr_vaddr == b + 64
    assert (elf.tls.vaddr, elf.tls.filesz, elf.tls.memsz) == (b + 0x2900, 8, 16)
    # The bytes are the file's: the program relocates itself.
    assert struct.unpack_from("<Q", elf.segments[1].data, 0x820)[0] == 0x1400
    # RELATIVE and IRELATIVE addends, RELR-located words; not the other type.
    assert elf.relocated_pointers == tuple(b + v for v in (0x1040, 0x1100, 0x1200, 0x1400, 0x1500))


def test_load_base_can_be_chosen():
    elf = read_guest_elf_bytes(_synthetic_pie(), "pie", load_base=0x4000_0000)
    assert elf.load_base == 0x4000_0000 and elf.segments[0].vaddr == 0x4000_0000
    assert elf.entry == 0x4000_1010
    with pytest.raises(ValueError):
        read_guest_elf_bytes(_synthetic_pie(), "pie", load_base=0x4000_0800)


def test_a_large_pie_ends_below_the_mmap_area():
    raw = bytearray(_synthetic_pie())
    # Make the data segment's memsz 1.5 GiB: it no longer fits above ET_DYN_BASE.
    PHDR.pack_into(raw, 64 + 2 * 56, 1, PF_R | PF_W, 0x2000, 0x2000, 0x2000, 0x1000, 0x6000_0000, 0x1000)
    elf = read_guest_elf_bytes(bytes(raw), "big")
    assert elf.segments[-1].end <= ET_DYN_TOP
    assert elf.segments[0].vaddr == ET_DYN_TOP - (0x2000 + 0x6000_0000)


def test_malformed_dynamic_data_gives_fewer_hints_not_errors():
    raw = bytearray(_synthetic_pie())
    struct.pack_into("<qQ", raw, 0x2400, 7, 0xFFFF_FFFF_0000)   # DT_RELA outside every segment
    struct.pack_into("<qQ", raw, 0x2400 + 48, 36, 0x7FFF_0000)  # DT_RELR likewise
    assert read_guest_elf_bytes(bytes(raw), "odd").relocated_pointers == ()


def test_the_base_fits_the_runtime_layout():
    """ET_DYN_BASE lies above where fixed-address programs go, the program
    and its break below the runtime's mmap base, the stack above that."""
    from runtime.linux.kernel import LinuxKernel
    from runtime.process import DEFAULT_STACK_SIZE, DEFAULT_STACK_TOP

    mmap_base = inspect.signature(LinuxKernel).parameters["mmap_base_hint"].default
    assert ET_DYN_TOP == mmap_base
    assert 0x1000_0000 < ET_DYN_BASE < ET_DYN_TOP - (1 << 30)      # 1 GiB of break at least
    assert ET_DYN_TOP <= DEFAULT_STACK_TOP - DEFAULT_STACK_SIZE
    assert ET_DYN_BASE % 0x10000 == 0


def test_a_static_pie_is_a_guest_and_an_image_is_not(probe, image):
    from runtime.machine import _is_elf

    assert _is_elf(probe)
    assert not _is_elf(image)                 # also ET_DYN, but with the image footer
    assert _is_elf(BIN / "hello.riscv64")


@pytest.mark.parametrize("value, ok", [(ET_DYN_BASE, True), (0, True), (-4096, False), ("0x1000", False),
                                       (True, False)])
def test_image_metadata_load_base_is_checked(value, ok):
    from aotc.errors import ImageError
    from aotc.image.container import _check_metadata
    from aotc.image.testing import sample_metadata

    _check_metadata(sample_metadata())              # optional: fixed-address images have none
    if ok:
        _check_metadata(sample_metadata(load_base=value))
    else:
        with pytest.raises(ImageError, match="load_base"):
            _check_metadata(sample_metadata(load_base=value))


def test_x86_64_static_pie_under_kvm(tmp_path, config_dir):
    """The same reader feeds the KVM engine: a glibc x86_64 static-pie runs
    in a vCPU at the same base and prints what it prints natively."""
    from runtime.kvm.api import kvm_unavailable_reason

    if kvm_unavailable_reason() is not None:
        pytest.skip(f"KVM unusable: {kvm_unavailable_reason()}")
    import platform

    if platform.machine() != "x86_64" or shutil.which("gcc") is None:
        pytest.skip("needs an x86_64 host with gcc")
    exe = tmp_path / "xpie"
    proc = subprocess.run(["gcc", "-static-pie", "-fPIE", "-O2", "-o", str(exe), str(DATA / "pieprobe.c")],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"gcc -static-pie failed: {proc.stderr.strip()[:200]}")
    assert read_guest_elf(exe).load_base == ET_DYN_BASE
    native = subprocess.run([str(exe), *ARGS], capture_output=True, env=ENV, timeout=60)
    image = tmp_path / "xpie.so"
    built = run_tool([*aotc_cmd(), "build", "-q", str(exe), "-o", str(image)])
    assert built.returncode == 0, built.stderr
    out, status, err = _run(image)
    assert (out, status) == (native.stdout.decode(), native.returncode), err
