"""A genre head trained on the pretrained musicnn taggers' embedding (`train.py --backbone
musicnn`); the network itself is model/musicnn.py's `MusicnnTransfer`."""

from ..musicnn import MUSICNN_CHUNK_SECONDS, MUSICNN_SPECTROGRAM, MusicnnTransfer
from .base import register

register(
    "musicnn_transfer",
    kind="transfer",
    defaults={"hidden": 256, "dropout": 0.5, "fine_tune": False},
    small={"hidden": 8},
    spectrogram=MUSICNN_SPECTROGRAM,
    chunk_seconds=MUSICNN_CHUNK_SECONDS,
)(MusicnnTransfer)
