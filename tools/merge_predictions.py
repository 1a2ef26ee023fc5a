#!/usr/bin/env python3
"""Join the CSVs of `predict.py --shard i/n` runs into the one CSV the grader expects.

    python tools/merge_predictions.py parts/*.csv --payload mp3s/ --out predictions.csv
    python tools/merge_predictions.py parts/*.csv --payload library/ --recursive --out all.csv

Checks, before writing anything: every part is a valid prediction CSV; no file_id is in two
parts; every mp3 of the payload (every audio file at any depth with --recursive, as predict.py takes
them) has a row, and nothing else does. Rows keep the parts'
own numbers (none is re-printed), in the order a single `predict.py --payload mp3s/` run writes
them. Every shard must have used the same --weights (not checked: the CSVs do not say).
Written atomically; exit code 1 and the problems, one per line, otherwise.
"""

import csv
import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model.atomic import write_atomic  # noqa: E402
from model.cli import ArgumentParser, die, extensions_arg  # noqa: E402
from model.library import find_inputs  # noqa: E402
from model.submission import HEADER, validate_submission  # noqa: E402

PROG = "merge_predictions.py"


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("parts", nargs="+", metavar="PART.csv", help="the shards' CSVs")
    parser.add_argument("--payload", required=True, help="the folder the shards split")
    parser.add_argument("--recursive", action="store_true", help="the shards ran with predict.py --recursive")
    parser.add_argument(
        "--extensions", type=extensions_arg, default=None, metavar="LIST", help="as given to predict.py"
    )
    parser.add_argument("--out", required=True, help="the merged CSV to write")
    args = parser.parse_args(argv)
    payload = Path(args.payload)
    if not payload.is_dir():
        die(PROG, f"payload folder {payload} does not exist or is not a folder", 2)
    try:
        expected = find_inputs(payload, args.recursive, args.extensions).ids  # predict.py's order
    except OSError as error:
        die(PROG, f"cannot list payload folder {payload}: {error.strerror}")

    rows: dict[str, str] = {}  # file_id -> its line, as written
    source: dict[str, str] = {}
    problems: list[str] = []
    for part in args.parts:
        try:
            text = Path(part).read_text(encoding="utf-8", errors="surrogateescape")
        except OSError as error:
            die(PROG, f"cannot read {part}: {error.strerror}")
        problems += [f"{part}: {problem}" for problem in validate_submission(text)]
        for row in list(csv.reader(io.StringIO(text, newline="")))[1:]:
            if not row:
                continue  # the validator has named it
            fid = row[0]
            if fid in source:
                problems.append(f"file_id {fid!r} is in both {source[fid]} and {part}")
            rows[fid], source[fid] = _line(row), part
    merged = ",".join(HEADER) + "\n" + "".join(rows[fid] + "\n" for fid in expected if fid in rows)
    problems += validate_submission(merged + _extra_rows(rows, expected), expected)
    if problems:
        for problem in problems[:20]:
            print(f"{PROG}: error: {problem}", file=sys.stderr)
        if len(problems) > 20:
            print(f"{PROG}: ... and {len(problems) - 20} more problems", file=sys.stderr)
        print(f"{PROG}: nothing written", file=sys.stderr)
        return 1
    write_atomic(args.out, merged.encode("utf-8", "surrogateescape"))
    print(f"{args.out}: {len(expected)} rows from {len(args.parts)} parts, every mp3 of {payload} once")
    return 0


def _line(row: list[str]) -> str:
    """A row as predict.py writes it (model/submission.py's CSV dialect), without its newline:
    the numbers are the part's own strings, so nothing is re-printed."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(row)
    return buffer.getvalue()[:-1]


def _extra_rows(rows: dict[str, str], expected: list[str]) -> str:
    """Rows for files the payload does not hold, so the validator names them."""
    known = set(expected)
    return "".join(line + "\n" for fid, line in rows.items() if fid not in known)


if __name__ == "__main__":
    sys.exit(main())
