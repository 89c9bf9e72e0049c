"""Files replaced whole or not at all: write a temporary file beside the target, fsync, rename over it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["fsync_path", "write_atomically", "write_file_atomically"]


def write_atomically(path: Path, data: bytes | str) -> None:
    """`path` holds exactly `data` afterwards, or (after a crash) exactly what it held before."""
    payload = data.encode("utf-8") if isinstance(data, str) else data

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())

    write_file_atomically(path, write)


def write_file_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Like write_atomically, for writers that take a path (numpy, safetensors, ...)."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def fsync_path(path: Path) -> None:
    """Flush a file or a folder to disk (a folder: so that renames in it survive a power cut)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
