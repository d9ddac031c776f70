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
guest signals (``GuestFault``).  See docs/kvm.md.
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
SYS_SIZE = PT_LO_OFF + 2048 * PAGE

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
    """Kicks the vCPU thread out of KVM_RUN once ``seconds`` have passed."""

    KICK = signal.SIGUSR1

    def __init__(self, run: api.kvm_run, seconds: float) -> None:
        self.run = run
        self.seconds = seconds
        self.expired = False
        self._stop = threading.Event()
        self._target = threading.get_ident()
        self._armed = True
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeSetupError("--timeout needs aotrun's main thread (signal handlers)")
        # A handler (so KVM_RUN gets EINTR instead of the process dying) that
        # also ends a guest blocked in a host system call (sleep, read).
        self._old = signal.signal(self.KICK, self._on_kick)
        self._thread = threading.Thread(target=self._main, name="aotrun-timeout", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        if self._stop.wait(self.seconds):
            return
        self.expired = True
        # Repeat until the vCPU loop notices: a kick may land just before KVM_RUN.
        while not self._stop.is_set():
            self.run.immediate_exit = 1
            try:
                signal.pthread_kill(self._target, self.KICK)
            except (ProcessLookupError, OSError):
                return
            self._stop.wait(0.02)

    def _on_kick(self, _signum, _frame) -> None:
        if self.expired and self._armed:
            self._armed = False
            raise GuestTimeout(self.seconds)

    def cancel(self) -> None:
        self._armed = False
        self._stop.set()
        self._thread.join()
        signal.signal(self.KICK, self._old)


class KvmMachine:
    """An x86_64 static guest process running in a KVM vCPU."""

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
        self._run_addr = 0
        self.mem = None
        self.kernel = None
        self.max_memory = max_memory
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
            self._setup_vm(device)
            self._setup_vcpu(int(meta["entry"]), sp)
        except BaseException:
            self.close()
            raise
        self.syscalls = 0
        self._ring3_entry: bool | None = None   # syscall stub entered in ring 3 (see below)
        self.exits = 0
        self.fs_base = 0
        self.gs_base = 0

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
        assert 0x40 + len(fi) <= 0x100
        code[0x40:0x40 + len(fi)] = fi
        for v in range(32):
            off = 0x100 + v * 8
            code[off:off + 5] = bytes([0xE6, EXC_PORT + v, 0xF4, 0xEB, 0xFE])  # out; hlt; jmp $
        self._poke_sys(KPAGES_OFF + 0x3000, bytes(code))
        ustub = bytes([0xE6, SYSCALL_PORT, 0x48, 0x0F, 0x07, 0xCC])   # out; sysretq; int3
        self._poke_sys(KPAGES_OFF + 0x4000, ustub + b"\xCC" * (PAGE - len(ustub)))

    # -- page tables for the guest's mappings --------------------------------
    def _sync_page_tables(self) -> bool:
        """Bring the PTEs in line with GuestMemory's mappings; True if any changed."""
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

    # -- vCPU ------------------------------------------------------------------
    def _setup_vcpu(self, entry: int, sp: int) -> None:
        try:
            self.vcpu = api.ioctl(self.vm, api.KVM_CREATE_VCPU, 0)
        except OSError as e:
            raise RuntimeSetupError(kvm_unavailable_message(f"cannot create a vCPU: {e.strerror}")) from None
        self._fds.append(self.vcpu)
        self._run_size = api.ioctl(self.kvm, api.KVM_GET_VCPU_MMAP_SIZE)
        self._run_addr = api.mmap_fd(self.vcpu, self._run_size)
        self.run_area = api.kvm_run.from_address(self._run_addr)
        self._set_cpuid()
        sregs = api.kvm_sregs()
        api.ioctl(self.vcpu, api.KVM_GET_SREGS, sregs)
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
        sregs.cr3 = SYS_GPA + PML4_OFF
        sregs.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT | (CR4_OSXSAVE if self._xcr0 else 0)
        sregs.efer = EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE
        try:
            api.ioctl(self.vcpu, api.KVM_SET_SREGS, sregs)
        except OSError as e:
            raise RuntimeSetupError(f"KVM_SET_SREGS (long mode) failed: {e.strerror}") from None
        regs = api.kvm_regs()
        regs.rip, regs.rsp, regs.rflags = entry, sp, 0x2
        api.ioctl(self.vcpu, api.KVM_SET_REGS, regs)
        self._set_msrs({api.MSR_STAR: (SEL_UCODE32 << 48) | (SEL_KCODE << 32),
                        api.MSR_LSTAR: SYSCALL_STUB, api.MSR_CSTAR: SYSCALL_STUB,
                        api.MSR_SYSCALL_MASK: 0x47700,  # TF IF DF IOPL NT AC
                        api.MSR_FS_BASE: 0, api.MSR_GS_BASE: 0, api.MSR_KERNEL_GS_BASE: 0})
        fpu = api.kvm_fpu()
        fpu.fcw, fpu.mxcsr = 0x37F, 0x1F80
        api.ioctl(self.vcpu, api.KVM_SET_FPU, fpu)
        if self._xcr0:
            xcrs = api.kvm_xcrs()
            xcrs.nr_xcrs = 1
            xcrs.xcrs[0].xcr, xcrs.xcrs[0].value = 0, self._xcr0
            try:
                api.ioctl(self.vcpu, api.KVM_SET_XCRS, xcrs)
            except OSError as e:
                raise RuntimeSetupError(f"KVM_SET_XCRS {self._xcr0:#x} failed: {e.strerror}") from None
        if self.has_sync_regs:
            self.run_area.kvm_valid_regs = api.KVM_SYNC_X86_REGS
        self._regs = self.run_area.regs if self.has_sync_regs else api.kvm_regs()

    def _set_cpuid(self) -> None:
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
        for i in range(cpuid.nent):
            ent = cpuid.entries[i]
            if ent.function == 0xD and ent.index == 0:
                xcr0 = ent.eax | ent.edx << 32
        # x87, SSE, AVX; AVX-512 (opmask, ZMM_Hi256, Hi16_ZMM) only all together.
        want = xcr0 & 0x7
        if xcr0 & 0xE0 == 0xE0:
            want |= 0xE0
        self._xcr0 = want if want & 0x3 == 0x3 else 0
        try:
            api.ioctl(self.vcpu, api.KVM_SET_CPUID2, cpuid)
        except OSError as e:
            raise RuntimeSetupError(f"KVM_SET_CPUID2 failed: {e.strerror}") from None

    def _set_msrs(self, values: dict[int, int]) -> None:
        msrs = api.kvm_msrs(len(values))()
        msrs.nmsrs = len(values)
        for i, (index, value) in enumerate(values.items()):
            msrs.entries[i].index, msrs.entries[i].data = index, value & MASK64
        done = api.ioctl(self.vcpu, api.KVM_SET_MSRS, msrs)
        if done != len(values):
            bad = list(values)[done]
            raise RuntimeSetupError(f"KVM_SET_MSRS failed at MSR {bad:#x}")

    # -- running -----------------------------------------------------------------
    def run(self, timeout: float | None = None) -> int:
        """Run to completion; return the guest's exit status (or raise GuestFault)."""
        from runtime.linux.kernel import GuestExit, GuestKilled

        watchdog = _Watchdog(self.run_area, timeout) if timeout else None
        run = self.run_area
        regs = self._regs
        sync = self.has_sync_regs
        vcpu = self.vcpu
        KVM_RUN = api.KVM_RUN
        raw_ioctl = api.raw_ioctl
        kernel_syscall = self.kernel.syscall
        try:
            while True:
                rc = raw_ioctl(vcpu, KVM_RUN, None)
                self.exits += 1
                if rc < 0:
                    if rc == -_errno.EINTR or rc == -_errno.EAGAIN:
                        if watchdog is not None and watchdog.expired:
                            raise GuestTimeout(timeout)
                        continue
                    if rc == -_errno.EFAULT:
                        # The guest touched a page its tables map but the host cannot
                        # back (e.g. a shared file mapping past the end of the file).
                        r = api.kvm_regs()
                        api.ioctl(vcpu, api.KVM_GET_REGS, r)
                        raise GuestFault(signal.SIGBUS, r.rip, "guest memory the host cannot back")
                    raise RuntimeSetupError(f"KVM_RUN failed: {os.strerror(-rc)}")
                reason = run.exit_reason
                if not sync:
                    api.ioctl(vcpu, api.KVM_GET_REGS, regs)
                if reason == api.KVM_EXIT_IO:
                    port = run.io.port
                    if port != SYSCALL_PORT:
                        if port == EXC_PORT + 3 and self._read_kstack(regs.rsp) == USER_FLUSH + 1:
                            regs.rip = FLUSH_IRET         # our own int3: flush, back to rcx
                            if sync:
                                run.kvm_dirty_regs = api.KVM_SYNC_X86_REGS
                            else:
                                api.ioctl(vcpu, api.KVM_SET_REGS, regs)
                            continue
                        if EXC_PORT <= port < EXC_PORT + 32:
                            self._exception(port - EXC_PORT, regs)
                        self._unexpected_exit(reason, regs)
                    ring3 = self._ring3_entry
                    if ring3 is None:
                        ring3 = self._ring3_entry = self._syscall_entry_ring() == 3
                    self.syscalls += 1
                    nr = regs.rax
                    args = (regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9)
                    try:
                        if nr == NR_ARCH_PRCTL:
                            ret = self._arch_prctl(args[0], args[1])
                        else:
                            ret = kernel_syscall(nr, args)
                    except GuestExit as e:
                        return e.status & 0xFF
                    except GuestKilled as e:
                        raise GuestFault(e.signal, (regs.rcx - 2) & MASK64, "killed by signal") from None
                    regs.rax = ret & MASK64
                    # Only these syscalls change mappings (mmap of files included).
                    flush = nr in MAPPING_SYSCALLS and self._sync_page_tables()
                    if ring3:
                        # This host entered LSTAR without leaving ring 3: return
                        # like sysretq would, without it (rip=rcx, rflags=r11).
                        regs.r11 = regs.r11 & 0x3C7FD7 | 2
                        if flush:
                            regs.rip = USER_FLUSH         # int3 -> ring 0: reload CR3, iretq
                        else:
                            regs.rip, regs.rflags = regs.rcx, regs.r11
                    elif flush:
                        regs.rip = FLUSH_STUB             # reload CR3, then sysretq
                    if sync:
                        run.kvm_dirty_regs = api.KVM_SYNC_X86_REGS
                    else:
                        api.ioctl(vcpu, api.KVM_SET_REGS, regs)
                elif reason == api.KVM_EXIT_INTR:
                    if watchdog is not None and watchdog.expired:
                        raise GuestTimeout(timeout)
                else:
                    self._unexpected_exit(reason, regs)
        finally:
            if watchdog is not None:
                watchdog.cancel()
                run.immediate_exit = 0

    def _arch_prctl(self, code: int, addr: int) -> int:
        if self.kernel.strace is not None:
            self.kernel.strace.write(f"arch_prctl({code:#x}, {addr:#x}) = 0\n")
        if code in (ARCH_SET_FS, ARCH_SET_GS):
            if not (addr < 1 << 47 or addr >= MASK64 - (1 << 47) + 1):
                return -_errno.EPERM
            if code == ARCH_SET_FS:
                self._set_msrs({api.MSR_FS_BASE: addr})
                self.fs_base = addr
            else:
                self._set_msrs({api.MSR_GS_BASE: addr})
                self.gs_base = addr
            return 0
        if code in (ARCH_GET_FS, ARCH_GET_GS):
            value = self.fs_base if code == ARCH_GET_FS else self.gs_base
            try:
                self.mem.write_u64(addr, value)
            except Exception:
                return -_errno.EFAULT
            return 0
        return -_errno.EINVAL

    def _read_kstack(self, va: int, n: int = 8) -> int:
        off = va - KVA
        if not 0 <= off <= 0x8000 - n:
            return 0
        return int.from_bytes(ctypes.string_at(self._sys_base + KPAGES_OFF + off, n), "little")

    def _write_kstack(self, va: int, value: int) -> None:
        off = va - KVA
        if not 0x5000 <= off <= 0x8000 - 8:
            raise RuntimeSetupError(f"KVM engine: kernel stack pointer {va:#x} out of range")
        ctypes.memmove(self._sys_base + KPAGES_OFF + off, struct.pack("<Q", value & MASK64), 8)

    def _syscall_entry_ring(self) -> int:
        """CPL at the syscall stub: 0 as the architecture says, but some (nested)
        KVM hosts jump to LSTAR keeping CPL 3.  The stub page is user-executable
        and its port is open in the I/O bitmap, so both work; the return differs."""
        sregs = api.kvm_sregs()
        api.ioctl(self.vcpu, api.KVM_GET_SREGS, sregs)
        return sregs.cs.selector & 3

    def _exception(self, vector: int, regs) -> None:
        frame = regs.rsp
        if vector in _HAS_ERROR_CODE:
            err = self._read_kstack(frame)
            frame += 8
        else:
            err = 0
        rip = self._read_kstack(frame)
        cs = self._read_kstack(frame + 8)
        sig, what = _EXCEPTIONS.get(vector, (signal.SIGSEGV, f"exception vector {vector}"))
        if cs & 3 != 3:
            raise RuntimeSetupError(f"KVM engine fault in ring 0: {what} at {rip:#x} "
                                    f"(error code {err:#x})")
        if vector == 14:
            sregs = api.kvm_sregs()
            api.ioctl(self.vcpu, api.KVM_GET_SREGS, sregs)
            kind = "write to" if err & 2 else ("instruction fetch at" if err & 16 else "read of")
            why = "protected" if err & 1 else "unmapped"
            detail = f"invalid memory access: {kind} {why} address {sregs.cr2:#x}"
            if os.environ.get("AOTC_KVM_DEBUG"):
                detail += f" err={err:#x} cs={cs:#x} cr3={sregs.cr3:#x} cs.dpl={sregs.cs.dpl}"
        elif vector == 13 and err:
            detail = f"{what} (error code {err:#x})"
        else:
            detail = what
        if vector == 3:
            rip -= 1                       # report the int3 itself, not the next instruction
        raise GuestFault(sig, rip, detail)

    def _unexpected_exit(self, reason: int, regs) -> None:
        name = api.EXIT_NAMES.get(reason, str(reason))
        if reason == api.KVM_EXIT_SHUTDOWN:
            raise GuestFault(signal.SIGSEGV, regs.rip, "triple fault (vCPU shut down)")
        if reason == api.KVM_EXIT_IO:
            raise GuestFault(signal.SIGSEGV, regs.rip, f"unexpected port I/O to {self.run_area.io.port:#x}")
        raise RuntimeSetupError(f"unexpected KVM exit {name} at rip {regs.rip:#x}")

    def close(self) -> None:
        if self.kernel is not None:
            self.kernel.close()
            self.kernel = None
        if self._run_addr:
            api.munmap(self._run_addr, self._run_size)
            self._run_addr = 0
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
                    "missed_pcs": [],
                })
            machine.close()
    finally:
        image.close()
