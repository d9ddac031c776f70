from __future__ import annotations

import json
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aotc.errors import AotcError, ImageError, ImageVerificationError
from aotc.image import (
    ImageContents,
    parse_image,
    serialize_image,
    signature_status,
    verify_signature,
    write_image,
)
from aotc.image.layout import FOOTER, FOOTER_SIZE, MAGIC, SIGNATURE_SIZE
from aotc.image.testing import build_test_host_object, sample_contents, sample_metadata
from aotc.keys import fingerprint


@pytest.fixture(scope="module")
def host_object(tmp_path_factory) -> bytes:
    return build_test_host_object(tmp_path_factory.mktemp("host"))


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def contents(host_object) -> ImageContents:
    return sample_contents(host_object)


@pytest.fixture
def signed(contents, key) -> bytes:
    return serialize_image(contents, key)


def footer(data: bytes) -> dict:
    names = ("magic version footer_size file_size host_size payload_offset metadata_offset "
             "metadata_size segtab_offset segtab_size sig_alg reserved public_key signature").split()
    return dict(zip(names, FOOTER.unpack_from(data, len(data) - FOOTER_SIZE)))


def flip(data: bytes, offset: int) -> bytes:
    b = bytearray(data)
    b[offset] ^= 0x01
    return bytes(b)


def test_round_trip(tmp_path, contents, key):
    path = tmp_path / "img.so"
    write_image(path, contents, key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert not [p for p in tmp_path.iterdir() if p.name != "img.so"], "temp file left behind"
    data = path.read_bytes()
    assert data.startswith(contents.host_object)
    assert data[-FOOTER_SIZE:].startswith(MAGIC)
    parsed = parse_image(data)
    assert parsed.contents == contents
    assert parsed.contents.metadata == json.loads(json.dumps(contents.metadata))
    assert parsed.signed_span == (0, len(data) - SIGNATURE_SIZE)
    assert parsed.public_key == footer(data)["public_key"]
    assert parsed.signature == data[-SIGNATURE_SIZE:]
    verify_signature(parsed, [key.public_key()])
    # parse also works over a memoryview
    assert parse_image(memoryview(data)).contents == contents


def test_write_is_atomic_replace(tmp_path, contents, key):
    path = tmp_path / "img.so"
    path.write_bytes(b"old")
    write_image(path, contents, key)
    parse_image(path.read_bytes())


def test_write_to_missing_directory_is_image_error(tmp_path, contents, key):
    with pytest.raises(ImageError, match="cannot write image"):
        write_image(tmp_path / "nodir" / "img.so", contents, key)


def test_signature_covers_footer_fields(signed, key):
    # the signature is over everything before it, footer fields and key included
    key.public_key().verify(signed[-SIGNATURE_SIZE:], signed[:-SIGNATURE_SIZE])


def test_unsigned_image(contents):
    parsed = parse_image(serialize_image(contents, None))
    assert parsed.public_key is None and parsed.signature is None
    with pytest.raises(ImageVerificationError, match="^image is not signed$"):
        verify_signature(parsed, [])


def test_untrusted_key(signed, key):
    other = Ed25519PrivateKey.generate()
    parsed = parse_image(signed)
    with pytest.raises(ImageVerificationError) as info:
        verify_signature(parsed, [other.public_key()])
    assert str(info.value) == f"signed by an untrusted key {fingerprint(key.public_key())}"
    verify_signature(parsed, [other.public_key(), key.public_key()])
    status = signature_status(parsed, [other.public_key()])
    assert status.signed and status.valid and not status.trusted


def _regions(data: bytes) -> dict[str, int]:
    f = footer(data)
    seg_data = f["segtab_offset"] + f["segtab_size"]
    seg_data = (seg_data + 15) & ~15
    return {
        "host header": 0x12,                       # e_machine
        "host code": f["host_size"] // 2,
        "host last byte": f["host_size"] - 1,
        "payload magic": f["payload_offset"],
        "metadata": f["metadata_offset"] + f["metadata_size"] // 2,
        "metadata quote": f["metadata_offset"] + 1,
        "segment table": f["segtab_offset"] + 8,
        "segment data": seg_data + 5,
        "footer size field": len(data) - FOOTER_SIZE + 24,
        "footer public key": len(data) - SIGNATURE_SIZE - 1,
        "signature": len(data) - 1,
        "signature first": len(data) - SIGNATURE_SIZE,
    }


@pytest.mark.parametrize("region", [
    "host header", "host code", "host last byte", "payload magic", "metadata", "metadata quote",
    "segment table", "segment data", "footer size field", "footer public key", "signature",
    "signature first",
])
def test_any_flipped_byte_is_rejected_as_modified(signed, key, region):
    tampered = flip(signed, _regions(signed)[region])
    with pytest.raises(ImageVerificationError, match="^signature does not match: image was modified$"):
        verify_signature(parse_image(tampered), [key.public_key()])


def test_every_byte_is_covered(signed, key):
    """Flip a byte at many offsets across the file: none is accepted."""
    step = max(1, len(signed) // 300)
    for offset in list(range(0, len(signed), step)) + list(range(len(signed) - FOOTER_SIZE, len(signed))):
        tampered = flip(signed, offset)
        with pytest.raises(ImageError):
            verify_signature(parse_image(tampered), [key.public_key()])


def test_empty():
    with pytest.raises(ImageError, match="empty"):
        parse_image(b"")


def test_not_an_image(host_object):
    with pytest.raises(ImageError, match="^not an aotc image"):
        parse_image(host_object)
    with pytest.raises(ImageError, match="^not an aotc image"):
        parse_image(b"hello world" * 100)


@pytest.mark.parametrize("cut", [1, 64, FOOTER_SIZE - 1, FOOTER_SIZE, FOOTER_SIZE + 100])
def test_truncated(signed, cut):
    with pytest.raises(ImageError, match="truncated"):
        parse_image(signed[:-cut])


def test_truncated_into_host_object(signed):
    with pytest.raises(ImageError, match="truncated"):
        parse_image(signed[: footer(signed)["host_size"] - 100])


def test_trailing_garbage(signed):
    with pytest.raises(ImageError, match="after its footer"):
        parse_image(signed + b"junk")


def test_bad_magic(signed):
    off = len(signed) - FOOTER_SIZE
    with pytest.raises(ImageError, match="not an aotc image|truncated"):
        parse_image(signed[:off] + b"XXXXXXXX" + signed[off + 8 :])


def test_unsupported_version(signed):
    off = len(signed) - FOOTER_SIZE + 8
    b = bytearray(signed)
    b[off] = 99
    with pytest.raises(ImageError, match="unsupported image format version 99"):
        parse_image(bytes(b))


def _unsigned_with_footer(contents, **changes) -> bytes:
    data = serialize_image(contents, None)
    fields = list(FOOTER.unpack_from(data, len(data) - FOOTER_SIZE))
    names = list(footer(data))
    for name, value in changes.items():
        fields[names.index(name)] = value
    return data[:-FOOTER_SIZE] + FOOTER.pack(*fields)


@pytest.mark.parametrize("field,value,message", [
    ("metadata_offset", 1 << 40, "metadata at offset .* is out of range"),
    ("metadata_size", 1 << 40, "metadata at offset .* is out of range"),
    ("segtab_offset", 10, "segment table at offset .* is out of range"),
    ("host_size", 1 << 62, "host object size .* out of range"),
    ("file_size", 12345, "does not match its footer"),
    ("payload_offset", 0, "payload at offset .* is out of range"),
    ("sig_alg", 7, "unsupported signature algorithm 7"),
])
def test_offsets_out_of_range(contents, field, value, message):
    with pytest.raises(ImageError, match=message):
        parse_image(_unsigned_with_footer(contents, **{field: value}))


def test_bad_footer_on_signed_image_reports_modified(signed):
    f = footer(signed)
    off = len(signed) - FOOTER_SIZE + 40  # metadata_offset
    b = bytearray(signed)
    b[off : off + 8] = (1 << 40).to_bytes(8, "little")
    with pytest.raises(ImageVerificationError, match="image was modified"):
        parse_image(bytes(b))
    assert f["sig_alg"] == 1


def test_metadata_not_json(contents):
    data = serialize_image(contents, None)
    f = footer(data)
    b = bytearray(data)
    b[f["metadata_offset"]] = ord("#")
    with pytest.raises(ImageError, match="^image metadata is not valid JSON"):
        parse_image(bytes(b))


def test_host_object_not_elf(contents):
    data = bytearray(serialize_image(contents, None))
    data[0:4] = b"\x7fELG"
    with pytest.raises(ImageError, match="host object is not an ELF file"):
        parse_image(bytes(data))


def test_host_object_not_shared_object(contents):
    data = bytearray(serialize_image(contents, None))
    data[0x10] = 2  # ET_EXEC
    with pytest.raises(ImageError, match="not an ELF shared object"):
        parse_image(bytes(data))


def test_host_object_wrong_machine_for_metadata(contents):
    data = bytearray(serialize_image(contents, None))
    data[0x12] = 183  # aarch64, but metadata says x86_64
    with pytest.raises(ImageError, match="host object is for aarch64, not x86_64"):
        parse_image(bytes(data))


def test_write_refuses_bad_contents(tmp_path, host_object, key):
    with pytest.raises(ImageError, match="not an ELF file"):
        write_image(tmp_path / "a.so", ImageContents(b"nope" * 20, sample_metadata(), ()), key)
    meta = sample_metadata()
    del meta["entry"]
    with pytest.raises(ImageError, match="lacks 'entry'"):
        write_image(tmp_path / "a.so", ImageContents(host_object, meta, ()), key)
    with pytest.raises(ImageError, match="unknown engine"):
        write_image(tmp_path / "a.so", ImageContents(host_object, sample_metadata(engine="jit"), ()), key)
    with pytest.raises(ImageError, match="not JSON-serializable"):
        write_image(tmp_path / "a.so", ImageContents(host_object, sample_metadata(extra=object()), ()), key)
    assert not list(tmp_path.iterdir())


def test_errors_are_aotc_errors_with_one_line():
    for data in [b"", b"x" * 1000]:
        with pytest.raises(AotcError) as info:
            parse_image(data)
        assert "\n" not in str(info.value)
