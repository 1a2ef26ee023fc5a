#!/usr/bin/env python3
"""Training-side throughput on generated clips, projected to FMA-medium.

    python bench/train.py [--clips 300] [--device auto] [--epochs 2]
    python bench/train.py --backbone musicnn [--fine-tune]     # a head on the pretrained taggers

Uses the cached payload of bench/predict.py (30-s 44.1 kHz stereo mp3s) with random genre labels
(speed does not depend on what the labels mean) and measures, in one run:
  1. decode only, through the decode workers;
  2. building the feature cache (decode + log-mel + write), same workers -> ratio to 1 (target >= 0.8);
  3. training one member of the default shape (or, with --backbone musicnn, one transfer head on
     musicnn's own cache): crops/s (second epoch, after warm-up), the time to
     score a validation clip (timed apart from training), host peak RSS, and mean GPU
     utilisation of the training loop when on a GPU;
  4. the tensor memory one training step needs (network, gradients, optimiser state, activations)
     on the training device, and on a GPU the peak it allocated while training; the arithmetic
     (FLOPs) per training crop;
and projects the wall time of the README's training command on FMA-medium (25,000 clips:
19,922 train / 2,505 validation) from those rates, for the given number of members and epochs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from common import PeriodicSampler, make_payload, peak_tensor_bytes  # noqa: E402

FMA_TRAIN, FMA_VALID, FMA_CLIPS = 19_922, 2_505, 25_000


class GpuUtilisation(PeriodicSampler):
    """Mean of nvidia-smi's utilization.gpu, sampled every 0.5 s (None without a GPU)."""

    def __init__(self):
        super().__init__(interval=0.5)
        self.samples = []

    def sample(self) -> bool:
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout
            self.samples.append(float(out.split()[0]))
            return True
        except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
            return False

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.samples)) if self.samples else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=300)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--train-clips",
        type=int,
        default=None,
        help="crops per measured epoch (default: all clips); on a GPU use thousands, so that "
        "an epoch is more than a few steps",
    )
    parser.add_argument("--members", type=int, default=3, help="for the projection (default 3)")
    parser.add_argument(
        "--epochs", type=int, default=40, help="for the projection (default 40, the train.py default)"
    )
    parser.add_argument("--payload", type=Path, default=Path("/tmp/fma-bench-payload"))
    parser.add_argument(
        "--backbone", default="none", choices=["none", "musicnn"], help="measure a transfer head instead"
    )
    parser.add_argument(
        "--fine-tune", action="store_true", help="with --backbone musicnn: train the taggers too"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()

    import torch

    from model.audio import decode_many
    from model.device import choose_device
    from model.feature_cache import build_cache
    from model.features import ClipSet, FeatureStore
    from model.genres import GENRES
    from model.members import MemberConfig
    from model.musicnn import MUSICNN_CHUNK_SECONDS, MUSICNN_SPECTROGRAM
    from model.spectrogram import SpectrogramConfig
    from model.training import predict_clips, train_member

    paths = make_payload(args.payload, args.clips)
    if args.backbone == "musicnn":
        config = MUSICNN_SPECTROGRAM
        member = MemberConfig(
            name="bench",
            architecture="musicnn_transfer",
            epochs=2,
            batch_size=args.batch_size,
            hparams={"hidden": 256, "dropout": 0.5, "fine_tune": args.fine_tune},
            patience=10,
            chunk_seconds=MUSICNN_CHUNK_SECONDS,
            lr=1e-3,
            max_chunks=4,
            backbone_weights=str(REPO / "weights" / "musicnn" / "musicnn_pair.pt"),
        )
        described = (
            f"musicnn transfer head ({'fine-tuned' if args.fine_tune else 'frozen'} taggers), 4 chunks/clip"
        )
    else:
        config = SpectrogramConfig()
        member = MemberConfig(name="bench", epochs=2, batch_size=args.batch_size, patience=10)
        described = "short_chunk_resnet 32-64-128-256"
    device, _ = choose_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        for _ in decode_many(paths, config.sample_rate, args.workers, prefetch=8):
            pass
        decode_rate = len(paths) / (time.perf_counter() - start)

        tracks = pd.DataFrame({"key": [p.stem for p in paths], "path": paths})
        start = time.perf_counter()
        cache = build_cache(Path(tmp) / "cache", config, tracks, args.workers)
        cache_rate = len(paths) / (time.perf_counter() - start)
        gigabytes_per_clip = cache.data.nbytes / len(cache.ok()) / 1e9

        ok = cache.ok()
        rng = np.random.default_rng(0)
        n_train = args.train_clips or len(ok)
        # an epoch is exactly n_train crops, not train.py's floor of 32 steps
        member = replace(member, min_epoch_steps=1, batch_norm_crops=min(member.batch_norm_crops, n_train))
        train_rows = ok.iloc[rng.integers(0, len(ok), n_train)]
        valid_rows = ok.iloc[: min(64, len(ok))]

        def clip_set(rows) -> ClipSet:
            return ClipSet(
                torch.tensor(rows["offset"].values),
                torch.tensor(rows["frames"].values),
                torch.tensor(rng.integers(0, len(GENRES), len(rows))),
            )

        store = FeatureStore(cache.data, device, config.compression)
        chunk_frames = config.seconds_to_frames(member.chunk_seconds)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        # Validation on one clip during training, so that the GPU utilisation is the training
        # loop's; the validation rate is measured on its own below.
        with GpuUtilisation() as gpu:
            network, history = train_member(
                member,
                store,
                clip_set(train_rows),
                clip_set(valid_rows[:1]),
                chunk_frames,
                Path(tmp) / "bench.ckpt",
            )
        valid = clip_set(valid_rows)
        predict_clips(
            network, store, valid, chunk_frames, correction=None, max_chunks=member.max_chunks
        )  # warm-up
        start = time.perf_counter()
        predict_clips(network, store, valid, chunk_frames, correction=None, max_chunks=member.max_chunks)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        valid_seconds_per_clip = (time.perf_counter() - start) / len(valid_rows)
        gpu_peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
        peak_rss = (
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        )  # before the probes below add theirs
    step_bytes = training_step_bytes(member, config.n_mels, chunk_frames, device)
    flops_per_crop = training_flops_per_crop(member, config.n_mels, chunk_frames)
    last = history[-1]
    crops_per_second = last["crops"] / last["train_seconds"]

    epoch_seconds = FMA_TRAIN / crops_per_second + FMA_VALID * valid_seconds_per_clip
    projected = FMA_CLIPS / cache_rate + args.members * args.epochs * epoch_seconds
    gpu_name = torch.cuda.get_device_name(0) if device.type == "cuda" else "-"
    print(
        f"\nmachine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, GPU {gpu_name}; "
        f"torch {torch.__version__}; device {device}; {args.workers} workers"
    )
    print(
        f"data: {len(paths)} x 30-s 44.1 kHz stereo mp3; member: {described}, "
        f"{member.chunk_seconds:.3g}-s crops, batch {args.batch_size}; "
        f"features {'on the GPU' if store.on_device else 'memory-mapped'}"
    )
    print("| measure | value |\n|---|---|")
    print(f"| decode only | {decode_rate:.1f} clips/s |")
    print(f"| feature cache build (decode + log-mel + write) | {cache_rate:.1f} clips/s |")
    print(f"| cache build / decode only | {cache_rate / decode_rate:.2f} |")
    print(
        f"| cache size per 30-s clip (fp16) | {gigabytes_per_clip * 1e3:.2f} MB -> "
        f"{gigabytes_per_clip * FMA_CLIPS:.1f} GB for FMA-medium |"
    )
    print(f"| training | {crops_per_second:.1f} crops/s |")
    print(f"| validation scoring | {1 / valid_seconds_per_clip:.1f} clips/s |")
    total_flops = flops_per_crop * FMA_TRAIN * args.members * args.epochs
    print(
        f"| arithmetic per training crop (forward + backward, torch FlopCounterMode) | "
        f"{flops_per_crop / 1e9:.2f} GFLOP -> {total_flops / 1e15:.1f} PFLOP for the projected run |"
    )
    if step_bytes is not None:
        print(
            f"| tensor memory of one training step, batch {args.batch_size} (torch MemTracker, fp32; "
            f"a GPU adds its CUDA context) | {step_bytes / 2**20:.0f} MiB |"
        )
    if gpu_peak is not None:
        features = "included" if store.on_device else "on the host"
        print(
            f"| GPU memory allocated while training, peak (features {features}) | {gpu_peak / 2**30:.2f} GiB |"
        )
    if gpu.mean is not None:
        print(f"| GPU utilisation (nvidia-smi, mean over both training epochs) | {gpu.mean:.0f} % |")
    print(f"| host peak RSS (memory-mapped cache pages included) | {peak_rss:.2f} GiB |")
    print(
        f"| projected: cache + {args.members} members x {args.epochs} epochs on FMA-medium | "
        f"{projected / 60:.0f} min (no early stopping) |"
    )
    if args.json:
        figures = {
            "machine": platform.machine(),
            "cores": len(os.sched_getaffinity(0)),
            "gpu": gpu_name,
            "torch": torch.__version__,
            "device": str(device),
            "clips": len(paths),
            "member": described,
            "batch_size": args.batch_size,
            "features_on_device": store.on_device,
            "decode_clips_per_s": decode_rate,
            "cache_clips_per_s": cache_rate,
            "cache_over_decode": cache_rate / decode_rate,
            "cache_mb_per_clip": gigabytes_per_clip * 1e3,
            "training_crops_per_s": crops_per_second,
            "validation_clips_per_s": 1 / valid_seconds_per_clip,
            "gflop_per_training_crop": flops_per_crop / 1e9,
            "step_tensor_mib": step_bytes / 2**20 if step_bytes is not None else None,
            "gpu_peak_gib": gpu_peak / 2**30 if gpu_peak is not None else None,
            "gpu_utilisation_percent": gpu.mean,
            "host_peak_rss_gib": peak_rss,
            "projected_fma_medium_min": projected / 60,
            "projected_members": args.members,
            "projected_epochs": args.epochs,
        }
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


def training_step_bytes(member, n_mels: int, chunk_frames: int, device) -> int | None:
    """Peak tensor memory of one optimiser step of a fresh `member` network on random crops, in
    fp32 (bf16 autocast on a GPU needs less for activations)."""
    import torch
    import torch.nn.functional as F

    from model.genres import GENRES
    from model.networks import build_network

    network = build_network(member.architecture, n_mels, len(GENRES), member.hparams).to(device).train()
    optimizer = torch.optim.AdamW([p for p in network.parameters() if p.requires_grad], lr=member.lr)
    # The tracker hooks every parameter's gradient and refuses frozen ones. Frozen musicnn taggers
    # still run without a graph (MusicnnTransfer.forward follows fine_tune, not requires_grad) and
    # are not in the optimiser, so the figure stays that of the frozen step.
    network.requires_grad_(True)
    crops = torch.randn(member.batch_size, n_mels, chunk_frames, device=device)
    labels = torch.randint(0, len(GENRES), (member.batch_size,), device=device)

    def step() -> None:
        loss = F.cross_entropy(network(crops), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return peak_tensor_bytes(device.type, step, network, optimizer, crops, labels)


def training_flops_per_crop(member, n_mels: int, chunk_frames: int) -> float:
    """Forward + backward FLOPs of one crop through a fresh `member` network (counted on the CPU,
    device-independent): with the crop count, the arithmetic a training run needs."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from model.genres import GENRES
    from model.networks import build_network

    network = build_network(member.architecture, n_mels, len(GENRES), member.hparams).train()
    crops = torch.randn(2, n_mels, chunk_frames)  # two: batch norm needs more than one value per channel
    with FlopCounterMode(display=False) as counter:
        network(crops).sum().backward()
    return counter.get_total_flops() / len(crops)


if __name__ == "__main__":
    main()
