"""The content-addressed build cache of ``aotc build`` (aotc/build_cache.py).

Guests are tiny hand-assembled riscv64 programs, so each real translation
takes well under a second."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import aotc_cmd, aotrun_cmd, run_tool
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from test_guest_exits import ECALL, addi, tiny_elf

from aotc import build_cache
from aotc.build import build_image
from aotc.image import signature_status
from aotc.keys import fingerprint, load_or_create_signing_key
from loader import read_image_file


def exit_program(status: int) -> bytes:
    """a0 = status; a7 = 93 (exit); ecall."""
    return tiny_elf([addi(10, 0, status), addi(17, 0, 93), ECALL])


@pytest.fixture
def cache_root(tmp_path, monkeypatch, config_dir) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("AOTC_CACHE_DIR", str(root))
    monkeypatch.delenv("AOTC_CACHE_MAX_SIZE", raising=False)
    return root


@pytest.fixture
def guest(tmp_path) -> Path:
    path = tmp_path / "exit42"
    path.write_bytes(exit_program(42))
    return path


def build(guest: Path, out: Path, key=None, **options):
    """Build with the cache on; signed with the session's own (trusted) key by default."""
    key = key if key is not None else load_or_create_signing_key()
    messages: list[str] = []
    options.setdefault("jobs", 1)
    report = build_image(guest, out, key=key, progress=messages.append, use_cache=True, **options)
    return report, messages


def host_object(image: Path) -> bytes:
    return read_image_file(image).contents.host_object


def test_second_build_is_a_hit_with_the_same_translated_code(cache_root, guest, tmp_path,
                                                             monkeypatch):
    first, _ = build(guest, tmp_path / "a.so")
    assert first.cache == "miss" and len(first.cache_key) == 64
    assert build_cache.entry_path(first.cache_key).is_file()

    # A hit must not translate: make translation impossible.
    import aotc.backend.compile as compile_mod

    def no_translation(*_a, **_k):
        raise AssertionError("a cache hit translated again")

    monkeypatch.setattr(compile_mod, "compile_blocks", no_translation)
    second, messages = build(guest, tmp_path / "b.so")
    assert second.cache == "hit" and second.cache_key == first.cache_key
    assert any("cache hit" in m for m in messages)
    assert host_object(tmp_path / "b.so") == host_object(tmp_path / "a.so")
    assert (second.blocks, second.instructions, second.host_code_bytes) == \
        (first.blocks, first.instructions, first.host_code_bytes)
    assert read_image_file(tmp_path / "b.so").contents.metadata["stats"] == \
        read_image_file(tmp_path / "a.so").contents.metadata["stats"]
    # Same guest, options and key: the very same image.
    assert (tmp_path / "b.so").read_bytes() == (tmp_path / "a.so").read_bytes()

    proc = run_tool([*aotrun_cmd(), str(tmp_path / "b.so")])
    assert proc.returncode == 42, proc.stderr


def test_a_hit_is_signed_with_the_current_key(cache_root, guest, tmp_path):
    key_a, key_b = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    build(guest, tmp_path / "a.so", key=key_a)
    report, _ = build(guest, tmp_path / "b.so", key=key_b)
    assert report.cache == "hit"
    parsed = read_image_file(tmp_path / "b.so")
    status = signature_status(parsed, [key_b.public_key()])
    assert status.ok and status.fingerprint == fingerprint(key_b.public_key())
    assert not signature_status(parsed, [key_a.public_key()]).trusted


def test_changed_input_or_options_miss(cache_root, guest, tmp_path):
    base, _ = build(guest, tmp_path / "base.so")
    other = tmp_path / "exit7"
    other.write_bytes(exit_program(7))
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({"missed_pcs": [hex(0x10000 + 0x78 + 4)]}))
    variants = {
        "input": build(other, tmp_path / "o.so")[0],
        "opt level": build(guest, tmp_path / "O1.so", opt_level=1)[0],
        "profile": build(guest, tmp_path / "p.so", profile=profile)[0],
    }
    for what, report in variants.items():
        assert report.cache == "miss", what
    keys = {base.cache_key, *(r.cache_key for r in variants.values())}
    assert len(keys) == 1 + len(variants)
    # -j does not change the code (chunks are bounded in size, not counted
    # from the jobs), so a build with other -j hits the same entry.
    assert build(guest, tmp_path / "j2.so", jobs=2)[0].cache == "hit"
    # Unchanged input and options still hit.
    assert build(guest, tmp_path / "again.so")[0].cache == "hit"


def test_an_edited_translator_changes_the_key(cache_root, tmp_path, monkeypatch):
    tree = tmp_path / "tree"
    shutil.copytree(Path(build_cache.__file__).parent / "ir", tree / "ir")
    before = build_cache.source_tree_digest(tree)
    (tree / "ir" / "__pycache__").mkdir(exist_ok=True)
    (tree / "ir" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"bytecode is not source")
    assert build_cache.source_tree_digest(tree) == before
    target = next((tree / "ir").glob("*.py"))
    target.write_text(target.read_text() + "\n# edited\n")
    assert build_cache.source_tree_digest(tree) != before

    key = {"input_sha256": "0" * 64, "opt_level": 2, "profile_pcs": None,
           "host_isa": "x86_64", "arena_bits": 32}
    original = build_cache.build_key(**key)
    build_cache.translator_fingerprint.cache_clear()
    import aotc.backend.abi as abi

    monkeypatch.setattr(abi, "CODEGEN_VERSION", abi.CODEGEN_VERSION + 1000)
    try:
        assert build_cache.build_key(**key) != original
    finally:
        build_cache.translator_fingerprint.cache_clear()


@pytest.mark.parametrize("damage", ["flip-host-byte", "truncate", "garbage"])
def test_a_corrupt_entry_is_detected_and_rebuilt(cache_root, guest, tmp_path, damage):
    first, _ = build(guest, tmp_path / "a.so")
    entry = build_cache.entry_path(first.cache_key)
    data = bytearray(entry.read_bytes())
    if damage == "flip-host-byte":
        data[-100] ^= 0x40            # inside the host object, the checksum no longer matches
    elif damage == "truncate":
        del data[len(data) // 2:]
    else:
        data[:] = b"not a cache entry"
    entry.write_bytes(bytes(data))

    second, messages = build(guest, tmp_path / "b.so")
    assert second.cache == "miss"
    assert any("corrupt" in m for m in messages), messages
    assert host_object(tmp_path / "b.so") == host_object(tmp_path / "a.so")
    # The fresh entry replaced the bad one.
    third, _ = build(guest, tmp_path / "c.so")
    assert third.cache == "hit"


def test_an_entry_for_another_key_is_not_used(cache_root, guest, tmp_path):
    first, _ = build(guest, tmp_path / "a.so")
    other = tmp_path / "exit7"
    other.write_bytes(exit_program(7))
    second, _ = build(other, tmp_path / "b.so")
    # Swap the entries' files: each is intact but names the other key.
    a, b = build_cache.entry_path(first.cache_key), build_cache.entry_path(second.cache_key)
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)
    report, messages = build(guest, tmp_path / "c.so")
    assert report.cache == "miss" and any("corrupt" in m for m in messages)
    proc = run_tool([*aotrun_cmd(), str(tmp_path / "c.so")])
    assert proc.returncode == 42, proc.stderr


def test_size_bound_evicts_least_recently_used(cache_root, monkeypatch):
    import os

    blob = build_cache.CachedBuild(host_object=b"\x7fELF" + bytes(1000), translation={}, report={})
    size = build_cache.store("a" * 64, blob).stat().st_size
    limit = size * 7 // 2                     # room for three entries, not four
    monkeypatch.setenv("AOTC_CACHE_MAX_SIZE", str(limit))
    paths = []
    for i, key in enumerate(["a" * 64, "b" * 64, "c" * 64]):
        path = build_cache.store(key, blob)
        assert path is not None
        os.utime(path, (1000 + i, 1000 + i))
        paths.append(path)
    build_cache.load("a" * 64)               # a hit makes "a" the most recently used
    assert len(build_cache.entries()) == 3
    build_cache.store("d" * 64, blob)         # a fourth is over the bound: the oldest ("b") goes
    left = sorted(p.name[:1] for p, _st in build_cache.entries())
    assert left == ["a", "c", "d"]
    assert build_cache.info()["bytes"] <= limit


def test_cli_no_cache_info_and_clear(cache_root, guest, tmp_path):
    env = {"AOTC_CACHE_DIR": str(cache_root)}
    out = tmp_path / "out.so"
    build_cmd = [*aotc_cmd(), "build", "-q", "-j", "1", str(guest), "-o", str(out)]
    proc = run_tool([*build_cmd, "--json", "--no-cache"], env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["cache"] == "off"
    assert not build_cache.entries()

    proc = run_tool([*build_cmd, "--json"], env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["cache"] == "miss"
    proc = run_tool(build_cmd, env=env)
    assert proc.returncode == 0, proc.stderr
    assert b"(build cache hit)" in proc.stdout, proc.stdout

    info = json.loads(run_tool([*aotc_cmd(), "cache", "info", "--json"], env=env).stdout)
    assert info["entries"] == 1 and info["bytes"] > 0
    assert info["directory"] == str(cache_root / "builds")
    proc = run_tool([*aotc_cmd(), "cache", "clear"], env=env)
    assert proc.returncode == 0 and b"removed 1 cached translation" in proc.stdout
    assert build_cache.entries() == []


def test_cache_directory_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("AOTC_CACHE_DIR", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert build_cache.cache_dir() == tmp_path / "a"
    monkeypatch.delenv("AOTC_CACHE_DIR")
    assert build_cache.cache_dir() == tmp_path / "x" / "aotc"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert build_cache.cache_dir() == tmp_path / "home" / ".cache" / "aotc"


def test_the_suite_never_uses_the_users_cache(build_cache_dir, tmp_path_factory):
    assert build_cache.cache_dir() == build_cache_dir
    assert build_cache_dir.is_relative_to(tmp_path_factory.getbasetemp())
