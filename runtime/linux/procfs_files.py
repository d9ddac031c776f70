"""The content of the guest's /proc files (see runtime/linux/procfs.py).

``ProcFiles`` is the half of ``ProcView`` that writes files: maps and smaps
from the guest's mappings, status/stat/statm from guest state (sizes, signal
masks, the initial stack's addresses), cmdline and environ from the argv and
envp areas in guest memory (as Linux reads them from the process), auxv as
the runtime built it, limits from the guest's rlimits, fdinfo of guest fds,
and the allowlisted host files as snapshots.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
from typing import TYPE_CHECKING

from runtime.guest_memory import PAGE, PROT_EXEC, PROT_READ, PROT_WRITE, Mapping
from runtime.host_libc import load_libc

if TYPE_CHECKING:
    from runtime.linux.kernel import LinuxKernel

__all__ = ["ProcFiles", "ALLOWED_HOST_FILES"]

# System-wide host files a guest may read (a snapshot at open).
ALLOWED_HOST_FILES: frozenset[tuple[str, ...]] = frozenset({
    ("cpuinfo",), ("meminfo",), ("stat",), ("uptime",), ("loadavg",), ("version",),
    ("filesystems",),
    ("sys", "kernel", "ostype"), ("sys", "kernel", "osrelease"), ("sys", "kernel", "version"),
    ("sys", "kernel", "pid_max"), ("sys", "kernel", "ngroups_max"),
    ("sys", "kernel", "random", "boot_id"), ("sys", "kernel", "random", "uuid"),
    ("sys", "vm", "overcommit_memory"), ("sys", "vm", "max_map_count"),
})
_RLIMIT_ROWS = (("Max cpu time", "seconds"), ("Max file size", "bytes"),
                ("Max data size", "bytes"), ("Max stack size", "bytes"),
                ("Max core file size", "bytes"), ("Max resident set", "bytes"),
                ("Max processes", "processes"), ("Max open files", "files"),
                ("Max locked memory", "bytes"), ("Max address space", "bytes"),
                ("Max file locks", "locks"), ("Max pending signals", "signals"),
                ("Max msgqueue size", "bytes"), ("Max nice priority", ""),
                ("Max realtime priority", ""), ("Max realtime timeout", "us"))

_libc = load_libc()
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]


class ProcFiles:
    """File contents over ``self.k`` (the kernel) and the initial stack facts."""

    k: LinuxKernel
    arg_range: tuple[int, int]
    env_range: tuple[int, int]
    auxv: bytes
    start_stack: int
    _start_ticks: int

    pid: str

    def node_of_host_fd(self, hfd: int) -> tuple[str, ...] | None:
        raise NotImplementedError

    def _ino(self, parts: tuple[str, ...]) -> int:
        raise NotImplementedError

    # -- content -------------------------------------------------------------------
    def content(self, parts: tuple[str, ...]) -> bytes:
        if parts == ("cpuinfo",) and self.k.abi.name == "riscv64":
            return self._riscv_cpuinfo()
        if parts in ALLOWED_HOST_FILES:
            with open("/proc/" + "/".join(parts), "rb") as f:
                return f.read(1 << 20)
        rest = parts[1:]
        if rest[:1] == ("task",):
            rest = rest[2:]
        if rest[0] == "fdinfo":
            return self._fdinfo(int(rest[1]))
        return getattr(self, "_file_" + rest[0])()

    def _riscv_cpuinfo(self) -> bytes:
        """/proc/cpuinfo as riscv64 Linux prints it (arch/riscv/kernel/cpu.c),
        for the CPUs the guest sees and the ISA it is told it has (the
        host's x86 flags would mean nothing to a riscv64 program parsing it)."""
        from aotc.isa.riscv64.extensions import isa_string

        isa = isa_string(self.k.isa_extensions)
        return "".join(
            f"processor\t: {i}\nhart\t\t: {i}\nisa\t\t: {isa}\nmmu\t\t: sv39\n"
            f"mvendorid\t: 0x0\nmarchid\t\t: 0x0\nmimpid\t\t: 0x0\nhart isa\t: {isa}\n\n"
            for i in range(self.k.ncpus)).encode()

    def _file_maps(self) -> bytes:
        return "".join(self._map_header(m) for m in self.k.mem.mappings()).encode()

    def _map_name(self, m: Mapping) -> str:
        if m.name == "[elf]":
            return self.k.exe_path
        return m.name if m.name.startswith("[") else ""

    def _map_header(self, m: Mapping) -> str:
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
