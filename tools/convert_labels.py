#!/usr/bin/env python3
"""FMA tracks.csv -> crowdAI's train_labels.csv (track_id,genre), as the starter kit's convert.py.

    python tools/convert_labels.py fma_metadata/tracks.csv train_labels.csv [--subset medium] [--split training]

All tracks of the subset with a top genre by default (what crowdAI distributed); --split keeps one
of FMA's artist-filtered splits only.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model import fma  # noqa: E402
from model.atomic import write_atomic  # noqa: E402
from model.cli import ArgumentParser, die  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="convert_labels.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("tracks", help="FMA's tracks.csv (or the fma_metadata/ folder)")
    parser.add_argument("out", help="CSV to write: track_id,genre")
    parser.add_argument("--subset", default="medium", choices=list(fma.SUBSETS))
    parser.add_argument("--split", choices=list(fma.SPLITS), help="keep only this split (default: all)")
    args = parser.parse_args(argv)
    try:
        table = fma.read_tracks(args.tracks, args.subset)
    except fma.DataError as error:
        die("convert_labels.py", str(error))
    if args.split:
        table = table[table["split"] == args.split]
    out = table.rename(columns={"key": "track_id"})[["track_id", "genre"]]
    write_atomic(args.out, out.to_csv(index=False).encode())
    print(f"wrote {args.out}: {len(out)} tracks, {out['genre'].nunique()} genres", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
