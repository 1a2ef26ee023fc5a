"""Stream a list of audio files through decoding workers and an ensemble, one result per file.

Decoding runs in worker processes (`audio.decode_many`) while the ensemble scores batches on
the device in this process; at most a few batches of audio are in memory at any time. A file
gets the ensemble's prediction when it has usable audio, otherwise the training class prior
(`status="fallback"`) with the reason: undecodable, silent, or too short to judge.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .audio import Decoded, DecodeError, decode_many, stream, unusable_reason
from .ensemble import Ensemble
from .segments import stream_segments


@dataclass(frozen=True)
class Prediction:
    path: Path
    probabilities: np.ndarray  # (classes,), floored, sums to 1
    status: str  # "ok" | "fallback"
    seconds: float  # decoded duration (0 when nothing decoded)
    decoder: str | None  # which decoder produced the audio
    reason: str | None  # why the prior was used, for fallbacks
    transient: bool = False  # a fallback that another try might avoid (see audio.DecodeError)
    segments: np.ndarray | None = None  # (segments, 2 + classes): start s, end s, probabilities; if asked


def classify_files(
    ensemble: Ensemble,
    paths: Sequence[str | os.PathLike],
    workers: int,
    batch_size: int,
    segments: bool = False,
    hop_seconds: float | None = None,
) -> Iterator[Prediction]:
    """Yield one `Prediction` per path, decoding in `workers` processes. Fallbacks are yielded at
    once, so they may come before earlier files still waiting in a batch. With `segments`, each
    prediction also carries its segment rows (model/segments.py, every `hop_seconds`)."""
    # prefetch 2 batches' worth per worker at most: bounded memory, workers never starve.
    prefetch = max(2, -(-2 * batch_size // max(workers, 1)))
    decoded = decode_many(paths, ensemble.manifest.sample_rate, workers, prefetch=prefetch)
    yield from classify_decoded(ensemble, decoded, batch_size, segments, hop_seconds)


def classify_decoded(
    ensemble: Ensemble,
    outcomes: Iterable[tuple[Path, Decoded | DecodeError]],
    batch_size: int,
    segments: bool = False,
    hop_seconds: float | None = None,
) -> Iterator[Prediction]:
    """`classify_files` after decoding: (path, decode outcome) pairs -> one `Prediction` each."""
    batch: list[tuple[Path, Decoded]] = []
    for path, result in outcomes:
        if isinstance(result, DecodeError):
            yield _fallback(ensemble, path, None, result.reason, segments, result.transient)
            continue
        reason = unusable_reason(result)
        if reason:
            yield _fallback(ensemble, path, result, reason, segments)
            continue
        batch.append((path, result))
        if len(batch) == batch_size:
            yield from _classify_batch(ensemble, batch, segments, hop_seconds)
            batch = []
    if batch:
        yield from _classify_batch(ensemble, batch, segments, hop_seconds)


def _fallback(
    ensemble: Ensemble,
    path: Path,
    decoded: Decoded | None,
    reason: str,
    segments: bool,
    transient: bool = False,
) -> Prediction:
    """The prior's row, and with `segments` one segment of it spanning what was decoded."""
    prior = ensemble.fallback_probabilities()
    seconds = decoded.seconds if decoded else 0.0
    span = (decoded.whole_seconds or seconds) if decoded else 0.0  # a long file's row spans all of it
    rows = np.concatenate([[0.0, span], prior])[None] if segments else None
    decoder = decoded.decoder if decoded else None
    return Prediction(path, prior, "fallback", seconds, decoder, reason, transient, rows)


def _classify_batch(
    ensemble: Ensemble,
    batch: list[tuple[Path, Decoded]],
    segments: bool = False,
    hop_seconds: float | None = None,
) -> Iterator[Prediction]:
    """Score a batch in groups of similar length: clips are zero-padded to the longest in their
    group, so one long file must not inflate the whole batch. A group that fails (out of memory,
    say) is retried clip by clip; a clip that fails alone, or whose output is not finite, gets
    the fallback row with the reason, and the run goes on."""
    budget = len(batch) * REFERENCE_SECONDS * ensemble.manifest.sample_rate
    rows: dict[int, np.ndarray | str] = {}  # a row, or why the model failed on the clip (transient)
    for group in _groups_by_length([len(decoded.audio) for _, decoded in batch], budget):
        try:
            rows.update(zip(group, _probabilities(ensemble, [batch[i][1] for i in group])))
        except RuntimeError:  # torch's out-of-memory errors are RuntimeErrors too
            _release_device_memory(ensemble.device)
            for i in group:
                try:
                    rows[i] = _probabilities(ensemble, [batch[i][1]])[0]
                except RuntimeError as error:
                    _release_device_memory(ensemble.device)
                    rows[i] = f"the model failed on this clip: {str(error).splitlines()[0][:200]}"
    for i, (path, decoded) in enumerate(batch):
        row = rows[i]
        if isinstance(row, np.ndarray) and np.isfinite(row).all():
            segment_rows = _segment_rows(ensemble, path, decoded, row, hop_seconds) if segments else None
            yield Prediction(path, row, "ok", decoded.seconds, decoded.decoder, None, segments=segment_rows)
        elif isinstance(row, str):  # out of memory, say: another try may succeed
            yield _fallback(ensemble, path, decoded, row, segments, transient=True)
        else:
            yield _fallback(ensemble, path, decoded, "the model's output was not finite", segments)


def _segment_rows(
    ensemble: Ensemble, path: Path, decoded: Decoded, clip_row: np.ndarray, hop_seconds: float | None
) -> np.ndarray:
    """(segments, 2 + classes) over the file's whole length: a file decoded as excerpts (longer
    than audio.MAX_SECONDS) is read again, whole, block by block (`audio.stream`), so memory stays
    that of one block however long it is. That reading happens in this process, without the decode
    workers' per-file timeout (the file already decoded once, in a worker). If reading or scoring
    the segments fails, one segment spanning the file with the clip's row, and a warning."""
    try:
        rate = ensemble.manifest.sample_rate
        blocks = stream(path, rate) if decoded.excerpted else [decoded.audio]
        parts = list(stream_segments(ensemble, blocks, hop_seconds))
        rows = np.concatenate([np.column_stack(part) for part in parts])
        if np.isfinite(rows).all():
            return rows
        problem = "not finite"
    except DecodeError as error:  # the file changed, or went, since its excerpts were decoded
        problem = error.reason
    except RuntimeError as error:  # out of memory, say
        _release_device_memory(ensemble.device)
        problem = str(error).splitlines()[0][:200]
    except Exception as error:  # a decoder bug must cost this file's segments, not the run
        problem = f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
    warnings.warn(
        f"{path}: segment scores failed ({problem}); its one segment is the clip's row", stacklevel=2
    )
    return np.concatenate([[0.0, decoded.whole_seconds or decoded.seconds], clip_row])[None]


# A forward pass holds at most batch size x this much audio, or one clip if that is longer (up to
# audio.MAX_SECONDS): memory stays that of a batch of 30-s clips, whatever the payload holds.
# (32, not 30: a 30-s clip may decode a few milliseconds long, and must not split a batch.)
REFERENCE_SECONDS = 32


def _groups_by_length(lengths: list[int], budget: int) -> list[list[int]]:
    """Indices grouped, shortest first, so that each group's size x its longest clip <= budget
    (a single clip longer than the budget gets a group of its own)."""
    groups: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        if groups and (len(groups[-1]) + 1) * lengths[i] <= budget:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def _probabilities(ensemble: Ensemble, clips: list[Decoded]) -> np.ndarray:
    """The clips zero-padded into one batch on the device: their rows (`Ensemble.probabilities`)."""
    lengths = [len(decoded.audio) for decoded in clips]
    waveforms = torch.zeros(len(clips), max(lengths))
    for row, decoded in enumerate(clips):
        waveforms[row, : lengths[row]] = torch.from_numpy(decoded.audio)
    return ensemble.probabilities(waveforms.to(ensemble.device, non_blocking=True), lengths)


def _release_device_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
