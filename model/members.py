"""The members a training run fits: their configuration, the plan train.py builds from its
options, and a trained member's manifest entry.

A member is one network trained from scratch (`cnn`, any architecture registered in
model/networks/) or one genre head on the pretrained musicnn taggers (`transfer`); members of a
run differ by seed, architecture and crop length, the diversity an ensemble averages over. The
configuration travels with the member: it is stored in every checkpoint (a resumed run must match
it) and in the run's config.json, and its hyper-parameters go into the manifest in full.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .manifest import MemberSpec
from .musicnn import MUSICNN_CHUNK_SECONDS, MUSICNN_SPECTROGRAM
from .networks import get_architecture, resolve_hparams
from .saving import place_base_weights
from .spectrogram import SpectrogramConfig


@dataclass(frozen=True)
class MemberConfig:
    name: str
    architecture: str = "short_chunk_resnet"
    hparams: dict = field(default_factory=lambda: {"channels": [32, 64, 128, 256], "dropout": 0.3})
    chunk_seconds: float = 3.0
    seed: int = 0
    epochs: int = 40
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_epochs: float = 1.0
    patience: int = 6
    min_epoch_steps: int = 32  # an epoch is at least this many optimizer steps (see the docstring)
    batch_norm_crops: int = 1024  # clean crops that set batch-norm statistics before each validation
    balance: str = "sqrt"  # "sqrt" | "none"
    mixup_alpha: float = 0.3
    gain_db: float = 6.0
    freq_mask_bins: int = 16
    time_mask_fraction: float = 0.1
    max_chunks: int | None = None  # chunks scored per clip in evaluation (and later in prediction)
    backbone_weights: str | None = None  # pretrained weights loaded before training (transfer members)


def plan_members(
    cnns: int,
    heads: int,
    *,
    architectures: list[str],
    hparams: dict,
    spectrogram: SpectrogramConfig,
    chunk_seconds: list[float],
    seed: int,
    lr: float,
    head_lr: float,
    fine_tune: bool,
    max_chunks: int,
    backbone_weights: str,
    **common,
) -> list[tuple[MemberConfig, SpectrogramConfig]]:
    """The members train.py fits, each with the spectrogram it reads: `cnns` networks trained from
    scratch that differ by seed, architecture and crop length (cycling through `architectures` and
    `chunk_seconds`; an architecture bound to one spectrogram or chunk length gets it), each with
    its registered default hyper-parameters updated by `hparams`; then `heads` genre heads on the
    pretrained musicnn taggers. `common`: the MemberConfig fields all members share. Raises
    ValueError naming an unknown architecture or hyper-parameter."""
    plans = []
    for i in range(cnns):
        architecture = get_architecture(architectures[i % len(architectures)])
        member = MemberConfig(
            name=f"cnn{i}",
            architecture=architecture.name,
            hparams=resolve_hparams(architecture.name, hparams),
            chunk_seconds=architecture.chunk_seconds or chunk_seconds[i % len(chunk_seconds)],
            seed=seed + i,
            lr=lr,
            **common,
        )
        plans.append((member, architecture.spectrogram or spectrogram))
    for j in range(heads):
        member = MemberConfig(
            name=f"musicnn{j}",
            architecture="musicnn_transfer",
            hparams=resolve_hparams("musicnn_transfer", {"fine_tune": fine_tune}),
            chunk_seconds=MUSICNN_CHUNK_SECONDS,
            seed=seed + 1000 + j,
            lr=head_lr,
            max_chunks=max_chunks,
            backbone_weights=str(Path(backbone_weights).resolve()),
            **common,
        )
        plans.append((member, MUSICNN_SPECTROGRAM))
    return plans


def manifest_entry(
    config: MemberConfig, spectrogram: SpectrogramConfig, network: nn.Module, weights_dir: Path
) -> tuple[MemberSpec, dict]:
    """A trained member's manifest entry and state dict. A member on frozen pretrained taggers
    refers to their file (copied into `weights_dir` once) and keeps only what it learned;
    raises ValueError if another file of that name is already there."""
    state, base = network.state_dict(), {}
    if config.backbone_weights and not config.hparams.get("fine_tune"):
        name, digest = place_base_weights(weights_dir, config.backbone_weights)
        pretrained = torch.load(config.backbone_weights, map_location="cpu", weights_only=True)
        state = {
            k: v for k, v in state.items() if k not in pretrained or not torch.equal(v.cpu(), pretrained[k])
        }
        base = {"base_state_dict": name, "base_sha256": digest}
    spec = MemberSpec(
        name=config.name,
        architecture=config.architecture,
        hparams=config.hparams,
        spectrogram=spectrogram,
        chunk_seconds=config.chunk_seconds,
        max_chunks=config.max_chunks,
        **base,
    )
    return spec, state
