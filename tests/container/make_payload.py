#!/usr/bin/env python3
"""A grader-like payload with the awkward files of real life, for the run emulation.

    python tests/container/make_payload.py DIR

Needs only the runtime requirements (numpy, soundfile). Writes music-like clips (30 s CBR, 8 s
VBR, a 48 kHz mono one), the bad files the grader's secret set and the wild contain (silent,
0.5 s, empty, random bytes, truncated, 1 KB of garbage mid-file, a WAV renamed .mp3), names with
spaces, commas, quotes, non-ASCII and an upper-case .MP3, plus a text file and a sub-folder
that must get no row.
"""

import sys
from pathlib import Path

import numpy as np
import soundfile as sf


def music(seconds: float, rate: int, channels: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    tones = sum(np.sin(2 * np.pi * f * t) for f in rng.uniform(100, 1500, 3)) / 4
    return (tones[:, None] + 0.05 * rng.standard_normal((len(t), channels))).astype(np.float32)


def main(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    sf.write(folder / "3f1c2a9e-0d4b-4c5e-9a77-1b2c3d4e5f60.mp3", music(30, 44100, 2, 1), 44100)
    sf.write(folder / 'vbr clip, "quoted".mp3', music(8, 44100, 2, 2), 44100, bitrate_mode="VARIABLE")
    sf.write(folder / "chanson-été.MP3", music(12, 48000, 1, 3), 48000)
    sf.write(folder / "silent.mp3", np.zeros((44100 * 5, 2), np.float32), 44100)
    sf.write(folder / "half-second.mp3", music(0.5, 44100, 2, 4), 44100)
    sf.write(folder / "wav-renamed.mp3", music(3, 22050, 1, 5), 22050, format="WAV")
    whole = (folder / "3f1c2a9e-0d4b-4c5e-9a77-1b2c3d4e5f60.mp3").read_bytes()
    (folder / "truncated.mp3").write_bytes(whole[: len(whole) // 3])
    damaged = bytearray(whole)
    damaged[len(whole) // 2 : len(whole) // 2 + 1024] = (
        np.random.default_rng(6).integers(0, 256, 1024, np.uint8).tobytes()
    )
    (folder / "garbage-mid.mp3").write_bytes(bytes(damaged))
    (folder / "empty.mp3").write_bytes(b"")
    (folder / "random-bytes.mp3").write_bytes(
        np.random.default_rng(7).integers(0, 256, 5000, np.uint8).tobytes()
    )
    (folder / "readme.txt").write_text("not an mp3: no row")
    (folder / "sub").mkdir(exist_ok=True)
    (folder / "sub" / "nested.mp3").write_bytes(whole)  # only the top level is the payload
    print(f"payload: {len(list(folder.glob('*.[mM][pP]3')))} mp3 files in {folder}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
