"""Train one ensemble member on cached log-mels: one loop, read top to bottom (which members a
run trains, and how each is configured, is model/members.py's).

Choices, and why:
- Data: random `chunk_seconds` crops of the cached log-mels, gathered with tensor ops from a copy
  of the cache on the GPU when it fits (FMA-medium is ~12 GB in fp16), else from the memory map.
  A clip shorter than a chunk is tiled, as at prediction time.
- Class imbalance: tracks are drawn with probability proportional to 1/sqrt(class count), so a
  rare genre is seen far more often than under natural sampling (better features for it), yet
  frequent genres still dominate. The network then learns posteriors under that sampling prior
  q; adding log(p/q) to its output bias after training turns them back into posteriors under the
  true training prior p -- what log loss, the challenge's metric, rewards.
- Augmentation: random gain (+-6 dB: loudness is not genre); mixup of two crops in the power
  domain, i.e. mixing two recordings, labels mixed in proportion (smoother, better calibrated
  posteriors); SpecAugment, two frequency and two time masks (robust to missing bands/dropouts).
- Optimisation: AdamW, linear warm-up then cosine decay; bf16 autocast on GPUs that have it
  (frozen pretrained taggers excepted: their embeddings stay fp32, as at prediction time).
  A network may split its parameters into groups with their own learning-rate scale
  (`parameter_groups`): a fine-tuned pretrained backbone learns slower than its new head.
- Pretrained members (`backbone_weights`): the musicnn taggers' weights are loaded before training;
  only the head is new.
- Selection on what is scored: after every epoch, the validation log loss of exactly what
  predict.py would write for those clips with this member alone -- bias-corrected posteriors
  through `calibration.output_probabilities` (temperature 1, probability floor). The best epoch's
  weights are kept; training stops after `patience` epochs without improvement.
- The same on 100 clips as on 25,000: an epoch is one pass over the training clips or
  `min_epoch_steps` optimizer steps, whichever is more, and warm-up, patience and the learning-rate
  schedule are counted in those epochs. On a few hundred clips an epoch would otherwise be 2 steps,
  and patience would fire while the network has barely moved. Before each validation the
  batch-norm statistics are recomputed on clean training crops ("precise BN", Wu & Johnson 2021):
  running averages updated over 2 steps of a fast-changing network describe neither.
- Reproducible and resumable: everything random in epoch e is seeded from (seed, e), and a
  checkpoint (model, optimiser, history, best weights) is written after every epoch, so a resumed
  run ends in exactly the state an uninterrupted one would.
- Several processes (`torchrun`, see model/distributed.py): the same global batch is drawn on every
  rank and each trains on its slice of it; validation clips are split across ranks and gathered.
"""

from __future__ import annotations

import io
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .atomic import write_atomic
from .calibration import output_log_loss, output_probabilities
from .chunking import make_chunks
from .distributed import SINGLE, Ranks, broadcast, check_identical, data_parallel, gather_rows, share_buffers
from .ensemble import clip_logits
from .features import ClipSet, FeatureStore
from .genres import GENRES
from .members import MemberConfig
from .metrics import expected_calibration_error
from .networks import GenreNetwork, build_network
from .spectrogram import compress, to_power


def train_member(
    config: MemberConfig,
    store: FeatureStore,
    train: ClipSet,
    valid: ClipSet,
    chunk_frames: int,
    checkpoint: Path,
    ranks: Ranks = SINGLE,
    on_epoch: Callable[[str, dict, int], None] | None = None,
) -> tuple[nn.Module, list[dict]]:
    """Train (or resume) one member on `chunk`-frame crops; returns the best network, bias-
    corrected (its outputs are what validation scored), and its history. Under torchrun every
    rank calls this and gets the same network; only rank 0 writes the checkpoint. `on_epoch`
    (member name, the epoch's history entry with its per-step losses and learning rates, steps
    per epoch) is called after each epoch's checkpoint, on rank 0: the run's record."""
    device = store.device
    if config.batch_size % ranks.world:
        raise ValueError(f"--batch-size {config.batch_size} must be a multiple of the {ranks.world} ranks")
    local = ranks.block(config.batch_size)  # this rank's columns of each step's global batch
    n_mels = store.features.shape[1]
    torch.manual_seed(config.seed)  # the initial weights
    network = build_network(config.architecture, n_mels, len(GENRES), config.hparams)
    if config.backbone_weights:
        missing, unexpected = network.load_state_dict(
            torch.load(config.backbone_weights, map_location="cpu", weights_only=True), strict=False
        )
        if unexpected or any(not key.startswith("head.") for key in missing):
            raise ValueError(f"{config.backbone_weights} does not fit {config.architecture}")
    network = network.to(device)
    groups = network.parameter_groups()
    optimizer = torch.optim.AdamW(
        groups, lr=config.lr, weight_decay=config.weight_decay, fused=device.type == "cuda"
    )
    steps_per_epoch = epoch_steps(len(train.labels), config)
    total_steps = config.epochs * steps_per_epoch
    warmup_steps = max(1, round(config.warmup_epochs * steps_per_epoch))
    state = {"epoch": 0, "best_loss": math.inf, "best_epoch": 0, "best_state": None, "history": []}
    # rank 0 reads the checkpoint and hands it to the others: they need not see its folder
    saved = None
    if ranks.main and checkpoint.exists():
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    saved = broadcast(saved, ranks)
    if saved is not None:
        if saved["config"] != asdict(config):
            raise ValueError(f"{checkpoint} was made with another configuration; use another --run-dir")
        network.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        state = {k: saved[k] for k in state}
        if ranks.main:
            print(f"{config.name}: resuming after epoch {state['epoch']}", file=sys.stderr)
    network, trainer = data_parallel(network, ranks, device)  # trainer: what a training step calls

    sampling_weights, sampling_prior = sampling_plan(train.labels, config.balance)
    correction = torch.log(class_prior(train.labels) / sampling_prior).float()  # q -> p, see the docstring
    use_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
    torch.backends.cudnn.benchmark = device.type == "cuda"  # crops have one shape: tune once
    # The clips' index tensors live where the features do, and each epoch's draws are made at once
    # and moved there once: on a GPU-resident store no step waits for a host-to-device copy.
    feature_device = store.features.device
    train_here = train.to(feature_device)

    for epoch in range(state["epoch"] + 1, config.epochs + 1):
        if epoch - state["best_epoch"] > config.patience and state["best_state"] is not None:
            break  # early stopping (checked here too, so a resumed run stops where it would have)
        # dropout, mixup, masks: from here (each rank its own); the crops: from the sampler (shared)
        torch.manual_seed(config.seed * 100_003 + epoch + 7_919 * ranks.rank)
        sampler = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        network.train()
        start, losses, lrs = time.perf_counter(), [], []
        draws = (steps_per_epoch, config.batch_size)
        epoch_which = (
            torch.multinomial(sampling_weights, math.prod(draws), replacement=True, generator=sampler)
            .view(draws)[:, local.start : local.stop]
            .to(feature_device)
        )
        epoch_uniform = torch.rand(draws, generator=sampler)[:, local.start : local.stop].to(feature_device)
        for step in range(steps_per_epoch):
            global_step = (epoch - 1) * steps_per_epoch + step
            for group in optimizer.param_groups:
                group["lr"] = (
                    learning_rate(global_step, config.lr, warmup_steps, total_steps) * group["lr_scale"]
                )
            lrs.append(optimizer.param_groups[0]["lr"])
            which = epoch_which[step]
            room = (train_here.frames[which] - chunk_frames).clamp_min(0) + 1
            starts = (epoch_uniform[step] * room).long()
            x = store.crops(train_here, which, starts, chunk_frames)
            y = F.one_hot(train_here.labels[which], len(GENRES)).float().to(device)
            x, y = augment(x, y, config, store.compression)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                loss = F.cross_entropy(trainer(x).float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
        step_losses = torch.stack(losses).tolist()  # one sync per epoch, not per step (rank 0's)
        train_loss = sum(step_losses) / len(step_losses)
        train_seconds = time.perf_counter() - start
        settle_batch_norm(
            network, store, train_here, chunk_frames, config, seed=config.seed * 100_003 + epoch
        )
        share_buffers(network, ranks)  # the same crops on every rank; rank 0's statistics, exactly
        log_probs = predict_clips(
            network, store, valid, chunk_frames, correction, max_chunks=config.max_chunks, ranks=ranks
        )
        # rank 0's verdict: every rank then takes the same best epoch and stops at the same one
        valid_loss = broadcast(output_log_loss(log_probs[None], valid.labels).item(), ranks)
        rows = output_probabilities(log_probs[None].cpu()).numpy()  # what predict.py would write
        truth = valid.labels.cpu().numpy()
        if valid_loss < state["best_loss"]:
            state.update(best_loss=valid_loss, best_epoch=epoch, best_state=_cpu_copy(network.state_dict()))
        state["epoch"] = epoch
        state["history"].append(
            {
                "epoch": epoch,
                "train_loss": train_loss,
                "valid_loss": valid_loss,
                "valid_accuracy": float((rows.argmax(axis=1) == truth).mean()),
                "valid_ece": expected_calibration_error(truth, rows),
                "lr": optimizer.param_groups[0]["lr"],
                "train_seconds": train_seconds,
                "seconds": time.perf_counter() - start,
                "crops": steps_per_epoch * config.batch_size,
            }
        )
        if ranks.main:
            print(
                f"{config.name} epoch {epoch:3d}: train {train_loss:.3f}  valid log loss {valid_loss:.3f}"
                f"{'  *' if state['best_epoch'] == epoch else ''}  ({time.perf_counter() - start:.1f} s)",
                file=sys.stderr,
            )
            _save_checkpoint(checkpoint, config, network, optimizer, state)
            if on_epoch is not None:
                on_epoch(
                    config.name,
                    {**state["history"][-1], "step_losses": step_losses, "step_lrs": lrs},
                    steps_per_epoch,
                )

    network.load_state_dict(state["best_state"])
    correct_output_bias(network, correction)
    check_identical(network, ranks)
    if ranks.active and ranks.main:
        print(f"{config.name}: parameters identical on all {ranks.world} ranks", file=sys.stderr)
    return network.eval(), state["history"]


def epoch_steps(clips: int, config: MemberConfig) -> int:
    """Optimizer steps per epoch: one pass over the clips, but never fewer than `min_epoch_steps`."""
    return max(math.ceil(clips / config.batch_size), config.min_epoch_steps)


@torch.no_grad()
def settle_batch_norm(
    network: nn.Module,
    store: FeatureStore,
    train: ClipSet,
    chunk_frames: int,
    config: MemberConfig,
    seed: int,
) -> None:
    """Set the running statistics of the network's trained batch-norm layers to their exact
    averages over `config.batch_norm_crops` clean crops of training clips drawn at their natural
    frequencies (what prediction will see), at the current weights. Frozen layers (pretrained
    taggers kept in inference mode by `network.train()`) are left alone."""
    network.train()
    layers = [m for m in network.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    network.eval()  # no dropout: the statistics of the network prediction runs
    if not layers:
        return
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # cumulative average over the batches below
        layer.train()
    generator = torch.Generator().manual_seed(seed)
    feature_device = store.features.device
    for first in range(0, config.batch_norm_crops, config.batch_size):
        size = min(config.batch_size, config.batch_norm_crops - first)
        which = torch.randint(len(train.labels), (size,), generator=generator).to(feature_device)
        room = (train.frames[which] - chunk_frames).clamp_min(0) + 1
        starts = (torch.rand(size, generator=generator).to(feature_device) * room).long()
        network(store.crops(train, which, starts, chunk_frames))
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum
        layer.eval()


def learning_rate(step: int, peak: float, warmup: int, total: int) -> float:
    """Linear warm-up to `peak`, then cosine decay to 1 % of it."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))


def class_prior(labels: torch.Tensor) -> torch.Tensor:
    """Training class frequencies with one pseudo-count per class (no class gets probability 0)."""
    counts = torch.bincount(labels, minlength=len(GENRES)).double() + 1
    return counts / counts.sum()


def sampling_plan(labels: torch.Tensor, balance: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-clip draw weights and the class distribution q they induce.

    q uses the same pseudo-count as `class_prior`, so log(p/q) stays finite (and equal to the
    correction of a one-track class) for genres absent from the training data."""
    counts = torch.bincount(labels, minlength=len(GENRES)).double() + 1
    if balance == "none":
        per_class = torch.ones(len(GENRES), dtype=torch.float64)
    elif balance == "sqrt":
        per_class = 1 / counts.sqrt()
    else:
        raise ValueError(f"unknown balance {balance!r}: use sqrt or none")
    q = counts * per_class
    return per_class[labels], q / q.sum()


def augment(
    x: torch.Tensor, y: torch.Tensor, config: MemberConfig, compression: str = "db"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gain, power-domain mixup and SpecAugment on a batch of log-mel crops and one-hot labels."""
    batch, mels, frames = x.shape
    gain = 10 ** ((torch.rand(batch, 1, 1, device=x.device) * 2 - 1) * config.gain_db / 10)
    power = to_power(x, compression) * gain
    if config.mixup_alpha > 0:
        alpha = torch.tensor(config.mixup_alpha, device=x.device)
        lam = torch.distributions.Beta(alpha, alpha).sample((batch,))  # drawn on x's device: no copy
        lam = torch.maximum(lam, 1 - lam)  # the first clip dominates: its label stays the main one
        partner = torch.randperm(batch, device=x.device)
        power = lam[:, None, None] * power + (1 - lam[:, None, None]) * power[partner]
        y = lam[:, None] * y + (1 - lam[:, None]) * y[partner]
    x = compress(power, compression)
    fill = x.mean(dim=(1, 2), keepdim=True)
    for size, axis_length, axis in (
        (config.freq_mask_bins, mels, 1),
        (max(1, int(config.time_mask_fraction * frames)), frames, 2),
    ):
        for _ in range(2):
            width = torch.randint(0, size + 1, (batch, 1), device=x.device)
            start = (torch.rand(batch, 1, device=x.device) * (axis_length - width + 1)).long()
            positions = torch.arange(axis_length, device=x.device)[None]
            mask = (positions >= start) & (positions < start + width)  # (batch, axis_length)
            mask = mask[:, :, None] if axis == 1 else mask[:, None, :]
            x = torch.where(mask, fill, x)
    return x, y


@torch.no_grad()
def predict_clips(
    network: nn.Module,
    store: FeatureStore,
    clips: ClipSet,
    chunk_frames: int,
    correction: torch.Tensor | None,
    batch_clips: int = 32,
    max_chunks: int | None = None,
    ranks: Ranks = SINGLE,
) -> torch.Tensor:
    """Whole-clip log-probabilities (clips, classes) exactly as prediction computes them for this
    member; `correction` is added to the logits first (None once it is in the output bias).
    Under torchrun each rank scores its block of the clips and every rank gets them all."""
    was_training = network.training
    network.eval()
    out = [torch.empty(0, len(GENRES), device=store.device)]
    mine = ranks.block(len(clips.labels))
    for first in range(mine.start, mine.stop, batch_clips):
        which = list(range(first, min(first + batch_clips, mine.stop)))
        specs, frames = store.clip_specs(clips, which)
        chunks, owner = make_chunks(specs, frames, chunk_frames, max_chunks)
        logits = clip_logits(network, chunks, owner, len(which))
        if correction is not None:
            logits = logits + correction.to(logits)
        out.append(torch.log_softmax(logits, dim=1))
    network.train(was_training)
    return gather_rows(torch.cat(out), len(clips.labels), ranks)


def correct_output_bias(network: GenreNetwork, log_ratio: torch.Tensor) -> None:
    """Add log(p/q) to the bias of the network's output layer (see the module docstring)."""
    with torch.no_grad():
        network.output_layer().bias += log_ratio.to(network.output_layer().bias)


def _cpu_copy(state: dict) -> dict:
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def _save_checkpoint(path: Path, config: MemberConfig, network, optimizer, state: dict) -> None:
    buffer = io.BytesIO()
    torch.save(
        {
            "config": asdict(config),
            "model": network.state_dict(),
            "optimizer": optimizer.state_dict(),
            **state,
        },
        buffer,
    )
    write_atomic(path, buffer.getvalue())
