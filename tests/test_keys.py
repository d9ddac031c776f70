from __future__ import annotations

import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aotc import keys
from aotc.errors import AotcError, SigningKeyError


@pytest.fixture(autouse=True)
def isolated_config(tmp_path, monkeypatch):
    d = tmp_path / "config"
    monkeypatch.setenv("AOTC_CONFIG_DIR", str(d))
    return d


def raw(pub) -> bytes:
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def test_default_key_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("AOTC_CONFIG_DIR", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "x"))
    assert keys.default_key_dir() == tmp_path / "a"
    monkeypatch.delenv("AOTC_CONFIG_DIR")
    assert keys.default_key_dir() == tmp_path / "x" / "aotc"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert keys.default_key_dir() == tmp_path / "home" / ".config" / "aotc"


def test_load_or_create_creates_once_with_0600(isolated_config, capsys):
    key = keys.load_or_create_signing_key()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "created signing key" in err
    assert keys.fingerprint(key.public_key()) in err
    priv = isolated_config / "signing-key.pem"
    pub = isolated_config / "signing-key.pub"
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert pub.exists()
    again = keys.load_or_create_signing_key()
    assert capsys.readouterr().err == ""
    assert raw(again.public_key()) == raw(key.public_key())
    assert raw(keys.load_public_key(pub)) == raw(key.public_key())


def test_generate_refuses_overwrite_without_force(isolated_config):
    first = keys.generate_key(isolated_config)
    with pytest.raises(SigningKeyError, match="already exists"):
        keys.generate_key(isolated_config)
    second = keys.generate_key(isolated_config, force=True)
    assert raw(first.public_key()) != raw(second.public_key())
    loaded = keys.load_private_key(isolated_config / "signing-key.pem")
    assert raw(loaded.public_key()) == raw(second.public_key())
    assert stat.S_IMODE((isolated_config / "signing-key.pem").stat().st_mode) == 0o600


def test_load_public_key_formats(tmp_path):
    key = Ed25519PrivateKey.generate()
    pub = key.public_key()
    r = raw(pub)
    pem = pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    for name, data in [("raw", r), ("hex", (r.hex() + "\n").encode()), ("pem", pem)]:
        p = tmp_path / name
        p.write_bytes(data)
        assert raw(keys.load_public_key(p)) == r, name


def test_bad_keys_are_signing_key_errors(tmp_path):
    missing = tmp_path / "missing.pub"
    with pytest.raises(SigningKeyError, match="cannot read public key"):
        keys.load_public_key(missing)
    junk = tmp_path / "junk.pub"
    junk.write_text("hello")
    with pytest.raises(SigningKeyError, match="not an Ed25519 public key"):
        keys.load_public_key(junk)
    with pytest.raises(SigningKeyError, match="not a PEM private key"):
        keys.load_private_key(junk)
    with pytest.raises(SigningKeyError, match="cannot read signing key"):
        keys.load_private_key(missing)


def test_fingerprint_is_short_hex_of_sha256():
    key = Ed25519PrivateKey.generate().public_key()
    import hashlib

    fp = keys.fingerprint(key)
    assert fp == hashlib.sha256(raw(key)).hexdigest()[:16]
    assert keys.fingerprint(raw(key)) == fp


def test_trusted_keys_own_plus_extra(isolated_config, tmp_path):
    assert keys.trusted_keys([]) == []
    own = keys.load_or_create_signing_key()
    other = Ed25519PrivateKey.generate().public_key()
    p = tmp_path / "other.hex"
    p.write_text(raw(other).hex())
    got = [raw(k) for k in keys.trusted_keys([p])]
    assert got == [raw(own.public_key()), raw(other)]
    # keys dropped into <config>/trusted-keys/*.pub are trusted too
    third = Ed25519PrivateKey.generate().public_key()
    (isolated_config / "trusted-keys").mkdir()
    (isolated_config / "trusted-keys" / "x.pub").write_bytes(raw(third))
    assert raw(third) in [raw(k) for k in keys.trusted_keys([])]
    with pytest.raises(AotcError):
        keys.trusted_keys([tmp_path / "nope.pub"])
