"""How a run ends when it is stopped from outside: SIGTERM like ^C, a full disk in one line.

SIGTERM is what `docker stop`, Kubernetes and Slurm send before they kill. `catch_sigterm()` makes
it raise `Terminated`, a KeyboardInterrupt, in the main thread: the code that keeps what is done on
^C (the prediction journal, the feature cache, the last checkpoint; the decode workers stopped)
keeps it on SIGTERM too. The scripts then end with one line saying what was kept and how to go on,
and the exit code a shell gives a process killed by that signal: 130 after ^C, 143 after SIGTERM.

A full disk: the places that write (model/atomic.py, the journal, the feature cache) raise
`OutOfSpace`, an OSError naming the file, the bytes it needed and the bytes free, instead of the bare
`[Errno 28]`; the scripts print it as their one line. Nothing half-written is left where the next
run reads: files are replaced atomically, the journal and the cache ignore what was cut short.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
from pathlib import Path

EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143  # 128 + SIGINT, 128 + SIGTERM
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where ^C would be."""


def catch_sigterm() -> None:
    """From now on, SIGTERM raises `Terminated` in this process's main thread."""

    def terminated(signum, frame):
        raise Terminated()

    signal.signal(signal.SIGTERM, terminated)


def how_stopped(stop: KeyboardInterrupt) -> tuple[str, int]:
    """('terminated (SIGTERM)' or 'interrupted', the exit code to end with)."""
    if isinstance(stop, Terminated):
        return "terminated (SIGTERM)", EXIT_TERMINATED
    return "interrupted", EXIT_INTERRUPTED


class OutOfSpace(OSError):
    """No space left where `path` is written; the message says how much was needed and free."""

    def __init__(self, path: str | os.PathLike, needed: int | None = None):
        path = Path(path)
        free = _free_bytes(path)
        wanted = f"needed {_size(needed)}, " if needed else ""
        super().__init__(errno.ENOSPC, f"no space left to write {path} ({wanted}{_size(free)} free there)")
        self.filename = str(path)

    def __str__(self) -> str:
        return self.strerror


def out_of_space(error: OSError, path: str | os.PathLike, needed: int | None = None) -> OSError:
    """`error` as an OutOfSpace for `path` if the disk (or a quota) is full, else `error` itself."""
    if isinstance(error, OutOfSpace) or error.errno not in NO_SPACE:
        return error
    return OutOfSpace(path, needed)


def _free_bytes(path: Path) -> int | None:
    folder = path if path.is_dir() else path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _size(count: int | None) -> str:
    if count is None:
        return "an unknown amount"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"
