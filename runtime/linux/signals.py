"""Guest signals: dispositions, masks, pending sets, delivery with the ISA's
real signal frame, and the system calls around them (a ``LinuxKernel``
mixin; see runtime/linux/syscall_base.py).

How a signal reaches a guest thread
-----------------------------------
* Generation.  ``post_signal`` marks it pending, for the process or for one
  thread (a per-signal queue of ``SigInfo`` records, one per standard
  signal, several for real-time signals), picks a thread that does not
  block it, sets that thread's **interrupt word** (``GuestState.interrupt``)
  and wakes it if it is blocked in a system call (``GuestThread.notify``).
  Signals from outside (a SIGINT from the terminal, SIGALRM of a host timer,
  SIGCHLD of an exiting child) are caught by the native core's handler
  (runtime/native/aotrt.c) only while the guest has a handler for them; a
  router thread reads its wake pipe and posts them the same way.  While the
  guest's disposition is SIG_DFL or SIG_IGN, the host process has the same
  disposition, so a default action is the real one (the kernel kills,
  stops or ignores aotrun itself).
* Safe points.  Translated code tests the interrupt word at every backward
  branch, call to a lower pc and indirect jump, the dispatcher before every
  block, the interpreter between runs of at most ``INTERP_SLICE``
  instructions; each leaves with every guest register in the state.  The
  thread's run loop (runtime/machine.py) then calls ``deliver_signals``.
* Delivery.  The ISA's frame (runtime/linux/sigframe.py) is pushed on the
  guest stack or the alternate stack, the handler's mask is applied, and
  the guest resumes in the handler; rt_sigreturn restores the frame.
  Synchronous signals (a guest fault) are delivered the same way at the
  faulting instruction.
* Blocking calls wait on the thread's wake fd as well; interrupted, they
  return -ERESTARTSYS, which becomes a restart (SA_RESTART, or no handler
  ran) or -EINTR, as Linux does.
"""

from __future__ import annotations

import errno as _errno
import os
import select
import signal as _signal
import struct
import sys
import threading
import time
from collections.abc import Callable

from runtime.linux.sigframe import SI_TKILL, SI_USER, SigInfo
from runtime.linux.syscall_base import GuestKilled, s32, syscall

SIG_DFL, SIG_IGN = 0, 1
SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK = 0, 1, 2
SIGKILL, SIGSTOP, SIGCHLD, SIGCONT, SIGALRM, SIGPIPE = 9, 19, 17, 18, 14, 13
SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGVTALRM, SIGPROF = 11, 7, 4, 8, 5, 26, 27
NSIG = 64
SIGRTMIN = 32
SA_NOCLDSTOP, SA_NOCLDWAIT, SA_SIGINFO = 1, 2, 4
SA_ONSTACK, SA_RESTART, SA_NODEFER, SA_RESETHAND = 0x08000000, 0x10000000, 0x40000000, 0x80000000
SA_RESTORER = 0x04000000
SS_ONSTACK, SS_DISABLE, SS_AUTODISARM = 1, 2, 1 << 31
ERESTARTSYS = 512
UNBLOCKABLE = (1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1))
# Default action "ignore" and "stop"; everything else terminates.
DEFAULT_IGNORE = frozenset({SIGCHLD, SIGCONT, 23, 28})          # SIGCHLD SIGCONT SIGURG SIGWINCH
DEFAULT_STOP = frozenset({SIGSTOP, 20, 21, 22})                 # SIGSTOP SIGTSTP SIGTTIN SIGTTOU
# Host signals the native fault handler owns: never forwarded.
_SYNCHRONOUS = frozenset({SIGSEGV, SIGBUS, SIGILL})
# The interpreter checks the interrupt word at least this often (instructions).
INTERP_SLICE = 100_000
ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF = 0, 1, 2
# The host signal the runtime sends a guest thread's host thread to end a
# blocking host call (a futex wait) early: caught by an empty handler
# without SA_RESTART, so the call fails with EINTR.  Never forwarded.
KICK_SIGNAL = 63


def _bit(sig: int) -> int:
    return 1 << (sig - 1)


class ResumeGuest(Exception):
    """Raised by rt_sigreturn: the state was restored from the signal frame;
    the run loop must neither set the return register nor advance the pc."""


class SignalCalls:
    """The signal half of the emulated kernel (a mixin of LinuxKernel)."""

    def _init_signals(self) -> None:
        self.sigactions: dict[int, tuple[int, int, int, int]] = {}
        self.pending_signals = 0                      # process-directed (bits)
        self._proc_info: dict[int, list] = {}         # sig → [SigInfo] (process-directed)
        self._sig_lock = threading.RLock()
        self.sigreturn_pc = 0                         # the trampoline's guest address (0: not mapped)
        self._router: threading.Thread | None = None
        self._router_pipe: tuple[int, int] | None = None
        self._host_forwarded: set[int] = set()
        self._host_saved: dict[int, object] = {}
        self.catching = False          # some signal has a handler (blocking calls watch for signals)

    @property
    def sigframes(self):
        """The ISA's signal-frame module: push_frame, restore_frame,
        stack_pointer(state), REQUIRES_RESTORER (sigframe.py for riscv64,
        sigframe_x86_64.py for x86_64 guests in KVM)."""
        if self.abi.name == "x86_64":
            from runtime.linux import sigframe_x86_64 as frames
        else:
            from runtime.linux import sigframe as frames
        return frames

    # -- dispositions ----------------------------------------------------------
    def action(self, sig: int) -> tuple[int, int, int, int]:
        """(handler, flags, restorer, mask) of ``sig``."""
        return self.sigactions.get(sig, (SIG_DFL, 0, 0, 0))

    def _default_fatal(self, sig: int) -> bool:
        return sig not in DEFAULT_IGNORE and sig not in DEFAULT_STOP

    def _ignored(self, sig: int) -> bool:
        handler = self.action(sig)[0]
        return handler == SIG_IGN or (handler == SIG_DFL and sig in DEFAULT_IGNORE)

    def _mirror_host(self, sig: int) -> None:
        """Give the host process the guest's disposition of ``sig``: a
        handler → caught and forwarded (runtime/native/aotrt.c); SIG_IGN →
        ignored; SIG_DFL → default.  Only while a Machine runs
        (``start_signal_router``); restored by ``stop_signal_router``."""
        if self._router is None or sig in _SYNCHRONOUS or sig in (SIGKILL, SIGSTOP) or sig > NSIG:
            return
        from runtime import _native

        handler = self.action(sig)[0]
        if sig == SIGPIPE or sig == KICK_SIGNAL:
            # The host keeps ignoring SIGPIPE: a write to a broken pipe
            # returns EPIPE and the write raises the guest's SIGPIPE itself.
            # KICK_SIGNAL is the runtime's own.
            return
        mode = 2 if handler not in (SIG_DFL, SIG_IGN) else (1 if handler == SIG_IGN else 0)
        if sig not in self._host_saved:
            try:
                self._host_saved[sig] = _signal.getsignal(sig)
            except (ValueError, OSError):
                return
        try:
            _native.host_signal(sig, mode)
        except (ValueError, OSError):
            return
        self._host_forwarded.add(sig)

    # -- the router: host signals → guest threads -------------------------------
    def start_signal_router(self) -> None:
        """Catch host signals the guest handles, and hand them to guest
        threads.  Called by the Machine in the main thread before the guest
        runs; SIGINT gets its default action (Python's KeyboardInterrupt
        handler would only set a flag while translated code runs)."""
        if self._router is not None:
            return
        from runtime import _native

        r, w = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(w, False)
        self._router_pipe = (r, w)
        _native.set_wake_pipe(w)
        self._router = threading.Thread(target=self._route, name="aotc-signal-router", daemon=True)
        self._router.start()
        # The kick's empty handler stays for the process's life: a kick in
        # flight after the run must not find the default action (terminate).
        _native.host_signal(KICK_SIGNAL, 3)
        if threading.current_thread() is threading.main_thread():
            self._host_saved[_signal.SIGINT] = _signal.getsignal(_signal.SIGINT)
            _signal.signal(_signal.SIGINT, _signal.SIG_DFL)
        for sig in list(self.sigactions):
            self._mirror_host(sig)

    def stop_signal_router(self) -> None:
        """Give the host its own dispositions back (in-process runs: tests)."""
        if self._router is None:
            return
        from runtime import _native

        _native.set_wake_pipe(-1)
        main = threading.current_thread() is threading.main_thread()
        for sig, old in self._host_saved.items():
            try:
                if main and old is not None:
                    _signal.signal(sig, old)          # type: ignore[arg-type]
                else:
                    _native.host_signal(sig, 0)
            except (ValueError, OSError, TypeError):
                pass
        self._host_saved.clear()
        r, w = self._router_pipe or (-1, -1)
        self._router_pipe = None
        self._router = None
        try:
            os.write(w, b"q")
        except OSError:
            pass
        os.close(w)
        # The reader closes r when it sees the quit byte.

    def _route(self) -> None:
        from runtime import _native

        pipe = self._router_pipe
        if pipe is None:
            return
        r = pipe[0]
        try:
            while True:
                try:
                    data = os.read(r, 64)
                except InterruptedError:
                    continue
                if not data:
                    return
                for sig, code, pid, uid, value in _native.take_host_signals():
                    try:
                        self.post_signal(sig, SigInfo(signo=sig, code=code, pid=pid, uid=uid, value=value))
                    except Exception as e:      # the router must outlive one bad signal
                        print(f"aotrun: internal error routing signal {sig}: {e!r}", file=sys.stderr)
                if b"q" in data:
                    return
        finally:
            os.close(r)

    # -- generation ----------------------------------------------------------------
    def post_signal(self, sig: int, info=None, thread=None) -> None:
        """Generate ``sig`` for the process (``thread`` None) or one thread."""

        if info is None:
            info = SigInfo(signo=sig, code=SI_USER, pid=self.pid, uid=os.getuid())
        with self._sig_lock:
            targets = [thread] if thread is not None else self._live_threads()
            if sig == SIGKILL:
                self.terminate(killed_by=SIGKILL)
                return
            if sig == SIGCONT:
                pass
            blocked_everywhere = all(t.sigmask & _bit(sig) for t in targets)
            if self._ignored(sig) and not blocked_everywhere:
                return
            if thread is not None:
                queue = thread.sig_info.setdefault(sig, [])
                if sig < SIGRTMIN and queue:
                    return                                  # standard signals do not queue
                queue.append(info)
                thread.pending |= _bit(sig)
                chosen = thread
            else:
                queue = self._proc_info.setdefault(sig, [])
                if sig < SIGRTMIN and queue:
                    return
                queue.append(info)
                self.pending_signals |= _bit(sig)
                chosen = None
                cur = self.current
                for t in [cur] + targets:
                    if not t.exited and not t.sigmask & _bit(sig):
                        chosen = t
                        break
            for hook in getattr(self, "signal_hooks", ()):     # signalfd readiness (misc_calls.py)
                hook(sig)
            if chosen is not None:
                self._kick(chosen)

    def _kick(self, t) -> None:
        """Make thread ``t`` look at its signals soon: its translated code
        leaves at the next safe point, a wait on its wake fd returns, and a
        host futex wait fails with EINTR."""
        if t.state is not None:
            t.state.interrupt = 1
        t.notify()
        if t.host_ident and t.host_ident != threading.get_ident() and self._router is not None:
            try:
                _signal.pthread_kill(t.host_ident, KICK_SIGNAL)
            except (OSError, ProcessLookupError):
                pass

    def _live_threads(self) -> list:
        return [t for t in self.threads.values() if not t.exited]

    def _dequeue(self, t, mask: int) -> tuple[int, object] | None:
        """The lowest signal pending for ``t`` and not in ``mask``
        (synchronous ones first, like Linux), removed from its queue."""

        with self._sig_lock:
            for pending, queues, owner in ((t.pending, t.sig_info, t), (self.pending_signals, self._proc_info, None)):
                ready = pending & ~mask
                if not ready:
                    continue
                order = [s for s in (SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGFPE) if ready & _bit(s)]
                sig = order[0] if order else (ready & -ready).bit_length()
                q = queues.get(sig) or []
                info = q.pop(0) if q else SigInfo(signo=sig, code=SI_USER)
                if not q:
                    queues.pop(sig, None)
                    if owner is None:
                        self.pending_signals &= ~_bit(sig)
                    else:
                        owner.pending &= ~_bit(sig)
                return sig, info
        return None

    def signal_pending(self) -> bool:
        t = self.current
        return bool((t.pending | self.pending_signals) & ~t.sigmask) or self.exiting

    def restart_after_interrupt(self) -> bool:
        """A blocking call was interrupted (-ERESTARTSYS): whether it is
        restarted (the first signal to deliver has SA_RESTART, or none will
        run a handler) rather than failing with EINTR."""
        t = self.current
        mask = t.sigmask
        ready = (t.pending | self.pending_signals) & ~mask
        if not ready:
            return True
        sig = (ready & -ready).bit_length()
        handler, flags, _r, _m = self.action(sig)
        if handler in (SIG_DFL, SIG_IGN):
            return True
        return bool(flags & SA_RESTART)

    # -- delivery --------------------------------------------------------------------
    def deliver_signals(self, t) -> None:
        """Deliver what is pending and unblocked for thread ``t`` at a safe
        point (``t.state`` exact): default actions, or handler frames.
        Raises GuestKilled for a fatal default action."""

        state = t.state
        while True:
            got = self._dequeue(t, t.sigmask)
            if got is None:
                break
            sig, info = got
            handler, flags, restorer, hmask = self.action(sig)
            if handler == SIG_IGN:
                continue
            if handler == SIG_DFL:
                if sig in DEFAULT_IGNORE:
                    continue
                if sig in DEFAULT_STOP:
                    self._stop_process(sig)
                    continue
                raise GuestKilled(sig)
            old_mask = t.saved_sigmask if t.saved_sigmask is not None else t.sigmask
            t.saved_sigmask = None
            frames = self.sigframes
            sp = frames.stack_pointer(state)
            alt_sp, alt_flags, alt_size = t.altstack
            on_alt = not alt_flags & SS_DISABLE and alt_sp <= sp < alt_sp + alt_size
            use_alt = bool(flags & SA_ONSTACK) and not alt_flags & SS_DISABLE and alt_size and not on_alt
            if flags & SA_RESTORER and restorer:
                ret = restorer
            else:
                # x86_64 has no kernel trampoline: no SA_RESTORER is SIGSEGV
                ret = 0 if frames.REQUIRES_RESTORER else self.sigreturn_trampoline()
            try:
                frames.push_frame(self.mem, state, info, blocked=old_mask, altstack=t.altstack,
                                  use_altstack=use_alt, restorer=ret, handler=handler, sig=sig)
            except Exception:
                # No room for the frame (a bad stack): Linux forces SIGSEGV.
                if sig == SIGSEGV:
                    raise GuestKilled(SIGSEGV) from None
                self.sigactions[SIGSEGV] = (SIG_DFL, 0, 0, 0)
                raise GuestKilled(SIGSEGV) from None
            if use_alt and alt_flags & SS_AUTODISARM:
                t.altstack = (0, SS_DISABLE, 0)
            new_mask = t.sigmask | hmask
            if not flags & SA_NODEFER:
                new_mask |= _bit(sig)
            t.sigmask = new_mask & ~UNBLOCKABLE
            if flags & SA_RESETHAND:
                self.sigactions[sig] = (SIG_DFL, 0, 0, 0)
                self._mirror_host(sig)
        if t.saved_sigmask is not None:            # sigsuspend & co.: no handler ran
            t.sigmask = t.saved_sigmask
            t.saved_sigmask = None

    def fatal_pending(self) -> int:
        """A signal pending and unblocked for the calling thread whose
        default action ends the process (taken: Linux kills on the way out
        of the system call); 0 if none."""
        t = self.current
        ready = (t.pending | self.pending_signals) & ~t.sigmask
        while ready:
            sig = (ready & -ready).bit_length()
            ready &= ready - 1
            if self.action(sig)[0] == SIG_DFL and self._default_fatal(sig):
                self._dequeue(t, ~_bit(sig) & ((1 << NSIG) - 1))
                return sig
        return 0

    def deliver_fault(self, t, sig: int, info) -> None:
        """A synchronous signal from the guest's own instruction (state.pc
        is the faulting instruction): to its handler, or fatal when it is
        blocked, ignored or defaulted (as Linux forces it)."""
        handler = self.action(sig)[0]
        if handler in (SIG_DFL, SIG_IGN) or t.sigmask & _bit(sig):
            raise GuestKilled(sig)
        with self._sig_lock:
            t.sig_info.setdefault(sig, []).insert(0, info)
            t.pending |= _bit(sig)
        self.deliver_signals(t)

    def _stop_process(self, sig: int) -> None:
        """Default action "stop": stop the host process (its parent sees it
        stopped); SIGCONT resumes it."""
        os.kill(os.getpid(), _signal.SIGSTOP)

    def sigreturn_trampoline(self) -> int:
        """The guest address of ``rt_sigreturn`` code (mapped on first use,
        like the vDSO's __vdso_rt_sigreturn) where handlers return."""
        if not self.sigreturn_pc:
            from runtime.guest_memory import PAGE, PROT_EXEC, PROT_READ
            from runtime.linux.sigframe import SIGRETURN_TRAMPOLINE

            addr = self.sys_mmap(0, PAGE, PROT_READ | 2, 0x22, -1 & ((1 << 64) - 1), 0)
            if addr < 0 or addr >= 1 << 63:
                raise GuestKilled(SIGSEGV)
            self.mem.write(addr, SIGRETURN_TRAMPOLINE)
            self.sys_mprotect(addr, PAGE, PROT_READ | PROT_EXEC)
            self.sigreturn_pc = addr
        return self.sigreturn_pc

    # -- blocking -----------------------------------------------------------------------
    def wait_until(self, ready: Callable[[], bool], timeout: float | None,
                   fds: tuple[int, ...] = ()) -> str:
        """Block the calling thread until ``ready()`` (→ "ready"), a signal
        it takes (→ "signal"), or ``timeout`` seconds (→ "timeout"); also
        wakes when one of the host ``fds`` is readable (``ready`` decides)."""
        t = self.current
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while True:
            t.clear_wake()
            if ready():
                return "ready"
            if self.signal_pending():
                return "signal"
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return "timeout"
            try:
                select.select([t.wake_fd, *fds], [], [], left)
            except InterruptedError:
                pass

    # -- system calls -----------------------------------------------------------------------
    def _signal_self(self, sig: int) -> int:
        if sig < 0 or sig > NSIG:
            return -_errno.EINVAL
        if sig == 0:
            return 0

        self.post_signal(sig, SigInfo(signo=sig, code=SI_USER, pid=self.pid, uid=os.getuid()))
        return 0

    @syscall("kill", "d", "sig")
    def sys_kill(self, pid: int, sig: int) -> int:
        p, s = s32(pid), s32(sig)
        if s < 0 or s > NSIG:
            return -_errno.EINVAL
        if p == -1:
            # "every process we may signal": our descendants (process_calls.py), never the host's
            return self._kill_other(-1, s) if hasattr(self, "_kill_other") else -_errno.ESRCH
        if p in (self.pid, 0) or p == -os.getpgid(0):
            r = self._signal_self(s)
            if p != self.pid and hasattr(self, "_kill_other"):
                self._kill_other(p, s)
            return r
        if hasattr(self, "_kill_other"):
            return self._kill_other(p, s)
        return -_errno.ESRCH

    def _thread_signal(self, tid: int, sig: int) -> int:

        if sig < 0 or sig > NSIG:
            return -_errno.EINVAL
        t = self.threads.get(tid)
        if t is None or t.exited:
            return -_errno.ESRCH
        if sig:
            self.post_signal(sig, SigInfo(signo=sig, code=SI_TKILL, pid=self.pid, uid=os.getuid()), thread=t)
        return 0

    @syscall("tkill", "d", "sig")
    def sys_tkill(self, tid: int, sig: int) -> int:
        if s32(tid) <= 0:
            return -_errno.EINVAL
        if s32(tid) not in self.threads and hasattr(self, "_tkill_other"):
            return self._tkill_other(tid, sig)
        return self._thread_signal(s32(tid), s32(sig))

    @syscall("tgkill", "d", "d", "sig")
    def sys_tgkill(self, tgid: int, tid: int, sig: int) -> int:
        if s32(tgid) <= 0 or s32(tid) <= 0:
            return -_errno.EINVAL
        if s32(tgid) != self.pid:
            return self._tgkill_other(tgid, tid, sig) if hasattr(self, "_tgkill_other") else -_errno.ESRCH
        return self._thread_signal(s32(tid), s32(sig))

    def _queueinfo(self, tid: int | None, sig: int, uinfo: int) -> int:

        s = s32(sig)
        if s < 1 or s > NSIG:
            return -_errno.EINVAL
        info = SigInfo.unpack(self.mem.read(uinfo, 128))
        if info.code >= 0 or info.code == -6:             # SI_TKILL: not the caller's to forge
            return -_errno.EPERM
        info.signo = s
        if tid is None:
            self.post_signal(s, info)
            return 0
        t = self.threads.get(tid)
        if t is None or t.exited:
            return -_errno.ESRCH
        self.post_signal(s, info, thread=t)
        return 0

    @syscall("rt_sigqueueinfo", "d", "sig", "p")
    def sys_rt_sigqueueinfo(self, pid: int, sig: int, uinfo: int) -> int:
        if s32(pid) != self.pid:
            return -_errno.ESRCH if s32(pid) > 0 else -_errno.EINVAL
        return self._queueinfo(None, sig, uinfo)

    @syscall("rt_tgsigqueueinfo", "d", "d", "sig", "p")
    def sys_rt_tgsigqueueinfo(self, tgid: int, tid: int, sig: int, uinfo: int) -> int:
        if s32(tgid) != self.pid:
            return -_errno.ESRCH
        return self._queueinfo(s32(tid), sig, uinfo)

    @syscall("rt_sigaction", "sig", "p", "p", "u")
    def sys_rt_sigaction(self, sig: int, act: int, oact: int, sigsetsize: int) -> int:
        s = s32(sig)
        if sigsetsize != 8 or s < 1 or s > NSIG:
            return -_errno.EINVAL
        if act and s in (SIGKILL, SIGSTOP):
            return -_errno.EINVAL
        size = self.abi.sigaction_size
        new = self.abi.unpack_sigaction(self.mem.read(act, size)) if act else None
        if oact:
            self._need(oact, size, 2)
            self.mem.write(oact, self.abi.pack_sigaction(*self.action(s)))
        if new is not None:
            handler, flags, restorer, mask = new
            with self._sig_lock:
                self.sigactions[s] = (handler, flags, restorer, mask & ~UNBLOCKABLE)
                if self._ignored(s):
                    # Setting SIG_IGN (or a default of ignore) discards what is pending.
                    self.pending_signals &= ~_bit(s)
                    self._proc_info.pop(s, None)
                    for t in self.threads.values():
                        t.pending &= ~_bit(s)
                        t.sig_info.pop(s, None)
            self.catching = any(a[0] not in (SIG_DFL, SIG_IGN) for a in self.sigactions.values())
            self._mirror_host(s)
        return 0

    def set_sigmask(self, t, mask: int) -> None:
        """Change ``t``'s mask; newly unblocked pending signals are taken at
        the next safe point (the run loop checks right after the call)."""
        t.sigmask = mask & ~UNBLOCKABLE
        if (t.pending | self.pending_signals) & ~t.sigmask:
            self._kick(t)

    @syscall("rt_sigprocmask", "how", "p", "p", "u")
    def sys_rt_sigprocmask(self, how: int, set_: int, oset: int, sigsetsize: int) -> int:
        if sigsetsize != 8:
            return -_errno.EINVAL
        t = self.current
        new = self.mem.read_u64(set_) if set_ else None
        h = s32(how)
        if new is not None and h not in (SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK):
            return -_errno.EINVAL
        if oset:
            self.mem.write_u64(oset, t.sigmask)
        if new is not None:
            if h == SIG_BLOCK:
                mask = t.sigmask | new
            elif h == SIG_UNBLOCK:
                mask = t.sigmask & ~new
            else:
                mask = new
            self.set_sigmask(t, mask)
        return 0

    @syscall("rt_sigpending", "p", "u")
    def sys_rt_sigpending(self, set_: int, sigsetsize: int) -> int:
        if sigsetsize > 8:
            return -_errno.EINVAL
        t = self.current
        pend = (t.pending | self.pending_signals) & t.sigmask
        self.mem.write(set_, pend.to_bytes(8, "little")[:sigsetsize])
        return 0

    @syscall("rt_sigsuspend", "p", "u")
    def sys_rt_sigsuspend(self, mask_addr: int, sigsetsize: int) -> int:
        if sigsetsize != 8:
            return -_errno.EINVAL
        t = self.current
        mask = self.mem.read_u64(mask_addr)
        t.saved_sigmask = t.sigmask
        t.sigmask = mask & ~UNBLOCKABLE
        self.wait_until(lambda: False, None)
        return -_errno.EINTR          # the frame saves the old mask (saved_sigmask)

    @syscall("rt_sigtimedwait", "p", "p", "p", "u")
    def sys_rt_sigtimedwait(self, set_: int, uinfo: int, uts: int, sigsetsize: int) -> int:
        if sigsetsize != 8:
            return -_errno.EINVAL
        t = self.current
        want = self.mem.read_u64(set_) & ~UNBLOCKABLE
        timeout = None
        if uts:
            sec, nsec = self.abi.unpack_timespec(self.mem.read(uts, 16))
            if sec < 0 or not 0 <= nsec < 1_000_000_000:
                return -_errno.EINVAL
            timeout = sec + nsec / 1e9
        if uinfo:
            self._need(uinfo, 128, 2)
        found: list = []

        def take() -> bool:
            got = self._dequeue(t, ~want & ((1 << NSIG) - 1))
            if got is not None:
                found.append(got)
            return got is not None

        # Linux: the awaited signals are unblocked for the wait (others may interrupt it).
        saved = t.sigmask
        t.sigmask = saved & ~want
        try:
            how = self.wait_until(take, timeout)
        finally:
            t.sigmask = saved
        if how == "timeout":
            return -_errno.EAGAIN
        if how == "signal":
            return -_errno.EINTR
        sig, info = found[0]
        if uinfo:
            self.mem.write(uinfo, info.pack())
        return sig

    @syscall("sigaltstack", "p", "p")
    def sys_sigaltstack(self, ss: int, old_ss: int) -> int:
        t = self.current
        new = self.mem.read(ss, 24) if ss else None
        sp_now = self.sigframes.stack_pointer(t.state) if t.state is not None else 0
        cur_sp, cur_flags, cur_size = t.altstack
        on = not cur_flags & SS_DISABLE and cur_sp <= sp_now < cur_sp + cur_size
        if old_ss:
            flags = SS_ONSTACK if on else cur_flags
            # ss_flags is an int; SS_AUTODISARM is its sign bit.
            self.mem.write(old_ss, struct.pack("<QIiQ", cur_sp, flags & 0xFFFFFFFF, 0, cur_size))
        if new is not None:
            if on:
                return -_errno.EPERM
            sp, flags, _pad, size = struct.unpack("<QiiQ", new)
            flags &= 0xFFFFFFFF
            if flags & ~(SS_DISABLE | SS_AUTODISARM | SS_ONSTACK):
                return -_errno.EINVAL
            if flags & SS_DISABLE:
                t.altstack = (0, SS_DISABLE, 0)
            else:
                if size < self.abi.minsigstksz:
                    return -_errno.ENOMEM
                t.altstack = (sp, flags & SS_AUTODISARM, size)
        return 0

    @syscall("rt_sigreturn")
    def sys_rt_sigreturn(self) -> int:

        t = self.current
        try:
            mask, ustack = self.sigframes.restore_frame(self.mem, t.state)
        except Exception:
            raise GuestKilled(SIGSEGV) from None
        self.set_sigmask(t, mask)
        sp, flags, size = ustack
        if not flags & SS_ONSTACK:
            if flags & SS_DISABLE:
                t.altstack = (0, SS_DISABLE, 0)
            elif size >= self.abi.minsigstksz:
                t.altstack = (sp, flags & SS_AUTODISARM, size)
        raise ResumeGuest()

    # -- timers -------------------------------------------------------------------------------
    def _itimer(self, which: int) -> int:
        return {ITIMER_REAL: _signal.ITIMER_REAL, ITIMER_VIRTUAL: _signal.ITIMER_VIRTUAL,
                ITIMER_PROF: _signal.ITIMER_PROF}[which]

    def _arm_itimer(self, which: int, value: float, interval: float) -> tuple[float, float]:
        """Host interval timers deliver the host signal (SIGALRM, SIGVTALRM,
        SIGPROF); the host's disposition mirrors the guest's, so a handler
        gets it through the router and a default kills as on Linux."""
        sig = {ITIMER_REAL: SIGALRM, ITIMER_VIRTUAL: SIGVTALRM, ITIMER_PROF: SIGPROF}[which]
        if self._router is not None:
            self._mirror_host(sig)
        return _signal.setitimer(self._itimer(which), value, interval)

    @syscall("setitimer", "d", "p", "p")
    def sys_setitimer(self, which: int, new: int, old: int) -> int:
        w = s32(which)
        if w not in (ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF):
            return -_errno.EINVAL
        if new:
            isec, iusec, vsec, vusec = struct.unpack("<qqqq", self.mem.read(new, 32))
            if not (0 <= iusec < 1_000_000 and 0 <= vusec < 1_000_000) or isec < 0 or vsec < 0:
                return -_errno.EINVAL
            prev = self._arm_itimer(w, vsec + vusec / 1e6, isec + iusec / 1e6)
        else:
            prev = _signal.getitimer(self._itimer(w))
        if old:
            v, i = prev
            self.mem.write(old, struct.pack("<qqqq", int(i), int(round((i % 1) * 1e6)),
                                            int(v), int(round((v % 1) * 1e6))))
        return 0

    @syscall("getitimer", "d", "p")
    def sys_getitimer(self, which: int, cur: int) -> int:
        w = s32(which)
        if w not in (ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF):
            return -_errno.EINVAL
        v, i = _signal.getitimer(self._itimer(w))
        self.mem.write(cur, struct.pack("<qqqq", int(i), int(round((i % 1) * 1e6)),
                                        int(v), int(round((v % 1) * 1e6))))
        return 0

    @syscall("alarm", "u")
    def sys_alarm(self, seconds: int) -> int:
        prev, _i = self._arm_itimer(ITIMER_REAL, float(seconds & 0xFFFFFFFF), 0.0)
        return int(prev + 0.999999) if prev else 0

    @syscall("pause")
    def sys_pause(self) -> int:
        self.wait_until(lambda: False, None)
        return -_errno.EINTR

