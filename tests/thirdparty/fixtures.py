"""pytest glue for tests/test_thirdparty_*.py: a built program (skip only
when a prerequisite is missing, fail when its build fails), its aot image
(translated once per ELF and translator version into the cache, re-signed
with the session's key), the qemu reference's availability."""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

import pytest

from . import harness, sources

_images: dict[Path, Path] = {}

def engines_for(name: str) -> list:
    """interp, jit and aot; aot skipped (visibly, saying how to run it) for a
    program not in AOTC_THIRDPARTY_AOT."""
    out = []
    for engine in harness.ENGINES:
        marks = []
        if engine == "aot" and name not in sources.aot_programs():
            marks = [pytest.mark.skip(reason=f"aot image of {name} not built by default (minutes of "
                                             f"translation): AOTC_THIRDPARTY_AOT={name} or all runs it")]
        out.append(pytest.param(engine, marks=marks, id=engine))
    return out


@lru_cache(maxsize=None)
def _ensure(name: str):
    try:
        return sources.ensure(name), None, None
    except sources.Unavailable as e:
        return None, f"{name}: prerequisite missing: {e}", None
    except sources.BuildFailed as e:     # fail every test of it, build once
        return None, None, e


def program(name: str) -> sources.Built:
    """The cached build of ``name`` (building it now if CI did not: see
    ``python -m tests.thirdparty.sources --build all``)."""
    logging.getLogger("aotc.thirdparty").setLevel(logging.INFO)
    built, why, failure = _ensure(name)
    if failure is not None:
        pytest.fail(f"building {name} failed: {failure}", pytrace=False)
    if built is None:
        pytest.skip(why)
    return built


def need_reference() -> None:
    why = harness.reference_unavailable()
    if why:
        pytest.skip(f"no qemu-riscv64 reference: {why}")


def target(engine: str, built: sources.Built, request) -> Path | None:
    """The aot image for engine 'aot' (None otherwise)."""
    if engine != "aot":
        return None
    if built.binary not in _images:
        request.getfixturevalue("config_dir")          # the session's signing key
        from aotc.keys import load_or_create_signing_key

        out = request.getfixturevalue("tmp_path_factory").mktemp("thirdparty-images") / f"{built.name}.so"
        _images[built.binary] = sources.image(built, out=out, key=load_or_create_signing_key())
    return _images[built.binary]
