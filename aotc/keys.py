"""Per-user Ed25519 signing keys for aotc images.

The key directory is ``$AOTC_CONFIG_DIR`` if set, else ``$XDG_CONFIG_HOME/aotc``
or ``~/.config/aotc``.  It holds ``signing-key.pem`` (PKCS8 PEM, mode 0600)
and ``signing-key.pub`` (SubjectPublicKeyInfo PEM).  Public keys of other
signers the user trusts may be dropped into ``trusted-keys/*.pub``.
"""

from __future__ import annotations

import binascii
import hashlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from aotc.errors import SigningKeyError

# ``cryptography.hazmat.primitives.serialization`` costs ~30 ms to import;
# aotrun only needs public keys, so it is imported where a key is written or a
# private/unusual PEM is read, and Ed25519 SubjectPublicKeyInfo PEM (what
# ``aotc keygen`` writes) is decoded here: a fixed DER prefix + 32 raw bytes.
_ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
_PEM_PUBLIC_BEGIN = b"-----BEGIN PUBLIC KEY-----"
_PEM_PUBLIC_END = b"-----END PUBLIC KEY-----"

PRIVATE_KEY_NAME = "signing-key.pem"
PUBLIC_KEY_NAME = "signing-key.pub"
TRUSTED_KEYS_DIR = "trusted-keys"


def default_key_dir() -> Path:
    from aotc.user_dirs import user_dir

    return user_dir("AOTC_CONFIG_DIR", "XDG_CONFIG_HOME", ".config")


def private_key_path(key_dir: Path | None = None) -> Path:
    return Path(key_dir if key_dir is not None else default_key_dir()) / PRIVATE_KEY_NAME


def public_key_path(key_dir: Path | None = None) -> Path:
    return Path(key_dir if key_dir is not None else default_key_dir()) / PUBLIC_KEY_NAME


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes_raw()


def fingerprint(pubkey: Ed25519PublicKey | bytes) -> str:
    """Short hex (16 digits) of the SHA-256 of the raw 32-byte public key."""
    raw = pubkey if isinstance(pubkey, (bytes, bytearray)) else raw_public_key(pubkey)
    return hashlib.sha256(bytes(raw)).hexdigest()[:16]


def _os_reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _write_file(path: Path, data: bytes, mode: int, *, replace: bool) -> None:
    """Write ``data`` to ``path`` atomically; without ``replace`` never clobber."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails with FileExistsError instead of clobbering
            os.unlink(tmp)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def generate_key(path_dir: Path | None = None, force: bool = False) -> Ed25519PrivateKey:
    """Create a new key pair in ``path_dir`` (default: ``default_key_dir()``).

    Refuses to replace an existing private key unless ``force``.
    """
    from cryptography.hazmat.primitives import serialization

    key_dir = Path(path_dir) if path_dir is not None else default_key_dir()
    priv_path = key_dir / PRIVATE_KEY_NAME
    pub_path = key_dir / PUBLIC_KEY_NAME
    if priv_path.exists() and not force:
        raise SigningKeyError(f"a signing key already exists at {priv_path} (use --force to replace it)")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    pub_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    try:
        key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_file(priv_path, pem, 0o600, replace=force)
    except FileExistsError:
        raise SigningKeyError(
            f"a signing key already exists at {priv_path} (use --force to replace it)"
        ) from None
    except OSError as exc:
        raise SigningKeyError(f"cannot create signing key in {key_dir}: {_os_reason(exc)}") from None
    try:
        _write_file(pub_path, pub_pem, 0o644, replace=True)
    except OSError as exc:
        raise SigningKeyError(f"cannot write public key {pub_path}: {_os_reason(exc)}") from None
    return key


def load_private_key(path: Path) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives import serialization

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read signing key {path}: {_os_reason(exc)}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise SigningKeyError(f"signing key {path} is encrypted; aotc needs an unencrypted key") from None
    except (ValueError, binascii.Error):
        raise SigningKeyError(f"{path} is not a PEM private key") from None
    except Exception as exc:  # cryptography raises UnsupportedAlgorithm for some inputs
        raise SigningKeyError(f"{path} is not a usable private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"signing key {path} is not an Ed25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """A public key from PEM (public, or private: its public half), raw 32 bytes, or 64 hex digits."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read public key {path}: {_os_reason(exc)}") from None
    return parse_public_key(data, source=str(path))


def parse_public_key(data: bytes, source: str = "public key") -> Ed25519PublicKey:
    stripped = data.strip()
    key = None
    fast = _spki_pem_raw(stripped)
    if fast is not None:
        try:
            return Ed25519PublicKey.from_public_bytes(fast)
        except ValueError:
            raise SigningKeyError(f"{source} is not a valid Ed25519 public key") from None
    if stripped.startswith(b"-----BEGIN"):
        from cryptography.hazmat.primitives import serialization

        try:
            if b"PRIVATE KEY" in stripped.split(b"\n", 1)[0]:
                private = serialization.load_pem_private_key(stripped, password=None)
                key = private.public_key()
            else:
                key = serialization.load_pem_public_key(stripped)
        except Exception:
            raise SigningKeyError(f"{source} is not a readable PEM key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise SigningKeyError(f"{source} is not an Ed25519 key")
        return key
    raw: bytes | None = None
    if len(data) == 32:
        raw = data
    else:
        try:
            text = stripped.decode("ascii")
            if len(text) == 64:
                raw = bytes.fromhex(text)
        except (UnicodeDecodeError, ValueError):
            raw = None
    if raw is None:
        raise SigningKeyError(f"{source} is not an Ed25519 public key (PEM, raw 32 bytes or hex)")
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise SigningKeyError(f"{source} is not a valid Ed25519 public key") from None


def _spki_pem_raw(pem: bytes) -> bytes | None:
    """The raw key of an Ed25519 SubjectPublicKeyInfo PEM block, or None (then
    the general PEM parser decides what it is)."""
    if not (pem.startswith(_PEM_PUBLIC_BEGIN) and pem.endswith(_PEM_PUBLIC_END)):
        return None
    body = pem[len(_PEM_PUBLIC_BEGIN):-len(_PEM_PUBLIC_END)]
    try:
        der = binascii.a2b_base64(b"".join(body.split()), strict_mode=True)
    except (binascii.Error, ValueError):
        return None
    if len(der) != len(_ED25519_SPKI_PREFIX) + 32 or not der.startswith(_ED25519_SPKI_PREFIX):
        return None
    return der[len(_ED25519_SPKI_PREFIX):]


def load_or_create_signing_key(key_dir: Path | None = None) -> Ed25519PrivateKey:
    """The user's signing key, created (with a one-line notice on stderr) on first use."""
    key_dir = Path(key_dir) if key_dir is not None else default_key_dir()
    priv_path = key_dir / PRIVATE_KEY_NAME
    if priv_path.exists():
        return load_private_key(priv_path)
    try:
        key = generate_key(key_dir)
    except SigningKeyError:
        if priv_path.exists():  # another process created it at the same moment
            return load_private_key(priv_path)
        raise
    print(
        f"aotc: created signing key {priv_path} (fingerprint {fingerprint(key.public_key())})",
        file=sys.stderr,
    )
    return key


def own_public_key(key_dir: Path | None = None) -> Ed25519PublicKey | None:
    """The user's own public key, or None if they have none yet."""
    key_dir = Path(key_dir) if key_dir is not None else default_key_dir()
    pub_path = key_dir / PUBLIC_KEY_NAME
    priv_path = key_dir / PRIVATE_KEY_NAME
    if pub_path.exists():
        return load_public_key(pub_path)
    if priv_path.exists():
        return load_private_key(priv_path).public_key()
    return None


def trusted_keys(extra_paths: Sequence[Path] = ()) -> list[Ed25519PublicKey]:
    """The user's own key, keys in ``<config>/trusted-keys/*.pub``, and ``extra_paths``."""
    key_dir = default_key_dir()
    keys: list[Ed25519PublicKey] = []
    own = own_public_key(key_dir)
    if own is not None:
        keys.append(own)
    trusted_dir = key_dir / TRUSTED_KEYS_DIR
    if trusted_dir.is_dir():
        for path in sorted(trusted_dir.glob("*.pub")):
            keys.append(load_public_key(path))
    for path in extra_paths:
        keys.append(load_public_key(Path(path)))
    return keys
