#!/usr/bin/env python3
"""Check a submission CSV and, given labels, score it as the challenge did: the local grader.

    python evaluate.py predictions.csv                                    # validate only
    python evaluate.py predictions.csv --payload mp3s/                    # ... and ids = the folder's mp3s
    python evaluate.py predictions.csv --labels fma_metadata/tracks.csv --split test
    python evaluate.py predictions.csv --labels train_labels.csv          # crowdAI track_id,genre
    python evaluate.py predictions.csv --labels truth.csv                 # file_id,genre

Scores: mean log loss (the challenge's primary metric: sklearn's log_loss over the 16 classes,
probabilities clipped to [1e-15, 1 - 1e-15] and renormalised, as the 2018 grader's sklearn did),
macro F1 (secondary), accuracy, per-class precision/recall/F1/support, expected calibration error;
a JSON report and a confusion-matrix PNG. Ids in the labels without a prediction, and predictions
without a label, are errors listed by id: nothing is dropped silently. Exit 1 when invalid.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

from model.cli import ArgumentParser, counted, die


def parse_args(argv: list[str] | None):
    parser = ArgumentParser(prog="evaluate.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("predictions", help="submission CSV (file_id + 16 genre columns)")
    parser.add_argument("--payload", help="folder of mp3s: the CSV must have exactly one row per mp3")
    parser.add_argument("--labels", help="FMA tracks.csv, crowdAI train_labels.csv, or a file_id,genre CSV")
    parser.add_argument(
        "--split",
        default="test",
        choices=["training", "validation", "test"],
        help="with tracks.csv: the split to score against (default test)",
    )
    parser.add_argument(
        "--subset",
        default="medium",
        choices=["small", "medium", "large", "full"],
        help="with tracks.csv: the FMA subset whose tracks are scored (default medium)",
    )
    parser.add_argument(
        "--report", help="with --labels: JSON report (default: beside the CSV, <name>.report.json)"
    )
    parser.add_argument(
        "--confusion",
        help="with --labels: confusion-matrix PNG (default: beside the CSV, <name>.confusion.png)",
    )
    args = parser.parse_args(argv)
    for flag in ("report", "confusion"):
        if getattr(args, flag) and not args.labels:
            parser.error(f"--{flag} holds scores, which need --labels")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import numpy as np

    from model import fma
    from model.atomic import write_atomic
    from model.genres import GENRES
    from model.library import find_inputs
    from model.metrics import confusion_png, scores
    from model.submission import validate_submission

    prog, path = "evaluate.py", Path(args.predictions)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        die(prog, f"cannot read {path}: {error}")
    expected = find_inputs(args.payload).ids if args.payload else None
    problems = validate_submission(text, expected)
    if problems:
        print(f"{path}: INVALID submission, {len(problems)} problem(s):", file=sys.stderr)
        for problem in problems[:50]:
            print(f"  {problem}", file=sys.stderr)
        if len(problems) > 50:
            print(f"  ... and {len(problems) - 50} more", file=sys.stderr)
        return 1
    rows = text.splitlines()[1:]
    print(f"{path}: valid submission, {counted(len(rows), 'row')}", file=sys.stderr)
    if not args.labels:
        return 0

    try:
        labels = fma.read_labels(args.labels, args.split, args.subset)
    except fma.DataError as error:
        die(prog, str(error))
    predictions: dict[str, np.ndarray] = {}
    for row in list(csv.reader(io.StringIO(text)))[1:]:
        key = fma.normalise_id(row[0])
        if key in predictions:
            die(prog, f"file ids {row[0]!r} and another name the same track {key}")
        predictions[key] = np.array(row[1:], dtype=float)
    missing = sorted(set(labels) - set(predictions))
    extra = sorted(set(predictions) - set(labels))
    if missing or extra:
        for name, ids in (("labelled but not predicted", missing), ("predicted but not labelled", extra)):
            if ids:
                shown = ", ".join(ids[:30]) + (f" ... ({len(ids)} in all)" if len(ids) > 30 else "")
                print(f"{prog}: error: {len(ids)} id(s) {name}: {shown}", file=sys.stderr)
        return 1

    ids = sorted(labels)
    truth = np.array([GENRES.index(labels[i]) for i in ids])
    result = scores(truth, np.stack([predictions[i] for i in ids]))
    print(
        f"{len(ids)} clips | log loss {result['log_loss']:.4f} | macro F1 {result['macro_f1']:.4f} | "
        f"accuracy {result['accuracy']:.4f} | ECE {result['ece']:.4f}"
    )
    print("| genre | precision | recall | F1 | support |\n|---|---|---|---|---|")
    for genre, row in result["per_class"].items():
        print(
            f"| {genre} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | {row['support']} |"
        )
    report = Path(args.report or path.with_suffix(".report.json"))
    confusion = Path(args.confusion or path.with_suffix(".confusion.png"))
    record = {"predictions": str(path), "labels": args.labels, **result}
    write_atomic(report, (json.dumps(record, indent=1) + "\n").encode())
    confusion_png(
        result["confusion"],
        confusion,
        f"{path.name}: log loss {result['log_loss']:.3f}, macro F1 {result['macro_f1']:.3f}",
    )
    print(f"wrote {report} and {confusion}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    from model.stopping import OutOfSpace

    try:
        sys.exit(main())
    except OutOfSpace as error:  # --report or --confusion on a full disk
        die("evaluate.py", str(error))
