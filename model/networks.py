"""Networks that score one fixed-length log-mel chunk: (batch, n_mels, frames) -> (batch, classes).

Architectures are built by name from the manifest (`build_network`), so a new one only needs an
entry in `ARCHITECTURES`: the CNN trained from scratch here, and two built on the pretrained
musicnn taggers (`model/musicnn.py`, `model/zero_shot.py`). All are convolutional up to a global
pooling over time, so they accept any chunk length; a member's chunk length is in the manifest.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .musicnn import MUSICNN_SPECTROGRAM, MusicnnTransfer
from .spectrogram import SpectrogramConfig
from .zero_shot import MusicnnZeroShot


class ResidualBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN + shortcut, ReLU, then 2x2 max-pool (Won et al.'s Res_2d)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)
            )
        )
        self.out = nn.Sequential(nn.ReLU(inplace=True), nn.MaxPool2d(2))

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.body(x) + self.shortcut(x))


class ShortChunkResNet(nn.Module):
    """A compact short-chunk residual CNN (after Won et al. 2020, "Evaluation of CNN-based
    automatic music tagging models").

    Input batch-norm (so no dataset statistics need shipping), a strided stem, residual blocks
    that halve time and frequency, then max over frequency and mean+max over time, and a small
    dense head. Width is set by `channels`; the default is sized so that a 3-member ensemble still
    predicts on a CPU at a usable rate (README, Benchmarks).
    """

    def __init__(
        self,
        n_mels: int,
        n_classes: int,
        channels: tuple[int, ...] = (32, 64, 128, 256),
        dropout: float = 0.3,
    ):
        super().__init__()
        self.input_norm = nn.BatchNorm2d(1)
        self.stem = nn.Sequential(
            nn.Conv2d(1, channels[0], 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(channels[0]),
            nn.ReLU(inplace=True),
        )
        blocks, width = [], channels[0]
        for out in channels:
            blocks.append(ResidualBlock(width, out))
            width = out
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.Linear(2 * width, width),
            nn.BatchNorm1d(width),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(width, n_classes),
        )

    def embed(self, spec: Tensor) -> Tensor:
        """(batch, n_mels, frames) -> (batch, 2 * width) chunk embedding before the dense head."""
        x = self.blocks(self.stem(self.input_norm(spec.unsqueeze(1))))
        x = x.amax(dim=2)  # max over frequency: (batch, width, time)
        return torch.cat([x.mean(dim=2), x.amax(dim=2)], dim=1)

    def forward(self, spec: Tensor) -> Tensor:
        return self.head(self.embed(spec))


ARCHITECTURES: dict[str, type[nn.Module]] = {
    "short_chunk_resnet": ShortChunkResNet,
    "musicnn_zero_shot": MusicnnZeroShot,
    "musicnn_transfer": MusicnnTransfer,
}
# The manifest member kind each architecture belongs to (see model/ensemble.py).
ARCHITECTURE_KINDS: dict[str, str] = {
    "short_chunk_resnet": "cnn",
    "musicnn_zero_shot": "zero_shot",
    "musicnn_transfer": "transfer",
}
# Architectures bound to one input representation (pretrained on it).
REQUIRED_SPECTROGRAMS: dict[str, SpectrogramConfig] = {
    "musicnn_zero_shot": MUSICNN_SPECTROGRAM,
    "musicnn_transfer": MUSICNN_SPECTROGRAM,
}


def build_network(architecture: str, n_mels: int, n_classes: int, hparams: dict) -> nn.Module:
    """Instantiate an architecture by its manifest name; unknown names and arguments raise ValueError."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; known: {', '.join(ARCHITECTURES)}")
    hparams = {k: tuple(v) if isinstance(v, list) else v for k, v in hparams.items()}
    try:
        return ARCHITECTURES[architecture](n_mels=n_mels, n_classes=n_classes, **hparams)
    except TypeError as error:
        raise ValueError(f"bad hyper-parameters for {architecture}: {error}") from None
