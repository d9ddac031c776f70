"""Verify, then map, from the same bytes.

``load_image`` copies the image file once into a sealed ``memfd``; the
signature is checked over a read-only mapping of that memfd, and only then is
the very same memfd handed to the dynamic loader via ``/proc/self/fd/N``.
Sealing (write/shrink/grow/seal) makes the verified bytes immutable, so there
is no verify-then-reopen race, and nothing of the image is mapped executable
before verification succeeds.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import mmap
import os
import stat
import threading
from pathlib import Path
from typing import Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from aotc.elf.segments import GuestSegment
from aotc.errors import AotcError, ImageError
from aotc.image import ParsedImage, check_host_isa, parse_image, verify_signature
from aotc.keys import fingerprint

# Python's fcntl has these on Linux since 3.8/3.9; define them if it does not.
F_ADD_SEALS = getattr(fcntl, "F_ADD_SEALS", 1024 + 9)
F_GET_SEALS = getattr(fcntl, "F_GET_SEALS", 1024 + 10)
F_SEAL_SEAL = getattr(fcntl, "F_SEAL_SEAL", 0x0001)
F_SEAL_SHRINK = getattr(fcntl, "F_SEAL_SHRINK", 0x0002)
F_SEAL_GROW = getattr(fcntl, "F_SEAL_GROW", 0x0004)
F_SEAL_WRITE = getattr(fcntl, "F_SEAL_WRITE", 0x0008)
ALL_SEALS = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE

MFD_CLOEXEC = getattr(os, "MFD_CLOEXEC", 0x0001)
MFD_ALLOW_SEALING = getattr(os, "MFD_ALLOW_SEALING", 0x0002)
MFD_EXEC = getattr(os, "MFD_EXEC", 0x0010)  # Linux 6.3+; needed if vm.memfd_noexec=1

RTLD_NOLOAD = getattr(os, "RTLD_NOLOAD", 0x00004)

_CHUNK = 1 << 20
_SENDFILE_CHUNK = 1 << 30

# fds whose dlopen'ed object could not be unloaded: never reuse their path.
_pinned_fds: list[int] = []
_dl_lock = threading.Lock()


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _open_image_file(path: Path) -> tuple[int, int]:
    """Open ``path`` for reading; returns (fd, size), with one-line errors."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a directory") from None
    except OSError as exc:
        raise ImageError(f"cannot read image {path}: {_reason(exc)}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ImageError(f"{path}: is a directory")
        if not stat.S_ISREG(st.st_mode):
            raise ImageError(f"{path}: not a regular file")
        if st.st_size == 0:
            raise ImageError(f"{path}: file is empty, not an aotc image")
    except BaseException:
        os.close(fd)
        raise
    return fd, st.st_size


def _with_path(exc: AotcError, path: Path) -> AotcError:
    """The same error class with the image path in front of the message."""
    try:
        new = type(exc)(f"{path}: {exc}")
    except TypeError:
        return exc
    new.exit_code = exc.exit_code
    return new


def read_image_file(path: Path) -> ParsedImage:
    """Read and structurally parse an image (no signature check, no dlopen)."""
    path = Path(path)
    fd, size = _open_image_file(path)
    try:
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read()
    except OSError as exc:
        raise ImageError(f"cannot read image {path}: {_reason(exc)}") from None
    finally:
        os.close(fd)
    if not data:
        raise ImageError(f"{path}: file is empty, not an aotc image")
    try:
        return parse_image(data)
    except ImageError as exc:
        raise _with_path(exc, path) from None


def _sealed_copy(path: Path) -> tuple[int, int]:
    """Copy the file at ``path`` once into a new sealed memfd; returns (memfd, size)."""
    src, _ = _open_image_file(path)
    name = f"aotc-image:{path.name}"
    try:
        try:
            memfd = os.memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            memfd = os.memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING)
    except OSError as exc:
        os.close(src)
        raise ImageError(f"cannot create a memory file for {path}: {_reason(exc)}") from None
    try:
        size = _copy_fd(src, memfd)
        if size == 0:
            raise ImageError(f"{path}: file is empty, not an aotc image")
        fcntl.fcntl(memfd, F_ADD_SEALS, ALL_SEALS)
        seals = fcntl.fcntl(memfd, F_GET_SEALS)
        if seals & ALL_SEALS != ALL_SEALS:
            raise ImageError(f"cannot seal the memory copy of {path}")
    except OSError as exc:
        os.close(memfd)
        raise ImageError(f"cannot read image {path}: {_reason(exc)}") from None
    except BaseException:
        os.close(memfd)
        raise
    finally:
        os.close(src)
    return memfd, size


def _copy_fd(src: int, dst: int) -> int:
    """Copy all of ``src`` to ``dst`` (in the kernel with sendfile when it can); returns the size."""
    size = 0
    try:
        while True:
            sent = os.sendfile(dst, src, size, _SENDFILE_CHUNK)
            if sent == 0:
                return size
            size += sent
    except OSError as exc:
        if size or exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise
    while True:  # no sendfile from this kind of file: plain reads and writes
        chunk = os.read(src, _CHUNK)
        if not chunk:
            return size
        view = memoryview(chunk)
        while view:
            written = os.write(dst, view)
            view = view[written:]
        size += len(chunk)


class LoadedImage:
    """A verified image whose host object is dlopen'ed.

    Keep it open while any code from it may run; ``close()`` dlcloses it
    (function pointers taken from it must not be used afterwards).
    """

    def __init__(self, path: Path, fd: int, cdll: ctypes.CDLL, parsed: ParsedImage) -> None:
        self.path = path
        self.metadata: dict = parsed.contents.metadata
        self.segments: tuple[GuestSegment, ...] = parsed.contents.segments
        self.host_object_size = len(parsed.contents.host_object)
        self.signer = fingerprint(parsed.public_key) if parsed.public_key else None
        self._fd: int | None = fd
        self._cdll: ctypes.CDLL | None = cdll

    @property
    def fd(self) -> int:
        """The sealed memfd holding the image (valid until ``close()``)."""
        if self._fd is None:
            raise ImageError(f"{self.path}: image is closed")
        return self._fd

    @property
    def cdll(self) -> ctypes.CDLL:
        if self._cdll is None:
            raise ImageError(f"{self.path}: image is closed")
        return self._cdll

    @property
    def closed(self) -> bool:
        return self._cdll is None

    def symbol_address(self, name: str) -> int:
        try:
            func = self.cdll[name]
        except AttributeError:
            raise ImageError(f"{self.path}: host object has no symbol {name!r}") from None
        address = ctypes.cast(func, ctypes.c_void_p).value
        if not address:
            raise ImageError(f"{self.path}: host object symbol {name!r} has no address")
        return address

    def close(self) -> None:
        cdll, fd = self._cdll, self._fd
        self._cdll = self._fd = None
        if cdll is None or fd is None:
            return
        with _dl_lock:
            _dlclose(cdll._handle)
            if _still_loaded(f"/proc/self/fd/{fd}"):
                # glibc matches dlopen() by path name: reusing this fd number
                # would hand back the old object, so keep the fd forever.
                _pinned_fds.append(fd)
                return
        os.close(fd)

    def __enter__(self) -> "LoadedImage":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<LoadedImage {self.path} ({state})>"


def _dlclose(handle: int) -> None:
    import _ctypes

    _ctypes.dlclose(handle)


def _still_loaded(so_path: str) -> bool:
    try:
        probe = ctypes.CDLL(so_path, mode=RTLD_NOLOAD | os.RTLD_LAZY)
    except OSError:
        return False
    _dlclose(probe._handle)
    return True


def load_image(path: Path, trusted_keys: Sequence[Ed25519PublicKey]) -> LoadedImage:
    """Verify the image at ``path`` and dlopen its host object from the same sealed bytes."""
    path = Path(path)
    memfd, size = _sealed_copy(path)
    try:
        mapping = mmap.mmap(memfd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
    except OSError as exc:
        os.close(memfd)
        raise ImageError(f"cannot map image {path}: {_reason(exc)}") from None
    try:
        view = memoryview(mapping)
        try:
            parsed = parse_image(view)
            verify_signature(parsed, trusted_keys)
            check_host_isa(parsed.contents.metadata)
            # Keep the parsed contents (copies) but drop the view of the mapping.
            parsed = ParsedImage(
                contents=parsed.contents,
                public_key=parsed.public_key,
                signature=parsed.signature,
                signed_span=parsed.signed_span,
                data=b"",
            )
        except ImageError as exc:
            raise _with_path(exc, path) from None
        finally:
            view.release()
    except BaseException:
        _close_mapping(mapping)
        os.close(memfd)
        raise
    _close_mapping(mapping)

    try:
        cdll, fd = _dlopen_fd(memfd, path)
    except BaseException:
        os.close(memfd)
        raise
    return LoadedImage(path, fd, cdll, parsed)


def _close_mapping(mapping: mmap.mmap) -> None:
    try:
        mapping.close()
    except BufferError:  # a view is still referenced (e.g. by a traceback); GC unmaps it
        pass


def _dlopen_fd(memfd: int, path: Path) -> tuple[ctypes.CDLL, int]:
    """dlopen the memfd through /proc/self/fd; returns the CDLL and the fd it uses."""
    with _dl_lock:
        fd = memfd
        skipped: list[int] = []
        try:
            # glibc's dlopen() matches already-loaded objects by path name: if
            # this fd number's name is taken, use a duplicate with another number.
            while _still_loaded(f"/proc/self/fd/{fd}"):
                fd = os.dup(memfd)
                skipped.append(fd)
            try:
                cdll = ctypes.CDLL(f"/proc/self/fd/{fd}", mode=os.RTLD_NOW | os.RTLD_LOCAL)
            except OSError as exc:
                raise ImageError(f"{path}: cannot load host code: {_first_line(str(exc))}") from None
        except BaseException:
            for other in skipped:
                os.close(other)
            raise
        for other in skipped:
            if other != fd:
                os.close(other)
    if fd != memfd:
        os.close(memfd)
    return cdll, fd


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else text
