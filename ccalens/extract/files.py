"""File helpers of the store: safe names, atomic writes, .npy with checksums, the per-layer writer lock."""

from __future__ import annotations

import hashlib
import io
import mmap
import os
import socket
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ccalens.core._files import atomic_write as _atomic_write

from .errors import LayerLockedError

__all__ = [
    "WriterLock",
    "atomic_write",
    "check_name",
    "entry_name",
    "file_sha256",
    "fsync_dir",
    "layer_lock",
    "now",
    "write_npy",
]


def check_name(value: Any, what: str) -> str:
    """``value`` if it can be a folder name (a model or layer); a ValueError naming ``what`` otherwise."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    bad = [c for c in ("/", "\\", "\0") if c in value]
    if bad or value.startswith(".") or value != value.strip():
        raise ValueError(
            f"{what} {value!r} cannot be used as a folder name (no '/', '\\', NUL, leading '.' or "
            "surrounding spaces)"
        )
    return value


def entry_name(value: Any) -> bool:
    """Whether a manifest's file entry is a plain file name (no folder part, not absolute, not hidden)."""
    return (
        isinstance(value, str)
        and bool(value)
        and not any(c in value for c in ("/", "\\", "\0"))
        and not value.startswith(".")
        and os.path.basename(value) == value
    )


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, parts: Sequence[Any], fsync: bool) -> None:
    """Write the byte-like ``parts`` to ``path`` via a temporary file in the same folder and a rename
    (:func:`ccalens.core._files.atomic_write`)."""

    def write(fh: Any) -> None:
        for part in parts:
            fh.write(part)

    _atomic_write(path, write, fsync=fsync)


def _npy_header(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, np.lib.format.header_data_from_array_1_0(arr))
    return buf.getvalue()


def write_npy(path: Path, arr: np.ndarray, fsync: bool) -> tuple[int, str]:
    """Atomically write ``arr`` as .npy; returns (file size in bytes, sha256 of the whole file)."""
    arr = np.ascontiguousarray(arr)
    header = _npy_header(arr)
    digest = hashlib.sha256(header)
    data = memoryview(arr).cast("B") if arr.nbytes else b""
    digest.update(data)
    atomic_write(path, [header, data], fsync)
    return len(header) + arr.nbytes, digest.hexdigest()


def file_sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return hashlib.sha256(b"").hexdigest()
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            return hashlib.sha256(mm).hexdigest()  # hashlib releases the GIL on large buffers


class WriterLock:
    """Exclusive, non-blocking ``flock`` on a layer's lock file, released by :meth:`release` or process exit."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self._fd: int | None = None
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no lock
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        # mode 0o666 less the process umask, like every file ccalens creates; O_NOFOLLOW: a lock file planted as
        # a symlink must not truncate its target
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
        except OSError as exc:
            kind = "is a symlink (not followed)" if path.is_symlink() else f"cannot be opened ({exc.strerror})"
            raise OSError(exc.errno, f"lock file {path} of {what} {kind}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LayerLockedError(
                f"{what} is being written by another writer ({holder}); wait for it to finish, or close it first"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def lock_path(folder: Path) -> Path:
    """The lock file of a layer folder ``.../<model>/<layer>``: ``.../<model>/.<layer>.lock``."""
    return folder.parent / f".{folder.name}.lock"


def layer_lock(folder: Path, what: str) -> WriterLock:
    """The exclusive writer lock of the layer in ``folder`` (:class:`LayerLockedError` if another writer holds it)."""
    return WriterLock(lock_path(folder), what)
