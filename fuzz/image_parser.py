#!/usr/bin/env python3
"""Coverage-guided fuzzing of the image container parser and verifier.

Each input is treated as an image file and goes through what ``aotrun``
(``loader.load_image`` short of ``dlopen``), ``aotc verify`` and ``aotc
inspect`` do with it: ``parse_image`` over a memoryview (as the loader's
mapping), ``signature_status``/``verify_signature`` against the harness's
trusted key, ``check_host_isa``, and inspect's description and text.  Any
exception that is not an ``AotcError`` is a crash.

Mutated bytes rarely keep a valid signature, which would stop every input
at the signature check; so when an input's last byte is odd the harness
signs it again (over the same bytes the footer's signature covers, with the
trusted key) before parsing, and malformed-but-trusted images reach the
code after verification too.

Seeds, made at start-up with the container writer around a small host
object compiled with the system C compiler (``aotc.image.testing``): a
signed and an unsigned image, and one whose metadata nests deeply.

    python fuzz/image_parser.py --runs 1000000
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import runner  # noqa: E402

MAX_LEN = 64 * 1024


def instrument() -> None:
    import atheris

    with atheris.instrument_imports(include=["aotc", "loader"]):
        import aotc.cli  # noqa: F401
        import aotc.image  # noqa: F401
        import aotc.image.container  # noqa: F401
        import aotc.image.signature  # noqa: F401
        import loader.image  # noqa: F401


def _key():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


def _resign(data: bytes, key) -> bytes:
    """``data`` with a fresh signature by ``key`` in its footer, if it has one."""
    from aotc.image.layout import FOOTER_SIZE, PUBLIC_KEY_SIZE, SIGNATURE_SIZE

    if len(data) < FOOTER_SIZE:
        return data
    out = bytearray(data)
    key_at = len(out) - SIGNATURE_SIZE - PUBLIC_KEY_SIZE
    out[key_at:key_at + PUBLIC_KEY_SIZE] = key.public_key().public_bytes_raw()
    out[-SIGNATURE_SIZE:] = key.sign(bytes(out[:-SIGNATURE_SIZE]))
    return bytes(out)


def make_target() -> runner.Target:
    from aotc.cli import describe, inspect_text
    from aotc.image import check_host_isa, parse_image, signature_status, verify_signature

    key = _key()
    trusted = [key.public_key()]
    image = Path("fuzz.so")

    def target(data: bytes) -> None:
        if data[-1:] and data[-1] & 1:
            data = _resign(data, key)
        parsed = parse_image(memoryview(data))
        status = signature_status(parsed, trusted)
        inspect_text(image, describe(image, parsed, status), status)
        verify_signature(parsed, trusted)
        check_host_isa(parsed.contents.metadata)

    return target


def write_seeds(corpus: Path) -> None:
    from aotc.image import serialize_image
    from aotc.image.container import assemble_image
    from aotc.image.testing import build_test_host_object, sample_contents, sample_segments

    with tempfile.TemporaryDirectory(prefix="aotc-fuzz-host-") as tmp:
        host = build_test_host_object(Path(tmp))
    contents = sample_contents(host)
    signed = serialize_image(contents, _key())
    (corpus / "signed.so").write_bytes(signed)
    (corpus / "unsigned.so").write_bytes(serialize_image(contents, None))
    deep = b'{"stats":' + b"[" * 5000 + b"]" * 5000 + b"}"
    (corpus / "deep.so").write_bytes(assemble_image(host, deep, sample_segments(), _key()))


if __name__ == "__main__":
    runner.main("image_parser", make_target, write_seeds, instrument, max_len=MAX_LEN)
