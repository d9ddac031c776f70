"""A content-addressed cache of ``aotc build`` translations.

Translating a large guest (discovery, lifting, LLVM, linking) takes tens of
seconds; its result depends only on the inputs hashed into the cache key:

* the guest ELF's bytes,
* the translator itself: ``__version__``, ``CODEGEN_VERSION``, the llvmlite
  version and a hash of every source file of the ``aotc`` package (so an
  edited translator never reuses code an older one produced),
* every build option that changes the output: optimisation level, build
  tier (``--tier``), profile entry and hot pcs, the host ISA and the guest
  arena size (not ``-j``: the code is the same whatever the job count).

An entry holds the linked host shared object and the translation's metadata
(statistics, untranslated instructions), never a signature: a hit is signed
afresh with the current key, and the guest segments and per-file metadata
(input name) come from the guest ELF of this build.

Entries live in ``$AOTC_CACHE_DIR``, else ``$XDG_CACHE_HOME/aotc``, else
``~/.cache/aotc``, under ``builds/<key>.entry``.  Each is written atomically
(temporary file + rename) and carries a SHA-256 of its contents; an entry
that fails the check (truncated, bit-flipped, wrong key) is deleted and the
build runs as a miss.  The total size is bounded (``$AOTC_CACHE_MAX_SIZE``,
default 1G): after storing, the least recently used entries are evicted.
``aotc cache info`` and ``aotc cache clear`` show and empty it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ENTRY_MAGIC = b"AOTCBLD1"
SCHEMA = 1
DEFAULT_MAX_BYTES = 1 << 30
ENTRY_SUFFIX = ".entry"
_LEN = struct.Struct("<Q")


def cache_dir() -> Path:
    from aotc.user_dirs import user_dir

    return user_dir("AOTC_CACHE_DIR", "XDG_CACHE_HOME", ".cache")


def builds_dir(root: Path | None = None) -> Path:
    return (root if root is not None else cache_dir()) / "builds"


def max_bytes() -> int:
    """The size bound from ``$AOTC_CACHE_MAX_SIZE`` (e.g. ``512M``), default 1 GiB."""
    text = os.environ.get("AOTC_CACHE_MAX_SIZE")
    if not text:
        return DEFAULT_MAX_BYTES
    from aotc.errors import BuildError
    from aotc.sizes import parse_size

    try:
        return parse_size(text)
    except ValueError as e:
        raise BuildError(f"AOTC_CACHE_MAX_SIZE: {e}") from None


@functools.lru_cache(maxsize=1)
def translator_fingerprint() -> str:
    """SHA-256 over the translator's identity: versions and all its source files."""
    import llvmlite

    from aotc import __version__
    from aotc.backend.abi import CODEGEN_VERSION

    h = hashlib.sha256()
    h.update(f"aotc {__version__} codegen {CODEGEN_VERSION} llvmlite {llvmlite.__version__}\0".encode())
    h.update(source_tree_digest(Path(__file__).resolve().parent).encode())
    return h.hexdigest()


def source_tree_digest(root: Path) -> str:
    """SHA-256 over every file below ``root`` (names and contents; not bytecode)."""
    h = hashlib.sha256()
    files = sorted(p for p in root.rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo"))
    for path in files:
        data = path.read_bytes()
        h.update(f"{path.relative_to(root).as_posix()}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


# The default build tier.  "opt" (everything through -O2): "auto" saves a
# quarter of the build CPU but its static evidence misses loops that run
# through a jump table (an interpreter's dispatch), and real interpreters
# ran 1.5-2.8x slower for it (Lua 5.4, pcre2; docs/adr/0002-build-tiers.md).
DEFAULT_TIER = "opt"


def build_key(*, input_sha256: str, opt_level: int, profile_pcs: list[int] | None,
              host_isa: str, arena_bits: int, count: bool = False, tier: str = DEFAULT_TIER,
              hot_pcs: list[int] | None = None) -> str:
    """The cache key of one translation (hex SHA-256).  The number of compile
    jobs is not part of it: chunks are bounded in size, not counted from -j,
    so the code is the same whatever -j was."""
    material = {
        "schema": SCHEMA,
        "input_sha256": input_sha256,
        "translator": translator_fingerprint(),
        "opt_level": opt_level,
        "profile_pcs": profile_pcs,
        "host_isa": host_isa,
        "arena_bits": arena_bits,
        "count": count,
        "tier": tier,
    }
    if hot_pcs:
        material["hot_pcs"] = hot_pcs
    text = json.dumps(material, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class CachedBuild:
    """What a cache entry holds: the host object and the translation's facts."""

    host_object: bytes
    translation: dict   # metadata keys the translation decides (codegen_version, opt_level, stats)
    report: dict        # BuildReport fields of the original build (blocks, timings, ...)


class CorruptEntry(Exception):
    """A cache entry failed its integrity check."""


def entry_path(key: str, root: Path | None = None) -> Path:
    return builds_dir(root) / f"{key}{ENTRY_SUFFIX}"


def encode_entry(key: str, build: CachedBuild) -> bytes:
    header = json.dumps({
        "schema": SCHEMA, "key": key, "created": time.time(),
        "host_size": len(build.host_object),
        "host_sha256": hashlib.sha256(build.host_object).hexdigest(),
        "translation": build.translation, "report": build.report,
    }, sort_keys=True).encode()
    body = _LEN.pack(len(header)) + header + build.host_object
    return ENTRY_MAGIC + hashlib.sha256(body).digest() + body


def decode_entry(key: str, data: bytes) -> CachedBuild:
    """Parse and check an entry; raises ``CorruptEntry`` with the reason."""
    head = len(ENTRY_MAGIC) + 32
    if len(data) < head + _LEN.size or not data.startswith(ENTRY_MAGIC):
        raise CorruptEntry("bad header")
    body = memoryview(data)[head:]
    if hashlib.sha256(body).digest() != data[len(ENTRY_MAGIC):head]:
        raise CorruptEntry("checksum mismatch")
    (hlen,) = _LEN.unpack_from(body)
    try:
        header = json.loads(bytes(body[_LEN.size:_LEN.size + hlen]))
    except ValueError:
        raise CorruptEntry("unreadable header") from None
    host = bytes(body[_LEN.size + hlen:])
    if not isinstance(header, dict) or header.get("schema") != SCHEMA or header.get("key") != key:
        raise CorruptEntry("entry is for another key or schema")
    if header.get("host_size") != len(host) or \
            header.get("host_sha256") != hashlib.sha256(host).hexdigest():
        raise CorruptEntry("host object does not match its hash")
    if not isinstance(header.get("translation"), dict) or not isinstance(header.get("report"), dict):
        raise CorruptEntry("incomplete entry")
    return CachedBuild(host_object=host, translation=header["translation"], report=header["report"])


def load(key: str, root: Path | None = None) -> CachedBuild | None:
    """The entry for ``key``, or None.  A corrupt entry is removed and raises
    ``CorruptEntry`` (the caller rebuilds and stores a fresh one)."""
    path = entry_path(key, root)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError:
        return None  # unreadable cache: behave as a miss
    try:
        entry = decode_entry(key, data)
    except CorruptEntry:
        _unlink(path)
        raise
    try:
        os.utime(path)  # least recently used eviction goes by mtime
    except OSError:
        pass
    return entry


def store(key: str, build: CachedBuild, root: Path | None = None) -> Path | None:
    """Write the entry atomically, then evict old entries over the size bound.

    Returns the entry's path, or None if the cache directory is not writable
    (a cache that cannot be written never fails a build)."""
    directory = builds_dir(root)
    path = entry_path(key, root)
    data = encode_entry(key, build)
    tmp = None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key[:16]}.", suffix=".tmp", dir=directory)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError:
        return None
    finally:
        if tmp is not None:
            _unlink(Path(tmp))
    prune(max_bytes(), root, keep=path)
    return path


def entries(root: Path | None = None) -> list[tuple[Path, os.stat_result]]:
    directory = builds_dir(root)
    found = []
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    for name in names:
        if not name.endswith(ENTRY_SUFFIX):
            continue
        try:
            found.append((directory / name, os.stat(directory / name)))
        except OSError:
            continue
    return found


def prune(limit: int, root: Path | None = None, keep: Path | None = None) -> int:
    """Delete least recently used entries until the total is at most ``limit``;
    returns how many were deleted (``keep``, the entry just written, stays)."""
    found = sorted(entries(root), key=lambda e: e[1].st_mtime)
    total = sum(st.st_size for _p, st in found)
    removed = 0
    for path, st in found:
        if total <= limit:
            break
        if keep is not None and path == keep:
            continue
        if _unlink(path):
            total -= st.st_size
            removed += 1
    return removed


def info(root: Path | None = None) -> dict:
    found = entries(root)
    return {
        "directory": str(builds_dir(root)),
        "entries": len(found),
        "bytes": sum(st.st_size for _p, st in found),
        "max_bytes": max_bytes(),
    }


def clear(root: Path | None = None) -> int:
    """Delete every entry (and stale temporary files); returns the number of entries."""
    directory = builds_dir(root)
    count = 0
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    for name in names:
        if name.endswith(ENTRY_SUFFIX):
            count += _unlink(directory / name)
        elif name.endswith(".tmp"):
            _unlink(directory / name)
    return count


def _unlink(path: Path) -> bool:
    try:
        os.unlink(path)
        return True
    except OSError:
        return False
