"""``KvmMachine``: one x86_64 static guest process in a KVM vCPU.

Guest-physical memory is two KVM memory slots:

* slot 0 at GPA 0 is the ``GuestMemory`` arena (guest virtual == guest
  physical == arena offset for every user address), so ``LinuxKernel`` reads
  and writes guest memory exactly as on the translated path;
* slot 1 at GPA 4 GiB is "system" memory the guest cannot reach: page
  tables, GDT, IDT, TSS, the ring-0 syscall/exception stubs and a kernel
  stack, mapped supervisor-only at the top of the virtual address space.

The guest runs in ring 3.  ``syscall`` enters a ring-0 stub that does an
``out`` to SYSCALL_PORT (a KVM_EXIT_IO); the host runs ``LinuxKernel.syscall``
and resumes the stub, which returns with ``sysretq``.  Exceptions go through
an IDT whose handlers ``out`` to EXC_PORT+vector; the host turns them into
guest signals (``GuestFault``), or to the guest's own handler.

Every guest thread is a vCPU of the same VM, run by a host thread of its
own (``_Vcpu``; ``LinuxKernel.spawn_thread``); each vCPU has its own page
table root whose top half maps its own GDT, TSS and kernel stack at the same
kernel addresses, while the low half (the guest's mappings) is shared.
Signals reach a vCPU running guest code by ``kvm_run.immediate_exit`` and the
runtime's kick signal (``X86State.interrupt``); frames are
runtime/linux/sigframe_x86_64.py's.  See docs/kvm.md.
"""

from __future__ import annotations

import bisect
import ctypes
import errno as _errno
import os
import signal
import struct
import threading
import time
from typing import Sequence, TextIO

from aotc.errors import GuestFault, ImageError, RuntimeSetupError
from runtime.kvm import api
from runtime.kvm.api import kvm_unavailable_message
from runtime.limits import GuestTimeout, MemoryLimitExceeded

MASK64 = (1 << 64) - 1
PAGE = 4096

# -- guest-physical layout ---------------------------------------------------
# Slot 0 stops 16 KiB short of 4 GiB: Intel KVM wants 4 private pages below
# 4 GiB (identity map + real-mode TSS) that no user slot may overlap.
SLOT0_SIZE = (1 << 32) - 0x4000
IDENTITY_MAP_GPA = SLOT0_SIZE
TSS_PRIVATE_GPA = SLOT0_SIZE + 0x1000
SYS_GPA = 1 << 32
# Offsets inside the system slot.
PML4_OFF = 0x0000
PDPT_LO_OFF = 0x1000
PD_LO_OFF = 0x2000            # 4 pages: one page directory per GiB of the arena
PDPT_HI_OFF = 0x6000
PD_HI_OFF = 0x7000
PT_HI_OFF = 0x8000
KPAGES_OFF = 0x9000           # GDT, IDT, TSS, code, 4 stack pages (mapped at KVA)
PT_LO_OFF = 0x100000          # 2048 page tables = one flat array of 1M PTEs
VCPU_AREA_OFF = PT_LO_OFF + 2048 * PAGE
# vCPUs after the first: their own PML4, PDPT_HI, PD_HI, PT_HI, GDT, TSS and
# 3 kernel stack pages (IDT and code pages are the first vCPU's).
VCPU_AREA = 16 * PAGE
MAX_VCPUS = 512
SYS_SIZE = VCPU_AREA_OFF + (MAX_VCPUS - 1) * VCPU_AREA

# Kernel virtual addresses: the last 2 MiB of the address space (PML4/PDPT/PD
# index 511), supervisor-only.
KVA = 0xFFFF_FFFF_FFE0_0000
GDT_VA = KVA
IDT_VA = KVA + 0x1000
TSS_VA = KVA + 0x2000
CODE_VA = KVA + 0x3000
KSTACK_TOP = KVA + 0x8000
SCRATCH_VA = TSS_VA + 0x800
USTUB_VA = KVA + 0x4000      # the one user-executable system page: LSTAR's target
SYSCALL_STUB = USTUB_VA           # out SYSCALL_PORT; sysretq
USER_FLUSH = USTUB_VA + 5         # int3: ring-3 syscall entry's way into ring 0 (see run)
FLUSH_STUB = CODE_VA + 0x10       # ring 0: reload CR3, sysretq
FLUSH_IRET = CODE_VA + 0x40       # ring 0 (from USER_FLUSH): reload CR3, iretq to rcx/r11
IRET_STUB = CODE_VA + 0x80        # ring 0: iretq (to the frame at IRET_FRAME: an exact context)
IRET_FLUSH = CODE_VA + 0x90       # ring 0: reload CR3, iretq
SYSRET_VA = USTUB_VA + 2          # the stub's sysretq
IRET_FRAME = KSTACK_TOP - 0x40    # where the host writes an iret frame
IDT_ENTRIES = 32
TSS_LIMIT = 0x68 + 32             # I/O bitmap for ports 0..255 plus its 0xFF terminator
HANDLERS = CODE_VA + 0x100

SYSCALL_PORT = 0xE0
EXC_PORT = 0x80               # EXC_PORT + vector, vectors 0..31

SEL_KCODE, SEL_KDATA, SEL_UCODE32, SEL_UDATA, SEL_UCODE, SEL_TSS = 0x08, 0x10, 0x18, 0x20, 0x28, 0x30

PTE_P, PTE_RW, PTE_US, PTE_A, PTE_D = 1, 2, 4, 0x20, 0x40
PTE_NX = 1 << 63

CR0_PE, CR0_MP, CR0_ET, CR0_NE, CR0_WP, CR0_PG = 1, 2, 0x10, 0x20, 0x10000, 0x80000000
CR4_PAE, CR4_OSFXSR, CR4_OSXMMEXCPT, CR4_OSXSAVE = 0x20, 0x200, 0x400, 0x40000
EFER_SCE, EFER_LME, EFER_LMA, EFER_NXE = 1, 0x100, 0x400, 0x800

# x86_64 syscall numbers the engine handles or watches itself.
NR_BRK, NR_MMAP, NR_MPROTECT, NR_MUNMAP, NR_MREMAP, NR_ARCH_PRCTL = 12, 9, 10, 11, 25, 158
MAPPING_SYSCALLS = frozenset({NR_MMAP, NR_MPROTECT, NR_MUNMAP, NR_BRK, NR_MREMAP})
ARCH_SET_GS, ARCH_SET_FS, ARCH_GET_FS, ARCH_GET_GS = 0x1001, 0x1002, 0x1003, 0x1004

# vector -> (signal, description)
_EXCEPTIONS = {
    0: (signal.SIGFPE, "integer divide error"),
    1: (signal.SIGTRAP, "debug trap"),
    3: (signal.SIGTRAP, "breakpoint (int3)"),
    4: (signal.SIGSEGV, "overflow trap"),
    5: (signal.SIGSEGV, "bound range exceeded"),
    6: (signal.SIGILL, "invalid opcode"),
    7: (signal.SIGSEGV, "device not available"),
    8: (signal.SIGSEGV, "double fault"),
    10: (signal.SIGSEGV, "invalid TSS"),
    11: (signal.SIGBUS, "segment not present"),
    12: (signal.SIGBUS, "stack segment fault"),
    13: (signal.SIGSEGV, "general protection fault"),
    14: (signal.SIGSEGV, "page fault"),
    16: (signal.SIGFPE, "x87 floating-point exception"),
    17: (signal.SIGBUS, "alignment check"),
    18: (signal.SIGBUS, "machine check"),
    19: (signal.SIGFPE, "SIMD floating-point exception"),
}
_HAS_ERROR_CODE = frozenset({8, 10, 11, 12, 13, 14, 17, 21, 29, 30})


def _seg_desc(access: int, flags: int, base: int = 0, limit: int = 0xFFFFF) -> int:
    return ((limit & 0xFFFF) | (base & 0xFFFFFF) << 16 | access << 40
            | ((limit >> 16) & 0xF) << 48 | flags << 52 | ((base >> 24) & 0xFF) << 56)


def _gate(offset: int, dpl: int) -> bytes:
    type_attr = 0x8E | (dpl << 5)                 # present, 64-bit interrupt gate
    low = ((offset & 0xFFFF) | SEL_KCODE << 16 | type_attr << 40
           | ((offset >> 16) & 0xFFFF) << 48)
    return struct.pack("<QQ", low, offset >> 32)


def _segment(selector: int, type_: int, dpl: int, *, code: bool = False, base: int = 0,
             limit: int = 0xFFFFFFFF, s: int = 1, g: int = 1) -> api.kvm_segment:
    seg = api.kvm_segment()
    seg.base, seg.limit, seg.selector, seg.type = base, limit, selector, type_
    seg.present, seg.dpl, seg.s, seg.g = 1, dpl, s, g
    seg.l, seg.db = (1, 0) if code else (0, 1 if s else 0)
    return seg


class _Watchdog:
    """``--timeout``: ends the process once ``seconds`` have passed.  Every
    vCPU is kicked out of KVM_RUN (``LinuxKernel.terminate`` sets each
    thread's ``immediate_exit`` and sends it the kick signal), so the run
    ends with GuestTimeout in the first thread; a guest stuck where no kick
    reaches it (a host call that retries on EINTR) is ended with
    ``os._exit(124)`` after a grace period, as the other engines' watchdog does."""

    GRACE = 2.0

    def __init__(self, machine: "KvmMachine", seconds: float) -> None:
        self.machine = machine
        self.seconds = seconds
        self.expired = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="aotrun-timeout", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        if self._stop.wait(self.seconds):
            return
        self.expired = True
        k = self.machine.kernel
        if k is not None:
            k.terminate(outcome=GuestTimeout(self.seconds))
        if self._stop.wait(self.GRACE):
            return
        from runtime.limits import TIMEOUT_EXIT

        os.write(2, f"aotrun: error: {GuestTimeout(self.seconds)}\n".encode())
        os._exit(TIMEOUT_EXIT)

    def cancel(self) -> None:
        self._stop.set()
        self._thread.join()


class X86State:
    """A guest thread's context as the Linux layer sees it (``GuestThread.state``
    for x86_64 guests): ``ctx`` is the user context (a ``kvm_regs``: rip and
    rflags are the user's even while a system call is served), ``fs_base`` /
    ``gs_base``, the fault facts a signal frame records, and the XSAVE area
    through ``get_xsave``/``set_xsave`` (a new one is loaded into the vCPU
    when the guest resumes).  Setting ``interrupt`` (a signal to take, or the
    process ending) also sets the vCPU's ``immediate_exit``."""

    def __init__(self, machine: "KvmMachine") -> None:
        self._machine = machine
        self.vcpu: _Vcpu | None = None
        self._interrupt = 0
        self.ctx = api.kvm_regs()
        self.fs_base = 0
        self.gs_base = 0
        self.trapno = self.err = self.cr2 = 0
        self.frame_pushed = False
        self.xsave_new: bytes | None = None
        self.xstate_size = machine.xstate_size
        self.xfeatures = machine.xcr0 or 3

    @property
    def interrupt(self) -> int:
        return self._interrupt

    @interrupt.setter
    def interrupt(self, value: int) -> None:
        self._interrupt = value
        v = self.vcpu
        if v is not None:
            v.run.immediate_exit = 1 if value else 0

    def get_xsave(self) -> bytes:
        if self.xsave_new is not None:
            return self.xsave_new
        if self.vcpu is None:
            from runtime.linux.sigframe_x86_64 import init_xsave
            return init_xsave()
        return self.vcpu.get_xsave()

    def set_xsave(self, data: bytes) -> None:
        self.xsave_new = data

    def clone_from(self, parent: "X86State", newsp: int, tls: int | None) -> None:
        """clone(CLONE_THREAD): the parent's context at its syscall's return,
        rax = 0, the new stack and TLS (FS base), a copy of its FPU state."""
        ctypes.memmove(ctypes.addressof(self.ctx), ctypes.addressof(parent.ctx), ctypes.sizeof(self.ctx))
        self.ctx.rax = 0
        if newsp:
            self.ctx.rsp = newsp
        self.fs_base = parent.fs_base if tls is None else tls
        self.gs_base = parent.gs_base
        self.xsave_new = parent.get_xsave()


class _Vcpu:
    """One vCPU of the VM: its fd, kvm_run page, registers, kernel pages."""

    def __init__(self, index: int, fd: int, run_addr: int, run_size: int, cr3: int,
                 pages: list[int], sync: bool) -> None:
        self.index = index
        self.fd = fd
        self.run_addr = run_addr
        self.run_size = run_size
        self.run = api.kvm_run.from_address(run_addr)
        self.regs = self.run.regs if sync else api.kvm_regs()
        self.cr3 = cr3
        self.pages = pages                    # slot-1 offsets of the 8 pages at KVA
        self.state: X86State | None = None
        self.thread = None                    # its GuestThread
        self.tlb_gen = 0
        self.spurious = 0                     # page faults retried in a row (stale TLB)

    def get_xsave(self) -> bytes:
        buf = ctypes.create_string_buffer(api.XSAVE_SIZE)
        api.ioctl(self.fd, api.KVM_GET_XSAVE, buf)
        return buf.raw

    def set_xsave(self, data: bytes) -> None:
        buf = ctypes.create_string_buffer(bytes(data[:api.XSAVE_SIZE]).ljust(api.XSAVE_SIZE, b"\0"),
                                          api.XSAVE_SIZE)
        api.ioctl(self.fd, api.KVM_SET_XSAVE, buf)


class KvmMachine:
    """An x86_64 static guest process; each of its threads runs in a vCPU."""

    def __init__(self, image, *, argv: Sequence[bytes], envp: Sequence[bytes],
                 strace: TextIO | None = None, exe_path: str = "",
                 max_memory: int | None = None, device: str = api.KVM_DEVICE) -> None:
        from runtime.guest_memory import GuestMemory
        from runtime.linux.abi import X86_64_ABI
        from runtime.linux.kernel import LinuxKernel
        from runtime.process import AuxvInfo, build_initial_stack, load_segments

        meta = image.metadata
        if meta.get("guest_isa") != "x86_64":
            raise ImageError(f"the KVM engine runs x86_64 guests, not {meta.get('guest_isa')}")
        self._fds: list[int] = []
        self._sys_base = 0
        self._vcpus: list[_Vcpu] = []
        self._idle: list[_Vcpu] = []          # vCPUs of ended threads, reused by clone
        self._vcpu_lock = threading.Lock()
        self._pt_lock = threading.RLock()
        self._tlb_gen = 0
        self._host_threads: list[threading.Thread] = []
        self.mem = None
        self.kernel = None
        self.max_memory = max_memory
        self.watchdog: _Watchdog | None = None
        try:
            self.mem = GuestMemory(bits=int(meta.get("arena_bits", 32)))
            if self.mem.size != 1 << 32:
                raise ImageError("the KVM engine needs a 32-bit guest arena")
            brk = load_segments(self.mem, image.segments)
            auxv = AuxvInfo(entry=int(meta["entry"]), phdr_vaddr=int(meta["phdr_vaddr"]),
                            phent=int(meta["phent"]), phnum=int(meta["phnum"]))
            sp = build_initial_stack(self.mem, argv=list(argv), envp=list(envp), auxv_info=auxv,
                                     isa="x86_64")
            if max_memory is not None and self.mem.mapped_bytes > max_memory:
                raise MemoryLimitExceeded(self.mem.mapped_bytes, max_memory)
            self.kernel = LinuxKernel(self.mem, X86_64_ABI, brk_start=brk,
                                      exe_path=exe_path, strace=strace)
            self.kernel.procfs.record_initial_stack(sp)
            self.kernel.max_memory = max_memory
            # The Linux layer's copies from and to guest memory are fault-safe
            # through the native core's handler (a page another thread unmaps
            # during a system call fails the call, not aotrun).
            from runtime import _native
            from runtime.guest_memory import GUARD, GUARD_BELOW

            _native.install_fault_handler(self.mem.base, self.mem.size + GUARD, GUARD_BELOW)
            self._setup_vm(device)
            v = self._new_vcpu()
            st = X86State(self)
            st.ctx.rip, st.ctx.rsp, st.ctx.rflags = int(meta["entry"]), sp, 0x2
            self._attach(v, st, self.kernel.main_thread)
            self._load_context(v, st)
            self._main = v
            self.kernel.spawn_thread = self._spawn_thread
        except BaseException:
            self.close()
            raise
        self.syscalls = 0
        self._ring3_entry: bool | None = None   # syscall stub entered in ring 3 (see below)
        self.exits = 0

    @property
    def vcpu(self) -> int:
        return self._main.fd

    @property
    def run_area(self) -> api.kvm_run:
        return self._main.run

    @property
    def fs_base(self) -> int:
        return self._main.state.fs_base

    @property
    def gs_base(self) -> int:
        return self._main.state.gs_base

    # -- VM construction ---------------------------------------------------
    def _open(self, path: str) -> int:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        self._fds.append(fd)
        return fd

    def _setup_vm(self, device: str) -> None:
        try:
            self.kvm = self._open(device)
        except OSError as e:
            raise RuntimeSetupError(kvm_unavailable_message(
                f"cannot open {device}: {e.strerror or e}")) from None
        try:
            version = api.ioctl(self.kvm, api.KVM_GET_API_VERSION)
        except OSError as e:
            raise RuntimeSetupError(kvm_unavailable_message(
                f"{device} is not a KVM device ({e.strerror})")) from None
        try:
            if version != 12:
                raise RuntimeSetupError(kvm_unavailable_message(f"KVM API version {version}, not 12"))
            self.vm = api.ioctl(self.kvm, api.KVM_CREATE_VM, 0)
        except OSError as e:
            raise RuntimeSetupError(kvm_unavailable_message(f"cannot create a VM: {e.strerror}")) from None
        self._fds.append(self.vm)
        self.has_sync_regs = bool(api.ioctl(self.kvm, api.KVM_CHECK_EXTENSION, api.KVM_CAP_SYNC_REGS)
                                  & api.KVM_SYNC_X86_REGS)
        n = (api.ioctl(self.kvm, api.KVM_CHECK_EXTENSION, api.KVM_CAP_MAX_VCPUS)
             or api.ioctl(self.kvm, api.KVM_CHECK_EXTENSION, api.KVM_CAP_NR_VCPUS) or 4)
        self.max_vcpus = max(1, min(MAX_VCPUS, n))
        self._run_size = api.ioctl(self.kvm, api.KVM_GET_VCPU_MMAP_SIZE)
        self._get_cpuid()
        for req, arg in ((api.KVM_SET_IDENTITY_MAP_ADDR, ctypes.c_uint64(IDENTITY_MAP_GPA)),
                         (api.KVM_SET_TSS_ADDR, TSS_PRIVATE_GPA)):
            try:
                api.ioctl(self.vm, req, arg)
            except OSError:
                pass                       # AMD (SVM) has no use for either
        self._sys_base = api.mmap_anonymous(SYS_SIZE)
        self._set_slot(0, 0, SLOT0_SIZE, self.mem.base)
        self._set_slot(1, SYS_GPA, SYS_SIZE, self._sys_base)
        self._build_system_memory()
        self._mapped: list[tuple[int, int, int]] = []
        self._sync_page_tables()

    def _set_slot(self, slot: int, gpa: int, size: int, host: int) -> None:
        region = api.kvm_userspace_memory_region(slot, 0, gpa, size, host)
        try:
            api.ioctl(self.vm, api.KVM_SET_USER_MEMORY_REGION, region)
        except OSError as e:
            raise RuntimeSetupError(f"KVM_SET_USER_MEMORY_REGION slot {slot} failed: {e.strerror}") from None

    def _poke_sys(self, off: int, data: bytes) -> None:
        ctypes.memmove(self._sys_base + off, data, len(data))

    def _build_system_memory(self) -> None:
        up = PTE_P | PTE_RW | PTE_US | PTE_A
        kern = PTE_P | PTE_RW | PTE_A
        sys = SYS_GPA
        # Low half: PML4[0] -> PDPT_LO -> 4 PDs -> 2048 PTs (a flat PTE array).
        self._poke_sys(PML4_OFF, struct.pack("<Q", sys + PDPT_LO_OFF | up))
        self._poke_sys(PDPT_LO_OFF, struct.pack("<4Q", *(sys + PD_LO_OFF + i * PAGE | up for i in range(4))))
        self._poke_sys(PD_LO_OFF, struct.pack("<2048Q", *(sys + PT_LO_OFF + i * PAGE | up
                                                          for i in range(2048))))
        # Top: PML4[511] -> PDPT_HI[511] -> PD_HI[511] -> PT_HI, supervisor-only.
        # (US on the upper levels; the leaves decide, only the stub page is user.)
        self._poke_sys(PML4_OFF + 511 * 8, struct.pack("<Q", sys + PDPT_HI_OFF | up))
        self._poke_sys(PDPT_HI_OFF + 511 * 8, struct.pack("<Q", sys + PD_HI_OFF | up))
        self._poke_sys(PD_HI_OFF + 511 * 8, struct.pack("<Q", sys + PT_HI_OFF | up))
        ptes = []
        for i in range(8):
            flags = kern | PTE_D
            if i in (3, 4):                         # code pages: RX, not writable
                flags &= ~PTE_RW
            else:
                flags |= PTE_NX
            if i == 4:                              # the syscall stub page: user RX
                flags |= PTE_US
            ptes.append(sys + KPAGES_OFF + i * PAGE | flags)
        self._poke_sys(PT_HI_OFF, struct.pack("<8Q", *ptes))
        # GDT
        tss_low = _seg_desc(0x8B, 0, TSS_VA & 0xFFFFFFFF, TSS_LIMIT)
        gdt = struct.pack("<8Q", 0, _seg_desc(0x9B, 0xA), _seg_desc(0x93, 0xC), _seg_desc(0xFB, 0xC),
                          _seg_desc(0xF3, 0xC), _seg_desc(0xFB, 0xA), tss_low, TSS_VA >> 32)
        self._poke_sys(KPAGES_OFF, gdt)
        # IDT: 32 exception gates; int3 (and into) callable from ring 3.
        idt = b"".join(_gate(HANDLERS + v * 8, 3 if v in (3, 4) else 0) for v in range(32))
        self._poke_sys(KPAGES_OFF + 0x1000, idt)
        # TSS: RSP0 = kernel stack top, no I/O bitmap (user in/out -> #GP).
        tss = bytearray(0x68)
        struct.pack_into("<Q", tss, 4, KSTACK_TOP)
        struct.pack_into("<H", tss, 0x66, 0x68)
        # I/O bitmap: only SYSCALL_PORT is open to ring 3 (see _syscall_entry_ring).
        iomap = bytearray(b"\xff" * 33)
        iomap[SYSCALL_PORT // 8] &= ~(1 << (SYSCALL_PORT % 8))
        self._poke_sys(KPAGES_OFF + 0x2000, bytes(tss) + bytes(iomap))
        # Code: syscall stub, flush-and-return stub, exception handlers.
        code = bytearray(PAGE)
        code[0:5] = bytes([0xE6, SYSCALL_PORT, 0x48, 0x0F, 0x07])           # out; sysretq
        flush = (b"\x48\xA3" + struct.pack("<Q", SCRATCH_VA)                 # mov [scratch], rax
                 + b"\x0F\x20\xD8\x0F\x22\xD8"                              # mov rax,cr3; mov cr3,rax
                 + b"\x48\xA1" + struct.pack("<Q", SCRATCH_VA)               # mov rax, [scratch]
                 + b"\x48\x0F\x07")                                         # sysretq
        code[0x10:0x10 + len(flush)] = flush
        # Ring-3 syscall entry with a mapping change: the int3 at USER_FLUSH ends here;
        # reload CR3, make the iret frame return to rcx with rflags r11.
        fi = (b"\x48\xA3" + struct.pack("<Q", SCRATCH_VA) + b"\x0F\x20\xD8\x0F\x22\xD8"
              + b"\x48\x89\x0C\x24" + b"\x4C\x89\x5C\x24\x10"
              + b"\x48\xA1" + struct.pack("<Q", SCRATCH_VA) + b"\x48\xCF")
        assert 0x40 + len(fi) <= 0x80
        code[0x40:0x40 + len(fi)] = fi
        # An exact return (rt_sigreturn, a handler after a fault or an async
        # signal): iretq to the frame the host wrote at IRET_FRAME; with a
        # CR3 reload first (push rax; mov rax,cr3; mov cr3,rax; pop rax).
        code[0x80:0x82] = b"\x48\xCF"
        code[0x90:0x9A] = b"\x50\x0F\x20\xD8\x0F\x22\xD8\x58\x48\xCF"
        for v in range(32):
            off = 0x100 + v * 8
            code[off:off + 5] = bytes([0xE6, EXC_PORT + v, 0xF4, 0xEB, 0xFE])  # out; hlt; jmp $
        self._poke_sys(KPAGES_OFF + 0x3000, bytes(code))
        ustub = bytes([0xE6, SYSCALL_PORT, 0x48, 0x0F, 0x07, 0xCC])   # out; sysretq; int3
        self._poke_sys(KPAGES_OFF + 0x4000, ustub + b"\xCC" * (PAGE - len(ustub)))

    def _vcpu_pages(self, index: int) -> tuple[int, list[int]]:
        """(CR3, slot-1 offsets of the 8 kernel pages at KVA) of vCPU ``index``;
        built on first use for vCPUs after the first."""
        if index == 0:
            return SYS_GPA + PML4_OFF, [KPAGES_OFF + i * PAGE for i in range(8)]
        area = VCPU_AREA_OFF + (index - 1) * VCPU_AREA
        pml4, pdpt, pd, pt = (area + i * PAGE for i in range(4))
        own = {0: area + 4 * PAGE, 2: area + 5 * PAGE, 5: area + 6 * PAGE, 6: area + 7 * PAGE,
               7: area + 8 * PAGE}
        pages = [own.get(i, KPAGES_OFF + i * PAGE) for i in range(8)]
        up = PTE_P | PTE_RW | PTE_US | PTE_A
        base = self._sys_base
        ctypes.memmove(base + pml4, base + PML4_OFF, PAGE)       # PML4[0]: the shared low half
        self._poke_sys(pml4 + 511 * 8, struct.pack("<Q", SYS_GPA + pdpt | up))
        self._poke_sys(pdpt + 511 * 8, struct.pack("<Q", SYS_GPA + pd | up))
        self._poke_sys(pd + 511 * 8, struct.pack("<Q", SYS_GPA + pt | up))
        ptes = struct.unpack("<8Q", ctypes.string_at(base + PT_HI_OFF, 64))
        flags = [e & (PTE_NX | 0xFFF) for e in ptes]
        self._poke_sys(pt, struct.pack("<8Q", *(SYS_GPA + pages[i] | flags[i] for i in range(8))))
        for i in (0, 2):                                          # GDT, TSS (+ scratch)
            ctypes.memmove(base + pages[i], base + KPAGES_OFF + i * PAGE, PAGE)
        return SYS_GPA + pml4, pages

    # -- page tables for the guest's mappings --------------------------------
    def _sync_page_tables(self) -> bool:
        """Bring the PTEs in line with GuestMemory's mappings; True if any
        changed (then every other vCPU reloads CR3 at its next return)."""
        with self._pt_lock:
            changed = self._sync_page_tables_locked()
            if changed:
                self._tlb_gen += 1
            return changed

    def _sync_page_tables_locked(self) -> bool:
        new = [(m.start, m.end, m.prot) for m in self.mem.mappings()]
        old = self._mapped
        if new == old:
            return False
        cuts = sorted({x for s, e, _p in old + new for x in (s, e)})
        o_starts = [s for s, _e, _p in old]
        n_starts = [s for s, _e, _p in new]

        def prot_at(lst, starts, a):
            i = bisect.bisect(starts, a) - 1
            if i >= 0 and lst[i][0] <= a < lst[i][1]:
                return lst[i][2]
            return -1

        changed = False
        for a, b in zip(cuts, cuts[1:]):
            po, pn = prot_at(old, o_starts, a), prot_at(new, n_starts, a)
            if po != pn:
                self._write_ptes(a, b, pn)
                changed = True
        self._mapped = new
        return changed

    def _write_ptes(self, start: int, end: int, prot: int) -> None:
        end = min(end, SLOT0_SIZE)
        if start >= end:
            return
        n = (end - start) >> 12
        addr = self._sys_base + PT_LO_OFF + (start >> 12) * 8
        if prot <= 0:                                   # unmapped or PROT_NONE
            ctypes.memset(addr, 0, n * 8)
            return
        flags = PTE_P | PTE_US | PTE_A
        if prot & 2:
            flags |= PTE_RW | PTE_D
        if not prot & 4:
            flags |= PTE_NX
        data = struct.pack(f"<{n}Q", *range(start | flags, end | flags, PAGE))
        ctypes.memmove(addr, data, len(data))

    # -- vCPUs -----------------------------------------------------------------
    def _new_vcpu(self) -> _Vcpu:
        """A vCPU set up for long mode with ring-3 user segments (its context
        comes from ``_load_context``): an idle one of an ended thread, or a
        new one (KVM_CREATE_VCPU with the next id)."""
        with self._vcpu_lock:
            if self._idle:
                v = self._idle.pop()
                self._setup_sregs(v)
                return v
            index = len(self._vcpus)
            if index >= self.max_vcpus:
                raise OSError(_errno.EAGAIN, f"KVM engine: at most {self.max_vcpus} threads at once")
            try:
                fd = api.ioctl(self.vm, api.KVM_CREATE_VCPU, index)
            except OSError as e:
                if index == 0:
                    raise RuntimeSetupError(kvm_unavailable_message(
                        f"cannot create a vCPU: {e.strerror}")) from None
                raise OSError(_errno.EAGAIN, f"KVM_CREATE_VCPU {index}: {e.strerror}") from None
            self._fds.append(fd)
            run_addr = api.mmap_fd(fd, self._run_size)
            cr3, pages = self._vcpu_pages(index)
            v = _Vcpu(index, fd, run_addr, self._run_size, cr3, pages, self.has_sync_regs)
            self._vcpus.append(v)
        try:
            api.ioctl(fd, api.KVM_SET_CPUID2, self._cpuid)
        except OSError as e:
            raise RuntimeSetupError(f"KVM_SET_CPUID2 failed: {e.strerror}") from None
        self._setup_sregs(v)
        self._set_msrs(v, {api.MSR_STAR: (SEL_UCODE32 << 48) | (SEL_KCODE << 32),
                           api.MSR_LSTAR: SYSCALL_STUB, api.MSR_CSTAR: SYSCALL_STUB,
                           api.MSR_SYSCALL_MASK: 0x47700,  # TF IF DF IOPL NT AC
                           api.MSR_KERNEL_GS_BASE: 0})
        if self.xcr0:
            xcrs = api.kvm_xcrs()
            xcrs.nr_xcrs = 1
            xcrs.xcrs[0].xcr, xcrs.xcrs[0].value = 0, self.xcr0
            try:
                api.ioctl(fd, api.KVM_SET_XCRS, xcrs)
            except OSError as e:
                raise RuntimeSetupError(f"KVM_SET_XCRS {self.xcr0:#x} failed: {e.strerror}") from None
        if self.has_sync_regs:
            v.run.kvm_valid_regs = api.KVM_SYNC_X86_REGS
        return v

    def _setup_sregs(self, v: _Vcpu) -> None:
        sregs = api.kvm_sregs()
        api.ioctl(v.fd, api.KVM_GET_SREGS, sregs)
        sregs.cs = _segment(SEL_UCODE | 3, 0xB, 3, code=True)
        data = _segment(SEL_UDATA | 3, 0x3, 3)
        sregs.ds = sregs.es = sregs.ss = data
        sregs.fs = sregs.gs = data
        sregs.tr = _segment(SEL_TSS, 0xB, 0, base=TSS_VA, limit=TSS_LIMIT, s=0, g=0)
        ldt = _segment(0, 0x2, 0, limit=0xFFFF, s=0, g=0)
        sregs.ldt = ldt
        sregs.gdt.base, sregs.gdt.limit = GDT_VA, 8 * 8 - 1
        sregs.idt.base, sregs.idt.limit = IDT_VA, IDT_ENTRIES * 16 - 1
        sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG
        sregs.cr3 = v.cr3
        sregs.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT | (CR4_OSXSAVE if self.xcr0 else 0)
        sregs.efer = EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE
        try:
            api.ioctl(v.fd, api.KVM_SET_SREGS, sregs)
        except OSError as e:
            raise RuntimeSetupError(f"KVM_SET_SREGS (long mode) failed: {e.strerror}") from None

    def _attach(self, v: _Vcpu, st: X86State, thread) -> None:
        v.state, v.thread = st, thread
        thread.state = st
        st.vcpu = v
        v.run.immediate_exit = 1 if st.interrupt else 0
        v.tlb_gen = self._tlb_gen
        v.spurious = 0

    def _load_context(self, v: _Vcpu, st: X86State) -> None:
        """Registers, FS/GS base and FPU of a vCPU that starts a thread."""
        api.ioctl(v.fd, api.KVM_SET_REGS, st.ctx)
        if self.has_sync_regs:
            v.run.kvm_dirty_regs = 0
        self._set_msrs(v, {api.MSR_FS_BASE: st.fs_base, api.MSR_GS_BASE: st.gs_base})
        if st.xsave_new is not None:
            v.set_xsave(st.xsave_new)
            st.xsave_new = None
        else:
            fpu = api.kvm_fpu()
            fpu.fcw, fpu.mxcsr = 0x37F, 0x1F80
            api.ioctl(v.fd, api.KVM_SET_FPU, fpu)

    def _get_cpuid(self) -> None:
        n = 128
        while True:
            cpuid = api.kvm_cpuid2(n)()
            cpuid.nent = n
            try:
                api.ioctl(self.kvm, api.KVM_GET_SUPPORTED_CPUID, cpuid)
                break
            except OSError as e:
                if e.errno != _errno.E2BIG or n > 4096:
                    raise RuntimeSetupError(f"KVM_GET_SUPPORTED_CPUID failed: {e.strerror}") from None
                n *= 2
        xcr0 = 0
        comps: dict[int, tuple[int, int]] = {}
        for i in range(cpuid.nent):
            ent = cpuid.entries[i]
            if ent.function == 0xD and ent.index == 0:
                xcr0 = ent.eax | ent.edx << 32
            elif ent.function == 0xD and 2 <= ent.index < 64:
                comps[ent.index] = (ent.ebx, ent.eax)        # (offset, size)
        # x87, SSE, AVX; AVX-512 (opmask, ZMM_Hi256, Hi16_ZMM) only all together.
        want = xcr0 & 0x7
        if xcr0 & 0xE0 == 0xE0:
            want |= 0xE0
        self.xcr0 = want if want & 0x3 == 0x3 else 0
        size = 576
        for i, (off, sz) in comps.items():
            if self.xcr0 >> i & 1:
                size = max(size, off + sz)
        self.xstate_size = size if self.xcr0 else 512 + 64
        self._cpuid = cpuid

    @property
    def _xcr0(self) -> int:
        return self.xcr0

    def _set_msrs(self, v: _Vcpu, values: dict[int, int]) -> None:
        msrs = api.kvm_msrs(len(values))()
        msrs.nmsrs = len(values)
        for i, (index, value) in enumerate(values.items()):
            msrs.entries[i].index, msrs.entries[i].data = index, value & MASK64
        done = api.ioctl(v.fd, api.KVM_SET_MSRS, msrs)
        if done != len(values):
            bad = list(values)[done]
            raise RuntimeSetupError(f"KVM_SET_MSRS failed at MSR {bad:#x}")

    # -- threads -----------------------------------------------------------------
    def _spawn_thread(self, child, setup):
        """clone(CLONE_THREAD) (runtime/linux/threads.py): a vCPU and a host
        thread for guest thread ``child``; → (tid, start)."""
        st = X86State(self)
        setup(st)                            # the parent's context (in the parent's thread)
        v = self._new_vcpu()
        try:
            self._attach(v, st, child)
            self._load_context(v, st)
        except BaseException:
            with self._vcpu_lock:
                self._idle.append(v)
            raise
        from runtime.linux.threads import start_parked_thread

        th, tid, go = start_parked_thread(lambda: self._thread_main(v), "aotc-vcpu")
        self._host_threads.append(th)
        self.kernel.register_thread(child, tid)
        return tid, go

    def _thread_main(self, v: _Vcpu) -> None:
        from runtime.linux.threads import ThreadExit

        k = self.kernel
        k.bind_thread(v.thread)
        try:
            self._run_vcpu(v)
        except ThreadExit:
            pass
        except BaseException as e:          # GuestFault, internal errors: the first thread reports
            k.terminate(outcome=e)
        finally:
            k.thread_exited(v.thread)
            with k._sig_lock:
                if not k.exiting and not k._live_threads():
                    k.terminate(status=0)
            v.state.vcpu = None
            v.run.immediate_exit = 0
            with self._vcpu_lock:
                self._idle.append(v)

    def _outcome(self, v: _Vcpu) -> int:
        """The process is ending: the first thread reports how, the others end."""
        from runtime.linux.kernel import GuestExit
        from runtime.linux.threads import ThreadExit

        if v is not self._main:
            raise ThreadExit()
        out = self.kernel.outcome
        if isinstance(out, GuestExit):
            return out.status & 0xFF
        raise out if out is not None else ThreadExit()

    def _fatal(self, fault: GuestFault) -> None:
        self.kernel.terminate(outcome=fault)
        raise fault

    # -- running -----------------------------------------------------------------
    def run(self, timeout: float | None = None) -> int:
        """Run to completion; return the guest's exit status (or raise GuestFault)."""
        from runtime.linux.kernel import GuestExit
        from runtime.linux.threads import ThreadExit

        k = self.kernel
        k.start_signal_router()
        self.watchdog = _Watchdog(self, timeout) if timeout else None
        try:
            try:
                return self._run_vcpu(self._main)
            except ThreadExit:
                # The first thread ended (pthread_exit) while others run.
                k.process_done.wait()
            out = k.outcome
            if isinstance(out, GuestExit):
                return out.status & 0xFF
            raise out if out is not None else GuestFault(signal.SIGKILL, 0, "lost")
        finally:
            if self.watchdog is not None:
                self.watchdog.cancel()
            k.terminate(status=0)            # stop any thread still running
            for th in self._host_threads:
                th.join(timeout=2.0)
            # The guest's interval timers end with it: a tick after the host
            # gets its own dispositions back would kill aotrun.
            for which in (signal.ITIMER_REAL, signal.ITIMER_VIRTUAL, signal.ITIMER_PROF):
                signal.setitimer(which, 0)
            k.stop_signal_router()

    def _run_vcpu(self, v: _Vcpu) -> int:
        """One guest thread's loop: run its vCPU and serve its exits; returns
        the process's exit status (first thread) or raises ThreadExit."""
        from runtime.linux.kernel import GuestExit, GuestKilled
        from runtime.linux.signals import ERESTARTSYS, ResumeGuest

        k = self.kernel
        run = v.run
        regs = v.regs
        sync = self.has_sync_regs
        fd = v.fd
        st = v.state
        t = v.thread
        ctx = st.ctx
        ctx_addr, regs_addr, nregs = ctypes.addressof(ctx), ctypes.addressof(regs), ctypes.sizeof(regs)
        KVM_RUN = api.KVM_RUN
        raw_ioctl = api.raw_ioctl
        kernel_syscall = self.kernel.syscall
        while True:
            if k.exiting:
                return self._outcome(v)
            rc = raw_ioctl(fd, KVM_RUN, None)
            self.exits += 1
            if rc < 0:
                if rc == -_errno.EINTR or rc == -_errno.EAGAIN:
                    self._interrupted(v)
                    continue
                if rc == -_errno.EFAULT:
                    # The guest touched a page its tables map but the host cannot
                    # back (a shared file mapping past the end of the file; a page
                    # another thread unmapped while this vCPU's TLB still had it).
                    api.ioctl(fd, api.KVM_GET_REGS, ctx)
                    st.trapno, st.err, st.cr2 = 14, 0, 0
                    self._sync_signal(v, signal.SIGBUS, 2, 0, ctx.rip,
                                      "guest memory the host cannot back", cpl=3)
                    continue
                raise RuntimeSetupError(f"KVM_RUN failed: {os.strerror(-rc)}")
            reason = run.exit_reason
            if not sync:
                api.ioctl(fd, api.KVM_GET_REGS, regs)
            if reason == api.KVM_EXIT_IO:
                port = run.io.port
                if port != SYSCALL_PORT:
                    if port == EXC_PORT + 3 and self._read_kstack(v, regs.rsp) == USER_FLUSH + 1:
                        if st.interrupt:
                            # a signal to take on the way back: ctx is the return's target
                            self._take_signals(v)
                            self._return_to(v, 0, exact=True, flush=True)
                            continue
                        regs.rip = FLUSH_IRET         # our own int3: flush, back to rcx
                        if sync:
                            run.kvm_dirty_regs = api.KVM_SYNC_X86_REGS
                        else:
                            api.ioctl(fd, api.KVM_SET_REGS, regs)
                        continue
                    if EXC_PORT <= port < EXC_PORT + 32:
                        self._exception(v, port - EXC_PORT)
                        continue
                    self._unexpected_exit(v, reason)
                ring3 = self._ring3_entry
                if ring3 is None:
                    ring3 = self._ring3_entry = self._syscall_entry_ring(v) == 3
                self.syscalls += 1
                nr = regs.rax
                ctypes.memmove(ctx_addr, regs_addr, nregs)
                ctx.rip, ctx.rflags = regs.rcx, regs.r11 & 0x3C7FD7 | 2
                args = (regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9)
                try:
                    if nr == NR_ARCH_PRCTL:
                        ret = self._arch_prctl(v, args[0], args[1])
                    elif nr in MAPPING_SYSCALLS:
                        # One thread at a time changes the mappings, and its
                        # page tables follow before another can (the Linux
                        # layer has no lock of its own around GuestMemory).
                        with self._pt_lock:
                            ret = kernel_syscall(nr, args)
                            mapped = self._sync_page_tables()
                    else:
                        ret = kernel_syscall(nr, args)
                except GuestExit as e:
                    k.terminate(outcome=e)
                    return self._outcome(v)
                except GuestKilled as e:
                    self._fatal(GuestFault(e.signal, (regs.rcx - 2) & MASK64, "killed by signal"))
                except ResumeGuest:
                    # rt_sigreturn: ctx (and the FPU) restored from the frame
                    self._take_signals(v)
                    self._return_to(v, 3 if ring3 else 0, exact=True, flush=False)
                    continue
                # Only these syscalls change mappings (mmap of files included).
                flush = nr in MAPPING_SYSCALLS and mapped
                if v.tlb_gen != self._tlb_gen:
                    flush = True                      # another vCPU changed them
                    v.tlb_gen = self._tlb_gen
                if ret == -ERESTARTSYS or st.interrupt or k.exiting \
                        or (t.pending | k.pending_signals) & ~t.sigmask:
                    if ret == -ERESTARTSYS:
                        if k.restart_after_interrupt():
                            ctx.rip = (ctx.rip - 2) & MASK64      # the syscall again
                            ctx.rax = nr
                        else:
                            ctx.rax = -_errno.EINTR & MASK64
                    else:
                        ctx.rax = ret & MASK64
                    if k.exiting:
                        return self._outcome(v)
                    self._take_signals(v)
                    self._return_to(v, 3 if ring3 else 0, exact=False, flush=flush)
                    continue
                regs.rax = ctx.rax = ret & MASK64
                if ring3:
                    # This host entered LSTAR without leaving ring 3: return
                    # like sysretq would, without it (rip=rcx, rflags=r11).
                    regs.r11 = ctx.rflags
                    if flush:
                        regs.rip = USER_FLUSH         # int3 -> ring 0: reload CR3, iretq
                    else:
                        regs.rip, regs.rflags = regs.rcx, regs.r11
                elif flush:
                    regs.rip = FLUSH_STUB             # reload CR3, then sysretq
                if sync:
                    run.kvm_dirty_regs = api.KVM_SYNC_X86_REGS
                else:
                    api.ioctl(fd, api.KVM_SET_REGS, regs)
            elif reason == api.KVM_EXIT_INTR:
                self._interrupted(v)
            else:
                self._unexpected_exit(v, reason)

    # -- signals -------------------------------------------------------------------
    def _take_signals(self, v: _Vcpu) -> None:
        """Deliver the thread's pending signals onto ``state.ctx`` (the user
        context the vCPU resumes; handler frames push onto it)."""
        from runtime.linux.kernel import GuestKilled

        st = v.state
        st.interrupt = 0
        v.thread.clear_wake()
        st.trapno = st.err = st.cr2 = 0
        st.frame_pushed = False
        try:
            self.kernel.deliver_signals(v.thread)
        except GuestKilled as e:
            self._fatal(GuestFault(e.signal, st.ctx.rip, "killed by signal"))

    def _interrupted(self, v: _Vcpu) -> None:
        """KVM_RUN returned EINTR: a kick (a signal for this thread, the
        process ending) or a stray host signal.  Where the vCPU stopped
        decides how a signal is taken: in guest code, on the spot; on the
        way back from a system call or fault (our stubs), on the context
        the return was going to; in a system call or exception not yet
        reported, at that exit, which comes at once."""
        k = self.kernel
        st = v.state
        v.run.immediate_exit = 0
        if k.exiting or not st.interrupt:
            return
        regs = v.regs
        api.ioctl(v.fd, api.KVM_GET_REGS, regs)
        if self.has_sync_regs:
            v.run.kvm_dirty_regs = 0
        rip = regs.rip
        if rip < KVA:                                  # guest code, ring 3
            ctypes.memmove(ctypes.addressof(st.ctx), ctypes.addressof(regs), ctypes.sizeof(regs))
            self._take_signals(v)
            if st.frame_pushed or st.xsave_new is not None:
                self._return_to(v, 3, exact=True, flush=False)
            return
        if rip == SYSCALL_STUB or HANDLERS <= rip < HANDLERS + 32 * 8:
            return                       # an exit on its way: interrupt stays set for it
        # On a return path we set up: its target is st.ctx.
        cpl = 3 if (self._ring3_entry and USTUB_VA <= rip < USTUB_VA + PAGE) else 0
        flush = rip in (USER_FLUSH, FLUSH_IRET, IRET_FLUSH) or FLUSH_STUB <= rip < FLUSH_STUB + 0x30
        self._take_signals(v)
        self._return_to(v, cpl, exact=True, flush=flush)

    def _return_to(self, v: _Vcpu, cpl: int, *, exact: bool, flush: bool) -> None:
        """Resume the vCPU in the user context ``state.ctx`` (and its new FPU
        state, if any).  ``cpl``: the privilege the vCPU is at now (3 in guest
        code or a ring-3 syscall entry, 0 in our ring-0 stubs).  ``exact``:
        every register, rcx and r11 included (else they may become rip and
        rflags, as after sysretq).  ``flush``: reload CR3 on the way."""
        st = v.state
        ctx = st.ctx
        regs = v.regs
        if st.xsave_new is not None:
            try:
                v.set_xsave(st.xsave_new)
            except OSError:
                st.xsave_new = None
                self._fatal(GuestFault(signal.SIGSEGV, ctx.rip, "bad FPU state in a signal frame"))
            st.xsave_new = None
        ctypes.memmove(ctypes.addressof(regs), ctypes.addressof(ctx), ctypes.sizeof(regs))
        if ctx.rip >= 1 << 47:
            exact = True        # sysretq to a non-canonical rip would fault in ring 0
        if cpl == 3:
            if flush and not exact:
                regs.rcx, regs.r11, regs.rip = ctx.rip, ctx.rflags, USER_FLUSH
            elif flush:
                v.tlb_gen = -1                          # at the next system call's return
        elif exact:
            frame = struct.pack("<5Q", ctx.rip, SEL_UCODE | 3, ctx.rflags, ctx.rsp, SEL_UDATA | 3)
            off = IRET_FRAME - KVA
            ctypes.memmove(self._sys_base + v.pages[off >> 12] + (off & 0xFFF), frame, len(frame))
            regs.rsp, regs.rip, regs.rflags = IRET_FRAME, IRET_FLUSH if flush else IRET_STUB, 2
        else:
            regs.rcx, regs.r11 = ctx.rip, ctx.rflags
            regs.rip, regs.rflags = FLUSH_STUB if flush else SYSRET_VA, 2
        if self.has_sync_regs:
            v.run.kvm_dirty_regs = api.KVM_SYNC_X86_REGS
        else:
            api.ioctl(v.fd, api.KVM_SET_REGS, regs)

    def _sync_signal(self, v: _Vcpu, sig: int, code: int, addr: int, report_rip: int,
                     detail: str, cpl: int) -> None:
        """A synchronous signal at ``state.ctx``: to the guest's handler, or
        the process dies with ``detail``."""
        from runtime.linux.kernel import GuestKilled
        from runtime.linux.sigframe import SigInfo

        st = v.state
        try:
            st.frame_pushed = False
            self.kernel.deliver_fault(v.thread, sig, SigInfo(signo=sig, code=code, addr=addr & MASK64))
        except GuestKilled as e:
            self._fatal(GuestFault(e.signal, report_rip, detail))
        self._return_to(v, cpl, exact=True, flush=False)

    def _arch_prctl(self, v: _Vcpu, code: int, addr: int) -> int:
        if self.kernel.strace is not None:
            self.kernel.strace.write(f"arch_prctl({code:#x}, {addr:#x}) = 0\n")
        st = v.state
        if code in (ARCH_SET_FS, ARCH_SET_GS):
            if not (addr < 1 << 47 or addr >= MASK64 - (1 << 47) + 1):
                return -_errno.EPERM
            if code == ARCH_SET_FS:
                self._set_msrs(v, {api.MSR_FS_BASE: addr})
                st.fs_base = addr
            else:
                self._set_msrs(v, {api.MSR_GS_BASE: addr})
                st.gs_base = addr
            return 0
        if code in (ARCH_GET_FS, ARCH_GET_GS):
            value = st.fs_base if code == ARCH_GET_FS else st.gs_base
            try:
                self.mem.write_u64(addr, value)
            except Exception:
                return -_errno.EFAULT
            return 0
        return -_errno.EINVAL

    def _read_kstack(self, v: _Vcpu, va: int, n: int = 8) -> int:
        off = va - KVA
        if not 0 <= off <= 0x8000 - n or (off & 0xFFF) > PAGE - n:
            return 0
        return int.from_bytes(ctypes.string_at(self._sys_base + v.pages[off >> 12] + (off & 0xFFF), n),
                              "little")

    def _syscall_entry_ring(self, v: _Vcpu) -> int:
        """CPL at the syscall stub: 0 as the architecture says, but some (nested)
        KVM hosts jump to LSTAR keeping CPL 3.  The stub page is user-executable
        and its port is open in the I/O bitmap, so both work; the return differs."""
        sregs = api.kvm_sregs()
        api.ioctl(v.fd, api.KVM_GET_SREGS, sregs)
        return sregs.cs.selector & 3

    def _spurious_fault(self, err: int, addr: int) -> bool:
        """A page fault the current mappings allow: a TLB entry from before
        another thread's mprotect (x86 drops it on the fault); retry."""
        m = self.mem.find_mapping(addr)
        if m is None or not err & 1 and not m.prot:
            return False
        if err & 2:
            return bool(m.prot & 2)
        if err & 16:
            return bool(m.prot & 4)
        return bool(m.prot & 7)

    def _exception(self, v: _Vcpu, vector: int) -> None:
        regs = v.regs
        frame = regs.rsp
        if vector in _HAS_ERROR_CODE:
            err = self._read_kstack(v, frame)
            frame += 8
        else:
            err = 0
        rip = self._read_kstack(v, frame)
        cs = self._read_kstack(v, frame + 8)
        rflags = self._read_kstack(v, frame + 16)
        usp = self._read_kstack(v, frame + 24)
        sig, what = _EXCEPTIONS.get(vector, (signal.SIGSEGV, f"exception vector {vector}"))
        if cs & 3 != 3:
            raise RuntimeSetupError(f"KVM engine fault in ring 0: {what} at {rip:#x} "
                                    f"(error code {err:#x})")
        st = v.state
        ctx = st.ctx
        ctypes.memmove(ctypes.addressof(ctx), ctypes.addressof(regs), ctypes.sizeof(regs))
        ctx.rip, ctx.rflags, ctx.rsp = rip, rflags, usp
        cr2 = 0
        addr = rip
        code = 0x80                                     # SI_KERNEL
        if vector == 14:
            sregs = api.kvm_sregs()
            api.ioctl(v.fd, api.KVM_GET_SREGS, sregs)
            cr2 = addr = sregs.cr2
            if v.spurious < 3 and self._spurious_fault(err, cr2):
                v.spurious += 1
                self._return_to(v, 0, exact=True, flush=True)
                return
            kind = "write to" if err & 2 else ("instruction fetch at" if err & 16 else "read of")
            why = "protected" if err & 1 else "unmapped"
            detail = f"invalid memory access: {kind} {why} address {cr2:#x}"
            if os.environ.get("AOTC_KVM_DEBUG"):
                detail += f" err={err:#x} cs={cs:#x} cr3={sregs.cr3:#x} cs.dpl={sregs.cs.dpl}"
            code = 2 if self.mem.find_mapping(cr2) is not None else 1   # SEGV_ACCERR / MAPERR
        elif vector == 13 and err:
            detail = f"{what} (error code {err:#x})"
        else:
            detail = what
        v.spurious = 0
        if vector in (13, 3, 1, 11, 12):
            addr = 0
        if vector == 6:
            code = 2                                    # ILL_ILLOPN
        elif vector == 0:
            code = 1                                    # FPE_INTDIV
        elif vector in (16, 19):
            code = 7                                    # FPE_FLTINV
        elif vector == 17:
            code = 1                                    # BUS_ADRALN
        elif vector == 1:
            code = 2                                    # TRAP_TRACE
        report = rip - 1 if vector == 3 else rip        # report the int3 itself
        st.trapno, st.err, st.cr2 = vector, err, cr2
        self._sync_signal(v, sig, code, addr, report, detail, cpl=0)

    def _unexpected_exit(self, v: _Vcpu, reason: int) -> None:
        regs = v.regs
        name = api.EXIT_NAMES.get(reason, str(reason))
        if reason == api.KVM_EXIT_SHUTDOWN:
            self._fatal(GuestFault(signal.SIGSEGV, regs.rip, "triple fault (vCPU shut down)"))
        if reason == api.KVM_EXIT_IO:
            self._fatal(GuestFault(signal.SIGSEGV, regs.rip, f"unexpected port I/O to {v.run.io.port:#x}"))
        raise RuntimeSetupError(f"unexpected KVM exit {name} at rip {regs.rip:#x}")

    def close(self) -> None:
        if self.kernel is not None:
            self.kernel.terminate(status=0)
        alive = False
        for th in self._host_threads:
            th.join(timeout=2.0)
            alive = alive or th.is_alive()
        if self.kernel is not None:
            self.kernel.close()
            self.kernel = None
        if alive:
            return              # a thread stuck in a host call may still touch its vCPU and memory
        for v in self._vcpus:
            api.munmap(v.run_addr, v.run_size)
        self._vcpus = []
        self._idle = []
        for fd in reversed(self._fds):
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []
        if self._sys_base:
            api.munmap(self._sys_base, SYS_SIZE)
            self._sys_base = 0
        if self.mem is not None:
            self.mem.release()
            self.mem = None


def run_kvm_image(image, path, guest_args: Sequence[str], *, env: dict[str, str] | None = None,
                  argv0: str | None = None, strace: TextIO | None = None,
                  timeout: float | None = None, max_memory: int | None = None,
                  stats: dict | None = None) -> int:
    """``runtime.machine.run_image`` for engine "kvm": argv/envp like the AOT path."""
    import resource
    import sys

    if image is None:
        raise ImageError("the kvm engine runs images made by `aotc build` from an x86_64 guest")
    try:
        if image.metadata.get("engine") != "kvm":
            raise ImageError(f"{path}: this image was built for the {image.metadata.get('engine')} "
                             f"engine ({image.metadata.get('guest_isa')} guest), not kvm")
        environ = os.environ if env is None else env
        name = argv0 if argv0 is not None else str(path)
        argv = [os.fsencode(name)] + [os.fsencode(a) for a in guest_args]
        envp = [os.fsencode(f"{k}={v}") for k, v in environ.items()]
        # (KvmMachine reports a missing or unusable /dev/kvm as "KVM is not available: ...")
        machine = KvmMachine(image, argv=argv, envp=envp, strace=strace,
                             exe_path=os.path.abspath(str(path)), max_memory=max_memory,
                             device=os.environ.get("AOTC_KVM_DEVICE") or api.KVM_DEVICE)
        t0 = time.perf_counter()
        try:
            sys.stdout.flush()
            return machine.run(timeout=timeout)
        finally:
            if stats is not None:
                stats.update({
                    "engine": "kvm", "fallback": "none",
                    "wall_seconds": round(time.perf_counter() - t0, 6),
                    "native_entries": machine.exits, "vcpu_exits": machine.exits,
                    "lookup_misses": 0, "jit_compiles": 0, "jit_blocks": 0,
                    "jit_compile_ms_p50": 0, "jit_compile_ms_p99": 0, "interp_instructions": 0,
                    "syscalls": machine.syscalls, "kvm_syscall_entry_ring": 3 if machine._ring3_entry else 0,
                    "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                    "missed_pcs": [], "vcpus": len(machine._vcpus),
                    # the generic --stats lines read these too
                    "aot_instructions": None, "aot_blocks_executed": None, "jit_instructions": 0,
                    "jit_blocks_executed": 0, "interp_blocks_executed": 0, "image_coverage": None,
                })
            machine.close()
    finally:
        image.close()
