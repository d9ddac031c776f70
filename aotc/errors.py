"""The one error hierarchy of aotc, aotrun and the runtime.

Every error a user can provoke with bad input is an ``AotcError``; the command
line tools print ``str(error)`` on one line and exit with ``error.exit_code``.
"""

from __future__ import annotations


class AotcError(Exception):
    """Base of every error that aotc, the loader and the runtime report."""

    exit_code: int = 1


class ElfError(AotcError):
    """The guest file is not an ELF executable we can read."""


class UnsupportedGuestError(ElfError):
    """A well-formed ELF that this version cannot run (ISA, class, dynamic linking)."""


class DecodeError(AotcError):
    """Bytes at ``pc`` are not a valid instruction."""

    def __init__(self, pc: int, message: str) -> None:
        super().__init__(f"{message} at pc {pc:#x}")
        self.pc = pc


class LoweringError(AotcError):
    """An instruction could not be lowered to host code."""

    def __init__(self, pc: int, insn: str, message: str) -> None:
        super().__init__(f"cannot lower {insn!r} at pc {pc:#x}: {message}")
        self.pc = pc
        self.insn = insn


class BuildError(AotcError):
    """Compiling or linking the host image failed."""


class CompileWorkerDied(BuildError):
    """A compile worker process died while compiling a chunk: killed by a
    signal (SIGKILL: usually the kernel's out-of-memory killer; SIGABRT: LLVM
    aborted) or exited without a result."""

    def __init__(self, message: str, *, chunk: int, tier: str, instructions: int,
                 exitcode: int | None) -> None:
        super().__init__(message)
        self.chunk = chunk
        self.tier = tier
        self.instructions = instructions
        self.exitcode = exitcode


class ImageError(AotcError):
    """An image file is malformed, truncated, or for another host."""


class ImageVerificationError(ImageError):
    """An image's signature is missing, invalid, or from an untrusted key."""


class SigningKeyError(AotcError):
    """A signing key is missing or unreadable."""


class GuestMemoryError(AotcError):
    """The runtime touched guest memory that is not mapped (becomes -EFAULT,
    or a guest SIGSEGV; SIGBUS when ``bus``: a mapped file page past the
    file's end, as Linux raises it)."""

    def __init__(self, addr: int, length: int = 1, bus: bool = False) -> None:
        what = "is past the end of its mapped file" if bus else "is not mapped"
        super().__init__(f"guest address {addr:#x} (+{length}) {what}")
        self.addr = addr
        self.length = length
        self.bus = bus


class GuestFault(AotcError):
    """The guest received a fatal signal; shells show 128+signal."""

    def __init__(self, signal: int, pc: int, detail: str = "") -> None:
        import signal as _signal

        try:
            name = _signal.Signals(signal).name
        except ValueError:
            name = f"signal {signal}"
        text = f"guest {name} at pc {pc:#x}"
        super().__init__(f"{text}: {detail}" if detail else text)
        self.signal = signal
        self.pc = pc
        self.exit_code = 128 + signal


class UntranslatedCode(AotcError):
    """Execution reached a guest pc the image does not cover and no fallback ran."""

    def __init__(self, pc: int) -> None:
        super().__init__(f"untranslated code at pc {pc:#x}")
        self.pc = pc


class RuntimeSetupError(AotcError):
    """The host cannot provide what running this guest needs (memory, KVM, ...)."""
