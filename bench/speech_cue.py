#!/usr/bin/env python3
"""Does the zero-shot default hear speech as Spoken, and music with rests as music?

    python bench/speech_cue.py --corpus real-corpus/ --debs debs/ [--work DIR] [--weights W ...]

Generated from real recordings, at test time of nothing (a bench, run by hand):
  * speech: the corpus' speech packages (voice prompts, game dialogue, read test sentences) and
    espeak-ng / flite reading tools/real_corpus_table.py's texts sentence by sentence; each
    utterance trimmed of its silence, then joined into ~25-s clips with gaps of 0, 0.1 and 0.3 s
    (continuous speech, conversation, prompts), alone and over a music bed 20 dB below the speech
    (a corpus music clip: poetry over a quiet bed);
  * music with rests: generated solo piano (decaying harmonic notes with rests) and plucked guitar
    with pauses, corpus music faded in from silence over 12 s, and corpus Classical and
    Instrumental excerpts attenuated by 25 dB (quiet passages).
Per `--weights` folder (its zero-shot member, through its real head), per part (the speech
packages' corpus split: decided on = training and validation, held out = test): how many clips
have Spoken on top, and the mean probability of Spoken. `--debs` is the folder
`tools/real_corpus.py --debs` kept. The cases and the taggers' outputs on them are cached in
<work>/speech_cue_chunks.pt (delete it to rebuild).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

from real_corpus import matches, synthesize, unpack  # noqa: E402
from real_corpus_table import SPLITS_BY_PACKAGE, SYNTH_PACKAGES, SYNTH_TEXTS, TABLE  # noqa: E402
from zero_shot_rules import chunk_outputs, rows_of  # noqa: E402

from model.audio import DecodeError, decode  # noqa: E402
from model.cli import ArgumentParser  # noqa: E402
from model.genres import GENRES  # noqa: E402

RATE = 16000  # the taggers' rate
CLIP_SECONDS = 25.0
GAPS = (0.0, 0.1, 0.3)
BED_DB = -20.0
CLIPS_PER_CASE = 2


def utterances(package: str, debs: Path, scratch: Path) -> list[np.ndarray]:
    """The package's speech, one trimmed utterance per file (a synthetic engine: per sentence)."""
    root = scratch / package
    names = SYNTH_PACKAGES.get(package, (package,))
    unpack([next(iter(sorted(debs.glob(f"{name}_*.deb")))) for name in names], root)
    if package in SYNTH_PACKAGES:
        return synthesized_sentences(package, root)
    paths = [
        p for entry in TABLE if entry.package == package and entry.speech for p in matches(entry, root, root)
    ]
    found = []
    for path in paths[:: max(1, len(paths) // 120)]:  # spread over the sorted files, ~120 at most
        try:
            audio = decode(path, RATE).audio
        except DecodeError:
            continue
        trimmed, _ = librosa.effects.trim(audio, top_db=40)
        if len(trimmed) > RATE // 4:
            found.append(trimmed)
    return found


def synthesized_sentences(engine: str, root: Path) -> list[np.ndarray]:
    sentences = tuple(
        (voice, sentence.strip().rstrip(".") + ".")
        for voice, text in SYNTH_TEXTS[engine]
        for sentence in text.split(". ")
        if sentence.strip()
    )
    wavs = synthesize(engine, root, sentences)
    return [librosa.effects.trim(decode(wav, RATE).audio, top_db=40)[0] for wav in wavs]


def joined(parts: list[np.ndarray], gap: float, start: int) -> np.ndarray:
    """Utterances from `start` on (cycling), `gap` seconds of silence between, up to CLIP_SECONDS."""
    silence, out, i = np.zeros(int(gap * RATE), np.float32), [], start
    while sum(map(len, out)) < CLIP_SECONDS * RATE:
        out += [parts[i % len(parts)], silence]
        i += 1
    return np.concatenate(out)[: int(CLIP_SECONDS * RATE)]


def with_bed(speech: np.ndarray, music: np.ndarray, db: float) -> np.ndarray:
    music = np.resize(music, len(speech))
    gain = _rms(speech) / max(_rms(music), 1e-9) * 10 ** (db / 20)
    return (speech + gain * music).astype(np.float32)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def piano(seed: int) -> np.ndarray:
    """Notes of a C-major scale with 3 decaying partials, each followed by a rest of 0.3-1.5 s."""
    rng, out = np.random.default_rng(seed), []
    while sum(map(len, out)) < CLIP_SECONDS * RATE:
        f = 261.63 * 2 ** (rng.choice([0, 2, 4, 5, 7, 9, 11, 12]) / 12)
        t = np.arange(int(rng.uniform(0.3, 1.2) * RATE)) / RATE
        note = sum(np.sin(2 * np.pi * f * k * t) / k for k in (1, 2, 3)) * np.exp(-3 * t) * 0.3
        out += [note.astype(np.float32), np.zeros(int(rng.uniform(0.3, 1.5) * RATE), np.float32)]
    return np.concatenate(out)[: int(CLIP_SECONDS * RATE)]


def guitar(seed: int) -> np.ndarray:
    """Karplus-Strong plucks, a few in a row, then a pause of 0.5-2 s."""
    rng, out = np.random.default_rng(seed), []
    while sum(map(len, out)) < CLIP_SECONDS * RATE:
        for _ in range(rng.integers(1, 5)):
            period = int(RATE / (110 * 2 ** (rng.integers(0, 24) / 12)))
            n = int(rng.uniform(0.25, 0.6) * RATE)
            buffer, pluck = rng.uniform(-1, 1, period), np.empty(n)
            for i in range(n):
                pluck[i] = buffer[i % period]
                buffer[i % period] = 0.498 * (buffer[i % period] + buffer[(i + 1) % period])
            out.append((0.3 * pluck).astype(np.float32))
        out.append(np.zeros(int(rng.uniform(0.5, 2.0) * RATE), np.float32))
    return np.concatenate(out)[: int(CLIP_SECONDS * RATE)]


def cases(corpus: Path, debs: Path, scratch: Path) -> pd.DataFrame:
    """One row per generated clip: case, part, audio."""
    labels = pd.read_csv(corpus / "labels.csv")
    music = labels[labels["genre"] != "Spoken"].reset_index(drop=True)
    beds = [decode(corpus / p, RATE).audio for p in music["path"].iloc[:: max(1, len(music) // 12)]]
    rows = []
    speech_packages = sorted({e.package for e in TABLE if e.genre == "Spoken"})
    for package in speech_packages:
        part = "held out" if SPLITS_BY_PACKAGE.get(package) == "test" else "decided on"
        parts = utterances(package, debs, scratch)
        if not parts:
            print(f"{package}: no speech found", file=sys.stderr)
            continue
        for gap in GAPS:
            for k in range(CLIPS_PER_CASE):
                speech = joined(parts, gap, start=k * len(parts) // CLIPS_PER_CASE)
                rows.append(
                    {"case": f"speech, {gap:g} s gaps", "source": package, "part": part, "audio": speech}
                )
                bed = beds[(len(rows) + k) % len(beds)]
                rows.append(
                    {
                        "case": f"speech, {gap:g} s gaps, music bed {BED_DB:g} dB",
                        "source": package,
                        "part": part,
                        "audio": with_bed(speech, bed, BED_DB),
                    }
                )
    for seed in range(6):
        rows.append(
            {
                "case": "solo piano with rests",
                "source": "generated",
                "part": "generated",
                "audio": piano(seed),
            }
        )
        rows.append(
            {"case": "guitar with pauses", "source": "generated", "part": "generated", "audio": guitar(seed)}
        )
    for i, (path, split, genre) in enumerate(zip(music["path"], music["split"], music["genre"])):
        part = "held out" if split == "test" else "decided on"
        if i % 4 == 0:
            audio = decode(corpus / path, RATE).audio[: int(CLIP_SECONDS * RATE)]
            fade = np.clip(np.arange(len(audio)) / (12 * RATE), 0, 1).astype(np.float32)
            rows.append(
                {"case": "music faded in over 12 s", "source": path, "part": part, "audio": audio * fade}
            )
        if genre in ("Classical", "Instrumental"):
            audio = decode(corpus / path, RATE).audio * 10 ** (-25 / 20)
            rows.append({"case": "orchestral, 25 dB quieter", "source": path, "part": part, "audio": audio})
    return pd.DataFrame(rows)


def main() -> None:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="tools/real_corpus.py's folder")
    parser.add_argument("--debs", type=Path, required=True, help="the .debs tools/real_corpus.py --debs kept")
    parser.add_argument(
        "--weights", type=Path, nargs="+", default=[REPO / "weights"], help="zero-shot weights folders"
    )
    parser.add_argument("--work", type=Path, default=Path("zero-shot-work"), help="cache folder")
    args = parser.parse_args()
    cache = args.work / "speech_cue_chunks.pt"
    if cache.exists():  # the cases and the taggers' outputs on them, from an earlier run
        saved = torch.load(cache, weights_only=False)
        table, outputs = saved["table"], saved["outputs"]
    else:
        with tempfile.TemporaryDirectory(prefix="speech-cue-") as scratch:
            table = cases(args.corpus, args.debs, Path(scratch))
        outputs = chunk_outputs(table["audio"], len(table), args.weights[0])
        table = table.drop(columns="audio")
        args.work.mkdir(parents=True, exist_ok=True)
        torch.save({"table": table, "outputs": outputs}, cache)
    spoken = GENRES.index("Spoken")
    print("| weights | case | part | clips | Spoken on top | mean P(Spoken) | most often on top otherwise |")
    print("|---|---|---|---|---|---|---|")
    for weights in args.weights:
        rows = rows_of(weights, outputs, len(table))
        table["top"] = [GENRES[k] for k in rows.argmax(1)]
        table["p_spoken"] = rows[:, spoken]
        for (case, part), group in table.groupby(["case", "part"], sort=False):
            others = group.loc[group["top"] != "Spoken", "top"].value_counts()
            other = f"{others.index[0]} {others.iloc[0]}" if len(others) else "-"
            print(
                f"| {weights.name} | {case} | {part} | {len(group)} | {(group['top'] == 'Spoken').sum()} | "
                f"{group['p_spoken'].mean():.2f} | {other} |"
            )


if __name__ == "__main__":
    main()
