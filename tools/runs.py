#!/usr/bin/env python3
"""Compare training runs, and build one ensemble from the best members of several.

    python tools/runs.py list runs/*                          # one table: what differs, how each did
    python tools/runs.py build --out my-ensemble runs/*       # members chosen on validation, weighted
    python tools/runs.py build --out weights --force runs/a runs/b   # ... straight into run.sh's model

`list` reads each run folder's config.json, checkpoints and report.json (model/runs.py): the
options that differ between the runs, each member's best validation log loss, and the ensemble's
validation and test log loss (a run still training or interrupted shows its members so far).

`build` pools the members of every finished run and combines them on the runs' shared validation
split: `--method select` (default) by greedy forward selection with replacement (model/selection.py:
each member weighted by how often it was picked), `--method average` with equal weights. Then one
temperature is fitted on the validation log-probabilities of that mix, as train.py does, and the
ensemble is written atomically (manifest last) as a manifest that predict.py, run.sh and
GenreModel load unchanged, with a report.json of its validation and test scores beside it. Runs
must share their validation clips (their order may differ) and sample rate: other runs are
refused with one line. An interrupted run is skipped with a warning.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

from model.cli import ArgumentParser, counted, die, positive_int  # noqa: E402

PROG = "runs.py"
# Options that say where a run wrote or how fast it ran, not what it trained.
NOT_COMPARED = {"out", "cache", "run_dir", "resume", "workers", "device", "shard"}


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="one table of the runs")
    listing.add_argument("runs", nargs="+", help="run folders (train.py's --run-dir)")
    build = commands.add_parser("build", help="an ensemble from the members of several runs")
    build.add_argument("runs", nargs="+", help="run folders (train.py's --run-dir)")
    build.add_argument("--out", required=True, help="ensemble folder to write")
    build.add_argument(
        "--method",
        default="select",
        choices=["select", "average"],
        help="select: greedy forward selection with replacement on validation (default); average: every member",
    )
    build.add_argument(
        "--rounds", type=positive_int, default=50, help="selection rounds (default 50, auto-sklearn's)"
    )
    build.add_argument("--seed", type=int, default=0, help="seed of the selection's tie-breaks (default 0)")
    build.add_argument("--force", action="store_true", help="replace the ensemble already in --out")
    args = parser.parse_args(argv)
    folders = [Path(r) for r in args.runs]
    for folder in folders:
        if not folder.is_dir():
            die(PROG, f"{folder} is not a run folder", 2)
    if args.command == "list":
        print(runs_table(folders))
        return 0
    return build_ensemble(folders, Path(args.out), args.method, args.rounds, args.seed, args.force)


# -- list ----------------------------------------------------------------------------------------


def read_run(folder: Path) -> dict:
    """What a run folder says about itself: options, members' best validation losses, the
    ensemble's scores, and whether it finished."""
    import torch

    config = _json(folder / "config.json") or {}
    report = _json(folder / "report.json")
    members = {}
    for checkpoint in sorted(folder.glob("*.ckpt")):
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
        members[checkpoint.stem] = (saved["best_loss"], saved["best_epoch"], saved["epoch"])
    finished = (folder / "manifest.json").is_file() and (folder / "predictions.npz").is_file()
    return {
        "name": folder.name,
        "options": {k: v for k, v in config.get("options", {}).items() if k not in NOT_COMPARED},
        "members": members,
        "report": report,
        "status": "finished" if finished else "interrupted" if members else "empty",
    }


def runs_table(folders: list[Path]) -> str:
    """A markdown table: one row per run."""
    runs = [read_run(folder) for folder in folders]
    keys = sorted({k for run in runs for k in run["options"]})
    differ = [k for k in keys if len({json.dumps(run["options"].get(k), sort_keys=True) for run in runs}) > 1]
    header = [
        "run",
        "status",
        *differ,
        "each member's best validation log loss (epoch)",
        "validation",
        "test",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for run in runs:
        members = ", ".join(f"{name} {loss:.3f} ({best})" for name, (loss, best, _) in run["members"].items())
        report = run["report"] or {}
        valid = f"{report['validation_log_loss']:.4f}" if report else "-"
        scored = f"{report['ensemble']['log_loss']:.4f} ({report['split']})" if report else "-"
        options = [_short(run["options"].get(k)) for k in differ]
        lines.append(
            "| " + " | ".join([run["name"], run["status"], *options, members or "-", valid, scored]) + " |"
        )
    return "\n".join(lines)


# -- build ---------------------------------------------------------------------------------------


def build_ensemble(folders: list[Path], out: Path, method: str, rounds: int, seed: int, force: bool) -> int:
    import torch

    from model.calibration import fit_temperature, output_log_loss, output_probabilities
    from model.manifest import Manifest, load_manifest
    from model.metrics import scores
    from model.runs import load_predictions
    from model.saving import assemble_ensemble, describe_ensemble
    from model.selection import greedy_selection

    replaced = describe_ensemble(out)
    if replaced and not force:
        die(
            PROG,
            f"{out} holds an ensemble ({replaced}): pass --force to replace it, or choose another --out",
            2,
        )
    runs = []
    for folder in folders:
        if not ((folder / "manifest.json").is_file() and (folder / "predictions.npz").is_file()):
            print(
                f"warning: skipping {folder}: not a finished run (no manifest.json and predictions.npz)",
                file=sys.stderr,
            )
            continue
        runs.append((folder, load_manifest(folder), load_predictions(folder)))
    if not runs:
        die(PROG, "no finished run among the folders given")

    # Every run's members, aligned on the first run's validation (and test) clips.
    reference = runs[0][2]
    splits = [s for s in ("validation", "test") if all(s in predictions for _, _, predictions in runs)]
    candidates, valid, test = [], [], []
    for folder, manifest, predictions in runs:
        if manifest.sample_rate != runs[0][1].sample_rate:
            die(
                PROG,
                f"{folder} decodes at {manifest.sample_rate} Hz, {runs[0][0]} at {runs[0][1].sample_rate} Hz",
            )
        order = {}
        for split in splits:
            order[split] = _alignment(predictions[split], reference[split], split, folder, runs[0][0])
        for member in manifest.members:
            if member.name not in predictions["validation"]["members"]:
                die(
                    PROG,
                    f"{folder}/predictions.npz lacks member {member.name}: was the run's ensemble edited?",
                )
            renamed = dataclasses.replace(member, name=f"{folder.name}-{member.name}", weight=1.0)
            candidates.append((renamed, folder))
            valid.append(predictions["validation"]["members"][member.name][order["validation"]])
            if "test" in splits:
                test.append(predictions["test"]["members"][member.name][order["test"]])
    valid_labels = torch.from_numpy(reference["validation"]["labels"])
    valid_log_probs = torch.from_numpy(np.stack(valid))

    if method == "select":
        counts, _ = greedy_selection(valid_log_probs, valid_labels, rounds, seed)
    else:
        counts = np.ones(len(candidates), dtype=np.int64)
    chosen = np.flatnonzero(counts)
    weights = torch.from_numpy(counts[chosen].astype(np.float64))
    temperature = fit_temperature(valid_log_probs[chosen], valid_labels, weights=weights)
    members = tuple(dataclasses.replace(candidates[i][0], weight=float(counts[i])) for i in chosen)
    prior = max(runs, key=lambda run: _training_clips(run[0]))[1].class_prior  # the largest training set's
    description = (
        f"{counted(len(members), 'member')} of {counted(len(runs), 'run')} ({', '.join(f.name for f, _, _ in runs)}), "
        f"{'selected on validation' if method == 'select' else 'averaged'} by tools/runs.py build"
    )
    manifest = Manifest(runs[0][1].classes, runs[0][1].sample_rate, temperature, prior, members, description)

    report = {"method": method, "temperature": temperature, "members": {m.name: m.weight for m in members}}
    report["validation_log_loss"] = output_log_loss(
        valid_log_probs[chosen], valid_labels, temperature, weights
    ).item()
    if "test" in splits:
        rows = output_probabilities(torch.from_numpy(np.stack(test))[chosen], temperature, weights).numpy()
        report["split"], report["ensemble"] = "test", scores(reference["test"]["labels"], rows)
    sources = {m.name: candidates[i][1] for m, i in zip(members, chosen)}
    try:
        assemble_ensemble(out, manifest, sources)
    except (OSError, ValueError) as error:
        die(PROG, f"cannot write {out}: {error}")
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    print(
        f"{out}: {description}; temperature {temperature:.3f}"
        + (f" (replaced: {replaced})" if replaced else "")
    )
    print(build_table(runs, report, valid_log_probs, valid_labels, test, reference))
    return 0


def build_table(runs, report: dict, valid_log_probs, valid_labels, test: list, reference: dict) -> str:
    """The built ensemble beside each run's own ensemble and the average of every member."""
    import torch

    from model.calibration import fit_temperature, output_log_loss

    lines = ["| ensemble | members | validation log loss | test log loss |", "|---|---|---|---|"]
    for folder, manifest, _ in runs:
        own = _json(folder / "report.json") or {}
        scored = own.get("ensemble", {}).get("log_loss") if own.get("split") == "test" else None
        lines.append(
            f"| run {folder.name} | {len(manifest.members)} | {own.get('validation_log_loss', float('nan')):.4f} | "
            + (f"{scored:.4f} |" if scored is not None else "- |")
        )
    t = fit_temperature(valid_log_probs, valid_labels)
    average = [output_log_loss(valid_log_probs, valid_labels, t).item()]
    if test:
        average.append(
            output_log_loss(
                torch.from_numpy(np.stack(test)), torch.from_numpy(reference["test"]["labels"]), t
            ).item()
        )
    lines.append(
        f"| average of all {len(valid_log_probs)} | {len(valid_log_probs)} | {average[0]:.4f} | "
        + (f"{average[1]:.4f} |" if test else "- |")
    )
    built = report.get("ensemble", {}).get("log_loss")
    lines.append(
        f"| **built ({report['method']})** | {len(report['members'])} | {report['validation_log_loss']:.4f} | "
        + (f"{built:.4f} |" if built is not None else "- |")
    )
    return "\n".join(lines)


def _alignment(split: dict, reference: dict, name: str, folder: Path, first: Path) -> np.ndarray:
    """Indices that put `split`'s clips in `reference`'s order; refuses other clips (one line)."""
    keys, wanted = list(split["keys"]), list(reference["keys"])
    if sorted(keys) != sorted(wanted):
        missing = len(set(wanted) ^ set(keys))
        die(
            PROG,
            f"{folder}'s {name} clips differ from {first}'s ({missing} not in both): only runs on the same "
            f"{name} split can be combined",
        )
    position = {key: i for i, key in enumerate(keys)}
    order = np.array([position[key] for key in wanted], dtype=np.int64)
    if not np.array_equal(split["labels"][order], reference["labels"]):
        die(PROG, f"{folder} and {first} label the same {name} clips differently")
    return order


def _training_clips(folder: Path) -> int:
    return ((_json(folder / "config.json") or {}).get("data", {}).get("tracks", {})).get("training", 0)


def _json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _short(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


if __name__ == "__main__":
    sys.exit(main())
