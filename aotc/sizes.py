"""Sizes in bytes as users write them (``--max-memory 64M``, the build cache's limit)."""

from __future__ import annotations

import re

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(text: str) -> int:
    """'1048576', '64M', '1g', '512k' -> bytes (binary units)."""
    m = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)(?:i?[bB])?\s*", str(text))
    if not m:
        raise ValueError(f"not a size in bytes: {text!r} (examples: 1048576, 512K, 64M, 1G)")
    return int(m.group(1)) * _UNITS[m.group(2).lower()]
