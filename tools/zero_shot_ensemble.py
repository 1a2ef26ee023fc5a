#!/usr/bin/env python3
"""Write the default ensemble: the zero-shot musicnn genre model (model/zero_shot.py) in weights/.

    python tools/zero_shot_ensemble.py                     # -> weights/manifest.json
    python tools/zero_shot_ensemble.py --max-chunks 0      # score every chunk (slower)
    python tools/zero_shot_ensemble.py --rule estimated --out /tmp/estimated   # the rule before, to compare

Needs weights/musicnn/musicnn_pair.pt (from tools/convert_musicnn.py), tag_base_rates.json (the
tags' base rates and where they were counted) and audio_kinds.json (tools/fit_audio_kinds.py's
detector), all committed there. Rerun it after editing the tag -> genre table; the manifest keeps
the table, the base rates, the speech cue and the detector in the member's hparams, so what a run
used is always on record next to the weights.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from model.audio_kinds import default_kind_given_genre, read_audio_kinds  # noqa: E402
from model.cli import ArgumentParser, non_negative_int  # noqa: E402
from model.genres import GENRES, fma_medium_prior  # noqa: E402
from model.manifest import Manifest, MemberSpec  # noqa: E402
from model.musicnn import MUSICNN_CHUNK_SECONDS, MUSICNN_SPECTROGRAM  # noqa: E402
from model.saving import save_ensemble  # noqa: E402
from model.zero_shot import genre_tags_json, read_tag_base_rates  # noqa: E402

PAIR = Path("musicnn") / "musicnn_pair.pt"
BASE_RATES = Path("musicnn") / "tag_base_rates.json"  # counted in the taggers' own labels, with provenance
AUDIO_KINDS = Path("musicnn") / "audio_kinds.json"  # tools/fit_audio_kinds.py's detector, with provenance
DEFAULT_MAX_CHUNKS = 4


def zero_shot_member(
    weights_dir: Path, max_chunks: int | None = DEFAULT_MAX_CHUNKS, rule: str = "kinds"
) -> MemberSpec:
    """The zero-shot member, referring to the converted taggers inside `weights_dir`, by `rule`
    (model/zero_shot.py): "kinds" (the default) = "counted" (the counted base rates and speech
    cue) + the kind-of-audio detector; "estimated" = the rule before them (base rates estimated
    from the weights, the pause cue)."""
    hparams: dict = {"genre_tags": genre_tags_json()}
    if rule in ("counted", "kinds"):
        hparams = {
            "genre_tags": genre_tags_json(counted=True),
            "tag_base_rates": read_tag_base_rates(weights_dir / BASE_RATES),
            "speech_cue": "syllables and pauses",
        }
    if rule == "kinds":
        hparams["audio_kinds"] = read_audio_kinds(weights_dir / AUDIO_KINDS)
        hparams["kind_given_genre"] = default_kind_given_genre()
    return MemberSpec(
        name="musicnn-zero-shot",
        architecture="musicnn_zero_shot",
        hparams=hparams,
        state_dict=PAIR.as_posix(),
        sha256=hashlib.sha256((weights_dir / PAIR).read_bytes()).hexdigest(),
        spectrogram=MUSICNN_SPECTROGRAM,
        chunk_seconds=MUSICNN_CHUNK_SECONDS,
        max_chunks=max_chunks,
    )


def main() -> None:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=REPO / "weights", help="ensemble folder (default weights/)"
    )
    parser.add_argument(
        "--max-chunks",
        type=non_negative_int,
        default=DEFAULT_MAX_CHUNKS,
        help=f"3-s chunks scored per clip, spread over it; 0 = all (default {DEFAULT_MAX_CHUNKS})",
    )
    parser.add_argument(
        "--rule",
        choices=["kinds", "counted", "estimated"],
        default="kinds",
        help="kinds (default): counted + the kind-of-audio detector; counted: base rates counted in the "
        "taggers' labels, Bayes factors, the syllables-and-pauses cue; estimated: the rule before "
        "(docs/zero-shot.md measures all three)",
    )
    args = parser.parse_args()
    source = REPO / "weights" / PAIR
    if not source.is_file():
        parser.error(f"{source} is missing: run tools/convert_musicnn.py first")
    if args.out.resolve() != (REPO / "weights").resolve():  # a self-contained copy elsewhere
        (args.out / PAIR.parent).mkdir(parents=True, exist_ok=True)
        for item in source.parent.iterdir():
            shutil.copy2(item, args.out / PAIR.parent / item.name)
    manifest = Manifest(
        classes=GENRES,
        sample_rate=MUSICNN_SPECTROGRAM.sample_rate,
        temperature=1.0,
        class_prior=tuple(float(p) for p in fma_medium_prior()),
        members=(zero_shot_member(args.out, args.max_chunks or None, args.rule),),
        description="Zero-shot: the pretrained musicnn MSD + MTT taggers (ISC, MTG-UPF) read through a "
        "tag -> genre rule (model/zero_shot.py) and the FMA-medium class prior; not fitted on FMA. "
        "Train on FMA with train.py for a better model.",
    )
    save_ensemble(args.out, manifest, {})
    print(f"wrote {args.out / 'manifest.json'}")


if __name__ == "__main__":
    main()
