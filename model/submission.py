"""The grader's contract for inputs and output: which files get a row, and the CSV itself.

Every `*.mp3` (any case) directly inside the payload folder gets exactly one row; its `file_id` is
the file name without the extension, byte for byte. The header is `file_id` and the 16 genres in
`GENRES` order. The CSV is written atomically, so a reader never sees a partial file.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from .atomic import write_atomic
from .genres import GENRES

HEADER: tuple[str, ...] = ("file_id", *GENRES)


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
    """Check the grader's CSV, then write it atomically (parent folders are created).
    Raises ValueError, writing nothing, if the CSV would be invalid."""
    text = submission_csv(file_ids, probabilities)
    problems = validate_submission(text, file_ids)
    if problems:
        raise ValueError("refusing to write an invalid submission: " + "; ".join(problems[:5]))
    write_atomic(path, text.encode("utf-8", "surrogateescape"))  # a non-UTF-8 file name: its own bytes


SUM_TOLERANCE = 1e-4  # |row sum - 1| allowed: 16 values printed with 8 decimals are far inside it


def validate_submission(text: str, expected_ids: Sequence[str] | None = None) -> list[str]:
    """Every problem of a submission CSV, each naming its line; an empty list means valid.

    Checks the exact header, 17 fields per row, unique non-empty ids, 16 finite probabilities in
    [0, 1] per row summing to 1 within SUM_TOLERANCE, and, when `expected_ids` is given (e.g. the
    file ids of a payload folder), that the ids are exactly those: missing and extra ids listed.
    """
    problems: list[str] = []
    rows = csv.reader(_lines(text))  # row by row: a 100,000-row CSV is never held parsed, nor copied
    header = next(rows, None)
    if header is None:
        return ["the file is empty: expected the header line " + ",".join(HEADER)]
    if tuple(header) != HEADER:
        problems.append(f"line 1: header is {','.join(header)!r}, expected {','.join(HEADER)!r}")
    seen: dict[str, int] = {}
    for line, row in enumerate(rows, start=2):
        if len(row) != len(HEADER):
            problems.append(f"line {line}: {len(row)} fields, expected {len(HEADER)}")
            continue
        fid = row[0]
        if not fid:
            problems.append(f"line {line}: empty file_id")
        elif fid in seen:
            problems.append(f"line {line}: file_id {fid!r} repeats line {seen[fid]}")
        else:
            seen[fid] = line
        try:
            values = np.array([float(v) for v in row[1:]])
        except ValueError:
            bad = next(v for v in row[1:] if not _is_float(v))
            problems.append(f"line {line}: {bad!r} is not a number")
            continue
        if not np.isfinite(values).all():
            problems.append(f"line {line}: non-finite probability (NaN or inf)")
        elif values.min() < 0 or values.max() > 1:
            problems.append(
                f"line {line}: probabilities must lie in [0, 1] (min {values.min():g}, max {values.max():g})"
            )
        elif abs(values.sum() - 1) > SUM_TOLERANCE:
            problems.append(
                f"line {line}: probabilities sum to {values.sum():.6f}, not 1 (tolerance {SUM_TOLERANCE})"
            )
    if expected_ids is not None:
        missing = sorted(set(expected_ids) - set(seen))
        extra = sorted(set(seen) - set(expected_ids))
        if missing:
            problems.append(
                f"{len(missing)} file id(s) have no row: {', '.join(missing[:20])}"
                + (" ..." if len(missing) > 20 else "")
            )
        if extra:
            problems.append(
                f"{len(extra)} row(s) for files not in the payload: {', '.join(extra[:20])}"
                + (" ..." if len(extra) > 20 else "")
            )
    return problems


def _lines(text: str) -> Iterator[str]:
    """`text`'s lines with their ends, one at a time (io.StringIO would copy the whole text into a
    4-byte-per-character buffer first). csv.reader joins a quoted field's lines itself."""
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end + 1
        yield text[start:end]
        start = end


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
