"""A clip's genres over time: the ensemble scored segment by segment.

A segment is a window of the clip (by default as long as the longest chunk any member scores, so
every member sees at least one whole chunk) every `hop` seconds (default: the window length), the
last one ending at the clip's end. Each member scores the stretch of the clip's own log-mel that
the segment covers exactly as it scores a whole clip (its chunk length, its chunking), and the
rows come out of the ensemble's one path from member log-probabilities to rows (`Ensemble.rows`:
its weights, temperature and floor): a segment row is what predict.py would write for that stretch
heard alone, without the spectrogram's edge effects of cutting the audio.

How segment rows relate to the clip's row: a clip's member logits are the mean of its chunks'
logits, and the rule averages log-probabilities, so when every member's chunks of the clip are
exactly the segments (one chunk length for all members, the window equal to it, the clip a whole
number of chunks long, no `max_chunks` sample), the clip row is the renormalised geometric mean of
the segment rows (before the floor). Otherwise -- members with different chunk lengths, a last
chunk that overlaps, the zero-shot model's 4-chunk sample -- it is close to that mean, not equal.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import numpy as np
import torch

from .ensemble import Ensemble
from .spectrogram import SpectrogramConfig


def window_starts(frames: int, window: int, hop: int) -> list[int]:
    """Start frames of `window`-frame windows every `hop` frames, plus one ending at the last frame
    when the grid stops short of it; one window from 0 when the clip is no longer than a window."""
    if frames <= window:
        return [0]
    starts = list(range(0, frames - window + 1, hop))
    if starts[-1] != frames - window:
        starts.append(frames - window)
    return starts


def default_window_seconds(ensemble: Ensemble) -> float:
    """The longest chunk any member scores (1 s for a prior-only ensemble)."""
    return max((m.chunk_seconds for m in ensemble.manifest.members if m.kind != "prior"), default=1.0)


def segment_probabilities(
    ensemble: Ensemble,
    audio: np.ndarray,
    hop_seconds: float | None = None,
    window_seconds: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mono audio at the ensemble's sample rate -> (starts, ends) in seconds and floored
    probabilities (segments, classes), each row summing to 1."""
    parts = list(stream_segments(ensemble, [audio], hop_seconds, window_seconds))
    return tuple(np.concatenate(columns) for columns in zip(*parts))  # type: ignore[return-value]


# Audio is scored once this much of it waits (the segments it holds whole); what later segments
# still need is kept. Memory is that of a 10-minute clip (audio.MAX_SECONDS), whatever the length.
SCORED_SECONDS = 600.0


@torch.inference_mode()
def stream_segments(
    ensemble: Ensemble,
    blocks: Iterable[np.ndarray],
    hop_seconds: float | None = None,
    window_seconds: float | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """`segment_probabilities` over audio that arrives in blocks (`audio.stream`: a file of any
    length), yielding (starts, ends, probabilities) as stretches of it are scored. The rows are
    those of the whole audio at once: the grid is the same, and each stretch is scored with the
    samples its spectrogram frames read on either side (frames start on a multiple of every hop
    length), so cutting the audio changes nothing but float rounding."""
    window = window_seconds or default_window_seconds(ensemble)
    hop = hop_seconds or window
    if window <= 0 or hop <= 0:
        raise ValueError(f"segment window and hop must be positive seconds, got {window} and {hop}")
    rate = ensemble.manifest.sample_rate
    reference = next(
        (m.spectrogram for m in ensemble.manifest.members if m.kind != "prior" and m.chunk_seconds == window),
        None,
    ) or next(iter(ensemble.configs), None)
    if reference is None:  # prior-only: no spectrogram, a plain grid in milliseconds over the length
        duration = sum(len(block) for block in blocks) / rate
        grid = window_starts(max(1, round(duration * 1000)), round(window * 1000), round(hop * 1000))
        starts = np.array(grid) / 1000
        yield starts, np.minimum(starts + window, duration), ensemble.rows({}, {}, len(starts))
        return

    # The grid is laid on the frames of the config with the longest chunk; the others follow in seconds.
    window_frames, hop_frames = reference.seconds_to_frames(window), reference.seconds_to_frames(hop)
    unit = math.lcm(*(config.hop_length for config in ensemble.configs))  # where a cut keeps frames aligned
    margin = max(config.n_fft // 2 + config.hop_length for config in ensemble.configs)
    needs = round(window * rate) + margin  # samples from a segment's start until it can be scored
    pending: list[np.ndarray] = []
    origin = waiting = scored = 0  # first kept sample; samples kept; segments scored so far
    for block in blocks:
        pending.append(block)
        waiting += len(block)
        if waiting < SCORED_SECONDS * rate:
            continue
        audio = np.concatenate(pending)
        ready = scored
        while (ready * hop_frames * reference.hop_length) + needs <= origin + len(audio):
            ready += 1
        if ready > scored:
            yield _score(ensemble, audio, origin, np.arange(scored, ready) * hop_frames, reference, window)
            scored = ready
            keep_from = max(0, ((scored - 1) * hop_frames + 1) * reference.hop_length - margin) // unit * unit
            audio, origin = audio[keep_from - origin :].copy(), keep_from  # the rest is freed
        pending, waiting = [audio], len(audio)

    audio = np.concatenate(pending) if pending else np.zeros(0, np.float32)
    grid = window_starts(reference.frames(origin + len(audio)), window_frames, hop_frames)
    if len(grid) > scored:
        yield _score(ensemble, audio, origin, np.array(grid[scored:]), reference, window, final=True)


def _score(
    ensemble: Ensemble,
    audio: np.ndarray,
    origin: int,
    start_frames: np.ndarray,
    reference: SpectrogramConfig,
    window: float,
    final: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The segments starting at `start_frames` (of `reference`) of audio that begins `origin`
    samples into the file: (starts, ends, rows)."""
    rate = ensemble.manifest.sample_rate
    starts = start_frames / (reference.sample_rate / reference.hop_length)
    duration = (origin + len(audio)) / rate
    ends = np.minimum(starts + window, duration) if final else starts + window
    waveform = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None].to(ensemble.device)
    stretches, frames = {}, {}
    for config, spec in ensemble.spectrograms(waveform).items():
        stretches[config], frames[config] = _stretches(spec[0], config, starts, window, origin)
    return starts, ends, ensemble.rows(stretches, frames, len(starts))


def _stretches(
    spec: torch.Tensor, config: SpectrogramConfig, starts: np.ndarray, window: float, origin: int = 0
) -> tuple[torch.Tensor, list[int]]:
    """The log-mel (mels, frames) of audio beginning `origin` samples into the clip, cut at each
    segment: (segments, mels, longest) zero-padded, and each segment's valid frames."""
    total, length = spec.shape[1], config.seconds_to_frames(window)
    length = min(length, total)
    skipped = origin // config.hop_length
    firsts = [
        min(round(start * config.sample_rate / config.hop_length) - skipped, total - length)
        for start in starts
    ]
    out = spec.new_zeros(len(firsts), spec.shape[0], length)
    for row, first in enumerate(firsts):
        out[row] = spec[:, first : first + length]
    return out, [length] * len(firsts)
