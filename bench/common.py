"""What the benchmarks share: the generated payload, a background sampler, a tensor-memory probe,
an ensemble of random CNNs in the shape train.py ships.

The payload: 30-s 44.1 kHz stereo mp3s, made once and cached. 300 distinct clips (80 % CBR,
20 % VBR, random LAME compression levels) of drifting tones plus noise; larger payloads hard-link
these under new names, since neither speed nor memory depends on the clips being distinct.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf


def make_clip(args: tuple[Path, int]) -> None:
    path, seed = args
    if path.exists():
        return
    rng = np.random.default_rng(seed)
    rate, seconds = 44100, 30
    t = np.arange(rate * seconds) / rate
    notes = rng.uniform(80, 1000, size=4)
    music = (
        sum(
            np.sin(2 * np.pi * f * t + rng.uniform(0, 6))
            * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.1, 2) * t))
            for f in notes
        )
        / 6
    )
    audio = (music[:, None] + 0.05 * rng.standard_normal((len(t), 2))).astype(np.float32)
    vbr = seed % 5 == 0
    tmp = path.with_suffix(".tmp")
    sf.write(
        tmp,
        audio,
        rate,
        format="MP3",
        bitrate_mode="VARIABLE" if vbr else "CONSTANT",
        compression_level=float(rng.uniform(0, 0.6)),
    )
    tmp.rename(path)


UNIQUE_CLIPS = 300


def make_payload(folder: Path, clips: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i:05d}.mp3" for i in range(clips)]
    todo = [(p, i) for i, p in enumerate(paths[:UNIQUE_CLIPS]) if not p.exists()]
    if todo:
        print(f"generating {len(todo)} clips in {folder} (cached for later runs) ...", file=sys.stderr)
        with ProcessPoolExecutor(os.cpu_count()) as pool:
            list(pool.map(make_clip, todo, chunksize=8))
    for i, path in enumerate(paths[UNIQUE_CLIPS:], start=UNIQUE_CLIPS):
        if not path.exists():
            os.link(paths[i % UNIQUE_CLIPS], path)
    return paths


class PeriodicSampler:
    """Calls `sample()` every `interval` seconds in a thread, between __enter__ and __exit__;
    a `sample()` that returns False stops the sampling."""

    def __init__(self, interval: float):
        self.interval, self._stop = interval, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> bool | None:
        raise NotImplementedError

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self):
        while not self._stop.is_set() and self.sample() is not False:
            self._stop.wait(self.interval)


def peak_tensor_bytes(device_type: str, step: Callable[[], object], *existing) -> int | None:
    """Peak bytes of live tensors on `device_type` while `step()` runs twice (the second run holds
    optimiser state too). Measured on the CPU it is what a GPU would have to hold for the same
    step, less the CUDA context and library workspaces. `existing`: the modules, optimisers and
    tensors made before (torch's MemTracker counts only what it is shown). None where this torch
    build lacks the tracker."""
    try:
        from torch.distributed._tools.mem_tracker import MemTracker
    except ImportError:
        return None
    tracker = MemTracker()
    tracker.track_external(*existing)
    with tracker:
        for _ in range(2):
            tracker.reset_mod_stats()  # the tracker refuses a module's second call otherwise
            step()
    peaks = tracker.get_tracker_snapshot("peak")
    return int(sum(stats["Total"] for device, stats in peaks.items() if device.type == device_type))


def shipped_size_ensemble(folder: Path, members: int):
    """Random weights in the default shape train.py writes (see model/training defaults)."""
    import torch

    from model.genres import GENRES, fma_medium_prior
    from model.manifest import Manifest, MemberSpec
    from model.networks import build_network
    from model.saving import save_ensemble
    from model.spectrogram import SpectrogramConfig

    config = SpectrogramConfig()
    specs, states = [], {}
    chunk_lengths = [3.0, 2.0, 4.0, 3.0, 2.0]
    for i in range(members):
        name = f"cnn{i}"
        hparams = {"channels": [32, 64, 128, 256], "dropout": 0.3}
        specs.append(
            MemberSpec(
                name=name,
                architecture="short_chunk_resnet",
                hparams=hparams,
                spectrogram=config,
                chunk_seconds=chunk_lengths[i % 5],
            )
        )
        torch.manual_seed(i)
        states[name] = build_network("short_chunk_resnet", config.n_mels, len(GENRES), hparams).state_dict()
    manifest = Manifest(GENRES, config.sample_rate, 1.0, tuple(fma_medium_prior()), tuple(specs), "benchmark")
    save_ensemble(folder, manifest, states)
    params = sum(v.numel() for s in states.values() for v in s.values())
    return folder, params
