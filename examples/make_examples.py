#!/usr/bin/env python3
"""Regenerate the example payload: three short synthetic clips (no real music ships here).

    python examples/make_examples.py

chords.mp3: decaying piano-like triads; beat.mp3: kick, snare and hi-hat over a bass line;
silence.mp3: digital silence, which predict.py answers with the class prior (a "fallback").
"""

from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 22050
HERE = Path(__file__).resolve().parent


def chords(seconds: float = 8.0) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    out = np.zeros_like(t)
    roots = [220.0, 174.6, 261.6, 196.0]  # A, F, C, G
    for i, root in enumerate(roots * 2):
        start = i * seconds / 8
        local = t - start
        on = local >= 0
        envelope = np.where(on, np.exp(-3 * np.clip(local, 0, None)), 0)
        for ratio in (1, 1.26, 1.5):  # a major triad
            for harmonic, gain in ((1, 1.0), (2, 0.4), (3, 0.2)):
                out += gain * envelope * np.sin(2 * np.pi * root * ratio * harmonic * local)
    return 0.5 * out / np.abs(out).max()


def beat(seconds: float = 8.0, bpm: float = 120.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    n = int(RATE * seconds)
    out = np.zeros(n)
    step = int(RATE * 60 / bpm / 2)  # eighth notes
    hit = np.arange(int(0.25 * RATE)) / RATE
    kick = np.sin(2 * np.pi * (50 + 100 * np.exp(-30 * hit)) * hit) * np.exp(-12 * hit)
    snare = rng.standard_normal(len(hit)) * np.exp(-20 * hit) * 0.6
    hat = np.diff(rng.standard_normal(len(hit) + 1)) * np.exp(-80 * hit) * 0.2
    for i, start in enumerate(range(0, n - len(hit), step)):
        out[start : start + len(hit)] += hat
        if i % 4 == 0:
            out[start : start + len(hit)] += kick
        if i % 4 == 2:
            out[start : start + len(hit)] += snare
    t = np.arange(n) / RATE
    bass_notes = np.repeat([55.0, 55.0, 65.4, 49.0], n // 4 + 1)[:n]
    out += 0.3 * np.sign(np.sin(2 * np.pi * bass_notes * t)) * 0.5
    return 0.5 * out / np.abs(out).max()


if __name__ == "__main__":
    sf.write(HERE / "chords.mp3", chords().astype(np.float32), RATE)
    sf.write(HERE / "beat.mp3", beat().astype(np.float32), RATE)
    sf.write(HERE / "silence.mp3", np.zeros(3 * RATE, np.float32), RATE)
    print("wrote", ", ".join(p.name for p in sorted(HERE.glob("*.mp3"))))
