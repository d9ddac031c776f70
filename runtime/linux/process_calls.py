"""Process system calls: fork/vfork/clone without CLONE_VM, wait4/waitid,
execve, process groups and sessions (a ``LinuxKernel`` mixin; see
runtime/linux/syscall_base.py)."""

from __future__ import annotations


class ProcessCalls:
    pass
