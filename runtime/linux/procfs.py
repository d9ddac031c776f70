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
import os
import stat as _stat
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runtime.host_libc import load_libc
from runtime.linux.procfs_files import ALLOWED_HOST_FILES, ProcFiles

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
_ALLOWED_DIRS = frozenset(p[:i] for p in ALLOWED_HOST_FILES for i in range(1, len(p)))

_STATX = struct.Struct("<IIQIIIHHQQQQ")          # up to stx_attributes_mask (64 bytes)
_STATX_TS = struct.Struct("<qIi")
_STATX_BASIC_STATS = 0x7FF

_libc = load_libc()
_libc.fstatfs.argtypes = [ctypes.c_int, ctypes.c_void_p]
_libc.statfs.argtypes = [ctypes.c_char_p, ctypes.c_void_p]


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


class ProcView(ProcFiles):
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
