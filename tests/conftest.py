"""Shared fixtures: an isolated signing key and a per-session image cache.

Images are built once per test session (and cached across sessions under
``.cache/test-images`` keyed by input hash, tool and codegen version), so
each sample is translated once however many tests run it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
BIN = SAMPLES / "bin"
EXPECTED = SAMPLES / "expected"
CACHE = Path(os.environ.get("AOTC_TEST_CACHE", ROOT / ".cache" / "test-images"))


@pytest.fixture(scope="session", autouse=True)
def build_cache_dir(tmp_path_factory) -> Path:
    """`aotc build` caches translations (aotc/build_cache.py): tests use a
    private cache for the session (under pytest's rotated basetemp), never the
    user's ~/.cache/aotc."""
    d = tmp_path_factory.mktemp("build-cache")
    os.environ["AOTC_CACHE_DIR"] = str(d)
    return d


@pytest.fixture(scope="session")
def config_dir(tmp_path_factory) -> Path:
    """A private AOTC_CONFIG_DIR with its own signing key, for the whole session."""
    d = tmp_path_factory.mktemp("aotc-config")
    os.environ["AOTC_CONFIG_DIR"] = str(d)
    from aotc.keys import load_or_create_signing_key

    load_or_create_signing_key()
    return d


def _cache_key(binary: Path, opt_level: int) -> str:
    from aotc import __version__
    from aotc.backend.abi import CODEGEN_VERSION

    h = hashlib.sha256(binary.read_bytes())
    # The translator's own sources change its output: hash them too.
    for src in sorted((ROOT / "aotc").rglob("*.py")):
        h.update(src.read_bytes())
    h.update(f"{__version__}/{CODEGEN_VERSION}/O{opt_level}".encode())
    return h.hexdigest()[:24]


class ImageFactory:
    def __init__(self, config_dir: Path, out_dir: Path) -> None:
        self.config_dir = config_dir
        self.out_dir = out_dir
        self._built: dict[tuple[Path, int], Path] = {}

    def __call__(self, binary: Path, opt_level: int = 2) -> Path:
        key = (binary, opt_level)
        if key in self._built:
            return self._built[key]
        from aotc.build import build_image
        from aotc.keys import load_or_create_signing_key

        out = self.out_dir / f"{binary.name}.O{opt_level}.so"
        cached = CACHE / f"{binary.name}.{_cache_key(binary, opt_level)}.so"
        signing = load_or_create_signing_key()
        CACHE.mkdir(parents=True, exist_ok=True)
        # One build per image for all xdist workers: the others wait for it
        # (an image takes minutes; two workers building it at once is waste).
        with open(cached.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if cached.exists():
                # Re-sign with this session's key: the cache holds content, not trust.
                from aotc.image import write_image
                from loader import read_image_file

                parsed = read_image_file(cached)
                write_image(out, parsed.contents, signing)
            else:
                build_image(binary, out, key=signing, opt_level=opt_level)
                tmp = cached.with_suffix(f".{os.getpid()}.tmp")
                shutil.copyfile(out, tmp)
                os.replace(tmp, cached)
        self._built[key] = out
        return out


@pytest.fixture(scope="session")
def build_image_cached(config_dir, tmp_path_factory) -> ImageFactory:
    return ImageFactory(config_dir, tmp_path_factory.mktemp("images"))


def load_expected(path: Path) -> dict:
    return json.loads(path.read_text())


def run_tool(args: list[str], env: dict[str, str] | None = None, timeout: float = 120,
             cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run an installed console script (or module) and capture its output.

    ``returncode`` is the status as a shell shows it: 128+signal for a
    process killed by a signal (aotrun dies by the signal that killed its
    guest, so a waiting parent sees WIFSIGNALED; subprocess reports -signal),
    the convention of the recorded references (samples/record.py)."""
    full_env = {"PATH": os.environ.get("PATH", ""), "AOTC_CONFIG_DIR": os.environ.get("AOTC_CONFIG_DIR", ""),
                "AOTC_CACHE_DIR": os.environ.get("AOTC_CACHE_DIR", "")}
    if env:
        full_env.update(env)
    proc = subprocess.run(args, capture_output=True, timeout=timeout, env=full_env, cwd=cwd)
    if proc.returncode < 0:
        proc.returncode = 128 - proc.returncode
    return proc


def aotrun_cmd() -> list[str]:
    exe = shutil.which("aotrun")
    return [exe] if exe else [sys.executable, "-m", "runtime.cli"]


def aotc_cmd() -> list[str]:
    exe = shutil.which("aotc")
    return [exe] if exe else [sys.executable, "-m", "aotc.cli"]


def run_recorded_case(target: Path, rec: dict, tmp_path: Path, extra: list[str] | None = None,
                      timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``target`` (an image or a guest ELF) under aotrun the way a recorded
    sample case was run: its args ({tmpdir} filled in), exactly its env, its argv[0]."""
    args = [a.replace("{tmpdir}", str(tmp_path)) for a in rec["args"]]
    env_opts = [f"--env={k}={v}" for k, v in rec["env"].items()]
    cmd = [*aotrun_cmd(), *(extra or []), "--clear-env", *env_opts,
           f"--argv0={rec['binary']}", str(target), *args]
    return run_tool(cmd, timeout=timeout)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "thirdparty: runs programs built from third-party sources (tests/thirdparty/sources.py); "
                   "deselect with -m 'not thirdparty'")
