#!/usr/bin/env python3
"""The zero-shot rule's figures on the real-music corpus, by part: the packages the rule was
decided on, and the held-out ones.

    python bench/zero_shot_rules.py --corpus real-corpus/ [--work DIR] [--weights weights/ ...]

Each clip of `tools/real_corpus.py`'s corpus is decoded, cut into the chunks the shipped model
scores (its `max_chunks` sample) and run through the musicnn taggers once (cached in
<work>/zero_shot_chunks.pt); then each `--weights` folder's zero-shot member (its own table,
base rates and speech cue, model/zero_shot.py) reads those outputs through its real head. Parts
follow the corpus' package split: **decided on** = the training and validation packages, the
only ones looked at while choosing the rule, and the kind-of-audio detector's training data (its
figures there are in-sample); **held out** = the test packages, scored for the record. Per
part: accuracy, log loss (as it is, and with each clip weighted to FMA-medium's
genre mix: the corpus is a third speech, FMA 0.5 %), ECE, and per group (rock, orchestral, electronic, speech,
others) the share of clips whose top genre is plausible for it (`PLAUSIBLE`), then per group log
loss and ECE. The figures equal
predict.py's for the same weights (same chunks, same head, same floor); bench/real_music.py runs
predict.py itself.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from model.audio import decode  # noqa: E402
from model.calibration import output_probabilities  # noqa: E402
from model.chunking import make_chunks  # noqa: E402
from model.cli import ArgumentParser  # noqa: E402
from model.ensemble import load_ensemble  # noqa: E402
from model.genres import GENRES, fma_medium_prior  # noqa: E402
from model.metrics import expected_calibration_error, log_loss  # noqa: E402
from model.progress import progress_bar  # noqa: E402
from model.spectrogram import LogMel  # noqa: E402

# Corpus genre -> group, and the top-1 genres that count as plausible for the group: a listener
# could name them for these clips (game orchestras are filed as Classical or as Instrumental).
GROUPS = {
    "Rock": "rock",
    "Classical": "orchestral",
    "Instrumental": "orchestral",
    "Electronic": "electronic",
    "Spoken": "speech",
}
PLAUSIBLE = {
    "rock": {"Rock"},
    "orchestral": {"Classical", "Instrumental"},
    "electronic": {"Electronic"},
    "speech": {"Spoken"},
}
GROUP_NAMES = ("rock", "orchestral", "electronic", "speech", "others")
PARTS = {"decided on": ("training", "validation"), "held out": ("test",)}


def group_of(genre: str) -> str:
    return GROUPS.get(genre, "others")


def plausible(genre: str, predicted: str) -> bool:
    """Others (Folk, International, Blues): their own genre only."""
    return predicted in PLAUSIBLE.get(group_of(genre), {genre})


def zero_shot_member(weights: Path):
    ensemble = load_ensemble(weights, torch.device("cpu"))
    member = next(m for m in ensemble.manifest.members if m.kind == "zero_shot")
    return ensemble, member, ensemble.networks[member.name]


def tagger_outputs(clips: pd.DataFrame, corpus: Path, weights: Path, cache: Path) -> dict:
    """Per chunk of every clip: the taggers' 100 logits, the embedding and the log-mel (for the
    speech cue), with the clip each chunk belongs to. Cached: the taggers are the slow part."""
    if cache.exists():
        saved = torch.load(cache)
        if saved["paths"] == list(clips["path"]):
            return saved
    _, member, _ = zero_shot_member(weights)
    audios = (decode(corpus / path, member.spectrogram.sample_rate).audio for path in clips["path"])
    saved = chunk_outputs(audios, len(clips), weights)
    saved["paths"] = list(clips["path"])
    torch.save(saved, cache)
    return saved


def chunk_outputs(audios: Iterable[np.ndarray], count: int, weights: Path) -> dict:
    """`tagger_outputs` for clips given as audio at the taggers' rate."""
    _, member, network = zero_shot_member(weights)
    logmel = LogMel(member.spectrogram)
    chunk_frames = member.spectrogram.seconds_to_frames(member.chunk_seconds)
    outputs: dict[str, list] = {"logits": [], "embedding": [], "spec": [], "owner": []}
    with torch.inference_mode(), progress_bar(count, "clip") as bar:
        for i, audio in enumerate(audios):
            spec = logmel(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None])
            chunks, _ = make_chunks(spec, [spec.shape[2]], chunk_frames, member.max_chunks)
            logits, embedding = network.taggers(chunks)
            outputs["logits"].append(logits)
            outputs["embedding"].append(embedding)
            outputs["spec"].append(chunks)  # float32: the speech cue reads it as predict.py does
            outputs["owner"].append(torch.full((len(chunks),), i))
            bar.update()
    return {key: torch.cat(values) for key, values in outputs.items()}


def rows_of(weights: Path, outputs: dict, clips: int) -> np.ndarray:
    """The zero-shot member of `weights` on the cached chunks: the rows predict.py would write."""
    ensemble, member, network = zero_shot_member(weights)
    with torch.inference_mode():
        cue = network.speech_cue(outputs["spec"].float())
        evidence = network.head_from(outputs["logits"], outputs["embedding"], cue).double()
        sums = torch.zeros(clips, len(GENRES), dtype=torch.float64).index_add_(0, outputs["owner"], evidence)
        logits = (
            sums / torch.bincount(outputs["owner"], minlength=clips)[:, None] + ensemble.log_prior.double()
        )
        member_log_probs = torch.log_softmax(logits, dim=1)[None]
        return output_probabilities(member_log_probs, ensemble.manifest.temperature, torch.ones(1)).numpy()


def part_figures(clips: pd.DataFrame, rows: np.ndarray) -> dict:
    truth = np.array([GENRES.index(g) for g in clips["genre"]])
    top = [GENRES[k] for k in rows.argmax(1)]
    # FMA's mix: each clip weighted by its genre's FMA-medium prior over its share here, so that
    # speech (a third of the corpus, 0.5 % of FMA) counts as much as it would in the grader's set.
    share = clips["genre"].value_counts(normalize=True)
    prior = dict(zip(GENRES, fma_medium_prior()))
    weight = clips["genre"].map(lambda g: prior[g] / share[g]).to_numpy()
    losses = -np.log(rows[np.arange(len(rows)), truth])
    figures = {
        "clips": len(clips),
        "accuracy": float(np.mean(rows.argmax(1) == truth)),
        "log_loss": log_loss(truth, rows),
        "log_loss_fma_mix": float((weight * losses).sum() / weight.sum()),
        "ece": expected_calibration_error(truth, rows),
    }
    groups = clips["genre"].map(group_of).to_numpy()
    for group in GROUP_NAMES:
        chosen = np.flatnonzero(groups == group)
        hits = sum(plausible(clips["genre"].iloc[i], top[i]) for i in chosen)
        figures[group] = (int(hits), len(chosen))
        figures[f"{group} log loss"] = float(losses[chosen].mean()) if len(chosen) else float("nan")
        figures[f"{group} ECE"] = (
            expected_calibration_error(truth[chosen], rows[chosen]) if len(chosen) else float("nan")
        )
    return figures


def main() -> None:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="tools/real_corpus.py's folder")
    parser.add_argument("--work", type=Path, default=Path("zero-shot-work"), help="cache folder")
    parser.add_argument(
        "--weights", type=Path, nargs="+", default=[REPO / "weights"], help="zero-shot weights folders"
    )
    parser.add_argument(
        "--parts", nargs="+", choices=list(PARTS), default=list(PARTS), help="parts to score (default both)"
    )
    args = parser.parse_args()
    clips = pd.read_csv(args.corpus / "labels.csv")
    args.work.mkdir(parents=True, exist_ok=True)
    outputs = tagger_outputs(clips, args.corpus, args.weights[0], args.work / "zero_shot_chunks.pt")
    header = (
        "| weights | part | clips | accuracy | log loss | log loss, FMA's mix | ECE "
        "| rock | orchestral | electronic | speech | others |"
    )
    per_group = "| weights | part | " + " | ".join(f"{g} log loss, ECE" for g in GROUP_NAMES) + " |"
    print(header + "\n|" + "---|" * (header.count("|") - 1))
    figures = {}
    for weights in args.weights:
        rows = rows_of(weights, outputs, len(clips))
        for part in args.parts:
            chosen = clips["split"].isin(PARTS[part]).to_numpy()
            f = figures[weights, part] = part_figures(clips[chosen].reset_index(drop=True), rows[chosen])
            shares = " | ".join(f"{f[g][0]}/{f[g][1]}" for g in GROUP_NAMES)
            print(
                f"| {weights} | {part} | {f['clips']} | {f['accuracy']:.3f} | {f['log_loss']:.3f} | "
                f"{f['log_loss_fma_mix']:.3f} | {f['ece']:.3f} | {shares} |"
            )
    print("\n" + per_group + "\n|" + "---|" * (per_group.count("|") - 1))
    for (weights, part), f in figures.items():
        print(
            f"| {weights} | {part} | "
            + " | ".join(f"{f[f'{g} log loss']:.3f}, {f[f'{g} ECE']:.3f}" for g in GROUP_NAMES)
            + " |"
        )


if __name__ == "__main__":
    main()
