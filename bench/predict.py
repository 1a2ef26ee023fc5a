#!/usr/bin/env python3
"""Prediction throughput and memory on a generated payload, decode-only vs end-to-end side by side.

    python bench/predict.py [--clips 300] [--members 3] [--device auto] [--workers N]
    python bench/predict.py --weights weights/          # the shipped default (zero-shot musicnn)

Generates (once, cached under --payload) N clips of 30-s 44.1 kHz stereo mp3 (80 % CBR
128-320 kbps, 20 % VBR), saves a randomly initialised ensemble of the size train.py ships by
default (or takes the ensemble in --weights), then times in one run:
  1. decode only: every file through the decode workers, results discarded;
  2. end to end: decode -> log-mel -> ensemble -> CSV, exactly what predict.py does.
Peak memory is the largest sum of RSS over this process and its children, sampled every 0.2 s.
Targets (issue 2): end-to-end >= 0.9 x decode-only on a GPU; >= 2 clips/s on 2 CPU cores;
peak RSS <= 2 GB for 3,000 clips.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from common import UNIQUE_CLIPS, PeriodicSampler, make_payload, peak_tensor_bytes  # noqa: E402

from model.audio import decode_many  # noqa: E402


def shipped_size_ensemble(folder: Path, members: int):
    """Random weights in the default shape train.py writes (see model/training defaults)."""
    import torch

    from model.genres import GENRES, fma_medium_prior
    from model.manifest import Manifest, MemberSpec, save_ensemble
    from model.networks import build_network
    from model.spectrogram import SpectrogramConfig

    config = SpectrogramConfig()
    specs, states = [], {}
    chunk_lengths = [3.0, 2.0, 4.0, 3.0, 2.0]
    for i in range(members):
        name = f"cnn{i}"
        hparams = {"channels": [32, 64, 128, 256], "dropout": 0.3}
        specs.append(
            MemberSpec(
                name=name,
                architecture="short_chunk_resnet",
                hparams=hparams,
                spectrogram=config,
                chunk_seconds=chunk_lengths[i % 5],
            )
        )
        torch.manual_seed(i)
        states[name] = build_network("short_chunk_resnet", config.n_mels, len(GENRES), hparams).state_dict()
    manifest = Manifest(GENRES, config.sample_rate, 1.0, tuple(fma_medium_prior()), tuple(specs), "benchmark")
    save_ensemble(folder, manifest, states)
    params = sum(v.numel() for s in states.values() for v in s.values())
    return folder, params


class TreeMemory(PeriodicSampler):
    """Peak of the summed RSS of this process and its children, sampled every 0.2 s."""

    def __init__(self):
        super().__init__(interval=0.2)
        self.peak = 0

    def sample(self) -> None:
        total = 0
        for pid in [os.getpid(), *self._children(os.getpid())]:
            try:
                for line in open(f"/proc/{pid}/status"):
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                pass
        self.peak = max(self.peak, total)

    @staticmethod
    def _children(pid: int) -> list[int]:
        found = []
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    if int(open(f"/proc/{entry.name}/stat").read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry.name))
                except (OSError, IndexError, ValueError):
                    pass
        return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=300)
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--weights", type=Path, help="benchmark this ensemble instead of random CNNs")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--workers", type=int, default=min(5, len(os.sched_getaffinity(0))))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--payload",
        type=Path,
        default=Path("/tmp/fma-bench-payload"),
        help="cached generated clips (default /tmp/fma-bench-payload)",
    )
    parser.add_argument(
        "--skip-decode-only", action="store_true", help="only the end-to-end pass (memory runs)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()

    import torch

    from model.device import choose_device
    from model.ensemble import load_ensemble
    from model.inference import classify_files
    from model.submission import file_id, write_submission

    paths = make_payload(args.payload, args.clips)
    device, warning = choose_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        if args.weights:
            ensemble = load_ensemble(args.weights, device)
        else:
            ensemble = load_ensemble(shipped_size_ensemble(Path(tmp) / "weights", args.members)[0], device)
        params = sum(p.numel() for p in ensemble.parameters())
        described = ", ".join(
            f"{m.name} ({m.architecture or m.kind}{f', {m.max_chunks} chunks/clip' if m.max_chunks else ''})"
            for m in ensemble.manifest.members
        )
        rate = ensemble.manifest.sample_rate

        decode_rate = None
        if not args.skip_decode_only:
            start = time.perf_counter()
            for _ in decode_many(paths, rate, args.workers, prefetch=8):
                pass
            decode_rate = len(paths) / (time.perf_counter() - start)

        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        with TreeMemory() as memory:
            start = time.perf_counter()
            predictions = list(classify_files(ensemble, paths, args.workers, args.batch_size))
            write_submission(
                Path(tmp) / "out.csv",
                [file_id(p.path) for p in predictions],
                np.stack([p.probabilities for p in predictions]),
            )
            end_to_end_rate = len(paths) / (time.perf_counter() - start)
        gpu_peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None

        # What the ensemble needs for one batch of 30-s clips, on whatever device runs it: the
        # figure to hold against a GPU's memory (the grader's has 11 GB).
        waveforms = torch.randn(args.batch_size, rate * 30, device=device) * 0.1
        with torch.no_grad():
            batch_bytes = peak_tensor_bytes(
                device.type, lambda: ensemble(waveforms, [rate * 30] * args.batch_size), ensemble, waveforms
            )
    failures = sum(p.status != "ok" for p in predictions)

    gpu = torch.cuda.get_device_name(0) if device.type == "cuda" else "-"
    print(
        f"\nmachine: {platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} cores "
        f"usable, GPU {gpu}; torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    unique = min(len(paths), UNIQUE_CLIPS)
    print(
        f"payload: {len(paths)} x 30-s 44.1 kHz stereo mp3 ({unique} distinct); ensemble: {described}, "
        f"{params / 1e6:.2f} M parameters in all; device {device}; "
        f"{args.workers} decode workers; batch {args.batch_size}; {failures} failures"
    )
    print("| measure | value |\n|---|---|")
    if decode_rate:
        print(f"| decode only | {decode_rate:.1f} clips/s |")
    print(f"| end to end (decode + log-mel + ensemble + CSV) | {end_to_end_rate:.1f} clips/s |")
    if decode_rate:
        print(f"| end-to-end / decode-only | {end_to_end_rate / decode_rate:.2f} |")
    print(f"| peak RSS, process tree (end to end) | {memory.peak / 2**30:.2f} GiB |")
    if batch_bytes is not None:
        print(
            f"| peak tensor memory, one batch of {args.batch_size} 30-s clips, all members (torch MemTracker; "
            f"a GPU adds its CUDA context) | {batch_bytes / 2**20:.0f} MiB |"
        )
    if gpu_peak is not None:
        print(f"| GPU memory allocated, peak (end to end) | {gpu_peak / 2**30:.2f} GiB |")
    if warning:
        print(warning)
    if args.json:
        figures = {
            "machine": platform.machine(),
            "cores": len(os.sched_getaffinity(0)),
            "gpu": gpu,
            "torch": torch.__version__,
            "device": str(device),
            "clips": len(paths),
            "ensemble": described,
            "parameters": params,
            "workers": args.workers,
            "batch_size": args.batch_size,
            "failures": failures,
            "decode_clips_per_s": decode_rate,
            "end_to_end_clips_per_s": end_to_end_rate,
            "end_to_end_over_decode": end_to_end_rate / decode_rate if decode_rate else None,
            "peak_rss_gib": memory.peak / 2**30,
            "batch_tensor_mib": batch_bytes / 2**20 if batch_bytes is not None else None,
            "gpu_peak_gib": gpu_peak / 2**30 if gpu_peak is not None else None,
        }
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
