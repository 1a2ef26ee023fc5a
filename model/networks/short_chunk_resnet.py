"""The short-chunk residual CNN (after Won et al. 2020), the default member trained from scratch.

Input batch-norm (so no dataset statistics need shipping), a strided stem, residual blocks that
halve time and frequency, then max over frequency and mean+max over time, and a small dense head.
Convolutional up to the global pooling over time, so it takes any chunk length.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import GenreNetwork, register


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


@register(
    "short_chunk_resnet",
    kind="cnn",
    defaults={"channels": [32, 64, 128, 256], "dropout": 0.3},
    small={"channels": [8, 16]},
)
class ShortChunkResNet(GenreNetwork):
    """A compact short-chunk residual CNN (Won et al. 2020, "Evaluation of CNN-based automatic
    music tagging models"). Width is set by `channels`, one residual block each; the default is
    sized so that a 3-member ensemble still predicts on a CPU at a usable rate (README, Benchmarks).
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

    def output_layer(self) -> nn.Linear:
        return self.head[-1]
