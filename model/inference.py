"""Stream a list of audio files through decoding workers and an ensemble, one result per file.

Decoding runs in worker processes (`audio.decode_many`) while the ensemble scores batches on
the device in this process; at most a few batches of audio are in memory at any time. A file
gets the ensemble's prediction when it has usable audio, otherwise the training class prior
(`status="fallback"`) with the reason: undecodable, silent, or too short to judge.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .audio import Decoded, DecodeError, decode_many, unusable_reason
from .ensemble import Ensemble, floor_probabilities

@dataclass(frozen=True)
class Prediction:
    path: Path
    probabilities: np.ndarray  # (classes,), floored, sums to 1
    status: str  # "ok" | "fallback"
    seconds: float  # decoded duration (0 when nothing decoded)
    decoder: str | None  # which decoder produced the audio
    reason: str | None  # why the prior was used, for fallbacks


def classify_files(
    ensemble: Ensemble, paths: Sequence[str | os.PathLike], workers: int, batch_size: int
) -> Iterator[Prediction]:
    """Yield one `Prediction` per path. Fallbacks are yielded at once, so they may come before
    earlier files still waiting in a batch."""
    fallback = ensemble.fallback_probabilities()
    batch: list[tuple[Path, Decoded]] = []
    # prefetch 2 batches' worth per worker at most: bounded memory, workers never starve.
    prefetch = max(2, -(-2 * batch_size // max(workers, 1)))
    for path, result in decode_many(paths, ensemble.manifest.sample_rate, workers, prefetch=prefetch):
        if isinstance(result, DecodeError):
            yield Prediction(path, fallback, "fallback", 0.0, None, result.reason)
            continue
        reason = unusable_reason(result)
        if reason:
            yield Prediction(path, fallback, "fallback", result.seconds, result.decoder, reason)
            continue
        batch.append((path, result))
        if len(batch) == batch_size:
            yield from _classify_batch(ensemble, batch)
            batch = []
    if batch:
        yield from _classify_batch(ensemble, batch)


@torch.inference_mode()
def _classify_batch(ensemble: Ensemble, batch: list[tuple[Path, Decoded]]) -> Iterator[Prediction]:
    lengths = [len(decoded.audio) for _, decoded in batch]
    waveforms = torch.zeros(len(batch), max(lengths))
    for row, (_, decoded) in enumerate(batch):
        waveforms[row, : lengths[row]] = torch.from_numpy(decoded.audio)
    log_probs = ensemble(waveforms.to(ensemble.device, non_blocking=True), lengths)
    probabilities = floor_probabilities(log_probs.double().exp().cpu().numpy())
    for (path, decoded), row in zip(batch, probabilities):
        yield Prediction(path, row, "ok", decoded.seconds, decoded.decoder, None)
