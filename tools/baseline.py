#!/usr/bin/env python3
"""The starter kit's baseline, done on this project's splits, decoder and CSV writer.

    python tools/baseline.py train --metadata fma_metadata/ --audio fma_medium/ --model svm --out baseline-svm.pkl
    python tools/baseline.py train --labels my_labels.csv --model gbm --out baseline-gbm.pkl
    python tools/baseline.py predict --model-file baseline-svm.pkl --payload mp3s/ --out predictions.csv

train: 518 librosa features per track (cached under --cache, resumable), the model fitted on the
training split, scored on validation and test (the same splits as train.py). predict: the same
features for every mp3 of a folder, probabilities floored at 1e-4, the class prior for files
without usable audio, the CSV validated and written atomically. Score it with evaluate.py.
"""

import os
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from model.cli import ArgumentParser, die, non_negative_int  # noqa: E402


def parse_args(argv):
    parser = ArgumentParser(prog="baseline.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="fit the baseline")
    train.add_argument("--metadata", help="fma_metadata/ (official split)")
    train.add_argument("--audio", help="fma_medium/ (with --metadata, or with crowdAI --labels)")
    train.add_argument("--labels", help="crowdAI train_labels.csv or a path,genre CSV")
    train.add_argument("--model", default="svm", choices=["svm", "gbm"])
    train.add_argument("--out", required=True, help="model file to write (.pkl)")
    train.add_argument("--cache", default=str(REPO / "cache" / "handcrafted"), help="feature cache folder")
    train.add_argument("--seed", type=non_negative_int, default=0)
    predict = commands.add_parser("predict", help="predict a folder of mp3s")
    predict.add_argument("--model-file", required=True)
    predict.add_argument("--payload", required=True)
    predict.add_argument("--out", required=True)
    for sub in (train, predict):
        sub.add_argument("--workers", type=non_negative_int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args(argv)
    if args.command == "train" and not args.labels and not (args.metadata and args.audio):
        parser.error("give --metadata and --audio, or --labels")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import numpy as np
    import pandas as pd

    from model import baseline, fma
    from model.calibration import floor_probabilities
    from model.genres import GENRES
    from model.library import find_inputs
    from model.metrics import scores
    from model.submission import write_submission
    from model.training import class_prior

    prog, started = "baseline.py", time.perf_counter()
    warnings.formatwarning = lambda message, *_: f"warning: {message}\n"
    if args.command == "train":
        try:
            tracks = fma.load_labelled_audio(args.metadata, args.audio, args.labels, seed=args.seed)
        except fma.DataError as error:
            die(prog, str(error))
        table, failed = baseline.feature_table(tracks[["key", "path"]], Path(args.cache), args.workers)
        for key, reason in list(failed.items())[:20]:
            print(f"  skipped {key}: {reason}", file=sys.stderr)
        usable = tracks.set_index("key").loc[table.index]
        labels = usable["genre"].map(GENRES.index).to_numpy()
        split = usable["split"].to_numpy()
        train = split == "training"
        if not train.any():
            die(prog, "no usable tracks in the training split")
        model = baseline.make_model(args.model, args.seed).fit(table.values[train], labels[train])
        import torch

        prior = class_prior(torch.tensor(labels[train])).numpy()
        print(f"| {args.model} | clips | log loss | macro F1 | accuracy |\n|---|---|---|---|---|")
        for name in ("validation", "test"):
            rows = split == name
            if rows.any():
                result = scores(
                    labels[rows], floor_probabilities(baseline.predict_proba(model, table.values[rows]))
                )
                print(
                    f"| {name} | {rows.sum()} | {result['log_loss']:.3f} | {result['macro_f1']:.3f} | "
                    f"{result['accuracy']:.3f} |"
                )
        baseline.save_model(Path(args.out), model, args.model, prior)
        print(f"wrote {args.out} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        return 0

    try:
        saved = baseline.load_model(Path(args.model_file))
    except (OSError, ValueError, KeyError) as error:
        die(prog, f"cannot load {args.model_file}: {error}")
    if not Path(args.payload).is_dir():
        die(prog, f"payload folder {args.payload} does not exist", 2)
    inputs = find_inputs(args.payload)
    paths = inputs.files
    tracks = pd.DataFrame({"key": [str(p) for p in paths], "path": paths})
    import tempfile

    with tempfile.TemporaryDirectory() as cache:
        table, failed = baseline.feature_table(tracks, Path(cache), args.workers)
    probabilities = np.tile(floor_probabilities(saved["class_prior"][None]), (len(paths), 1))
    ok = [i for i, p in enumerate(paths) if str(p) in table.index]
    if ok:
        features = table.loc[[str(paths[i]) for i in ok]].values
        probabilities[ok] = floor_probabilities(baseline.predict_proba(saved["model"], features))
    write_submission(args.out, inputs.ids, probabilities)
    print(
        f"wrote {args.out}: {len(paths)} rows, {len(paths) - len(ok)} fallback(s) to the class prior, "
        f"{time.perf_counter() - started:.0f} s",
        file=sys.stderr,
    )
    for key, reason in failed.items():
        print(f"  fallback {Path(key).name}: {reason}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
