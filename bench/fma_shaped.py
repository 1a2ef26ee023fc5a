#!/usr/bin/env python3
"""The whole training pipeline on generated audio of FMA-medium's shape, at any size.

    python bench/fma_shaped.py                                    # default size, CPU-friendly training
    python bench/fma_shaped.py --tracks 400 --seconds 10          # a quick look
    python bench/fma_shaped.py --tracks 25000 -- --members 3 --channels 32,64,128,256 --epochs 40   # a GPU

Why: the log-loss machinery (class imbalance, sqrt-balanced sampling and the output-bias
correction, temperature fitting, early stopping, artist-filtered validation) only shows what it
does on data shaped like FMA, which is not reachable here. So this writes an FMA layout
(`fma_metadata/tracks.csv` with FMA's two-row header, `fma_medium/XXX/XXXXXX.mp3`) of synthetic
music and runs `train.py --metadata ... --audio ...` on it as a user would:
  - the 16 genres with FMA-medium's class counts scaled to --tracks (a floor keeps every genre
    in all three splits);
  - tracks grouped into artists (a few to tens of tracks) that share timbre, tempo, register and
    drum pattern; every artist wholly in one split, ~80/10/10 per genre, as FMA's split is;
  - genres as overlapping regions of one parameter space (brightness, harmonicity, tempo, beat,
    note rate, register, distortion, bandwidth, sustain, voice), neighbours close (Rock/Pop/Folk/
    Country, Electronic/Experimental/Hip-Hop, Classical/Instrumental/Old-Time ...), artists spread
    around their genre's centre, some artists between two genres, and label noise (tracks that
    sound like a neighbouring genre), since FMA's genre_top is noisy;
  - three faulty files (an empty mp3, one truncated to a few frames, a silent one) that training
    must skip and report.
The dataset lives in --work (default /tmp/fma-shaped-<tracks>x<seconds>s-seed<seed>-v<version>),
reused by later runs, with train.py's feature cache; each run goes to <work>/runs/<--run>/ (its
checkpoints, ensemble and record), so several runs on one dataset can be compared and combined
with tools/runs.py.
Arguments after `--` go to train.py and override the CPU-friendly defaults printed at the start.
Prints the dataset's shape, the test-split scores and the wall and CPU times of each step (CPU
time, unlike wall time, does not grow when other jobs share the machine) as markdown tables, and
writes everything to <work>/bench-<run>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fma_music import (  # noqa: E402  (bench/, beside this script)
    GENERATOR_VERSION,
    Shape,
    generate_audio,
    plan_dataset,
    prepare_work,
    write_tracks_csv,
)

from model.cli import ArgumentParser, positive_int  # noqa: E402
from model.device import usable_cores  # noqa: E402
from model.fma import SPLITS  # noqa: E402
from model.genres import FMA_MEDIUM_COUNTS, GENRES  # noqa: E402

# Small enough for a 2-core CPU at the default size; arguments after `--` override them.
CPU_TRAINING = [
    "--members",
    "3",
    "--channels",
    "16,32,64",
    "--n-mels",
    "64",
    "--epochs",
    "12",
    "--patience",
    "4",
]

# ======================================================================================
# Training: train.py as a subprocess, its output streamed and timed
# ======================================================================================


def run_train(command: list[str], log: Path) -> dict:
    """Run train.py, echoing its output to stderr and `log`; returns the wall times: total, and up
    to the line that starts training (start-up + feature cache), plus the cache's own build time
    and the tracks it skipped, read from what train.py prints."""
    start = time.perf_counter()
    times: dict = {"cache_build_s": 0.0, "skipped": {}}
    buffer = ""
    with (
        open(log, "wb") as out,
        subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as process,
    ):
        for chunk in iter(lambda: process.stdout.read1(65536), b""):
            sys.stderr.buffer.write(chunk)
            sys.stderr.flush()
            out.write(chunk)
            buffer += chunk.decode(errors="replace")
            *lines, buffer = re.split(r"[\r\n]", buffer)
            for line in lines:
                if line.startswith("training on ") and "until_training_s" not in times:
                    times["until_training_s"] = time.perf_counter() - start
                if m := re.match(r"feature cache: \d+ tracks in (\d+) s", line):
                    times["cache_build_s"] = float(m.group(1))
                if m := re.match(r"\s+skipped (\S+): (.*)", line):
                    times["skipped"][m.group(1)] = m.group(2)
    times["total_s"] = time.perf_counter() - start
    times["returncode"] = process.returncode
    return times


def children_cpu_s() -> float:
    """CPU seconds (user + system) of every finished child process so far: the generation pool's
    workers, train.py and its cache workers. Unlike wall time, it does not grow when other jobs
    share the machine."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# ======================================================================================
# Reporting
# ======================================================================================


def dataset_table(plan: pd.DataFrame) -> tuple[str, dict]:
    """Tracks per genre per split and artists per genre (music tracks only), markdown + JSON."""
    music = plan[plan["kind"] == "music"]
    lines = [
        "| genre | FMA-medium | training | validation | test | total | artists | mislabelled |",
        "|---|---|---|---|---|---|---|---|",
    ]
    shape = {}
    for genre in GENRES + ("all",):
        rows = music if genre == "all" else music[music["genre"] == genre]
        per_split = {s: int((rows["split"] == s).sum()) for s in SPLITS}
        shape[genre] = {
            **per_split,
            "total": len(rows),
            "artists": int(rows["artist"].nunique()),
            "mislabelled": int(rows["mislabelled"].sum()),
        }
        fma = FMA_MEDIUM_COUNTS.get(genre, sum(FMA_MEDIUM_COUNTS.values()))
        lines.append(f"| {genre} | {fma:,} | " + " | ".join(f"{v:,}" for v in shape[genre].values()) + " |")
    return "\n".join(lines), shape


def best_epoch(history: list[dict]) -> dict:
    """Epochs a member ran, the one validation picked, and its wall time (training + validation)."""
    losses = [h["valid_loss"] for h in history]
    best = int(np.argmin(losses))
    return {
        "epochs_run": len(history),
        "best_epoch": history[best]["epoch"],
        "best_valid_loss": losses[best],
        "train_s": sum(h.get("seconds", 0.0) for h in history),
    }


def results_table(report: dict) -> tuple[str, list[dict]]:
    """Test scores per member and for the ensemble before/after temperature, with each member's
    epochs; markdown + JSON rows."""
    metrics = ("log_loss", "macro_f1", "accuracy", "ece")
    rows = [
        {"model": name, **{k: r[k] for k in metrics}, **best_epoch(report["history"][name])}
        for name, r in report["members"].items()
    ]
    for label, key in (
        ("ensemble, T=1", "ensemble_before_temperature"),
        (f"ensemble, T={report['temperature']:.2f}", "ensemble"),
    ):
        rows.append({"model": label, **{k: report[key][k] for k in metrics}})
    rows.append({"model": "class prior", "log_loss": report["prior_log_loss"]})
    formats = {
        "log_loss": "{:.3f}",
        "macro_f1": "{:.3f}",
        "accuracy": "{:.3f}",
        "ece": "{:.3f}",
        "epochs_run": "{}",
        "best_epoch": "{}",
        "best_valid_loss": "{:.3f}",
        "train_s": "{:.0f} s",
    }
    lines = [
        "| model | log loss | macro F1 | accuracy | ECE | epochs run | best epoch | best valid loss | time |",
        "|---" * 9 + "|",
    ]
    for row in rows:
        cells = (formats[k].format(row[k]) if k in row else "—" for k in formats)
        lines.append(f"| {row['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines), rows


def verdict(report: dict) -> list[str]:
    """Is the benchmark informative? Every member should beat the prior, and the ensemble land
    clearly between trivial (log loss ~0) and hopeless (the prior's)."""
    prior, ensemble = report["prior_log_loss"], report["ensemble"]["log_loss"]
    notes = [
        f"member {name} does not beat the class prior ({r['log_loss']:.3f} >= {prior:.3f})"
        for name, r in report["members"].items()
        if r["log_loss"] >= prior
    ]
    if ensemble < 0.25:
        notes.append(f"too easy: ensemble log loss {ensemble:.3f} (make the generator harder)")
    elif ensemble > 0.85 * prior:
        notes.append(f"close to hopeless: ensemble log loss {ensemble:.3f} vs the prior's {prior:.3f}")
    return notes


# ======================================================================================


def parse_args(argv: list[str]):
    ours, extra = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    parser = ArgumentParser(
        prog="fma_shaped.py",
        usage="%(prog)s [options] [-- train.py options]",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n")[1]
        + "\n\ntrain.py options after -- override the CPU defaults: "
        + " ".join(CPU_TRAINING),
    )
    parser.add_argument(
        "--tracks", type=positive_int, default=1200, help="music tracks to generate (default 1200)"
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="clip length (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    parser.add_argument(
        "--work",
        type=Path,
        default=None,
        help="dataset + feature cache + outputs "
        "(default /tmp/fma-shaped-<tracks>x<seconds>s-seed<seed>-v<version>)",
    )
    parser.add_argument(
        "--jobs",
        type=positive_int,
        default=usable_cores(),
        help="generating processes (default: usable cores)",
    )
    parser.add_argument("--generate-only", action="store_true", help="write the dataset, do not train")
    parser.add_argument(
        "--run", default="run", help="this training run's name: <work>/runs/<run>/ (default run)"
    )
    args = parser.parse_args(ours)
    if args.tracks < len(GENRES) * Shape.min_tracks:
        parser.error(
            f"--tracks must be at least {len(GENRES) * Shape.min_tracks} "
            f"({Shape.min_tracks} per genre, so that every genre reaches all three splits)"
        )
    if args.seconds < 2:
        parser.error("--seconds must be at least 2 (train.py skips clips under 1 s)")
    args.train_args = CPU_TRAINING + extra  # later occurrences win in train.py's argparse
    return args


def make_dataset(work: Path, shape: Shape, jobs: int) -> dict:
    """Plan the dataset, write tracks.csv and the mp3s still missing, print its shape; returns
    what the JSON keeps of it."""
    start, cpu_start = time.perf_counter(), children_cpu_s()
    plan, floored = plan_dataset(shape)
    write_tracks_csv(plan, work / "fma_metadata", shape)
    written = generate_audio(plan, work / "fma_medium", shape, jobs)
    seconds, cpu_seconds = time.perf_counter() - start, children_cpu_s() - cpu_start
    table, counts = dataset_table(plan)
    faulty = plan[plan["kind"] != "music"]
    print(
        f"\ndataset: {shape.tracks} music tracks of {shape.seconds:g} s at {shape.rate} Hz (mono mp3) by "
        f"{counts['all']['artists']} artists, + {len(faulty)} faulty files; generated {written} in "
        f"{seconds:.0f} s ({len(plan) - written} reused)"
    )
    print(
        f"FMA-medium's class counts scaled to {shape.tracks}; floored at {shape.min_tracks} tracks "
        f"(>= {shape.min_artists} artists, so every genre reaches all three splits): "
        f"{', '.join(floored) or 'none'}. Artist spread {shape.artist_spread}, {shape.crossover:.0%} of artists "
        f"between two genres, {shape.label_noise:.0%} of tracks sound like a neighbouring genre (label noise)."
    )
    print(table)
    print(
        "faulty (training split, must be skipped): "
        + ", ".join(f"{row.track_id} ({row.kind})" for row in faulty.itertuples())
    )
    return {
        "floored": floored,
        "dataset": counts,
        "generated": written,
        "generation_s": seconds,
        "generation_cpu_s": cpu_seconds,
        "generation_jobs": jobs,
        "faulty": {str(row.track_id): row.kind for row in faulty.itertuples()},
    }


def train(work: Path, run: str, train_args: list[str]) -> tuple[dict, dict | None]:
    """train.py on the work folder's dataset (its feature cache kept there for later runs) into
    <work>/runs/<run>/; returns its timings and its report.json (None if it failed)."""
    run_dir = work / "runs" / run
    if run_dir.exists() and "--resume" not in train_args:
        shutil.rmtree(run_dir)  # this benchmark's own run of that name, from an earlier time
    command = [
        sys.executable,
        str(REPO / "train.py"),
        "--metadata",
        str(work / "fma_metadata"),
        "--audio",
        str(work / "fma_medium"),
        "--run-dir",
        str(run_dir),
        "--cache",
        str(work / "cache"),
        *train_args,
    ]
    print(
        f"\ntraining: train.py {' '.join(train_args)}  (CPU defaults: {' '.join(CPU_TRAINING)})", flush=True
    )
    cpu_start = children_cpu_s()
    log = work / "runs" / f"{run}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    times = run_train(command, log)
    times["total_cpu_s"] = children_cpu_s() - cpu_start
    if times["returncode"] != 0:
        print(
            f"fma_shaped.py: error: train.py exited with {times['returncode']} (log: {log})", file=sys.stderr
        )
        return times, None
    return times, json.loads((run_dir / "report.json").read_text())


def print_results(report: dict, result: dict) -> None:
    """The test-split table, the wall and CPU times, the faulty files, the verdict."""
    times = result["train"]
    print(
        f"\n{report['split']} split, {report['ensemble']['clips']} clips; temperature {report['temperature']:.3f}"
    )
    print(results_table(report)[0])
    print("\n| step | wall time | CPU time |\n|---|---|---|")
    print(
        f"| generation ({result['generated']} tracks written, {result['generation_jobs']} processes) | "
        f"{result['generation_s']:.0f} s | {result['generation_cpu_s']:.0f} s |"
    )
    print(
        f"| train.py start-up + feature cache (cache build {times['cache_build_s']:.0f} s) | "
        f"{times.get('until_training_s', float('nan')):.0f} s | — |"
    )
    print(f"| train.py total | {times['total_s']:.0f} s | {times['total_cpu_s']:.0f} s |")
    print(f"| end to end | {result['end_to_end_s']:.0f} s | {result['end_to_end_cpu_s']:.0f} s |")
    print(
        f"(load average {result['load_average_start']:.1f} at the start, {result['load_average_end']:.1f} at "
        f"the end, on {usable_cores()} cores: wall times stretch when other jobs share the machine, CPU times "
        "do not)"
    )
    skipped = ", ".join(f"{key} ({reason})" for key, reason in times["skipped"].items()) or "none"
    missed = result["faulty_not_skipped"]
    print(f"\nskipped by training: {skipped}" + (f"; NOT skipped: {', '.join(missed)}" if missed else ""))
    for note in result["verdict"] or [
        "informative: every member beats the prior, the ensemble is neither trivial nor hopeless"
    ]:
        print(f"verdict: {note}")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    shape = Shape(tracks=args.tracks, seconds=args.seconds, seed=args.seed)
    work = args.work or Path(
        f"/tmp/fma-shaped-{shape.tracks}x{shape.seconds:g}s-seed{shape.seed}-v{GENERATOR_VERSION}"
    )
    prepare_work(work, shape)
    result: dict = {"shape": asdict(shape), "load_average_start": os.getloadavg()[0]}
    print(
        f"machine: {platform.machine()}, {usable_cores()} usable cores, load average "
        f"{result['load_average_start']:.1f}; work folder {work}",
        file=sys.stderr,
    )
    start = time.perf_counter()
    result |= make_dataset(work, shape, args.jobs)
    if not args.generate_only:
        times, report = train(work, args.run, args.train_args)
        result |= {
            "train_args": args.train_args,
            "train": times,
            "load_average_end": os.getloadavg()[0],
            "end_to_end_s": time.perf_counter() - start,
            "end_to_end_cpu_s": children_cpu_s(),
        }
        if report is None:
            (work / f"bench-{args.run}.json").write_text(json.dumps(result, indent=1) + "\n")
            return 1
        result |= {
            "results": results_table(report)[1],
            "temperature": report["temperature"],
            "prior_log_loss": report["prior_log_loss"],
            "ensemble_validation_log_loss": report.get("validation_log_loss"),
            "verdict": verdict(report),
            "faulty_not_skipped": sorted(set(result["faulty"]) - set(times["skipped"])),
        }
        print_results(report, result)
    (work / f"bench-{args.run}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"\nwrote {work / f'bench-{args.run}.json'}"
        + ("" if args.generate_only else f" (train.py's log: {work / 'runs' / f'{args.run}.log'})"),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
