"""The one atomic-write primitive of ccalens (core may import nothing above it; ``ccalens.io`` re-exports it)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["atomic_write"]


def _create_temporary(folder: Path, name: str) -> tuple[int, Path]:
    """Create and open a new, empty hidden file ``.<name>.<random>.tmp`` in ``folder`` with mode 0o666 less the
    process umask (as ``open()`` would; ``tempfile.mkstemp`` would make it 0o600 whatever the umask)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = folder / f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file for {name} in {folder}")  # pragma: no cover


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object], *, fsync: bool = True) -> Path:
    """Call ``write(f)`` on a temporary binary file next to ``path``, fsync it (unless ``fsync=False``), then rename
    it to ``path`` (``os.replace``): a reader never sees a half-written file. Parent folders are created; on any
    error the temporary file is removed. The file gets the mode of any newly created file (0o666 less the umask:
    0o644 under umask 0o022). Returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = _create_temporary(path.parent, path.name)
    except OSError as exc:  # name the file asked for, not the temporary one
        raise type(exc)(exc.errno, exc.strerror, os.fspath(path)) from exc
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
