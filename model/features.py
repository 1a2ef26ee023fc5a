"""What training reads: each spectrogram config's cached log-mels as one store (on the GPU when it
fits), and each split's clips in it.

`TrainingData.build` makes sure the feature caches exist (model/feature_cache.py builds them,
resumably, in shards under torchrun) and lays the training, validation and test clips over them:
the same tracks for every config, those every cache could use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .distributed import SINGLE, Ranks, barrier
from .feature_cache import build_caches, cache_folder, open_cache
from .fma import SPLITS
from .genres import GENRES
from .sharding import Shard
from .spectrogram import SpectrogramConfig


@dataclass
class ClipSet:
    """Clips of one split inside the feature store: where each starts, its length, its label."""

    offsets: torch.Tensor  # (clips,) int64, first frame in the store
    frames: torch.Tensor  # (clips,) int64
    labels: torch.Tensor  # (clips,) int64 class index
    keys: tuple[str, ...] = ()  # the tracks' keys (model/fma.py), in the same order

    def to(self, device: torch.device) -> ClipSet:
        return ClipSet(self.offsets.to(device), self.frames.to(device), self.labels.to(device), self.keys)


class FeatureStore:
    """All cached log-mels as one (total frames, n_mels) fp16 tensor, on the GPU when it fits.
    `compression` is the cache's (see model/spectrogram.py), for augmentations in the power domain."""

    def __init__(self, data: np.ndarray, device: torch.device, compression: str = "db"):
        self.compression = compression
        array = np.asarray(data)
        self.on_device = False
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            if array.nbytes < 0.7 * free:  # leave room for the network and activations
                self.features = torch.from_numpy(array).to(device)
                self.on_device = True
        if not self.on_device:
            self.features = torch.from_numpy(array)  # memory-mapped: pages come in as crops need them
        self.device = device

    def crops(
        self, clips: ClipSet, which: torch.Tensor, starts: torch.Tensor, chunk_frames: int
    ) -> torch.Tensor:
        """(batch, n_mels, chunk) float32 crops on the training device; short clips wrap around.
        Index tensors already on the features' device cost no copy (train_member puts them there)."""
        feature_device = self.features.device
        which, starts = which.to(feature_device), starts.to(feature_device)
        frames = clips.frames.to(feature_device)[which]
        steps = torch.arange(chunk_frames, device=feature_device)
        rows = clips.offsets.to(feature_device)[which][:, None] + (starts[:, None] + steps) % frames[:, None]
        batch = self.features[rows]
        if not self.on_device:
            batch = batch.pin_memory() if self.device.type == "cuda" else batch
        return batch.to(self.device, non_blocking=True).transpose(1, 2).float()

    def clip_specs(self, clips: ClipSet, which: list[int]) -> tuple[torch.Tensor, list[int]]:
        """Whole clips, zero-padded to the longest: (len(which), n_mels, max frames), frames."""
        frames = [int(clips.frames[i]) for i in which]
        batch = torch.zeros(len(which), self.features.shape[1], max(frames), device=self.device)
        for row, i in enumerate(which):
            start = int(clips.offsets[i])
            batch[row, :, : frames[row]] = (
                self.features[start : start + frames[row]].to(self.device).T.float()
            )
        return batch, frames


@dataclass
class TrainingData:
    """What training reads: each spectrogram config's feature store, and each split's clips in it
    (the same tracks for every config: those every cache could use)."""

    stores: dict[SpectrogramConfig, FeatureStore]
    splits: dict[SpectrogramConfig, dict[str, ClipSet]]

    @classmethod
    def build(
        cls,
        cache_root: str | Path,
        configs: list[SpectrogramConfig],
        tracks: pd.DataFrame,
        workers: int,
        device,
        ranks: Ranks = SINGLE,
    ) -> TrainingData:
        """Caches for `configs` (built where missing) of `tracks` (key, path, split, genre).
        Under torchrun each rank decodes its shard, then rank 0 joins the parts."""
        configs = list(dict.fromkeys(configs))
        tracks_to_cache = tracks[["key", "path"]]
        if ranks.active:
            build_caches(cache_root, configs, tracks_to_cache, workers, Shard(ranks.rank, ranks.world))
            barrier(ranks)
        if ranks.main:
            caches = build_caches(cache_root, configs, tracks_to_cache, workers)
        barrier(ranks)
        if not ranks.main:
            caches = {config: open_cache(cache_folder(cache_root, config), config) for config in configs}
        usable_keys = set.intersection(*(set(cache.ok()["key"]) for cache in caches.values()))
        usable = tracks[tracks["key"].isin(usable_keys)]
        label_of = {genre: i for i, genre in enumerate(GENRES)}
        splits = {}
        for config in configs:
            located = usable.merge(caches[config].ok()[["key", "offset", "frames"]], on="key")
            splits[config] = {
                split: ClipSet(  # to_numpy(int64): an empty split is an empty tensor, not object dtype
                    torch.tensor(rows["offset"].to_numpy(np.int64)),
                    torch.tensor(rows["frames"].to_numpy(np.int64)),
                    torch.tensor(rows["genre"].map(label_of).to_numpy(np.int64)),
                    tuple(rows["key"]),
                )
                for split, rows in ((s, located[located["split"] == s]) for s in SPLITS)
            }
        stores = {config: FeatureStore(caches[config].data, device, config.compression) for config in configs}
        return cls(stores, splits)
