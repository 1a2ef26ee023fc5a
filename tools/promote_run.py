#!/usr/bin/env python3
"""Ship a trained run as the model run.sh and predict.py use by default: its ensemble copied
into weights/ (or --to DIR), atomically, saying what it replaces.

    python tools/promote_run.py runs/20261206-101500            # -> weights/
    python tools/promote_run.py runs/20261206-101500 --to my-weights/

train.py writes each run's ensemble into its own run folder, so training never overwrites the
shipped model; this is the deliberate step. The zero-shot default comes back with
`python tools/zero_shot_ensemble.py` (or `git checkout weights/`). Commit weights/ as plain files:
the grader builds the committed tree.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))

from model.atomic import write_atomic  # noqa: E402
from model.cli import ArgumentParser, die  # noqa: E402
from model.manifest import ManifestError  # noqa: E402
from model.saving import copy_ensemble, describe_ensemble  # noqa: E402

PROG = "promote_run.py"


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a run folder train.py wrote (holds manifest.json)")
    parser.add_argument(
        "--to", default=str(HERE / "weights"), help="ensemble folder to write (default: weights/)"
    )
    args = parser.parse_args(argv)
    run, target = Path(args.run), Path(args.to)
    if not (run / "manifest.json").is_file():
        die(PROG, f"{run} holds no ensemble (manifest.json): is it a finished train.py run?", 2)
    if run.resolve() == target.resolve():
        die(PROG, f"{run} is already {target}", 2)
    replaced = describe_ensemble(target)
    try:
        manifest = copy_ensemble(run, target)
    except (ManifestError, ValueError, OSError) as error:
        die(PROG, str(error))
    for extra in ("report.json", "confusion.png"):  # the evidence travels with the model
        if (run / extra).is_file():
            write_atomic(target / extra, (run / extra).read_bytes())
        else:
            (target / extra).unlink(missing_ok=True)  # not the replaced model's
    members = ", ".join(m.name for m in manifest.members)
    print(f"{target}: now {run}'s ensemble ({members}; {manifest.description})")
    print(f"  replaced: {replaced}" if replaced else "  (nothing was there before)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
