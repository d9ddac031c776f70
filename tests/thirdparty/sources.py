"""Third-party test programs: fetch their sources, build them static for
riscv64, cache the builds outside the repository.

Nothing third-party is ever committed: busybox, dash and zstd come from
Debian's source packages (``apt-get source``, so deb-src must be enabled,
as .ci/run does), are cross-built with ``riscv64-linux-gnu-gcc`` and kept in
the cache; the Go programs are our own (tests/thirdparty/go/) and are built
with Debian's golang-go into the cache too.

Cache layout (``$AOTC_THIRDPARTY_CACHE``, default ``~/.cache/aotc/thirdparty``)::

    locks/<name>.lock             flock: parallel pytest workers build once
    <name>/<recipe key>/
        src/                      the unpacked, patched Debian source package
        out/<program>             the built static riscv64 executable
        out/applets/<applet>      (busybox) symlinks to out/busybox
        build.log                 every command run, with its output
        manifest.json             written last: versions, sha256, seconds per step
    go/gocache, go/gopath         Go's build cache and module cache
    images/<program>-<elf sha256>-<aotc key>.so
                                  aot images (``aotc build``), one per ELF and
                                  translator version, re-signed per test session

The recipe key hashes everything that decides the build (recipe revision,
configuration, flags; for Go also our sources and ``go version``), so a
changed recipe builds afresh and a finished build is reused offline.

Build everything ahead of the tests (CI does)::

    python -m tests.thirdparty.sources --build all [--images]

A missing prerequisite (no apt-get, deb-src not enabled, no network, no
cross compiler, no Go) raises ``Unavailable`` and the tests skip saying
which; a build that fails once its prerequisites are there raises
``BuildFailed`` and the tests fail.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("aotc.thirdparty")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
GO_SOURCES = HERE / "go"

CROSS = "riscv64-linux-gnu-"
JOBS = os.environ.get("AOTC_THIRDPARTY_JOBS", "2")


class Unavailable(Exception):
    """A prerequisite is genuinely absent (tool, deb-src, network): skip."""


class BuildFailed(Exception):
    """Prerequisites are there but the build failed: a real failure."""


def cache_root() -> Path:
    env = os.environ.get("AOTC_THIRDPARTY_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "aotc" / "thirdparty"


@contextlib.contextmanager
def locked(name: str):
    """Exclusive lock shared by every process using this cache."""
    locks = cache_root() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{name}.lock", "w") as fh:
        t0 = time.monotonic()
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("%s: waiting for another process building it", name)
            fcntl.flock(fh, fcntl.LOCK_EX)
            log.info("%s: lock acquired after %.1f s", name, time.monotonic() - t0)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _need_tools(*tools: str, why: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise Unavailable(f"{', '.join(missing)} not installed ({why})")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class _Logfile:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(path, "a")

    def note(self, msg: str) -> None:
        log.info("%s", msg)
        self.fh.write(f"## {msg}\n")
        self.fh.flush()

    def run(self, cmd: list[str], cwd: Path, env: dict | None = None, nice: bool = True,
            input: str | None = None) -> float:
        """Run one build command, its output appended to the log; BuildFailed
        with the log's tail if it fails."""
        full = (["nice", "-n", "10"] if nice and shutil.which("nice") else []) + cmd
        shown = " ".join(cmd)
        self.note(f"$ (cd {cwd} && {shown})")
        t0 = time.monotonic()
        run_env = {**os.environ, "LC_ALL": "C", **(env or {})}
        proc = subprocess.run(full, cwd=cwd, env=run_env, stdout=self.fh, stderr=subprocess.STDOUT,
                              input=input, text=True if input is not None else None,
                              stdin=subprocess.DEVNULL if input is None else None)
        dt = time.monotonic() - t0
        self.fh.flush()
        self.note(f"exit {proc.returncode} after {dt:.1f} s")
        if proc.returncode != 0:
            tail = "".join(self.path.read_text(errors="replace").splitlines(True)[-40:])
            raise BuildFailed(f"{shown} (in {cwd}) failed with exit {proc.returncode}; "
                              f"log {self.path}, its end:\n{tail}")
        return dt

    def close(self) -> None:
        self.fh.close()


# --------------------------------------------------------------------------
# Debian source packages

def _dpkg_version_cmp(a: str, b: str) -> int:
    if a == b:
        return 0
    gt = subprocess.run(["dpkg", "--compare-versions", a, "gt", b]).returncode == 0
    return 1 if gt else -1


def source_versions(package: str) -> list[str]:
    """Versions of a Debian source package apt knows, newest first."""
    _need_tools("apt-get", "apt-cache", "dpkg-source", "dpkg",
                why="the third-party programs are built from Debian source packages")
    proc = subprocess.run(["apt-cache", "showsrc", package], capture_output=True, text=True)
    versions = sorted(set(re.findall(r"^Version: (\S+)$", proc.stdout, re.M)),
                      key=functools.cmp_to_key(_dpkg_version_cmp), reverse=True)
    if not versions:
        raise Unavailable(
            f"apt knows no source package {package!r}: enable deb-src (change 'Types: deb' to "
            f"'Types: deb deb-src' in /etc/apt/sources.list.d/*.sources, then apt-get update; "
            f".ci/run does)")
    return versions


def fetch_source(package: str, dest: Path, logf: _Logfile, version_prefix: str = "") -> tuple[str, Path]:
    """``apt-get source`` the newest downloadable version of ``package``
    into ``dest``; returns (version, unpacked tree). A version apt lists but
    the mirror no longer serves (a superseded security update) is skipped."""
    versions = [v for v in source_versions(package) if v.split(":")[-1].startswith(version_prefix)]
    if not versions:
        raise Unavailable(f"no {package} {version_prefix}* source package known to apt")
    errors = []
    for version in versions:
        partial = dest.with_name(dest.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        try:
            logf.run(["apt-get", "source", "-q", f"{package}={version}"], cwd=partial, nice=False)
        except BuildFailed as e:
            errors.append(f"{version}: {str(e).splitlines()[-1]}")
            logf.note(f"{package} {version} could not be fetched; trying an older version")
            continue
        trees = [p for p in partial.iterdir() if p.is_dir()]
        if len(trees) != 1:
            raise BuildFailed(f"apt-get source {package}={version} unpacked {trees} in {partial}")
        shutil.rmtree(dest, ignore_errors=True)
        partial.rename(dest)
        return version, dest / trees[0].name
    raise Unavailable(f"apt-get source {package} failed for every version (no network or mirror?): "
                      + "; ".join(errors))


# --------------------------------------------------------------------------
# recipes

@dataclass
class Built:
    name: str
    binary: Path
    dir: Path
    manifest: dict = field(default_factory=dict)

    @property
    def applets(self) -> Path:
        """busybox only: a directory of applet symlinks, for PATH."""
        return self.binary.parent / "applets"


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


# busybox: defconfig, minus the applet directories that are neither shell
# nor coreutils-like (networking, init, util-linux, mail, modules... : they
# make the binary big and some fail to cross-build against new kernel
# headers), static, with the shell running applets itself.
BUSYBOX_DROP_DIRS = ("archival console-tools e2fsprogs init klibc-utils loginutils mailutils "
                     "miscutils modutils networking printutils runit selinux sysklogd "
                     "util-linux").split()
BUSYBOX_SET = {
    "STATIC": "y",
    "FEATURE_SH_STANDALONE": "y",       # ash runs applets in-process or via /proc/self/exe
    "FEATURE_PREFER_APPLETS": "y",      # ... rather than PATH lookups of host programs
    "CROSS_COMPILER_PREFIX": f'"{CROSS}"',
}
BUSYBOX_RECIPE = ["busybox", 1, BUSYBOX_DROP_DIRS, BUSYBOX_SET]


def _configure_busybox(tree: Path, logf: _Logfile) -> None:
    logf.run(["make", "defconfig"], cwd=tree)
    symbols: set[str] = set()
    for d in BUSYBOX_DROP_DIRS:
        for cfg in (tree / d).rglob("Config.in"):
            symbols |= set(re.findall(r"^\s*(?:menu)?config\s+(\w+)", cfg.read_text(errors="replace"), re.M))
    lines = []
    for line in (tree / ".config").read_text().splitlines():
        m = re.match(r"(?:# )?CONFIG_(\w+)[= ]", line)
        if m and m.group(1) in BUSYBOX_SET:
            line = f"CONFIG_{m.group(1)}={BUSYBOX_SET[m.group(1)]}"
        elif m and m.group(1) in symbols:
            line = f"# CONFIG_{m.group(1)} is not set"
        lines.append(line)
    (tree / ".config").write_text("\n".join(lines) + "\n")
    logf.note(f"busybox: {len(symbols)} config symbols of {len(BUSYBOX_DROP_DIRS)} directories turned off; "
              f"set {BUSYBOX_SET}")
    # resolve dependencies of the edited config with the defaults
    logf.run(["make", "oldconfig"], cwd=tree, input="\n" * 2000)
    config = (tree / ".config").read_text()
    for sym, val in BUSYBOX_SET.items():
        if f"CONFIG_{sym}={val}\n" not in config:
            raise BuildFailed(f"busybox: CONFIG_{sym}={val} did not survive make oldconfig")


def build_busybox(out: Path, work: Path, logf: _Logfile) -> dict:
    _need_tools(f"{CROSS}gcc", "make", why="busybox is cross-built for riscv64")
    t0 = time.monotonic()
    version, tree = fetch_source("busybox", work / "src", logf)
    steps = {"fetch": time.monotonic() - t0}
    t0 = time.monotonic()
    _configure_busybox(tree, logf)
    steps["configure"] = time.monotonic() - t0
    steps["make"] = logf.run(["make", f"-j{JOBS}"], cwd=tree)
    logf.run(["make", "busybox.links"], cwd=tree)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(tree / "busybox_unstripped", out / "busybox")
    shutil.copy2(tree / ".config", out / "busybox.config")
    applets = out / "applets"
    applets.mkdir()
    names = sorted({Path(line.strip()).name for line in (tree / "busybox.links").read_text().splitlines()
                    if line.strip()})
    for name in names:
        (applets / name).symlink_to(out / "busybox")
    logf.note(f"busybox: {len(names)} applets linked in {applets}")
    return {"package": "busybox", "version": version, "applets": names, "steps": steps}


DASH_RECIPE = ["dash", 1, f"--host={CROSS[:-1]}", "LDFLAGS=-static"]


def build_dash(out: Path, work: Path, logf: _Logfile) -> dict:
    # Debian's patches change src/Makefile.am and configure.ac: autoreconf
    _need_tools(f"{CROSS}gcc", "make", "gcc", "autoreconf", "automake",
                why="dash is cross-built for riscv64 after autoreconf (apt-get install autoconf automake)")
    t0 = time.monotonic()
    version, tree = fetch_source("dash", work / "src", logf)
    steps = {"fetch": time.monotonic() - t0}
    steps["autoreconf"] = logf.run(["autoreconf", "-fi"], cwd=tree)
    steps["configure"] = logf.run(["./configure", f"--host={CROSS[:-1]}", f"CC={CROSS}gcc",
                                   "CC_FOR_BUILD=gcc", "LDFLAGS=-static"], cwd=tree)
    steps["make"] = logf.run(["make", f"-j{JOBS}"], cwd=tree)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(tree / "src" / "dash", out / "dash")
    return {"package": "dash", "version": version, "steps": steps}


ZSTD_MAKE = [f"CC={CROSS}gcc", "LDFLAGS=-static", "HAVE_THREAD=1", "HAVE_ZLIB=0", "HAVE_LZMA=0",
             "HAVE_LZ4=0"]
ZSTD_RECIPE = ["zstd", 1, ZSTD_MAKE]


def build_zstd(out: Path, work: Path, logf: _Logfile) -> dict:
    _need_tools(f"{CROSS}gcc", "make", why="zstd is cross-built for riscv64")
    t0 = time.monotonic()
    version, tree = fetch_source("libzstd", work / "src", logf, version_prefix="1.5.")
    steps = {"fetch": time.monotonic() - t0}
    steps["make"] = logf.run(["make", f"-j{JOBS}", "-C", "programs", "zstd", *ZSTD_MAKE], cwd=tree)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(tree / "programs" / "zstd", out / "zstd")
    return {"package": "libzstd", "version": version, "steps": steps}


def _go_env() -> dict:
    root = cache_root() / "go"
    return {"GOOS": "linux", "GOARCH": "riscv64", "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false",
            "GOCACHE": str(root / "gocache"), "GOPATH": str(root / "gopath"), "GOTOOLCHAIN": "local",
            "GO111MODULE": "on", "GOPROXY": "off"}


def _go_version() -> str:
    _need_tools("go", why="Go test programs are built with Debian's golang-go (apt-get install golang-go)")
    return subprocess.run(["go", "version"], capture_output=True, text=True, check=True).stdout.strip()


def _go_recipe() -> list:
    h = hashlib.sha256()
    for src in sorted(GO_SOURCES.rglob("*")):
        if src.is_file():
            h.update(str(src.relative_to(GO_SOURCES)).encode() + b"\0" + src.read_bytes())
    return ["gotests", 1, _go_version(), h.hexdigest(), _go_env()["GOARCH"]]


def build_gotests(out: Path, work: Path, logf: _Logfile) -> dict:
    go_version = _go_version()
    out.mkdir(parents=True, exist_ok=True)
    steps = {"go build": logf.run(["go", "build", "-trimpath", "-o", str(out / "gotests"), "."],
                                  cwd=GO_SOURCES / "gotests", env=_go_env())}
    return {"package": "gotests (ours: tests/thirdparty/go/gotests)", "version": go_version, "steps": steps}


RECIPES = {
    "busybox": (lambda: BUSYBOX_RECIPE, build_busybox, "busybox"),
    "dash": (lambda: DASH_RECIPE, build_dash, "dash"),
    "zstd": (lambda: ZSTD_RECIPE, build_zstd, "zstd"),
    "gotests": (_go_recipe, build_gotests, "gotests"),
}
ALL = list(RECIPES)


def ensure(name: str, recipes: dict | None = None) -> Built:
    """The built program ``name`` from the cache, building it first if needed;
    ``recipes`` (default RECIPES, the tests' programs) maps names to (recipe,
    builder, program) like RECIPES (bench/real.py passes its own)."""
    recipe, builder, program = (RECIPES if recipes is None else recipes)[name]
    key = _key(recipe())
    d = cache_root() / name / key
    manifest = d / "manifest.json"
    if manifest.exists():
        return Built(name, d / "out" / program, d, json.loads(manifest.read_text()))
    with locked(name):
        if manifest.exists():       # another process built it while we waited
            return Built(name, d / "out" / program, d, json.loads(manifest.read_text()))
        shutil.rmtree(d / "out", ignore_errors=True)
        logf = _Logfile(d / "build.log")
        try:
            logf.note(f"building {name} (recipe {key}) in {d}")
            t0 = time.monotonic()
            info = builder(d / "out", d, logf)
            binary = d / "out" / program
            info.update(name=name, recipe=key, binary=str(binary), sha256=_sha256(binary),
                        seconds=round(time.monotonic() - t0, 1),
                        steps={k: round(v, 1) for k, v in info["steps"].items()},
                        built=time.strftime("%Y-%m-%dT%H:%M:%S"))
            tmp = manifest.with_suffix(".tmp")
            tmp.write_text(json.dumps(info, indent=1) + "\n")
            tmp.rename(manifest)
            logf.note(f"built {name}: {binary} in {info['seconds']} s")
        finally:
            logf.close()
    return Built(name, binary, d, info)


# --------------------------------------------------------------------------
# aot images

# Translating a whole static program ahead of time takes minutes (aotc
# build -j2, measured in CPU seconds on a busy 2-core machine: dash, mostly
# glibc, 259; gotests 281; busybox 491; zstd 549): by default only dash runs
# on the aot engine in the tests; AOTC_THIRDPARTY_AOT=all (or a list:
# busybox,zstd,gotests) adds others.
AOT_DEFAULT = "dash"


def aot_programs() -> set[str]:
    value = os.environ.get("AOTC_THIRDPARTY_AOT", AOT_DEFAULT)
    return set(ALL) if value.strip() == "all" else {n.strip() for n in value.split(",") if n.strip()}


@functools.lru_cache(maxsize=None)
def aotc_key() -> str:
    """aotc's version: its version number, codegen version and the hash of
    the translator's sources (the same inputs tests/conftest.py keys its
    sample images by), so a changed translator rebuilds the image."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from aotc import __version__
    from aotc.backend.abi import CODEGEN_VERSION

    h = hashlib.sha256(f"{__version__}/{CODEGEN_VERSION}/O2".encode())
    for src in sorted((ROOT / "aotc").rglob("*.py")):
        h.update(str(src.relative_to(ROOT)).encode() + b"\0" + src.read_bytes())
    return h.hexdigest()[:16]


def image(built: Built, out: Path | None = None, key=None) -> Path:
    """An aot image of ``built`` from the image cache (translated once per
    ELF and translator version, under a lock), copied to ``out`` re-signed
    with ``key`` (the test session's key) when given."""
    from aotc.build import build_image
    from aotc.image import write_image
    from aotc.keys import load_or_create_signing_key
    from loader import read_image_file

    images = cache_root() / "images"
    images.mkdir(parents=True, exist_ok=True)
    cached = images / f"{built.binary.name}-{_sha256(built.binary)[:16]}-{aotc_key()}.so"
    signing = key or load_or_create_signing_key()
    if not cached.exists():
        with locked(f"image-{cached.stem}"):
            if not cached.exists():
                log.info("aot image of %s: aotc build (minutes for a big program) -> %s", built.binary, cached)
                t0 = time.monotonic()
                tmp = cached.with_suffix(".partial")
                report = build_image(built.binary, tmp, key=signing, jobs=int(JOBS))
                tmp.rename(cached)
                dt = time.monotonic() - t0
                times = images / "build-times.jsonl"
                with open(times, "a") as fh:
                    fh.write(json.dumps({"image": cached.name, "seconds": round(dt, 1),
                                         "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                         "report": _report_summary(report)}) + "\n")
                log.info("aot image of %s built in %.1f s", built.name, dt)
    if out is None:
        return cached
    write_image(out, read_image_file(cached).contents, signing)
    return out


def _report_summary(report) -> dict:
    fields = {}
    for k in ("blocks", "instructions", "seconds", "code_bytes", "image_bytes"):
        v = getattr(report, k, None)
        if isinstance(v, (int, float, str)):
            fields[k] = v
    return fields


def prune() -> None:
    """Remove what the current recipes and translator no longer use."""
    root = cache_root()
    keep_images = set()
    for name, (recipe, _builder, program) in RECIPES.items():
        try:
            key = _key(recipe())
        except Unavailable:
            continue
        current = root / name / key
        for d in (root / name).glob("*"):
            if d != current and d.is_dir():
                with locked(name):
                    log.info("prune: %s", d)
                    shutil.rmtree(d)
    # images of every build still in the cache (bench/real.py's recipes too), current translator
    for manifest in root.glob("*/*/manifest.json"):
        binary = Path(json.loads(manifest.read_text())["binary"])
        if binary.is_file():
            keep_images.add(f"{binary.name}-{_sha256(binary)[:16]}-{aotc_key()}.so")
    for img in (root / "images").glob("*.so"):
        if img.name not in keep_images:
            log.info("prune: %s", img)
            img.unlink()


# --------------------------------------------------------------------------
# command line

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.thirdparty.sources",
                                 description="Fetch and build the third-party test programs into "
                                             f"the cache ({cache_root()}).")
    ap.add_argument("--build", metavar="NAMES", default="",
                    help=f"comma-separated programs to build, or 'all' ({', '.join(ALL)})")
    ap.add_argument("--images", action="store_true",
                    help="also translate the programs the tests run on the aot engine "
                         f"(AOTC_THIRDPARTY_AOT, default {AOT_DEFAULT}; 'all') into cached aot images (slow)")
    ap.add_argument("--list", action="store_true", help="show what the cache holds")
    ap.add_argument("--prune", action="store_true",
                    help="delete builds of other recipe versions and images of other ELFs or translators")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="thirdparty: %(message)s", stream=sys.stderr)
    names = ALL if args.build == "all" else [n for n in args.build.split(",") if n]
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        ap.error(f"unknown program(s) {unknown}; known: {ALL}")
    status = 0
    for name in names:
        t0 = time.monotonic()
        try:
            built = ensure(name)
        except Unavailable as e:
            print(f"{name}: SKIPPED, prerequisite missing: {e}", file=sys.stderr)
            continue
        except BuildFailed as e:
            print(f"{name}: BUILD FAILED: {e}", file=sys.stderr)
            status = 1
            continue
        print(f"{name}: {built.binary} ({built.manifest.get('package')} {built.manifest.get('version')}; "
              f"build took {built.manifest.get('seconds')} s, {time.monotonic() - t0:.1f} s now)")
        if args.images and name in aot_programs():
            t0 = time.monotonic()
            path = image(built)
            print(f"{name}: aot image {path} ({time.monotonic() - t0:.1f} s now)")
    if args.prune:
        prune()
    if args.list:
        root = cache_root()
        for manifest in sorted(root.glob("*/*/manifest.json")):
            info = json.loads(manifest.read_text())
            print(f"{info['name']}: {info['binary']} {info['package']} {info['version']} "
                  f"built {info['built']} in {info['seconds']} s {info['steps']}")
        for img in sorted((root / "images").glob("*.so")):
            print(f"image: {img} ({img.stat().st_size // 1024} KiB)")
    return status


if __name__ == "__main__":
    sys.exit(main())
