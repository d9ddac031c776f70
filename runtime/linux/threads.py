"""Guest threads as the emulated kernel sees them.

Every guest thread runs on a host thread of its own (runtime/machine.py);
``LinuxKernel.current`` is the ``GuestThread`` of the host thread making a
system call.  What Linux keeps per thread lives here: the tid, the signal
mask, thread-directed pending signals, the alternate signal stack,
clear_child_tid and the robust list.  A thread that blocks in a system call
waits on its ``wake_fd`` too (an eventfd), so a signal sent to it, from any
thread or from outside, interrupts the wait.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

SS_DISABLE = 2


@dataclass(eq=False)
class GuestThread:
    tid: int
    state: object = None                  # the thread's GuestState (ctypes), set by the Machine
    sigmask: int = 0
    pending: int = 0                      # signals sent to this thread (bit sig-1)
    altstack: tuple[int, int, int] = (0, SS_DISABLE, 0)
    clear_child_tid: int = 0
    robust_list: tuple[int, int] = (0, 0)
    exited: bool = False
    wake_fd: int = field(default=-1)
    host_ident: int = 0                   # threading.get_ident() of its host thread
    sig_info: dict = field(default_factory=dict)   # sig → [SigInfo] for ``pending``
    saved_sigmask: int | None = None      # sigsuspend/ppoll: the mask to restore after delivery
    in_wait: bool = False

    def __post_init__(self) -> None:
        if self.wake_fd < 0:
            self.wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.lock = threading.Lock()

    def notify(self) -> None:
        """Make ``wake_fd`` readable: a blocked system call of this thread returns."""
        try:
            os.eventfd_write(self.wake_fd, 1)
        except OSError:
            pass

    def clear_wake(self) -> None:
        try:
            os.eventfd_read(self.wake_fd)
        except OSError:
            pass

    def close(self) -> None:
        if self.wake_fd >= 0:
            os.close(self.wake_fd)
            self.wake_fd = -1


# --------------------------------------------------------------------------
# The thread system calls (a LinuxKernel mixin)
# --------------------------------------------------------------------------
import ctypes  # noqa: E402
import errno as _errno  # noqa: E402
import struct  # noqa: E402
from collections.abc import Callable  # noqa: E402

from runtime.linux.syscall_base import GuestExit, GuestKilled, s32, syscall  # noqa: E402


def start_parked_thread(run: Callable[[], None], name: str) -> tuple[threading.Thread, int, Callable[[], None]]:
    """A daemon host thread for a new guest thread: started, its native tid
    known, parked until the returned ``go()`` (the kernel writes the tid to
    the guest before the thread runs), then ``run()``."""
    started, go = threading.Event(), threading.Event()
    box: dict[str, int] = {}

    def body() -> None:
        box["tid"] = threading.get_native_id()
        started.set()
        go.wait()
        run()

    th = threading.Thread(target=body, name=name, daemon=True)
    th.start()
    started.wait()
    return th, box["tid"], go.set

CLONE_VM, CLONE_FS, CLONE_FILES, CLONE_SIGHAND = 0x100, 0x200, 0x400, 0x800
CLONE_PIDFD, CLONE_PTRACE, CLONE_VFORK, CLONE_PARENT = 0x1000, 0x2000, 0x4000, 0x8000
CLONE_THREAD, CLONE_NEWNS, CLONE_SYSVSEM, CLONE_SETTLS = 0x10000, 0x20000, 0x40000, 0x80000
CLONE_PARENT_SETTID, CLONE_CHILD_CLEARTID, CLONE_DETACHED = 0x100000, 0x200000, 0x400000
CLONE_UNTRACED, CLONE_CHILD_SETTID, CLONE_CLEAR_SIGHAND = 0x800000, 0x1000000, 1 << 32
# CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET
CLONE_NAMESPACES = 0x7E020000

FUTEX_WAIT, FUTEX_WAKE, FUTEX_FD, FUTEX_REQUEUE, FUTEX_CMP_REQUEUE = 0, 1, 2, 3, 4
FUTEX_WAKE_OP, FUTEX_LOCK_PI, FUTEX_UNLOCK_PI, FUTEX_TRYLOCK_PI = 5, 6, 7, 8
FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET, FUTEX_WAIT_REQUEUE_PI, FUTEX_CMP_REQUEUE_PI = 9, 10, 11, 12
FUTEX_LOCK_PI2 = 13
FUTEX_CMD_MASK = 0x7F
FUTEX_WAITERS, FUTEX_OWNER_DIED, FUTEX_TID_MASK = 0x80000000, 0x40000000, 0x3FFFFFFF
# Which futex operations take a second address, and which a timeout pointer.
_FUTEX_UADDR2 = {FUTEX_REQUEUE, FUTEX_CMP_REQUEUE, FUTEX_WAKE_OP, FUTEX_WAIT_REQUEUE_PI,
                 FUTEX_CMP_REQUEUE_PI}
_FUTEX_TIMEOUT = {FUTEX_WAIT, FUTEX_WAIT_BITSET, FUTEX_LOCK_PI, FUTEX_LOCK_PI2, FUTEX_WAIT_REQUEUE_PI}
_FUTEX_BLOCKING = _FUTEX_TIMEOUT
_HOST_SYS_FUTEX = 202
ROBUST_LIST_LIMIT = 2048
ERESTARTSYS = 512

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class ThreadExit(Exception):
    """This guest thread is done (exit, or the process is exiting); its
    host thread ends.  The process goes on unless it was the last."""


class ThreadCalls:
    """Threads, futexes and process exit (a mixin of LinuxKernel).

    Guest threads are host threads (runtime/machine.py starts them through
    ``spawn_thread``); their tids are the host threads' tids.  futex is the
    host's own futex on the guest word's host address: waits and wakes are
    atomic with the memory, between threads and between processes sharing a
    mapping, and every operation (requeue, wake-op, bitsets, PI) behaves as
    the host kernel makes it.  A waiting thread is woken for a signal by the
    runtime's kick signal (signals.py)."""

    def _init_threads(self) -> None:
        self.main_thread = GuestThread(tid=self.pid)
        self.main_thread.host_ident = threading.get_ident()
        self.threads: dict[int, GuestThread] = {self.pid: self.main_thread}
        self._tls = threading.local()
        self._tls.thread = self.main_thread
        self.exiting = False
        self.outcome: BaseException | None = None      # GuestExit or GuestKilled/GuestFault
        self.process_done = threading.Event()
        # Set by the Machine: a host thread for guest thread ``child``, whose
        # state ``setup`` initialises from the parent's; → (tid, start), the
        # thread running guest code once ``start()`` is called.
        self.spawn_thread: Callable[[GuestThread, Callable], tuple[int, Callable[[], None]]] | None = None

    def after_fork_threads(self) -> None:
        """In a fork child: only the forking thread exists; nothing of the
        parent's thread bookkeeping or signal routing is shared (its wake fd
        is an eventfd the parent still holds: a new one)."""
        t = self.current
        os.close(t.wake_fd)
        t.wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        t.host_ident = threading.get_ident()
        self.exiting = False
        self.outcome = None
        self.process_done = threading.Event()
        self._sig_lock = threading.RLock()
        self._proc_info = {}
        t.sig_info = {}
        restart = self._router is not None
        self._router = None
        if self._router_pipe is not None:
            for fd in self._router_pipe:
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._router_pipe = None
        self._host_saved.clear()
        if restart:
            self.start_signal_router()

    # per-thread facts, named as the single-threaded kernel named them
    @property
    def tid(self) -> int:
        return self.current.tid

    @tid.setter
    def tid(self, value: int) -> None:
        self.current.tid = value

    @property
    def sigmask(self) -> int:
        return self.current.sigmask

    @sigmask.setter
    def sigmask(self, value: int) -> None:
        self.current.sigmask = value

    @property
    def altstack(self) -> tuple[int, int, int]:
        return self.current.altstack

    @altstack.setter
    def altstack(self, value: tuple[int, int, int]) -> None:
        self.current.altstack = value

    @property
    def clear_child_tid(self) -> int:
        return self.current.clear_child_tid

    @clear_child_tid.setter
    def clear_child_tid(self, value: int) -> None:
        self.current.clear_child_tid = value

    @property
    def robust_list(self) -> tuple[int, int]:
        return self.current.robust_list

    @robust_list.setter
    def robust_list(self, value: tuple[int, int]) -> None:
        self.current.robust_list = value

    def bind_thread(self, t: GuestThread) -> None:
        """The calling host thread runs guest thread ``t`` from now on."""
        self._tls.thread = t
        t.host_ident = threading.get_ident()

    # -- process end -----------------------------------------------------------
    def terminate(self, status: int | None = None, killed_by: int | None = None,
                  outcome: BaseException | None = None) -> None:
        """End the whole process (exit_group, a fatal signal): record how,
        and make every thread stop at its next safe point or wait."""
        with self._sig_lock:
            if self.exiting:
                return
            self.exiting = True
            if outcome is None:
                outcome = GuestKilled(killed_by) if killed_by is not None else GuestExit(status or 0)
            self.outcome = outcome
            for t in self.threads.values():
                if not t.exited:
                    self._kick(t)
        self.process_done.set()

    # -- clone -------------------------------------------------------------------
    @syscall("clone", "x", "p", "p", "p", "p")
    def sys_clone(self, flags: int, newsp: int, ptid: int, a3: int, a4: int) -> int:
        # x86_64: flags, newsp, ptid, ctid, tls; riscv64 and aarch64 have
        # CONFIG_CLONE_BACKWARDS: flags, newsp, ptid, tls, ctid.
        ctid, tls = (a3, a4) if self.abi.name == "x86_64" else (a4, a3)
        return self._clone(flags & 0xFFFFFFFF, newsp, ptid, ctid, tls)

    @syscall("clone3", "p", "u")
    def sys_clone3(self, uargs: int, size: int) -> int:
        if size < 64 or size > 4096:
            return -_errno.EINVAL
        raw = self.mem.read(uargs, min(size, 88))
        raw += bytes(88 - len(raw))
        (flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
         set_tid, set_tid_size, cgroup) = struct.unpack("<11Q", raw)
        if set_tid or set_tid_size or flags & ~((1 << 33) - 1):
            return -_errno.EINVAL
        if (stack == 0) != (stack_size == 0) and flags & CLONE_VM:
            return -_errno.EINVAL
        sp = stack + stack_size if stack else 0
        if flags & CLONE_PIDFD:
            return -_errno.EINVAL
        return self._clone(flags | (exit_signal & 0xFF), sp, parent_tid, child_tid, tls)

    def _clone(self, flags: int, newsp: int, ptid: int, ctid: int, tls: int) -> int:
        if flags & CLONE_NAMESPACES:
            return -_errno.EPERM
        if flags & CLONE_THREAD and not flags & CLONE_SIGHAND:
            return -_errno.EINVAL
        if flags & CLONE_SIGHAND and not flags & CLONE_VM:
            return -_errno.EINVAL
        if flags & CLONE_VM and not flags & CLONE_VFORK:
            if not flags & CLONE_THREAD:
                # A process sharing our memory (LinuxThreads-era): not supported.
                return -_errno.EINVAL
            return self._clone_thread(flags, newsp, ptid, ctid, tls)
        # A new process (fork, vfork, posix_spawn's CLONE_VM|CLONE_VFORK): its
        # memory is a copy; the vfork parent waits until it execs or exits.
        fork = getattr(self, "_fork_process", None)
        if fork is None:
            return -_errno.ENOSYS
        return fork(flags, newsp, ptid, ctid, tls, flags & 0xFF)

    def _clone_thread(self, flags: int, newsp: int, ptid: int, ctid: int, tls: int) -> int:
        if self.spawn_thread is None:
            return -_errno.ENOSYS
        parent = self.current
        if parent.state is None:
            return -_errno.ENOSYS
        if len(self._live_threads()) >= 4096:
            return -_errno.EAGAIN
        if flags & CLONE_PARENT_SETTID:
            self._need(ptid, 4, 2)
        child = GuestThread(tid=0, sigmask=parent.sigmask)
        if flags & CLONE_CHILD_CLEARTID:
            child.clear_child_tid = ctid
        pstate = parent.state

        def setup(state) -> None:
            if self.abi.name == "x86_64":            # a vCPU's context (runtime/kvm/vm.py)
                state.clone_from(pstate, newsp, tls if flags & CLONE_SETTLS else None)
                return
            ctypes.memmove(ctypes.addressof(state), ctypes.addressof(pstate), ctypes.sizeof(state))
            state.x[10] = 0
            state.pc = pstate.pc + 4                  # past the ecall
            if newsp:
                state.x[2] = newsp
            if flags & CLONE_SETTLS:
                state.x[4] = tls
            state.reservation = (1 << 64) - 1
            state.interrupt = 0

        tid, start = self.spawn_thread(child, setup)
        try:
            if flags & CLONE_PARENT_SETTID:
                self.mem.write(ptid, struct.pack("<I", tid))
            if flags & CLONE_CHILD_SETTID:
                self.mem.write(ctid, struct.pack("<I", tid))
        finally:
            start()
        return tid

    def register_thread(self, child: GuestThread, tid: int) -> None:
        """The Machine reports a started thread's tid (before it runs guest code)."""
        child.tid = tid
        with self._sig_lock:
            self.threads[tid] = child

    # -- exit ------------------------------------------------------------------------
    @syscall("exit", "d")
    def sys_exit(self, status: int) -> int:
        """One thread ends; the process ends with the last one."""
        t = self.current
        self.thread_exited(t)
        with self._sig_lock:
            last = not self._live_threads()
        if last:
            self.terminate(status=status & 0xFF)
            raise GuestExit(status & 0xFF)
        raise ThreadExit()

    @syscall("exit_group", "d")
    def sys_exit_group(self, status: int) -> int:
        self.terminate(status=status & 0xFF)
        raise GuestExit(status & 0xFF)

    def thread_exited(self, t: GuestThread) -> None:
        """What Linux does when a thread exits: the robust list's futexes
        are marked owner-died, and *clear_child_tid is zeroed and woken
        (pthread_join waits on it)."""
        if t.exited:
            return
        self._walk_robust_list(t)
        if t.clear_child_tid:
            try:
                self.mem.write(t.clear_child_tid, bytes(4))
                self._host_futex(t.clear_child_tid, FUTEX_WAKE, 1, 0, 0, 0)
            except Exception:
                pass
        t.exited = True

    def _walk_robust_list(self, t: GuestThread) -> None:
        head, length = t.robust_list
        if not head or length != 24:
            return
        try:
            nxt, offset, pending = struct.unpack("<QqQ", self.mem.read(head, 24))
            entries = [] if pending == 0 else [pending]
            n = 0
            while nxt != head and n < ROBUST_LIST_LIMIT:
                entries.append(nxt)
                nxt = self.mem.read_u64(nxt)
                n += 1
            for entry in dict.fromkeys(entries):
                word = (entry + offset) & ((1 << 64) - 1)
                self._owner_died(word & ~1, t.tid)
        except Exception:
            return        # a corrupt list: Linux stops walking too

    def _owner_died(self, addr: int, tid: int) -> None:
        if addr & 3 or addr + 4 > self.mem.size:
            return
        host = ctypes.c_uint32.from_address(self.mem.base + addr)
        for _ in range(64):
            cur = host.value
            if cur & FUTEX_TID_MASK != tid:
                return
            new = (cur & FUTEX_WAITERS) | FUTEX_OWNER_DIED
            if self._cas32(addr, cur, new):
                if cur & FUTEX_WAITERS:
                    self._host_futex(addr, FUTEX_WAKE, 1, 0, 0, 0)
                return

    def _cas32(self, addr: int, old: int, new: int) -> bool:
        from runtime import _native

        return _native.cas32(self.mem.base + addr, old, new)

    # -- ids ------------------------------------------------------------------------------
    @syscall("gettid")
    def sys_gettid(self) -> int:
        return self.current.tid

    @syscall("set_tid_address", "p")
    def sys_set_tid_address(self, tidptr: int) -> int:
        self.current.clear_child_tid = tidptr
        return self.current.tid

    @syscall("set_robust_list", "p", "u")
    def sys_set_robust_list(self, head: int, length: int) -> int:
        if length != 24:
            return -_errno.EINVAL
        self.current.robust_list = (head, length)
        return 0

    @syscall("get_robust_list", "d", "p", "p")
    def sys_get_robust_list(self, pid: int, head_ptr: int, len_ptr: int) -> int:
        p = s32(pid)
        t = self.current if p == 0 else self.threads.get(p)
        if t is None or t.exited:
            return -_errno.ESRCH
        self.mem.write_u64(head_ptr, t.robust_list[0])
        self.mem.write_u64(len_ptr, t.robust_list[1])
        return 0

    # -- futex -------------------------------------------------------------------------------
    def _futex_addr(self, uaddr: int) -> int:
        if uaddr & 3:
            raise _FutexError(_errno.EINVAL)
        if uaddr + 4 > self.mem.size:
            raise _FutexError(_errno.EFAULT)
        return self.mem.base + uaddr

    def _host_futex(self, uaddr: int, op: int, val: int, timeout: int, uaddr2: int, val3: int) -> int:
        """The host's futex on guest words (``timeout``: a guest pointer for
        waiting operations, else the val2 number); returns -errno."""
        cmd = op & FUTEX_CMD_MASK
        a1 = self._futex_addr(uaddr)
        a2 = self._futex_addr(uaddr2) if cmd in _FUTEX_UADDR2 else uaddr2
        if cmd in _FUTEX_TIMEOUT:
            if timeout:
                self._need(timeout, 16, 1)
                t = self.mem.base + timeout
            else:
                t = 0
        else:
            t = timeout
        r = _libc.syscall(_HOST_SYS_FUTEX, ctypes.c_void_p(a1), ctypes.c_int(op), ctypes.c_uint32(val & 0xFFFFFFFF),
                          ctypes.c_void_p(t), ctypes.c_void_p(a2), ctypes.c_uint32(val3 & 0xFFFFFFFF))
        if r < 0:
            return -ctypes.get_errno()
        return r

    @syscall("futex", "p", "d", "u", "p", "p", "u")
    def sys_futex(self, uaddr: int, op: int, val: int, timeout: int, uaddr2: int, val3: int) -> int:
        o = s32(op)
        cmd = o & FUTEX_CMD_MASK
        if cmd in (FUTEX_FD,) or cmd > FUTEX_LOCK_PI2:
            return -_errno.ENOSYS
        try:
            if cmd not in _FUTEX_BLOCKING:
                return self._host_futex(uaddr, o, val, timeout, uaddr2, val3)
            t = self.current
            t.clear_wake()
            if self.signal_pending():
                return -ERESTARTSYS
            t.in_wait = True
            try:
                r = self._host_futex(uaddr, o, val, timeout, uaddr2, val3)
            finally:
                t.in_wait = False
            if r == -_errno.EINTR:
                # Our kick (a signal for this thread, or the process exiting):
                # restarted unless a handler runs without SA_RESTART.  A
                # relative timeout restarts in full (Linux keeps the rest).
                return -ERESTARTSYS if self.signal_pending() else -_errno.EINTR
            return r
        except _FutexError as e:
            return -e.err


class _FutexError(Exception):
    def __init__(self, err: int) -> None:
        self.err = err
