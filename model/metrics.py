"""The challenge's scores and the diagnostics around them, on class-index labels and probabilities.

Log loss is the challenge's primary metric (sklearn's `log_loss` over the 16 classes, with
probabilities clipped to [1e-15, 1 - 1e-15] by the grader of the time); macro F1 the secondary.
Also: accuracy, per-class precision/recall/F1/support, expected calibration error, the confusion
matrix and a PNG of it.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from sklearn import metrics as skm

from .atomic import write_atomic
from .genres import GENRES

CLASSES = list(range(len(GENRES)))


def log_loss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    clipped = np.clip(probabilities, 1e-15, 1 - 1e-15)
    return float(skm.log_loss(labels, clipped / clipped.sum(axis=1, keepdims=True), labels=CLASSES))


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int = 15) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            error += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(error)


def scores(labels: np.ndarray, probabilities: np.ndarray) -> dict:
    """Everything a report shows, as plain JSON-able numbers."""
    predicted = probabilities.argmax(axis=1)
    present = sorted(set(labels.tolist()) | set(predicted.tolist()))
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        labels, predicted, labels=CLASSES, zero_division=0
    )
    return {
        "clips": int(len(labels)),
        "log_loss": log_loss(labels, probabilities),
        "macro_f1": float(skm.f1_score(labels, predicted, labels=present, average="macro", zero_division=0)),
        "accuracy": float(skm.accuracy_score(labels, predicted)),
        "ece": expected_calibration_error(labels, probabilities),
        "per_class": {
            GENRES[c]: {
                "precision": float(precision[c]),
                "recall": float(recall[c]),
                "f1": float(f1[c]),
                "support": int(support[c]),
            }
            for c in CLASSES
        },
        "confusion": skm.confusion_matrix(labels, predicted, labels=CLASSES).tolist(),
    }


def confusion_png(confusion: list[list[int]], path: str | Path, title: str) -> None:
    """Counts in each cell, colour by row-normalised recall, readable genre labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.array(confusion)
    normalised = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    figure, axes = plt.subplots(figsize=(11, 9.5))
    image = axes.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(CLASSES, GENRES, rotation=45, ha="right")
    axes.set_yticks(CLASSES, GENRES)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    for i in CLASSES:
        for j in CLASSES:
            if counts[i, j]:
                axes.text(
                    j,
                    i,
                    counts[i, j],
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if normalised[i, j] > 0.5 else "black",
                )
    figure.colorbar(image, ax=axes, fraction=0.04, label="fraction of the true class (row)")
    figure.tight_layout()
    image_bytes = io.BytesIO()
    figure.savefig(image_bytes, format="png", dpi=110)
    plt.close(figure)
    write_atomic(path, image_bytes.getvalue())  # a full disk: one line naming the file


def training_report(
    split: str,
    labels: np.ndarray,
    member_log_probs,
    members: list,
    histories: dict[str, list[dict]],
    temperature: float,
    validation_log_loss: float,
    prior,
) -> dict:
    """train.py's report.json: every member alone and the ensemble (before and after its
    temperature) scored on `split` exactly as predict.py's rows would be, and the class prior's
    log loss. member_log_probs (members, clips, classes) and the prior are torch tensors."""
    from .calibration import output_probabilities

    def rows(log_probs, t: float = 1.0) -> np.ndarray:
        return output_probabilities(log_probs, t).numpy()

    report = {
        "split": split,
        "temperature": temperature,
        "validation_log_loss": validation_log_loss,
        "members": {},
        "ensemble_before_temperature": scores(labels, rows(member_log_probs)),
        "ensemble": scores(labels, rows(member_log_probs, temperature)),
        "prior_log_loss": scores(labels, rows(prior.log()[None, None].expand(1, len(labels), -1)))[
            "log_loss"
        ],
        "history": histories,
    }
    for spec, log_probs in zip(members, member_log_probs):
        history = histories[spec.name]
        best = min(history, key=lambda epoch: epoch["valid_loss"])
        report["members"][spec.name] = {
            "kind": spec.kind,
            "chunk_seconds": spec.chunk_seconds,
            "epochs": len(history),
            "best_epoch": best["epoch"],
            "validation_log_loss": best["valid_loss"],
            **scores(labels, rows(log_probs[None])),
        }
    return report


def report_table(report: dict) -> str:
    """The report as a markdown table: members, the ensemble at T = 1 and at its temperature."""
    lines = [
        "| model | epochs (best) | log loss | macro F1 | accuracy | ECE |",
        "|---|---|---|---|---|---|",
    ]
    rows = [(name, f"{r['epochs']} ({r['best_epoch']})", r) for name, r in report["members"].items()]
    rows += [
        ("ensemble, T=1", "", report["ensemble_before_temperature"]),
        (f"ensemble, T={report['temperature']:.2f}", "", report["ensemble"]),
    ]
    for name, epochs, r in rows:
        lines.append(
            f"| {name} | {epochs} | {r['log_loss']:.3f} | {r['macro_f1']:.3f} | {r['accuracy']:.3f} | {r['ece']:.3f} |"
        )
    return "\n".join(lines)
