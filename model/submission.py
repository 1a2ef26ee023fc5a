"""The grader's contract for inputs and output: which files get a row, and the CSV itself.

Every `*.mp3` (any case) directly inside the payload folder gets exactly one row; its `file_id` is
the file name without the extension, byte for byte. The header is `file_id` and the 16 genres in
`GENRES` order. The CSV is written atomically, so a reader never sees a partial file.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .atomic import write_atomic
from .genres import GENRES

HEADER: tuple[str, ...] = ("file_id", *GENRES)


def find_mp3s(folder: str | os.PathLike) -> list[Path]:
    """The mp3 files directly in `folder` (extension matched case-insensitively), sorted by name."""
    return sorted(
        (entry for entry in Path(folder).iterdir() if entry.suffix.lower() == ".mp3" and entry.is_file()),
        key=lambda p: p.name,
    )


def file_id(path: str | os.PathLike) -> str:
    """`<uuid>.mp3` -> `<uuid>`: the name without its last extension, nothing else changed."""
    name = Path(path).name
    return name[: -len(Path(name).suffix)] if Path(name).suffix else name


def submission_csv(file_ids: Sequence[str], probabilities: np.ndarray) -> str:
    """The CSV text: header, then one row per file with 8-decimal probabilities."""
    if probabilities.shape != (len(file_ids), len(GENRES)):
        raise ValueError(f"expected {len(file_ids)} x {len(GENRES)} probabilities, got {probabilities.shape}")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER)
    for fid, row in zip(file_ids, probabilities):
        writer.writerow([fid, *(f"{p:.8f}" for p in row)])
    return buffer.getvalue()


def write_submission(path: str | os.PathLike, file_ids: Sequence[str], probabilities: np.ndarray) -> None:
    """Write the grader's CSV atomically (parent folders are created)."""
    write_atomic(path, submission_csv(file_ids, probabilities).encode("utf-8"))
