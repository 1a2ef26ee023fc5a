"""The feature cache: every track decoded and turned into a log-mel once, for all training runs.

Layout of `<cache root>/logmel-<hash>/` (the hash covers the spectrogram config, so a different
config gets a different cache):
  config.json   the spectrogram config, for people
  logmel.f16    all spectrograms back to back, float16, shape (total frames, n_mels), memory-mapped
  index.csv     key, offset, frames, status ("ok" | "failed"), reason -- one row per track seen

Built in parallel worker processes (decode + log-mel on the CPU, one torch thread each: the
fastest layout, README, Benchmarks) through the same `decode` and `LogMel` as prediction; several
configs (the CNNs' and musicnn's) are filled from one decoding pass. Resumable:
the index is saved every few hundred tracks and the data file is cut back to what the index
covers, so a rerun after a crash continues where the last save left off and skips what is
cached. Undecodable, silent and too-short files are recorded as failed with their reason,
summarised, never fatal.

A track longer than three 30-s windows (fma_full's full-length tracks, a user's albums) is cached
as three 30-s windows centred on the middles of its thirds (`track_windows`), within the first
10 minutes that decoding reads: the cache grows with the number of tracks, not with hours of
audio. Each window is a log-mel of its own, as a 30-s clip would be; a training crop may span
the seam between two windows.

Built in shards (`--shard i/n`, or one per rank under torchrun): shard i decodes its share of the
tracks (model/sharding.py) into `<cache folder>/parts/<i>-of-<n>/`, a cache of the same layout,
resumable the same way, marked `complete` when its shard has finished. The next build without a
shard absorbs every complete part it finds (copies its rows in, no decoding, then deletes the
part), skips with a warning any part still being built, then computes whatever is still missing.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .atomic import write_atomic
from .audio import Decoded, DecodeError, decode_many, unusable_reason
from .progress import progress_bar
from .sharding import Shard
from .spectrogram import LogMel, SpectrogramConfig
from .stopping import out_of_space

# Bump when decoding or the log-mel changes in a way that alters the numbers (2: long tracks as windows)
FEATURES_VERSION = 2
WINDOWS_PER_TRACK, WINDOW_SECONDS = 3, 30.0  # what a long track keeps (see the module docstring)
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


def part_folder(root: str | Path, config: SpectrogramConfig, shard: Shard) -> Path:
    """Where shard `shard` of a config's cache is built (see the module docstring)."""
    return cache_folder(root, config) / "parts" / shard.name


class _CacheWriter:
    """One cache folder being filled: its index, its data file, the rows not yet saved."""

    def __init__(self, root: str | Path, config: SpectrogramConfig, shard: Shard | None = None):
        self.config = config
        self.folder = cache_folder(root, config) if shard is None else part_folder(root, config, shard)
        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomic(self.folder / "config.json", json.dumps(config.to_dict(), indent=2).encode())
        self.index = _read_index(self.folder)
        self.bytes_per_frame = 2 * config.n_mels
        covered = (
            int((self.index["offset"] + self.index["frames"]).max())
            if (self.index["status"] == "ok").any()
            else 0
        )
        self.data = open(self.folder / "logmel.f16", "ab")  # noqa: SIM115 -- closed in close()
        self.data.truncate(
            covered * self.bytes_per_frame
        )  # drop what a crash wrote after the last index save
        self.data.seek(0, os.SEEK_END)
        self.offset, self.rows = covered, []
        self.done = set(self.index["key"])

    def add(self, key: str, result: np.ndarray | str) -> None:
        if key in self.done:
            return
        if isinstance(result, np.ndarray):
            try:
                self.data.write(result.tobytes())
            except OSError as error:  # a full disk: the index still covers only what is whole
                raise out_of_space(error, self.folder / "logmel.f16", result.nbytes) from None
            self.rows.append((key, self.offset, len(result), "ok", ""))
            self.offset += len(result)
        else:
            self.rows.append((key, 0, 0, "failed", result))
        self.done.add(key)
        if len(self.rows) >= _SAVE_EVERY:
            self.save()

    def save(self) -> None:
        if self.rows or not (self.folder / "index.csv").exists():
            self.index = _save_index(self.folder, self.index, self.rows, self.data)
        self.rows = []

    def absorb_parts(self) -> None:
        """Copy in the rows of every part built by a shard (no decoding), then delete the part.
        Safe to interrupt: a rerun skips the rows already in and absorbs the rest."""
        for part in sorted((self.folder / "parts").glob("*-of-*")):
            if not (part / "complete").exists():
                print(
                    f"warning: feature cache part {part} is not complete (its shard is still running, "
                    "or was interrupted: rerun it); its tracks are decoded here instead",
                    file=sys.stderr,
                )
                continue
            cache = open_cache(part, self.config)
            before = len(self.done)
            for row in cache.index.itertuples():
                if row.status == "ok":
                    self.add(row.key, np.asarray(cache.data[row.offset : row.offset + row.frames]))
                else:
                    self.add(row.key, row.reason)
            self.save()
            del cache
            shutil.rmtree(part)
            print(
                f"feature cache {self.folder}: joined part {part.name} ({len(self.done) - before} tracks)",
                file=sys.stderr,
            )
        if (self.folder / "parts").is_dir() and not any((self.folder / "parts").iterdir()):
            (self.folder / "parts").rmdir()

    def save_and_close(self) -> None:
        try:
            self.save()
        except OSError as error:
            raise out_of_space(error, self.folder / "logmel.f16") from None
        finally:
            try:
                self.data.close()
            except OSError:  # a full disk again: the data past the saved index is dropped on reopening
                pass

    def close(self) -> FeatureCache:
        self.save_and_close()
        return open_cache(self.folder, self.config)


def build_caches(
    root: str | Path,
    configs: list[SpectrogramConfig],
    tracks: pd.DataFrame,
    workers: int,
    shard: Shard | None = None,
) -> dict[SpectrogramConfig, FeatureCache]:
    """Make sure every track (columns key, path) is in the cache of every config; one decoding
    pass serves them all (configs of one sample rate), and a track computes only the configs
    whose cache lacks it. Returns the opened caches. With `shard`: only that shard's tracks
    that the cache lacks, into the shard's part folder; returns the parts."""
    if len({config.sample_rate for config in configs}) > 1:
        return {
            c: cache
            for config in configs
            for c, cache in build_caches(root, [config], tracks, workers, shard).items()
        }
    tracks = tracks.assign(key=tracks["key"].astype(str)).drop_duplicates("key")
    if shard is not None:
        tracks = tracks[tracks["key"].isin(shard.take(tracks["key"]))]
        held = set.intersection(*(set(_read_index(cache_folder(root, c))["key"]) for c in configs))
        if tracks["key"].isin(held).all():
            print(
                f"feature cache shard {shard}: nothing to decode, the cache holds its tracks", file=sys.stderr
            )
            return {}
    writers = [_CacheWriter(root, config, shard) for config in configs]
    for writer in writers:
        if shard is None:
            writer.absorb_parts()
        else:  # what the joined cache already holds needs no part
            writer.done |= set(_read_index(cache_folder(root, writer.config))["key"])
    for writer in writers:
        print(
            f"feature cache {writer.folder}: {len(writer.done)} tracks cached, "
            f"{int((~tracks['key'].isin(writer.done)).sum())} to compute",
            file=sys.stderr,
        )
    # which caches lack each track; usually every track lacks all or none of them
    missing = tracks["key"].map(lambda key: tuple(i for i, w in enumerate(writers) if key not in w.done))
    todo = int((missing.str.len() > 0).sum())
    start = time.perf_counter()
    try:
        with progress_bar(todo, "track", disable=not todo) as progress:
            for needed, group in tracks.groupby(missing, sort=False):
                if not needed:
                    continue
                transform = partial(log_mel_features, configs=tuple(configs[i] for i in needed))
                results = decode_many(
                    group["path"], configs[0].sample_rate, workers, prefetch=8, transform=transform
                )
                for key, (_, result) in zip(group["key"], results):  # results come in input order
                    if isinstance(result, DecodeError):
                        result = result.reason
                    for i, features in zip(
                        needed, result if isinstance(result, tuple) else [result] * len(needed)
                    ):
                        writers[i].add(key, features)
                    progress.update()
    except BaseException:  # ^C or an error: keep every track computed so far for the rerun
        for writer in writers:
            writer.save_and_close()
        raise
    if todo:
        elapsed = time.perf_counter() - start
        print(
            f"feature cache: {todo} tracks in {elapsed:.0f} s ({todo / max(elapsed, 1e-9):.1f} tracks/s)",
            file=sys.stderr,
        )
    caches = {writer.config: writer.close() for writer in writers}
    if shard is not None:  # the part may now be joined (see the module docstring)
        for cache in caches.values():
            write_atomic(cache.folder / "complete", b"")
    _report_failures(list(caches.values()))
    return caches


def _report_failures(caches: list[FeatureCache]) -> None:
    """The tracks no cache could use, each listed once however many caches saw it fail."""
    bad = pd.concat([c.index[c.index["status"] == "failed"] for c in caches]).drop_duplicates("key")
    if len(bad):
        print(f"feature cache: {len(bad)} unusable track{'' if len(bad) == 1 else 's'}:", file=sys.stderr)
    for row in bad.head(20).itertuples():
        print(f"  skipped {row.key}: {row.reason}", file=sys.stderr)
    if len(bad) > 20:
        print(f"  ... and {len(bad) - 20} more (see {caches[0].folder / 'index.csv'})", file=sys.stderr)


def build_cache(
    root: str | Path, config: SpectrogramConfig, tracks: pd.DataFrame, workers: int
) -> FeatureCache:
    """`build_caches` for one config."""
    return build_caches(root, [config], tracks, workers)[config]


def open_cache(folder: Path, config: SpectrogramConfig) -> FeatureCache:
    index = _read_index(folder)
    path = folder / "logmel.f16"
    frames = path.stat().st_size // (2 * config.n_mels) if path.exists() else 0
    # copy-on-write: writable for torch.from_numpy, yet nothing ever reaches the file
    data = (
        np.memmap(path, dtype=np.float16, mode="c", shape=(frames, config.n_mels))
        if frames
        else np.zeros((0, config.n_mels), np.float16)
    )
    return FeatureCache(folder, config, index, data)


_logmels: dict[SpectrogramConfig, LogMel] = {}


def log_mel_features(
    decoded: Decoded, configs: tuple[SpectrogramConfig, ...]
) -> tuple[np.ndarray, ...] | str:
    """Worker side: one (frames, n_mels) float16 log-mel per config, or the reason the clip is unusable."""

    reason = unusable_reason(decoded)
    if reason:
        return reason
    if multiprocessing.parent_process() is not None:  # a worker: one process per core is the fast layout
        torch.set_num_threads(1)  # (in the main process, with --workers 0, it would slow training after)
    audio = torch.from_numpy(decoded.audio)
    windows = [audio[None, a:b] for a, b in track_windows(len(audio), decoded.sample_rate)]
    out = []
    for config in configs:
        if config not in _logmels:
            _logmels[config] = LogMel(config)
        with torch.inference_mode():
            logmels = [_logmels[config](window)[0].T for window in windows]
        out.append(torch.cat(logmels).contiguous().numpy().astype(np.float16))
    return tuple(out)


def track_windows(samples: int, sample_rate: int) -> list[tuple[int, int]]:
    """The (start, end) samples of a track that the cache keeps: all of a track up to three
    windows long; of a longer one, three 30-s windows centred on the middles of its thirds."""
    window = round(WINDOW_SECONDS * sample_rate)
    if samples <= WINDOWS_PER_TRACK * window:
        return [(0, samples)]
    starts = [
        round((2 * k + 1) * samples / (2 * WINDOWS_PER_TRACK)) - window // 2 for k in range(WINDOWS_PER_TRACK)
    ]
    return [(start, start + window) for start in starts]


def _read_index(folder: Path) -> pd.DataFrame:
    path = folder / "index.csv"
    if path.exists():
        return pd.read_csv(path, dtype={"key": str, "reason": str}, keep_default_na=False)
    return pd.DataFrame(
        {
            "key": pd.Series(dtype=str),
            "offset": pd.Series(dtype=np.int64),
            "frames": pd.Series(dtype=np.int64),
            "status": pd.Series(dtype=str),
            "reason": pd.Series(dtype=str),
        }
    )


def _save_index(folder: Path, index: pd.DataFrame, rows: list, data) -> pd.DataFrame:
    """Data first (flushed to disk), then the index that covers it: the index never points past
    what is on disk."""
    data.flush()
    os.fsync(data.fileno())
    if rows:
        index = pd.concat([index, pd.DataFrame(rows, columns=index.columns)], ignore_index=True)
    write_atomic(folder / "index.csv", index.to_csv(index=False).encode())
    return index
