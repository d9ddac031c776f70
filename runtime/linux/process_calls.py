"""Process system calls: fork/vfork/clone without CLONE_VM, wait4/waitid,
execve/execveat, signals to other processes, process groups and sessions,
terminal job control (a ``LinuxKernel`` mixin; see
runtime/linux/syscall_base.py).

Guest processes are host processes.  A guest fork forks the whole runtime
(``os.fork``): guest memory is host memory of this process, so the child
gets a copy-on-write copy of it exactly as Linux gives one (guest
``MAP_SHARED`` file mappings are host ``MAP_SHARED`` mappings and stay
shared).  Guest pids are host pids; a guest's children are host children
of its aotrun, and ``wait4``/``waitid`` are the host's, limited to the
children the guest forked (the runtime's own helper processes, such as
the JIT's compile worker, are never seen).  ``execve`` of a riscv64 guest
program replaces the process with a new aotrun on it (``os.execv``, so the
pid stays), handing over the guest's argv, envp and the fds it keeps
(``ExecHandover``).  Policies and limits: docs/architecture.md, "Processes:
fork, exec, wait".

Fork and exec act on the whole host process, so they are enabled only in an
aotrun process (``enable_process_control``, called by runtime/cli.py): a
kernel embedded elsewhere (tests, the syscall fuzzer) answers them -ENOSYS.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import json
import os
import signal as _signal
import struct
import sys
import time
from dataclasses import dataclass, field

from runtime.host_libc import load_libc
from runtime.linux.syscall_base import MASK64, Errno, s32, syscall

# clone flags
CSIGNAL = 0xFF
CLONE_VM = 0x100
CLONE_FS = 0x200
CLONE_FILES = 0x400
CLONE_SIGHAND = 0x800
CLONE_PIDFD = 0x1000
CLONE_PTRACE = 0x2000
CLONE_VFORK = 0x4000
CLONE_PARENT = 0x8000
CLONE_THREAD = 0x10000
CLONE_NEWNS = 0x20000
CLONE_SYSVSEM = 0x40000
CLONE_SETTLS = 0x80000
CLONE_PARENT_SETTID = 0x100000
CLONE_CHILD_CLEARTID = 0x200000
CLONE_DETACHED = 0x400000
CLONE_UNTRACED = 0x800000
CLONE_CHILD_SETTID = 0x1000000
CLONE_NEWCGROUP = 0x2000000
CLONE_NEWUTS = 0x4000000
CLONE_NEWIPC = 0x8000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_IO = 0x80000000
_CLONE_NAMESPACES = (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER
                     | CLONE_NEWPID | CLONE_NEWNET)
# What a fork honours; CLONE_VM only together with CLONE_VFORK (see _fork_process).
_FORK_FLAGS = (CSIGNAL | CLONE_VM | CLONE_VFORK | CLONE_SETTLS | CLONE_PARENT_SETTID
               | CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | CLONE_DETACHED | CLONE_UNTRACED
               | CLONE_PTRACE | CLONE_IO | CLONE_SYSVSEM)
SIGCHLD = 17

# wait options
WNOHANG = 1
WUNTRACED = WSTOPPED = 2
WEXITED = 4
WCONTINUED = 8
WNOWAIT = 0x01000000
__WNOTHREAD = 0x20000000
__WALL = 0x40000000
__WCLONE = 0x80000000
_WAIT4_OPTIONS = WNOHANG | WUNTRACED | WCONTINUED | __WNOTHREAD | __WALL | __WCLONE
_WAITID_OPTIONS = WNOHANG | WSTOPPED | WEXITED | WCONTINUED | WNOWAIT | __WNOTHREAD | __WALL | __WCLONE
P_ALL, P_PID, P_PGID, P_PIDFD = 0, 1, 2, 3

# execve
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000
MAX_ARG_STRLEN = 32 * 4096          # Linux: one argument or environment string
MAX_ARG_STRINGS = 0x7FFFFFFF
BINPRM_BUF_SIZE = 256               # the bytes Linux looks at for "#!" and the ELF header
MAX_INTERP_DEPTH = 4                # nested #! interpreters (Linux's binfmt recursion limit)
EM_RISCV, EM_X86_64, EM_AARCH64 = 243, 62, 183
_MACHINES = {EM_RISCV: "riscv64", EM_X86_64: "x86_64", EM_AARCH64: "aarch64", 3: "i386", 40: "arm"}

# tty job control
TIOCGPGRP, TIOCSPGRP, TIOCGSID = 0x540F, 0x5410, 0x5429
JOB_CONTROL_IOCTLS = (TIOCGPGRP, TIOCSPGRP, TIOCGSID)

_HOST_TGKILL = 234
_libc = load_libc()
_libc.syscall.restype = ctypes.c_long

HANDOVER_OPTION = "--exec-handover"


# --------------------------------------------------------------------------
# What aotrun tells the kernel about its run (for exec), and exec hand-over
# --------------------------------------------------------------------------

@dataclass
class LaunchOptions:
    """The aotrun options an exec carries over to the new aotrun."""

    engine: str = "aot"                  # aot | jit | interp
    fallback: str = "jit"
    trust: tuple[str, ...] = ()          # extra public keys (--trust)
    deadline: float | None = None        # time.monotonic() when --timeout expires
    argv_prefix: tuple[str, ...] = ()    # how to start a runtime: python -P -m runtime.cli
    isa_profile: str = "max"             # --isa-profile


_LAUNCH: LaunchOptions | None = None


def enable_process_control(options: LaunchOptions) -> None:
    """Called by aotrun (runtime/cli.py): this host process is the guest's
    own, so guest fork and exec may fork and replace it."""
    global _LAUNCH
    _LAUNCH = options


@dataclass
class ExecHandover:
    """What an exec hands to the new aotrun (a memfd named by --exec-handover):
    the guest's argv and envp exactly, guest fd → inherited host fd, the
    children the process already has, and whether it is a guest-made process."""

    argv: list[bytes]
    envp: list[bytes]
    fds: dict[int, int] = field(default_factory=dict)
    children: list[int] = field(default_factory=list)
    forked: bool = False

    def encode(self) -> bytes:
        dec = os.fsdecode
        return json.dumps({"argv": [dec(a) for a in self.argv], "envp": [dec(e) for e in self.envp],
                           "fds": {str(g): h for g, h in self.fds.items()},
                           "children": self.children, "forked": self.forked}).encode()

    @classmethod
    def decode(cls, data: bytes) -> ExecHandover:
        d = json.loads(data)
        enc = os.fsencode
        return cls(argv=[enc(a) for a in d["argv"]], envp=[enc(e) for e in d["envp"]],
                   fds={int(g): int(h) for g, h in d["fds"].items()},
                   children=[int(p) for p in d["children"]], forked=bool(d["forked"]))

    @classmethod
    def read_fd(cls, fd: int) -> ExecHandover:
        """Read and close the hand-over memfd."""
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
        finally:
            os.close(fd)
        return cls.decode(b"".join(chunks))


_PENDING: ExecHandover | None = None


def set_pending_handover(handover: ExecHandover) -> None:
    """The next LinuxKernel made in this process adopts ``handover``'s fds and children."""
    global _PENDING
    _PENDING = handover


class EnvPairs:
    """The guest's environment strings as the ``env`` mapping ``run_image``
    takes (it only calls ``items()`` and joins ``k=v``): keeps order and
    duplicates.  A string without '=' cannot be expressed so and gets one."""

    def __init__(self, envp: list[bytes]) -> None:
        self._pairs = []
        for e in envp:
            k, _sep, v = os.fsdecode(e).partition("=")
            self._pairs.append((k, v))

    def items(self):
        return list(self._pairs)


@dataclass
class _Child:
    exit_signal: int = SIGCHLD


class _ExecRefused(Exception):
    """execve cannot run this file: errno and a reason for strace."""

    def __init__(self, err: int, why: str) -> None:
        super().__init__(why)
        self.err = err
        self.why = why


@dataclass
class _Target:
    kind: str                  # "elf" | "image"
    path: str                  # host path the new aotrun opens
    keep_fd: int = -1          # a host fd the path depends on (/proc/self/fd/N)
    sha256: str = ""


def _rusage_bytes(r) -> bytes:
    def tv(t: float) -> tuple[int, int]:
        us = int(round(t * 1_000_000))
        return us // 1_000_000, us % 1_000_000
    rest = [r.ru_maxrss, r.ru_ixrss, r.ru_idrss, r.ru_isrss, r.ru_minflt, r.ru_majflt, r.ru_nswap,
            r.ru_inblock, r.ru_oublock, r.ru_msgsnd, r.ru_msgrcv, r.ru_nsignals, r.ru_nvcsw, r.ru_nivcsw]
    return struct.pack("<4q14q", *tv(r.ru_utime), *tv(r.ru_stime), *rest)


def _host_ppids() -> dict[int, int]:
    """pid → parent pid of every host process we can see."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
            out[int(name)] = int(stat[stat.rindex(b")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return out


class ProcessCalls:
    """Process calls of the guest (see the module docstring)."""

    def __init_subclass__(cls, **kwargs) -> None:
        # LinuxKernel.__init__ does not chain to its mixins: give this one a
        # per-process set-up step after it (and adopt an exec hand-over).
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None or getattr(init, "_process_init_wrapped", False):
            return

        def __init__(self, *args, **kw) -> None:
            init(self, *args, **kw)
            self._process_init()
        __init__._process_init_wrapped = True            # type: ignore[attr-defined]
        __init__.__doc__, __init__.__wrapped__ = init.__doc__, init     # type: ignore[attr-defined]
        cls.__init__ = __init__                           # type: ignore[misc]

    def _process_init(self) -> None:
        global _PENDING
        if getattr(self, "_process_ready", False):       # a subclass's __init__ wrapped too
            return
        self._process_ready = True
        self._children: dict[int, _Child] = {}
        self._vfork_w = -1               # host fd whose closing (exec/exit) releases a vfork parent
        self._forked = False             # made by a guest fork (or exec'd from such a process)
        handover, _PENDING = _PENDING, None
        if handover is not None:
            self._adopt(handover)

    def _adopt(self, handover: ExecHandover) -> None:
        """After exec: the guest's kept fds at their numbers, its children."""
        self.fds.close_all()
        for gfd, hfd in sorted(handover.fds.items()):
            os.set_inheritable(hfd, False)
            self.fds.put(gfd, hfd, cloexec=False)
        self._children = {pid: _Child() for pid in handover.children}
        self._forked = handover.forked

    def _strace_note(self, text: str) -> None:
        if self.strace is not None:
            self.strace.write(f"[aotc] {text}\n")

    # ======================================================================
    # fork
    # ======================================================================
    def _guest_state(self):
        st = self.current.state
        if st is None:
            # Until the Machine sets current.state (threads work of issue 17):
            # the Machine is the owner of the fork hook.
            st = getattr(getattr(self.on_fork_child, "__self__", None), "state", None)
        return st

    def _fork_process(self, flags: int, child_stack: int, parent_tid: int, child_tid: int,
                      tls: int, exit_signal: int) -> int:
        """clone/clone3 without CLONE_THREAD (and fork, vfork): fork this host
        process.  CLONE_VM is accepted only with CLONE_VFORK (vfork,
        posix_spawn): the child gets a copy of memory instead of sharing it,
        which a vfork child, that may only exec or _exit, cannot tell apart.
        Returns the child's pid in the parent, 0 in the child, or -errno."""
        flags &= MASK64
        if flags & _CLONE_NAMESPACES:
            return -_errno.EPERM
        if flags & CLONE_THREAD or flags & CLONE_SIGHAND or (flags & CLONE_VM and not flags & CLONE_VFORK):
            return -_errno.EINVAL           # a thread: not ours (threads.py)
        if flags & ~_FORK_FLAGS:
            # CLONE_FS, CLONE_FILES, CLONE_PARENT, CLONE_PIDFD: nothing can be
            # shared between two host processes' emulated kernels.
            return -_errno.EINVAL
        if _LAUNCH is None or self.abi.name == "x86_64":
            # Not an aotrun process; or an x86_64 guest in a KVM vCPU, whose
            # VM belongs to the process that made it (a forked child's
            # KVM_RUN fails): no fork.
            return -_errno.ENOSYS
        state = self._guest_state()
        if state is None and (child_stack or flags & CLONE_SETTLS):
            return -_errno.ENOSYS
        if flags & CLONE_PARENT_SETTID:
            self._need(parent_tid, 4, 2)
        release_r = release_w = -1
        if flags & CLONE_VFORK:
            release_r, release_w = os.pipe2(os.O_CLOEXEC)
        for f in (self.strace, sys.stdout, sys.stderr):
            try:
                if f is not None:
                    f.flush()
            except (OSError, ValueError):
                pass
        try:
            with self.fork_guard(), self.mm_lock:
                pid = os.fork()
        except OSError:
            for fd in (release_r, release_w):
                if fd >= 0:
                    os.close(fd)
            raise
        if pid == 0:
            self._in_fork_child(flags, child_stack, child_tid, tls, state, release_r, release_w)
            return 0
        self._children[pid] = _Child(exit_signal & CSIGNAL)
        if flags & CLONE_PARENT_SETTID:
            try:
                self.mem.write(parent_tid, struct.pack("<i", pid))
            except Exception:
                pass
        if release_w >= 0:
            os.close(release_w)
            try:
                # The child execs (CLOEXEC closes its end) or exits.  Like
                # Linux's vfork wait, this one is not cut short by signals.
                while os.read(release_r, 1):
                    pass
            finally:
                os.close(release_r)
        return pid

    def _in_fork_child(self, flags: int, child_stack: int, child_tid: int, tls: int, state,
                       release_r: int, release_w: int) -> None:
        pid = os.getpid()
        if self._vfork_w >= 0:              # our own vfork parent waits for us, not for this child
            try:
                os.close(self._vfork_w)
            except OSError:
                pass
            self._vfork_w = -1
        if release_r >= 0:
            os.close(release_r)
            self._vfork_w = release_w
        t = self.current
        self.pid = self.tid = pid
        t.tid = pid
        self.main_thread = t
        self.threads = {pid: t}
        self._children = {}
        self._forked = True
        t.pending = 0                        # pending signals are not inherited
        self.pending_signals = 0
        if state is not None:
            if child_stack:
                state.x[2] = child_stack & MASK64
            if flags & CLONE_SETTLS:
                state.x[4] = tls & MASK64
        if flags & CLONE_CHILD_SETTID:
            try:
                self.mem.write(child_tid, struct.pack("<i", pid))
            except Exception:
                pass
        if flags & CLONE_CHILD_CLEARTID:
            t.clear_child_tid = child_tid
            self.clear_child_tid = child_tid
        reset = getattr(self, "after_fork_threads", None)
        if reset is not None:
            reset()
        if self.on_fork_child is not None:
            self.on_fork_child()

    # clone and clone3 are threads.py's (ThreadCalls._clone): what is not a
    # thread comes here.  fork and vfork exist in the x86_64 numbering only.
    @syscall("fork")
    def sys_fork(self) -> int:
        return self._fork_process(0, 0, 0, 0, 0, SIGCHLD)

    @syscall("vfork")
    def sys_vfork(self) -> int:
        return self._fork_process(CLONE_VM | CLONE_VFORK, 0, 0, 0, 0, SIGCHLD)

    # ======================================================================
    # wait
    # ======================================================================
    def _wait_candidates(self, which: int, ident: int) -> list[int]:
        """Tracked children matching (idtype, id)."""
        kids = list(self._children)
        if which == P_ALL:
            return kids
        if which == P_PID:
            return [ident] if ident in self._children else []
        out = []
        for pid in kids:
            try:
                if os.getpgid(pid) == ident:
                    out.append(pid)
            except OSError:         # reaped by someone else: let the wait find out
                out.append(pid)
        return out

    def _wait_block(self, pids: list[int], state_changes: bool) -> None:
        """Sleep until one of ``pids`` may have changed state or a signal is
        pending for the caller: their pidfds (readable on exit) and the
        thread's wake_fd; stop/continue events are polled every 20 ms."""
        import select

        fds = []
        try:
            for pid in pids:
                try:
                    fds.append(os.pidfd_open(pid))
                except OSError:
                    fds.append(-1)
            poller = select.poll()
            for fd in fds:
                if fd >= 0:
                    poller.register(fd, select.POLLIN)
            wake = getattr(self.current, "wake_fd", -1)
            if wake >= 0:
                poller.register(wake, select.POLLIN)
            if -1 in fds:                   # gone already: look again at once
                return
            poller.poll(20 if state_changes else 1000)
        finally:
            for fd in fds:
                if fd >= 0:
                    os.close(fd)

    def _wait_common(self, which: int, ident: int, options: int, check) -> object:
        """Reap (or peek at) a child as ``check(pid)`` finds it: its result,
        or 0 for WNOHANG with nothing to report; Errno otherwise."""
        while True:
            pids = self._wait_candidates(which, ident)
            if not pids:
                raise Errno(_errno.ECHILD)
            for pid in pids:
                try:
                    got = check(pid)
                except ChildProcessError:
                    self._children.pop(pid, None)      # reaped behind our back
                    continue
                if got is not None:
                    return got
            if not any(p in self._children for p in pids):
                continue
            if options & WNOHANG:
                return 0
            if self.signal_pending():
                raise Errno(_errno.EINTR)
            self._wait_block(pids, bool(options & (WSTOPPED | WCONTINUED)))
            if self.signal_pending():
                raise Errno(_errno.EINTR)

    @syscall("wait4", "d", "p", "x", "p")
    def sys_wait4(self, pid: int, wstatus: int, options: int, rusage: int) -> int:
        p, options = s32(pid), options & 0xFFFFFFFF
        if options & ~_WAIT4_OPTIONS:
            return -_errno.EINVAL
        if p == -(1 << 31):
            return -_errno.ESRCH
        if wstatus:
            self._need(wstatus, 4, 2)
        if rusage:
            self._need(rusage, 144, 2)
        if p > 0:
            which, ident = P_PID, p
        elif p == -1:
            which, ident = P_ALL, 0
        else:
            which, ident = P_PGID, (os.getpgid(0) if p == 0 else -p)
        host = WNOHANG | (options & (WUNTRACED | WCONTINUED))

        def check(c: int):
            got, status, ru = os.wait4(c, host)
            if got == 0:
                return None
            if os.WIFEXITED(status) or os.WIFSIGNALED(status):
                self._children.pop(c, None)
            return got, status, ru
        res = self._wait_common(which, ident, options, check)
        if res == 0:
            return 0
        got, status, ru = res
        if wstatus:
            self.mem.write(wstatus, struct.pack("<i", status))
        if rusage:
            self.mem.write(rusage, _rusage_bytes(ru))
        return got

    @syscall("waitid", "d", "d", "p", "x", "p")
    def sys_waitid(self, idtype: int, ident: int, infop: int, options: int, rusage: int) -> int:
        which, i, options = s32(idtype), s32(ident), options & 0xFFFFFFFF
        if options & ~_WAITID_OPTIONS or not options & (WEXITED | WSTOPPED | WCONTINUED):
            return -_errno.EINVAL
        if which == P_PID:
            if i <= 0:
                return -_errno.EINVAL
        elif which == P_PGID:
            if i < 0:
                return -_errno.EINVAL
            i = i or os.getpgid(0)
        elif which == P_PIDFD:
            i = self._pidfd_pid(i)
            which = P_PID
        elif which != P_ALL:
            return -_errno.EINVAL
        if infop:
            self._need(infop, 128, 2)
        if rusage:
            self._need(rusage, 144, 2)
        host = WNOHANG | (options & (WEXITED | WSTOPPED | WCONTINUED | WNOWAIT))

        def check(c: int):
            r = os.waitid(os.P_PID, c, host)
            if r is None:
                return None
            if r.si_code in (1, 2, 3) and not options & WNOWAIT:     # CLD_EXITED/KILLED/DUMPED
                self._children.pop(c, None)
            return r
        res = self._wait_common(which, i, options, check)
        import resource

        if rusage:
            self.mem.write(rusage, _rusage_bytes(resource.getrusage(resource.RUSAGE_CHILDREN)))
        if infop:
            if res == 0:
                info = struct.pack("<iiiiiIi", 0, 0, 0, 0, 0, 0, 0)
            else:
                info = struct.pack("<iiiiiIi", SIGCHLD, 0, res.si_code, 0, res.si_pid, res.si_uid,
                                   res.si_status)
            self.mem.write(infop, info)
        return 0

    def _pidfd_pid(self, gfd: int) -> int:
        host = self.fds.host(gfd)
        try:
            with open(f"/proc/self/fdinfo/{host}") as f:
                for line in f:
                    if line.startswith("Pid:"):
                        return int(line.split()[1])
        except (OSError, ValueError):
            pass
        raise Errno(_errno.EINVAL)

    # ======================================================================
    # signals to other processes, groups, sessions
    # ======================================================================
    def _descendants(self) -> set[int]:
        """Live processes below us in the host tree that start at a child
        the guest forked: the processes a guest may signal and regroup."""
        found = set(self._children)
        ppids = _host_ppids()
        kids: dict[int, list[int]] = {}
        for pid, ppid in ppids.items():
            kids.setdefault(ppid, []).append(pid)
        todo = list(found)
        while todo:
            for k in kids.get(todo.pop(), []):
                if k not in found:
                    found.add(k)
                    todo.append(k)
        return found

    def _is_descendant(self, pid: int) -> bool:
        if pid in self._children:
            return True
        seen = 0
        cur = pid
        while cur > 1 and seen < 4096:
            try:
                with open(f"/proc/{cur}/stat", "rb") as f:
                    stat = f.read()
                cur = int(stat[stat.rindex(b")") + 2:].split()[1])
            except (OSError, ValueError, IndexError):
                return False
            if cur in self._children:
                return True
            seen += 1
        return False

    def _signal_pid(self, pid: int, sig: int) -> None:
        """Send to a descendant: a direct child cannot be replaced by another
        process until we reap it; deeper ones go through a pidfd checked
        to still be a descendant after it was opened."""
        if pid in self._children:
            os.kill(pid, sig)
            return
        fd = os.pidfd_open(pid)
        try:
            if not self._is_descendant(pid):
                raise Errno(_errno.ESRCH)
            _signal.pidfd_send_signal(fd, sig)
        finally:
            os.close(fd)

    def _kill_other(self, pid: int, sig: int) -> int:
        """kill(pid, sig) for anything but our own pid (the caller delivers
        to ourselves).  A guest may signal only its descendants (children
        it forked and theirs): pid > 0 names one; 0 is the descendants in
        our process group, -1 all descendants, -pgid the descendants in
        that group.  Anything else is -ESRCH, whether or not the host has
        such a process (a guest cannot probe for host processes; the caller
        combines -ESRCH with its own delivery for groups that hold us)."""
        pid, sig = s32(pid), s32(sig)
        if sig < 0 or sig > 64:
            return -_errno.EINVAL
        if pid > 0:
            if not self._is_descendant(pid):
                return -_errno.ESRCH
            if sig:
                self._signal_pid(pid, sig)
            return 0
        if pid == -(1 << 31):
            return -_errno.ESRCH
        group = None if pid == -1 else (os.getpgid(0) if pid == 0 else -pid)
        sent = 0
        for d in sorted(self._descendants()):
            try:
                if group is not None and os.getpgid(d) != group:
                    continue
                if sig:
                    self._signal_pid(d, sig)
                sent += 1
            except (OSError, Errno):
                continue
        return 0 if sent else -_errno.ESRCH

    def _tgkill_other(self, tgid: int, tid: int, sig: int) -> int:
        """tgkill to a thread of another process (tgid > 0 not ours), same policy."""
        tgid, tid, sig = s32(tgid), s32(tid), s32(sig)
        if tgid <= 0 or tid <= 0 or sig < 0 or sig > 64:
            return -_errno.EINVAL
        if not self._is_descendant(tgid):
            return -_errno.ESRCH
        if _libc.syscall(_HOST_TGKILL, tgid, tid, sig) < 0:
            return -(ctypes.get_errno() or _errno.ESRCH)
        return 0

    def _tkill_other(self, tid: int, sig: int) -> int:
        """tkill to a thread that is not ours: the thread's process decides."""
        try:
            with open(f"/proc/{s32(tid)}/status") as f:
                tgid = next(int(line.split()[1]) for line in f if line.startswith("Tgid:"))
        except (OSError, StopIteration, ValueError):
            return -_errno.ESRCH
        return self._tgkill_other(tgid, tid, sig)

    def _own_or_descendant(self, pid: int) -> int:
        """pid 0 or ours → 0 (ourselves); a descendant → itself; else ESRCH."""
        if pid in (0, self.pid):
            return 0
        if pid > 0 and self._is_descendant(pid):
            return pid
        raise Errno(_errno.ESRCH)

    def _allowed_groups(self) -> set[int]:
        groups = {os.getpgid(0), self.pid}
        for d in self._descendants():
            try:
                groups.add(os.getpgid(d))
            except OSError:
                pass
            groups.add(d)
        return groups

    @syscall("getpgid", "d")
    def sys_getpgid(self, pid: int) -> int:
        return os.getpgid(self._own_or_descendant(s32(pid)))

    @syscall("getpgrp")
    def sys_getpgrp(self) -> int:
        return os.getpgrp()

    @syscall("getsid", "d")
    def sys_getsid(self, pid: int) -> int:
        return os.getsid(self._own_or_descendant(s32(pid)))

    @syscall("setpgid", "d", "d")
    def sys_setpgid(self, pid: int, pgid: int) -> int:
        """setpgid for ourselves or a child we forked, into a new group or
        one that holds us or our descendants (never an outside group)."""
        p, g = s32(pid), s32(pgid)
        if g < 0:
            return -_errno.EINVAL
        if p < 0:
            return -_errno.ESRCH
        target = 0 if p in (0, self.pid) else p
        if target and target not in self._children:
            return -_errno.ESRCH
        g = g or (target or self.pid)
        if g != (target or self.pid) and g not in self._allowed_groups():
            return -_errno.EPERM
        os.setpgid(target, g)
        return 0

    @syscall("setsid")
    def sys_setsid(self) -> int:
        """A process a guest forked may start a session; the process aotrun
        was started as never leaves the user's session (-EPERM)."""
        if not self._forked:
            return -_errno.EPERM
        return os.setsid()

    def _job_control_ioctl(self, host: int, req: int, arg: int) -> int:
        """TIOCGPGRP/TIOCSPGRP/TIOCGSID on a guest fd that is a tty (sys_ioctl)."""
        import fcntl

        if not os.isatty(host):
            return -_errno.ENOTTY
        if req == TIOCGPGRP:
            self._need(arg, 4, 2)
            self.mem.write(arg, struct.pack("<i", os.tcgetpgrp(host)))
            return 0
        if req == TIOCGSID:
            self._need(arg, 4, 2)
            out = fcntl.ioctl(host, TIOCGSID, bytes(4))
            self.mem.write(arg, out[:4])
            return 0
        (pgrp,) = struct.unpack("<i", self.mem.read(arg, 4))
        if pgrp < 0:
            return -_errno.EINVAL
        if pgrp not in self._allowed_groups():
            return -_errno.EPERM
        # The guest's signal mask is not the host's: a shell blocks SIGTTOU
        # around this; the runtime must not be stopped by it either.
        old = _signal.pthread_sigmask(_signal.SIG_BLOCK, {_signal.SIGTTOU})
        try:
            os.tcsetpgrp(host, pgrp)
        finally:
            _signal.pthread_sigmask(_signal.SIG_SETMASK, old)
        return 0

    # ======================================================================
    # execve
    # ======================================================================
    def _string_array(self, addr: int, room: list[int]) -> list[bytes]:
        """A NULL-terminated array of guest strings (EFAULT, E2BIG as Linux)."""
        out: list[bytes] = []
        if addr == 0:
            return out
        while True:
            ptr = self.mem.read_u64(addr + 8 * len(out))
            if ptr == 0:
                return out
            if len(out) >= MAX_ARG_STRINGS:
                raise Errno(_errno.E2BIG)
            try:
                s = self.mem.read_cstring(ptr, MAX_ARG_STRLEN)
            except Exception as e:
                # read_cstring raises at the limit as well as on a fault
                if self.mem.is_mapped(ptr, 1, 1) and getattr(e, "addr", ptr) >= ptr + MAX_ARG_STRLEN:
                    raise Errno(_errno.E2BIG) from None
                raise Errno(_errno.EFAULT) from None
            room[0] -= len(s) + 1 + 8
            if room[0] < 0:
                raise Errno(_errno.E2BIG)
            out.append(s)

    def _open_exec(self, dirfd: int, path: bytes, flags: int) -> int:
        """The host fd of the file execve names (O_RDONLY), as Linux's open_exec checks it."""
        import stat as _stat

        from runtime.linux.procfs import HostFd, HostPath, ProcPath

        if not path:
            if not flags & AT_EMPTY_PATH:
                raise _ExecRefused(_errno.ENOENT, "empty path")
            hfd = os.open(f"/proc/self/fd/{self.fds.host(dirfd)}", os.O_RDONLY | os.O_CLOEXEC)
        else:
            r = self.procfs.resolve(dirfd, path, follow=not flags & AT_SYMLINK_NOFOLLOW)
            if isinstance(r, ProcPath):
                raise _ExecRefused(_errno.EACCES, "a /proc file is not executable")
            nofollow = os.O_NOFOLLOW if flags & AT_SYMLINK_NOFOLLOW else 0
            if isinstance(r, HostFd):
                hfd = os.open(f"/proc/self/fd/{r.fd}", os.O_RDONLY | os.O_CLOEXEC)
            elif isinstance(r, HostPath) and r.path is not None:
                hfd = os.open(r.path, os.O_RDONLY | os.O_CLOEXEC | nofollow)
            else:
                host_dir = None if dirfd == AT_FDCWD or path[:1] == b"/" else self.fds.host(dirfd)
                try:
                    hfd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | nofollow, dir_fd=host_dir)
                except OSError as e:
                    if e.errno == _errno.ELOOP and nofollow:
                        raise _ExecRefused(_errno.ELOOP, "AT_SYMLINK_NOFOLLOW on a symbolic link") from None
                    raise
        try:
            st = os.fstat(hfd)
            if not _stat.S_ISREG(st.st_mode):
                raise _ExecRefused(_errno.EACCES, "not a regular file")
            if os.fstatvfs(hfd).f_flag & os.ST_NOEXEC:
                raise _ExecRefused(_errno.EACCES, "on a noexec mount")
            # An aotc image is data to aotrun (`aotrun image.so` needs no
            # execute permission), and it is what /proc/self/exe names under
            # the aot engine: exec'ing it needs none either.
            if not os.access(f"/proc/self/fd/{hfd}", os.X_OK) and not self._is_image(hfd):
                raise _ExecRefused(_errno.EACCES, "no execute permission")
        except BaseException:
            os.close(hfd)
            raise
        return hfd

    @staticmethod
    def _host_path_of(hfd: int) -> str | None:
        """A path naming the same file as ``hfd`` (None for memfds and the like)."""
        try:
            name = os.readlink(f"/proc/self/fd/{hfd}")
            st, fst = os.stat(name), os.fstat(hfd)
        except OSError:
            return None
        if (st.st_dev, st.st_ino) != (fst.st_dev, fst.st_ino):
            return None
        return name

    def _classify(self, hfd: int, head: bytes) -> _Target:
        """Which program ``hfd`` is: a riscv64 guest ELF or an aotc image we
        trust (else _ExecRefused: the policy of docs/architecture.md)."""
        path = self._host_path_of(hfd)
        keep = -1
        if path is None:
            path, keep = f"/proc/self/fd/{hfd}", hfd
        if head[:4] != b"\x7fELF":
            raise _ExecRefused(_errno.ENOEXEC, "neither an ELF nor a #! script")
        if len(head) < 20 or head[4] != 2 or head[5] != 1:
            raise _ExecRefused(_errno.ENOEXEC, "not a 64-bit little-endian ELF")
        e_type, e_machine = struct.unpack_from("<HH", head, 16)
        if e_machine == EM_RISCV:
            from aotc.elf.guest_elf import read_guest_elf
            from aotc.errors import AotcError

            try:
                elf = read_guest_elf(__import__("pathlib").Path(path))
            except AotcError as e:
                raise _ExecRefused(_errno.ENOEXEC, f"riscv64 ELF this runtime cannot run: {e}") from None
            return _Target("elf", path, keep, elf.sha256)
        machine = _MACHINES.get(e_machine, f"e_machine {e_machine}")
        if e_machine == EM_X86_64 and e_type == 3:
            image = self._trusted_image(hfd)
            if image is not None:
                return _Target("image", path, keep)
        if e_machine == EM_X86_64:
            raise _ExecRefused(_errno.ENOEXEC, "a host (x86_64) program: a riscv64 guest may only "
                                               "exec riscv64 guest programs (the sandbox never runs host code)")
        raise _ExecRefused(_errno.ENOEXEC, f"a {machine} ELF: a riscv64 guest may only exec riscv64 guest programs")

    @staticmethod
    def _is_image(hfd: int) -> bool:
        """Whether ``hfd`` ends in an aotc image footer."""
        from aotc.image.layout import FOOTER_SIZE, MAGIC

        size = os.fstat(hfd).st_size
        return size >= FOOTER_SIZE and os.pread(hfd, len(MAGIC), size - FOOTER_SIZE) == MAGIC

    def _trusted_image(self, hfd: int):
        """An aotc image of a riscv64 guest signed by a key this run trusts, or None."""
        from aotc.errors import AotcError

        if not self._is_image(hfd):
            return None
        size = os.fstat(hfd).st_size
        from pathlib import Path

        from aotc.image import parse_image, verify_signature
        from aotc.keys import trusted_keys

        try:
            data = os.pread(hfd, size, 0)
            parsed = parse_image(data)
            meta = parsed.contents.metadata
            if meta.get("guest_isa") != "riscv64" or meta.get("engine") != "aot":
                raise _ExecRefused(_errno.ENOEXEC, f"an aotc image of a {meta.get('guest_isa')} guest "
                                                   f"({meta.get('engine')} engine)")
            verify_signature(parsed, trusted_keys([Path(p) for p in (_LAUNCH.trust if _LAUNCH else ())]))
        except AotcError as e:
            raise _ExecRefused(_errno.EACCES, f"an aotc image this run does not trust: {e}") from None
        return parsed

    def _cached_image(self, target: _Target) -> str | None:
        """A signed image of ``target`` (a guest ELF) made from the build
        cache, if ``aotc build`` translated this content before; else None."""
        import platform
        from pathlib import Path

        try:
            from aotc import build_cache
            from aotc.build import ARENA_BITS, guest_metadata

            key = build_cache.build_key(input_sha256=target.sha256, opt_level=2, profile_pcs=None,
                                        host_isa=platform.machine(), arena_bits=ARENA_BITS, count=False)
            if not build_cache.entry_path(key).exists():
                return None
            from aotc.keys import fingerprint, load_or_create_signing_key

            signer = load_or_create_signing_key()
            out = build_cache.cache_dir() / "exec-images" / \
                f"{key[:32]}-{fingerprint(signer.public_key()).replace(':', '')[:16]}.so"
            if out.exists():
                return str(out)
            cached = build_cache.load(key)
            if cached is None:
                return None
            from aotc.elf.guest_elf import read_guest_elf
            from aotc.image import ImageContents, write_image

            elf = read_guest_elf(Path(target.path))
            if elf.sha256 != target.sha256:
                return None
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
            meta = {**guest_metadata(elf, Path(target.path), engine="aot"), **cached.translation}
            write_image(tmp, ImageContents(cached.host_object, meta, tuple(elf.segments)), signer)
            os.replace(tmp, out)
            return str(out)
        except Exception as e:          # the cache is an optimisation: the JIT runs the ELF
            self._strace_note(f"execve: no image from the build cache ({type(e).__name__}: {e})")
            return None

    def _runtime_argv(self, target: _Target, handover_fd: int) -> list[str]:
        launch = _LAUNCH
        assert launch is not None
        engine = launch.engine
        path = target.path
        if target.kind == "elf" and engine == "aot":
            image = self._cached_image(target)
            if image is not None:
                path = image
            else:
                engine = "jit"
        argv = [*launch.argv_prefix, f"--engine={engine}"]
        if engine == "aot":
            argv.append(f"--fallback={launch.fallback}")
        for key in launch.trust:
            argv.append(f"--trust={key}")
        if self.strace is not None:
            argv.append("--strace")
        if self.max_memory is not None:
            argv.append(f"--max-memory={self.max_memory}")
        argv.append(f"--isa-profile={launch.isa_profile}")
        if launch.deadline is not None:
            left = launch.deadline - time.monotonic()
            argv.append(f"--timeout={max(left, 0.001):.3f}")
        argv += [f"{HANDOVER_OPTION}={handover_fd}", "--", path]
        return argv

    def _do_execve(self, dirfd: int, filename: int, argv_addr: int, envp_addr: int, flags: int) -> int:
        flags = s32(flags)
        if flags & ~(AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW):
            return -_errno.EINVAL
        path = self._path(filename)
        # Linux's bound on argv + envp: a quarter of the stack limit, at most
        # 3/4 of 8 MiB, at least 128 KiB (strings and their pointers).
        stack_limit = self.rlimits.get(3, (8 << 20, 0))[0]
        room = [max(min(6 << 20, stack_limit // 4), 128 * 1024)]
        argv = self._string_array(argv_addr, room)
        envp = self._string_array(envp_addr, room)
        if not argv:
            argv = [b""]                    # Linux (5.18+) gives a program an argv[0] of ""
        if _LAUNCH is None:
            return -_errno.ENOSYS
        try:
            hfd = self._open_exec(dirfd, path, flags)
            # The script name an interpreter gets, as Linux's bprm->filename.
            if not path:
                given = f"/dev/fd/{dirfd}".encode()
            elif path[:1] == b"/" or dirfd == AT_FDCWD:
                given = path
            else:
                given = f"/dev/fd/{dirfd}/".encode() + path
            for _depth in range(MAX_INTERP_DEPTH + 1):
                head = os.pread(hfd, BINPRM_BUF_SIZE, 0)
                if head[:2] != b"#!":
                    break
                line = head[2:].split(b"\n", 1)[0] if b"\n" in head else head[2:]
                line = line.strip(b" \t")
                if not line:
                    os.close(hfd)
                    raise _ExecRefused(_errno.ENOEXEC, "#! without an interpreter")
                parts = line.replace(b"\t", b" ").split(b" ", 1)
                interp, arg = parts[0], parts[1].strip(b" \t") if len(parts) > 1 else b""
                argv = [interp] + ([arg] if arg else []) + [given] + argv[1:]
                os.close(hfd)
                hfd = self._open_exec(AT_FDCWD, interp, 0)
                given = interp
            else:
                os.close(hfd)
                raise _ExecRefused(_errno.ELOOP, "too many levels of #! interpreters")
            try:
                target = self._classify(hfd, head)
            except BaseException:
                os.close(hfd)
                raise
        except _ExecRefused as e:
            self._strace_note(f"execve refused ({_errno.errorcode.get(e.err, e.err)}): "
                              f"{os.fsdecode(path)}: {e.why}")
            return -e.err
        if target.keep_fd != hfd:
            os.close(hfd)
        return self._replace_process(target, argv, envp)

    def _replace_process(self, target: _Target, argv: list[bytes], envp: list[bytes]) -> int:
        kept = {g: self.fds.host(g) for g in self.fds.guest_fds() if not self.fds.cloexec(g)}
        handover = ExecHandover(argv=argv, envp=envp, fds=kept, children=sorted(self._children),
                                forked=self._forked)
        memfd = os.memfd_create("aotc-exec-handover", 0)
        os.set_inheritable(memfd, True)
        inheritable: list[int] = []
        try:
            os.write(memfd, handover.encode())
            cmd = self._runtime_argv(target, memfd)
            for h in [*kept.values(), target.keep_fd]:
                if h >= 0 and not os.get_inheritable(h):
                    os.set_inheritable(h, True)
                    inheritable.append(h)
            self._strace_note(f"execve: {os.fsdecode(argv[0]) if argv else ''} -> "
                              f"{' '.join(cmd[len(_LAUNCH.argv_prefix):]) if _LAUNCH else ''}")
            for f in (self.strace, sys.stdout, sys.stderr):
                try:
                    if f is not None:
                        f.flush()
                except (OSError, ValueError):
                    pass
            env = dict(os.environ)
            root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
            pp = env.get("PYTHONPATH", "")
            if pp.split(os.pathsep)[0] != root:
                env["PYTHONPATH"] = root + (os.pathsep + pp if pp else "")
            os.execve(sys.executable, cmd, env)
        except OSError as e:
            return -(e.errno or _errno.ENOEXEC)
        finally:
            # Only reached when the exec failed: the process goes on as it was.
            for h in inheritable:
                try:
                    os.set_inheritable(h, False)
                except OSError:
                    pass
            os.close(memfd)
        return -_errno.ENOEXEC              # not reached

    @syscall("execve", "path", "p", "p")
    def sys_execve(self, filename: int, argv: int, envp: int) -> int:
        return self._do_execve(AT_FDCWD, filename, argv, envp, 0)

    @syscall("execveat", "dirfd", "path", "p", "p", "x")
    def sys_execveat(self, dirfd: int, filename: int, argv: int, envp: int, flags: int) -> int:
        return self._do_execve(s32(dirfd), filename, argv, envp, flags)
