"""aotrun start-up stays lean: what a run of an image imports, and the fast
public-key path that avoids cryptography's serialization module."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import BIN, aotrun_cmd, run_tool
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aotc import keys
from aotc.errors import SigningKeyError
from runtime.cli import _parser, _split_at_image

# Modules a plain `aotrun IMAGE` must not import: the translator (LLVM, ELF
# parsing, disassembly), cryptography's key-serialization machinery, click.
HEAVY = ("llvmlite", "elftools", "lief", "capstone", "aotc.backend", "aotc.discover",
         "cryptography.hazmat.primitives.serialization", "ctypes.util", "subprocess", "click",
         "platform")


def test_run_path_imports_stay_lean(tmp_path):
    # Everything aotrun imports before the guest runs (CLI, keys, loader,
    # machine, memory, kernel), without running a guest.
    code = (
        "import sys, json\n"
        "import runtime.cli, runtime.machine, runtime.guest_memory, runtime.linux.kernel, runtime.process\n"
        "from aotc.keys import trusted_keys\n"
        "from loader import load_image\n"
        "trusted_keys([])\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"AOTC_CONFIG_DIR": str(tmp_path), "PATH": ""}, cwd=tmp_path)
    loaded = set(json.loads(out.stdout))
    assert "loader.image" in loaded and "runtime.linux.kernel" in loaded
    heavy = sorted(m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert heavy == []


def test_spki_pem_fast_path_matches_the_general_parser(tmp_path):
    pub = Ed25519PrivateKey.generate().public_key()
    pem = pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert keys._spki_pem_raw(pem.strip()) == pub.public_bytes_raw()
    path = tmp_path / "k.pub"
    path.write_bytes(pem)
    assert keys.load_public_key(path).public_bytes_raw() == pub.public_bytes_raw()


@pytest.mark.parametrize("mangle", ["ec-key", "bad-base64", "short"])
def test_other_public_pems_still_go_through_the_general_parser(tmp_path, mangle):
    ed_pem = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    if mangle == "ec-key":
        data = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        expected = "not an Ed25519 key"
    elif mangle == "bad-base64":
        lines = ed_pem.splitlines()
        data = b"\n".join([lines[0], b"!!!!" + lines[1][4:], *lines[2:]])
        expected = "not a readable PEM key"
    else:
        lines = ed_pem.splitlines()
        data = b"\n".join([lines[0], lines[1][:-8] + b"========", *lines[2:]])
        expected = "not a readable PEM key"
    assert keys._spki_pem_raw(data.strip()) is None
    path = tmp_path / "k.pub"
    path.write_bytes(data)
    with pytest.raises(SigningKeyError, match=expected):
        keys.load_public_key(path)


@pytest.mark.parametrize("argv, own, guest", [
    (["img", "a", "-h", "--strace"], ["img"], ["a", "-h", "--strace"]),
    (["--strace", "-E", "A=1", "--env=B=2", "-EC=3", "img", "x"],
     ["--strace", "-E", "A=1", "--env=B=2", "-EC=3", "img"], ["x"]),
    (["--engine", "interp", "--timeout", "5", "img"], ["--engine", "interp", "--timeout", "5", "img"], []),
    (["--", "-img", "--", "x"], ["--", "-img"], ["--", "x"]),
    (["img", "--", "x"], ["img"], ["--", "x"]),
    (["--strace"], ["--strace"], []),
])
def test_options_stop_at_the_image(argv, own, guest):
    assert _split_at_image(_parser(), argv) == (own, guest)


def test_guest_args_pass_through_verbatim(tmp_path, config_dir):
    proc = run_tool([*aotrun_cmd(), "--engine=interp", "--clear-env", "-E", "AOTC_SAMPLE=1",
                     str(BIN / "hello.riscv64-musl"), "--", "-h"])
    out = proc.stdout.decode()
    assert proc.returncode == 3, proc.stderr       # hello exits 3 unless argc == 2
    assert "argv[1]=-- (len 2)" in out and "argv[2]=-h (len 2)" in out and "argc=3" in out, out
    assert "AOTC_SAMPLE=1" in out and "PATH is unset" in out, out


@pytest.mark.parametrize("args, message", [
    (["--timeout", "0", "x"], b"--timeout"),
    (["--max-memory", "12Q", "x"], b"--max-memory"),
    (["-E", "novalue", "x"], b"NAME=VALUE"),
    (["--engine=zz", "x"], b"invalid choice"),
    (["--no-such-option", "x"], b"--no-such-option"),
    ([], b"IMAGE"),
])
def test_usage_errors_exit_2(args, message):
    proc = run_tool([*aotrun_cmd(), *args])
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert b"Traceback" not in proc.stderr


def test_version():
    proc = run_tool([*aotrun_cmd(), "--version"])
    assert proc.returncode == 0 and proc.stdout.startswith(b"aotrun, version "), proc
