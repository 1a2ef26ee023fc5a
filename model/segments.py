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


@torch.inference_mode()
def segment_probabilities(
    ensemble: Ensemble,
    audio: np.ndarray,
    hop_seconds: float | None = None,
    window_seconds: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mono audio at the ensemble's sample rate -> (starts, ends) in seconds and floored
    probabilities (segments, classes), each row summing to 1."""
    window = window_seconds or default_window_seconds(ensemble)
    hop = hop_seconds or window
    if window <= 0 or hop <= 0:
        raise ValueError(f"segment window and hop must be positive seconds, got {window} and {hop}")
    rate, samples = ensemble.manifest.sample_rate, len(audio)
    duration = samples / rate
    waveform = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None].to(ensemble.device)
    specs = ensemble.spectrograms(waveform)

    # The grid is laid on the frames of the config with the longest chunk; the others follow in seconds.
    reference = next(
        (m.spectrogram for m in ensemble.manifest.members if m.kind != "prior" and m.chunk_seconds == window),
        None,
    ) or next(iter(specs), None)
    if reference is None:  # prior-only: no spectrogram, a plain grid in seconds
        starts = (
            np.array(window_starts(max(1, round(duration * 1000)), round(window * 1000), round(hop * 1000)))
            / 1000
        )
    else:
        frames_per_second = reference.sample_rate / reference.hop_length
        grid = window_starts(
            reference.frames(samples), reference.seconds_to_frames(window), reference.seconds_to_frames(hop)
        )
        starts = np.array(grid) / frames_per_second
    ends = np.minimum(starts + window, duration)

    stretches, frames = {}, {}
    for config, spec in specs.items():
        stretches[config], frames[config] = _stretches(spec[0], config, starts, window)
    return starts, ends, ensemble.rows(stretches, frames, len(starts))


def _stretches(
    spec: torch.Tensor, config: SpectrogramConfig, starts: np.ndarray, window: float
) -> tuple[torch.Tensor, list[int]]:
    """The clip's log-mel (mels, frames) cut at each segment: (segments, mels, longest) zero-padded,
    and each segment's valid frames."""
    total, length = spec.shape[1], config.seconds_to_frames(window)
    length = min(length, total)
    firsts = [min(round(start * config.sample_rate / config.hop_length), total - length) for start in starts]
    out = spec.new_zeros(len(firsts), spec.shape[0], length)
    for row, first in enumerate(firsts):
        out[row] = spec[:, first : first + length]
    return out, [length] * len(firsts)
