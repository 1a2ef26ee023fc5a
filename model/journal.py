"""A journal of finished predictions, so an interrupted predict.py run can be resumed.

predict.py appends one JSON line per file to `<output>.partial.jsonl` as results arrive and
deletes the journal once the CSV is written. With --resume, entries are reused only for files
whose name, size and modification time, and the ensemble's manifest, are unchanged, and that are
not transient fallbacks (a decoder that crashed or timed out, a model out of memory: another try
may succeed); everything else is predicted again. A line cut short by the interruption (a kill,
a full disk) is ignored, with a warning.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np

from .atomic import write_atomic
from .stopping import out_of_space


def journal_path(output: str | os.PathLike) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".partial.jsonl")


def file_signature(path: Path, root: Path | None = None) -> list:
    """[name, size, mtime]; the name is the path relative to the payload `root` when given, so
    the "01 Intro.mp3" of two albums are two entries."""
    stat = path.stat()
    return [path.relative_to(root).as_posix() if root else path.name, stat.st_size, stat.st_mtime_ns]


def weights_signature(weights_dir: str | os.PathLike) -> str:
    return hashlib.sha256((Path(weights_dir) / "manifest.json").read_bytes()).hexdigest()


def read_journal(path: Path, weights: str) -> dict[tuple, str]:
    """{file signature: its line} for the complete entries of a journal (empty if there is none).
    A line is kept as its text, a few hundred bytes, not as a parsed entry (a few kilobytes):
    resuming a 100,000-file run holds them all at once. `json.loads` gives the entry."""
    entries = {}
    if not path.exists():
        return entries
    with open(path, encoding="utf-8", errors="replace") as lines:  # line by line: never the whole text
        for number, line in enumerate(lines, 1):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:  # the line being written when the run was stopped
                warnings.warn(
                    f"{path}, line {number}: cut short, ignored (that file is predicted again)", stacklevel=2
                )
                continue
            if isinstance(entry, dict) and entry.get("weights") == weights and _complete(entry):
                entries[tuple(entry["file"])] = line.rstrip("\n")
    return entries


def reusable_entries(
    path: Path, weights: str, files: list[Path], root: Path | None = None
) -> dict[Path, str]:
    """The journal's lines a resumed run keeps for `files` (see the module docstring)."""
    entries = read_journal(path, weights)
    kept = {}
    for file in files:
        line = entries.get(tuple(file_signature(file, root)))
        if line and not json.loads(line).get("transient", False):
            kept[file] = line
    return kept


def _complete(entry: dict) -> bool:
    return all(key in entry for key in ("file", "probabilities", "status", "seconds", "decoder", "reason"))


class Journal:
    """Appends finished predictions; a line is complete on disk before the next starts."""

    def __init__(self, path: Path, weights: str, keep: list[str], root: Path | None = None):
        self.path, self.weights, self.root = path, weights, root
        # The reused lines, without what is stale, replace the old journal in one step: a run
        # killed at this point still finds every kept entry.
        write_atomic(path, "".join(line + "\n" for line in keep).encode())
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 -- closed in close()

    def add(self, path: Path, probabilities: np.ndarray, report: dict) -> None:
        entry = {
            "file": file_signature(path, self.root),
            "weights": self.weights,
            "probabilities": [float(p) for p in probabilities],
            **report,
        }
        self._write(json.dumps(entry) + "\n")

    def _write(self, line: str) -> None:
        try:
            self.file.write(line)
            self.file.flush()
        except OSError as error:  # a full disk: OutOfSpace names the journal
            raise out_of_space(error, self.path, len(line)) from None

    def close(self) -> None:
        try:
            self.file.close()
        except OSError:  # what could not be flushed was reported by _write; a cut line is ignored on resume
            pass
