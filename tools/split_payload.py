#!/usr/bin/env python3
"""One FMA split as a flat folder of mp3s (symbolic links), the layout the grader mounts.

    python tools/split_payload.py fma_metadata/ fma_medium/ mp3s/ [--split test] [--subset medium]

Then `predict.py --payload mp3s/` and `evaluate.py predictions.csv --labels fma_metadata/tracks.csv
--split test` score a model on FMA's artist-filtered test split. Links are named `<track id>.mp3`
(000002.mp3); tracks without an audio file are skipped and counted.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model import fma  # noqa: E402
from model.cli import ArgumentParser, die  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="split_payload.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("metadata", help="fma_metadata/ (holding tracks.csv)")
    parser.add_argument("audio", help="fma_medium/ (or fma_large/, fma_full/): the XXX/XXXXXX.mp3 tree")
    parser.add_argument("out", help="folder to fill with links (created; must not hold other mp3s)")
    parser.add_argument("--split", default="test", choices=list(fma.SPLITS), help="default: test")
    parser.add_argument("--subset", default="medium", choices=list(fma.SUBSETS), help="default: medium")
    args = parser.parse_args(argv)
    try:
        table = fma.read_tracks(args.metadata, args.subset)
    except fma.DataError as error:
        die("split_payload.py", str(error))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if any(p.suffix.lower() == ".mp3" and not p.is_symlink() for p in out.iterdir()):
        die("split_payload.py", f"{out} holds mp3 files of its own: choose an empty folder", 2)
    linked = missing = 0
    for key in table.loc[table["split"] == args.split, "key"]:
        source = fma.audio_path(args.audio, int(key))
        if not source.is_file():
            missing += 1
            continue
        link = out / source.name
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(source.resolve(), link)
        linked += 1
    print(
        f"{out}: {linked} links to the {args.split} split of fma_{args.subset}"
        + (f"; {missing} tracks without audio skipped" if missing else ""),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
