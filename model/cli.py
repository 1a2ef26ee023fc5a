"""Argument parsing shared by the command-line scripts: one-line errors, checked numbers."""

from __future__ import annotations

import argparse
import sys


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad argument gets one line on stderr (no usage dump) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def shard_arg(text: str):
    """'i/n' -> model.sharding.Shard."""
    from .sharding import Shard

    try:
        return Shard.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def extensions_arg(text: str) -> tuple[str, ...]:
    """'mp3,.FLAC' -> ('mp3', 'flac')."""
    names = tuple(e.strip().lower().lstrip(".") for e in text.split(",") if e.strip().strip("."))
    if not names:
        raise argparse.ArgumentTypeError(f"expected extensions such as mp3,flac, got {text!r}")
    return names


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def counted(count: int, noun: str) -> str:
    """'1 file', '2 files', '0 files': the count with the noun it needs."""
    return f"{count} {noun}" + ("" if count == 1 else "es" if noun.endswith(("s", "x", "ch", "sh")) else "s")


def die(prog: str, message: str, code: int = 1) -> None:
    """Exit with one line on stderr: the way the scripts report an error nobody can recover from."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(code)
