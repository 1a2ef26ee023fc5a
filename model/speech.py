"""A speech cue the music taggers lack: how much of a chunk is pauses.

musicnn's taggers were trained on music only (MSD, MagnaTagATune): on a recording of speech their
tags are guesses -- rap-like voice reads as Hip-Hop. Speech differs from music in a way a
log-mel shows directly: talkers pause between words and phrases, and in a pause the signal
falls to the room's noise floor, while music (sustained notes, reverb, accompaniment) rarely
drops that far inside a few seconds. The classic speech/music discriminators use this (the
"low-energy frames" feature, Scheirer & Slaney 1997). Here a frame is a pause when its power is
more than `PAUSE_DB` below the chunk's loud frames (its 95th percentile), and the cue is the
fraction of such frames.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .spectrogram import compress, to_power

PAUSE_DB = 30.0  # a pause: this far below the chunk's loud frames (noise floor, not a soft passage)


def pause_fraction(spec: Tensor, compression: str = "log10_1p") -> Tensor:
    """(batch, mels, frames) log-mel in `compression` -> (batch,) fraction of pause frames."""
    level = compress(to_power(spec.float(), compression).sum(dim=1), "db")  # (batch, frames) frame level, dB
    loud = torch.quantile(level, 0.95, dim=1, keepdim=True)
    return (level < loud - PAUSE_DB).float().mean(dim=1)
