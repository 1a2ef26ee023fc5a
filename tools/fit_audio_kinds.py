#!/usr/bin/env python3
"""Fit, once, the zero-shot model's kind-of-audio detector (model/audio_kinds.py) on the real-music
corpus' decided-on packages, and write weights/musicnn/audio_kinds.json with its provenance.

    python tools/real_corpus.py --out real-corpus/                 # the corpus (downloads once)
    python tools/fit_audio_kinds.py --corpus real-corpus/          # -> weights/musicnn/audio_kinds.json
    python tools/zero_shot_ensemble.py                             # -> weights/manifest.json, with it

Only the training and validation packages are read (the test packages stay held out, as in
bench/zero_shot_rules.py): Spoken clips are "speech", Classical and Instrumental "orchestral"
(so "orchestral" means: sounds like the corpus' game orchestras, ambient pieces and chamber
music), the rest "other music". Each clip gives the chunks predict.py scores (the same cache as the
bench). The regularisation is chosen by 5-fold cross-validation grouped by package (a fold's
packages are never in its training), among three values, by chunk log loss; the figures are
recorded in the file.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
import torch
from sklearn.model_selection import GroupKFold

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from zero_shot_rules import PARTS, tagger_outputs  # noqa: E402  (the bench's cached chunks)

from model.audio_kinds import KINDS, AudioKinds, default_kind_given_genre, fit_audio_kinds  # noqa: E402
from model.cli import ArgumentParser  # noqa: E402
from model.speech import SPEECH_MEASURES, speech_features  # noqa: E402

KIND_OF_GENRE = {"Spoken": 0, "Classical": 1, "Instrumental": 1}  # every other genre: other music
STRENGTHS = (0.001, 0.01, 0.1)  # sklearn's C, tried by grouped cross-validation
OUT = REPO / "weights" / "musicnn" / "audio_kinds.json"


def out_of_package_posteriors(
    x: np.ndarray, y: np.ndarray, groups: np.ndarray, strength: float
) -> np.ndarray:
    """(chunks, 3) each chunk's P(kind) by a detector fitted without its package (5 folds grouped
    by package), computed as predict.py runs the detector (float32)."""
    posterior = np.zeros((len(x), len(KINDS)))
    for train, test in GroupKFold(5).split(x, groups=groups):
        detector = AudioKinds(fit_audio_kinds(x[train], y[train], strength), default_kind_given_genre())
        held = torch.from_numpy(x[test].astype(np.float32))
        with torch.no_grad():
            posterior[test] = detector.posterior(
                held[:, :-SPEECH_MEASURES], held[:, -SPEECH_MEASURES:]
            ).numpy()
    return posterior


def clips_found(posterior: np.ndarray, y: np.ndarray, owner: np.ndarray) -> dict:
    """Per kind, how many clips are named right by the mean posterior over their chunks."""
    clip_ids, first = np.unique(owner, return_index=True)
    means = np.stack([posterior[owner == c].mean(0) for c in clip_ids])
    truth = y[first]
    return {
        kind: (int(((means.argmax(1) == k) & (truth == k)).sum()), int((truth == k).sum()))
        for k, kind in enumerate(KINDS)
    }


def main() -> None:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="tools/real_corpus.py's folder")
    parser.add_argument("--work", type=Path, default=Path("zero-shot-work"), help="the bench's cache folder")
    parser.add_argument("--out", type=Path, default=OUT, help=f"default {OUT.relative_to(REPO)}")
    args = parser.parse_args()
    clips = pd.read_csv(args.corpus / "labels.csv")
    args.work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="taggers-") as taggers:  # the taggers, whatever weights/ holds
        write_taggers = [sys.executable, str(REPO / "tools" / "zero_shot_ensemble.py"), "--rule", "estimated"]
        subprocess.run([*write_taggers, "--out", taggers], check=True, capture_output=True)
        outputs = tagger_outputs(clips, args.corpus, Path(taggers), args.work / "zero_shot_chunks.pt")
    owner = outputs["owner"].numpy()
    decided = clips["split"].isin(PARTS["decided on"]).to_numpy()[owner]
    features = torch.cat([outputs["embedding"], speech_features(outputs["spec"].float())], dim=1).numpy()
    kinds = clips["genre"].map(lambda g: KIND_OF_GENRE.get(g, 2)).to_numpy()[owner]
    packages = clips["source"].to_numpy()[owner]
    x, y, groups = features[decided], kinds[decided], packages[decided]

    cross_validated, posteriors = {}, {}
    for strength in STRENGTHS:
        posteriors[strength] = out_of_package_posteriors(x, y, groups, strength)
        chance = posteriors[strength][np.arange(len(y)), y]
        cross_validated[strength] = float(-np.log(np.clip(chance, 1e-4, 1.0)).mean())
        print(f"C={strength:g}: chunk log loss {cross_validated[strength]:.3f} (5 folds by package)")
    strength = min(cross_validated, key=cross_validated.get)
    found = clips_found(posteriors[strength], y, owner[decided])
    print(
        "out of package, clips whose chunks' mean posterior names their kind: "
        + ", ".join(f"{kind} {hits}/{total}" for kind, (hits, total) in found.items())
    )
    fitted = fit_audio_kinds(x, y, strength)
    record = {
        "provenance": {
            "what": "model/audio_kinds.py's detector: multinomial logistic regression on the musicnn "
            "taggers' 400-d embeddings and model/speech.py's 2 measures, per 3-s chunk, balanced classes",
            "fitted_on": "tools/real_corpus.py's decided-on part (training and validation packages): "
            + ", ".join(sorted(set(groups))),
            "chunks_per_kind": {kind: int((y == k).sum()) for k, kind in enumerate(KINDS)},
            "clips": int(clips["split"].isin(PARTS["decided on"]).sum()),
            "strength_C": strength,
            "cross_validated_chunk_log_loss": {f"{c:g}": round(v, 4) for c, v in cross_validated.items()},
            "cross_validated_clips_found": {kind: f"{hits}/{total}" for kind, (hits, total) in found.items()},
            "tool": "tools/fit_audio_kinds.py",
            "scikit_learn": sklearn.__version__,
        },
        "model": fitted,
    }
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(
        f"C={strength:g} chosen; wrote {args.out} ({len(x)} chunks of {record['provenance']['clips']} clips)"
    )


if __name__ == "__main__":
    main()
