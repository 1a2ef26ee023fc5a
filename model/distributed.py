"""Training on several processes with PyTorch's own engine: `torchrun ... train.py` (NCCL on GPUs,
gloo on CPUs). A plain `python train.py` is one rank of one, and nothing here does anything.

How members and data map to ranks: every member is trained data-parallel over all ranks, one
member after the other (DistributedDataParallel). Each optimizer step draws the same global batch
of `--batch-size` crops on every rank (the draws are seeded by epoch, not by rank) and each rank
takes its own slice, so a step averages gradients over exactly the batch one process would have
drawn; validation is split across ranks and gathered. Why not one member per rank: an ensemble
has 3 members and a node 8 GPUs, members stop early at different epochs (idle GPUs), and the
number of GPUs would set the size of the ensemble. Data parallelism keeps every rank busy for
any member count, and each member's checkpoints stay what a single process writes.

Only rank 0 writes checkpoints, weights and reports; every rank reads checkpoints on `--resume`,
so `--run-dir` and `--cache` must be on a filesystem all ranks see (the usual cluster layout).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

# Generous: rank 0 may spend hours merging a feature cache while the others wait at a barrier.
_TIMEOUT = timedelta(hours=12)


@dataclass(frozen=True)
class Ranks:
    """This process's place among the training processes."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def block(self, count: int) -> range:
        """This rank's contiguous share of `count` items (the first ranks take one more)."""
        per, extra = divmod(count, self.world)
        start = self.rank * per + min(self.rank, extra)
        return range(start, start + per + (self.rank < extra))


SINGLE = Ranks()


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def claim_local_gpu() -> None:
    """Under torchrun, make this rank's GPU the current one before anything touches CUDA, so that
    8 ranks do not all open a context on GPU 0 (the device probe runs a convolution)."""
    if launched_by_torchrun() and torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))


def start(device: torch.device) -> tuple[Ranks, torch.device]:
    """Join the process group torchrun set up (NCCL for CUDA, gloo for the CPU) and return this
    rank and its device (cuda:<local rank> on GPUs); without torchrun, one rank and `device`."""
    if not launched_by_torchrun():
        return SINGLE, device
    ranks = Ranks(
        rank=int(os.environ["RANK"]),
        world=int(os.environ["WORLD_SIZE"]),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        local_world=int(os.environ.get("LOCAL_WORLD_SIZE", "1")),
    )
    if device.type == "cuda":
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=_TIMEOUT)
    return ranks, device


def finish(ranks: Ranks) -> None:
    if ranks.active and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier(ranks: Ranks) -> None:
    if ranks.active:
        dist.barrier()


def broadcast(value: Any, ranks: Ranks) -> Any:
    """Rank 0's `value` (any picklable object), on every rank."""
    if not ranks.active:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def data_parallel(network: nn.Module, ranks: Ranks, device: torch.device) -> tuple[nn.Module, nn.Module]:
    """(network, trainer): the module evaluation and state dicts use, and the one a training step
    calls (DDP around it; both are `network` on one rank). On GPUs batch-norm layers become
    SyncBatchNorm, so their training statistics cover the global batch, not one rank's slice of
    it (the state dict keys stay the same); gloo has no SyncBatchNorm, so on CPUs each rank
    normalises its own slice."""
    if not ranks.active:
        return network, network
    if device.type == "cuda":
        network = nn.SyncBatchNorm.convert_sync_batchnorm(network)
    trainer = nn.parallel.DistributedDataParallel(
        network, device_ids=[device.index] if device.type == "cuda" else None
    )
    return network, trainer


def gather_rows(part: torch.Tensor, count: int, ranks: Ranks) -> torch.Tensor:
    """Every rank's `part` (its `Ranks.block(count)` rows), concatenated in rank order, on every rank."""
    if not ranks.active:
        return part
    width = -(-count // ranks.world)  # the largest block
    padded = torch.zeros((width, *part.shape[1:]), dtype=part.dtype, device=part.device)
    padded[: len(part)] = part
    parts = [torch.empty_like(padded) for _ in range(ranks.world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[: len(Ranks(r, ranks.world).block(count))] for r, p in enumerate(parts)])


def share_buffers(network: nn.Module, ranks: Ranks) -> None:
    """Rank 0's buffers (batch-norm statistics) on every rank."""
    if ranks.active:
        for buffer in network.buffers():
            dist.broadcast(buffer, src=0)


def check_same(value: object, what: str, ranks: Ranks) -> None:
    """Raise unless every rank holds rank 0's `value` (say, the number of training clips): ranks
    that see different data would stop matching each other's collectives and wait forever."""
    if not ranks.active:
        return
    values = [None] * ranks.world
    dist.all_gather_object(values, value)
    if any(v != values[0] for v in values):
        raise RuntimeError(f"the ranks disagree on {what}: {values} (do they all see the same --cache?)")


def check_identical(network: nn.Module, ranks: Ranks) -> None:
    """Raise if any rank's parameters or buffers differ from rank 0's, bit for bit."""
    if not ranks.active:
        return
    for name, tensor in [*network.named_parameters(), *network.named_buffers()]:
        reference = tensor.detach().clone()
        dist.broadcast(reference, src=0)
        differs = torch.tensor(
            [0.0 if torch.equal(reference, tensor.detach()) else 1.0], device=tensor.device
        )
        dist.all_reduce(differs)
        if differs.item():
            raise RuntimeError(f"ranks disagree on {name} after training: the replicas diverged")
