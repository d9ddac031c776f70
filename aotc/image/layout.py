"""The binary layout of an aotc image (see docs/image-format.md).

All integers are little-endian. An image is::

    [host ELF .so][pad][payload][footer]

* the host object starts at offset 0, so the dynamic loader can map the file
  directly; everything after it is ignored by the ELF loader;
* the payload starts with ``PAYLOAD_MAGIC`` and holds the metadata JSON, the
  segment table and the guest segment bytes, each aligned to ``ALIGN``;
* the footer is the last ``FOOTER_SIZE`` bytes of the file and ends with the
  64-byte Ed25519 signature, which covers every byte before it.
"""

from __future__ import annotations

import struct

MAGIC = b"AOTCIMG1"
PAYLOAD_MAGIC = b"AOTCPAY1"
FORMAT_VERSION = 1
ALIGN = 16

SIG_NONE = 0
SIG_ED25519 = 1

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64

# magic, version, footer_size, file_size, host_size, payload_offset,
# metadata_offset, metadata_size, segtab_offset, segtab_size,
# sig_algorithm, reserved, public_key, signature
FOOTER = struct.Struct("<8sIIQQQQQQQII32s64s")
FOOTER_SIZE = FOOTER.size  # 176
assert FOOTER_SIZE == 176

# count, entry_size
SEGTAB_HEADER = struct.Struct("<II")
# vaddr, memsz, data_offset, data_size, flags, reserved
SEGTAB_ENTRY = struct.Struct("<QQQQII")
assert SEGTAB_ENTRY.size == 40

# ELF e_machine values of the host ISAs an image may name.
ELF_MACHINES: dict[str, int] = {"x86_64": 62, "aarch64": 183, "riscv64": 243}


def align_up(value: int, align: int = ALIGN) -> int:
    return (value + align - 1) & ~(align - 1)
