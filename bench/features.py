#!/usr/bin/env python3
"""518-feature extraction throughput: this project's pipeline vs the starter kit's, side by side.

    python bench/features.py [--clips 40] [--workers N]

Same generated 30-s 44.1 kHz stereo mp3s (bench/common.py), same feature code (model/handcrafted.py):
  ours:         the project's decode (soundfile, PyAV fallback, soxr to 22,050 Hz) in N worker processes;
  starter kit:  librosa.load(path, sr=None, mono=True) at the native rate, one process, as its notebook.
Prints steady-state clips/s and clips/s per core for both.
"""

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from common import make_payload  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--payload", type=Path, default=Path("/tmp/fma-bench-payload"))
    args = parser.parse_args()

    import librosa

    from model.audio import decode_many
    from model.baseline import features_or_reason
    from model.handcrafted import SAMPLE_RATE, fma_features

    paths = make_payload(args.payload, args.clips)
    # Steady state for both: the clock starts once each process has finished one clip, so librosa's
    # first-call compilation (~4 s per process) is left out; at FMA scale it is negligible.
    ours, done = [], []
    for _, result in decode_many(paths, SAMPLE_RATE, args.workers, prefetch=2, transform=features_or_reason):
        ours.append(result)
        done.append(time.perf_counter())
    warm = max(args.workers, 1)
    ours_rate = (len(paths) - warm) / (done[-1] - done[warm - 1])

    done = []
    for path in paths:
        audio, rate = librosa.load(path, sr=None, mono=True)
        fma_features(audio, rate)
        done.append(time.perf_counter())
    kit_rate = (len(paths) - 1) / (done[-1] - done[0])

    failures = sum(not hasattr(r, "shape") for r in ours)
    print(
        f"\n{len(paths)} x 30-s 44.1 kHz stereo mp3, {len(os.sched_getaffinity(0))} cores, {failures} failures"
    )
    print("| pipeline | clips/s | clips/s per core |\n|---|---|---|")
    print(
        f"| ours: one decode path, 22,050 Hz, {args.workers} workers | {ours_rate:.2f} | "
        f"{ours_rate / max(args.workers, 1):.2f} |"
    )
    print(f"| starter kit: librosa.load native rate, 1 process | {kit_rate:.2f} | {kit_rate:.2f} |")
    print(
        f"| ratio ours / kit | {ours_rate / kit_rate:.1f} x | {ours_rate / max(args.workers, 1) / kit_rate:.1f} x |"
    )


if __name__ == "__main__":
    main()
