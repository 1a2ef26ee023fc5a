"""The ensemble in memory: waveforms in, calibrated genre log-probabilities out.

`load_ensemble` builds every member's network from the manifest (model/manifest.py) and loads its
weights. Members built on the same frozen pretrained layers (the zero-shot member and frozen
transfer heads: networks whose `backbone_key()` is not None, model/networks/base.py) share one run
of them per batch: each chunk goes through the taggers once, then through every such member's head.

Combining: each member gives per-clip log-probabilities (for a network: log-softmax of its outputs
averaged over the clip's chunks, at most `max_chunks` of them spread over the clip when set; for
the zero-shot member after adding the log class prior to its log genre evidence; for a `prior`
member: the log class prior); `calibration.combine` averages them (weighted by each member's
`weight`) and applies the temperature, and
`calibration.floor_probabilities` bounds what one mistake can cost (the rule is written once, in
model/calibration.py, for prediction and training alike).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .calibration import combine, output_probabilities
from .chunking import make_chunks, mean_by_owner
from .genres import GENRES
from .manifest import Manifest, ManifestError, load_manifest
from .networks import build_network
from .spectrogram import LogMel, SpectrogramConfig


def _one_torch_thread_when_all_exported(method: Callable) -> Callable:
    """When ONNX Runtime runs every network, torch's own small share (log-mel, speech cue, heads)
    runs on one thread: ONNX Runtime's threads take the cores, and torch's OpenMP threads,
    spinning between its small ops, took their time (README, Benchmarks). A network left on
    torch keeps all of torch's threads. torch's thread count is process-wide: it is changed for
    the call and restored after, so one ensemble is not for concurrent calls from several threads."""

    @functools.wraps(method)
    def run(self: Ensemble, *args, **kwargs):
        if not self.all_exported:
            return method(self, *args, **kwargs)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return method(self, *args, **kwargs)
        finally:
            torch.set_num_threads(threads)

    return run


class Ensemble(nn.Module):
    """Waveforms in, calibrated class log-probabilities out (see the module docstring)."""

    def __init__(self, manifest: Manifest, networks: dict[str, nn.Module]):
        super().__init__()
        self.manifest = manifest
        self.networks = nn.ModuleDict(networks)
        configs = sorted({m.spectrogram for m in manifest.members if m.kind != "prior"}, key=repr)
        self.configs = tuple(configs)  # the spectrograms the members read, each computed once
        self.logmels = nn.ModuleList([LogMel(config) for config in configs])
        self.register_buffer("log_prior", torch.tensor(manifest.class_prior).log().float(), persistent=False)
        self.backbone_keys = {name: network.backbone_key() for name, network in networks.items()}  # None: own
        weights = [member.weight for member in manifest.members]
        self.register_buffer("weights", torch.tensor(weights, dtype=torch.float64), persistent=False)
        self.backend = "torch"
        # ONNX Runtime versions of the networks, by member name or backbone key (model/exported.py)
        self.exported: dict[str, Callable] = {}

    def use_onnxruntime(self, threads: int) -> None:
        """Run the networks on ONNX Runtime from now on (CPU only; same numbers, see model/exported.py)."""
        from .exported import export_networks

        if self.device.type != "cpu":
            raise ValueError(f"the onnxruntime backend runs on the CPU; this ensemble is on {self.device}")
        self.exported, self.backend = export_networks(self, threads), "onnxruntime"

    @property
    def all_exported(self) -> bool:
        """Whether ONNX Runtime runs every network (by member name, or the shared taggers' key)."""
        return bool(self.exported) and all(
            member.name in self.exported or self.backbone_keys.get(member.name) in self.exported
            for member in self.manifest.members
            if member.kind != "prior"
        )

    @property
    def device(self) -> torch.device:
        return self.log_prior.device

    def forward(self, waveforms: torch.Tensor, lengths: list[int]) -> torch.Tensor:
        """waveforms: (clips, samples) zero-padded; lengths: valid samples per clip.
        Returns calibrated log-probabilities (clips, classes), before the floor."""
        specs, frames = self.spectrograms(waveforms), self.frames(lengths)
        return combine(self.member_log_probs(specs, frames, len(lengths)), *self._rule())

    @torch.inference_mode()
    def probabilities(self, waveforms: torch.Tensor, lengths: list[int]) -> np.ndarray:
        """The rows predict.py writes for these clips (`forward` through the one rule, floored)."""
        return self.rows(self.spectrograms(waveforms), self.frames(lengths), len(lengths))

    @torch.inference_mode()
    def rows(self, specs: dict, frames: dict, clips: int) -> np.ndarray:
        """(clips, classes) float64 rows for clips given as log-mels by spectrogram config (all of
        `spectrograms`, or stretches of them: model/segments.py): every member's log-probabilities
        through `calibration.output_probabilities` with this ensemble's temperature and weights."""
        member_log_probs = self.member_log_probs(specs, frames, clips)
        return output_probabilities(member_log_probs.cpu(), *self._rule()).numpy()

    def _rule(self) -> tuple[float, torch.Tensor]:
        return self.manifest.temperature, self.weights.cpu()

    def frames(self, lengths: list[int]) -> dict[SpectrogramConfig, list[int]]:
        """Each spectrogram config's valid frames for clips of `lengths` samples."""
        return {config: [config.frames(n) for n in lengths] for config in self.configs}

    @_one_torch_thread_when_all_exported
    def spectrograms(self, waveforms: torch.Tensor) -> dict[SpectrogramConfig, torch.Tensor]:
        """(clips, samples) -> each spectrogram config's log-mel (clips, mels, frames), once per config."""
        return {config: logmel(waveforms) for config, logmel in zip(self.configs, self.logmels)}

    @_one_torch_thread_when_all_exported
    def member_log_probs(self, specs: dict, frames: dict, clips: int) -> torch.Tensor:
        """Each member's log-probabilities (members, clips, classes) for clips given as log-mels
        (`spectrograms`' output, or stretches of it: model/segments.py) with their valid frames."""
        chunk_cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        backbone_cache: dict[tuple, tuple[torch.Tensor, ...]] = {}  # shared frozen taggers' outputs
        member_log_probs = []
        for member in self.manifest.members:
            if member.kind == "prior":
                member_log_probs.append(self.log_prior.expand(clips, -1))
                continue
            config = member.spectrogram
            chunk_key = (config, config.seconds_to_frames(member.chunk_seconds), member.max_chunks)
            if chunk_key not in chunk_cache:
                chunk_cache[chunk_key] = make_chunks(
                    specs[chunk_key[0]], frames[chunk_key[0]], *chunk_key[1:]
                )
            chunks, owner = chunk_cache[chunk_key]
            network, backbone_key = self.networks[member.name], self.backbone_keys.get(member.name)
            if backbone_key is None:
                logits = clip_logits(network, chunks, owner, clips, function=self.exported.get(member.name))
            else:  # shared frozen taggers: run them once per chunk set, then this member's head
                if (backbone_key, chunk_key) not in backbone_cache:
                    parts = in_slices(network, self.exported.get(backbone_key, network.backbone), chunks)
                    backbone_cache[backbone_key, chunk_key] = tuple(torch.cat(p) for p in zip(*parts))
                features = backbone_cache[backbone_key, chunk_key]
                logits = mean_by_owner(network.head_from(*features).float(), owner, clips)
            if member.kind == "zero_shot":  # log evidence + log prior (see the module docstring)
                logits = logits + self.log_prior
            member_log_probs.append(torch.log_softmax(logits, dim=1))
        return torch.stack(member_log_probs)

    def fallback_probabilities(self) -> np.ndarray:
        """The row for a clip without usable audio: the training class prior, through the same rule."""
        return output_probabilities(self.log_prior.cpu()[None, None])[0].numpy()


def clip_logits(
    network: nn.Module,
    chunks: torch.Tensor,
    owner: torch.Tensor,
    clips: int,
    chunks_per_call: int = 64,
    function: Callable | None = None,
) -> torch.Tensor:
    """A clip's logits: the mean of its chunks' logits (chunks from `chunking.make_chunks`), by
    `network` or by `function` standing in for it (its exported version). Used by prediction and
    by training's evaluation alike."""
    scores = in_slices(network, function or network, chunks, chunks_per_call)
    logits = torch.cat([out.float() for out in scores])
    return mean_by_owner(logits, owner, clips)


def in_slices(network: nn.Module, function, chunks: torch.Tensor, chunks_per_call: int = 64) -> list:
    """`function` applied to at most `chunks_per_call` chunks at a time (fewer if the network or
    the function sets its own `chunks_per_call`), which bounds activation memory whatever the
    batch of clips."""
    step = min(
        chunks_per_call,
        network.chunks_per_call,
        getattr(function, "chunks_per_call", chunks_per_call),  # an exported function may set its own
    )
    return [function(chunks[i : i + step]) for i in range(0, len(chunks), step)]


def load_ensemble(weights_dir: str | os.PathLike, device: torch.device | str = "cpu") -> Ensemble:
    """Load and validate an ensemble, ready for inference on `device`; raises ManifestError."""
    weights_dir = Path(weights_dir)
    manifest = load_manifest(weights_dir)
    networks = {}
    for member in manifest.members:
        if member.kind == "prior":
            continue
        where = f"{weights_dir / member.state_dict} (member {member.name!r})"
        try:
            network = build_network(
                member.architecture, member.spectrogram.n_mels, len(GENRES), member.hparams
            )
        except ValueError as error:
            raise ManifestError(f"{where}: {error}") from None
        try:
            state = torch.load(weights_dir / member.state_dict, map_location="cpu", weights_only=True)
            if member.base_state_dict:  # the frozen pretrained part first; the member's own keys win
                base = torch.load(weights_dir / member.base_state_dict, map_location="cpu", weights_only=True)
                state = {**base, **state}
            network.load_state_dict(state)
        except Exception as error:  # unpickling and shape errors alike
            raise ManifestError(f"{where}: cannot load the state dict: {error}") from None
        networks[member.name] = network
    return Ensemble(manifest, networks).to(device).eval()
