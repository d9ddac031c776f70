from __future__ import annotations

import ctypes
import fcntl
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aotc.errors import AotcError, ImageError, ImageVerificationError
from aotc.image import ImageContents, write_image
from aotc.image.layout import FOOTER, FOOTER_SIZE
from aotc.image.testing import build_test_host_object, sample_contents, sample_metadata, sample_segments
from aotc.keys import fingerprint
from loader import LoadedImage, load_image, read_image_file
from loader.image import ALL_SEALS, F_GET_SEALS


@pytest.fixture(scope="module")
def host_object(tmp_path_factory) -> bytes:
    return build_test_host_object(tmp_path_factory.mktemp("host"))


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def image(tmp_path, host_object, key) -> Path:
    path = tmp_path / "guest.so"
    write_image(path, sample_contents(host_object), key)
    return path


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def memfd_mappings(name: str) -> list[str]:
    return [l for l in Path("/proc/self/maps").read_text().splitlines() if f"aotc-image:{name}" in l]


def test_load_resolves_and_calls_symbol(image, key):
    with load_image(image, [key.public_key()]) as loaded:
        assert isinstance(loaded, LoadedImage)
        assert loaded.metadata == sample_metadata()
        assert loaded.segments == sample_segments()
        assert loaded.signer == fingerprint(key.public_key())
        add = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_int)(loaded.symbol_address("aotc_test_add"))
        assert add(40, 2) == 42
        value = ctypes.c_int.from_address(loaded.symbol_address("aotc_test_value"))
        assert value.value == 1234
        with pytest.raises(ImageError, match="no symbol 'no_such_symbol'"):
            loaded.symbol_address("no_such_symbol")
        # the code is mapped from the sealed memfd, not from the file
        seals = fcntl.fcntl(loaded.fd, F_GET_SEALS)
        assert seals & ALL_SEALS == ALL_SEALS
        assert os.readlink(f"/proc/self/fd/{loaded.fd}").startswith("/memfd:aotc-image:guest.so")
        maps = memfd_mappings("guest.so")
        assert any(" r-xp " in l for l in maps), maps
        # the sealed copy cannot be written
        with pytest.raises(OSError):
            os.pwrite(loaded.fd, b"x", 0)
    assert loaded.closed
    with pytest.raises(ImageError, match="closed"):
        loaded.symbol_address("aotc_test_add")


def test_file_changes_after_load_do_not_matter(image, key, host_object):
    loaded = load_image(image, [key.public_key()])
    try:
        image.write_bytes(b"garbage")
        add = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_int)(loaded.symbol_address("aotc_test_add"))
        assert add(1, 2) == 3
    finally:
        loaded.close()


def test_load_twice_and_reload_after_close(image, key, tmp_path, host_object):
    other_path = tmp_path / "other.so"
    write_image(other_path, sample_contents(host_object, entry=0x20000), key)
    a = load_image(image, [key.public_key()])
    b = load_image(other_path, [key.public_key()])
    assert a.fd != b.fd
    assert b.metadata["entry"] == 0x20000
    assert a.symbol_address("aotc_test_add") != b.symbol_address("aotc_test_add")
    a.close()
    b.close()
    c = load_image(other_path, [key.public_key()])
    assert c.metadata["entry"] == 0x20000
    c.close()


def test_no_fd_leak_on_repeated_load_and_failure(image, key):
    before = open_fds()
    for _ in range(5):
        load_image(image, [key.public_key()]).close()
        with pytest.raises(ImageVerificationError):
            load_image(image, [])
    assert open_fds() == before


def test_missing_file(tmp_path, key):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.so", [key.public_key()])
    with pytest.raises(ImageError, match="no such file"):
        read_image_file(tmp_path / "nope.so")


def test_directory(tmp_path, key):
    with pytest.raises(ImageError, match="is a directory"):
        load_image(tmp_path, [key.public_key()])


def test_empty_file(tmp_path, key):
    p = tmp_path / "empty.so"
    p.write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        load_image(p, [key.public_key()])
    with pytest.raises(ImageError, match="empty"):
        read_image_file(p)


def test_not_an_image(tmp_path, key, host_object):
    p = tmp_path / "plain.so"
    p.write_bytes(host_object)
    with pytest.raises(ImageError, match="not an aotc image"):
        load_image(p, [key.public_key()])
    assert memfd_mappings("plain.so") == []


def test_truncated(image, key):
    data = image.read_bytes()
    image.write_bytes(data[:-10])
    with pytest.raises(ImageError, match="truncated"):
        load_image(image, [key.public_key()])
    image.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated"):
        load_image(image, [key.public_key()])


def test_unsigned(tmp_path, host_object, key):
    p = tmp_path / "unsigned.so"
    write_image(p, sample_contents(host_object), None)
    with pytest.raises(ImageVerificationError, match="image is not signed"):
        load_image(p, [key.public_key()])


def _offsets(data: bytes) -> dict[str, int]:
    (_m, _v, _fs, _size, host_size, _po, meta_off, meta_size, segtab_off, segtab_size,
     _alg, _r, _pub, _sig) = FOOTER.unpack_from(data, len(data) - FOOTER_SIZE)
    return {
        "host code": host_size // 2,
        "metadata": meta_off + meta_size - 3,
        "segments": ((segtab_off + segtab_size + 15) & ~15) + 1,
        "footer key": len(data) - 64 - 5,
        "signature": len(data) - 7,
    }


@pytest.mark.parametrize("region", ["host code", "metadata", "segments", "footer key", "signature"])
def test_tampered(image, key, region):
    data = bytearray(image.read_bytes())
    data[_offsets(bytes(data))[region]] ^= 0x40
    image.write_bytes(bytes(data))
    with pytest.raises(ImageVerificationError) as info:
        load_image(image, [key.public_key()])
    assert str(info.value) == f"{image}: signature does not match: image was modified"
    assert memfd_mappings("guest.so") == []  # nothing was mapped, let alone executable


def test_untrusted_key(image, key):
    other = Ed25519PrivateKey.generate()
    with pytest.raises(ImageVerificationError, match=f"signed by an untrusted key {fingerprint(key.public_key())}"):
        load_image(image, [other.public_key()])
    with pytest.raises(ImageVerificationError, match="untrusted"):
        load_image(image, [])
    load_image(image, [other.public_key(), key.public_key()]).close()


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="test names aarch64 as the foreign host")
def test_wrong_host(tmp_path, host_object, key):
    foreign = bytearray(host_object)
    foreign[0x12:0x14] = (183).to_bytes(2, "little")  # EM_AARCH64
    p = tmp_path / "arm.so"
    contents = ImageContents(bytes(foreign), sample_metadata(host_isa="aarch64"), sample_segments())
    write_image(p, contents, key)
    with pytest.raises(ImageError) as info:
        load_image(p, [key.public_key()])
    assert not isinstance(info.value, ImageVerificationError)
    assert str(info.value).endswith("image is for host aarch64, this host is x86_64")
    # inspect/verify can still read it
    assert read_image_file(p).contents.metadata["host_isa"] == "aarch64"


def test_undefined_symbol_in_host_object_is_image_error(tmp_path, key):
    host = build_test_host_object(
        tmp_path / "undef", "extern int aotc_missing_fn(void); int f(void) { return aotc_missing_fn(); }"
    )
    p = tmp_path / "undef.so"
    write_image(p, ImageContents(host, sample_metadata(), ()), key)
    with pytest.raises(ImageError, match="cannot load host code"):
        load_image(p, [key.public_key()])


def test_all_errors_are_one_line_aotc_errors(tmp_path, key):
    p = tmp_path / "x.so"
    for data in [b"", b"\x7fELF" + b"\0" * 60, b"AOTCIMG1" * 50]:
        p.write_bytes(data)
        with pytest.raises(AotcError) as info:
            load_image(p, [key.public_key()])
        assert "\n" not in str(info.value)
