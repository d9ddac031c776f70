"""The JIT's compile worker: LLVM IR text in, linked shared object out.

``aotrun`` never loads LLVM into its own process: llvmlite creates a
writable+executable trampoline page when it initialises (a libffi closure),
and the runtime promises that no page of its process is ever writable and
executable.  This worker (``python -m runtime.jit_worker``, one per run,
started at the first JIT compile) runs the same ``compile_ir`` as ``aotc
build`` and links with ``ld``; the runtime loads the result from a sealed
memfd.

Protocol on stdin/stdout, each message ``u32 length`` + payload: requests are
``u8 opt_level`` + IR (UTF-8); replies are ``b"K"`` + shared object or
``b"E"`` + error text.
"""

from __future__ import annotations

import functools
import os
import shutil
import struct
import subprocess
import sys
import tempfile


def read_msg(f) -> bytes | None:
    head = f.read(4)
    if len(head) < 4:
        return None
    (n,) = struct.unpack("<I", head)
    data = f.read(n)
    if len(data) < n:
        return None
    return data


def write_msg(f, data: bytes) -> None:
    f.write(struct.pack("<I", len(data)) + data)
    f.flush()


@functools.cache
def _libgcc() -> list[str]:
    """The compiler's static runtime library: its soft-float binary128
    routines (__addtf3 ...) serve RMM rounding (aotc/backend/rmm.py); ``ld``
    takes only the members the code calls."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return []
    proc = subprocess.run([cc, "-print-libgcc-file-name"], capture_output=True, text=True, check=False)
    path = proc.stdout.strip()
    return [path] if proc.returncode == 0 and os.path.isfile(path) else []


def link(obj: bytes) -> bytes:
    """Link one object into a shared object with the system linker (``ld``
    directly: the ``cc`` driver costs ~40 ms per region).  ``-z text`` refuses
    text relocations, ``-z separate-code`` keeps code off data pages; FP
    helpers the code may call (libm's fma) resolve against the runtime,
    binary128 soft-float from libgcc is linked in."""
    ld = shutil.which("ld")
    if ld is None:
        raise RuntimeError("the JIT needs the system linker 'ld' (install binutils)")
    with tempfile.TemporaryDirectory(prefix="aotc-jit-") as tmp:
        src, out = os.path.join(tmp, "r.o"), os.path.join(tmp, "r.so")
        with open(src, "wb") as f:
            f.write(obj)
        proc = subprocess.run([ld, "-shared", "-o", out, src, *_libgcc(), "--hash-style=gnu", "--build-id=none",
                               "-z", "now", "-z", "relro", "-z", "noexecstack", "-z", "separate-code",
                               "-z", "text"], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError("linking JIT code failed: " + (proc.stderr.strip().splitlines() or ["?"])[0])
        with open(out, "rb") as f:
            return f.read()


def main() -> None:
    from aotc.backend.compile import _target_machine, compile_ir

    _target_machine(0)      # initialise LLVM before the first request arrives
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    n = 0
    while True:
        req = read_msg(inp)
        if req is None:
            return
        n += 1
        try:
            so = link(compile_ir(req[1:].decode(), req[0], f"jit{n}"))
            write_msg(out, b"K" + so)
        except Exception as e:  # reported to the runtime as a BuildError
            write_msg(out, b"E" + (str(e).splitlines() or ["?"])[0].encode())


if __name__ == "__main__":
    try:
        main()
    except (BrokenPipeError, KeyboardInterrupt):
        # The runtime is gone (guest exit, --timeout, ^C): nobody wants the
        # reply; leave without a traceback or a failing flush at shutdown.
        os._exit(0)
