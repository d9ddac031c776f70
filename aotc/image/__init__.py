"""The signed host shared object that ``aotc build`` produces.

Layout: ``[host ELF .so][payload: metadata JSON, guest segments][footer]``;
see ``docs/image-format.md`` and ``aotc.image.layout``.
"""

from aotc.image.container import (
    ENGINES,
    METADATA_FORMAT_VERSION,
    REQUIRED_METADATA_KEYS,
    ImageContents,
    ParsedImage,
    encode_metadata,
    parse_image,
    serialize_image,
    write_image,
)
from aotc.image.host import check_host_isa, running_host_isa
from aotc.image.layout import FORMAT_VERSION, MAGIC
from aotc.image.signature import SignatureStatus, signature_status, verify_signature

__all__ = [
    "ENGINES",
    "FORMAT_VERSION",
    "MAGIC",
    "METADATA_FORMAT_VERSION",
    "REQUIRED_METADATA_KEYS",
    "ImageContents",
    "ParsedImage",
    "SignatureStatus",
    "check_host_isa",
    "encode_metadata",
    "parse_image",
    "running_host_isa",
    "serialize_image",
    "signature_status",
    "verify_signature",
    "write_image",
]
