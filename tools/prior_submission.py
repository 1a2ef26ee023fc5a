#!/usr/bin/env python3
"""The know-nothing reference: the class prior as the prediction for every mp3 in a folder.

    python tools/prior_submission.py --payload mp3s/ --out prior.csv [--weights weights/]

The starter kit's random_submission.py done right: rows drawn uniformly from the simplex score
~3.32 in log loss on average (H_15), uniform rows 2.77, the FMA-medium prior ~2.09. Any model
worth shipping must beat this file's score under evaluate.py. The prior is the training prior
recorded in --weights (default: the shipped ones), floored at 1e-4 like every prediction. The files are not decoded.
"""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from model.calibration import floor_probabilities  # noqa: E402
from model.cli import ArgumentParser, die  # noqa: E402
from model.library import find_inputs  # noqa: E402
from model.manifest import ManifestError, load_manifest  # noqa: E402
from model.submission import write_submission  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="prior_submission.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--payload", required=True, help="folder of mp3s")
    parser.add_argument("--out", required=True, help="CSV to write")
    parser.add_argument("--weights", default=str(REPO / "weights"), help="ensemble whose class prior to use")
    args = parser.parse_args(argv)
    if not Path(args.payload).is_dir():
        die("prior_submission.py", f"payload folder {args.payload} does not exist", 2)
    try:
        prior = np.array(load_manifest(args.weights).class_prior)
    except ManifestError as error:
        die("prior_submission.py", str(error))
    ids = find_inputs(args.payload).ids
    write_submission(args.out, ids, np.tile(floor_probabilities(prior[None]), (len(ids), 1)))
    print(f"wrote {args.out}: the class prior for {len(ids)} files", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
