"""The shipped default: the pretrained musicnn taggers read through a documented tag -> genre
table, a speech cue and a kind-of-audio detector, not fitted on FMA (model/zero_shot.py's
`MusicnnZeroShot`)."""

from ..musicnn import MUSICNN_CHUNK_SECONDS, MUSICNN_SPECTROGRAM
from ..zero_shot import MusicnnZeroShot
from .base import register

register(
    "musicnn_zero_shot",
    kind="zero_shot",
    spectrogram=MUSICNN_SPECTROGRAM,
    chunk_seconds=MUSICNN_CHUNK_SECONDS,
    trainable=False,
)(MusicnnZeroShot)
