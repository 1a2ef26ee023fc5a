#!/usr/bin/env python3
"""What the models do on real recordings: the labelled corpus tools/real_corpus.py builds from
Debian packages (game soundtracks, voice prompts, synthetic speech; split by package).

    python bench/real_music.py --corpus real-corpus/ [--work DIR] [--weights weights/] [--steps abc]

  (a) the shipped model (`--weights`, by default weights/: the zero-shot musicnn model) on every
      clip and on the test split: log loss, accuracy, macro F1 over the genres present, ECE, with
      the log loss of the FMA-medium prior and of the uniform distribution for reference; per true
      genre, the predicted top genres (counts), the mean probability of the true genre and the
      three genres of highest mean probability; per package, the same in brief (a label to doubt
      shows as one package that disagrees with the others of its genre);
  (b) musicnn transfer heads that train.py fits on the training split (frozen taggers), scored on
      the test split (packages never seen in training) against the training split's class prior;
  (c) a small CNN ensemble trained the same way, scored the same way.
Every model runs through predict.py, exactly as the grader would run it. Each step is guarded:
one failing leaves the others' figures. Markdown tables on stdout; every figure in
<work>/real_music.json; the scripts' own output in <work>/*.log.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from model.cli import ArgumentParser  # noqa: E402
from model.genres import GENRES, fma_medium_prior  # noqa: E402
from model.metrics import log_loss, scores  # noqa: E402

# (b) and (c): small enough to train here on two CPU cores in minutes, not hours (an epoch is at least
# 32 optimizer steps, so the batch size sets its cost; musicnn members score 2 chunks per clip).
MUSICNN_ARGS = [
    "--members",
    "0",
    "--backbone",
    "musicnn",
    "--backbone-members",
    "2",
    "--max-chunks",
    "2",
    "--batch-size",
    "16",
    "--epochs",
    "6",
    "--patience",
    "3",
]
CNN_ARGS = [
    "--members",
    "2",
    "--channels",
    "16,32,64",
    "--chunk-seconds",
    "3",
    "--batch-size",
    "16",
    "--epochs",
    "8",
    "--patience",
    "3",
]


def run(script: str, args: list[str], log: Path) -> None:
    """One of the project's scripts, its output into `log`; a failure raises with the log's last line."""
    with open(log, "w") as out:
        code = subprocess.run(
            [sys.executable, str(REPO / script), *args], stdout=out, stderr=subprocess.STDOUT, cwd=REPO
        ).returncode
    if code:
        lines = log.read_text(errors="replace").strip().splitlines() or ["(no output)"]
        raise RuntimeError(f"{script} exited with {code}: {lines[-1]} (see {log})")


def predict(weights: Path, clips: pd.DataFrame, corpus: Path, work: Path, name: str) -> np.ndarray:
    """predict.py on a flat folder of links to `clips` (it reads one folder level); probabilities
    in the order of `clips`."""
    payload = work / f"payload-{name}"
    shutil.rmtree(payload, ignore_errors=True)
    payload.mkdir(parents=True)
    ids = [f"{i:04d}-{Path(p).stem}" for i, p in enumerate(clips["path"])]
    for file_id, path in zip(ids, clips["path"]):
        os.symlink((corpus / path).resolve(), payload / f"{file_id}.mp3")
    csv = work / f"predictions-{name}.csv"
    run(
        "predict.py",
        ["--payload", str(payload), "--out", str(csv), "--weights", str(weights), "--device", "cpu"],
        work / f"predict-{name}.log",
    )
    table = pd.read_csv(csv, dtype={"file_id": str}).set_index("file_id")
    return table.loc[ids, list(GENRES)].to_numpy(dtype=np.float64)


def figures(clips: pd.DataFrame, probabilities: np.ndarray, references: dict[str, np.ndarray]) -> dict:
    """The scores, the reference log losses of constant predictions, and the per-genre breakdown."""
    truth = np.array([GENRES.index(g) for g in clips["genre"]])
    result = scores(truth, probabilities)
    present = sorted(set(truth.tolist()))
    result["macro_f1_present"] = float(
        f1_score(truth, probabilities.argmax(1), labels=present, average="macro", zero_division=0)
    )
    result["reference_log_loss"] = {
        name: log_loss(truth, np.tile(p, (len(truth), 1))) for name, p in references.items()
    }
    result["per_source"] = {}
    for (source, genre), rows in clips.groupby(["source", "genre"]).groups.items():
        rows = np.asarray(rows)
        top = np.bincount(probabilities[rows].argmax(1), minlength=len(GENRES))
        result["per_source"][f"{source} ({genre})"] = {
            "clips": len(rows),
            "mean_p_true": float(probabilities[rows, GENRES.index(genre)].mean()),
            "most_predicted": f"{GENRES[top.argmax()]} {top.max()}/{len(rows)}",
        }
    result["per_genre"] = {}
    for g in present:
        rows = probabilities[truth == g]
        mean = rows.mean(0)
        result["per_genre"][GENRES[g]] = {
            "clips": len(rows),
            "mean_p_true": float(mean[g]),
            "top3_mean": {GENRES[k]: float(mean[k]) for k in np.argsort(-mean)[:3]},
            "predicted": {GENRES[k]: int(n) for k, n in zip(*np.unique(rows.argmax(1), return_counts=True))},
        }
    return result


def print_figures(title: str, result: dict, by_source: bool = False) -> None:
    refs = ", ".join(f"{name} {value:.3f}" for name, value in result["reference_log_loss"].items())
    print(f"\n### {title}: {result['clips']} clips\n")
    print(
        "| log loss | accuracy | macro F1 (genres present) | ECE | reference log loss |\n|---|---|---|---|---|"
    )
    print(
        f"| {result['log_loss']:.3f} | {result['accuracy']:.3f} | {result['macro_f1_present']:.3f} | "
        f"{result['ece']:.3f} | {refs} |"
    )
    per_genre = result["per_genre"]
    columns = sorted({k for row in per_genre.values() for k in row["predicted"]}, key=GENRES.index)
    print("\n| true \\ predicted | " + " | ".join(columns) + " | clips | mean p(true) | top 3 by mean p |")
    print("|---" * (len(columns) + 4) + "|")
    for genre, row in per_genre.items():
        counts = " | ".join(str(row["predicted"].get(c, "")) for c in columns)
        top3 = ", ".join(f"{g} {p:.2f}" for g, p in row["top3_mean"].items())
        print(f"| {genre} | {counts} | {row['clips']} | {row['mean_p_true']:.3f} | {top3} |")
    if by_source:
        print("\n| source (true genre) | clips | mean p(true) | most predicted |\n|---|---|---|---|")
        for source, row in result["per_source"].items():
            print(f"| {source} | {row['clips']} | {row['mean_p_true']:.3f} | {row['most_predicted']} |")


def train_and_score(
    name: str,
    args: list[str],
    labels: pd.DataFrame,
    corpus: Path,
    work: Path,
    references: dict[str, np.ndarray],
) -> dict:
    """train.py on the corpus (it honours the split column), then predict.py on the test split."""
    weights, run_dir = work / f"weights-{name}", work / f"run-{name}"
    shutil.rmtree(weights, ignore_errors=True)
    shutil.rmtree(run_dir, ignore_errors=True)  # train.py refuses to mix runs
    run(
        "train.py",
        [
            "--labels",
            str(corpus / "labels.csv"),
            *args,
            "--out",
            str(weights),
            "--run-dir",
            str(run_dir),
            "--cache",
            str(work / "cache"),
            "--device",
            "cpu",
        ],
        work / f"train-{name}.log",
    )
    prior = np.array(
        json.loads((weights / "manifest.json").read_text())["class_prior"]
    )  # the training split's
    test = labels[labels["split"] == "test"].reset_index(drop=True)
    return figures(
        test, predict(weights, test, corpus, work, name), {"training-split prior": prior, **references}
    )


def main() -> None:
    parser = ArgumentParser(prog="real_music.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--corpus", type=Path, default=REPO / "real-corpus", help="tools/real_corpus.py's folder"
    )
    parser.add_argument(
        "--work",
        type=Path,
        help="payloads, caches, trained weights, logs, the JSON (default: a temporary folder, kept)",
    )
    parser.add_argument("--weights", type=Path, default=REPO / "weights", help="the model of step (a)")
    parser.add_argument("--steps", default="abc", help="which of the steps a, b, c to run (default abc)")
    args = parser.parse_args()
    if not args.steps or set(args.steps) - set("abc"):
        parser.error(f"--steps takes letters among a, b, c, e.g. --steps ab; got {args.steps!r}")
    corpus = args.corpus.resolve()
    if not (corpus / "labels.csv").is_file():
        parser.error(f"{corpus / 'labels.csv'} not found: build the corpus with tools/real_corpus.py")
    work = (args.work or Path(tempfile.mkdtemp(prefix="real-music-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    labels = pd.read_csv(corpus / "labels.csv")
    splits = labels["split"].value_counts()
    print(
        f"corpus {corpus}: {len(labels)} clips, {labels['genre'].nunique()} genres, {labels['source'].nunique()} "
        f"packages ({', '.join(f'{splits.get(s, 0)} {s}' for s in ('training', 'validation', 'test'))}); "
        f"work folder {work}"
    )

    fma_reference = {"FMA-medium prior": fma_medium_prior(), "uniform": np.full(len(GENRES), 1 / len(GENRES))}
    report: dict = {"corpus": str(corpus), "clips": len(labels), "wall_seconds": {}, "errors": {}}

    def shipped() -> dict:
        probabilities = predict(args.weights, labels, corpus, work, "shipped")
        test = (labels["split"] == "test").to_numpy()
        return {
            "all": figures(labels, probabilities, fma_reference),
            "test": figures(labels[test].reset_index(drop=True), probabilities[test], fma_reference),
        }

    steps = {
        "a": ("shipped model", shipped),
        "b": (
            "musicnn heads",
            lambda: train_and_score("musicnn", MUSICNN_ARGS, labels, corpus, work, fma_reference),
        ),
        "c": ("small CNN", lambda: train_and_score("cnn", CNN_ARGS, labels, corpus, work, fma_reference)),
    }
    for key in args.steps:
        name, step = steps[key]
        start = time.perf_counter()
        try:
            report[key] = step()
        except Exception as error:  # a failed step must still leave the others' figures
            report["errors"][key] = f"{type(error).__name__}: {error}"
        report["wall_seconds"][key] = time.perf_counter() - start
        (work / "real_music.json").write_text(json.dumps(report, indent=1) + "\n")

    for key in args.steps:
        name = steps[key][0]
        if key in report["errors"]:
            print(
                f"\n### ({key}) {name}: FAILED after {report['wall_seconds'][key]:.0f} s: {report['errors'][key]}"
            )
        elif key == "a":
            print_figures(f"(a) {name} ({args.weights}), all clips", report["a"]["all"], by_source=True)
            print_figures(f"(a) {name}, test split", report["a"]["test"])
        else:
            print_figures(f"({key}) {name} trained on the training split, test split", report[key])
    print("\n| step | wall time |\n|---|---|")
    for key in args.steps:
        print(f"| ({key}) {steps[key][0]} | {report['wall_seconds'][key] / 60:.1f} min |")
    print(f"\nwrote {work / 'real_music.json'}; uniform log loss is ln 16 = {math.log(16):.3f}")


if __name__ == "__main__":
    main()
