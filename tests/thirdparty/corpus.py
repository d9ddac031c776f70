"""Deterministic compressible-and-incompressible input, shared by the zstd
test (tests/test_thirdparty_zstd.py) and the real-program bench (bench/real.py)."""

from __future__ import annotations

import hashlib


def make_corpus(size: int, noise_one_in: int = 5) -> bytes:
    """Text lines from a word list (compressible) and hash-chained noise
    (incompressible), deterministic; one draw in ``noise_one_in`` is noise."""
    words = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november "
             "oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu").split()
    out = bytearray()
    x = 0x2545F4914F6CDD1D
    n = 0
    while len(out) < size:
        x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        r = x >> 29
        if r % noise_one_in:
            out += (" ".join(words[(r >> k) % len(words)] for k in range(0, 30, 5)) + f" {n}\n").encode()
        else:
            seed = x.to_bytes(8, "little")
            for _ in range(r % 16 + 1):
                seed = hashlib.sha256(seed).digest()
                out += seed
        n += 1
    return bytes(out[:size])
