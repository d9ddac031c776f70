"""``Machine``: one guest process, run from a verified image.

Python prepares (verify and map the image, lay out guest memory and the
initial stack) and handles slow paths (syscalls, faults, misses); the guest
itself runs in the native dispatch loop of ``runtime._native`` and in the
image's translated code, which chains blocks without coming back here.
"""

from __future__ import annotations

import ctypes
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, TextIO

from aotc.errors import GuestFault, ImageError, UntranslatedCode
from aotc.isa.riscv64.state import (
    EXIT_BREAK,
    EXIT_FAULT,
    EXIT_FENCE_I,
    EXIT_ILLEGAL,
    EXIT_MISS,
    EXIT_SYSCALL,
    GuestState,
)

_MASK64 = (1 << 64) - 1
INFO_SYMBOL = "aotc_image_info"


class _ImageInfo(ctypes.Structure):
    _fields_ = [("htab", ctypes.c_uint64), ("mask", ctypes.c_uint64),
                ("blocks", ctypes.c_uint64), ("codegen_version", ctypes.c_uint64)]


@dataclass
class RunStats:
    syscalls: int = 0
    native_entries: int = 0


class Machine:
    """A riscv64 guest process backed by an AOT image."""

    def __init__(self, image, *, argv: Sequence[bytes], envp: Sequence[bytes],
                 strace: TextIO | None = None, exe_path: str = "") -> None:
        from runtime import _native
        from runtime.guest_memory import GUARD, GuestMemory
        from runtime.linux.abi import RISCV64_ABI
        from runtime.linux.kernel import LinuxKernel
        from runtime.process import AuxvInfo, build_initial_stack, load_segments

        meta = image.metadata
        if meta.get("guest_isa") != "riscv64" or meta.get("engine") != "aot":
            raise ImageError(f"this image needs the {meta.get('engine')} engine for a "
                             f"{meta.get('guest_isa')} guest, which this runtime does not provide yet")
        self.image = image
        self._native = _native
        self.mem = GuestMemory(bits=int(meta.get("arena_bits", 32)))
        _native.install_fault_handler(self.mem.base, self.mem.size + GUARD)
        brk = load_segments(self.mem, image.segments)
        auxv = AuxvInfo(entry=int(meta["entry"]), phdr_vaddr=int(meta["phdr_vaddr"]),
                        phent=int(meta["phent"]), phnum=int(meta["phnum"]))
        sp = build_initial_stack(self.mem, argv=list(argv), envp=list(envp), auxv_info=auxv,
                                 isa="riscv64")
        self.kernel = LinuxKernel(self.mem, RISCV64_ABI, brk_start=brk,
                                  exe_path=exe_path, strace=strace)
        self.state = GuestState()
        self.state.pc = int(meta["entry"])
        self.state.x[2] = sp
        self.state.reservation = _MASK64
        info = _ImageInfo.from_address(image.symbol_address(INFO_SYMBOL))
        self._htab, self._mask = info.htab, info.mask
        self.stats = RunStats()

    def run(self) -> int:
        """Run to completion; return the guest's exit status (or raise GuestFault)."""
        from runtime.linux.kernel import GuestExit, GuestKilled

        st = self.state
        state_addr = ctypes.addressof(st)
        run = self._native.run
        while True:
            self.stats.native_entries += 1
            code = run(state_addr, self.mem.base, self._htab, self._mask)
            if code == EXIT_SYSCALL:
                self.stats.syscalls += 1
                x = st.x
                try:
                    ret = self.kernel.syscall(x[17], (x[10], x[11], x[12], x[13], x[14], x[15]))
                except GuestExit as e:
                    return e.status & 0xFF
                except GuestKilled as e:
                    raise GuestFault(e.signal, st.pc, "killed by signal") from None
                x[10] = ret & _MASK64
                st.pc += 4
            elif code == EXIT_FAULT:
                addr, _host_pc = self._native.last_fault()
                raise GuestFault(signal.SIGSEGV, st.fault_pc, f"invalid memory access at {addr:#x}")
            elif code == EXIT_ILLEGAL:
                raise GuestFault(signal.SIGILL, st.pc, f"illegal instruction {st.exit_info:#x}")
            elif code == EXIT_BREAK:
                raise GuestFault(signal.SIGTRAP, st.pc, "ebreak")
            elif code == EXIT_FENCE_I:
                st.pc = st.exit_info
            elif code == EXIT_MISS:
                raise UntranslatedCode(st.pc)
            else:
                raise ImageError(f"translated code returned unknown exit code {code}")

    def close(self) -> None:
        self.kernel.close()
        self.mem.release()


def run_image(path: Path, guest_args: Sequence[str], *, trust: Sequence[Path] = (),
              env: dict[str, str] | None = None, argv0: str | None = None,
              strace: TextIO | None = None, engine: str = "aot", stats: dict | None = None,
              timeout: float | None = None, max_memory: int | None = None) -> int:
    """Verify, map and run an image; the shared entry point of aotrun and tests."""
    import os

    from aotc.keys import trusted_keys
    from loader import load_image

    image = load_image(Path(path), trusted_keys(list(trust)))
    if engine == "kvm" or (image is not None and image.metadata.get("engine") == "kvm"):
        from runtime.kvm.vm import run_kvm_image  # x86_64 guests in a KVM vCPU

        return run_kvm_image(image, path, guest_args, env=env, argv0=argv0, strace=strace,
                             timeout=timeout, max_memory=max_memory, stats=stats)
    environ = os.environ if env is None else env
    name = argv0 if argv0 is not None else str(path)
    argv = [os.fsencode(name)] + [os.fsencode(a) for a in guest_args]
    envp = [os.fsencode(f"{k}={v}") for k, v in environ.items()]
    machine = Machine(image, argv=argv, envp=envp, strace=strace,
                      exe_path=os.path.abspath(str(path)))
    try:
        sys.stdout.flush()
        return machine.run()
    finally:
        machine.close()
