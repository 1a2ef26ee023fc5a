#!/usr/bin/env python3
"""A music library's two extremes: hour-long files, and folders of 100,000 entries.

    python bench/library.py long [--hours 1.5,3,10] [--segment-hours 1.5,3]  # peak RSS and time per long file
    python bench/library.py folders [--sizes 1000,10000,100000]  # RSS and files/s per folder size

`long`: one mp3 (44.1 kHz stereo, 128 kbps CBR: 60 s of generated music repeated, frame by
frame) per length, each predicted by `predict.py` alone, with the shipped default (zero-shot
musicnn) and with 3 random CNNs of the shape train.py ships; peak RSS is the largest single
process of the run, decode workers included (the kernel's figure for the run's process tree).
Files of `--segment-hours` are predicted again with `--segments` (the whole file read again in
blocks and scored segment by segment), with the same two ensembles.

`folders`: N entries in one folder, links to 8 real 3-s mp3s, `predict.py --recursive` with a
prior-only ensemble (no network: what is measured is listing, decoding workers, the journal, the
CSV and resume, not the networks): the full run, then a run stopped by SIGTERM half way and its
--resume. Flat memory and linear time are the targets.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from common import shipped_size_ensemble  # noqa: E402

from model.cli import counted  # noqa: E402

# Runs predict.py and prints its wall time and the largest RSS of its process tree (Linux counts
# every waited-for descendant in RUSAGE_CHILDREN's maxrss).
MEASURE = (
    "import resource, subprocess, sys, time\n"
    "start = time.perf_counter()\n"
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode\n"
    "print(code, time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)\n"
)


def measured(command: list[str]) -> tuple[float, int]:
    """(seconds, peak RSS bytes of the largest process) of `command`, which must succeed."""
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, check=True
    )
    code, seconds, peak = result.stdout.split()
    if code != "0":
        raise SystemExit(f"failed: {' '.join(command)}")
    return float(seconds), int(peak)


def music_minute(path: Path) -> bytes:
    """60 s of 44.1 kHz stereo 128 kbps CBR mp3: chords over a beat."""
    import soundfile as sf

    rate, rng = 44100, np.random.default_rng(0)
    t = np.arange(60 * rate) / rate
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220, 277, 330)) / 6
    beat = np.exp(-((t % 0.5) * 30)) * rng.standard_normal(len(t)) * 0.3
    audio = np.stack([chord + beat, chord + 0.9 * beat], axis=1).astype(np.float32)
    sf.write(path, audio, rate, format="MP3", bitrate_mode="CONSTANT", compression_level=0.5)
    return path.read_bytes()


def long_file(folder: Path, hours: float, minute: bytes) -> Path:
    """The minute's frames repeated: a valid CBR stream whose header-estimated length is right."""
    path = folder / f"{hours:g}h" / "long.mp3"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as file:
            for _ in range(round(hours * 60)):
                file.write(minute)
    return path


def predict_command(payload: Path, weights: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        str(REPO / "predict.py"),
        "--payload",
        str(payload),
        "--weights",
        str(weights),
    ] + [
        "--out",
        str(out),
        *extra,
    ]


def bench_long(args, work: Path) -> dict:
    minute = music_minute(work / "minute.mp3")
    ensembles = {"default (zero-shot musicnn)": REPO / "weights"}
    ensembles["3 CNNs, shipped shape"], _ = shipped_size_ensemble(work / "cnn3", 3)
    rows = []
    for hours in args.hours:
        path = long_file(work, hours, minute)
        for name, weights in ensembles.items():
            seconds, peak = measured(predict_command(path.parent, weights, work / "out.csv"))
            rows.append({"hours": hours, "ensemble": name, "seconds": seconds, "peak_rss": peak})
            print(f"{hours:g} h, {name}: {seconds:.1f} s, peak RSS {peak / 2**30:.2f} GiB", file=sys.stderr)
    for hours in args.segment_hours:
        path = long_file(work, hours, minute)
        for name, weights in ensembles.items():
            segments = work / "segments.csv"
            command = predict_command(path.parent, weights, work / "out.csv", "--segments", str(segments))
            seconds, peak = measured(command)
            count = _lines(segments) - 1
            rows.append(
                {"hours": hours, "ensemble": name, "segments": count, "seconds": seconds, "peak_rss": peak}
            )
            print(
                f"{hours:g} h with --segments ({count} rows), {name}: {seconds:.1f} s, "
                f"peak RSS {peak / 2**30:.2f} GiB",
                file=sys.stderr,
            )
    for hours in {*args.hours, *args.segment_hours}:
        shutil.rmtree(work / f"{hours:g}h")  # 10 hours is 0.6 GB
    return {"long_files": rows}


def prior_only(folder: Path) -> Path:
    from model.genres import GENRES, fma_medium_prior
    from model.manifest import Manifest, MemberSpec
    from model.saving import save_ensemble

    manifest = Manifest(GENRES, 22050, 1.0, tuple(fma_medium_prior()), (MemberSpec(name="prior"),), "bench")
    save_ensemble(folder, manifest, {})
    return folder


def bench_folders(args, work: Path) -> dict:
    import soundfile as sf

    sources = work / "sources"
    sources.mkdir(exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(8):
        tone = np.sin(2 * np.pi * rng.uniform(100, 900) * np.arange(3 * 22050) / 22050) * 0.3
        sf.write(sources / f"{i}.mp3", tone.astype(np.float32), 22050, format="MP3")
    weights = prior_only(work / "prior")
    rows = []
    for size in args.sizes:
        folder = work / f"folder-{size}"
        folder.mkdir(exist_ok=True)
        for i in range(size):  # one folder level per thousand, as albums nest
            link = folder / f"{i // 1000:03d}" / f"{i:06d}.mp3"
            if not link.exists():
                link.parent.mkdir(exist_ok=True)
                link.symlink_to(sources / f"{i % 8}.mp3")
        out = work / f"out-{size}.csv"
        command = predict_command(folder, weights, out, "--recursive")
        seconds, peak = measured(command)
        assert len(out.read_text().splitlines()) == size + 1
        stopped = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        journal = out.with_name(out.name + ".partial.jsonl")
        while stopped.poll() is None:
            if journal.exists() and journal.stat().st_size > 0 and _lines(journal) >= size // 2:
                stopped.send_signal(signal.SIGTERM)
                break
            time.sleep(0.2)
        stopped.wait()
        kept = _lines(journal)
        resume_seconds, resume_peak = measured([*command, "--resume"])
        rows.append(
            {
                "files": size,
                "seconds": seconds,
                "files_per_s": size / seconds,
                "peak_rss": peak,
                "resumed_from": kept,
                "resume_seconds": resume_seconds,
                "resume_peak_rss": resume_peak,
            }
        )
        print(
            f"{counted(size, 'file')}: {seconds:.1f} s ({size / seconds:.0f} files/s), peak RSS "
            f"{peak / 2**20:.0f} MiB; resumed with {kept} journaled: {resume_seconds:.1f} s, "
            f"{resume_peak / 2**20:.0f} MiB",
            file=sys.stderr,
        )
        shutil.rmtree(folder)
    return {"folders": rows}


def _lines(path: Path) -> int:
    with open(path, "rb") as file:
        return sum(1 for _ in file)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["long", "folders"])
    parser.add_argument("--hours", type=lambda s: [float(x) for x in s.split(",") if x], default=[1.5, 3, 10])
    parser.add_argument(
        "--segment-hours", type=lambda s: [float(x) for x in s.split(",") if x], default=[1.5, 3]
    )
    parser.add_argument(
        "--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1000, 10000, 100000]
    )
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        figures = bench_long(args, work) if args.what == "long" else bench_folders(args, work)
    figures["machine"] = {"cores": os.cpu_count(), "python": platform.python_version()}
    print(json.dumps(figures, indent=1))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
