"""``aotc build`` for a guest of the host's own ISA: no translation, engine "kvm".

The image carries the guest segments and entry/phdr numbers like an AOT image;
its host object is a tiny empty shared object (the container and loader want
a valid host ELF .so), because the guest code runs as-is inside a KVM vCPU.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from aotc.errors import BuildError

KVM_RUNTIME_VERSION = 1
_STUB_CACHE: bytes | None = None


def empty_host_object() -> bytes:
    """A minimal x86_64 ELF shared object with no code of its own."""
    global _STUB_CACHE
    if _STUB_CACHE is not None:
        return _STUB_CACHE
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise BuildError("no C compiler driver ('cc') found to link the image's host object "
                         "(install gcc)")
    with tempfile.TemporaryDirectory(prefix="aotc-kvm-") as tmp:
        src = Path(tmp, "empty.c")
        src.write_text("/* aotc kvm image: the guest runs in a vCPU */\n"
                       "const int aotc_kvm_image = 1;\n")
        out = Path(tmp, "image.so")
        proc = subprocess.run([cc, "-shared", "-nostartfiles", "-nostdlib", "-o", str(out), str(src),
                               "-Wl,--build-id=none,-z,noexecstack"],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise BuildError("linking the image's host object failed: "
                             + (proc.stderr.strip().splitlines() or ["?"])[0])
        _STUB_CACHE = out.read_bytes()
    return _STUB_CACHE


def build_kvm_image(elf, guest: Path, output: Path, *, key, t0: float | None = None):
    """Write a signed engine-"kvm" image of ``elf``; returns a BuildReport."""
    from aotc.build import ARENA_BITS, BuildReport, guest_metadata
    from aotc.image import ImageContents, write_image

    t0 = time.perf_counter() if t0 is None else t0
    for seg in elf.segments:
        if seg.vaddr + seg.memsz > (1 << ARENA_BITS):
            raise BuildError(f"{guest}: segment at {seg.vaddr:#x} lies outside the "
                             f"{1 << (ARENA_BITS - 30)} GiB guest address space")
    host_object = empty_host_object()
    code_bytes = sum(len(s.data) for s in elf.segments if s.executable)
    metadata = {
        **guest_metadata(elf, Path(guest), engine="kvm"),
        "kvm_runtime_version": KVM_RUNTIME_VERSION,
        "stats": {"blocks": 0, "instructions": 0, "entry_sources": {}, "untranslated": []},
    }
    write_image(Path(output), ImageContents(host_object, metadata, tuple(elf.segments)), key)
    total = time.perf_counter() - t0
    return BuildReport(
        guest=str(guest), output=str(output), guest_isa=elf.isa, engine="kvm",
        image_bytes=Path(output).stat().st_size, host_code_bytes=len(host_object),
        guest_code_bytes=code_bytes, timings={"total_seconds": round(total, 3)},
    )
