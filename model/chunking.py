"""A clip's log-mel -> fixed-length chunks for the network, and chunk outputs -> clip outputs.

The networks score fixed-length chunks; a clip's score is the mean over chunks that cover it
evenly: ceil(frames / chunk) chunks, the first starting at frame 0 and the last ending at the
clip's last frame, so every frame is seen and overlaps are spread evenly. A clip shorter than
one chunk is repeated (tiled) to the chunk length rather than padded with silence, which would
look like a quiet passage to the network. A member may cap its chunks per clip (`max_chunks`):
then that many chunks are spread evenly over the clip, a sample that costs less to score.
"""

from __future__ import annotations

import math

import torch


def chunk_starts(frames: int, chunk_frames: int, max_chunks: int | None = None) -> list[int]:
    """Start frames of the chunks that evenly cover a clip of `frames` frames; with `max_chunks`,
    at most that many, spread evenly from the clip's start to its end (a sample, for speed)."""
    if frames <= chunk_frames:
        return [0]
    count = math.ceil(frames / chunk_frames)
    if max_chunks is not None:
        count = min(count, max_chunks)
    if count == 1:
        return [(frames - chunk_frames) // 2]
    return [round(i * (frames - chunk_frames) / (count - 1)) for i in range(count)]


def make_chunks(
    specs: torch.Tensor, frames: list[int], chunk_frames: int, max_chunks: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut a padded batch of spectrograms into chunks.

    specs: (clips, mels, max_frames); frames: each clip's valid frames.
    Returns chunks (n_chunks, mels, chunk) and owner (n_chunks,): the clip of each chunk.
    """
    pieces, owners = [], []
    for clip, n in enumerate(frames):
        spec = specs[clip, :, :n]
        if n < chunk_frames:
            spec = spec.repeat(1, math.ceil(chunk_frames / n))[:, :chunk_frames]
        for start in chunk_starts(n, chunk_frames, max_chunks):
            pieces.append(spec[:, start : start + chunk_frames])
            owners.append(clip)
    owner = torch.tensor(owners, device=specs.device)
    return torch.stack(pieces), owner


def mean_by_owner(values: torch.Tensor, owner: torch.Tensor, clips: int) -> torch.Tensor:
    """Average chunk rows (n_chunks, classes) into clip rows (clips, classes)."""
    sums = torch.zeros(clips, values.shape[1], dtype=values.dtype, device=values.device)
    sums.index_add_(0, owner, values)
    counts = torch.bincount(owner, minlength=clips).clamp_min(1).to(values.dtype)
    return sums / counts[:, None]
