"""The guest's /proc (runtime/linux/procfs.py): unit tests on the view and the
kernel hooks, and an end-to-end walk of /proc by samples/src/procwalk.c
under every engine that finds nothing of the host."""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import BIN, ROOT
from runtime.guest_memory import PROT_READ, PROT_WRITE, GuestMemory
from runtime.linux import AARCH64_ABI, RISCV64_ABI, X86_64_ABI
from runtime.linux.kernel import LinuxKernel
from runtime.linux.procfs import HostPath, ProcPath, host_fd_is_procfs
from runtime.process import AuxvInfo, build_initial_stack

from test_syscalls import AT_FDCWD, BUF, BUF_SIZE, mem  # noqa: F401  (the scratch-page fixture)


@pytest.fixture
def k(mem, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    kern = LinuxKernel(mem, RISCV64_ABI, brk_start=0x20_0000, exe_path="/opt/guest/prog")
    yield kern
    kern.close()


class Guest:
    """Syscalls with guest strings and buffers in the scratch range."""

    def __init__(self, kern: LinuxKernel) -> None:
        self.k = kern
        self.next = BUF

    def alloc(self, size: int) -> int:
        addr = self.next
        self.next = (self.next + size + 15) & ~15
        assert self.next <= BUF + BUF_SIZE
        return addr

    def s(self, text: str | bytes) -> int:
        data = (text.encode() if isinstance(text, str) else text) + b"\0"
        addr = self.alloc(len(data))
        self.k.mem.write(addr, data)
        return addr

    def call(self, name: str, *args: int) -> int:
        return self.k.syscall(self.k.abi.numbers[name], [a & (1 << 64) - 1 for a in args])

    def open(self, path: str, flags: int = 0, dirfd: int = AT_FDCWD) -> int:
        return self.call("openat", dirfd, self.s(path), flags, 0)

    def read_all(self, fd: int) -> bytes:
        out = b""
        buf = self.alloc(4096)
        while (n := self.call("read", fd, buf, 4096)) > 0:
            out += self.k.mem.read(buf, n)
        assert n == 0, n
        self.next = buf
        return out

    def slurp(self, path: str, dirfd: int = AT_FDCWD) -> bytes:
        fd = self.open(path, 0, dirfd)
        assert fd >= 0, (path, fd)
        try:
            return self.read_all(fd)
        finally:
            self.call("close", fd)

    def readlink(self, path: str, dirfd: int = AT_FDCWD) -> bytes | int:
        buf = self.alloc(4096)
        n = self.call("readlinkat", dirfd, self.s(path), buf, 4096)
        return n if n < 0 else self.k.mem.read(buf, n)

    def names(self, fd: int) -> list[str]:
        buf = self.alloc(4096)
        out = []
        while (n := self.call("getdents64", fd, buf, 4096)) > 0:
            raw = self.k.mem.read(buf, n)
            off = 0
            while off < n:
                reclen = struct.unpack_from("<H", raw, off + 16)[0]
                out.append(raw[off + 19:off + reclen].split(b"\0")[0].decode())
                off += reclen
        assert n == 0, n
        return out


@pytest.fixture
def g(k):
    return Guest(k)


# ------------------------------------------------------------ resolution

def test_spellings_resolve_into_the_view(k, tmp_path):
    pid = str(k.pid)
    view = k.procfs
    want = ProcPath((pid, "maps"))
    for spelling in ("/proc/self/maps", "/proc//self/maps", "/proc/./self/maps",
                     "/proc/self/../self/maps", f"/proc/{pid}/maps", "//proc///self//maps",
                     "/proc/self/root/proc/self/maps", "/proc/self/task/../maps"):
        assert view.resolve(AT_FDCWD, spelling.encode(), True) == want, spelling
    assert view.resolve(AT_FDCWD, b"/proc/thread-self/maps", True) == \
        ProcPath((pid, "task", str(k.tid), "maps"))
    (tmp_path / "ps").symlink_to("/proc/self")
    (tmp_path / "p").symlink_to("/proc/")
    (tmp_path / "chain").symlink_to(tmp_path / "ps")
    for rel in (b"ps/maps", b"p/self/maps", b"chain/maps", b"./chain/../self/maps"):
        assert view.resolve(AT_FDCWD, rel, True) == want, rel
    depth = len(tmp_path.parts) - 1
    assert view.resolve(AT_FDCWD, b"../" * depth + b"proc/self/maps", True) == want
    # Links end where they point; not followed, they are the link itself.
    assert view.resolve(AT_FDCWD, b"/proc/self", False) == ProcPath(("self",))
    assert view.resolve(AT_FDCWD, b"/proc/self/exe", True) == HostPath(b"/opt/guest/prog")
    assert view.resolve(AT_FDCWD, b"/proc/self/root/etc/hostname", True) == \
        HostPath(b"/etc/hostname")
    assert view.resolve(AT_FDCWD, b"/proc/self/cwd", True) == HostPath(os.fsencode(tmp_path))
    # Paths that never reach /proc go to the host untouched.
    (tmp_path / "f").write_text("x")
    for plain in (b"f", str(tmp_path / "f").encode(), b"/etc/../etc/hostname", b"missing/x"):
        assert view.resolve(AT_FDCWD, plain, True) == HostPath(None), plain


def test_other_pids_and_dangerous_files_are_refused(k, g):
    pid = k.pid
    for path in ("/proc/self/mem", f"/proc/{pid}/mem", "/proc/thread-self/mem",
                 "/proc/self/pagemap", "/proc/self/syscall", "/proc/self/stack",
                 "/proc/self/task/../mem", "/proc/kcore"):
        assert g.open(path) == -errno.EACCES, path
        assert g.open(path, os.O_RDWR) == -errno.EACCES, path
    for path in ("/proc/1/maps", f"/proc/{os.getppid()}/maps", f"/proc/{pid + 1}/status",
                 "/proc/self/nonexistent", "/proc/sysrq-trigger", "/proc/self/net/tcp",
                 f"/proc/self/fd/{max(k.fds.guest_fds()) + 5}"):
        assert g.open(path) == -errno.ENOENT, path


def test_view_files_are_read_only(k, g):
    assert g.open("/proc/self/maps", os.O_RDWR) == -errno.EACCES
    assert g.open("/proc/self/status", os.O_WRONLY | os.O_TRUNC) == -errno.EACCES
    assert g.open("/proc/self", os.O_RDWR) == -errno.EISDIR
    fd = g.open("/proc/self/status")
    assert g.call("write", fd, g.s("x"), 1) == -errno.EBADF
    assert g.call("unlinkat", AT_FDCWD, g.s("/proc/self/status"), 0) == -errno.EACCES
    assert g.call("mkdirat", AT_FDCWD, g.s("/proc/self/x"), 0o755) == -errno.ENOENT   # as Linux
    assert g.call("renameat2", AT_FDCWD, g.s("/proc/self/comm"), AT_FDCWD, g.s("y"), 0) == -errno.EACCES


def test_cpuinfo_of_a_riscv64_guest_is_riscv64s(k, g):
    """/proc/cpuinfo as riscv64 Linux prints it: one block per CPU the guest
    sees, each with the advertised ISA string; nothing of the host's CPU."""
    text = g.slurp("/proc/cpuinfo").decode()
    blocks = [b for b in text.split("\n\n") if b]
    assert len(blocks) == len(os.sched_getaffinity(0))
    for i, block in enumerate(blocks):
        fields = dict(line.split("\t: ", 1) for line in block.splitlines())
        fields = {name.strip(): value for name, value in fields.items()}
        assert fields["processor"] == fields["hart"] == str(i)
        assert fields["mmu"] == "sv39"
        isa = fields["isa"]
        assert isa.startswith("rv64imafdc_") and fields["hart isa"] == isa
        assert {"zicsr", "zifencei", "zba", "zbb", "zbs", "zicond"} <= set(isa.split("_")[1:])
    with open("/proc/cpuinfo") as host:
        host_model = next((line for line in host if line.startswith("model name")), None)
    assert "vendor_id" not in text and "flags" not in text
    if host_model:
        assert host_model.split(":", 1)[1].strip() not in text
    k.isa_extensions = frozenset({"I", "M", "A", "F", "D", "C", "Zicsr", "Zifencei"})
    assert "isa\t\t: rv64imafdc_zicsr_zifencei\n" in g.slurp("/proc/cpuinfo").decode()


def test_maps_and_smaps_show_guest_ranges_only(k, g, mem):
    maps = g.slurp("/proc/self/maps").decode()
    ranges = [tuple(int(x, 16) for x in line.split()[0].split("-")) for line in maps.splitlines()]
    assert ranges == [(m.start, m.end) for m in mem.mappings()]
    assert all(hi <= 1 << 32 for _, hi in ranges)
    base = f"{mem.base:x}"
    smaps = g.slurp("/proc/self/smaps").decode()
    assert base not in maps and base not in smaps
    assert smaps.count("Rss:") == len(ranges) and "VmFlags: rd wr" in smaps


def test_status_stat_and_links(k, g, tmp_path):
    pid = k.pid
    status = g.slurp("/proc/self/status").decode()
    assert f"\nPid:\t{pid}\n" in status and "Name:\tprog\n" in status
    stat_line = g.slurp(f"/proc/{pid}/stat").decode()
    assert stat_line.startswith(f"{pid} (prog) R ") and len(stat_line.split()) == 52
    assert g.readlink("/proc/self") == str(pid).encode()
    assert g.readlink("/proc/thread-self") == f"{pid}/task/{k.tid}".encode()
    assert g.readlink("/proc/self/exe") == b"/opt/guest/prog"
    assert g.readlink("/proc/self/cwd") == os.fsencode(tmp_path)
    assert g.readlink("/proc/self/maps") == -errno.EINVAL
    fd = g.open("/proc/self/maps")
    assert g.readlink(f"/proc/self/fd/{fd}") == f"/proc/{pid}/maps".encode()
    (tmp_path / "data").write_bytes(b"guest file")
    hfd = g.open("data")
    assert g.readlink(f"/proc/self/fd/{hfd}") == os.fsencode(tmp_path / "data")
    assert g.slurp(f"/proc/self/fd/{hfd}") == b"guest file"      # reopened like Linux
    info = g.slurp(f"/proc/self/fdinfo/{hfd}").decode()
    assert info.startswith("pos:\t0\nflags:\t0")
    limits = g.slurp("/proc/self/limits").decode()
    assert limits.startswith("Limit ") and "Max open files            1024 " in limits


def test_fd_listing_is_the_guest_table(k, g):
    runtime_fd = os.open("/dev/null", os.O_RDONLY)      # the runtime's own, never the guest's
    try:
        fd = g.open("/proc/self/fd", os.O_DIRECTORY)
        names = g.names(fd)
        assert sorted(names) == sorted([".", ".."] + [str(f) for f in k.fds.guest_fds()])
        assert str(runtime_fd) not in names or runtime_fd in k.fds.guest_fds()
        assert g.readlink(f"/proc/self/fd/{runtime_fd}") == -errno.ENOENT or \
            runtime_fd in k.fds.guest_fds()
        # rewind: lseek 0 lists again
        assert g.call("lseek", fd, 0, 0) == 0
        assert g.names(fd) == names
        top = g.names(g.open("/proc", os.O_DIRECTORY))
        assert [n for n in top if n.isdigit()] == [str(k.pid)]
        assert {"self", "thread-self", "cpuinfo"} <= set(top)
        self_names = g.names(g.open("/proc/self", os.O_DIRECTORY))
        assert {"maps", "status", "exe", "fd", "task"} <= set(self_names)
        assert "mem" not in self_names and "environ" in self_names
    finally:
        os.close(runtime_fd)


def test_dirfd_chdir_and_fchdir_stay_in_the_view(k, g, tmp_path):
    pid = str(k.pid)
    pfd = g.open("/proc", os.O_DIRECTORY)
    assert g.slurp("self/status", pfd).startswith(b"Name:")
    assert g.open("self/mem", os.O_RDWR, pfd) == -errno.EACCES
    assert g.call("chdir", g.s("/proc")) == 0
    assert os.getcwd() == str(tmp_path)                  # the host cwd did not move
    buf = g.alloc(256)
    assert g.call("getcwd", buf, 256) == len("/proc") + 1 and g.k.mem.read(buf, 6) == b"/proc\0"
    assert g.slurp("./self/../self/comm") == b"prog\n"
    assert g.open("self/mem") == -errno.EACCES
    sfd = g.open("self", os.O_DIRECTORY)
    assert g.call("fchdir", sfd) == 0
    assert g.readlink("exe") == b"/opt/guest/prog"
    assert g.readlink("cwd") == f"/proc/{pid}".encode()
    assert g.call("mkdirat", AT_FDCWD, g.s("newdir"), 0o755) == -errno.ENOENT
    assert g.call("chdir", g.s("root")) == 0             # /proc/<pid>/root is /
    assert os.getcwd() == "/"
    assert g.call("chdir", g.s(str(tmp_path))) == 0
    assert g.slurp("proc/self/comm", g.open("/", os.O_DIRECTORY)) == b"prog\n"


def test_stat_family(k, g):
    st = k.procfs.stat(AT_FDCWD, b"/proc/self", True)
    assert stat.S_ISDIR(st.st_mode)
    assert stat.S_ISLNK(k.procfs.stat(AT_FDCWD, b"/proc/self", False).st_mode)
    buf = g.alloc(256)
    assert g.call("newfstatat", AT_FDCWD, g.s("/proc/self/maps"), buf, 0) == 0
    assert g.call("statx", AT_FDCWD, g.s("/proc//self/fd"), 0, 0x7FF, buf) == 0
    mode = struct.unpack_from("<H", k.mem.read(buf, 256), 28)[0]
    assert stat.S_ISDIR(mode)
    fd = g.open("/proc/self/status")
    assert g.call("fstat", fd, buf) == 0
    assert stat.S_ISREG(struct.unpack_from("<I", k.mem.read(buf, 128), 16)[0])
    assert g.call("faccessat", AT_FDCWD, g.s("/proc/self/maps"), os.R_OK) == 0
    assert g.call("faccessat", AT_FDCWD, g.s("/proc/self/maps"), os.W_OK) == -errno.EACCES
    assert g.call("faccessat", AT_FDCWD, g.s("/proc/self/mem"), os.R_OK) == -errno.EACCES


def test_host_procfs_fds_are_recognised(tmp_path):
    fd = os.open("/proc/self/stat", os.O_RDONLY)
    try:
        assert host_fd_is_procfs(fd)
    finally:
        os.close(fd)
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        assert not host_fd_is_procfs(fd)
    finally:
        os.close(fd)


@pytest.mark.parametrize("abi", [RISCV64_ABI, AARCH64_ABI, X86_64_ABI], ids=lambda a: a.name)
def test_initial_stack_and_every_abi(abi, tmp_path, monkeypatch):
    """cmdline, environ and auxv are the guest's; O_DIRECTORY in each ISA's encoding."""
    monkeypatch.chdir(tmp_path)
    mem = GuestMemory()
    mem.map(BUF, BUF_SIZE, PROT_READ | PROT_WRITE, "scratch")
    info = AuxvInfo(entry=0x10078, phdr_vaddr=0x10040, phent=56, phnum=2)
    isa = {"riscv64": "riscv64", "aarch64": "aarch64", "x86_64": "x86_64"}[abi.name]
    sp = build_initial_stack(mem, argv=[b"prog", b"a b"], envp=[b"K=V"], auxv_info=info, isa=isa)
    kern = LinuxKernel(mem, abi, brk_start=0x20_0000, exe_path="/opt/guest/prog")
    try:
        kern.procfs.record_initial_stack(sp)
        g = Guest(kern)
        assert g.slurp("/proc/self/cmdline") == b"prog\0a b\0"
        assert g.slurp("/proc/self/environ") == b"K=V\0"
        auxv = g.slurp("/proc/self/auxv")
        pairs = dict(struct.iter_unpack("<QQ", auxv))
        assert pairs[6] == 4096 and pairs[9] == 0x10078 and auxv.endswith(bytes(16))
        o_directory = {"aarch64": 0o40000}.get(abi.name, 0o200000)
        assert g.open("/proc/self/maps", o_directory) == -errno.ENOTDIR
        fd = g.open("/proc/self/task", o_directory)
        assert fd >= 0 and g.names(fd) == [".", "..", str(kern.tid)]
    finally:
        kern.close()
        mem.release()


# ------------------------------------------------------------ end to end

_WRAPPER = """
import sys
import runtime.guest_memory as gm
_init, _out = gm.GuestMemory.__init__, sys.argv[1]
def _record(self, *a, **kw):
    _init(self, *a, **kw)
    with open(_out, "a") as f:
        f.write(f"{self.base}\\n")
gm.GuestMemory.__init__ = _record
from runtime.cli import main
sys.argv = ["aotrun"] + sys.argv[2:]
main()
"""

_REFUSED = ("mem", "pagemap", "syscall", "stack", "wchan", "smaps_rollup", "map_files", "io",
            "personality", "mountinfo", "kcore")
_HOST_WORDS = ("python", ".venv", "site-packages", "aotrun", "/work", "pytest", "runtime/",
               "memfd:", "aotc-proc", "(deleted)", "/usr/lib", "libc.so", str(ROOT))


def _run_dump(target: Path, tmp_path: Path, engine: list[str]) -> tuple[str, int]:
    """Run ``procwalk dump`` under aotrun; (its stdout, the arena's host base)."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    basefile = tmp_path / "base.txt"
    env = {"PATH": os.environ.get("PATH", ""), "AOTC_CONFIG_DIR": os.environ.get("AOTC_CONFIG_DIR", ""),
           "AOTC_CACHE_DIR": os.environ.get("AOTC_CACHE_DIR", ""),
           "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-c", _WRAPPER, str(basefile), *engine, "--clear-env",
           "--env=AOTC_SAMPLE=procwalk", "--argv0=procwalk", str(target), "dump", str(scratch)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=600)
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, err[-3000:]
    bases = [int(x) for x in basefile.read_text().split()]
    assert len(bases) == 1, bases
    return proc.stdout.decode(errors="replace"), bases[0]


def _host_strings() -> set[str]:
    """Paths in the host process's own maps and values of its environment."""
    words = set()
    for line in Path("/proc/self/maps").read_text().splitlines():
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[5].startswith("/"):
            words.add(parts[5])
    words |= {v for v in os.environ.values() if len(v) >= 8 and "/" in v}
    return words


def _check_dump(out: str, base: int, exe: Path, tmp_path: Path) -> None:
    pid = re.search(r"^== pid (\d+) tid (\d+)$", out, re.M)
    assert pid, out[:2000]
    # It really walked the view (so the checks below are not vacuous).
    for prefix in ("/proc/self", f"/proc/{pid[1]}", "/proc/thread-self", "/proc//self",
                   "/proc/./self", "/proc/self/../self", "/proc/self/root/proc/self",
                   f"{tmp_path}/scratch/selflink", f"{tmp_path}/scratch/proclink/self"):
        assert re.search(rf"^== dir {re.escape(prefix)}: .* maps .* status", out, re.M), prefix
        assert re.search(rf"^== file {re.escape(prefix)}/maps: [1-9]\d* bytes\n[0-9a-f]{{8}}-",
                         out, re.M), prefix
        assert f"== link {prefix}/exe -> {exe}\n" in out, prefix
    for label in ("openat(/proc, self/maps)", "openat(/, proc/self/maps)", "cwd=/proc self/maps",
                  "cwd=/proc/self maps", "openat(/proc, ./self/../thread-self/smaps)"):
        assert re.search(rf"^== file {re.escape(label)}: [1-9]\d* bytes$", out, re.M), label
    assert "== getcwd: /proc\n" in out and f"== getcwd: /proc/{pid[1]}\n" in out
    assert "[stack]" in out
    # /proc lists the guest's pid only.
    top = re.search(r"^== dir /proc: (.*)$", out, re.M)[1].split()
    assert [n for n in top if n.isdigit()] == [pid[1]]
    # Nothing dangerous opened, under any spelling.
    assert not re.search(rf"/({'|'.join(_REFUSED)}) flags \d+: OPENED", out)
    assert "write back" not in out
    mem_rdwr = re.findall(r"^== open \S*mem flags 2: (.*)$", out, re.M)
    assert len(mem_rdwr) >= 15 and all(r == "error 13" for r in mem_rdwr), mem_rdwr
    assert "== openat(/proc, self/mem, O_RDWR): error 13" in out
    for other in ("/proc/1/maps", f"/proc/{int(pid[1]) + 1}/maps"):
        assert f"== open {other} flags 0: error 2" in out
    # No host address: every range is inside the 4 GiB guest space, no arena base.
    for lo, hi in re.findall(r"\b([0-9a-f]{8,16})-([0-9a-f]{8,16})\b", out):
        assert int(hi, 16) <= 1 << 32, (lo, hi)
    for form in (f"{base:x}", f"{base:X}", str(base), f"{base >> 12:x}", str(base >> 12)):
        assert form not in out, form
    # No host path or content, once the exe and scratch paths the test chose are masked.
    masked = out.replace(str(exe), "<EXE>").replace(str(tmp_path), "<TMP>")
    for word in (*_HOST_WORDS, *_host_strings()):
        assert word not in masked, word


ENGINES = [pytest.param(["--engine", "interp"], id="interp"),
           pytest.param(["--engine", "jit"], id="jit")]


@pytest.mark.parametrize("engine", ENGINES)
def test_procwalk_elf_engines(engine, tmp_path):
    exe = tmp_path / "procwalk.riscv64"
    shutil.copyfile(BIN / "procwalk.riscv64", exe)
    out, base = _run_dump(exe, tmp_path, engine)
    _check_dump(out, base, exe, tmp_path)


@pytest.mark.parametrize("flavour", ["riscv64", "riscv64-musl"])
def test_procwalk_aot(flavour, build_image_cached, tmp_path):
    exe = tmp_path / f"procwalk.{flavour}.so"
    shutil.copyfile(build_image_cached(BIN / f"procwalk.{flavour}"), exe)
    out, base = _run_dump(exe, tmp_path, [])
    _check_dump(out, base, exe, tmp_path)


def test_procwalk_kvm_x86_64(build_image_cached, tmp_path):
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        pytest.skip("/dev/kvm is not usable here: the x86_64 guest needs KVM")
    exe = tmp_path / "procwalk.x86_64.so"
    shutil.copyfile(build_image_cached(BIN / "procwalk.x86_64"), exe)
    out, base = _run_dump(exe, tmp_path, [])
    _check_dump(out, base, exe, tmp_path)
