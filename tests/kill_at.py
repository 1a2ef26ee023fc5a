"""Run a script and SIGKILL it at one exact point: a kill no signal timing can aim as precisely.

    python tests/kill_at.py POINT SCRIPT [ARGS...]

POINT is where the process dies, with what it was writing cut in half on disk:
    journal:N        while writing the N-th line of predict.py's journal
    cache:N          while appending the N-th spectrogram to the feature cache's data file
    file:NAME[:N]    while writing the N-th file called NAME atomically (its temp file, before
                     the rename): out.csv, cnn0.ckpt, manifest.json, index.csv, ...
A point the run never reaches lets it finish; the exit code then says so (0, not -9).
"""

from __future__ import annotations

import os
import re
import runpy
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def countdown(n: int):
    left = [n]

    def reached() -> bool:
        left[0] -= 1
        return left[0] == 0

    return reached


def kill_in_journal(n: int) -> None:
    from model.journal import Journal

    reached, write = countdown(n), Journal._write

    def _write(self, line: str) -> None:
        if line.startswith('{"file"') and reached():
            self.file.write(line[: len(line) // 2])
            self.file.flush()
            die()
        write(self, line)

    Journal._write = _write


def kill_in_cache(n: int) -> None:
    from model.feature_cache import _CacheWriter

    reached, add = countdown(n), _CacheWriter.add

    def add_or_die(self, key, result) -> None:
        if key not in self.done and not isinstance(result, str) and reached():
            self.data.write(result.tobytes()[: result.nbytes // 2])
            self.data.flush()
            die()
        add(self, key, result)

    _CacheWriter.add = add_or_die


def kill_in_file(name: str, n: int) -> None:
    """write_atomic fsyncs its temp file `.NAME.xxxx.tmp` before renaming it over NAME."""
    reached, fsync, temp_name = countdown(n), os.fsync, re.compile(rf"\.{re.escape(name)}\.[^.]+\.tmp")

    def fsync_or_die(fd: int) -> None:
        if temp_name.fullmatch(os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))) and reached():
            os.ftruncate(fd, os.fstat(fd).st_size // 2)
            die()
        fsync(fd)

    os.fsync = fsync_or_die


def main() -> None:
    point, script, *arguments = sys.argv[1:]
    kind, _, where = point.partition(":")
    if kind == "journal":
        kill_in_journal(int(where))
    elif kind == "cache":
        kill_in_cache(int(where))
    elif kind == "file":
        name, _, n = where.partition(":")
        kill_in_file(name, int(n or 1))
    else:
        raise SystemExit(f"kill_at.py: unknown point {point!r}")
    sys.argv = [script, *arguments]
    sys.path.insert(0, str(Path(script).resolve().parent))
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
