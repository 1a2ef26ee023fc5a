"""Write a file so that readers see the old content or the new, never a half-written file."""

from __future__ import annotations

import errno
import os
import sys
import tempfile
from pathlib import Path

from .stopping import NO_SPACE, out_of_space


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to a temp file beside `path`, fsync it, then rename it over `path`.

    The parent folder is created if missing. Where no rename can replace `path` (a file
    bind-mounted into a container: EBUSY; a folder we may not create files in, though `path`
    itself is writable: EACCES), `path` is overwritten in place instead, with a warning: the
    result is kept rather than lost.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except PermissionError:
        if not os.access(path, os.W_OK):
            raise
        return _overwrite(path, data, "its folder is not writable")
    except OSError as error:  # a full disk (no room even for a name) says so in one line
        raise out_of_space(error, path, len(data)) from None
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; outputs are meant to be read by others
        os.replace(tmp, path)
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)  # the old file stays as it was
        if error.errno in NO_SPACE:
            raise out_of_space(error, path, len(data)) from None
        if error.errno not in (errno.EBUSY, errno.EXDEV):
            raise
        _overwrite(path, data, "it cannot be replaced (a mount point?)")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def unwritable_reason(path: str | os.PathLike) -> str | None:
    """Why `write_atomic(path, ...)` would fail, found before any work is done, or None. Probes
    the nearest existing folder on the way to `path` by creating (and removing) a temp file there:
    permissions, read-only mounts and full quotas all show, whoever runs it."""
    path = Path(path)
    if path.is_dir():
        return "a folder, not a file name"
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return f"{folder} is not a folder"
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".probe-", suffix=".tmp")
    except OSError as error:
        if path.exists() and os.access(path, os.W_OK):
            return None  # write_atomic overwrites it in place
        return f"cannot create files in {folder} ({error.strerror or error})"
    os.close(fd)
    os.unlink(probe)
    return None


def _overwrite(path: Path, data: bytes, why: str) -> None:
    print(f"warning: writing {path} in place, not atomically: {why}", file=sys.stderr)
    with open(path, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
