"""Progress bars that read well both on a terminal and in a log.

On a terminal: tqdm's bar, redrawn in place. Anywhere else (a file, a pipe, CI, a container's
captured stderr) tqdm would append every redraw to one ever-growing `\\r`-joined line; there the
same bar is printed as a plain line at most every `LOG_INTERVAL` seconds, plus the final one.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterable
from typing import TextIO

from tqdm import tqdm

LOG_INTERVAL = 30.0  # seconds between lines in a log


class _Lines(io.TextIOBase):
    """tqdm's output stream when it is not a terminal: each redraw becomes one line."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def write(self, text: str) -> int:
        line = text.replace("\r", "").strip()
        if line:
            self.stream.write(line + "\n")
            self.stream.flush()
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(
    total: int,
    unit: str,
    initial: int = 0,
    disable: bool = False,
    iterable: Iterable | None = None,
    stream: TextIO | None = None,
) -> tqdm:
    """A tqdm bar on `stream` (default stderr) for `total` items of `unit` (wrapping `iterable`
    if given, as tqdm does)."""
    stream = stream or sys.stderr
    if stream.isatty():
        return tqdm(
            iterable,
            total=total,
            initial=initial,
            unit=unit,
            file=stream,
            mininterval=1.0,
            dynamic_ncols=True,
            disable=disable,
        )
    return tqdm(
        iterable,
        total=total,
        initial=initial,
        unit=unit,
        file=_Lines(stream),
        mininterval=LOG_INTERVAL,
        maxinterval=LOG_INTERVAL,
        disable=disable,
    )
