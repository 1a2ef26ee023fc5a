#!/usr/bin/env python3
"""Genre probabilities for every mp3 in a folder, as the WWW2018 grader's CSV.

    python predict.py --payload DIR [--out FILE] [--weights DIR] [--device auto|cpu|cuda]

Reads as the pipeline it runs: find the mp3s, load the ensemble, pick a device, decode in worker
processes while the ensemble scores batches, write the CSV atomically, summarise. Every mp3 gets
a row: a file without usable audio gets the training class prior and is listed in the summary.
Exit code 0 whenever a valid CSV was written; 1 or 2 with a one-line reason otherwise; 130 after
^C, with what is journaled for --resume.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from model.cli import ArgumentParser, die, non_negative_int, positive_int
from model.submission import file_id, find_mp3s

HERE = Path(__file__).resolve().parent
GRADER_CORES = 5  # the grader machine has 5 cores: more workers only thrash


def parse_args(argv: list[str] | None) -> object:
    parser = ArgumentParser(prog="predict.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--payload", default=os.environ.get("TEST_DIRECTORY") or "/crowdai-payload",
                        help="folder of mp3 files (default: $TEST_DIRECTORY or /crowdai-payload)")
    parser.add_argument("--out", default=os.environ.get("OUTPUT_PATH") or "/tmp/output.csv",
                        help="CSV to write (default: $OUTPUT_PATH or /tmp/output.csv)")
    parser.add_argument("--weights", default=str(HERE / "weights"),
                        help="ensemble folder holding manifest.json (default: weights/ beside this script)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="auto: CUDA if a kernel really runs there, else CPU (default: auto)")
    parser.add_argument("--workers", type=non_negative_int, default=None,
                        help=f"decoding processes (default: usable cores, at most {GRADER_CORES}; 0: decode here)")
    parser.add_argument("--batch-size", type=positive_int, default=16, help="clips per forward pass (default: 16)")
    parser.add_argument("--report", default=None,
                        help="also write a JSON list with each file's status, duration, decoder and reason")
    parser.add_argument("--resume", action="store_true",
                        help="reuse the predictions an interrupted run journaled beside --out")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Imported here, not at the top: each decode worker re-imports this script when it starts
    # (multiprocessing's spawn) and should not pay for torch.
    import numpy as np
    import torch
    from tqdm import tqdm

    from model.atomic import write_atomic
    from model.device import DeviceError, choose_device, usable_cores
    from model.ensemble import ManifestError, load_ensemble
    from model.inference import Prediction, classify_files
    from model.journal import Journal, file_signature, journal_path, read_journal, weights_signature
    from model.submission import write_submission

    prog = "predict.py"
    payload = Path(args.payload)
    if not payload.is_dir():
        die(prog, f"payload folder {payload} does not exist or is not a folder", 2)
    try:
        paths = find_mp3s(payload)
    except OSError as error:
        die(prog, f"cannot list payload folder {payload}: {error.strerror}")
    paths = drop_duplicate_ids(paths)
    for target, flag in ((Path(args.out), "--out"), *([(Path(args.report), "--report")] if args.report else [])):
        if target.is_dir():
            die(prog, f"{flag} {target} is a folder: give a file name", 2)
    cores = usable_cores()
    workers = args.workers if args.workers is not None else min(GRADER_CORES, cores)
    torch.set_num_threads(cores)  # torch's default counts a quota-limited container's host cores

    try:
        device, warning = choose_device(args.device)
        ensemble = load_ensemble(args.weights, device)
    except (ManifestError, DeviceError) as error:
        die(prog, str(error))
    if warning:
        print(warning, file=sys.stderr)
    manifest = ensemble.manifest
    if manifest.prior_only:
        print("!" * 78 + "\n!! PRIOR-ONLY MODEL: these weights do not listen to the audio; every row is the\n"
              "!! FMA-medium class prior. Train an ensemble with train.py to recognise genre.\n" + "!" * 78,
              file=sys.stderr)
    elif manifest.zero_shot_only:
        print("note: zero-shot model: pretrained music taggers (musicnn) read through a fixed tag -> genre\n"
              "      table and the FMA-medium prior, not fitted on FMA. train.py fits a better one.",
              file=sys.stderr)
    members = ", ".join(m.name for m in manifest.members)
    print(f"{len(paths)} mp3 files in {payload}; ensemble: {members}; device: {device}; "
          f"{workers} decode workers", file=sys.stderr)

    # Finished predictions are journaled beside the output, so an interrupted run can be resumed.
    journal_file, weights = journal_path(args.out), weights_signature(args.weights)
    reusable = read_journal(journal_file, weights) if args.resume else {}
    if journal_file.exists() and not args.resume:
        print(f"note: {journal_file} is left from an interrupted run; pass --resume to reuse it. "
              "Starting afresh.", file=sys.stderr)
    predictions, kept = {}, []
    for path in paths:
        entry = reusable.get(tuple(file_signature(path)))
        if entry and not is_transient(entry):
            predictions[path] = Prediction(path, np.array(entry["probabilities"]), entry["status"],
                                           entry["seconds"], entry["decoder"], entry["reason"])
            kept.append(entry)
    if args.resume:
        print(f"resuming: {len(predictions)} of {len(paths)} files already predicted", file=sys.stderr)
    try:
        journal = Journal(journal_file, weights, kept)
    except OSError as error:
        die(prog, f"cannot write beside --out {args.out}: {error.strerror or error}")
    start = time.perf_counter()
    progress = tqdm(total=len(paths), initial=len(predictions), unit="clip", file=sys.stderr, mininterval=1.0,
                    dynamic_ncols=True)
    interrupted = False
    try:
        todo = [path for path in paths if path not in predictions]
        for prediction in classify_files(ensemble, todo, workers, args.batch_size):
            predictions[prediction.path] = prediction
            journal.add(prediction.path, prediction.probabilities, report_entry(prediction))
            progress.update()
    except KeyboardInterrupt:  # ^C: the decode workers are already stopped (audio.decode_many)
        interrupted = True
    finally:
        progress.close()
        journal.close()
    if interrupted:
        die(prog, f"interrupted: {len(predictions)} of {len(paths)} files are predicted and journaled in "
                  f"{journal_file}; run the same command with --resume to go on", 130)
    elapsed = time.perf_counter() - start

    ordered = [predictions[path] for path in paths]
    probabilities = np.stack([p.probabilities for p in ordered]) if ordered else np.zeros((0, 16))
    try:
        write_submission(args.out, [file_id(p.path) for p in ordered], probabilities)
    except (OSError, ValueError) as error:  # ValueError: the CSV would be invalid
        die(prog, f"cannot write output: {error}")
    journal_file.unlink(missing_ok=True)  # the CSV is complete: nothing left to resume
    if args.report:
        try:
            write_atomic(args.report, json.dumps([report_entry(p) for p in ordered], indent=1).encode())
        except OSError as error:  # the CSV is written: say so, but do not fail the run over the report
            print(f"warning: cannot write --report {args.report}: {error}", file=sys.stderr)
    summarise(ordered, len(todo), device, elapsed, args.out)
    return 0


def drop_duplicate_ids(paths: list[Path]) -> list[Path]:
    """Keep the first of files that would share a `file_id` (`a.mp3` and `a.MP3`): the CSV can
    hold only one row per id."""
    seen: dict[str, Path] = {}
    for path in paths:
        if file_id(path) in seen:
            first = seen[file_id(path)].name
            print(f"note: {path.name} has the same file_id as {first}: only {first} gets a row", file=sys.stderr)
        else:
            seen[file_id(path)] = path
    return list(seen.values())


# Fallbacks that may not recur (a file briefly unreadable, a worker killed for memory or slowed
# by an overloaded machine): a resumed run predicts these files again rather than reusing the prior.
TRANSIENT_REASONS = ("cannot read the file", "decoder crashed", "decoder timed out", "the model failed")


def is_transient(entry: dict) -> bool:
    return entry.get("status") == "fallback" and any(r in (entry.get("reason") or "") for r in TRANSIENT_REASONS)


def report_entry(prediction) -> dict:
    return {
        "file_id": file_id(prediction.path),
        "status": prediction.status,
        "seconds": round(prediction.seconds, 3),
        "decoder": prediction.decoder,
        "reason": prediction.reason,
    }


def summarise(predictions: list, predicted_now: int, device, elapsed: float, out: str) -> None:
    fallbacks = [p for p in predictions if p.status == "fallback"]
    rate = predicted_now / elapsed if elapsed > 0 else 0.0
    lines = [f"wrote {out}: {len(predictions)} rows, {len(fallbacks)} fallback(s) to the class prior; "
             f"device {device}; {elapsed:.1f} s, {rate:.1f} clips/s"]
    shown = 20
    lines += [f"  fallback {p.path.name}: {p.reason}" for p in fallbacks[:shown]]
    if len(fallbacks) > shown:
        lines.append(f"  ... and {len(fallbacks) - shown} more (see --report)")
    print("\n".join(lines), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
