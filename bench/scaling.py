#!/usr/bin/env python3
"""What FMA-medium, -large and -full cost to cache and train on 1, 8 and 32 GPUs, from per-track
costs measured here.

    python bench/scaling.py [--clips 120] [--long-tracks 8] [--cores-per-gpu 16]
    python bench/scaling.py --gpu-crops-per-second 5000     # with a GPU's measured training rate

Measures, in one run, on generated 44.1 kHz stereo mp3s (bench/common.py's 30-s clips, and
full-length tracks of FMA-full's mean length, 278 s = 343 days / 106,574 tracks):
  1. the feature cache of a 30-s clip: core-seconds (decode + log-mel + write) and bytes;
  2. the same for a full-length track, which the cache keeps as three 30-s windows;
  3. joining the parts of a cache built in 2 shards (`--shard`): seconds per track, no decoding;
then projects, for each subset, the cache's size and the wall time to build it with
`--cores-per-gpu` cores per GPU (the H200 machine lent to this project has 16), and the training
crops one run processes (train.py's defaults: 3 members x 40 epochs, one crop per training track
per epoch, before early stopping). Training wall time needs one GPU's crops/s
(`bench/gpu_check.sh` measures it): pass it as --gpu-crops-per-second; data-parallel scaling is
then assumed linear, which torchrun's gradient all-reduce makes an upper bound.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from common import make_payload  # noqa: E402

from model.device import usable_cores  # noqa: E402
from model.feature_cache import build_caches, cache_folder  # noqa: E402
from model.sharding import Shard  # noqa: E402
from model.spectrogram import SpectrogramConfig  # noqa: E402

FULL_MEAN_SECONDS = 278  # FMA-full: 343 days of audio over 106,574 tracks
# (subset, tracks, training tracks, audio per track): FMA-medium's official split; FMA-large and
# -full hold 106,574 tracks, of which those with a top genre are used (train.py counts them): an
# upper bound here, with the same 80 % training share.
SUBSETS = (
    ("fma_medium", 25_000, 19_922, "30-s clip"),
    ("fma_large", 106_574, 85_259, "30-s clip"),
    ("fma_full", 106_574, 85_259, "full track"),
)


def make_long_track(args: tuple[Path, int]) -> None:
    import soundfile as sf

    path, seed = args
    if path.exists():
        return
    rng = np.random.default_rng(seed)
    rate = 44100
    t = np.arange(rate * FULL_MEAN_SECONDS) / rate
    music = (
        sum(np.sin(2 * np.pi * f * t) * (0.5 + 0.5 * np.sin(0.3 * t + f)) for f in rng.uniform(80, 900, 4))
        / 6
    )
    audio = (music[:, None] + 0.05 * rng.standard_normal((len(t), 2))).astype(np.float32)
    sf.write(
        path.with_suffix(".tmp"), audio, rate, format="MP3", bitrate_mode="CONSTANT", compression_level=0.3
    )
    path.with_suffix(".tmp").rename(path)


def cache_cost(paths: list[Path], workers: int, root: Path) -> dict:
    """Core-seconds and bytes per track of a one-shot cache build."""
    config = SpectrogramConfig()
    tracks = pd.DataFrame({"key": [p.stem for p in paths], "path": paths})
    start = time.perf_counter()
    build_caches(root, [config], tracks, workers)
    seconds = time.perf_counter() - start
    size = (cache_folder(root, config) / "logmel.f16").stat().st_size
    return {
        "tracks": len(paths),
        "seconds": seconds,
        "core_seconds_per_track": seconds * max(1, workers) / len(paths),
        "bytes_per_track": size / len(paths),
    }


def join_cost(paths: list[Path], workers: int, root: Path) -> float:
    """Seconds per track to join a cache built in 2 shards."""
    config = SpectrogramConfig()
    tracks = pd.DataFrame({"key": [p.stem for p in paths], "path": paths})
    for index in range(2):
        build_caches(root, [config], tracks, workers, Shard(index, 2))
    start = time.perf_counter()
    build_caches(root, [config], tracks, workers)
    return (time.perf_counter() - start) / len(paths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=120)
    parser.add_argument("--long-tracks", type=int, default=8)
    parser.add_argument("--workers", type=int, default=usable_cores())
    parser.add_argument("--cores-per-gpu", type=int, default=16)
    parser.add_argument("--gpu-crops-per-second", type=float, default=None)
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--payload", type=Path, default=Path("/tmp/fma-bench-payload"))
    args = parser.parse_args()

    clips = make_payload(args.payload, args.clips)
    long_folder = args.payload.parent / f"{args.payload.name}-full-length"
    long_folder.mkdir(exist_ok=True)
    long_tracks = [long_folder / f"{i:05d}.mp3" for i in range(args.long_tracks)]
    if not all(p.exists() for p in long_tracks):
        print(
            f"generating {args.long_tracks} {FULL_MEAN_SECONDS}-s tracks in {long_folder} ...",
            file=sys.stderr,
        )
        with ProcessPoolExecutor(os.cpu_count()) as pool:
            list(pool.map(make_long_track, [(p, 10_000 + i) for i, p in enumerate(long_tracks)]))

    with tempfile.TemporaryDirectory() as tmp:
        clip = cache_cost(clips, args.workers, Path(tmp) / "clips")
        track = cache_cost(long_tracks, args.workers, Path(tmp) / "long")
        join = join_cost(clips, args.workers, Path(tmp) / "joined")

    print(f"\n{usable_cores()} usable cores, {args.workers} cache workers\n")
    print("| per track | 30-s clip | full-length track (278 s; 3 windows cached) |")
    print("|---|---|---|")
    print(
        f"| cache build, core-seconds | {clip['core_seconds_per_track']:.3f} | "
        f"{track['core_seconds_per_track']:.3f} |"
    )
    print(
        f"| cache size | {clip['bytes_per_track'] / 1e6:.3f} MB | {track['bytes_per_track'] / 1e6:.3f} MB |"
    )
    print(f"| joining 2 shards' parts, seconds | {join:.4f} | |")

    gpus = (1, 8, 32)
    header = " | ".join(f"cache build, {g} GPU{'s' if g > 1 else ''}" for g in gpus)
    train = " | ".join(f"training, {g} GPU{'s' if g > 1 else ''}" for g in gpus)
    print(f"\n| subset | tracks | cache | {header} | training crops | {train} |")
    print("|---|---|---|" + "---|" * (2 * len(gpus) + 1))
    for name, tracks, training, kind in SUBSETS:
        cost = clip if kind == "30-s clip" else track
        core_hours = tracks * cost["core_seconds_per_track"] / 3600
        cache_gb = tracks * cost["bytes_per_track"] / 1e9
        builds = " | ".join(f"{60 * core_hours / (args.cores_per_gpu * g):.1f} min" for g in gpus)
        crops = training * args.members * args.epochs
        if args.gpu_crops_per_second:
            walls = " | ".join(f"{crops / (args.gpu_crops_per_second * g) / 60:.1f} min" for g in gpus)
        else:
            walls = " | ".join("needs --gpu-crops-per-second" for _ in gpus)
        print(f"| {name} | {tracks:,} | {cache_gb:.1f} GB | {builds} | {crops / 1e6:.1f} M | {walls} |")


if __name__ == "__main__":
    main()
