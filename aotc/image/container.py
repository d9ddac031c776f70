"""Reading and writing the signed image container (structure only).

``parse_image`` performs structural checks; ``aotc.image.signature`` checks the
signature; ``loader`` does both over one sealed mapping before ``dlopen``.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.exceptions import InvalidSignature

from aotc.elf.segments import GuestSegment
from aotc.errors import ImageError, ImageVerificationError
from aotc.image.layout import (
    ELF_MACHINES,
    FOOTER,
    FOOTER_SIZE,
    FORMAT_VERSION,
    MAGIC,
    PAYLOAD_MAGIC,
    PUBLIC_KEY_SIZE,
    SEGTAB_ENTRY,
    SEGTAB_HEADER,
    SIG_ED25519,
    SIG_NONE,
    SIGNATURE_SIZE,
    align_up,
)

# Keys every image's metadata carries (the builder fills them in).
REQUIRED_METADATA_KEYS: tuple[str, ...] = (
    "format_version",
    "guest_isa",
    "host_isa",
    "entry",
    "phdr_vaddr",
    "phent",
    "phnum",
    "input_sha256",
    "tool_version",
    "arena_bits",
    "engine",
    "stats",
)
ENGINES = ("aot", "kvm")
METADATA_FORMAT_VERSION = FORMAT_VERSION

MISMATCH_MESSAGE = "signature does not match: image was modified"

# Metadata nests 3 deep (stats -> untranslated -> entry); json.loads recurses
# once per level, so deeper input is refused before it is parsed.
MAX_METADATA_DEPTH = 16
_JSON_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')

_ELF_HEADER_SIZE = 64
_ET_DYN = 3


@dataclass(frozen=True)
class ImageContents:
    host_object: bytes
    metadata: dict
    segments: tuple[GuestSegment, ...]


@dataclass(frozen=True)
class ParsedImage:
    """A structurally valid image; its signature is not yet checked.

    ``signed_span`` is ``(start, end)`` of the bytes the signature covers in
    ``data`` (always ``(0, len(data) - 64)``).  ``public_key`` and
    ``signature`` are ``None`` for an unsigned image.
    """

    contents: ImageContents
    public_key: bytes | None
    signature: bytes | None
    signed_span: tuple[int, int]
    data: bytes | memoryview = field(repr=False, compare=False)

    @property
    def signed(self) -> bool:
        return self.signature is not None

    @property
    def signed_bytes(self) -> memoryview:
        start, end = self.signed_span
        return memoryview(self.data)[start:end]

    @property
    def size(self) -> int:
        return len(self.data)


# --------------------------------------------------------------------------
# writing


def encode_metadata(metadata: dict) -> bytes:
    """Canonical JSON (sorted keys, compact, UTF-8) for the metadata block."""
    try:
        text = json.dumps(
            metadata, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise ImageError(f"image metadata is not JSON-serializable: {exc}") from None
    return text.encode("utf-8")


def serialize_image(contents: ImageContents, key: Ed25519PrivateKey | None) -> bytes:
    """The bytes of an image; unsigned (all-zero key and signature) if ``key`` is None."""
    if not isinstance(contents.host_object, (bytes, bytearray, memoryview)):
        raise ImageError("host object must be bytes")
    host = bytes(contents.host_object)
    _check_host_elf(host, _host_isa_of(contents.metadata))
    _check_metadata(contents.metadata)
    segs = tuple(contents.segments)
    for seg in segs:
        _check_segment_values(seg.vaddr, seg.memsz, seg.flags, len(seg.data))
    return assemble_image(host, encode_metadata(contents.metadata), segs, key)


def assemble_image(host: bytes, meta: bytes, segs: tuple[GuestSegment, ...],
                   key: Ed25519PrivateKey | None) -> bytes:
    """Lay out and sign an image from its parts, unchecked: ``meta`` is the
    metadata block as raw bytes.  ``serialize_image`` checks its input first;
    tests and fuzzing call this directly to make malformed images."""
    out = bytearray(host)
    out += bytes(align_up(len(out)) - len(out))
    payload_offset = len(out)
    out += PAYLOAD_MAGIC
    meta_offset = len(out)
    out += meta
    out += bytes(align_up(len(out)) - len(out))

    segtab_offset = len(out)
    segtab_size = SEGTAB_HEADER.size + SEGTAB_ENTRY.size * len(segs)
    data_pos = align_up(segtab_offset + segtab_size)
    entries = []
    blobs = bytearray()
    for seg in segs:
        offset = data_pos + len(blobs)
        entries.append(SEGTAB_ENTRY.pack(seg.vaddr, seg.memsz, offset, len(seg.data), seg.flags, 0))
        blobs += seg.data
        blobs += bytes(align_up(len(blobs)) - len(blobs))
    out += SEGTAB_HEADER.pack(len(segs), SEGTAB_ENTRY.size)
    for entry in entries:
        out += entry
    out += bytes(data_pos - len(out))
    out += blobs

    file_size = len(out) + FOOTER_SIZE
    sig_alg = SIG_ED25519 if key is not None else SIG_NONE
    pub = (
        key.public_key().public_bytes_raw()
        if key is not None
        else bytes(PUBLIC_KEY_SIZE)
    )
    out += FOOTER.pack(
        MAGIC, FORMAT_VERSION, FOOTER_SIZE, file_size, len(host), payload_offset,
        meta_offset, len(meta), segtab_offset, segtab_size, sig_alg, 0, pub,
        bytes(SIGNATURE_SIZE),
    )
    if key is not None:
        signature = key.sign(bytes(out[:-SIGNATURE_SIZE]))
        out[-SIGNATURE_SIZE:] = signature
    assert len(out) == file_size
    return bytes(out)


def write_image(path: Path, contents: ImageContents, key: Ed25519PrivateKey | None) -> None:
    """Write a signed image atomically (temporary file + rename), mode 0o644.

    ``key=None`` writes an unsigned image (only useful for tests and tooling:
    every loader refuses it).
    """
    path = Path(path)
    data = serialize_image(contents, key)
    parse_image(data)  # never write what we could not read back
    directory = path.parent if str(path.parent) else Path(".")
    tmp_name = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fchmod(f.fileno(), 0o644)
                os.fsync(f.fileno())
        except BaseException:
            os.unlink(tmp_name)
            raise
        os.replace(tmp_name, path)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ImageError(f"cannot write image {path}: {reason}") from None


# --------------------------------------------------------------------------
# parsing


def parse_image(data: bytes | bytearray | memoryview) -> ParsedImage:
    """Structural checks of an image; raises ``ImageError`` with a one-line reason.

    If a structural check after the footer fails but the footer carries an
    Ed25519 signature that does not match the bytes, the more useful
    ``ImageVerificationError`` ("image was modified") is raised instead.
    """
    view = memoryview(data)
    if view.ndim != 1 or view.format not in ("B", "b", "c"):
        view = view.cast("B")
    size = len(view)
    if size == 0:
        raise ImageError("image is empty")
    if size < FOOTER_SIZE or bytes(view[size - FOOTER_SIZE : size - FOOTER_SIZE + len(MAGIC)]) != MAGIC:
        raise ImageError(_why_no_footer(view))
    (magic, version, footer_size, file_size, host_size, payload_offset, meta_offset,
     meta_size, segtab_offset, segtab_size, sig_alg, reserved, pub, sig) = FOOTER.unpack_from(
        view, size - FOOTER_SIZE)
    if version != FORMAT_VERSION:
        raise ImageError(f"unsupported image format version {version} (this aotc reads {FORMAT_VERSION})")
    try:
        if footer_size != FOOTER_SIZE or reserved != 0:
            raise ImageError("image footer is malformed")
        if file_size != size:
            raise ImageError(
                f"image size {size} does not match its footer ({file_size}): truncated or padded"
            )
        if sig_alg == SIG_NONE:
            if any(pub) or any(sig):
                raise ImageError("image footer is malformed: unsigned image with key fields set")
            public_key = signature = None
        elif sig_alg == SIG_ED25519:
            public_key, signature = bytes(pub), bytes(sig)
        else:
            raise ImageError(f"unsupported signature algorithm {sig_alg}")
        contents = _parse_body(
            view, size - FOOTER_SIZE, host_size, payload_offset, meta_offset, meta_size,
            segtab_offset, segtab_size,
        )
    except ImageError as exc:
        if sig_alg == SIG_ED25519 and not _signature_matches(view, bytes(pub), bytes(sig)):
            raise ImageVerificationError(MISMATCH_MESSAGE) from None
        raise exc from None
    return ParsedImage(
        contents=contents,
        public_key=public_key,
        signature=signature,
        signed_span=(0, size - SIGNATURE_SIZE),
        data=data,
    )


def _signature_matches(view, pub: bytes, sig: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(pub).verify(sig, view[: len(view) - SIGNATURE_SIZE])
    except (InvalidSignature, ValueError):
        return False
    return True


def _why_no_footer(view) -> str:
    data = bytes(view) if not isinstance(view, bytes) else view
    pos = data.rfind(MAGIC)
    if pos >= 0 and pos + FOOTER_SIZE > len(data):
        return "image is truncated (footer incomplete)"
    if pos >= 0:
        return f"image has {len(data) - pos - FOOTER_SIZE} unexpected bytes after its footer"
    if data.find(PAYLOAD_MAGIC) >= 0:
        return "image is truncated (footer missing)"
    if data[:4] == b"\x7fELF" and len(data) >= _ELF_HEADER_SIZE and data[4] == 2 and data[5] == 1:
        shoff = int.from_bytes(data[0x28:0x30], "little")
        shentsize = int.from_bytes(data[0x3A:0x3C], "little")
        shnum = int.from_bytes(data[0x3C:0x3E], "little")
        if shoff + shentsize * shnum > len(data):
            return "not an aotc image: truncated ELF file without an AOTCIMG1 footer"
        return "not an aotc image: a plain ELF file without an AOTCIMG1 footer (build it with 'aotc build')"
    return "not an aotc image (no AOTCIMG1 footer)"


def _parse_body(view, footer_offset, host_size, payload_offset, meta_offset, meta_size,
                segtab_offset, segtab_size) -> ImageContents:
    def region(name: str, offset: int, length: int, lo: int) -> None:
        if offset < lo or length > footer_offset or offset > footer_offset - length:
            raise ImageError(f"image {name} at offset {offset} (+{length}) is out of range")

    if host_size < _ELF_HEADER_SIZE or host_size > footer_offset:
        raise ImageError(f"image host object size {host_size} is out of range")
    region("payload", payload_offset, len(PAYLOAD_MAGIC), host_size)
    if bytes(view[payload_offset : payload_offset + len(PAYLOAD_MAGIC)]) != PAYLOAD_MAGIC:
        raise ImageError("image payload header is missing")
    body_start = payload_offset + len(PAYLOAD_MAGIC)
    region("metadata", meta_offset, meta_size, body_start)
    region("segment table", segtab_offset, segtab_size, body_start)
    if _overlap(meta_offset, meta_size, segtab_offset, segtab_size):
        raise ImageError("image metadata and segment table overlap")

    # metadata
    raw_meta = bytes(view[meta_offset : meta_offset + meta_size])
    metadata = _decode_metadata(raw_meta)
    _check_metadata(metadata)

    # host object
    host = bytes(view[0:host_size])
    _check_host_elf(host, metadata["host_isa"])

    # segment table
    if segtab_size < SEGTAB_HEADER.size:
        raise ImageError("image segment table is truncated")
    count, entry_size = SEGTAB_HEADER.unpack_from(view, segtab_offset)
    if entry_size != SEGTAB_ENTRY.size or segtab_size != SEGTAB_HEADER.size + count * entry_size:
        raise ImageError("image segment table is malformed")
    taken = [(meta_offset, meta_size), (segtab_offset, segtab_size)]
    segments = []
    for i in range(count):
        vaddr, memsz, data_offset, data_size, flags, reserved = SEGTAB_ENTRY.unpack_from(
            view, segtab_offset + SEGTAB_HEADER.size + i * entry_size
        )
        if reserved:
            raise ImageError(f"image segment {i} is malformed")
        _check_segment_values(vaddr, memsz, flags, data_size, index=i)
        region(f"segment {i} data", data_offset, data_size, body_start)
        for off, length in taken:
            if _overlap(off, length, data_offset, data_size):
                raise ImageError(f"image segment {i} data overlaps another region")
        taken.append((data_offset, data_size))
        segments.append(
            GuestSegment(vaddr=vaddr, memsz=memsz, flags=flags,
                         data=bytes(view[data_offset : data_offset + data_size]))
        )
    return ImageContents(host_object=host, metadata=metadata, segments=tuple(segments))


def _json_depth(raw: bytes, limit: int) -> int:
    """How deep ``raw``'s arrays and objects nest (counting stops past ``limit``);
    brackets inside strings do not count."""
    depth = deepest = 0
    for match in _JSON_TOKENS.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


def _decode_metadata(raw: bytes) -> Any:
    """The metadata block as JSON, with a bounded nesting depth."""
    if _json_depth(raw, MAX_METADATA_DEPTH) > MAX_METADATA_DEPTH:
        raise ImageError(f"image metadata nests deeper than {MAX_METADATA_DEPTH} levels")
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ImageError(f"image metadata is not valid JSON: {_first_line(exc)}") from None


def _overlap(a: int, alen: int, b: int, blen: int) -> bool:
    return alen > 0 and blen > 0 and a < b + blen and b < a + alen


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _check_segment_values(vaddr, memsz, flags, data_size, index: int | None = None) -> None:
    what = "guest segment" if index is None else f"image segment {index}"
    if not (0 <= vaddr < 1 << 64) or not (0 <= memsz < 1 << 64):
        raise ImageError(f"{what} address or size is out of range")
    if data_size > memsz:
        raise ImageError(f"{what} has more file data ({data_size}) than memory size ({memsz})")
    if vaddr + memsz > 1 << 64:
        raise ImageError(f"{what} wraps around the address space")
    if flags & ~7:
        raise ImageError(f"{what} has invalid flags {flags:#x}")


def _host_isa_of(metadata: Any) -> str:
    if isinstance(metadata, dict) and isinstance(metadata.get("host_isa"), str):
        return metadata["host_isa"]
    raise ImageError("image metadata lacks 'host_isa'")


def _check_metadata(metadata: Any) -> None:
    if not isinstance(metadata, dict):
        raise ImageError("image metadata is not a JSON object")
    for key in REQUIRED_METADATA_KEYS:
        if key not in metadata:
            raise ImageError(f"image metadata lacks {key!r}")
    if metadata["format_version"] != METADATA_FORMAT_VERSION:
        raise ImageError(f"unsupported image metadata format_version {metadata['format_version']!r}")
    host_isa = metadata["host_isa"]
    if not isinstance(host_isa, str) or host_isa not in ELF_MACHINES:
        raise ImageError(f"image metadata names an unknown host_isa {host_isa!r}")
    if metadata["engine"] not in ENGINES:
        raise ImageError(f"image metadata names an unknown engine {metadata['engine']!r}")
    for key in ("entry", "phdr_vaddr", "phent", "phnum", "arena_bits", "load_base"):
        if key not in REQUIRED_METADATA_KEYS and key not in metadata:
            continue        # load_base: a static-pie's only
        value = metadata[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ImageError(f"image metadata {key!r} is not a non-negative integer")
    if not isinstance(metadata["stats"], dict):
        raise ImageError("image metadata 'stats' is not an object")


def _check_host_elf(host: bytes, host_isa: str) -> None:
    if len(host) < _ELF_HEADER_SIZE or host[:4] != b"\x7fELF":
        raise ImageError("image host object is not an ELF file")
    if host[4] != 2 or host[5] != 1:
        raise ImageError("image host object is not a 64-bit little-endian ELF file")
    e_type = int.from_bytes(host[0x10:0x12], "little")
    e_machine = int.from_bytes(host[0x12:0x14], "little")
    if e_type != _ET_DYN:
        raise ImageError(f"image host object is not an ELF shared object (e_type {e_type})")
    expected = ELF_MACHINES.get(host_isa)
    if expected is None:
        raise ImageError(f"image metadata names an unknown host_isa {host_isa!r}")
    if e_machine != expected:
        names = {v: k for k, v in ELF_MACHINES.items()}
        actual = names.get(e_machine, f"e_machine {e_machine}")
        raise ImageError(f"image host object is for {actual}, not {host_isa}")
    e_phoff = int.from_bytes(host[0x20:0x28], "little")
    e_phentsize = int.from_bytes(host[0x36:0x38], "little")
    e_phnum = int.from_bytes(host[0x38:0x3A], "little")
    if e_phnum == 0 or e_phentsize < 56 or e_phoff + e_phentsize * e_phnum > len(host):
        raise ImageError("image host object has no valid program headers")
