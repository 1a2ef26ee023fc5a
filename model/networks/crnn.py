"""A convolutional recurrent network (after Choi, Fazekas, Sandler & Cho 2017, "Convolutional
recurrent neural networks for music classification").

Where the ResNet pools time away (mean and max over the chunk), the CRNN reads it in order:
four conv blocks (3x3 conv, batch-norm, ELU, max-pool) shrink the log-mel to a short sequence of
frame features with no frequency axis left, and a two-layer GRU summarises that sequence; its last
output feeds the classifier. The convolutions see local texture and timbre; the GRU sees how they
follow one another over the chunk (rhythm, phrasing). Input batch-norm, as in the ResNet, so no
dataset statistics need shipping.
"""

from __future__ import annotations

from torch import Tensor, nn

from .base import GenreNetwork, register


@register(
    "crnn",
    kind="cnn",
    defaults={"channels": [32, 64, 64, 64], "hidden": 64, "dropout": 0.3},
    small={"channels": [8, 8, 16, 16], "hidden": 8},
)
class CRNN(GenreNetwork):
    """(batch, n_mels, frames) -> (batch, n_classes). `channels`: one conv block each (4 in the
    paper), each halving time; frequency is pooled 2, 4, 4, 4 times, then whatever is left by max
    (128 mels: nothing left). `hidden`: the GRU's width (32 in the paper)."""

    FREQUENCY_POOLS = (2, 4, 4, 4, 2, 2)  # enough for any reasonable number of blocks and mels

    def __init__(
        self,
        n_mels: int,
        n_classes: int,
        channels: tuple[int, ...] = (32, 64, 64, 64),
        hidden: int = 64,
        dropout: float = 0.3,
    ):
        super().__init__()
        self.input_norm = nn.BatchNorm2d(1)
        blocks, width, mels = [], 1, n_mels
        for i, out in enumerate(channels):
            pool = min(self.FREQUENCY_POOLS[i % len(self.FREQUENCY_POOLS)], mels)
            blocks += [
                nn.Conv2d(width, out, 3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ELU(inplace=True),
                nn.MaxPool2d((pool, 2)),
                nn.Dropout(0.1),
            ]
            width, mels = out, mels // pool
        self.convolutions = nn.Sequential(*blocks)
        self.gru = nn.GRU(width, hidden, num_layers=2, batch_first=True, dropout=dropout)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden, n_classes)

    def forward(self, spec: Tensor) -> Tensor:
        x = self.convolutions(self.input_norm(spec.unsqueeze(1)))  # (batch, channels, mels', time)
        x = x.amax(dim=2).transpose(1, 2)  # (batch, time, channels): a sequence of frame features
        outputs, _ = self.gru(x)
        return self.classifier(self.dropout(outputs[:, -1]))

    def output_layer(self) -> nn.Linear:
        return self.classifier
