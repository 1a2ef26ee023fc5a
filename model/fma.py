"""Labelled audio for training, from the three sources a user may have.

1. FMA as unzipped: `fma_metadata/tracks.csv` (two-row header) + `fma_medium/000/000002.mp3`;
   a subset (small, medium, large, or full: the large set's tracks, full length), labels from
   ('track', 'genre_top'), the official artist-filtered split from ('set', 'split'). Tracks of
   the subset without a top genre (in large and full, those whose genres span several top-level
   ones) are counted, reported and left out.
2. crowdAI's `train_labels.csv` (`track_id,genre`) + the same audio layout; no official split,
   so a stratified train/validation/test split with a fixed seed (not artist-filtered: warned).
3. Any CSV with `path,genre` columns (paths relative to the CSV's folder or absolute), split as 2.

Every source becomes one table: key (track id or path), path, genre, split. Tracks whose audio is
missing are listed and dropped; unknown genres and missing columns are errors that name the fix.
FMA-medium's 15 tracks whose mp3 holds no audio need no list here: the feature cache records them
as undecodable, like any other, and training skips them.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .genres import GENRES

SPLITS = ("training", "validation", "test")


class DataError(Exception):
    """The labels or the audio folder are not what they should be; the message says how."""


def audio_path(audio_dir: str | Path, track_id: int) -> Path:
    """FMA layout: fma_medium/000/000002.mp3 for track 2."""
    name = f"{int(track_id):06d}"
    return Path(audio_dir) / name[:3] / f"{name}.mp3"


SUBSETS = ("small", "medium", "large", "full")  # each holds the ones before it; full: large's tracks


def read_tracks(metadata: str | Path, subset: str = "medium") -> pd.DataFrame:
    """FMA's tracks.csv (a file, or the fma_metadata/ folder holding it) -> key, genre, split
    for the tracks of `subset` (and the smaller subsets inside it) that have a top genre; how
    many lack one is warned about."""
    path = Path(metadata)
    path = path / "tracks.csv" if path.is_dir() else path
    if not path.is_file():
        raise DataError(f"{path} not found: --metadata must be the unzipped fma_metadata/ folder")
    tracks = pd.read_csv(path, index_col=0, header=[0, 1], low_memory=False)
    needed = [("set", "subset"), ("set", "split"), ("track", "genre_top")]
    missing = [f"{a}/{b}" for a, b in needed if (a, b) not in tracks.columns]
    if missing:
        raise DataError(f"{path} lacks column(s) {', '.join(missing)}: is it FMA's tracks.csv (rc1)?")
    if subset not in SUBSETS:
        raise DataError(f"unknown subset {subset!r}: use one of {list(SUBSETS)}")
    rank = tracks[("set", "subset")].map({s: i for i, s in enumerate(SUBSETS)})
    tracks = tracks[rank <= SUBSETS.index(subset)]
    unlabelled = int(tracks[("track", "genre_top")].isna().sum())
    if unlabelled:
        warnings.warn(
            f"{unlabelled} of the {len(tracks)} tracks of fma_{subset} have no top genre (their genres "
            "span several top-level ones) and are left out",
            stacklevel=2,
        )
    tracks = tracks[tracks[("track", "genre_top")].notna()]
    table = pd.DataFrame(
        {
            "key": tracks.index.astype(str),
            "genre": tracks[("track", "genre_top")].astype(str).values,
            "split": tracks[("set", "split")].astype(str).values,
        }
    )
    _check_genres(table, path)
    return table


def load_fma(metadata_dir: str | Path, audio_dir: str | Path, subset: str = "medium") -> pd.DataFrame:
    """The official FMA subset with its artist-filtered split, for tracks whose audio exists."""
    table = read_tracks(metadata_dir, subset)
    table.insert(1, "path", [audio_path(audio_dir, int(key)) for key in table["key"]])
    fix = "is --audio the folder of the same subset as --metadata?"
    return check_splits(_keep_existing_audio(table, Path(audio_dir)), audio_dir, fix)


def load_crowdai_labels(labels_csv: str | Path, audio_dir: str | Path, seed: int = 0) -> pd.DataFrame:
    """crowdAI's train_labels.csv (track_id,genre), randomly split 80/10/10 by genre."""
    labels = _read_csv(labels_csv, ("track_id", "genre"))
    table = pd.DataFrame(
        {
            "key": labels["track_id"].astype(int).astype(str),
            "path": [audio_path(audio_dir, tid) for tid in labels["track_id"]],
            "genre": labels["genre"].astype(str),
        }
    )
    _check_genres(table, labels_csv)
    table = _keep_existing_audio(table, Path(audio_dir))
    return check_splits(stratified_split(table, seed), labels_csv, _TOO_FEW_TO_SPLIT)


def load_path_labels(labels_csv: str | Path, seed: int = 0) -> pd.DataFrame:
    """Any `path,genre` CSV (an optional `split` column is honoured), for users' own data."""
    labels = _read_csv(labels_csv, ("path", "genre"))
    base = Path(labels_csv).resolve().parent
    table = pd.DataFrame(
        {
            "key": labels["path"].astype(str),
            "path": [Path(p) if Path(p).is_absolute() else base / p for p in labels["path"].astype(str)],
            "genre": labels["genre"].astype(str),
        }
    )
    _check_genres(table, labels_csv)
    if "split" in labels.columns:
        table["split"] = labels["split"].astype(str)
        bad = sorted(set(table["split"]) - set(SPLITS))
        if bad:
            raise DataError(f"{labels_csv}: unknown split value(s) {bad}; use {list(SPLITS)}")
        fix = (
            f"give some rows that split (the column takes {', '.join(SPLITS)}; test is optional), "
            "or drop the column to let train.py split 80/10/10 per genre"
        )
        return check_splits(_keep_existing_audio(table, None), labels_csv, fix)
    fix = _TOO_FEW_TO_SPLIT + ", or a split column naming training and validation rows"
    return check_splits(stratified_split(_keep_existing_audio(table, None), seed), labels_csv, fix)


def load_labelled_audio(
    metadata: str | None, audio: str | None, labels: str | None, subset: str = "medium", seed: int = 0
) -> pd.DataFrame:
    """The training table from whichever source the user gave (see the module docstring):
    --metadata + --audio (FMA), --labels + --audio (crowdAI), or --labels alone (path,genre)."""
    if metadata:
        if not audio:
            raise DataError("--metadata needs --audio (the unzipped fma_medium/ folder)")
        return load_fma(metadata, audio, subset)
    if not labels:
        raise DataError(
            "give --metadata and --audio (FMA), or --labels (with --audio for crowdAI's track_id,genre)"
        )
    return load_crowdai_labels(labels, audio, seed) if audio else load_path_labels(labels, seed)


def check_splits(table: pd.DataFrame, source, fix: str) -> pd.DataFrame:
    """`table`, if its training and validation splits both hold clips (validation picks each
    member's epoch and fits the temperature); else a DataError naming the empty one and `fix`,
    before anything is decoded."""
    counts = table["split"].value_counts()
    empty = [s for s in SPLITS[:2] if not counts.get(s, 0)]
    if empty:
        found = ", ".join(f"{counts.get(s, 0)} {s}" for s in SPLITS)
        raise DataError(f"{source}: the {' and '.join(empty)} split is empty ({found}): {fix}")
    return table


_TOO_FEW_TO_SPLIT = (
    "the random split gives a genre validation and test clips only when it has at least 3: add clips "
    "(3 or more of a genre)"
)


def stratified_split(table: pd.DataFrame, seed: int, fractions=(0.8, 0.1, 0.1)) -> pd.DataFrame:
    """Per genre, shuffle with `seed` and cut into training/validation/test (each genre with >= 3
    tracks gets at least one in every split). Not artist-filtered: scores will be optimistic."""
    warnings.warn(
        "no official split: using a random stratified split, which is not artist-filtered "
        "(tracks of one artist can land on both sides, so validation scores are optimistic)",
        stacklevel=2,
    )
    rng = np.random.default_rng(seed)
    split = pd.Series("training", index=table.index)
    for _, rows in table.groupby("genre"):
        index = rng.permutation(rows.index.to_numpy())
        n_val = max(1, round(fractions[1] * len(index))) if len(index) >= 3 else 0
        n_test = max(1, round(fractions[2] * len(index))) if len(index) >= 3 else 0
        split[index[:n_val]] = "validation"
        split[index[n_val : n_val + n_test]] = "test"
    return table.assign(split=split.values).reset_index(drop=True)


def slice_training(table: pd.DataFrame, tracks: int, seed: int = 0) -> pd.DataFrame:
    """`table` with its training split cut to `tracks` tracks, drawn per genre in proportion to
    its count (each genre present keeps at least one) with `seed`; validation and test unchanged,
    so scores stay comparable with a full run's."""
    training = table[table["split"] == "training"]
    if tracks >= len(training):
        return table
    rng = np.random.default_rng(seed)
    counts = training["genre"].value_counts()
    share = counts * tracks / len(training)
    quota = np.floor(share).clip(lower=1).astype(int)  # then the rest to the largest remainders
    for genre in (share - np.floor(share)).sort_values(ascending=False, kind="stable").index:
        if quota.sum() >= tracks:
            break
        quota[genre] += 1
    kept = []
    for genre, rows in training.groupby("genre"):
        kept += list(rng.permutation(rows.index.to_numpy())[: quota[genre]])
    keep = table.index.isin(kept) | (table["split"] != "training")
    return table[keep].reset_index(drop=True)


def _read_csv(path: str | Path, columns: tuple[str, ...], **read_options) -> pd.DataFrame:
    if not Path(path).is_file():
        raise DataError(f"labels file {path} not found")
    frame = pd.read_csv(path, **read_options)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path} lacks column(s) {missing}; it has {list(frame.columns)}")
    return frame


def _check_genres(table: pd.DataFrame, source) -> None:
    unknown = sorted(set(table["genre"]) - set(GENRES))
    if unknown:
        raise DataError(
            f"{source}: unknown genre(s) {unknown}; labels must be among the 16 FMA genres {list(GENRES)}"
        )


def _keep_existing_audio(table: pd.DataFrame, audio_dir: Path | None) -> pd.DataFrame:
    if audio_dir is not None and not audio_dir.is_dir():
        raise DataError(f"audio folder {audio_dir} does not exist")
    exists = table["path"].map(lambda p: Path(p).is_file())
    if not exists.any():
        layout = f" (expected FMA's layout {audio_path(audio_dir, 2)})" if audio_dir is not None else ""
        raise DataError(f"none of the {len(table)} labelled tracks has an audio file{layout}")
    if not exists.all():
        missing = table.loc[~exists, "key"].tolist()
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        warnings.warn(
            f"{len(missing)} labelled track(s) have no audio file and are skipped: {shown}", stacklevel=3
        )
    return table[exists].reset_index(drop=True)


def read_labels(path: str | Path, split: str | None = "test", subset: str = "medium") -> dict[str, str]:
    """Ground truth for scoring, as {file_id: genre}, from whichever of three files `path` is:
    FMA's tracks.csv (the given `split` of `subset`), crowdAI's `track_id,genre`, or `file_id,genre`.
    Track ids are normalised ("000002" and "2" are the same track); no audio is needed."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"labels file {path} not found")
    with open(path, encoding="utf-8") as file:
        first = file.readline()
    if first.startswith(",") and "track" in first:  # FMA's multi-row header
        table = read_tracks(path, subset)
        if split is not None:
            if split not in SPLITS:
                raise DataError(f"unknown split {split!r}; use one of {list(SPLITS)}")
            table = table[table["split"] == split]
        return dict(zip(table["key"].map(normalise_id), table["genre"]))
    columns = pd.read_csv(path, nrows=0).columns
    id_column = "track_id" if "track_id" in columns else "file_id"
    _read_csv(path, (id_column, "genre"), nrows=0)  # names the missing columns, if any
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    _check_genres(frame, path)
    ids = frame[id_column].map(normalise_id)
    repeated = sorted(ids[ids.duplicated()].unique())
    if repeated:
        raise DataError(f"{path}: file id(s) labelled more than once: {', '.join(repeated[:20])}")
    return dict(zip(ids, frame["genre"]))


def normalise_id(file_id: str) -> str:
    """FMA track ids appear as 2 or 000002: compare them as numbers; anything else as is."""
    text = str(file_id)
    return str(int(text)) if text.isdigit() else text
