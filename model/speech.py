"""A speech cue the music taggers lack: syllables.

musicnn's taggers were trained on music only (MSD, MagnaTagATune): on a recording of speech their
tags are guesses -- a rapping voice reads as Hip-Hop. Speech differs from music in a way a log-mel
shows directly: its level in the voice band (150 Hz - 4 kHz) rises and falls by 15 dB or more
several times a second, with every syllable, whether or not the talker pauses and whether or not
a quiet bed plays under it; music with rests (a piano note decaying into a pause, a plucked
phrase) dips as deep but changes level slowly, and sustained or rhythmic music changes level fast
but seldom dips deep (bare percussion does both: there the taggers hear drums, which rule out
Spoken in model/zero_shot.py). The classic speech/music discriminators use these (low-energy frames and
4-Hz modulation, Scheirer & Slaney 1997). Per 3-s chunk:

  dips     = fraction of frames whose voice-band level is `DIP_DB` or more below the chunk's
             loud frames (its 95th percentile);
  swings   = mean absolute change of that level over `SWING_FRAMES` frames (48 ms, a third of a
             syllable), in dB, the level floored `FLOOR_DB` below the loud frames, over the frame
             pairs that sound (silence between words is neither change nor steadiness);
  syllabic = min(1, dips / `DIPS_FULL`) x clip((swings - `SWINGS_FROM`) / (`SWINGS_FULL` -
             `SWINGS_FROM`), 0, 1): 1 for a chunk that both dips and swings like speech.

The numbers are the speech phonetics (syllables at 3-8 per second, 15+ dB from vowel to
consonant); `DIPS_FULL`, `SWINGS_FROM` and `SWINGS_FULL` were read off the real-music corpus'
decided-on packages and bench/speech_cue.py's generated cases (README, zero-shot). The cue's
likelihoods are in model/zero_shot.py. `pause_fraction` is the earlier cue (frames 30 dB below the
loud ones: prompts separated by silence), kept for manifests written with it.
"""

from __future__ import annotations

import librosa
import torch
from torch import Tensor

from .spectrogram import compress, to_power

PAUSE_DB = 30.0  # the earlier cue: a pause is this far below the chunk's loud frames
VOICE_BAND_HZ = (150.0, 4000.0)
DIP_DB = 15.0
FLOOR_DB = 40.0
SWING_FRAMES = 3  # at musicnn's hop of 16 ms
DIPS_FULL = 0.3
SWINGS_FROM, SWINGS_FULL = 3.0, 5.0  # dB per 48 ms
SPEECH_MEASURES = 2  # what speech_features gives per chunk: pause fraction, syllabic score


def speech_features(spec: Tensor, compression: str = "log10_1p") -> Tensor:
    """(batch, mels, frames) log-mel in `compression` (musicnn's: 16 kHz, 96 mels) -> (batch, 2):
    each chunk's pause fraction and syllabic score, both in [0, 1]."""
    power = to_power(spec.float(), compression)
    return torch.stack([_pauses(power), _syllabic(power)], dim=1)


def pause_fraction(spec: Tensor, compression: str = "log10_1p") -> Tensor:
    """(batch, mels, frames) -> (batch,) fraction of frames 30 dB below the chunk's loud frames."""
    return _pauses(to_power(spec.float(), compression))


def _pauses(power: Tensor) -> Tensor:
    level = compress(power.sum(dim=1), "db")  # (batch, frames) frame level, dB
    loud = torch.quantile(level, 0.95, dim=1, keepdim=True)
    return (level < loud - PAUSE_DB).float().mean(dim=1)


def _syllabic(power: Tensor) -> Tensor:
    band = _voice_band(power.shape[1]).to(power.device)
    level = compress(power[:, band].sum(dim=1), "db")
    loud = torch.quantile(level, 0.95, dim=1, keepdim=True)
    dips = (level < loud - DIP_DB).float().mean(dim=1)
    floored = torch.maximum(level, loud - FLOOR_DB)
    before, after = floored[:, :-SWING_FRAMES], floored[:, SWING_FRAMES:]
    sounding = (torch.minimum(before, after) > loud - FLOOR_DB).float()  # a pair that sounds at both ends
    swings = ((after - before).abs() * sounding).sum(dim=1) / sounding.sum(dim=1).clamp_min(1.0)
    dipping = (dips / DIPS_FULL).clamp(max=1.0)
    swinging = ((swings - SWINGS_FROM) / (SWINGS_FULL - SWINGS_FROM)).clamp(0.0, 1.0)
    return dipping * swinging


def _voice_band(n_mels: int, sample_rate: int = 16000) -> Tensor:
    """The mel bands whose centres lie in VOICE_BAND_HZ (librosa's mel scale, as the log-mel's)."""
    centres = librosa.mel_frequencies(n_mels + 2, fmin=0.0, fmax=sample_rate / 2)[1:-1]
    return torch.from_numpy((centres > VOICE_BAND_HZ[0]) & (centres < VOICE_BAND_HZ[1]))
