"""JIT fallback: translate guest code the image does not cover, at run time.

On a lookup miss at ``pc`` the ``Jit`` discovers the region reachable from
``pc`` in the guest's executable mappings (``aotc.discover.discover_region``,
bounded, stopping at code that already has a translation), lifts it with the
same ``lift_block`` + ``LLVMBuilder`` as ``aotc build`` (one semantics
definition), compiles it with the same llvmlite pipeline (``compile_ir``),
links it with the system linker into a small shared object, and loads that
from a sealed memfd.  Its entries go into a second native hash table (same
layout as the image's: ``{u64 pc, void *fn}``, probe ``(pc >> 1) & mask``,
linear) that the dispatcher probes after the image's table.

W^X: the host code is produced as an ELF file *image* in Python bytes, written
with ``write(2)`` into a memfd that is then sealed against writing, growing
and shrinking, and only then ``dlopen``ed.  The dynamic loader maps the text
segment read+execute from the sealed file (``-z separate-code`` keeps it off
any writable page; the code is PIC, so there are no text relocations), so no
host page is ever writable and executable at once, not even transiently.

Control flow out of a region: a direct branch to another block of the same
region is a ``musttail`` call; to a block of the image or of an earlier
region it returns ``EXIT_CONTINUE`` (the dispatcher finds it in one of the
two tables without leaving native code); to code nobody has translated yet it
returns ``EXIT_MISS`` (back here).  Indirect branches probe the image's table
inline (its address is a constant in the generated code) and otherwise
return to the dispatcher, which also probes the JIT table.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import struct
import time
from pathlib import Path

from aotc.backend.abi import HTAB_EMPTY
from aotc.isa.riscv64.state import GuestState  # noqa: F401  (layout shared with the image)

_ENTRY = ctypes.c_uint64 * 2
_F_ADD_SEALS = 1033
_SEALS = 0x1 | 0x2 | 0x4 | 0x8   # F_SEAL_SEAL | SHRINK | GROW | WRITE


def empty_table(size: int) -> ctypes.Array:
    """A native block table of ``size`` empty slots (keys HTAB_EMPTY)."""
    table = (_ENTRY * size)()
    for e in table:
        e[0] = HTAB_EMPTY
    return table


class Htab:
    """A growable native hash table owned by Python (the dispatcher's table 2)."""

    def __init__(self, size: int = 256) -> None:
        # Tables outgrown stay allocated: another guest thread's dispatcher
        # may still be probing one (it sees the new table on its next entry).
        self._outgrown: list[ctypes.Array] = []
        self._alloc(size)
        self.count = 0

    def _alloc(self, size: int) -> None:
        if getattr(self, "table", None) is not None:
            self._outgrown.append(self.table)
        self.size = size
        self.mask = size - 1
        self.table = empty_table(size)

    @property
    def address(self) -> int:
        return ctypes.addressof(self.table)

    def _put(self, pc: int, fn: int) -> None:
        h = (pc >> 1) & self.mask
        while True:
            slot = self.table[h]
            if slot[0] == HTAB_EMPTY or slot[0] == pc:
                if slot[0] == HTAB_EMPTY:
                    self.count += 1
                # The function first: a dispatcher probing concurrently must
                # never see the key with a stale function (x86 keeps store order).
                slot[1] = fn
                slot[0] = pc
                return
            h = (h + 1) & self.mask

    def insert(self, pc: int, fn: int) -> None:
        if 2 * (self.count + 1) > self.size:
            old = [(e[0], e[1]) for e in self.table if e[0] != HTAB_EMPTY]
            self._alloc(self.size * 2)
            self.count = 0
            for p, f in old:
                self._put(p, f)
        self._put(pc, fn)

    def pcs(self) -> set[int]:
        return {e[0] for e in self.table if e[0] != HTAB_EMPTY}


def table_pcs(address: int, mask: int) -> set[int]:
    """The guest pcs in a native table (e.g. the image's)."""
    if not address:
        return set()
    table = (_ENTRY * (mask + 1)).from_address(address)
    return {e[0] for e in table if e[0] != HTAB_EMPTY}


class Jit:
    """Compile missed guest code into the second table, for the process lifetime."""

    def __init__(self, mem, image_pcs: set[int], opt_level: int = 0, max_blocks: int = 64) -> None:
        self.mem = mem
        self.image_pcs = image_pcs
        self.table = Htab()
        self._dropped_tables: list[Htab] = []
        self.opt_level = opt_level
        self.max_blocks = max_blocks
        self._libs: list = []           # dlopen'ed regions, kept loaded for good
        self.compile_seconds: list[float] = []
        self.blocks = 0
        self.pcs: set[int] = set()      # guest pcs this JIT has translated
        self.code_pages: set[int] = set()   # guest pages holding translated instructions
        self.flushes = 0
        self.phase_seconds = {"lift": 0.0, "compile+link": 0.0}
        self._worker: _Worker | None = None
        self.worker_start_seconds = 0.0

    def start_worker(self) -> None:
        """Start the compile worker (once; its start-up is not compile latency)."""
        if self._worker is None:
            self._worker = _Worker()
            self.worker_start_seconds = self._worker.start_seconds

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    def after_fork(self) -> None:
        """In the child of a guest fork: the compile worker is the parent's
        (a child of the parent, reached through the parent's pipes).  Close
        this process's copies of its pipes, so the worker sees EOF when the
        parent closes its own, and forget it without waiting for it, killing
        it or letting a finaliser do either; the next compile starts a
        worker of this process's own.  Translations made so far stay: they
        are in this process's memory."""
        if self._worker is not None:
            self._worker.disown()
            self._worker = None

    def covered(self, pc: int) -> bool:
        return pc in self.image_pcs or pc in self.pcs

    def _code_ranges(self):
        """The guest's executable mappings as they are now (read afresh for
        every region: ~1 MiB of text costs well under a millisecond, and code
        the guest mapped or wrote since the last region is seen)."""
        from aotc.discover import CodeRange
        from runtime.guest_memory import PROT_EXEC

        # read_prefix: a file-mapped page past the file's end faults (SIGBUS);
        # the code ends before it (an instruction fetch there faults).
        return [CodeRange(m.start, self.mem.read_prefix(m.start, m.end - m.start))
                for m in self.mem.mappings() if m.prot & PROT_EXEC]

    def invalidate_code(self) -> None:
        """Guest code bytes may have changed (fence.i): forget every JIT
        translation (an empty second table), so each block is translated
        again from the current bytes when it is next reached.  The old
        regions stay loaded (nothing points into them any more, but a region
        cannot be unloaded safely while its code might still be on a stack).
        The image's own translations are checked by the machine
        (runtime/code_invalidation.py)."""
        if self.pcs:
            self._drop_all()

    def _drop_all(self) -> None:
        self._dropped_tables.append(self.table)     # may still be probed by a running thread
        self.table = Htab()
        self.pcs = set()
        self.code_pages = set()
        self.flushes += 1

    def forget_image(self) -> None:
        """The image was retired: stop treating its blocks as translated and
        drop every JIT region, since they may exit to image code."""
        self.image_pcs = set()
        self._drop_all()

    def compile(self, pc: int) -> bool:
        """Translate the region at ``pc``; False when there is no instruction to
        fetch there (pc outside executable memory, or misaligned): nothing is
        compiled, and the caller must fault rather than miss at pc again."""
        from aotc.backend.compile import _FOOTER, _HEADER, lift_block
        from aotc.backend.llvm_builder import STATE_CONVENTION, block_definition_prefix, block_symbol
        from aotc.discover import discover_region

        self.start_worker()
        t0 = time.perf_counter()
        ranges = self._code_ranges()
        if not any(r.start <= pc < r.end for r in ranges):
            return False
        done = self.image_pcs | self.pcs
        disc = discover_region(ranges, pc, stop=done, max_blocks=self.max_blocks)
        region = disc.blocks
        if pc not in region:    # e.g. an odd pc: no block can start there
            return False
        dispatch_only = frozenset(done) | frozenset(
            p for p, b in region.items() if b.insns and b.insns[0].mnemonic.startswith("csrr"))
        known = frozenset(region) | frozenset(done)
        parts = [_HEADER]
        decls: set[str] = set()
        untranslated: list = []
        # JIT code keeps every register in the state (STATE_CONVENTION): it
        # leaves to the dispatcher for image code and for indirect targets.
        cc = STATE_CONVENTION
        for block in region.values():
            text, b = lift_block(block, known, 0, untranslated, dispatch_only, count="jit",
                                 convention=cc, alias_types=self.opt_level > 0)
            parts.append(text)
            decls |= b.intrinsics
        parts.extend(sorted(decls))
        parts.append(_FOOTER)
        ir = "\n".join(parts)
        for p in region:    # exported, so the region's entries can be looked up
            ir = ir.replace(block_definition_prefix(p, cc=cc), block_definition_prefix(p, hidden=False, cc=cc))
        t1 = time.perf_counter()
        so = self._worker.compile(ir, self.opt_level)
        t2 = time.perf_counter()
        lib = _load_sealed(so, pc)
        self.phase_seconds["lift"] += t1 - t0
        self.phase_seconds["compile+link"] += t2 - t1
        self._libs.append(lib)
        for p, block in region.items():
            fn = ctypes.cast(lib[block_symbol(p)], ctypes.c_void_p).value
            self.table.insert(p, fn)
            self.pcs.add(p)
            self.code_pages.update(range(p // 4096, (max(block.end, p + 2) - 1) // 4096 + 1))
        self.blocks += len(region)
        self.compile_seconds.append(time.perf_counter() - t0)
        return True


class _Worker:
    """The compile worker process (``runtime.jit_worker``), started on first use."""

    def __init__(self) -> None:
        import subprocess
        import sys

        root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        t0 = time.perf_counter()
        # Unbuffered (raw) pipe ends: a buffered file object carries a lock,
        # and a guest fork made while another thread was inside compile()
        # would leave the child a copy of it held forever (disown hung).
        self.proc = subprocess.Popen([sys.executable, "-m", "runtime.jit_worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env, close_fds=True, bufsize=0)
        self.start_seconds = time.perf_counter() - t0

    def compile(self, ir: str, opt_level: int) -> bytes:
        from aotc.errors import BuildError

        request = bytes([opt_level]) + ir.encode()
        try:
            _write_all(self.proc.stdin.fileno(), struct.pack("<I", len(request)) + request)
            head = _read_exact(self.proc.stdout.fileno(), 4)
            reply = None if head is None else _read_exact(self.proc.stdout.fileno(),
                                                          struct.unpack("<I", head)[0])
        except OSError as e:
            raise BuildError(f"JIT compile worker failed: {e}") from None
        if reply is None:
            raise BuildError("JIT compile worker exited")
        if reply[:1] != b"K":
            raise BuildError(f"JIT compile failed: {reply[1:].decode(errors='replace')}")
        return reply[1:]

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except Exception:
            self.proc.kill()

    def disown(self) -> None:
        """Drop this process's handles on a worker another process owns (after fork)."""
        import subprocess

        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()                   # raw: closes the fd, flushes nothing, takes no lock
            except (OSError, ValueError):
                pass
        # Popen.__del__ and subprocess's reaping of "active" children would
        # otherwise wait for a process that is not ours.
        self.proc.returncode = 0
        if self.proc in getattr(subprocess, "_active", []):
            subprocess._active.remove(self.proc)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _read_exact(fd: int, n: int) -> bytes | None:
    """``n`` bytes from the pipe, or None at end of file before that."""
    parts, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            return None
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _load_sealed(so: bytes, pc: int):
    """Write the linked object into a memfd, seal it, then dlopen it (W^X)."""
    from loader.image import _dlopen_fd

    fd = os.memfd_create(f"aotc-jit-{pc:x}", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        view = memoryview(so)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        fcntl.fcntl(fd, _F_ADD_SEALS, _SEALS)
    except BaseException:
        os.close(fd)
        raise
    cdll, _fd = _dlopen_fd(fd, Path(f"<jit region {pc:#x}>"))
    return cdll
