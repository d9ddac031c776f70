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
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence, TextIO

from aotc.errors import GuestFault, ImageError, UntranslatedCode
from runtime import guest_clock
from aotc.isa.riscv64.state import (
    EXIT_BREAK,
    EXIT_CONTINUE,
    EXIT_FAULT,
    EXIT_FENCE_I,
    EXIT_FP_MODE,
    EXIT_INTERPRET,
    EXIT_INTERRUPT,
    EXIT_ILLEGAL,
    EXIT_RESUME,
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
    """What a run counts (see docs/engines.md for what is *not* counted)."""

    syscalls: int = 0
    native_entries: int = 0          # calls into the native dispatch loop
    lookup_misses: int = 0           # EXIT_MISS returns (no block in either table)
    fp_mode_exits: int = 0           # EXIT_FP_MODE returns (DYN FP op, frm RMM/reserved)
    interpret_exits: int = 0         # EXIT_INTERPRET returns (a block's entry range check failed)
    jit_compiles: int = 0
    jit_blocks: int = 0
    jit_seconds: list = field(default_factory=list)
    jit_worker_start_seconds: float = 0.0
    interp_instructions: int = 0
    interp_entries: int = 0
    jit_flushes: int = 0             # times every JIT translation was dropped
    image_retired: str | None = None  # why and where the image's code went stale
    missed_pcs: dict = field(default_factory=dict)   # pc -> times missed

    def to_dict(self, engine: str, fallback: str, wall: float) -> dict:
        import resource

        lat = sorted(self.jit_seconds)

        def pct(q: float) -> float | None:
            if not lat:
                return None
            return round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 3)

        return {
            "engine": engine, "fallback": fallback,
            "wall_seconds": round(wall, 6),
            "native_entries": self.native_entries,
            "lookup_misses": self.lookup_misses,
            "syscalls": self.syscalls,
            "jit_compiles": self.jit_compiles,
            "jit_blocks": self.jit_blocks,
            "jit_compile_ms_p50": pct(0.50),
            "jit_compile_ms_p99": pct(0.99),
            "jit_compile_ms_total": round(sum(lat) * 1000, 3),
            "jit_compile_ms": [round(s * 1000, 3) for s in self.jit_seconds],   # per compile, in order
            "jit_worker_start_ms": round(self.jit_worker_start_seconds * 1000, 3),
            "interp_instructions": self.interp_instructions,
            "interp_entries": self.interp_entries,
            "fp_mode_exits": self.fp_mode_exits,
            "interpret_exits": self.interpret_exits,
            "jit_flushes": self.jit_flushes,
            "image_retired": self.image_retired,
            "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        }


ENGINES = ("aot", "jit", "interp")
FALLBACKS = ("jit", "interp", "none")


def _set_guest_segment(native, base: int) -> None:
    """Translated code reaches guest memory through the GS segment
    (aotc/backend/llvm_builder.py): point this thread's GS base at the
    arena (``run`` does it again in whichever thread runs the code)."""
    from aotc.errors import RuntimeSetupError

    try:
        native.set_guest_segment(base)
    except OSError as e:
        raise RuntimeSetupError(f"cannot point the GS segment at the guest arena: {e}") from None


def _check_block_abi(native) -> None:
    """The native trampoline must move the registers the code generator
    passes (aotc/backend/abi.py): a runtime module built from other sources
    would run translated code with the wrong registers."""
    from aotc.backend.abi import HTAB_EMPTY, PASSED_REGS, RETURNED_REGS
    from aotc.errors import RuntimeSetupError

    empty = getattr(native, "htab_empty", lambda: None)()
    if native.block_abi() != (PASSED_REGS, RETURNED_REGS) or empty != HTAB_EMPTY:
        raise RuntimeSetupError("runtime/_native was built from other sources than this aotc "
                                "(block calling convention differs): reinstall aotc (pip install -e .)")


class _Cpu:
    """One guest thread as the run loop sees it: its state, its own
    interpreter (decoded blocks are per thread) and its last fault."""

    def __init__(self, thread, state: GuestState) -> None:
        self.thread = thread
        self.state = state
        self.interp = None
        self.fault_addr = 0
        self.fault_signal = 0
        # Nested fault handlers running (run_nested_fault in aotrt.c): for
        # each, (frame address, the stack range its handler runs on).
        self.nest: list[tuple[int, int, int]] = []
        self.exit_pending = False        # the thread exited inside a nested handler


class _NestedReturn(Exception):
    """The nested handler's rt_sigreturn for its own frame."""


class _NestedAbandon(Exception):
    """The nested handler left its frame another way (siglongjmp)."""


# How far below the (possibly stale) stack pointer a fault's signal frame
# goes when the fault came from translated code, whose sp lives in a host
# register: the state's copy may be from before the function made its frame.
_FAULT_FRAME_SLACK = 64 << 10
_FRAME_SIZE = 1088


class Machine:
    """A riscv64 guest process, backed by an AOT image (``image``) or run
    straight from a guest ELF (``elf``: no image table, every block comes
    from the fallback engine).

    ``engine``: ``aot`` runs translated code natively and sends lookup
    misses to ``fallback`` (``jit``, ``interp`` or ``none``); ``jit`` is the
    native loop with an empty image table (everything JIT-compiled);
    ``interp`` runs every instruction in the interpreter.
    """

    def __init__(self, image=None, *, argv: Sequence[bytes], envp: Sequence[bytes],
                 strace: TextIO | None = None, exe_path: str = "", elf=None,
                 engine: str = "aot", fallback: str = "jit", isa_profile: str = "max") -> None:
        from aotc.isa.riscv64.extensions import profile_extensions
        from runtime import _native
        from runtime.guest_memory import GUARD, GUARD_BELOW, GuestMemory
        from runtime.linux.abi import RISCV64_ABI
        from runtime.linux.kernel import LinuxKernel
        from runtime.process import AuxvInfo, build_initial_stack, load_segments

        if engine not in ENGINES or fallback not in FALLBACKS:
            raise ImageError(f"unknown engine {engine!r} or fallback {fallback!r}")
        if image is not None:
            meta = image.metadata
            if meta.get("guest_isa") != "riscv64" or meta.get("engine") != "aot":
                raise ImageError(f"this image needs the {meta.get('engine')} engine for a "
                                 f"{meta.get('guest_isa')} guest, which this runtime does not provide yet")
            from aotc.backend.abi import CODEGEN_VERSION
            if meta.get("codegen_version") != CODEGEN_VERSION:
                # Its code may assume another calling convention or state layout.
                raise ImageError(f"this image holds code generator version {meta.get('codegen_version')} "
                                 f"output; this aotrun runs version {CODEGEN_VERSION}: translate the "
                                 "guest again with this aotc (`aotc build`)")
            segments = image.segments
            auxv = AuxvInfo(entry=int(meta["entry"]), phdr_vaddr=int(meta["phdr_vaddr"]),
                            phent=int(meta["phent"]), phnum=int(meta["phnum"]))
            arena_bits = int(meta.get("arena_bits", 32))
        elif elf is not None:
            if elf.isa != "riscv64":
                raise ImageError(f"the {engine} engine runs riscv64 guests, not {elf.isa}")
            if engine == "aot":
                raise ImageError("the aot engine needs an image made by `aotc build`")
            segments = elf.segments
            auxv = AuxvInfo(entry=elf.entry, phdr_vaddr=elf.phdr_vaddr, phent=elf.phent, phnum=elf.phnum)
            arena_bits = 32
        else:
            raise ImageError("Machine needs an image or a guest ELF")
        self.image = image
        self._code_map = None
        self.engine = engine
        self.fallback = "jit" if engine == "jit" else ("interp" if engine == "interp" else fallback)
        self._native = _native
        _check_block_abi(_native)
        self.mem = GuestMemory(bits=arena_bits)
        _set_guest_segment(_native, self.mem.base)
        _native.install_fault_handler(self.mem.base, self.mem.size + GUARD, GUARD_BELOW)
        brk = load_segments(self.mem, segments)
        # --isa-profile: the extensions AT_HWCAP and riscv_hwprobe advertise.
        extensions = profile_extensions(isa_profile)
        sp = build_initial_stack(self.mem, argv=list(argv), envp=list(envp), auxv_info=auxv,
                                 isa="riscv64", extensions=extensions)
        self.kernel = LinuxKernel(self.mem, RISCV64_ABI, brk_start=brk,
                                  exe_path=exe_path, strace=strace)
        self.kernel.isa_extensions = extensions
        self.kernel.procfs.record_initial_stack(sp)
        self.state = GuestState()
        self.state.pc = auxv.entry
        self.state.x[2] = sp
        self.state.reservation = _MASK64
        self.kernel.main_thread.state = self.state
        self._main_cpu = _Cpu(self.kernel.main_thread, self.state)
        self._cpus = [self._main_cpu]
        self._host_threads: list[threading.Thread] = []
        self._jit_lock = threading.RLock()
        self._cpu_tls = threading.local()
        self.kernel.spawn_thread = self._spawn_thread
        if image is not None:
            info = _ImageInfo.from_address(image.symbol_address(INFO_SYMBOL))
            self._htab, self._mask = info.htab, info.mask
        else:
            # No image: table 1 is one empty slot (every lookup misses).
            self._empty = (ctypes.c_uint64 * 2)(self._native.htab_empty(), 0)
            self._htab, self._mask = ctypes.addressof(self._empty), 0
        self.stats = RunStats()
        self._jit = None
        self._interp = None
        self._image_pcs: set[int] | None = None
        self._image_code = None
        if image is not None:
            from runtime.code_invalidation import ImageCode

            self._image_code = ImageCode(segments)
        self.mem.on_mapping_change = self._mapping_changed
        self.kernel.on_icache_flush = self._icache_flushed
        self.kernel.on_fork_child = self._after_fork_child
        self.kernel.fork_guard = lambda: self._jit_lock
        if engine == "jit":
            self.jit.start_worker()   # warms up LLVM while the first block is looked up

    # -- fallback engines ---------------------------------------------------
    def image_pcs(self) -> set[int]:
        if self._image_pcs is None:
            from runtime.jit import table_pcs

            self._image_pcs = table_pcs(self._htab, self._mask) if self.image is not None else set()
        return self._image_pcs

    @property
    def jit(self):
        if self._jit is None:
            from runtime.jit import Jit

            self._jit = Jit(self.mem, self.image_pcs())
        return self._jit

    @property
    def interp(self):
        """The main thread's interpreter."""
        return self._interp_of(self._main_cpu)

    def _interp_of(self, cpu: _Cpu):
        if cpu.interp is None:
            from runtime.interp import Interpreter

            cpu.interp = Interpreter(self.mem)
            if cpu is self._main_cpu:
                self._interp = cpu.interp
        return cpu.interp

    def _interps(self) -> list:
        return [c.interp for c in list(self._cpus) if c.interp is not None]

    def _after_fork_child(self) -> None:
        """In the child of a guest fork: nothing of the parent's runtime
        that is not in this process's memory may be shared (the JIT's
        compile worker is the parent's process, reached through pipes)."""
        if self._jit is not None:
            self._jit.after_fork()
        # The forking thread is the child's only thread, hence its first:
        # its exit, pthread_exit or fatal signal now ends the process.
        me = self.kernel.current
        for cpu in self._cpus:
            if cpu.thread is me:
                self._main_cpu, self._cpus = cpu, [cpu]
                self.state = cpu.state
                break

    # -- stale translations (runtime/code_invalidation.py) ---------------------
    def _icache_flushed(self) -> None:
        """fence.i or riscv_flush_icache: any code byte may have changed."""
        if self._jit is not None:
            self._jit.invalidate_code()
            self.stats.jit_flushes = self._jit.flushes
        for it in self._interps():
            it.flush_decoded()
        self._check_image("instruction cache flush")

    def _mapping_changed(self, start: int, end: int) -> None:
        from runtime.code_invalidation import pages_overlap

        if self._jit is not None and pages_overlap(self._jit.code_pages, start, end):
            self._jit.invalidate_code()
            self.stats.jit_flushes = self._jit.flushes
        for it in self._interps():
            it.mapping_changed(start, end)
        if self._image_code is not None and self._image_code.overlaps(start, end):
            self._check_image(f"mapping change at {start:#x}-{end:#x}")

    def _check_image(self, why: str) -> None:
        if self._image_code is None or self._image_code.intact(self.mem):
            return
        # Retire the image: an empty table 1 for the dispatcher; from now on
        # every block comes from the fallback.
        self._image_code = None
        self._empty = (ctypes.c_uint64 * 2)(self._native.htab_empty(), 0)
        self._htab, self._mask = ctypes.addressof(self._empty), 0
        self._image_pcs = set()
        if self._jit is not None:
            self._jit.forget_image()
            self.stats.jit_flushes = self._jit.flushes
        self.stats.image_retired = f"{why}, guest pc {self.state.pc:#x}"
        if self.kernel.strace is not None:
            self.kernel.strace.write(f"[aotc] image code changed ({why}): image translations retired, "
                                     f"continuing in the {self.fallback} engine\n")

    def _native_covers(self, pc: int) -> bool:
        return pc in self.image_pcs() or (self._jit is not None and pc in self._jit.pcs)

    def _run_fp_mode(self, cpu: _Cpu) -> int:
        """EXIT_FP_MODE: translated code met an FP operation with rm = DYN
        while frm is RMM (x86 has no such mode) or reserved (SIGILL).  The
        interpreter runs it, then its basic block when the JIT can take over
        from there, or on to code the image or the JIT already covers."""
        self.stats.fp_mode_exits += 1
        return self._run_interp(cpu, stop=(lambda pc: True) if self.fallback == "jit" else self._native_covers)

    def _run_interpret_exit(self, cpu: _Cpu) -> int:
        """EXIT_INTERPRET: a block's entry range check found a register it
        accesses through outside the guest space (a wild pointer: the
        block faults, or does something odd but legal).  The interpreter
        runs the block, with exact faults, then translated code goes on."""
        self.stats.interpret_exits += 1
        return self._run_interp(cpu, stop=(lambda pc: True) if self.fallback == "jit" else self._native_covers)

    def _run_interp(self, cpu: _Cpu, stop: Callable[[int], bool] | None) -> int:
        """Interpret until an exit, or until ``stop(pc)`` at a block boundary,
        or for at most INTERP_SLICE instructions (a signal waits for no more)."""
        from runtime.linux.signals import INTERP_SLICE

        self.stats.interp_entries += 1
        it = self._interp_of(cpu)
        st = cpu.state
        before = it.insns
        code = it.run(st, stop=stop, limit=INTERP_SLICE)
        self.stats.interp_instructions += it.insns - before
        if code == EXIT_FAULT:
            st.fault_pc = st.pc
            cpu.fault_addr = it.fault_addr if it.fault_addr is not None else st.pc
            cpu.fault_signal = it.fault_signal
        return code

    def _run_native(self, cpu: _Cpu) -> int:
        self.stats.native_entries += 1
        jit = self._jit
        if jit is not None:
            t = jit.table
            return self._native.run(ctypes.addressof(cpu.state), self.mem.base, self._htab, self._mask,
                                    t.address, t.mask)
        return self._native.run(ctypes.addressof(cpu.state), self.mem.base, self._htab, self._mask)

    def _miss(self, cpu: _Cpu, pc: int) -> int | None:
        """A lookup miss at pc: JIT-compile it, or interpret up to native code."""
        if self._native_covers(pc):
            return None      # translated since the exiting block was compiled
        self.stats.lookup_misses += 1
        self.stats.missed_pcs[pc] = self.stats.missed_pcs.get(pc, 0) + 1
        if self.fallback == "none":
            raise UntranslatedCode(pc)
        if self.fallback == "interp":
            return self._run_interp(cpu, stop=self._native_covers)
        with self._jit_lock:
            if self._native_covers(pc):
                return None                  # another thread compiled it meanwhile
            jit = self.jit
            if not jit.compile(pc):
                what = "misaligned" if pc & 1 else "non-executable"
                raise GuestFault(signal.SIGSEGV, pc, f"instruction fetch from {what} address {pc:#x}")
            self.stats.jit_compiles += 1
            self.stats.jit_blocks = jit.blocks
            self.stats.jit_seconds = jit.compile_seconds
            self.stats.jit_worker_start_seconds = jit.worker_start_seconds
        return None

    def _guest_pc_of_host(self, host_pc: int) -> int | None:
        """Guest pc of a fault inside the image's code (JIT code stores its own)."""
        if self.image is None:
            return None
        if self._code_map is None:
            import os

            from runtime.fault_map import HostCodeMap, load_base

            host = os.pread(self.image.fd, self.image.host_object_size, 0)
            self._code_map = HostCodeMap(host, load_base(self.image.symbol_address(INFO_SYMBOL)))
        if not self._code_map.contains(host_pc):
            return None
        return self._code_map.guest_pc(host_pc)

    # -- threads ----------------------------------------------------------------
    def _spawn_thread(self, child, setup: Callable) -> tuple[int, Callable[[], None]]:
        """clone(CLONE_THREAD): a host thread for guest thread ``child``, its
        state set up by ``setup``; → (tid, start), the thread waiting to run
        guest code until ``start()`` (the kernel writes the tid first)."""
        state = GuestState()
        setup(state)
        child.state = state
        cpu = _Cpu(child, state)
        from runtime.linux.threads import start_parked_thread

        th, tid, go = start_parked_thread(lambda: self._thread_main(cpu), "aotc-guest-thread")
        self._cpus.append(cpu)
        self._host_threads.append(th)
        self.kernel.register_thread(child, tid)
        return tid, go

    def _thread_main(self, cpu: _Cpu) -> None:
        """A guest thread other than the first, to its end."""
        from runtime.linux.threads import ThreadExit

        k = self.kernel
        k.bind_thread(cpu.thread)
        _set_guest_segment(self._native, self.mem.base)
        status: int | None = None
        try:
            status = self._run_cpu(cpu)
        except ThreadExit:
            pass
        except GuestFault as e:
            k.terminate(outcome=e)
        except BaseException as e:          # an internal error: the main thread reports it
            k.terminate(outcome=e)
        finally:
            k.thread_exited(cpu.thread)
            with k._sig_lock:
                if not k.exiting and not k._live_threads():
                    k.terminate(status=0)
        if cpu is self._main_cpu:           # made the first thread by a fork (_after_fork_child)
            self._end_fork_child(status)

    # -- faults handled in place (runtime/native/aotrt.c run_nested_fault) ------------
    def _nested_fault(self, sig: int, addr: int, host_pc: int, guest_pc: int) -> int:
        """A fault in translated code, called from inside the host's signal
        handler with the faulting code suspended: run the guest's handler
        now; 0 = it returned the context unchanged (the host retries the
        instruction with the exact guest registers), 1 = the guest goes on
        at state.pc, 2 = no handler (the usual fault path)."""
        from runtime.linux.kernel import GuestExit
        from runtime.linux.sigframe import SigInfo
        from runtime.linux.signals import SIG_DFL, SIG_IGN
        from runtime.linux.threads import ThreadExit

        cpu = getattr(self._cpu_tls, "cpu", None)
        k = self.kernel
        if cpu is None or k.exiting or k.action(sig)[0] in (SIG_DFL, SIG_IGN) \
                or cpu.thread.sigmask & (1 << (sig - 1)):
            return 2
        st = cpu.state
        if guest_pc == _MASK64:
            guest_pc = self._guest_pc_of_host(host_pc)
        if guest_pc is None:
            guest_pc = st.fault_pc
        size = ctypes.sizeof(st)
        st.pc = guest_pc
        saved = ctypes.string_at(ctypes.addressof(st), size)
        code = 2 if sig == signal.SIGBUS or self.mem.find_mapping(addr & _MASK64) else 1
        info = SigInfo(signo=sig, code=code, addr=addr & _MASK64)
        stale_sp = st.x[2]
        t = cpu.thread
        alt_sp, alt_flags, alt_size = t.altstack
        try:
            st.x[2] = stale_sp - _FAULT_FRAME_SLACK
            try:
                k.deliver_fault(t, sig, info)
            except Exception:
                return 2
            frame = st.x[2]
            # the frame records the interrupted sp, not the slack below it
            self.mem.write_u64(frame + 128 + 176 + 16, stale_sp)
        finally:
            pass
        if alt_size and alt_sp <= frame < alt_sp + alt_size:
            lo, hi = alt_sp, alt_sp + alt_size
        else:
            lo, hi = 0, frame + _FRAME_SIZE
        cpu.nest.append((frame, lo, hi))
        try:
            self._run_cpu(cpu)
            return 1                              # the process is ending
        except _NestedReturn:
            now = ctypes.string_at(ctypes.addressof(st), size)
            regs = slice(0, 8 * 64 + 16)          # x, f, pc, fcsr
            if now[regs] == saved[regs]:
                interrupt = st.interrupt
                ctypes.memmove(ctypes.addressof(st), saved, size)
                st.interrupt = interrupt
                return 0
            return 1
        except _NestedAbandon:
            return 1
        except ThreadExit:
            cpu.exit_pending = True
            return 1
        except GuestExit as e:
            k.terminate(outcome=e)
            return 1
        except GuestFault as e:
            k.terminate(outcome=e)
            return 1
        except BaseException as e:              # an internal error: reported by the first thread
            k.terminate(outcome=e)
            return 1
        finally:
            cpu.nest.pop()

    # -- the run loop ---------------------------------------------------------------
    def run(self) -> int:
        """Run to completion; return the guest's exit status (or raise GuestFault)."""
        k = self.kernel
        k.start_signal_router()
        guest_clock.install(self.state)   # threads copy it with the rest of the state
        if self.engine != "interp":
            self._native.set_fault_callback(self._nested_fault)
        try:
            return self._run_main()
        finally:
            k.terminate(status=0)          # stop any thread still running
            k.stop_signal_router()
            self._native.set_fault_callback(None)

    def _run_main(self) -> int:
        """Run the process's first thread; → the process's exit status (or
        raise the GuestFault that ended it)."""
        from runtime.linux.kernel import GuestExit
        from runtime.linux.threads import ThreadExit

        k = self.kernel
        try:
            return self._run_cpu(self._main_cpu)
        except ThreadExit:
            # The first thread ended (pthread_exit) while others run: the
            # process ends with the last of them, or with exit_group.
            k.process_done.wait()
        out = k.outcome
        if isinstance(out, GuestExit):
            return out.status & 0xFF
        raise out if out is not None else GuestFault(signal.SIGKILL, self._main_cpu.state.pc, "lost")

    def _end_fork_child(self, status: int | None) -> None:
        """A fork child whose forking thread was not the host's main thread
        (but one of the parent's guest-thread host threads) ends here: no
        host main thread returns through run() and the cli in this process,
        so this thread ends it the way the cli does.  ``status``: what the
        thread's loop returned (None: it ended otherwise)."""
        import os

        from runtime.host_exit import die_by_signal, flush_stdio
        from runtime.linux.kernel import GuestExit

        def say(line: str) -> None:
            flush_stdio()
            print(line, file=sys.stderr)
            flush_stdio()

        k = self.kernel
        if status is None:
            k.process_done.wait()
            out = k.outcome
            if isinstance(out, GuestExit):
                status = out.status & 0xFF
            elif isinstance(out, GuestFault):
                say(f"aotrun: {out}")
                die_by_signal(out.signal, out.exit_code, exit=os._exit)
            else:
                say(f"aotrun: internal error in a fork child: {out!r}")
                os._exit(70)
        flush_stdio()
        os._exit(status or 0)

    def _outcome(self, cpu: _Cpu) -> int:
        """The process is ending (another thread's exit_group or fatal
        signal): the first thread reports how; the others end."""
        from runtime.linux.kernel import GuestExit
        from runtime.linux.threads import ThreadExit

        if cpu is not self._main_cpu:
            raise ThreadExit()
        out = self.kernel.outcome
        if isinstance(out, GuestExit):
            return out.status & 0xFF
        raise out if out is not None else ThreadExit()

    def _fatal(self, cpu: _Cpu, fault: GuestFault) -> None:
        """A signal's default action ends the process (from any thread)."""
        self.kernel.terminate(outcome=fault)
        raise fault

    def _deliver(self, cpu: _Cpu) -> None:
        """Take the thread's pending signals at a safe point."""
        from runtime.linux.kernel import GuestKilled

        try:
            self.kernel.deliver_signals(cpu.thread)
        except GuestKilled as e:
            self._fatal(cpu, GuestFault(e.signal, cpu.state.pc, "killed by signal"))

    def _fault(self, cpu: _Cpu, sig: int, code: int, addr: int, message: str) -> None:
        """A synchronous signal at the guest instruction at state.pc: to the
        guest's handler, or the process dies with ``message``."""
        from runtime.linux.kernel import GuestKilled
        from runtime.linux.sigframe import SigInfo

        try:
            self.kernel.deliver_fault(cpu.thread, sig, SigInfo(signo=sig, code=code, addr=addr & _MASK64))
        except GuestKilled as e:
            self._fatal(cpu, GuestFault(e.signal, cpu.state.pc, message))

    def _run_cpu(self, cpu: _Cpu) -> int:
        """One guest thread's loop: run code, serve its exits; returns the
        process's exit status (first thread) or raises ThreadExit."""
        from runtime.linux.kernel import GuestExit, GuestKilled
        from runtime.linux.signals import ERESTARTSYS, ResumeGuest

        k = self.kernel
        t = cpu.thread
        st = cpu.state
        cpu.fault_addr = 0
        cpu.fault_signal = 0
        self._cpu_tls.cpu = cpu
        interp_only = self.engine == "interp"
        while True:
            if k.exiting:
                return self._outcome(cpu)
            if cpu.exit_pending:
                from runtime.linux.threads import ThreadExit
                raise ThreadExit()
            if cpu.nest:
                _frame, lo, hi = cpu.nest[-1]
                if not lo <= st.x[2] < hi:
                    raise _NestedAbandon()
            if st.interrupt:
                st.interrupt = 0
                t.clear_wake()
                self._deliver(cpu)
                continue
            if st.pc & 1:
                # The entry point, or a pc a syscall (sigreturn) set: no engine
                # can fetch there (jalr clears bit 0, branch offsets are even).
                self._fault(cpu, signal.SIGSEGV, 1, st.pc,
                            f"instruction fetch from misaligned address {st.pc:#x}")
                continue
            if st.pc == k.sigreturn_pc and k.sigreturn_pc:
                # The signal trampoline (``li a7, 139; ecall``): served here,
                # so no engine needs to translate it.
                sp = st.x[2]
                try:
                    k.sys_rt_sigreturn()
                except ResumeGuest:
                    if cpu.nest and sp == cpu.nest[-1][0]:
                        raise _NestedReturn() from None
                except GuestKilled as e:
                    self._fatal(cpu, GuestFault(e.signal, st.pc, "bad signal frame"))
                continue
            if interp_only:
                code = self._run_interp(cpu, stop=None)
            else:
                code = self._run_native(cpu)
                if code == EXIT_FAULT:
                    cpu.fault_addr, host_pc, cpu.fault_signal, guest_pc = self._native.last_fault()
                    if guest_pc == _MASK64:        # not the out-of-range trap: map the host pc
                        guest_pc = self._guest_pc_of_host(host_pc)
                    if guest_pc is not None:
                        st.fault_pc = guest_pc
            if code == EXIT_FP_MODE:
                code = self._run_fp_mode(cpu)
            elif code == EXIT_INTERPRET:
                code = self._run_interpret_exit(cpu)
            while code == EXIT_MISS:
                if st.pc == k.sigreturn_pc and k.sigreturn_pc:
                    code = None
                    break
                code = self._miss(cpu, st.pc)
                if code is None:
                    break
            if code is None or code in (EXIT_CONTINUE, EXIT_INTERRUPT, EXIT_RESUME):
                continue
            if code == EXIT_SYSCALL:
                self.stats.syscalls += 1
                x = st.x
                sp = x[2]
                try:
                    ret = k.syscall(x[17], (x[10], x[11], x[12], x[13], x[14], x[15]))
                except GuestExit as e:
                    k.terminate(outcome=e)
                    return self._outcome(cpu)
                except GuestKilled as e:
                    self._fatal(cpu, GuestFault(e.signal, st.pc, "killed by signal"))
                except ResumeGuest:
                    if cpu.nest and sp == cpu.nest[-1][0]:
                        raise _NestedReturn() from None
                    continue                         # rt_sigreturn restored the state
                if ret == -ERESTARTSYS:
                    if not k.restart_after_interrupt():
                        x[10] = -4 & _MASK64         # EINTR
                        st.pc += 4
                    # else: the ecall runs again after the handler (a0 unchanged)
                else:
                    x[10] = ret & _MASK64
                    st.pc += 4
                if (t.pending | k.pending_signals) & ~t.sigmask:
                    self._deliver(cpu)
            elif code == EXIT_FAULT:
                sig = cpu.fault_signal or signal.SIGSEGV
                what = "bus error" if sig == signal.SIGBUS else "invalid memory access"
                st.pc = st.fault_pc
                # si_code: BUS_ADRERR; SEGV_ACCERR where something is mapped, else SEGV_MAPERR
                code = 2 if sig == signal.SIGBUS or self.mem.find_mapping(cpu.fault_addr & _MASK64) else 1
                self._fault(cpu, sig, code, cpu.fault_addr,
                            f"{what} at {cpu.fault_addr & _MASK64:#x}")
            elif code == EXIT_ILLEGAL:
                self._fault(cpu, signal.SIGILL, 1, st.pc, f"illegal instruction {st.exit_info:#x}")
            elif code == EXIT_BREAK:
                self._fault(cpu, signal.SIGTRAP, 1, st.pc, "ebreak")
            elif code == EXIT_FENCE_I:
                st.pc = st.exit_info
                self._icache_flushed()
            else:
                raise ImageError(f"translated code returned unknown exit code {code}")

    def executed_counts(self) -> dict:
        """Guest blocks and instructions executed per engine, and the share of
        instructions the image ran.  JIT code and the interpreter always
        count; image code only when built with ``aotc build --count`` (else
        its figures are None: counting costs speed in tight loops)."""
        st = self.state
        counted = self.image is not None and bool(self.image.metadata.get("counted"))
        it = self._interp
        out = {
            "aot_blocks_executed": st.aot_blocks if counted else None,
            "aot_instructions": st.aot_insns if counted else None,
            "jit_blocks_executed": st.jit_blocks,
            "jit_instructions": st.jit_insns,
            "interp_blocks_executed": it.blocks_run if it is not None else 0,
        }
        total = st.jit_insns + self.stats.interp_instructions + (st.aot_insns if counted else 0)
        if self.image is None:
            out["image_coverage"] = 0.0 if total else None
        else:
            out["image_coverage"] = round(st.aot_insns / total, 6) if counted and total else None
        return out

    def close(self) -> None:
        self.kernel.terminate(status=0)
        alive = False
        for th in self._host_threads:
            th.join(timeout=2.0)
            alive = alive or th.is_alive()
        if self._jit is not None:
            self._jit.close()
        self.kernel.close()
        if not alive:
            # A thread stuck in a host call may still touch guest memory:
            # then the arena stays mapped until the process exits.
            self.mem.release()


def run_image(path: Path, guest_args: Sequence[str], *, trust: Sequence[Path] = (),
              env: dict[str, str] | None = None, argv0: str | None = None,
              strace: TextIO | None = None, engine: str = "aot", fallback: str = "jit",
              stats: dict | None = None, timeout: float | None = None,
              max_memory: int | None = None, isa_profile: str = "max") -> int:
    """Verify, map and run an image — or, for ``engine`` ``jit``/``interp``,
    also a guest ELF directly; the shared entry point of aotrun and tests.
    ``stats``, when given, is filled with the run's counters (RunStats.to_dict)."""
    import os
    import time

    from aotc.keys import trusted_keys
    from loader import load_image

    image = elf = None
    if engine in ("jit", "interp") and _is_elf(Path(path)):
        from aotc.elf.guest_elf import read_guest_elf

        elf = read_guest_elf(Path(path))
    else:
        if _is_elf(Path(path)):
            # A guest ELF for the aot engine: say first if it cannot run at
            # all (dynamically linked...), else the loader says to build it.
            from aotc.elf.guest_elf import read_guest_elf

            read_guest_elf(Path(path))
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
                      exe_path=os.path.abspath(str(path)), elf=elf, engine=engine, fallback=fallback,
                      isa_profile=isa_profile)
    watchdog = None
    t0 = time.perf_counter()
    try:
        if max_memory is not None:
            from runtime.limits import MemoryLimitExceeded

            if machine.mem.mapped_bytes > max_memory:
                raise MemoryLimitExceeded(machine.mem.mapped_bytes, max_memory)
            machine.kernel.max_memory = max_memory
        if timeout is not None:
            from runtime.limits import ExitWatchdog

            watchdog = ExitWatchdog(timeout)
        sys.stdout.flush()
        return machine.run()
    finally:
        if watchdog is not None:
            watchdog.cancel()
        if stats is not None:
            stats.update(machine.stats.to_dict(engine, machine.fallback, time.perf_counter() - t0))
            stats.update(machine.executed_counts())
            stats["missed_pcs"] = sorted(machine.stats.missed_pcs)
        machine.close()


def _is_elf(path: Path) -> bool:
    """Whether ``path`` is a guest ELF rather than an aotc image: an
    executable (ET_EXEC), or a shared object (ET_DYN: a static-pie guest, or
    a host object that an image is) without the image footer."""
    from aotc.image.layout import FOOTER_SIZE, MAGIC

    try:
        with open(path, "rb") as f:
            head = f.read(18)
            if head[:4] != b"\x7fELF":
                return False
            e_type = int.from_bytes(head[16:18], "little")
            if e_type != 3:
                return e_type == 2
            size = f.seek(0, 2)
            if size < FOOTER_SIZE:
                return True
            f.seek(size - FOOTER_SIZE)
            return f.read(len(MAGIC)) != MAGIC
    except OSError:
        return False
