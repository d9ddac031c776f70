"""The Linux system call layer shared by every guest ISA (see kernel.py, abi.py)."""

from runtime.linux.abi import AARCH64_ABI, RISCV64_ABI, X86_64_ABI, SyscallAbi, abi_for_isa

__all__ = ["SyscallAbi", "RISCV64_ABI", "X86_64_ABI", "AARCH64_ABI", "abi_for_isa",
           "LinuxKernel", "GuestExit", "GuestKilled"]


def __getattr__(name: str):
    # Imported lazily so that abi tables load without pulling in the kernel.
    if name in ("LinuxKernel", "GuestExit", "GuestKilled"):
        from runtime.linux import kernel
        return getattr(kernel, name)
    raise AttributeError(name)
