#!/usr/bin/env python3
"""Remake the README's timeline figure (examples/timeline.png) from the example clips, as index.ipynb draws it.

python tools/readme_figures.py [--weights weights/] [--out examples/timeline.png]
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from model.cli import ArgumentParser  # noqa: E402


def main() -> None:
    parser = ArgumentParser(prog="readme_figures.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=str(REPO / "weights"))
    parser.add_argument("--out", default=str(REPO / "examples" / "timeline.png"))
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import numpy as np

    from model import GenreModel
    from model.audio import decode
    from model.plots import timeline_figure

    model = GenreModel.load(args.weights, device="cpu")
    chords, beat = (
        decode(REPO / "examples" / f"{name}.mp3", model.sample_rate).audio for name in ("chords", "beat")
    )
    timeline = model.segments(
        np.concatenate([chords, beat, chords]), sample_rate=model.sample_rate, hop_seconds=1.0
    )
    figure = timeline_figure(timeline, title="examples: chords | beat | chords (shipped zero-shot model)")
    figure.savefig(args.out, dpi=80)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
