"""What every network is, and the registry that finds networks by name.

A network scores fixed-length log-mel chunks: (batch, n_mels, frames) -> (batch, n_classes)
logits. It subclasses `GenreNetwork`, which declares the hooks training and prediction use, each
with a default, so that nothing is looked up by `hasattr`:

- `output_layer()` (required): the final `nn.Linear`. After training, log(p/q) is added to its
  bias, turning posteriors learnt under class-balanced sampling into posteriors under the true
  class prior (model/training.py), so it must map straight to the logits.
- `parameter_groups()`: optimizer groups with their own learning-rate scale (default: one).
- `chunks_per_call`: at most this many chunks per forward call at prediction (bounds memory).
- `backbone_key()`: an id of frozen pretrained layers this network shares with other members
  (default None). A network that returns one also provides `backbone(chunks) -> features`,
  `head_from(*features) -> logits` and `export_backbone(example, threads)`, so that an ensemble runs
  the shared layers once per batch for all of them (model/ensemble.py).

`register` records an architecture under its name (as timm's `@register_model` does): its member
kind, the spectrogram it needs if it is bound to one, its default hyper-parameters and small ones
for tests. model/networks/__init__.py imports every module of the folder, so a new file there is
the only edit a new network needs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import Tensor, nn

from ..spectrogram import SpectrogramConfig

KINDS = ("cnn", "zero_shot", "transfer")  # the manifest's member kinds that have a network


class GenreNetwork(nn.Module):
    """Base class of every registered network (see the module docstring for the hooks)."""

    chunks_per_call: int = 64

    def output_layer(self) -> nn.Linear:
        raise NotImplementedError(f"{type(self).__name__} must define output_layer()")

    def parameter_groups(self) -> list[dict]:
        """[{"params": [...], "lr_scale": float}, ...]: the optimizer's groups."""
        return [{"params": list(self.parameters()), "lr_scale": 1.0}]

    def backbone_key(self) -> str | None:
        return None

    def backbone(self, chunks: Tensor) -> tuple[Tensor, ...]:
        raise NotImplementedError(f"{type(self).__name__} shares no backbone")

    def head_from(self, *features: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} shares no backbone")

    def export_backbone(self, example: Tensor, threads: int) -> Callable:
        raise NotImplementedError(f"{type(self).__name__} shares no backbone")


@dataclass(frozen=True)
class Architecture:
    """A registered architecture: how to build it and what it needs."""

    name: str
    network: type[GenreNetwork]
    kind: str  # the manifest member kind: "cnn" (trained here from scratch), "zero_shot", "transfer"
    defaults: dict = field(default_factory=dict)  # hyper-parameters a member gets unless it sets them
    small: dict = field(default_factory=dict)  # hyper-parameters for a quick test at small width
    spectrogram: SpectrogramConfig | None = None  # the only input it takes (pretrained on it), if any
    chunk_seconds: float | None = None  # the only chunk length it takes, if any
    trainable: bool = True  # False: nothing to fit (the zero-shot taggers)
    source: str = ""  # the module that registered it, for messages

    def parameters(self) -> list[str]:
        """The hyper-parameters the network's constructor takes."""
        signature = inspect.signature(self.network.__init__)
        return [p for p in signature.parameters if p not in ("self", "n_mels", "n_classes")]


REGISTRY: dict[str, Architecture] = {}


def register(
    name: str,
    *,
    kind: str = "cnn",
    defaults: dict | None = None,
    small: dict | None = None,
    spectrogram: SpectrogramConfig | None = None,
    chunk_seconds: float | None = None,
    trainable: bool = True,
) -> Callable[[type[GenreNetwork]], type[GenreNetwork]]:
    """Class decorator: record `cls` as architecture `name` (see the module docstring). Raises
    TypeError or ValueError naming what the class lacks."""

    def record(cls: type[GenreNetwork]) -> type[GenreNetwork]:
        where = f"{cls.__module__}.{cls.__qualname__}"
        if not (isinstance(cls, type) and issubclass(cls, GenreNetwork)):
            raise TypeError(f"{where}: a registered network must subclass model.networks.GenreNetwork")
        if trainable and cls.output_layer is GenreNetwork.output_layer:
            raise TypeError(f"{where} lacks output_layer(): the nn.Linear that gives the logits")
        if kind not in KINDS:
            raise ValueError(f"{where}: kind {kind!r} is not one of {KINDS}")
        if name in REGISTRY:
            raise ValueError(
                f"architecture {name!r} of {where} is already registered by {REGISTRY[name].source}"
            )
        architecture = Architecture(
            name,
            cls,
            kind,
            dict(defaults or {}),
            dict(small or {}),
            spectrogram,
            chunk_seconds,
            trainable,
            where,
        )
        for what, values in (("defaults", architecture.defaults), ("small", architecture.small)):
            unknown = sorted(set(values) - set(architecture.parameters()))
            if unknown:
                raise ValueError(f"{where}: {what} name {unknown}, which __init__ does not take")
        REGISTRY[name] = architecture
        return cls

    return record
