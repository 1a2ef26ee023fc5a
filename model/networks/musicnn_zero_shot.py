"""The shipped default: the pretrained musicnn taggers read through a fixed tag -> genre table,
fitted on nothing (model/zero_shot.py's `MusicnnZeroShot`)."""

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
