from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aotc import __version__
from aotc.cli import main
from aotc.errors import ElfError
from aotc.image import write_image
from aotc.image.testing import build_test_host_object, sample_contents
from aotc.keys import fingerprint, load_or_create_signing_key

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def config_dir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "config"
    monkeypatch.setenv("AOTC_CONFIG_DIR", str(d))
    return d


@pytest.fixture(scope="module")
def host_object(tmp_path_factory) -> bytes:
    return build_test_host_object(tmp_path_factory.mktemp("host"))


@pytest.fixture
def own_image(tmp_path, host_object, config_dir) -> Path:
    key = load_or_create_signing_key()
    path = tmp_path / "own.so"
    write_image(path, sample_contents(host_object), key)
    return path


@pytest.fixture
def foreign(tmp_path, host_object) -> tuple[Path, Path, Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "foreign.so"
    write_image(path, sample_contents(host_object), key)
    pub = tmp_path / "foreign.pub"
    pub.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return path, pub, key


def run(*args: str):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert "Traceback" not in result.stdout
    assert "Traceback" not in result.stderr
    return result


def test_version():
    result = run("--version")
    assert result.exit_code == 0 and __version__ in result.stdout


def test_keygen_creates_refuses_and_forces(config_dir):
    result = run("keygen")
    assert result.exit_code == 0, result.stdout
    priv = config_dir / "signing-key.pem"
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert str(config_dir / "signing-key.pub") in result.stdout
    fp = result.stdout.split("fingerprint:")[1].split()[0]
    assert len(fp) == 16
    again = run("keygen")
    assert again.exit_code == 1
    assert again.stderr.startswith("aotc: error: a signing key already exists")
    assert again.stderr.count("\n") == 1
    forced = run("keygen", "--force")
    assert forced.exit_code == 0
    assert forced.stdout.split("fingerprint:")[1].split()[0] != fp


def test_keygen_dir(tmp_path):
    d = tmp_path / "elsewhere"
    result = run("keygen", "--dir", str(d))
    assert result.exit_code == 0
    assert (d / "signing-key.pem").exists()


def test_verify_own_key(own_image):
    result = run("verify", str(own_image))
    assert result.exit_code == 0, result.stderr
    key = load_or_create_signing_key()
    assert result.stdout == f"OK: signed by {fingerprint(key.public_key())} (trusted)\n"


def test_verify_untrusted_then_trust(foreign):
    path, pub, key = foreign
    result = run("verify", str(path))
    assert result.exit_code == 1
    assert result.stderr == f"aotc: error: {path}: signed by an untrusted key {fingerprint(key.public_key())}\n"
    ok = run("verify", str(path), "--trust", str(pub))
    assert ok.exit_code == 0
    assert ok.stdout.startswith("OK: signed by")


@pytest.mark.parametrize("damage,message", [
    ("missing", "no such file"),
    ("empty", "empty"),
    ("plain", "not an aotc image"),
    ("truncate", "truncated"),
    ("flip", "signature does not match: image was modified"),
])
def test_verify_bad_images(own_image, host_object, damage, message):
    data = own_image.read_bytes()
    if damage == "missing":
        own_image.unlink()
    elif damage == "empty":
        own_image.write_bytes(b"")
    elif damage == "plain":
        own_image.write_bytes(host_object)
    elif damage == "truncate":
        own_image.write_bytes(data[:-20])
    elif damage == "flip":
        own_image.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    result = run("verify", str(own_image))
    assert result.exit_code == 1
    assert result.stderr.startswith("aotc: error: ")
    assert message in result.stderr
    assert result.stderr.count("\n") == 1


def test_verify_bad_trust_file(own_image, tmp_path):
    bad = tmp_path / "bad.pub"
    bad.write_text("not a key")
    result = run("verify", str(own_image), "--trust", str(bad))
    assert result.exit_code == 1
    assert "aotc: error:" in result.stderr and "not an Ed25519 public key" in result.stderr


def test_inspect_human(own_image):
    result = run("inspect", str(own_image))
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    for text in ["guest ISA:     riscv64", "engine:        aot", "entry:         0x10078",
                 "ab" * 32, "3 blocks, 17 instructions", "untranslated:  1 (0x10100 fence.i)",
                 "(trusted)", "r-x", "rw-", "host code:"]:
        assert text in out, (text, out)


def test_inspect_json_untrusted_and_trusted(foreign):
    path, pub, key = foreign
    result = run("inspect", str(path), "--json")
    assert result.exit_code == 0
    info = json.loads(result.stdout)
    assert info["signature"] == {
        "signed": True, "valid": True, "trusted": False,
        "fingerprint": fingerprint(key.public_key()),
        "status": f"signed by an untrusted key {fingerprint(key.public_key())}",
    }
    assert info["guest_isa"] == "riscv64" and info["engine"] == "aot"
    assert info["blocks"] == 3 and info["instructions"] == 17 and info["untranslated_count"] == 1
    assert [s["vaddr"] for s in info["segments"]] == [0x10000, 0x11000]
    assert info["host_code_bytes"] > 0
    trusted = json.loads(run("inspect", str(path), "--json", "--trust", str(pub)).stdout)
    assert trusted["signature"]["trusted"] is True


def test_inspect_unsigned(tmp_path, host_object):
    p = tmp_path / "unsigned.so"
    write_image(p, sample_contents(host_object), None)
    result = run("inspect", str(p))
    assert result.exit_code == 0 and "NOT SIGNED" in result.stdout
    v = run("verify", str(p))
    assert v.exit_code == 1 and "image is not signed" in v.stderr


# --- build (the builder itself is aotc.build; here a stand-in checks the wiring)


@dataclass
class FakeReport:
    output: str

    def to_dict(self) -> dict:
        return {"output": self.output, "blocks": 1}

    def summary(self) -> str:
        return f"{self.output}: built"


@pytest.fixture
def fake_build(monkeypatch, host_object):
    import aotc.build

    calls = []

    def build_image(guest, output, *, key, jobs, opt_level, progress, use_cache):
        calls.append(dict(guest=guest, output=output, key=key, jobs=jobs, opt_level=opt_level,
                          use_cache=use_cache))
        if progress:
            progress("working")
        write_image(output, sample_contents(host_object), key)
        return FakeReport(str(output))

    monkeypatch.setattr(aotc.build, "build_image", build_image)
    return calls


def test_build_default_output_and_first_use_key(tmp_path, monkeypatch, config_dir, fake_build):
    guest = tmp_path / "hello.elf"
    guest.write_bytes(b"\x7fELF")
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    result = run("build", str(guest), "-j", "3", "-O", "1")
    assert result.exit_code == 0, result.stderr
    assert "created signing key" in result.stderr and "working" in result.stderr
    assert stat.S_IMODE((config_dir / "signing-key.pem").stat().st_mode) == 0o600
    (call,) = fake_build
    assert call["output"] == workdir / "hello.so"
    assert call["jobs"] == 3 and call["opt_level"] == 1
    assert call["use_cache"] is True
    assert result.stdout == f"{workdir / 'hello.so'}: built\n"
    assert run("verify", str(workdir / "hello.so")).exit_code == 0
    assert run("build", str(guest), "--no-cache").exit_code == 0
    assert fake_build[-1]["use_cache"] is False


def test_build_json_with_key(tmp_path, fake_build):
    guest = tmp_path / "g"
    guest.write_bytes(b"x")
    key = Ed25519PrivateKey.generate()
    key_path = tmp_path / "k.pem"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    out = tmp_path / "out.so"
    result = run("build", str(guest), "-o", str(out), "--key", str(key_path), "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"output": str(out), "blocks": 1}
    assert fingerprint(fake_build[0]["key"].public_key()) == fingerprint(key.public_key())


def test_build_errors_are_reported(tmp_path, monkeypatch, fake_build):
    result = run("build", str(tmp_path / "missing"))
    assert result.exit_code == 1 and result.stderr.startswith("aotc: error: ") and "no such file" in result.stderr
    guest = tmp_path / "g"
    guest.write_bytes(b"x")
    bad_key = run("build", str(guest), "--key", str(tmp_path / "nokey.pem"))
    assert bad_key.exit_code == 1 and "cannot read signing key" in bad_key.stderr

    import aotc.build

    def failing(*a, **k):
        raise ElfError("g: not an ELF file")

    monkeypatch.setattr(aotc.build, "build_image", failing)
    failed = run("build", str(guest), "-o", str(tmp_path / "o.so"))
    assert failed.exit_code == 1
    assert failed.stderr.splitlines()[-1] == "aotc: error: g: not an ELF file"
    assert "Traceback" not in failed.stderr


def test_bad_option_is_usage_error():
    result = run("build", "x", "-O", "9")
    assert result.exit_code == 2


def test_subprocess_no_traceback(tmp_path, config_dir):
    env = dict(os.environ, AOTC_CONFIG_DIR=str(config_dir), PYTHONPATH=str(ROOT))
    junk = tmp_path / "junk.so"
    junk.write_bytes(b"junk" * 100)
    for args in (["verify", str(junk)], ["inspect", str(junk)], ["verify", str(tmp_path / "none")],
                 ["inspect", "--json", str(tmp_path)]):
        proc = subprocess.run([sys.executable, "-m", "aotc.cli", *args], capture_output=True, text=True,
                              env=env, cwd=tmp_path)
        assert proc.returncode == 1, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert proc.stderr.startswith("aotc: error: ") and proc.stderr.count("\n") == 1
    version = subprocess.run([sys.executable, "-m", "aotc.cli", "--version"], capture_output=True,
                             text=True, env=env)
    assert version.returncode == 0 and __version__ in version.stdout
