"""Per-user directories: an explicit override, else the XDG base directory, else the default."""

from __future__ import annotations

import os
from pathlib import Path


def user_dir(override_var: str, xdg_var: str, default: str) -> Path:
    """``$override_var``, else ``$xdg_var/aotc``, else ``~/<default>/aotc``
    (e.g. ``user_dir("AOTC_CACHE_DIR", "XDG_CACHE_HOME", ".cache")``)."""
    explicit = os.environ.get(override_var)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get(xdg_var)
    if xdg:
        return Path(xdg) / "aotc"
    return Path.home() / default / "aotc"
