"""A genre head trained on the pretrained musicnn taggers' embedding (`train.py --backbone
musicnn`); the taggers themselves are model/musicnn.py's `MusicnnPair`."""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor, nn

from ..musicnn import EMBEDDING_SIZE, MUSICNN_CHUNK_SECONDS, MUSICNN_SPECTROGRAM, MusicnnPair, check_input
from .base import register


@register(
    "musicnn_transfer",
    kind="transfer",
    defaults={"hidden": 256, "dropout": 0.5, "fine_tune": False},
    small={"hidden": 8},
    spectrogram=MUSICNN_SPECTROGRAM,
    chunk_seconds=MUSICNN_CHUNK_SECONDS,
)
class MusicnnTransfer(MusicnnPair):
    """A genre head trained on the pair's 400-dimensional embedding (`train.py --backbone musicnn`).

    Frozen by default: the taggers stay in inference mode (their batch-norm statistics too) and
    only the head learns, which suits FMA's 25,000 clips and is cheap. `fine_tune=True` trains the
    taggers as well, at a tenth of the head's learning rate (`parameter_groups`).
    """

    def __init__(
        self, n_mels: int, n_classes: int, hidden: int = 256, dropout: float = 0.5, fine_tune: bool = False
    ):
        super().__init__()
        check_input(n_mels)
        self.fine_tune = fine_tune
        self.head = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(2 * EMBEDDING_SIZE, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_classes),
        )
        if not fine_tune:
            self.msd.requires_grad_(False)
            self.mtt.requires_grad_(False)
        # The tag layers do not feed the head, so they get no gradient and never change; saying
        # so lets DistributedDataParallel expect a gradient for every trainable parameter.
        self.msd.output.requires_grad_(False)
        self.mtt.output.requires_grad_(False)

    def train(self, mode: bool = True) -> MusicnnTransfer:
        super().train(mode)
        if not self.fine_tune:
            self.msd.eval()
            self.mtt.eval()
        return self

    def forward(self, spec: Tensor) -> Tensor:
        # Frozen taggers run in full precision even under training's bf16 autocast: the head then
        # learns on exactly the embeddings it is given at prediction time (always fp32).
        frozen = not self.fine_tune
        with (
            torch.set_grad_enabled(not frozen and torch.is_grad_enabled()),
            torch.autocast(spec.device.type, enabled=False) if frozen else contextlib.nullcontext(),
        ):
            features = self.backbone(spec.float() if frozen else spec)
        return self.head_from(*features)

    def head_from(self, tag_logits: Tensor, embedding: Tensor, speech: Tensor | None = None) -> Tensor:
        return self.head(embedding)

    def output_layer(self) -> nn.Linear:
        return self.head[-1]

    def parameter_groups(self) -> list[dict]:
        """Optimizer groups: the taggers (when fine-tuned) learn 10x slower than the head."""
        groups = [{"params": list(self.head.parameters()), "lr_scale": 1.0}]
        if self.fine_tune:
            groups.append({"params": [*self.msd.parameters(), *self.mtt.parameters()], "lr_scale": 0.1})
        return groups
