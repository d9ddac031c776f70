"""Which host ISA an image targets, and whether it is this one."""

from __future__ import annotations

import os

from aotc.errors import ImageError

_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}


def running_host_isa() -> str:
    machine = os.uname().machine.lower()  # what platform.machine() returns, without importing platform
    return _ALIASES.get(machine, machine)


def check_host_isa(metadata: dict, host: str | None = None) -> None:
    """Refuse an image built for another host ISA."""
    host = host or running_host_isa()
    image_host = metadata.get("host_isa")
    if image_host != host:
        raise ImageError(f"image is for host {image_host}, this host is {host}")
