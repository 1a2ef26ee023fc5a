"""The starter kit's baseline: 518 hand-crafted features and a scikit-learn classifier.

Features are computed once per track in worker processes (through the one decode path) and
cached in parts of 256 tracks, so an interrupted extraction resumes. Two models:
  svm: StandardScaler + RBF SVC with Platt-scaled probabilities (the starter kit's model);
  gbm: histogram gradient boosting (a boosted-trees entry ranked 3rd in round 2, helped by its
       better-calibrated probabilities).
A fitted model is saved with the class prior of its training data, the row given to files
without usable audio, as in predict.py.
"""

from __future__ import annotations

import io
import pickle
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import write_atomic
from .audio import Decoded, DecodeError, decode_many, unusable_reason
from .genres import GENRES
from .handcrafted import FEATURE_NAMES, SAMPLE_RATE, fma_features
from .progress import progress_bar

_PART_SIZE = 256
MODELS = ("svm", "gbm")


def features_or_reason(decoded: Decoded) -> np.ndarray | str:
    """Worker side: the 518 features, or why the clip is unusable."""
    return unusable_reason(decoded) or fma_features(decoded.audio, decoded.sample_rate)


def feature_table(tracks: pd.DataFrame, cache: Path, workers: int) -> tuple[pd.DataFrame, dict[str, str]]:
    """Features of every track (columns key, path), from `cache` or computed; returns the table
    (index key, 518 columns) of usable tracks and {key: reason} of the others."""
    cache.mkdir(parents=True, exist_ok=True)
    parts = [np.load(p, allow_pickle=False) for p in sorted(cache.glob("part-*.npz"))]
    done = {str(k) for part in parts for k in part["keys"]}
    todo = tracks[~tracks["key"].astype(str).isin(done)].drop_duplicates("key")
    print(f"features {cache}: {len(done)} tracks cached, {len(todo)} to compute", file=sys.stderr)
    keys, rows, reasons = [], [], []

    def save_part() -> None:
        buffer = io.BytesIO()
        np.savez(
            buffer,
            keys=np.array(keys, dtype=str),
            features=np.array(rows, dtype=np.float32).reshape(-1, 518),
            reasons=np.array(reasons, dtype=str),
        )
        write_atomic(cache / f"part-{len(list(cache.glob('part-*.npz'))):05d}.npz", buffer.getvalue())
        parts.append(np.load(io.BytesIO(buffer.getvalue())))
        keys.clear(), rows.clear(), reasons.clear()

    results = decode_many(todo["path"], SAMPLE_RATE, workers, prefetch=4, transform=features_or_reason)
    for key, (_, result) in progress_bar(len(todo), "track", iterable=zip(todo["key"].astype(str), results)):
        keys.append(key)
        if isinstance(result, np.ndarray):
            rows.append(result), reasons.append("")
        else:
            rows.append(np.full(518, np.nan, np.float32))
            reasons.append(result.reason if isinstance(result, DecodeError) else result)
        if len(keys) == _PART_SIZE:
            save_part()
    if keys:
        save_part()
    all_keys = np.concatenate([p["keys"] for p in parts]) if parts else np.array([], str)
    all_features = np.concatenate([p["features"] for p in parts]) if parts else np.zeros((0, 518), np.float32)
    all_reasons = np.concatenate([p["reasons"] for p in parts]) if parts else np.array([], str)
    table = pd.DataFrame(all_features, index=pd.Index(all_keys, name="key"), columns=FEATURE_NAMES)
    failed = dict(zip(all_keys[all_reasons != ""], all_reasons[all_reasons != ""]))
    wanted = set(tracks["key"].astype(str))
    table = table[table.index.isin(wanted) & (all_reasons == "")]
    return table, {k: v for k, v in failed.items() if k in wanted}


def make_model(kind: str, seed: int = 0):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    if kind == "svm":
        # Platt scaling on cross-validated scores, then one SVC on all data: what the kit's
        # SVC(probability=True) did (deprecated in scikit-learn 1.9 in favour of this spelling).
        svm = CalibratedClassifierCV(SVC(kernel="rbf"), method="sigmoid", ensemble=False)
        return make_pipeline(StandardScaler(), svm)
    if kind == "gbm":
        return HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, random_state=seed)
    raise ValueError(f"unknown model {kind!r}: use one of {MODELS}")


def predict_proba(model, features: np.ndarray) -> np.ndarray:
    """(clips, 16) probabilities; classes never seen in training get probability 0 (floored later)."""
    probabilities = np.zeros((len(features), len(GENRES)))
    if len(features):
        probabilities[:, model.classes_] = model.predict_proba(features)
    return probabilities


def save_model(path: Path, model, kind: str, class_prior: np.ndarray) -> None:
    write_atomic(
        path,
        pickle.dumps(
            {
                "kind": kind,
                "model": model,
                "class_prior": class_prior,
                "features": FEATURE_NAMES,
                "classes": GENRES,
            }
        ),
    )


def load_model(path: Path) -> dict:
    """The saved baseline; pickle, so load only files you made (like any scikit-learn model)."""
    with open(path, "rb") as file:
        saved = pickle.load(file)
    if tuple(saved["classes"]) != GENRES or tuple(saved["features"]) != FEATURE_NAMES:
        raise ValueError(f"{path} was made for other classes or features")
    return saved
