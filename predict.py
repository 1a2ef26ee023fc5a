#!/usr/bin/env python3
"""Genre probabilities for every mp3 in a folder, as the WWW2018 grader's CSV; or the top genres of a few files.

    python predict.py --payload DIR [--out FILE] [--weights DIR] [--device auto|cpu|cuda]
    python predict.py --payload LIBRARY --recursive      # every audio file at any depth, ids Artist/Album/track
    python predict.py FILE [FILE ...] [--top-k 3]        # a readable table of each file's top genres
    ... --segments SEGMENTS.csv                          # also genres over time (file_id, start, end, 16 genres)

Reads as the pipeline it runs: find the mp3s, load the model (model.GenreModel), decode in worker
processes while the ensemble scores batches, write the CSV atomically, summarise. Every mp3 gets
a row: a file without usable audio gets the training class prior and is listed in the summary.
Exit code 0 whenever a valid CSV was written; 1 or 2 with a one-line reason otherwise; 130 after
^C, with what is journaled for --resume.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import time
import warnings
from pathlib import Path

from model.cli import (
    ArgumentParser,
    counted,
    die,
    extensions_arg,
    non_negative_int,
    positive_float,
    positive_int,
    shard_arg,
)
from model.library import AUDIO_EXTENSIONS, Inputs, find_inputs
from model.stopping import OutOfSpace, catch_sigterm, how_stopped
from model.submission import file_id

PROG = "predict.py"
HERE = Path(__file__).resolve().parent
DEFAULT_MAX_WORKERS = 5  # model.genre_model's rule, restated so --help needs no torch import


def parse_args(argv: list[str] | None) -> object:
    parser = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "files",
        nargs="*",
        metavar="FILE",
        help="audio files to label (instead of --payload): prints each one's top genres",
    )
    parser.add_argument(
        "--payload", default=None, help="folder of mp3 files (default: $TEST_DIRECTORY or /crowdai-payload)"
    )
    parser.add_argument(
        "--recursive",
        action="store_true",
        help="every audio file under --payload at any depth (a music library), each file_id its path "
        "relative to the folder without the extension (default: the grader's rule, the mp3s directly "
        "in the folder, file_id the name)",
    )
    parser.add_argument(
        "--extensions",
        type=extensions_arg,
        default=None,
        metavar="LIST",
        help=f"audio file extensions to take, comma-separated (default: mp3; with --recursive: "
        f"{','.join(AUDIO_EXTENSIONS)})",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="CSV to write (default: $OUTPUT_PATH or /tmp/output.csv; with FILEs: none)",
    )
    parser.add_argument(
        "--weights",
        default=str(HERE / "weights"),
        help="ensemble folder holding manifest.json (default: weights/ beside this script)",
    )
    parser.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda"],
        help="auto: CUDA if a kernel really runs there, else CPU (default: auto)",
    )
    parser.add_argument(
        "--backend",
        default="auto",
        choices=["auto", "torch", "onnxruntime"],
        help="what runs the networks; auto: ONNX Runtime on the CPU, torch on CUDA (default: auto)",
    )
    parser.add_argument(
        "--workers",
        type=non_negative_int,
        default=None,
        help=f"decoding processes (default: usable cores, at most {DEFAULT_MAX_WORKERS}; 0: decode here)",
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=16, help="clips per forward pass (default: 16)"
    )
    parser.add_argument("--top-k", type=positive_int, default=3, help="genres shown per FILE (default: 3)")
    parser.add_argument(
        "--segments",
        default=None,
        metavar="CSV",
        help="also write per-segment rows (file_id, start, end, 16 genres) for every input",
    )
    parser.add_argument(
        "--hop",
        type=positive_float,
        default=None,
        metavar="SECONDS",
        help="with --segments: seconds between segment starts (default: the segment length)",
    )
    parser.add_argument(
        "--report",
        default=None,
        help="also write a JSON list with each file's status, duration, decoder and reason",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="reuse the predictions an interrupted run journaled beside --out",
    )
    parser.add_argument(
        "--shard",
        type=shard_arg,
        default=None,
        metavar="I/N",
        help="only shard I of N of the payload's sorted mp3s (N machines, one CSV each; "
        "tools/merge_predictions.py joins them)",
    )
    args = parser.parse_args(argv)
    if args.files and args.payload:
        parser.error("give FILEs or --payload, not both")
    if args.files and args.resume:
        parser.error("--resume is for --payload runs")
    if args.files and (args.recursive or args.extensions):
        parser.error("--recursive and --extensions choose what a --payload folder gives, not FILEs")
    if args.files and args.shard:
        parser.error("--shard splits a --payload folder; with FILEs, give each machine its own files")
    if args.segments and args.resume:
        parser.error("--segments cannot be resumed: the journal keeps clip rows only")
    if args.hop is not None and not args.segments:
        parser.error("--hop sets the step between --segments rows: give --segments CSV too")
    if args.top_k > 16:
        parser.error(f"--top-k: there are 16 genres, got {args.top_k}")
    if not args.files:
        args.payload = args.payload or os.environ.get("TEST_DIRECTORY") or "/crowdai-payload"
        args.out = args.out or os.environ.get("OUTPUT_PATH") or "/tmp/output.csv"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    catch_sigterm()  # docker stop, Kubernetes, Slurm: stop as on ^C, keeping what is journaled
    from model.atomic import unwritable_reason

    for target, flag in ((args.out, "--out"), (args.report, "--report"), (args.segments, "--segments")):
        problem = target and unwritable_reason(target)  # found now, before torch and the model load
        if problem:
            die(PROG, f"{flag} {target}: {problem}", 2)
    # Imported here, not at the top: each decode worker re-imports this script when it starts
    # (multiprocessing's spawn) and should not pay for torch.
    import torch

    from model.device import usable_cores
    from model.genre_model import default_workers

    inputs = list_inputs(args)
    paths, ids = inputs.files, dict(zip(inputs.files, inputs.ids))
    workers = args.workers if args.workers is not None else default_workers()
    torch.set_num_threads(usable_cores())  # torch's default counts a quota-limited container's host cores
    model = load_model(args.weights, args.device, args.backend)
    announce(model, paths, args, workers)
    if not paths and not args.files:
        print(
            f"warning: {args.payload} holds no {kind_of_files(args)}: the CSV will have its header only",
            file=sys.stderr,
        )

    # Finished predictions are journaled beside the output, so an interrupted run can be resumed.
    predictions = Finished(
        paths, len(model.genres), keep_all=bool(args.files or args.report or args.segments)
    )
    journal = open_journal(args, paths, predictions)
    todo = [path for path in paths if path not in predictions]
    start = time.perf_counter()
    try:
        stream = model.stream(todo, workers, args.batch_size, bool(args.segments), args.hop)
        collect(stream, predictions, journal, ids, len(paths))
    except (
        KeyboardInterrupt
    ) as stop:  # ^C or SIGTERM: the decode workers are already stopped (audio.decode_many)
        word, code = how_stopped(stop)
        where = (
            f"journaled in {journal.path}; run the same command with --resume to go on" if journal else "lost"
        )
        die(PROG, f"{word}: {len(predictions)} of {len(paths)} files are predicted and {where}", code)
    except OutOfSpace as error:
        kept = (
            f"; {len(predictions)} files are journaled: free some space and rerun with --resume"
            if journal
            else ""
        )
        die(PROG, f"{error}{kept}")
    elapsed = time.perf_counter() - start

    write_outputs(args, predictions, inputs.ids, ids, inputs.skipped, model.genres)
    if journal:
        journal.path.unlink(missing_ok=True)  # the CSV is complete: nothing left to resume
    if args.files:
        print(top_genres_table(predictions.kept(), model.genres, args.top_k))
    summarise(predictions, inputs.skipped, len(todo), model.device, elapsed, args)
    return 0


class Finished:
    """The finished files' rows, in input order in one array; a file's whole Prediction is kept
    only where an output lists it (fallbacks for the summary; every file for FILEs, --report and
    --segments). A 100,000-file library so costs a few hundred bytes per file, not an object each."""

    def __init__(self, paths: list[Path], classes: int, keep_all: bool):
        import numpy as np

        self.position = {path: i for i, path in enumerate(paths)}
        self.probabilities = np.zeros((len(paths), classes))
        self.done = np.zeros(len(paths), dtype=bool)
        self.keep_all, self._kept = keep_all, {}

    def add(self, prediction) -> None:
        i = self.position[prediction.path]
        self.probabilities[i], self.done[i] = prediction.probabilities, True
        if self.keep_all or prediction.status == "fallback":
            self._kept[i] = prediction

    def __contains__(self, path: Path) -> bool:
        return bool(self.done[self.position[path]])

    def __len__(self) -> int:
        return int(self.done.sum())

    def kept(self) -> list:
        return [self._kept[i] for i in sorted(self._kept)]

    def fallbacks(self) -> list:
        return [p for p in self.kept() if p.status == "fallback"]


def load_model(weights: str, device: str, backend: str):
    """GenreModel.load, its warnings as plain lines and its errors as one line."""
    from model.device import DeviceError
    from model.genre_model import GenreModel
    from model.manifest import ManifestError

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = GenreModel.load(weights, device, backend)
    except (ManifestError, DeviceError, ValueError) as error:
        die(PROG, str(error))
    for warning in caught:
        print(warning.message, file=sys.stderr)
    return model


def open_journal(args, paths: list[Path], predictions: Finished):
    """The journal (None without --out); with --resume, what an interrupted run journaled goes
    into `predictions`."""
    import numpy as np

    from model.inference import Prediction
    from model.journal import Journal, journal_path, reusable_entries, weights_signature

    if not args.out:
        return None
    journal_file, weights = journal_path(args.out), weights_signature(args.weights)
    root = Path(args.payload) if args.payload else None  # FILEs with --out: keyed by name
    reused = reusable_entries(journal_file, weights, paths, root) if args.resume else {}
    if args.resume:
        print(f"resuming: {len(reused)} of {len(paths)} files already predicted", file=sys.stderr)
    elif journal_file.exists():
        print(
            f"note: {journal_file} is left from an interrupted run; pass --resume to reuse it. "
            "Starting afresh.",
            file=sys.stderr,
        )
    try:
        journal = Journal(journal_file, weights, list(reused.values()), root)
    except OSError as error:
        die(PROG, f"cannot write beside --out {args.out}: {error.strerror or error}")
    fields = ("status", "seconds", "decoder", "reason")
    for path, line in reused.items():
        entry = json.loads(line)
        predictions.add(Prediction(path, np.array(entry["probabilities"]), *(entry[k] for k in fields)))
    return journal


def collect(stream, predictions: Finished, journal, ids: dict[Path, str], total: int) -> None:
    """Predictions from `stream` into `predictions` (and the journal), with a progress bar."""
    from model.progress import progress_bar

    progress = progress_bar(total, "clip", initial=len(predictions), disable=not total)
    try:
        for prediction in stream:
            predictions.add(prediction)
            if journal:
                journal.add(prediction.path, prediction.probabilities, report_entry(prediction, ids))
            progress.update()
    finally:
        progress.close()
        if journal:
            journal.close()


def write_outputs(
    args, predictions: Finished, file_ids: list[str], ids: dict[Path, str], skipped: list, genres: list[str]
) -> None:
    """The CSV (atomically; a failure is fatal), the segments CSV, the report (a failure warns)."""
    from model.atomic import write_atomic
    from model.submission import write_submission

    if args.out:
        try:
            write_submission(args.out, file_ids, predictions.probabilities)
        except (OSError, ValueError) as error:  # ValueError: the CSV would be invalid
            die(PROG, f"cannot write output: {error}")
    if args.segments:
        try:
            write_atomic(args.segments, segments_csv(predictions.kept(), ids, genres).encode())
        except OSError as error:
            die(PROG, f"cannot write --segments {args.segments}: {error}")
    if args.report:
        try:
            entries = [report_entry(p, ids) for p in predictions.kept()]
            entries += [{"path": str(path), "status": "skipped", "reason": why} for path, why in skipped]
            write_atomic(args.report, json.dumps(entries, indent=1).encode())
        except OSError as error:  # the CSV is written: say so, but do not fail the run over the report
            print(f"warning: cannot write --report {args.report}: {error}", file=sys.stderr)


def list_inputs(args) -> Inputs:
    """The files to predict with their ids: the FILEs as given (each must exist), or the payload's."""
    if args.files:
        paths = [Path(f) for f in args.files]
        for path in paths:
            if not path.is_file():
                die(PROG, f"{path}: no such file", 2)
        return Inputs(paths, [file_id(p) for p in paths])
    payload = Path(args.payload)
    if not payload.is_dir():
        die(PROG, f"payload folder {payload} does not exist or is not a folder", 2)
    try:
        inputs = find_inputs(payload, args.recursive, args.extensions)
    except OSError as error:
        die(PROG, f"cannot list payload folder {payload}: {error.strerror}")
    if args.shard:
        shard = args.shard.take(inputs.files)
        print(f"shard {args.shard}: {len(shard)} of the {len(inputs.files)} files", file=sys.stderr)
        return inputs.take(shard)
    return inputs


def kind_of_files(args) -> str:
    if args.extensions or args.recursive:
        return "audio files (" + ",".join(args.extensions or AUDIO_EXTENSIONS) + ")"
    return ".mp3 files"


def announce(model, paths: list[Path], args, workers: int) -> None:
    manifest = model.ensemble.manifest
    if manifest.prior_only:
        print(
            "!" * 78 + "\n!! PRIOR-ONLY MODEL: these weights do not listen to the audio; every row is the\n"
            "!! FMA-medium class prior. Train an ensemble with train.py to recognise genre.\n" + "!" * 78,
            file=sys.stderr,
        )
    elif manifest.zero_shot_only:
        print(
            "note: zero-shot model: pretrained music taggers (musicnn) read through a tag -> genre rule\n"
            "      and the FMA-medium prior, not fitted on FMA. train.py fits a better one.",
            file=sys.stderr,
        )
    members = ", ".join(m.name for m in manifest.members)
    if args.files:
        where = counted(len(paths), "file")
    else:
        noun = "audio file" if args.recursive or args.extensions else "mp3 file"
        where = counted(len(paths), noun) + (
            f" under {args.payload}" if args.recursive else f" in {args.payload}"
        )
    print(
        f"{where}; ensemble: {members}; device: {model.device} ({model.ensemble.backend}); "
        f"{counted(workers, 'decode worker')}",
        file=sys.stderr,
    )


def top_genres_table(predictions: list, genres: list[str], k: int) -> str:
    """Each file's `k` most probable genres, one line per file; a fallback says so."""
    names = [p.path.name for p in predictions]
    width = max([len("file"), *map(len, names)])
    cell = max(map(len, genres)) + 6
    ordinal = lambda i: f"{i}{'st' if i == 1 else 'nd' if i == 2 else 'rd' if i == 3 else 'th'}"  # noqa: E731
    lines = ["file".ljust(width) + "  " + "".join(ordinal(i + 1).ljust(cell) for i in range(k)).rstrip()]
    for name, prediction in zip(names, predictions):
        order = sorted(range(len(genres)), key=lambda c: -prediction.probabilities[c])[:k]
        row = "".join(f"{genres[c]} {prediction.probabilities[c]:.2f}".ljust(cell) for c in order).rstrip()
        if prediction.status == "fallback":
            row += f"   (class prior: {prediction.reason})"
        lines.append(name.ljust(width) + "  " + row)
    return "\n".join(lines)


def segments_csv(predictions: list, ids: dict[Path, str], genres: list[str]) -> str:
    """file_id, start, end, 16 genres: one line per segment of every prediction."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["file_id", "start", "end", *genres])
    for prediction in predictions:
        for row in prediction.segments:
            writer.writerow(
                [ids[prediction.path], f"{row[0]:.3f}", f"{row[1]:.3f}", *(f"{v:.6f}" for v in row[2:])]
            )
    return text.getvalue()


def report_entry(prediction, ids: dict[Path, str]) -> dict:
    return {
        "file_id": ids[prediction.path],
        "status": prediction.status,
        "seconds": round(prediction.seconds, 3),
        "decoder": prediction.decoder,
        "reason": prediction.reason,
        "transient": prediction.transient,  # a resumed run predicts this file again
    }


def summarise(predictions: Finished, skipped: list, predicted_now: int, device, elapsed: float, args) -> None:
    fallbacks = predictions.fallbacks()
    outputs = [
        args.out,
        args.segments and f"{args.segments} (segments)",
        args.report and f"{args.report} (report)",
    ]
    written = ", ".join(filter(None, outputs)) or "no CSV"
    speed = (
        f"{elapsed:.1f} s, {predicted_now / elapsed:.1f} clips/s"
        if predicted_now and elapsed > 0
        else "nothing to predict"
    )
    lines = [
        f"wrote {written}: {counted(len(predictions), 'row')}, {counted(len(fallbacks), 'fallback')} "
        f"to the class prior{', ' + counted(len(skipped), 'item') + ' skipped' if skipped else ''}; "
        f"device {device}; {speed}"
    ]
    shown = 20
    root = None if args.files else Path(args.payload)
    lines += [f"  fallback {shown_path(p.path, root)}: {p.reason}" for p in fallbacks[:shown]]
    if len(fallbacks) > shown:
        lines.append(f"  ... and {len(fallbacks) - shown} more fallbacks (see --report)")
    lines += [f"  skipped {shown_path(path, root)}: {why}" for path, why in skipped[:shown]]
    if len(skipped) > shown:
        lines.append(f"  ... and {len(skipped) - shown} more skipped (see --report)")
    print("\n".join(lines), file=sys.stderr)


def shown_path(path: Path, root: Path | None) -> str:
    """A file as the summary names it: relative to the payload (its name, in the grader's layout)."""
    try:
        return path.relative_to(root).as_posix() if root else path.name
    except ValueError:
        return str(path)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as stop:  # before any file was predicted: nothing to keep
        word, code = how_stopped(stop)
        die(PROG, f"{word} before any file was predicted", code)
    except OutOfSpace as error:
        die(PROG, f"{error}: free some space, or write elsewhere (--out)")
