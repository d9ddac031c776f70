"""A /proc view of the guest's own process.

The guest must never see the host's /proc: the runtime that emulates it is a
host process, so the host's ``/proc/self`` describes the runtime (its memory
through ``mem``, its layout through ``maps``, its environment, its fds). Every
path-taking system call of ``LinuxKernel`` first resolves the guest's path
here, component by component (absolute, or relative to the cwd or a dirfd;
``.``, ``..``, repeated slashes, host symlinks such as ``/dev/fd`` and the
view's own links), and anything that reaches ``/proc`` is served by this
view instead of the host:

* ``/proc/self`` → ``<pid>``, ``/proc/thread-self`` → ``<pid>/task/<tid>``,
  ``/proc/mounts`` → ``self/mounts``; ``/proc/<pid>`` and ``/proc/<tid>`` for
  the guest's own ids only (every other pid is ENOENT).
* ``/proc/<pid>/`` and ``/proc/<pid>/task/<tid>/`` hold ``maps``, ``smaps``,
  ``status``, ``stat``, ``statm``, ``cmdline``, ``environ``, ``auxv``,
  ``comm``, ``limits``, ``mounts`` (synthesised from guest state: guest
  mappings, the initial stack's argv/envp areas in guest memory, the auxv the
  runtime built), the links ``exe`` (the guest program), ``cwd``, ``root``
  (``/``), ``fd/<n>`` and ``fdinfo/<n>`` for guest fds only (a guest fd's
  link is the host target of its host fd, or the view path of a view file),
  and ``task/``.
* ``mem``, ``pagemap``, ``syscall``, ``stack``, ``wchan``, ``kcore`` and the
  like are refused with EACCES; any other name is ENOENT.
* Harmless system-wide files pass through read-only, as a snapshot taken at
  open: ``ALLOWED_HOST_FILES`` (cpuinfo, meminfo, stat, uptime, loadavg,
  version, filesystems and a few ``sys/kernel``, ``sys/vm`` values). Nothing
  else of the host's /proc is reachable.

View files are read-only memfds holding the content generated at open (like
a seq_file read in one go); view directories are empty memfds whose file
offset is the getdents64 position. The view recognises its own fds by the
memfd's inode, so dup/dup2/fcntl need no hook; ``fstat``, ``getdents64``,
``fchdir`` and ``openat`` relative to such an fd consult it. A cwd inside
/proc is virtual (``cwd``): the host cwd stays where it was, and relative
paths resolve against the virtual one.

Host paths that never touch /proc go to the host unchanged. Others (for
example ``/proc/self/root/etc/hosts`` or ``/proc/self/cwd/x``) go to the
host as the resolved path. As a second line, every host open and chdir is
checked with fstatfs: a procfs file reached some other way (a bind mount) is
closed and refused. System calls that only create, remove or rename names
(``guard``) refuse any path that resolves into /proc with EACCES.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import stat as _stat
import struct
import time
from dataclasses import dataclass
from collections.abc import Callable
from typing import TYPE_CHECKING

from runtime.guest_memory import PAGE, PROT_EXEC, PROT_READ, PROT_WRITE
from runtime.host_libc import load_libc

if TYPE_CHECKING:
    from runtime.linux.kernel import LinuxKernel

__all__ = ["ProcView", "ProcPath", "HostPath", "HostFd", "ALLOWED_HOST_FILES", "PROC_SUPER_MAGIC"]

PROC_SUPER_MAGIC = 0x9FA0
AT_FDCWD = -100
MAX_SYMLINKS = 40
DIR, FILE, LINK = "dir", "file", "link"
_DT = {DIR: 4, FILE: 8, LINK: 10}
_FAKE_DEV = 0x17                    # st_dev of view nodes (procfs is an anonymous device)

# Per-process entries (also in task/<tid>/, which has no task/ itself).
PROCESS_FILES = ("auxv", "cmdline", "comm", "environ", "limits", "maps", "mounts", "smaps",
                 "stat", "statm", "status")
PROCESS_LINKS = ("cwd", "exe", "root")
PROCESS_DIRS = ("fd", "fdinfo")
# Names Linux has that would expose memory or kernel state of the host process.
DENIED = frozenset({"mem", "pagemap", "syscall", "stack", "wchan", "kcore", "kmem", "kallsyms",
                    "personality", "map_files", "numa_maps", "smaps_rollup", "io", "clear_refs",
                    "environ_host", "timers", "mountinfo", "mountstats", "ns", "attr",
                    "kpageflags", "kpagecount", "self_mem"})
# System-wide host files a guest may read (a snapshot at open).
ALLOWED_HOST_FILES: frozenset[tuple[str, ...]] = frozenset({
    ("cpuinfo",), ("meminfo",), ("stat",), ("uptime",), ("loadavg",), ("version",),
    ("filesystems",),
    ("sys", "kernel", "ostype"), ("sys", "kernel", "osrelease"), ("sys", "kernel", "version"),
    ("sys", "kernel", "pid_max"), ("sys", "kernel", "ngroups_max"),
    ("sys", "kernel", "random", "boot_id"), ("sys", "kernel", "random", "uuid"),
    ("sys", "vm", "overcommit_memory"), ("sys", "vm", "max_map_count"),
})
_ALLOWED_DIRS = frozenset(p[:i] for p in ALLOWED_HOST_FILES for i in range(1, len(p)))

_RLIMIT_ROWS = (("Max cpu time", "seconds"), ("Max file size", "bytes"),
                ("Max data size", "bytes"), ("Max stack size", "bytes"),
                ("Max core file size", "bytes"), ("Max resident set", "bytes"),
                ("Max processes", "processes"), ("Max open files", "files"),
                ("Max locked memory", "bytes"), ("Max address space", "bytes"),
                ("Max file locks", "locks"), ("Max pending signals", "signals"),
                ("Max msgqueue size", "bytes"), ("Max nice priority", ""),
                ("Max realtime priority", ""), ("Max realtime timeout", "us"))
_STATX = struct.Struct("<IIQIIIHHQQQQ")          # up to stx_attributes_mask (64 bytes)
_STATX_TS = struct.Struct("<qIi")
_STATX_BASIC_STATS = 0x7FF

_libc = load_libc()
_libc.fstatfs.argtypes = [ctypes.c_int, ctypes.c_void_p]
_libc.statfs.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]


@dataclass(frozen=True)
class ProcPath:
    """A node of the view: path components below /proc."""

    parts: tuple[str, ...]

    @property
    def text(self) -> bytes:
        return ("/proc/" + "/".join(self.parts)).rstrip("/").encode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class HostPath:
    """A host path; ``path`` None means the guest's own path never touches /proc."""

    path: bytes | None


@dataclass(frozen=True)
class HostFd:
    """``/proc/<pid>/fd/<n>`` followed: the host fd behind guest fd n."""

    fd: int


Resolved = ProcPath | HostPath | HostFd


def _err(code: int) -> OSError:
    return OSError(code, os.strerror(code))


def _is_procfs(ret: int, buf: ctypes.Array) -> bool:
    return ret == 0 and struct.unpack_from("<q", buf.raw)[0] == PROC_SUPER_MAGIC


def host_fd_is_procfs(fd: int) -> bool:
    buf = ctypes.create_string_buffer(128)
    return _is_procfs(_libc.fstatfs(fd, buf), buf)


class ProcView:
    """The guest's /proc, over the state of one ``LinuxKernel``."""

    def __init__(self, kernel: LinuxKernel) -> None:
        self.k = kernel
        self.cwd: tuple[str, ...] | None = None            # a virtual cwd inside /proc
        self._nodes: dict[tuple[int, int], tuple[str, ...]] = {}   # memfd (dev, ino) → node
        self.arg_range = (0, 0)
        self.env_range = (0, 0)
        self.auxv = b""
        self.start_stack = 0
        self._start_ticks = int(time.clock_gettime(time.CLOCK_BOOTTIME) * 100)

    # -- process facts --------------------------------------------------------
    def record_initial_stack(self, sp: int) -> None:
        """Remember argv/envp areas and the auxv of the stack the runtime built at ``sp``."""
        mem = self.k.mem
        argc = struct.unpack("<Q", mem.read(sp, 8))[0]
        argv = list(struct.unpack(f"<{argc}Q", mem.read(sp + 8, 8 * argc))) if argc else []
        p = sp + 8 * (argc + 2)
        envp = []
        while (v := struct.unpack("<Q", mem.read(p, 8))[0]) != 0:
            envp.append(v)
            p += 8
        p += 8
        aux_start = p
        while struct.unpack("<Q", mem.read(p, 8))[0] != 0:
            p += 16
        self.auxv = mem.read(aux_start, p + 16 - aux_start)

        def area(ptrs: list[int], default: int) -> tuple[int, int]:
            if not ptrs:
                return default, default
            return ptrs[0], ptrs[-1] + len(mem.read_cstring(ptrs[-1])) + 1

        self.arg_range = area(argv, envp[0] if envp else 0)
        self.env_range = area(envp, self.arg_range[1])
        self.start_stack = sp

    @property
    def pid(self) -> str:
        return str(self.k.pid)

    @property
    def tid(self) -> str:
        return str(self.k.tid)

    def _guest_fds(self) -> list[int]:
        return self.k.fds.guest_fds()

    # -- resolution -------------------------------------------------------------
    def node_of_host_fd(self, hfd: int) -> tuple[str, ...] | None:
        if not self._nodes:
            return None
        try:
            st = os.fstat(hfd)
        except OSError:
            return None
        return self._nodes.get((st.st_dev, st.st_ino))

    def node_of_dirfd(self, dirfd: int) -> tuple[str, ...] | None:
        """The view node a dirfd (or AT_FDCWD) stands for, or None for a host directory."""
        if dirfd == AT_FDCWD:
            return self.cwd
        return self.node_of_host_fd(self.k.fds.host(dirfd))

    def _host_base(self, dirfd: int) -> list[bytes] | None:
        """Components of the host directory a relative path starts from (None: unknown)."""
        try:
            if dirfd == AT_FDCWD:
                path = os.getcwdb()
            else:
                hfd = self.k.fds.host(dirfd)
                path = os.readlink(f"/proc/self/fd/{hfd}".encode())
                st, fst = os.stat(path), os.fstat(hfd)
                if (st.st_dev, st.st_ino) != (fst.st_dev, fst.st_ino):
                    return None
        except OSError:
            return None
        if not path.startswith(b"/"):
            return None
        return [c for c in path.split(b"/") if c]

    def resolve(self, dirfd: int, path: bytes, follow: bool) -> Resolved:
        """Walk ``path`` like the kernel's path lookup, entering the view at /proc."""
        if not path:
            raise _err(errno.ENOENT)
        touched = False
        cur: list[bytes] | tuple[str, ...]
        if path.startswith(b"/"):
            cur = []
        else:
            node = self.node_of_dirfd(dirfd)
            if node is not None:
                cur, touched = node, True
            else:
                base = self._host_base(dirfd)
                if base is None:
                    if b".." in path.split(b"/"):
                        raise _err(errno.ENOENT)
                    return HostPath(None)
                cur = base
        follow = follow or path.endswith(b"/")
        stack = [c for c in reversed(path.split(b"/")) if c not in (b"", b".")]
        links = 0
        while stack:
            comp = stack.pop()
            last = not stack
            if isinstance(cur, tuple):
                if comp == b"..":
                    cur = cur[:-1] if cur else []
                    continue
                child = cur + (comp.decode("utf-8", "surrogateescape"),)
                kind = self.kind(child)
                if kind == FILE and not last:
                    raise _err(errno.ENOTDIR)
                if kind != LINK or (last and not follow):
                    cur = child
                    continue
                links += 1
                if links > MAX_SYMLINKS:
                    raise _err(errno.ELOOP)
                target = self._follow(child)
                if isinstance(target, ProcPath):
                    cur = target.parts
                elif isinstance(target, HostFd):
                    if last:
                        return target
                    name = os.readlink(f"/proc/self/fd/{target.fd}".encode())
                    if not name.startswith(b"/"):
                        raise _err(errno.ENOTDIR)
                    cur = []
                    stack.extend(c for c in reversed(name.split(b"/")) if c not in (b"", b"."))
                else:
                    assert target.path is not None
                    cur = []
                    stack.extend(c for c in reversed(target.path.split(b"/")) if c not in (b"", b"."))
                continue
            if comp == b"..":
                cur = cur[:-1]
                continue
            if not cur and comp == b"proc":
                cur, touched = (), True
                continue
            cand = cur + [comp]
            if last and not follow:
                cur = cand
                continue
            try:
                target_b = os.readlink(b"/" + b"/".join(cand))
            except OSError as e:
                if e.errno == errno.EINVAL:          # not a symlink
                    cur = cand
                    continue
                # The host lookup fails here too, so nothing below it is /proc.
                if not touched:
                    return HostPath(None)
                rest = b"/".join(reversed(stack))
                return HostPath(b"/" + b"/".join(cand) + (b"/" + rest if rest else b""))
            links += 1
            if links > MAX_SYMLINKS:
                raise _err(errno.ELOOP)
            if target_b.startswith(b"/"):
                cur = []
            stack.extend(c for c in reversed(target_b.split(b"/")) if c not in (b"", b"."))
        if isinstance(cur, tuple):
            return ProcPath(cur)
        if not touched:
            return HostPath(None)
        return HostPath(b"/" + b"/".join(cur) + (b"/" if path.endswith(b"/") and cur else b""))

    # -- the tree -----------------------------------------------------------------
    def _pids(self) -> tuple[str, ...]:
        return (self.pid, self.tid)

    def kind(self, parts: tuple[str, ...]) -> str:
        """dir, file or link; OSError(ENOENT/EACCES/ENOTDIR) for what the view does not hold."""
        if not parts:
            return DIR
        head = parts[0]
        if head in self._pids():
            return self._process_kind(parts[1:], top=True)
        if len(parts) == 1 and head in ("self", "thread-self", "mounts"):
            return LINK
        if parts in ALLOWED_HOST_FILES:
            if not os.path.exists("/proc/" + "/".join(parts)):
                raise _err(errno.ENOENT)
            return FILE
        if parts in _ALLOWED_DIRS:
            return DIR
        if head in DENIED:
            raise _err(errno.EACCES)
        raise _err(errno.ENOENT)

    def _process_kind(self, rest: tuple[str, ...], top: bool) -> str:
        if not rest:
            return DIR
        leaf = rest[0]
        if len(rest) == 1:
            if leaf in PROCESS_FILES:
                return FILE
            if leaf in PROCESS_LINKS:
                return LINK
            if leaf in PROCESS_DIRS or (leaf == "task" and top):
                return DIR
        elif leaf == "task" and top:
            if rest[1] != self.tid:
                raise _err(errno.ENOENT)
            return self._process_kind(rest[2:], top=False)
        elif leaf in PROCESS_DIRS and len(rest) == 2:
            n = rest[1]
            if n.isdigit() and str(int(n)) == n and int(n) in self.k.fds:
                return LINK if leaf == "fd" else FILE
            raise _err(errno.ENOENT)
        elif leaf in PROCESS_FILES or leaf in PROCESS_LINKS:
            raise _err(errno.ENOTDIR)
        if leaf in DENIED:
            raise _err(errno.EACCES)
        raise _err(errno.ENOENT)

    def entries(self, parts: tuple[str, ...]) -> list[tuple[str, str]]:
        """(name, kind) of a directory node, without . and .."""
        if not parts:
            names = sorted({p[0] for p in ALLOWED_HOST_FILES if self._exists(p)} | {"mounts"})
            out = [(n, LINK if n == "mounts" else (DIR if (n,) in _ALLOWED_DIRS else FILE))
                   for n in names]
            return out + [("self", LINK), ("thread-self", LINK), (self.pid, DIR)]
        if parts[0] not in self._pids():
            n = len(parts)
            kids = sorted({p[n] for p in ALLOWED_HOST_FILES if p[:n] == parts and len(p) > n})
            return [(c, DIR if parts + (c,) in _ALLOWED_DIRS else FILE) for c in kids]
        rest = parts[1:]
        top = True
        if rest[:1] == ("task",):
            if len(rest) == 1:
                return [(self.tid, DIR)]
            rest, top = rest[2:], False
        if not rest:
            out = [(n, FILE) for n in PROCESS_FILES] + [(n, LINK) for n in PROCESS_LINKS]
            out += [(n, DIR) for n in PROCESS_DIRS] + ([("task", DIR)] if top else [])
            return sorted(out)
        return [(str(fd), LINK if rest[0] == "fd" else FILE) for fd in self._guest_fds()]

    @staticmethod
    def _exists(parts: tuple[str, ...]) -> bool:
        return os.path.exists("/proc/" + "/".join(parts))

    def _follow(self, parts: tuple[str, ...]) -> Resolved:
        """Where a link node points."""
        if parts == ("self",):
            return ProcPath((self.pid,))
        if parts == ("thread-self",):
            return ProcPath((self.pid, "task", self.tid))
        if parts == ("mounts",):
            return ProcPath((self.pid, "mounts"))
        leaf = parts[-1]
        if parts[-2] == "fd":
            hfd = self.k.fds.host(int(leaf))
            node = self.node_of_host_fd(hfd)
            return ProcPath(node) if node is not None else HostFd(hfd)
        if leaf == "exe":
            return HostPath(self.k.exe_path.encode())
        if leaf == "root":
            return HostPath(b"/")
        assert leaf == "cwd"
        return ProcPath(self.cwd) if self.cwd is not None else HostPath(os.getcwdb())

    def link_text(self, parts: tuple[str, ...]) -> bytes:
        """readlink of a link node."""
        if parts == ("self",):
            return self.pid.encode()
        if parts == ("thread-self",):
            return f"{self.pid}/task/{self.tid}".encode()
        if parts == ("mounts",):
            return b"self/mounts"
        target = self._follow(parts)
        if isinstance(target, ProcPath):
            return target.text
        if isinstance(target, HostFd):
            return os.readlink(f"/proc/self/fd/{target.fd}".encode())
        assert target.path is not None
        return target.path

    # -- content -------------------------------------------------------------------
    def content(self, parts: tuple[str, ...]) -> bytes:
        if parts in ALLOWED_HOST_FILES:
            with open("/proc/" + "/".join(parts), "rb") as f:
                return f.read(1 << 20)
        rest = parts[1:]
        if rest[:1] == ("task",):
            rest = rest[2:]
        if rest[0] == "fdinfo":
            return self._fdinfo(int(rest[1]))
        return getattr(self, "_file_" + rest[0])()

    def _file_maps(self) -> bytes:
        return "".join(self._map_header(m) for m in self.k.mem.mappings()).encode()

    def _map_name(self, m) -> str:
        if m.name == "[elf]":
            return self.k.exe_path
        return m.name if m.name.startswith("[") else ""

    def _map_header(self, m) -> str:
        perms = ("r" if m.prot & PROT_READ else "-") + ("w" if m.prot & PROT_WRITE else "-") \
            + ("x" if m.prot & PROT_EXEC else "-") + "p"
        line = f"{m.start:08x}-{m.end:08x} {perms} 00000000 00:00 0 "
        name = self._map_name(m)
        if name:
            line = line.ljust(72) + " " + name
        return line + "\n"

    def _resident(self, start: int, end: int) -> int:
        """Resident bytes of a guest range (mincore on its host pages)."""
        n = (end - start) // PAGE
        vec = (ctypes.c_ubyte * max(n, 1))()
        if _libc.mincore(ctypes.c_void_p(self.k.mem.host_address(start)), end - start, vec) != 0:
            return 0
        return sum(b & 1 for b in vec[:n]) * PAGE

    def _file_smaps(self) -> bytes:
        out = []
        for m in self.k.mem.mappings():
            size, rss = (m.end - m.start) >> 10, self._resident(m.start, m.end) >> 10
            anon = 0 if m.name == "[elf]" else rss
            rows = [("Size", size), ("KernelPageSize", PAGE >> 10), ("MMUPageSize", PAGE >> 10),
                    ("Rss", rss), ("Pss", rss), ("Pss_Dirty", anon), ("Shared_Clean", 0),
                    ("Shared_Dirty", 0), ("Private_Clean", rss - anon), ("Private_Dirty", anon),
                    ("Referenced", rss), ("Anonymous", anon), ("KSM", 0), ("LazyFree", 0),
                    ("AnonHugePages", 0), ("ShmemPmdMapped", 0), ("FilePmdMapped", 0),
                    ("Shared_Hugetlb", 0), ("Private_Hugetlb", 0), ("Swap", 0), ("SwapPss", 0),
                    ("Locked", 0)]
            flags = [f for bit, f in ((PROT_READ, "rd"), (PROT_WRITE, "wr"), (PROT_EXEC, "ex"))
                     if m.prot & bit] + ["mr", "mw", "me"]
            if m.name == "[stack]":
                flags.append("gd")
            if m.name != "[elf]":
                flags.append("ac")
            out.append(self._map_header(m) + "".join(f"{k + ':':<16}{v:8d} kB\n" for k, v in rows)
                       + "THPeligible:    0\n" + "VmFlags: " + " ".join(flags) + " \n")
        return "".join(out).encode()

    def _vm(self) -> dict[str, int]:
        """Sizes in bytes: size, rss, exe, data, stack."""
        out = {"size": 0, "rss": 0, "exe": 0, "data": 0, "stack": 0}
        for m in self.k.mem.mappings():
            n = m.end - m.start
            out["size"] += n
            out["rss"] += self._resident(m.start, m.end)
            if m.name == "[stack]":
                out["stack"] += n
            elif m.name == "[elf]" and m.prot & PROT_EXEC:
                out["exe"] += n
            elif m.prot & PROT_WRITE:
                out["data"] += n
        return out

    def _comm(self) -> str:
        return os.path.basename(self.k.exe_path)[:15]

    def _file_comm(self) -> bytes:
        return (self._comm() + "\n").encode()

    def _signal_masks(self) -> tuple[int, int]:
        ign = caught = 0
        for sig, act in self.k.sigactions.items():
            if act[0] == 1:
                ign |= 1 << (sig - 1)
            elif act[0] != 0:
                caught |= 1 << (sig - 1)
        return ign, caught

    def _file_status(self) -> bytes:
        vm = self._vm()
        ign, caught = self._signal_masks()
        umask = os.umask(0)
        os.umask(umask)
        uid, euid, gid, egid = os.getuid(), os.geteuid(), os.getgid(), os.getegid()
        cpus = sorted(os.sched_getaffinity(0))
        kb = {k: v >> 10 for k, v in vm.items()}
        lines = [
            f"Name:\t{self._comm()}", f"Umask:\t{umask:04o}", "State:\tR (running)",
            f"Tgid:\t{self.pid}", "Ngid:\t0", f"Pid:\t{self.tid}", f"PPid:\t{os.getppid()}",
            "TracerPid:\t0", f"Uid:\t{uid}\t{euid}\t{euid}\t{euid}",
            f"Gid:\t{gid}\t{egid}\t{egid}\t{egid}", f"FDSize:\t{self.k.fds.limit}", "Groups:\t",
            f"VmPeak:\t{kb['size']:8d} kB", f"VmSize:\t{kb['size']:8d} kB", "VmLck:\t       0 kB",
            "VmPin:\t       0 kB", f"VmHWM:\t{kb['rss']:8d} kB", f"VmRSS:\t{kb['rss']:8d} kB",
            f"VmData:\t{kb['data']:8d} kB", f"VmStk:\t{kb['stack']:8d} kB",
            f"VmExe:\t{kb['exe']:8d} kB", "VmLib:\t       0 kB", "VmPTE:\t       0 kB",
            "VmSwap:\t       0 kB", "Threads:\t1", "SigQ:\t0/0",
            f"SigPnd:\t{self.k.pending_signals:016x}", "ShdPnd:\t0000000000000000",
            f"SigBlk:\t{self.k.sigmask:016x}", f"SigIgn:\t{ign:016x}", f"SigCgt:\t{caught:016x}",
            "CapInh:\t0000000000000000", "CapPrm:\t0000000000000000", "CapEff:\t0000000000000000",
            "CapBnd:\t0000000000000000", "CapAmb:\t0000000000000000", "NoNewPrivs:\t1",
            "Seccomp:\t0", f"Cpus_allowed_list:\t{','.join(map(str, cpus))}",
            "voluntary_ctxt_switches:\t0", "nonvoluntary_ctxt_switches:\t0",
        ]
        return ("\n".join(lines) + "\n").encode()

    def _elf_range(self, want_exec: bool) -> tuple[int, int]:
        ms = [m for m in self.k.mem.mappings()
              if m.name == "[elf]" and bool(m.prot & PROT_EXEC) == want_exec]
        return (ms[0].start, ms[-1].end) if ms else (0, 0)

    def _file_stat(self) -> bytes:
        vm = self._vm()
        ign, caught = self._signal_masks()
        t = os.times()
        code, data = self._elf_range(True), self._elf_range(False)
        rss_lim = self.k.rlimits.get(5, ((1 << 64) - 1, 0))[0]
        fields = [
            "R", os.getppid(), os.getpgid(0), os.getsid(0), 0, -1, 0x400000, 0, 0, 0, 0,
            int(t.user * 100), int(t.system * 100), 0, 0, 20, 0, 1, 0, self._start_ticks,
            vm["size"], vm["rss"] // PAGE, rss_lim, code[0], code[1], self.start_stack, 0, 0,
            self.k.pending_signals, self.k.sigmask, ign, caught, 0, 0, 0, 17, 0, 0, 0, 0, 0, 0,
            data[0], data[1], self.k.brk_start, *self.arg_range, *self.env_range, 0,
        ]
        return (f"{self.pid} ({self._comm()}) " + " ".join(map(str, fields)) + "\n").encode()

    def _file_statm(self) -> bytes:
        vm = self._vm()
        return (f"{vm['size'] // PAGE} {vm['rss'] // PAGE} 0 {vm['exe'] // PAGE} 0 "
                f"{(vm['data'] + vm['stack']) // PAGE} 0\n").encode()

    def _guest_bytes(self, rng: tuple[int, int]) -> bytes:
        start, end = rng
        try:
            return self.k.mem.read(start, end - start)
        except Exception:                       # unmapped by the guest since: like Linux, nothing
            return b""

    def _file_cmdline(self) -> bytes:
        return self._guest_bytes(self.arg_range)

    def _file_environ(self) -> bytes:
        return self._guest_bytes(self.env_range)

    def _file_auxv(self) -> bytes:
        return self.auxv

    def _file_limits(self) -> bytes:
        def val(v: int) -> str:
            return "unlimited" if v >= (1 << 63) else str(v)

        rows = [f"{'Limit':<25} {'Soft Limit':<20} {'Hard Limit':<20} {'Units':<10} "]
        for res, (name, unit) in enumerate(_RLIMIT_ROWS):
            cur, mx = self.k.rlimits.get(res, ((1 << 64) - 1, (1 << 64) - 1))
            rows.append(f"{name:<25} {val(cur):<20} {val(mx):<20} {unit:<10} " if unit
                        else f"{name:<25} {val(cur):<20} {val(mx):<20} ")
        return ("\n".join(rows) + "\n").encode()

    def _file_mounts(self) -> bytes:
        return b"/dev/root / ext4 rw,relatime 0 0\nproc /proc proc rw,nosuid,nodev,noexec,relatime 0 0\n"

    def _fdinfo(self, gfd: int) -> bytes:
        hfd = self.k.fds.host(gfd)
        try:
            pos = os.lseek(hfd, 0, os.SEEK_CUR)
        except OSError:
            pos = 0
        flags = self.k.abi.open_flags_from_host(fcntl.fcntl(hfd, fcntl.F_GETFL)) & ~0o2000000
        if self.k.fds.cloexec(gfd):
            flags |= 0o2000000
        node = self.node_of_host_fd(hfd)
        ino = self._ino(node) if node is not None else os.fstat(hfd).st_ino
        return f"pos:\t{pos}\nflags:\t0{flags:o}\nmnt_id:\t0\nino:\t{ino}\n".encode()

    # -- metadata -----------------------------------------------------------------
    def _ino(self, parts: tuple[str, ...]) -> int:
        h = 1469598103934665603
        for b in "/".join(parts).encode("utf-8", "surrogateescape"):
            h = ((h ^ b) * 1099511628211) & 0xFFFFFFFF
        return h | 1

    def stat_node(self, parts: tuple[str, ...]) -> os.stat_result:
        kind = self.kind(parts)
        mode = {DIR: _stat.S_IFDIR | 0o555, FILE: _stat.S_IFREG | 0o444,
                LINK: _stat.S_IFLNK | 0o777}[kind]
        if kind == FILE and parts[-1] in ("environ", "auxv"):
            mode = _stat.S_IFREG | 0o400
        t = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME) + self._start_ticks / 100
        ns = int(t * 1e9)
        nlink = 2 + sum(1 for _, k in self.entries(parts) if k == DIR) if kind == DIR else 1
        return os.stat_result(
            (mode, self._ino(parts), _FAKE_DEV, nlink, os.getuid(), os.getgid(), 0,
             int(t), int(t), int(t)),
            {"st_atime_ns": ns, "st_mtime_ns": ns, "st_ctime_ns": ns, "st_blksize": 1024,
             "st_blocks": 0, "st_rdev": 0})

    @staticmethod
    def pack_statx(st: os.stat_result) -> bytes:
        """A struct statx (ISA-neutral) for ``st``."""
        dev = st.st_dev
        head = _STATX.pack(_STATX_BASIC_STATS, st.st_blksize, 0, st.st_nlink, st.st_uid,
                           st.st_gid, st.st_mode, 0, st.st_ino, st.st_size, st.st_blocks, 0)

        def ts(ns: int) -> bytes:
            return _STATX_TS.pack(ns // 10**9, ns % 10**9, 0)

        times = ts(st.st_atime_ns) + ts(st.st_ctime_ns) + ts(st.st_ctime_ns) + ts(st.st_mtime_ns)
        devs = struct.pack("<IIII", os.major(st.st_rdev), os.minor(st.st_rdev),
                           os.major(dev), os.minor(dev))
        return (head + times + devs).ljust(256, b"\0")

    # -- checks on host objects ---------------------------------------------------
    def check_host_fd(self, hfd: int) -> int:
        """A host fd the guest is about to get: never one on a procfs (closed, EACCES)."""
        if host_fd_is_procfs(hfd):
            os.close(hfd)
            raise _err(errno.EACCES)
        return hfd

    @staticmethod
    def _check_host_stat(st: os.stat_result) -> os.stat_result:
        if st.st_dev == os.stat("/proc").st_dev:
            raise _err(errno.EACCES)
        return st

    # -- system call hooks ----------------------------------------------------------
    def _memfd(self, parts: tuple[str, ...], data: bytes) -> int:
        m = os.memfd_create("aotc-proc", os.MFD_CLOEXEC)
        try:
            os.write(m, data)
            # A read-only open file description: write() is EBADF, as on Linux.
            hfd = os.open(f"/proc/self/fd/{m}", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            os.close(m)
        st = os.fstat(hfd)
        self._nodes[(st.st_dev, st.st_ino)] = parts
        return hfd

    def open(self, dirfd: int, path: bytes, hflags: int, mode: int) -> int | None:
        """openat with host open flags: a new host fd, or None to open ``path`` on the host."""
        r = self.resolve(dirfd, path, follow=not hflags & os.O_NOFOLLOW)
        if isinstance(r, HostPath):
            if r.path is None:
                return None
            return self.check_host_fd(os.open(r.path, hflags, mode))
        if isinstance(r, HostFd):
            return self.check_host_fd(os.open(f"/proc/self/fd/{r.fd}", hflags & ~os.O_NOFOLLOW, mode))
        kind = self.kind(r.parts)
        if kind == LINK:
            raise _err(errno.ELOOP)
        if hflags & os.O_CREAT and hflags & os.O_EXCL:
            raise _err(errno.EEXIST)
        writing = (hflags & os.O_ACCMODE) != os.O_RDONLY or hflags & os.O_TRUNC
        if kind == DIR:
            if writing:
                raise _err(errno.EISDIR)
            return self._memfd(r.parts, b"")
        if hflags & os.O_DIRECTORY:
            raise _err(errno.ENOTDIR)
        if writing:
            raise _err(errno.EACCES)
        return self._memfd(r.parts, self.content(r.parts))

    def stat(self, dirfd: int, path: bytes, follow: bool) -> os.stat_result | None:
        """stat of a path that touches /proc (None: stat ``path`` on the host)."""
        r = self.resolve(dirfd, path, follow)
        if isinstance(r, ProcPath):
            return self.stat_node(r.parts)
        if isinstance(r, HostFd):
            return os.fstat(r.fd)
        if r.path is None:
            return None
        return self._check_host_stat(os.stat(r.path, follow_symlinks=follow))

    def stat_empty(self, dirfd: int) -> os.stat_result | None:
        """stat of a dirfd itself (AT_EMPTY_PATH) when it is a view node."""
        node = self.node_of_dirfd(dirfd)
        return None if node is None else self.stat_node(node)

    def fstat(self, hfd: int) -> os.stat_result | None:
        node = self.node_of_host_fd(hfd)
        return None if node is None else self.stat_node(node)

    def readlink(self, dirfd: int, path: bytes) -> bytes | None:
        r = self.resolve(dirfd, path, follow=False)
        if isinstance(r, ProcPath):
            if self.kind(r.parts) != LINK:
                raise _err(errno.EINVAL)
            return self.link_text(r.parts)
        if isinstance(r, HostFd) or r.path is None:
            return None
        return os.readlink(r.path)

    def access(self, dirfd: int, path: bytes, mode: int, follow: bool) -> bool:
        """faccessat for paths that touch /proc: True when handled (OSError on refusal)."""
        r = self.resolve(dirfd, path, follow)
        if isinstance(r, ProcPath):
            st = self.stat_node(r.parts)
            if mode & os.W_OK or (mode & os.X_OK and not _stat.S_ISDIR(st.st_mode)):
                raise _err(errno.EACCES)
            return True
        if isinstance(r, HostPath) and r.path is None:
            return False
        if isinstance(r, HostFd):
            os.fstat(r.fd)
            target = f"/proc/self/fd/{r.fd}".encode()
        else:
            assert r.path is not None
            self._check_host_stat(os.stat(r.path, follow_symlinks=follow))
            target = r.path
        if not os.access(target, mode, follow_symlinks=follow):
            raise _err(errno.EACCES)
        return True

    def chdir(self, path: bytes) -> None:
        r = self.resolve(AT_FDCWD, path, follow=True)
        if isinstance(r, ProcPath):
            if self.kind(r.parts) != DIR:
                raise _err(errno.ENOTDIR)
            self.cwd = r.parts
        elif isinstance(r, HostFd):
            self.fchdir(r.fd)
        else:
            self._host_chdir(lambda: os.chdir(path if r.path is None else r.path))

    def fchdir(self, hfd: int) -> None:
        node = self.node_of_host_fd(hfd)
        if node is None:
            self._host_chdir(lambda: os.fchdir(hfd))
            return
        if self.kind(node) != DIR:
            raise _err(errno.ENOTDIR)
        self.cwd = node

    def _host_chdir(self, change: Callable[[], None]) -> None:
        """Change the host cwd; a procfs directory reached some other way is refused."""
        old = os.open(".", os.O_PATH | os.O_CLOEXEC)
        try:
            change()
            buf = ctypes.create_string_buffer(128)
            if _is_procfs(_libc.statfs(b".", buf), buf):
                os.fchdir(old)
                raise _err(errno.EACCES)
            self.cwd = None
        finally:
            os.close(old)

    def getcwd(self) -> bytes:
        return os.getcwdb() if self.cwd is None else ProcPath(self.cwd).text

    def getdents64(self, hfd: int, count: int) -> bytes | None:
        """linux_dirent64 records of a view directory fd (None: a host fd)."""
        node = self.node_of_host_fd(hfd)
        if node is None:
            return None
        if self.kind(node) != DIR:
            raise _err(errno.ENOTDIR)
        ents = [(".", DIR), ("..", DIR)] + self.entries(node)
        pos = os.lseek(hfd, 0, os.SEEK_CUR)
        out = bytearray()
        i = pos
        while i < len(ents):
            name, kind = ents[i]
            raw = name.encode("utf-8", "surrogateescape")
            reclen = (19 + len(raw) + 1 + 7) & ~7
            if len(out) + reclen > count:
                if not out:
                    raise _err(errno.EINVAL)
                break
            ino = self._ino(node if name == "." else node[:-1] if name == ".." else node + (name,))
            out += struct.pack("<QqHB", ino, i + 1, reclen, _DT[kind]) + raw
            out += bytes(reclen - 19 - len(raw))
            i += 1
        os.lseek(hfd, i, os.SEEK_SET)
        return bytes(out)

    def guard(self, dirfd: int, path: bytes) -> None:
        """For calls that create, remove or rename names: EACCES for anything in /proc."""
        if not path:
            if self.node_of_dirfd(dirfd) is not None:
                raise _err(errno.EACCES)
            return
        r = self.resolve(dirfd, path, follow=False)
        if not (isinstance(r, HostPath) and r.path is None):
            raise _err(errno.EACCES)
