"""Files only this service's user may read: the embedded database, the broker folders, key files."""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_dir(path: Path, *, tighten: bool = True) -> Path:
    """`path` (and missing parents) as a directory created 0700. `tighten`: an existing one is made 0700
    too (carepath's own folders: var/, the broker's); not for a folder the operator chose to share."""
    existed = path.is_dir()
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    if tighten or not existed:
        path.chmod(PRIVATE_DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """`path` exists as a file of mode 0600 (created empty when missing; an existing file is tightened)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE_MODE)
    os.close(fd)
    path.chmod(PRIVATE_FILE_MODE)
    return path


def write_private_file(path: Path, data: bytes) -> None:
    """Create `path` with mode 0600 from the start (never world-readable, not even for a moment)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
