"""Checking an image's Ed25519 signature against a set of trusted keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from aotc.errors import ImageVerificationError
from aotc.image.container import MISMATCH_MESSAGE, ParsedImage
from aotc.keys import fingerprint


@dataclass(frozen=True)
class SignatureStatus:
    """What is known about an image's signature; never raises."""

    signed: bool
    valid: bool
    trusted: bool
    fingerprint: str | None  # of the key named in the footer

    @property
    def ok(self) -> bool:
        return self.signed and self.valid and self.trusted

    @property
    def message(self) -> str:
        if not self.signed:
            return "image is not signed"
        if not self.valid:
            return MISMATCH_MESSAGE
        if not self.trusted:
            return f"signed by an untrusted key {self.fingerprint}"
        return f"signed by {self.fingerprint} (trusted)"

    def to_dict(self) -> dict:
        return {
            "signed": self.signed,
            "valid": self.valid,
            "trusted": self.trusted,
            "fingerprint": self.fingerprint,
            "status": self.message,
        }


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes_raw()  # no need for the (slow to import) serialization module


def signature_status(parsed: ParsedImage, trusted: Sequence[Ed25519PublicKey]) -> SignatureStatus:
    if parsed.signature is None or parsed.public_key is None:
        return SignatureStatus(signed=False, valid=False, trusted=False, fingerprint=None)
    try:
        signer = Ed25519PublicKey.from_public_bytes(parsed.public_key)
    except ValueError:
        return SignatureStatus(signed=True, valid=False, trusted=False, fingerprint=None)
    fp = fingerprint(signer)
    try:
        signer.verify(parsed.signature, parsed.signed_bytes)
    except InvalidSignature:
        return SignatureStatus(signed=True, valid=False, trusted=False, fingerprint=fp)
    is_trusted = any(_raw(k) == parsed.public_key for k in trusted)
    return SignatureStatus(signed=True, valid=True, trusted=is_trusted, fingerprint=fp)


def verify_signature(parsed: ParsedImage, trusted: Sequence[Ed25519PublicKey]) -> None:
    """Raise ``ImageVerificationError`` unless the image is validly signed by a trusted key.

    The signature is checked against the key in the footer first (so a
    modified image is reported as modified, whoever signed it), then that key
    must be one of ``trusted``.
    """
    status = signature_status(parsed, trusted)
    if not status.ok:
        raise ImageVerificationError(status.message)
