"""Generated music of FMA-medium's shape: the genre space, the dataset plan, the synthesis and
the FMA layout on disk (`fma_metadata/tracks.csv` with FMA's two-row header, `fma_medium/XXX/
XXXXXX.mp3`). bench/fma_shaped.py says why and runs train.py on it.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from scipy.signal import oaconvolve

from model.fma import SPLITS, audio_path
from model.genres import FMA_MEDIUM_COUNTS, GENRES
from model.progress import progress_bar

GENERATOR_VERSION = 1  # bump when the generated audio or metadata changes: the work folder is keyed by it

# ======================================================================================
# The genre space: every genre a centre in one parameter space, each dimension in [0, 1]
# ======================================================================================

DIMENSIONS = (
    "brightness",
    "harmonicity",
    "tempo",
    "beat",
    "note_rate",
    "register",
    "distortion",
    "bandwidth",
    "sustain",
    "voice",
)
CENTRES: dict[str, tuple[float, ...]] = {
    #                     bright harm  tempo beat  rate  reg   dist  band  sust  voice
    "Rock": (0.65, 0.55, 0.60, 0.75, 0.45, 0.45, 0.70, 0.90, 0.50, 0.35),
    "Pop": (0.60, 0.65, 0.58, 0.65, 0.45, 0.58, 0.25, 0.90, 0.50, 0.50),
    "Folk": (0.45, 0.75, 0.48, 0.25, 0.50, 0.50, 0.10, 0.80, 0.30, 0.40),
    "Country": (0.55, 0.72, 0.55, 0.50, 0.45, 0.52, 0.15, 0.85, 0.35, 0.45),
    "Electronic": (0.70, 0.45, 0.68, 0.85, 0.60, 0.55, 0.35, 0.95, 0.55, 0.10),
    "Experimental": (0.55, 0.35, 0.45, 0.40, 0.55, 0.50, 0.45, 0.85, 0.60, 0.10),
    "Hip-Hop": (0.45, 0.45, 0.40, 0.85, 0.40, 0.35, 0.25, 0.90, 0.45, 0.65),
    "Instrumental": (0.50, 0.70, 0.45, 0.40, 0.50, 0.55, 0.15, 0.85, 0.60, 0.05),
    "International": (0.55, 0.65, 0.55, 0.55, 0.60, 0.60, 0.20, 0.80, 0.40, 0.40),
    "Classical": (0.40, 0.90, 0.35, 0.05, 0.45, 0.60, 0.02, 0.85, 0.85, 0.05),
    "Old-Time / Historic": (0.35, 0.70, 0.50, 0.30, 0.45, 0.50, 0.20, 0.20, 0.45, 0.35),
    "Jazz": (0.45, 0.75, 0.50, 0.45, 0.65, 0.50, 0.10, 0.85, 0.45, 0.20),
    "Blues": (0.45, 0.70, 0.42, 0.50, 0.45, 0.45, 0.30, 0.75, 0.50, 0.40),
    "Soul-RnB": (0.50, 0.65, 0.45, 0.60, 0.45, 0.50, 0.15, 0.85, 0.55, 0.55),
    "Spoken": (0.40, 0.30, 0.40, 0.05, 0.30, 0.45, 0.05, 0.70, 0.30, 0.95),
    "Easy Listening": (0.40, 0.80, 0.40, 0.30, 0.35, 0.60, 0.02, 0.85, 0.75, 0.30),
}
# Where a between-genres artist or a mislabelled track borrows its sound from.
NEIGHBOURS: dict[str, tuple[str, ...]] = {
    "Rock": ("Pop", "Folk", "Country", "Blues", "Experimental"),
    "Pop": ("Rock", "Soul-RnB", "Electronic", "Easy Listening"),
    "Folk": ("Country", "Rock", "International", "Old-Time / Historic"),
    "Country": ("Folk", "Rock", "Blues"),
    "Electronic": ("Experimental", "Hip-Hop", "Pop"),
    "Experimental": ("Electronic", "Instrumental", "Rock"),
    "Hip-Hop": ("Electronic", "Soul-RnB", "Pop"),
    "Instrumental": ("Classical", "Experimental", "Electronic", "Folk"),
    "International": ("Folk", "Pop", "Electronic"),
    "Classical": ("Instrumental", "Old-Time / Historic", "Easy Listening"),
    "Old-Time / Historic": ("Classical", "Folk", "Jazz", "Blues"),
    "Jazz": ("Blues", "Soul-RnB", "Instrumental"),
    "Blues": ("Jazz", "Rock", "Country"),
    "Soul-RnB": ("Pop", "Hip-Hop", "Jazz"),
    "Spoken": ("Experimental", "Hip-Hop", "Old-Time / Historic"),
    "Easy Listening": ("Pop", "Jazz", "Classical"),
}


@dataclass(frozen=True)
class Shape:
    """Everything the generated dataset depends on (its work folder is keyed by it)."""

    tracks: int
    seconds: float
    seed: int
    rate: int = 22050
    artist_spread: float = 0.10  # std of an artist's parameters around its genre's centre
    track_spread: float = 0.03  # std of a track's parameters around its artist's
    crossover: float = 0.20  # share of artists placed part-way towards a neighbouring genre
    label_noise: float = 0.07  # share of tracks that sound like a neighbouring genre
    min_tracks: int = 12  # floor per genre ...
    min_artists: int = 5  # ... and artists per genre, so every genre reaches all three splits
    version: int = GENERATOR_VERSION


# ======================================================================================
# Planning: genres -> artists -> splits -> one parameter vector per track
# ======================================================================================


def class_counts(total: int, floor: int) -> tuple[dict[str, int], list[str]]:
    """FMA-medium's counts scaled to `total` tracks, each genre at least `floor` (the floored
    genres are returned too); largest remainders make the sum exact."""
    floored: list[str] = []
    while True:
        free = [g for g in GENRES if g not in floored]
        room = total - floor * len(floored)
        weight = sum(FMA_MEDIUM_COUNTS[g] for g in free)
        share = {g: room * FMA_MEDIUM_COUNTS[g] / weight for g in free}
        low = [g for g in free if share[g] < floor]
        if not low:
            break
        floored += low
    counts = {g: int(share[g]) for g in free} | {g: floor for g in floored}
    for g in sorted(free, key=lambda g: share[g] - int(share[g]), reverse=True)[
        : total - sum(counts.values())
    ]:
        counts[g] += 1
    return counts, sorted(floored)


def artist_sizes(count: int, min_artists: int, rng: np.random.Generator) -> list[int]:
    """Tracks per artist, log-normal (median ~3, a tail to tens) as in FMA, capped so that a genre
    has at least `min_artists` artists."""
    cap = max(1, min(60, count // min_artists))
    sizes: list[int] = []
    while sum(sizes) < count:
        sizes.append(int(np.clip(round(rng.lognormal(1.1, 0.9)), 1, min(cap, count - sum(sizes)))))
    return sizes


def split_artists(sizes: list[int], rng: np.random.Generator, fractions=(0.8, 0.1, 0.1)) -> list[str]:
    """One split per artist: largest artists first (ties in random order), each to the split
    furthest below its share of the genre's tracks; then validation and test each take a
    training artist, the smallest, if they have none."""
    order = sorted(range(len(sizes)), key=lambda i: (-sizes[i], rng.random()))
    filled, target = np.zeros(3), np.array(fractions) * sum(sizes)
    split = [0] * len(sizes)
    for i in order:
        split[i] = int(np.argmax(target - filled))
        filled[split[i]] += sizes[i]
    for s in (1, 2):
        if s not in split:
            split[min((i for i in range(len(sizes)) if split[i] == 0), key=lambda i: sizes[i])] = s
    return [SPLITS[s] for s in split]


def neighbour_centre(genre: str, rng: np.random.Generator) -> np.ndarray:
    return np.array(CENTRES[rng.choice(NEIGHBOURS[genre])])


def plan_dataset(shape: Shape) -> tuple[pd.DataFrame, list[str]]:
    """One row per track: track_id, genre, artist, split, kind, seeds and its sound parameters;
    plus the floored genres. Deterministic in `shape`."""
    rng = np.random.default_rng(shape.seed)
    counts, floored = class_counts(shape.tracks, shape.min_tracks)
    rows, artist_id = [], 0
    for genre in GENRES:
        sizes = artist_sizes(counts[genre], shape.min_artists, rng)
        for size, split in zip(sizes, split_artists(sizes, rng)):
            artist_id += 1
            centre = np.array(CENTRES[genre])
            if rng.random() < shape.crossover:  # an artist between two genres
                centre = centre + rng.uniform(0.25, 0.5) * (neighbour_centre(genre, rng) - centre)
            artist = centre + shape.artist_spread * rng.standard_normal(len(DIMENSIONS))
            for _ in range(size):
                noisy = rng.random() < shape.label_noise
                sound = (
                    neighbour_centre(genre, rng) + shape.artist_spread * rng.standard_normal(len(DIMENSIONS))
                    if noisy
                    else artist + shape.track_spread * rng.standard_normal(len(DIMENSIONS))
                )
                rows.append(
                    {
                        "genre": genre,
                        "artist": artist_id,
                        "split": split,
                        "kind": "music",
                        "mislabelled": noisy,
                        "params": np.clip(sound, 0, 1),
                    }
                )
    for kind in ("empty", "truncated", "silent"):  # FMA's faulty files, in the training split
        rows.append(
            {
                "genre": "Rock",
                "artist": 0,
                "split": "training",
                "kind": kind,
                "mislabelled": False,
                "params": np.array(CENTRES["Rock"]),
            }
        )
    plan = pd.DataFrame(rows)
    plan.insert(0, "track_id", 2 + rng.permutation(len(plan)))  # FMA's ids start at 2
    plan["artist_seed"] = [shape.seed * 1_000_003 + a for a in plan["artist"]]
    plan["track_seed"] = shape.seed * 1_000_003 + 500_000 + plan["track_id"]
    return plan.sort_values("track_id").reset_index(drop=True), floored


# ======================================================================================
# Synthesis: one parameter vector -> 30 s of mono audio (numpy, vectorised)
# ======================================================================================


def harmonic_sum(phase: np.ndarray, gains: list) -> np.ndarray:
    """sum_k gains[k-1] * sin(k * phase) in float32, by the Chebyshev recurrence: one sin and one
    cos in all, not one sin per harmonic (the synthesis's hot loop). Gains broadcast against phase."""
    previous, current = np.zeros_like(phase, np.float32), np.sin(phase).astype(np.float32)
    twice_cos = (2 * np.cos(phase)).astype(np.float32)
    out = current * gains[0]
    for gain in gains[1:]:
        following = twice_cos * current
        following -= previous
        previous, current = current, following
        out += current * gain
    return out


def note_track(
    starts: np.ndarray,
    midi: np.ndarray,
    t: np.ndarray,
    rate: int,
    harmonics: int,
    slope: float,
    decay: np.ndarray | float,
) -> tuple[np.ndarray, np.ndarray]:
    """Harmonic notes (amplitudes k**-slope, none above 0.45 x rate) starting at `starts` seconds;
    returns the signal and its per-sample envelope (attack 5 ms, exponential decay)."""
    index = np.searchsorted(starts, t, side="right") - 1
    freq = 440.0 * 2 ** ((midi[index] - 69) / 12)
    phase = 2 * np.pi * np.cumsum(freq) / rate
    since = t - starts[index]
    tau = decay[index] if isinstance(decay, np.ndarray) else decay
    envelope = (1 - np.exp(-since / 0.005)) * np.exp(-since / tau)
    gains = [np.float32(k**-slope) * (k * freq < 0.45 * rate) for k in range(1, harmonics + 1)]
    return harmonic_sum(phase, gains) * envelope, envelope


def melody_and_bass(
    p: dict, t: np.ndarray, rate: int, beat: float, artist: np.random.Generator, track: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A pentatonic random-walk melody at the note rate and a bass on the bar's chord roots."""
    seconds = t[-1] + 1 / rate
    note = beat / 2 ** (3 * p["note_rate"] - 1)  # 0.5 .. 4 notes per beat
    lengths = note * track.choice([0.5, 1, 1, 1, 2], size=int(seconds / note * 2) + 4)
    starts = np.concatenate([[0.0], np.cumsum(lengths)])
    scale = np.array([0, 2, 4, 7, 9]) if artist.random() < 0.5 else np.array([0, 3, 5, 7, 10])
    degree = np.clip(np.cumsum(track.integers(-2, 3, len(starts))), -8, 8)
    root = 40 + 44 * p["register"] + artist.integers(-3, 4)
    midi = root + 12 * (degree // 5) + scale[degree % 5]
    slope = 3.0 - 2.5 * p["brightness"]
    tau = note * (0.15 + 4 * p["sustain"] ** 2)
    melody, envelope = note_track(starts, midi.astype(float), t, rate, 8, slope, tau)
    progression = np.array([0, 5, 7, 0]) if artist.random() < 0.5 else np.array([0, 9, 5, 7])
    bar = np.arange(0, seconds / beat + 1)
    bass_midi = root - 24 + progression[(bar // 4).astype(int) % 4]
    bass, _ = note_track(bar * beat, bass_midi.astype(float), t, rate, 4, 1.0, beat * 0.6)
    return melody + (0.2 + 0.8 * p["beat"]) * bass, envelope


def drums(
    p: dict, n: int, rate: int, beat: float, artist: np.random.Generator, track: np.random.Generator
) -> np.ndarray:
    """Kick, snare and hi-hat hits on the artist's pattern, each a short kernel convolved in."""
    kick_every = 1 if artist.random() < p["beat"] else 2  # four on the floor, or every other beat
    hat_per_beat = 2 ** int(round(2 * p["note_rate"]))  # 1, 2 or 4
    hits = {name: np.zeros(n) for name in ("kick", "snare", "hat")}
    beats = np.arange(0, n / rate / beat)
    jitter = lambda size: track.normal(0, 0.004, size)  # noqa: E731 -- human timing
    for name, times in (
        ("kick", beats[::kick_every]),
        ("snare", beats[1::2]),
        ("hat", np.arange(0, len(beats), 1 / hat_per_beat)),
    ):
        where = ((times * beat + jitter(len(times))) * rate).astype(int)
        where = where[(where >= 0) & (where < n)]
        hits[name][where] = track.uniform(0.7, 1.0, len(where))
    k = np.arange(int(0.3 * rate)) / rate
    kernels = {
        "kick": np.sin(2 * np.pi * (50 * k + 3 * (1 - np.exp(-k / 0.02)))) * np.exp(-k / 0.12),
        "snare": (
            track.standard_normal(len(k)) * np.exp(-k / 0.05)
            + 0.4 * np.sin(2 * np.pi * 180 * k) * np.exp(-k / 0.03)
        ),
        "hat": np.diff(track.standard_normal(len(k) + 1)) * np.exp(-k / 0.01) * 0.4,
    }
    return sum(oaconvolve(hits[name], kernels[name])[:n] for name in hits)


VOWELS = np.array([(800, 1200), (500, 1900), (300, 2300), (500, 900), (350, 800)], dtype=float)


def voice(
    p: dict, t: np.ndarray, rate: int, beat: float, artist: np.random.Generator, track: np.random.Generator
) -> np.ndarray:
    """A speech-like voice: a gliding glottal pitch whose harmonics follow the formants of one
    vowel per syllable; syllables at 3-6 Hz, some silent (pauses)."""
    seconds = t[-1] + 1 / rate
    syllable = 1 / (3 + 3 * p["note_rate"])
    if p["beat"] > 0.5:  # rapped: syllables locked to the beat
        syllable = beat / max(1, round(beat / syllable))
    count = int(seconds / syllable) + 1
    index = np.minimum((t / syllable).astype(int), count - 1)
    vowel = VOWELS[track.integers(0, len(VOWELS), count)][index]
    spoken = (track.random(count) > 0.25)[index]
    since = (t % syllable) / syllable
    envelope = np.sin(np.pi * since) ** 2 * spoken
    glide = np.interp(t, np.linspace(0, seconds, count), track.normal(0, 0.12, count))
    f0 = artist.uniform(100, 220) * 2**glide
    phase = 2 * np.pi * np.cumsum(f0) / rate
    # harmonic gains follow the formants, computed once per block of 32 samples (1.5 ms)
    blocks = -(-len(t) // 32)
    phase = np.pad(phase, (0, 32 * blocks - len(t)), mode="edge").reshape(blocks, 32)
    f0, vowel = f0[::32, None], vowel[::32]
    gains = [
        (
            (
                np.exp(-0.5 * ((k * f0 - vowel[:, :1]) / 120) ** 2)
                + 0.7 * np.exp(-0.5 * ((k * f0 - vowel[:, 1:]) / 180) ** 2)
                + 0.03
            )
            * (k * f0 < 0.45 * rate)
        ).astype(np.float32)
        for k in range(1, 25)
    ]
    return harmonic_sum(phase, gains).reshape(-1)[: len(t)] * envelope


def coloured_noise(n: int, rate: int, brightness: float, rng: np.random.Generator) -> np.ndarray:
    """Noise whose spectrum falls by 0 (bright) to 9 dB per octave (dark), shaped in one FFT."""
    freqs = np.fft.rfftfreq(n, 1 / rate)
    shape = np.maximum(freqs, 50.0) ** (-1.5 * (1 - brightness))
    spectrum = (rng.standard_normal(len(freqs)) + 1j * rng.standard_normal(len(freqs))) * shape
    return np.fft.irfft(spectrum, n)


def unit_rms(x: np.ndarray) -> np.ndarray:
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def synthesise(
    values: np.ndarray, seconds: float, rate: int, artist_seed: int, track_seed: int
) -> np.ndarray:
    """Mono float32 audio of one track: melody + bass (distorted), noise, drums and voice mixed by
    the parameters, then band-limited; old recordings get hiss and crackle."""
    p = dict(zip(DIMENSIONS, values))
    artist, track = np.random.default_rng(artist_seed), np.random.default_rng(track_seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    beat = 60 / (60 + 120 * p["tempo"])
    tonal, envelope = melody_and_bass(p, t, rate, beat, artist, track)
    drive = 1 + 20 * p["distortion"] ** 1.5
    tonal = np.tanh(drive * tonal / np.abs(tonal).max()) / np.tanh(drive)
    noise = coloured_noise(n, rate, p["brightness"], track) * (0.4 + 0.6 * envelope)
    music = (
        p["harmonicity"] * unit_rms(tonal)
        + (1 - p["harmonicity"]) * unit_rms(noise)
        + 1.2 * p["beat"] * unit_rms(drums(p, n, rate, beat, artist, track))
    )
    mix = (1 - 0.8 * p["voice"]) * unit_rms(music)
    if p["voice"] > 0.03:
        mix = mix + 1.2 * p["voice"] * unit_rms(voice(p, t, rate, beat, artist, track))
    old = 1 - p["bandwidth"]
    crackle = (track.random(n) < 20 / rate) * track.standard_normal(n) * 8
    mix = unit_rms(mix) + old * (0.15 * coloured_noise(n, rate, 0.8, track) + old * crackle)
    freqs = np.fft.rfftfreq(n, 1 / rate)
    cutoff = 2000 * 5.5 ** p["bandwidth"]  # 2 kHz (a 78 rpm record) to 11 kHz
    mix = np.fft.irfft(np.fft.rfft(mix) / (1 + (freqs / cutoff) ** 4), n)
    mix = 10 ** (track.uniform(-24, -16) / 20) * unit_rms(mix)  # loudness, as mastered
    return (mix * min(1.0, 0.99 / np.abs(mix).max())).astype(np.float32)  # no clipping


# ======================================================================================
# Writing the FMA layout
# ======================================================================================


def write_track(job: tuple) -> None:
    """One mp3 (or one of the faulty files), written under a temporary name then renamed, so
    an interrupted generation never leaves a half-written file that looks finished."""
    path, kind, values, artist_seed, track_seed, seconds, rate = job
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.mp3")
    if kind == "empty":
        tmp.write_bytes(b"")
    elif kind == "silent":
        sf.write(tmp, np.zeros(int(seconds * rate), np.float32), rate, format="MP3")
    else:
        sf.write(tmp, synthesise(values, seconds, rate, artist_seed, track_seed), rate, format="MP3")
        if kind == "truncated":  # a download cut off after a few frames: too short to use
            tmp.write_bytes(tmp.read_bytes()[:2000])
    tmp.rename(path)


def generate_audio(plan: pd.DataFrame, audio: Path, shape: Shape, jobs: int) -> int:
    """Write the mp3s that are not there yet, in `jobs` processes; returns how many were written."""
    todo = [
        (
            str(audio_path(audio, row.track_id)),
            row.kind,
            row.params,
            row.artist_seed,
            row.track_seed,
            shape.seconds,
            shape.rate,
        )
        for row in plan.itertuples()
        if not audio_path(audio, row.track_id).exists()
    ]
    if todo:
        print(
            f"generating {len(todo)} of {len(plan)} tracks in {audio} ({jobs} processes) ...", file=sys.stderr
        )
        with ProcessPoolExecutor(jobs) as pool:
            for _ in progress_bar(len(todo), "track", iterable=pool.map(write_track, todo, chunksize=4)):
                pass
    return len(todo)


def write_tracks_csv(plan: pd.DataFrame, metadata: Path, shape: Shape) -> None:
    """tracks.csv with FMA's two-row header (and its third row naming the index, track_id)."""
    metadata.mkdir(parents=True, exist_ok=True)
    columns = pd.MultiIndex.from_tuples(
        [
            ("artist", "id"),
            ("artist", "name"),
            ("set", "split"),
            ("set", "subset"),
            ("track", "duration"),
            ("track", "genre_top"),
            ("track", "title"),
        ]
    )
    table = pd.DataFrame(
        list(
            zip(
                plan["artist"],
                [f"artist {a:05d}" for a in plan["artist"]],
                plan["split"],
                ["medium"] * len(plan),
                [int(shape.seconds)] * len(plan),
                plan["genre"],
                [f"{kind} {tid}" for kind, tid in zip(plan["kind"], plan["track_id"])],
            )
        ),
        index=pd.Index(plan["track_id"], name="track_id"),
        columns=columns,
    )
    table.to_csv(metadata / "tracks.csv")


def prepare_work(work: Path, shape: Shape) -> None:
    """A work folder holds one dataset: refuse one made with other settings rather than mix them."""
    spec = work / "dataset.json"
    wanted = asdict(shape)
    if spec.exists() and json.loads(spec.read_text()) != wanted:
        sys.exit(
            f"fma_shaped.py: error: {work} holds a dataset made with other settings "
            f"({spec}): choose another --work or delete it"
        )
    work.mkdir(parents=True, exist_ok=True)
    spec.write_text(json.dumps(wanted, indent=1) + "\n")
