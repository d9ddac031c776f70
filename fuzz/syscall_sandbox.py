"""The sandbox the syscall fuzzer's child runs in (see fuzz/README.md, "syscall layer").

The parent starts the child under ``unshare --mount --pid --net --ipc --uts
--fork --kill-child`` (plus ``--map-root-user`` when not root), so the child is
pid 1 of a new PID namespace: no other host process is visible to it, let
alone signalable.  Inside, ``enter`` then:

* makes every mount private (nothing propagates back to the host);
* mounts a size-limited tmpfs on the work directory (the guest's cwd);
* replaces ``/dev`` by a tmpfs holding only null, zero, full, random and
  urandom (bind mounts of the host nodes), so no path reaches a disk or
  other device, even for writing (a read-only mount does not stop writes
  to device nodes);
* mounts a fresh ``/proc`` for the new PID namespace;
* makes every mount read-only, recursively (``mount_setattr``), and then the
  work directory alone writable again (nosuid, nodev, noexec);
* caps file sizes (``RLIMIT_FSIZE``, with ``SIGXFSZ`` ignored: ``EFBIG``);
* drops every capability but the four file-permission ones it needs to
  clean up after the guest (``CAP_CHOWN``, ``CAP_DAC_OVERRIDE``,
  ``CAP_DAC_READ_SEARCH``, ``CAP_FOWNER``): no mount, kill, ptrace, raw I/O
  or reboot, and ``no_new_privs``.

So even a path-handling bug in the kernel emulation cannot write outside the
work directory.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import struct
from pathlib import Path

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 0x1000, 0x2000, 0x4000, 0x40000
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC = 0x1, 0x2, 0x4, 0x8
AT_FDCWD, AT_RECURSIVE = -100, 0x8000
NR_MOUNT_SETATTR, NR_CAPSET = 442, 126      # x86_64 (the host)
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 24, 38
KEEP_CAPS = (0, 1, 2, 3)                    # CHOWN, DAC_OVERRIDE, DAC_READ_SEARCH, FOWNER
DEV_NODES = ("null", "zero", "full", "random", "urandom")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.syscall.restype = ctypes.c_long


class SandboxError(RuntimeError):
    """The sandbox could not be set up: the fuzzer refuses to run unsandboxed."""


def _mount(src: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = (lambda s: None if s is None else s.encode())
    if _libc.mount(enc(src), enc(target), enc(fstype), flags, enc(data)) != 0:
        err = ctypes.get_errno()
        raise SandboxError(f"mount {src} on {target} ({fstype}, {flags:#x}): {os.strerror(err)}")


def _setattr(path: str, set_: int, clr: int, recursive: bool) -> None:
    attr = ctypes.create_string_buffer(struct.pack("<QQQQ", set_, clr, 0, 0))
    ret = _libc.syscall(NR_MOUNT_SETATTR, ctypes.c_int(AT_FDCWD), ctypes.c_char_p(path.encode()),
                        ctypes.c_uint(AT_RECURSIVE if recursive else 0), attr, ctypes.c_size_t(32))
    if ret != 0:
        raise SandboxError(f"mount_setattr {path}: {os.strerror(ctypes.get_errno())}")


def unshare_prefix() -> list[str]:
    """The command prefix that runs the child in its own namespaces."""
    prefix = ["unshare", "--mount", "--pid", "--net", "--ipc", "--uts", "--fork", "--kill-child"]
    if os.geteuid() != 0:
        prefix.append("--map-root-user")
    return prefix


def enter(work: Path, size_mb: int = 64, fsize_mb: int = 64) -> None:
    """Confine this process (pid 1 of fresh namespaces) as the module docstring says."""
    if os.getpid() != 1:
        raise SandboxError("not pid 1 of a new PID namespace (run through unshare_prefix())")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", str(work), "tmpfs", MS_NOSUID | MS_NODEV, f"size={size_mb}m,mode=0755")
    stage = work / ".dev"
    stage.mkdir()
    _mount("tmpfs", str(stage), "tmpfs", MS_NOSUID, "size=64k,mode=0755")
    for name in DEV_NODES:
        (stage / name).touch()
        _mount(f"/dev/{name}", str(stage / name), None, MS_BIND)
    _mount(str(stage), "/dev", None, MS_MOVE)
    stage.rmdir()
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _setattr("/", MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0, recursive=True)
    _setattr(str(work), MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, MOUNT_ATTR_RDONLY,
             recursive=False)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    limit = fsize_mb << 20
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    drop_capabilities()
    check(work)


def drop_capabilities() -> None:
    """Keep only KEEP_CAPS (effective and permitted), empty the bounding set."""
    for cap in range(64):
        if cap not in KEEP_CAPS and _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 \
                and ctypes.get_errno() != 22:               # EINVAL: no such capability
            raise SandboxError(f"cannot drop capability {cap}: {os.strerror(ctypes.get_errno())}")
    keep = sum(1 << c for c in KEEP_CAPS)
    header = ctypes.create_string_buffer(struct.pack("<Ii", 0x20080522, 0))
    data = ctypes.create_string_buffer(struct.pack("<6I", keep, keep, 0, 0, 0, 0))
    if _libc.syscall(NR_CAPSET, header, data) != 0:
        raise SandboxError(f"capset: {os.strerror(ctypes.get_errno())}")
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise SandboxError(f"no_new_privs: {os.strerror(ctypes.get_errno())}")


def check(work: Path) -> None:
    """Refuse to go on unless writes outside ``work`` really fail."""
    for probe in ("/tmp", str(Path(__file__).resolve().parent), "/", str(work.parent), "/dev"):
        try:
            fd = os.open(os.path.join(probe, f".aotc-sandbox-probe-{os.getpid()}"),
                         os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
        except OSError:
            continue
        os.close(fd)
        os.unlink(os.path.join(probe, f".aotc-sandbox-probe-{os.getpid()}"))
        raise SandboxError(f"{probe} is writable inside the sandbox")
    if len([p for p in os.listdir("/proc") if p.isdigit()]) > 2:
        raise SandboxError("other processes are visible in /proc")
    try:
        _mount("tmpfs", str(work), "tmpfs", 0)
    except SandboxError:
        pass
    else:
        raise SandboxError("the sandbox can still mount")
