"""Helpers for tests and tools that need a small, real image without the builder."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from aotc import __version__
from aotc.elf.segments import PF_R, PF_W, PF_X, GuestSegment
from aotc.image.container import METADATA_FORMAT_VERSION, ImageContents
from aotc.image.host import running_host_isa

TEST_C_SOURCE = """
int aotc_test_add(int a, int b) { return a + b; }
int aotc_test_value = 1234;
"""


def sample_metadata(**overrides) -> dict:
    metadata = {
        "format_version": METADATA_FORMAT_VERSION,
        "guest_isa": "riscv64",
        "host_isa": running_host_isa(),
        "entry": 0x10078,
        "phdr_vaddr": 0x10040,
        "phent": 56,
        "phnum": 2,
        "input_sha256": "ab" * 32,
        "tool_version": __version__,
        "arena_bits": 32,
        "engine": "aot",
        "stats": {
            "blocks": 3,
            "instructions": 17,
            "untranslated": [{"pc": 0x10100, "mnemonic": "fence.i", "reason": "test"}],
        },
    }
    metadata.update(overrides)
    return metadata


def sample_segments() -> tuple[GuestSegment, ...]:
    return (
        GuestSegment(vaddr=0x10000, memsz=0x1000, flags=PF_R | PF_X, data=bytes(range(256)) * 4),
        GuestSegment(vaddr=0x11000, memsz=0x2000, flags=PF_R | PF_W, data=b"data segment" * 8),
    )


def build_test_host_object(workdir: Path, source: str = TEST_C_SOURCE) -> bytes:
    """Compile ``source`` into a host shared object with the system C compiler."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        raise RuntimeError("no C compiler (cc) to build a test shared object")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    src = workdir / "aotc_test_host.c"
    out = workdir / "aotc_test_host.so"
    src.write_text(source)
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", str(out), str(src)], check=True)
    return out.read_bytes()


def sample_contents(host_object: bytes, **metadata_overrides) -> ImageContents:
    return ImageContents(host_object, sample_metadata(**metadata_overrides), sample_segments())
