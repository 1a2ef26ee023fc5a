"""The feature cache: every track decoded and turned into a log-mel once, for all training runs.

Layout of `<cache root>/logmel-<hash>/` (the hash covers the spectrogram config, so a different
config gets a different cache):
  config.json   the spectrogram config, for people
  logmel.f16    all spectrograms back to back, float16, shape (total frames, n_mels), memory-mapped
  index.csv     key, offset, frames, status ("ok" | "failed"), reason -- one row per track seen

Built in parallel worker processes (decode + log-mel on the CPU, one torch thread each, the
fastest layout measured here) through the same `decode` and `LogMel` as prediction. Resumable:
the index is saved every few hundred tracks and the data file is cut back to what the index
covers, so a rerun after a crash continues where the last save left off and skips what is
cached. Undecodable, silent and too-short files are recorded as failed with their reason,
summarised, never fatal.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from .atomic import write_atomic
from .audio import Decoded, DecodeError, decode_many, unusable_reason
from .spectrogram import LogMel, SpectrogramConfig

FEATURES_VERSION = 1  # bump when decoding or the log-mel changes in a way that alters the numbers
_SAVE_EVERY = 256


@dataclass
class FeatureCache:
    folder: Path
    config: SpectrogramConfig
    index: pd.DataFrame  # key (str), offset, frames, status, reason
    data: np.memmap  # (total frames, n_mels) float16

    def ok(self) -> pd.DataFrame:
        return self.index[self.index["status"] == "ok"]

    def spectrogram(self, key: str) -> np.ndarray:
        """(n_mels, frames) float32 log-mel of one cached track."""
        row = self.index.loc[self.index["key"] == key].iloc[0]
        return self.data[row.offset : row.offset + row.frames].T.astype(np.float32)


def cache_folder(root: str | Path, config: SpectrogramConfig) -> Path:
    blob = json.dumps({"version": FEATURES_VERSION, **config.to_dict()}, sort_keys=True)
    return Path(root) / f"logmel-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


def build_cache(
    root: str | Path, config: SpectrogramConfig, tracks: pd.DataFrame, workers: int
) -> FeatureCache:
    """Make sure every track (columns key, path) is in the cache; returns the opened cache."""
    folder = cache_folder(root, config)
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / "config.json", json.dumps(config.to_dict(), indent=2).encode())
    index = _read_index(folder)
    data_path = folder / "logmel.f16"
    covered = int((index["offset"] + index["frames"]).max()) if (index["status"] == "ok").any() else 0
    bytes_per_frame = 2 * config.n_mels
    with open(data_path, "ab") as data:
        data.truncate(covered * bytes_per_frame)  # drop what a crash wrote after the last index save

    done = set(index["key"])
    todo = tracks[~tracks["key"].astype(str).isin(done)].drop_duplicates("key")
    print(f"feature cache {folder}: {len(done)} tracks cached, {len(todo)} to compute", file=sys.stderr)
    start, rows, failed = time.perf_counter(), [], 0
    if len(todo):
        with open(data_path, "ab") as data, tqdm(total=len(todo), unit="track", file=sys.stderr,
                                                   mininterval=1.0, dynamic_ncols=True) as progress:
            offset = data.tell() // bytes_per_frame
            transform = partial(log_mel_features, config=config)
            results = decode_many(todo["path"], config.sample_rate, workers, prefetch=8, transform=transform)
            for key, (_, result) in zip(todo["key"].astype(str), results):  # results come in input order
                if isinstance(result, np.ndarray):
                    data.write(result.tobytes())
                    rows.append((key, offset, len(result), "ok", ""))
                    offset += len(result)
                else:
                    reason = result.reason if isinstance(result, DecodeError) else str(result)
                    rows.append((key, 0, 0, "failed", reason))
                    failed += 1
                progress.update()
                if len(rows) % _SAVE_EVERY == 0:
                    index = _save_index(folder, index, rows, data)
                    rows = []
            index = _save_index(folder, index, rows, data)
    elapsed = time.perf_counter() - start
    if len(todo):
        print(f"feature cache: {len(todo)} tracks in {elapsed:.0f} s ({len(todo) / max(elapsed, 1e-9):.1f} tracks/s), "
              f"{failed} failed", file=sys.stderr)
    bad = index[index["status"] == "failed"]
    for row in bad.head(20).itertuples():
        print(f"  skipped {row.key}: {row.reason}", file=sys.stderr)
    if len(bad) > 20:
        print(f"  ... and {len(bad) - 20} more (see {folder / 'index.csv'})", file=sys.stderr)
    return open_cache(folder, config)


def open_cache(folder: Path, config: SpectrogramConfig) -> FeatureCache:
    index = _read_index(folder)
    path = folder / "logmel.f16"
    frames = path.stat().st_size // (2 * config.n_mels) if path.exists() else 0
    # copy-on-write: writable for torch.from_numpy, yet nothing ever reaches the file
    data = (np.memmap(path, dtype=np.float16, mode="c", shape=(frames, config.n_mels)) if frames
            else np.zeros((0, config.n_mels), np.float16))
    return FeatureCache(folder, config, index, data)


_logmels: dict[SpectrogramConfig, LogMel] = {}


def log_mel_features(decoded: Decoded, config: SpectrogramConfig) -> np.ndarray | str:
    """Worker side: (frames, n_mels) float16 log-mel, or the reason the clip is unusable."""
    import torch

    reason = unusable_reason(decoded)
    if reason:
        return reason
    if config not in _logmels:
        torch.set_num_threads(1)  # one process per core is the fast layout here
        _logmels[config] = LogMel(config)
    with torch.inference_mode():
        spec = _logmels[config](torch.from_numpy(decoded.audio)[None])[0]
    return spec.T.contiguous().numpy().astype(np.float16)


def _read_index(folder: Path) -> pd.DataFrame:
    path = folder / "index.csv"
    if path.exists():
        return pd.read_csv(path, dtype={"key": str, "reason": str}, keep_default_na=False)
    return pd.DataFrame({"key": pd.Series(dtype=str), "offset": pd.Series(dtype=np.int64),
                         "frames": pd.Series(dtype=np.int64), "status": pd.Series(dtype=str),
                         "reason": pd.Series(dtype=str)})


def _save_index(folder: Path, index: pd.DataFrame, rows: list, data) -> pd.DataFrame:
    """Data first (flushed to disk), then the index that covers it: the index never points past
    what is on disk."""
    data.flush()
    os.fsync(data.fileno())
    if rows:
        index = pd.concat([index, pd.DataFrame(rows, columns=index.columns)], ignore_index=True)
    write_atomic(folder / "index.csv", index.to_csv(index=False).encode())
    return index
