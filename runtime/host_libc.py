"""The host C library for ctypes, without ``ctypes.util.find_library``.

``find_library("c")`` runs ``ldconfig -p`` (and imports ``subprocess``) on
every call, which cost aotrun several milliseconds of start-up per module
that needed libc; glibc's soname is fixed, so try it first.
"""

from __future__ import annotations

import ctypes


def load_libc() -> ctypes.CDLL:
    """libc with ``use_errno``; the soname search is only a fallback (e.g. musl hosts)."""
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        from ctypes.util import find_library

        return ctypes.CDLL(find_library("c") or "libc.so", use_errno=True)
