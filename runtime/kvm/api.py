"""The bits of the Linux KVM API (<linux/kvm.h>, x86) the KVM engine uses.

Plain ioctls on /dev/kvm through ctypes: no third-party hypervisor library.
``ioctl`` releases the GIL (ctypes does for every foreign call), so a timer
thread can kick a vCPU that is running guest code.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

from aotc.errors import RuntimeSetupError

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_ioctl = _libc.ioctl
_ioctl.restype = ctypes.c_int
_ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                       ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]

KVMIO = 0xAE


def _IO(nr: int) -> int:
    return (KVMIO << 8) | nr


def _IOC(d: int, nr: int, size: int) -> int:
    return (d << 30) | (size << 16) | (KVMIO << 8) | nr


def _IOW(nr: int, size: int) -> int:
    return _IOC(1, nr, size)


def _IOR(nr: int, size: int) -> int:
    return _IOC(2, nr, size)


def _IOWR(nr: int, size: int) -> int:
    return _IOC(3, nr, size)


class kvm_regs(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in (
        "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp",
        "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags")]


class kvm_segment(ctypes.Structure):
    _fields_ = [("base", ctypes.c_uint64), ("limit", ctypes.c_uint32), ("selector", ctypes.c_uint16),
                ("type", ctypes.c_uint8), ("present", ctypes.c_uint8), ("dpl", ctypes.c_uint8),
                ("db", ctypes.c_uint8), ("s", ctypes.c_uint8), ("l", ctypes.c_uint8),
                ("g", ctypes.c_uint8), ("avl", ctypes.c_uint8), ("unusable", ctypes.c_uint8),
                ("padding", ctypes.c_uint8)]


class kvm_dtable(ctypes.Structure):
    _fields_ = [("base", ctypes.c_uint64), ("limit", ctypes.c_uint16), ("padding", ctypes.c_uint16 * 3)]


class kvm_sregs(ctypes.Structure):
    _fields_ = [("cs", kvm_segment), ("ds", kvm_segment), ("es", kvm_segment), ("fs", kvm_segment),
                ("gs", kvm_segment), ("ss", kvm_segment), ("tr", kvm_segment), ("ldt", kvm_segment),
                ("gdt", kvm_dtable), ("idt", kvm_dtable),
                ("cr0", ctypes.c_uint64), ("cr2", ctypes.c_uint64), ("cr3", ctypes.c_uint64),
                ("cr4", ctypes.c_uint64), ("cr8", ctypes.c_uint64), ("efer", ctypes.c_uint64),
                ("apic_base", ctypes.c_uint64), ("interrupt_bitmap", ctypes.c_uint64 * 4)]


class kvm_fpu(ctypes.Structure):
    _fields_ = [("fpr", ctypes.c_uint8 * 128), ("fcw", ctypes.c_uint16), ("fsw", ctypes.c_uint16),
                ("ftwx", ctypes.c_uint8), ("pad1", ctypes.c_uint8), ("last_opcode", ctypes.c_uint16),
                ("last_ip", ctypes.c_uint64), ("last_dp", ctypes.c_uint64),
                ("xmm", ctypes.c_uint8 * 256), ("mxcsr", ctypes.c_uint32), ("pad2", ctypes.c_uint32)]


class kvm_userspace_memory_region(ctypes.Structure):
    _fields_ = [("slot", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("guest_phys_addr", ctypes.c_uint64), ("memory_size", ctypes.c_uint64),
                ("userspace_addr", ctypes.c_uint64)]


class kvm_cpuid_entry2(ctypes.Structure):
    _fields_ = [("function", ctypes.c_uint32), ("index", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("eax", ctypes.c_uint32), ("ebx", ctypes.c_uint32), ("ecx", ctypes.c_uint32),
                ("edx", ctypes.c_uint32), ("padding", ctypes.c_uint32 * 3)]


def kvm_cpuid2(n: int):
    class _Cpuid2(ctypes.Structure):
        _fields_ = [("nent", ctypes.c_uint32), ("padding", ctypes.c_uint32),
                    ("entries", kvm_cpuid_entry2 * n)]
    return _Cpuid2


class kvm_msr_entry(ctypes.Structure):
    _fields_ = [("index", ctypes.c_uint32), ("reserved", ctypes.c_uint32), ("data", ctypes.c_uint64)]


def kvm_msrs(n: int):
    class _Msrs(ctypes.Structure):
        _fields_ = [("nmsrs", ctypes.c_uint32), ("pad", ctypes.c_uint32), ("entries", kvm_msr_entry * n)]
    return _Msrs


class kvm_xcr(ctypes.Structure):
    _fields_ = [("xcr", ctypes.c_uint32), ("reserved", ctypes.c_uint32), ("value", ctypes.c_uint64)]


class kvm_xcrs(ctypes.Structure):
    _fields_ = [("nr_xcrs", ctypes.c_uint32), ("flags", ctypes.c_uint32), ("xcrs", kvm_xcr * 16),
                ("padding", ctypes.c_uint64 * 16)]


class kvm_run_io(ctypes.Structure):
    _fields_ = [("direction", ctypes.c_uint8), ("size", ctypes.c_uint8), ("port", ctypes.c_uint16),
                ("count", ctypes.c_uint32), ("data_offset", ctypes.c_uint64)]


class kvm_run(ctypes.Structure):
    """The head of the shared kvm_run page (union members we read are overlaid)."""

    _fields_ = [("request_interrupt_window", ctypes.c_uint8), ("immediate_exit", ctypes.c_uint8),
                ("padding1", ctypes.c_uint8 * 6), ("exit_reason", ctypes.c_uint32),
                ("ready_for_interrupt_injection", ctypes.c_uint8), ("if_flag", ctypes.c_uint8),
                ("flags", ctypes.c_uint16), ("cr8", ctypes.c_uint64), ("apic_base", ctypes.c_uint64),
                ("io", kvm_run_io), ("_union_rest", ctypes.c_uint8 * (256 - 16)),
                ("kvm_valid_regs", ctypes.c_uint64), ("kvm_dirty_regs", ctypes.c_uint64),
                ("regs", kvm_regs)]          # start of kvm_sync_regs


assert kvm_regs.__dict__ and ctypes.sizeof(kvm_regs) == 144
assert ctypes.sizeof(kvm_sregs) == 312
assert ctypes.sizeof(kvm_fpu) == 416
assert ctypes.sizeof(kvm_xcrs) == 392
assert kvm_run.kvm_valid_regs.offset == 288 and kvm_run.regs.offset == 304

KVM_GET_API_VERSION = _IO(0x00)
KVM_CREATE_VM = _IO(0x01)
KVM_CHECK_EXTENSION = _IO(0x03)
KVM_GET_VCPU_MMAP_SIZE = _IO(0x04)
KVM_GET_SUPPORTED_CPUID = _IOWR(0x05, 8)
KVM_CREATE_VCPU = _IO(0x41)
KVM_SET_USER_MEMORY_REGION = _IOW(0x46, ctypes.sizeof(kvm_userspace_memory_region))
KVM_SET_TSS_ADDR = _IO(0x47)
KVM_SET_IDENTITY_MAP_ADDR = _IOW(0x48, 8)
KVM_RUN = _IO(0x80)
KVM_GET_REGS = _IOR(0x81, 144)
KVM_SET_REGS = _IOW(0x82, 144)
KVM_GET_SREGS = _IOR(0x83, 312)
KVM_SET_SREGS = _IOW(0x84, 312)
KVM_GET_MSRS = _IOWR(0x88, 8)
KVM_SET_MSRS = _IOW(0x89, 8)
KVM_GET_FPU = _IOR(0x8C, 416)
KVM_SET_FPU = _IOW(0x8D, 416)
KVM_SET_CPUID2 = _IOW(0x90, 8)
KVM_SET_XCRS = _IOW(0xA7, 392)
KVM_GET_XSAVE = _IOR(0xA4, 4096)       # struct kvm_xsave: the standard-format XSAVE area
KVM_SET_XSAVE = _IOW(0xA5, 4096)
XSAVE_SIZE = 4096

KVM_CAP_SYNC_REGS = 74
KVM_CAP_IMMEDIATE_EXIT = 136
KVM_CAP_NR_VCPUS = 9
KVM_CAP_MAX_VCPUS = 66
KVM_SYNC_X86_REGS = 1

KVM_EXIT_UNKNOWN = 0
KVM_EXIT_EXCEPTION = 1
KVM_EXIT_IO = 2
KVM_EXIT_DEBUG = 4
KVM_EXIT_HLT = 5
KVM_EXIT_MMIO = 6
KVM_EXIT_SHUTDOWN = 8
KVM_EXIT_FAIL_ENTRY = 9
KVM_EXIT_INTR = 10
KVM_EXIT_INTERNAL_ERROR = 17
EXIT_NAMES = {0: "UNKNOWN", 1: "EXCEPTION", 2: "IO", 4: "DEBUG", 5: "HLT", 6: "MMIO",
              8: "SHUTDOWN", 9: "FAIL_ENTRY", 10: "INTR", 17: "INTERNAL_ERROR"}

MSR_STAR = 0xC0000081
MSR_LSTAR = 0xC0000082
MSR_CSTAR = 0xC0000083
MSR_SYSCALL_MASK = 0xC0000084
MSR_FS_BASE = 0xC0000100
MSR_GS_BASE = 0xC0000101
MSR_KERNEL_GS_BASE = 0xC0000102

KVM_DEVICE = "/dev/kvm"


def ioctl(fd: int, request: int, arg=None) -> int:
    """ioctl(2); ``arg`` is a ctypes object (passed by reference), an int, or None."""
    if arg is None:
        p = None
    elif isinstance(arg, int):
        p = arg
    else:
        p = ctypes.addressof(arg)
    ret = _ioctl(fd, request, p)
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ret


def raw_ioctl(fd: int, request: int, arg: int | None) -> int:
    """ioctl(2) returning -errno instead of raising (the hot KVM_RUN path)."""
    ret = _ioctl(fd, request, arg)
    return -ctypes.get_errno() if ret < 0 else ret


def mmap_anonymous(size: int) -> int:
    addr = _libc.mmap(None, size, 3, 0x22 | 0x4000, -1, 0)   # RW, PRIVATE|ANON|NORESERVE
    if addr in (None, ctypes.c_void_p(-1).value):
        raise RuntimeSetupError(f"cannot allocate {size >> 10} KiB of vCPU system memory")
    return addr


def mmap_fd(fd: int, size: int) -> int:
    addr = _libc.mmap(None, size, 3, 0x01, fd, 0)            # RW, SHARED
    if addr in (None, ctypes.c_void_p(-1).value):
        raise RuntimeSetupError("cannot map the vCPU's kvm_run area")
    return addr


def munmap(addr: int, size: int) -> None:
    _libc.munmap(addr, size)


def kvm_unavailable_reason(device: str = KVM_DEVICE) -> str | None:
    """None when ``device`` can create a VM; otherwise a short reason."""
    try:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return f"cannot open {device}: {e.strerror or e}"
    try:
        try:
            version = ioctl(fd, KVM_GET_API_VERSION)
        except OSError as e:
            return f"{device} is not a KVM device ({e.strerror})"
        if version != 12:
            return f"{device} speaks KVM API version {version}, not 12"
        try:
            vm = ioctl(fd, KVM_CREATE_VM, 0)
        except OSError as e:
            return f"cannot create a VM: {e.strerror}"
        os.close(vm)
        return None
    finally:
        os.close(fd)


def kvm_unavailable_message(reason: str) -> str:
    """The one line aotrun prints when the KVM engine cannot run."""
    return f"KVM is not available: {reason}"
