"""Audio made at test time: synthetic music-like signals written as real mp3 files."""

from __future__ import annotations

import contextlib
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import lameenc
import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def signal(seconds: float, rate: int, channels: int = 2, freq: float = 440.0, seed: int = 0) -> np.ndarray:
    """A tone plus a little noise, (samples, channels) float32, peak ~0.5."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.4 * np.sin(2 * np.pi * freq * t)
    out = tone[:, None] + 0.03 * rng.standard_normal((len(t), channels))
    return out.astype(np.float32)


def write_mp3(path: Path, audio: np.ndarray, rate: int, vbr: bool = False) -> Path:
    """mp3 via libsndfile/LAME; VBR files get a Xing header."""
    sf.write(path, audio, rate, format="MP3", bitrate_mode="VARIABLE" if vbr else "CONSTANT")
    return path


def write_vbr_without_xing(path: Path, audio: np.ndarray, rate: int) -> Path:
    """VBR mp3 straight from LAME's encoder, with no Xing/Info header: soundfile truncates these."""
    encoder = lameenc.Encoder()
    encoder.set_channels(audio.shape[1])
    encoder.set_in_sample_rate(rate)
    encoder.set_vbr(4)
    encoder.set_vbr_quality(2)
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes()
    path.write_bytes(encoder.encode(pcm) + encoder.flush())
    return path


def with_cover_art(mp3: bytes, image_bytes: int) -> bytes:
    """Prepend an ID3v2.3 tag holding an APIC (cover art) frame of `image_bytes` bytes."""
    picture = b"\x00image/jpeg\x00\x03cover\x00" + b"\xff\xd8" + bytes(image_bytes)
    frame = b"APIC" + struct.pack(">I", len(picture)) + b"\x00\x00" + picture
    size = len(frame)
    syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    return b"ID3\x03\x00\x00" + syncsafe + frame + mp3


def dominant_frequency(audio: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.fft.rfftfreq(len(audio), 1 / rate)[spectrum.argmax()])


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> dict[str, Path]:
    """A set of awkward files shared by the decoding and end-to-end tests."""
    folder = tmp_path_factory.mktemp("clips")
    rate = 44100
    music = signal(30, rate)
    files = {
        "cbr30": write_mp3(folder / "cbr30.mp3", music, rate),
        "vbr_no_xing30": write_vbr_without_xing(folder / "vbr_no_xing30.mp3", music, rate),
        "silent": write_mp3(folder / "silent.mp3", np.zeros((5 * rate, 2), np.float32), rate),
        "short": write_mp3(folder / "short.mp3", signal(0.5, rate), rate),
    }
    data = files["cbr30"].read_bytes()
    rng = np.random.default_rng(1)
    garbage = bytearray(data)
    middle = len(data) // 2
    garbage[middle : middle + 1024] = rng.integers(0, 256, 1024, dtype=np.uint8).tobytes()
    files["garbage_mid"] = folder / "garbage_mid.mp3"
    files["garbage_mid"].write_bytes(bytes(garbage))
    files["truncated"] = folder / "truncated.mp3"
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["empty"] = folder / "empty.mp3"
    files["empty"].write_bytes(b"")
    files["random"] = folder / "random.mp3"
    files["random"].write_bytes(rng.integers(0, 256, 20000, dtype=np.uint8).tobytes())
    files["wav_renamed"] = folder / "wav_renamed.mp3"
    sf.write(files["wav_renamed"], signal(3, 22050), 22050, format="WAV")
    files["cover_art"] = folder / "cover_art.mp3"
    files["cover_art"].write_bytes(
        with_cover_art(write_mp3(folder / "tmp.mp3", signal(10, rate), rate).read_bytes(), 8_000_000)
    )
    (folder / "tmp.mp3").unlink()
    return files


def tiny_ensemble_manifest(temperature: float = 1.5):
    """Three small random CNN members over two spectrogram configs, plus the prior."""
    from model.genres import GENRES, fma_medium_prior
    from model.manifest import Manifest, MemberSpec
    from model.spectrogram import SpectrogramConfig

    narrow = SpectrogramConfig(n_mels=32)
    coarse = SpectrogramConfig(n_fft=1024, hop_length=512, n_mels=48)
    cnn = dict(architecture="short_chunk_resnet", hparams={"channels": [4, 8], "dropout": 0.1})
    members = (
        MemberSpec(name="a", spectrogram=narrow, chunk_seconds=3.0, **cnn),
        MemberSpec(name="b", spectrogram=narrow, chunk_seconds=3.0, **cnn),
        MemberSpec(
            name="c", spectrogram=coarse, chunk_seconds=1.5, **{**cnn, "hparams": {"channels": [4, 8, 16]}}
        ),
        MemberSpec(name="prior"),
    )
    return Manifest(GENRES, 16000, temperature, tuple(fma_medium_prior()), members, "tiny test ensemble")


def random_state_dicts(manifest, seed: int = 0) -> dict:
    import torch

    from model.networks import build_network

    torch.manual_seed(seed)
    states = {}
    for member in manifest.members:
        if member.kind == "cnn":
            net = build_network(member.architecture, member.spectrogram.n_mels, 16, member.hparams)
            for module in net.modules():  # non-trivial running statistics, as after training
                if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                    module.running_mean.uniform_(-1, 1)
                    module.running_var.uniform_(0.5, 2)
            net.input_norm.running_mean.fill_(-50.0)  # dB inputs sit around -50, as training would see
            net.input_norm.running_var.fill_(400.0)
            states[member.name] = net.state_dict()
    return states


@pytest.fixture(scope="session")
def zero_shot_weights(tmp_path_factory) -> Path:
    """The zero-shot default as tools/zero_shot_ensemble.py writes it, in a folder of its own:
    tests of that model must not depend on what weights/ holds (a fork commits trained weights)."""
    import subprocess

    folder = tmp_path_factory.mktemp("zero-shot-weights")
    subprocess.run(
        [sys.executable, str(REPO / "tools" / "zero_shot_ensemble.py"), "--out", str(folder)],
        check=True,
        capture_output=True,
    )
    return folder


@pytest.fixture(scope="session")
def shared_tiny_weights(tmp_path_factory) -> Path:
    """The tiny ensemble once per session, for tests that only read it: fast, and its rows do
    not depend on which clips share a batch."""
    from model.saving import save_ensemble

    folder = tmp_path_factory.mktemp("tiny-weights")
    manifest = tiny_ensemble_manifest()
    save_ensemble(folder, manifest, random_state_dicts(manifest))
    return folder


@pytest.fixture
def tiny_weights(tmp_path) -> Path:
    from model.saving import save_ensemble

    manifest = tiny_ensemble_manifest()
    save_ensemble(tmp_path / "weights", manifest, random_state_dicts(manifest))
    return tmp_path / "weights"


# Four acoustically distinct synthetic "genres" for training tests.
TOY_GENRES = ("Classical", "Electronic", "Hip-Hop", "Rock")


def toy_clip(genre: str, seed: int, seconds: float = 3.0, rate: int = 22050) -> np.ndarray:
    """Mono float32: Classical = soft high sines; Electronic = broadband clicks at 2-4 Hz;
    Hip-Hop = low-passed noise with a sub-bass; Rock = a clipped low sawtooth chord."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    if genre == "Classical":
        x = sum(np.sin(2 * np.pi * f * t) for f in rng.uniform(900, 2000, 3)) / 3
    elif genre == "Electronic":
        x = np.zeros_like(t)
        period = int(rate / rng.uniform(2, 4))
        for start in range(0, len(t), period):
            x[start : start + 400] += rng.standard_normal(min(400, len(t) - start))
    elif genre == "Hip-Hop":
        noise = np.convolve(rng.standard_normal(len(t)), np.ones(40) / 40, mode="same") * 4
        x = noise + 0.5 * np.sin(2 * np.pi * rng.uniform(40, 60) * t)
    else:
        x = sum(2 * ((f * t) % 1) - 1 for f in rng.uniform(80, 200) * np.array([1, 1.25, 1.5]))
        x = np.clip(2 * x, -1, 1)
    return (0.5 * x / (np.abs(x).max() + 1e-9)).astype(np.float32)


def make_fma_dataset(root: Path, per_split=(16, 4, 4), seconds: float = 3.0) -> tuple[Path, Path]:
    """fma_metadata/tracks.csv (FMA's two-row header) + fma_medium/XXX/XXXXXX.mp3 of toy genres,
    plus one empty and one truncated mp3 in the training split."""
    import pandas as pd

    metadata, audio = root / "fma_metadata", root / "fma_medium"
    metadata.mkdir(parents=True)
    rows, track_id = [], 2
    for split, count in zip(("training", "validation", "test"), per_split):
        for genre in TOY_GENRES:
            for _ in range(count):
                path = audio / f"{track_id:06d}"[:3] / f"{track_id:06d}.mp3"
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(path, toy_clip(genre, seed=track_id, seconds=seconds), 22050)
                rows.append((track_id, "medium", split, genre, f"artist {track_id}"))
                track_id += 1
    for kind in ("empty", "truncated"):
        path = audio / f"{track_id:06d}"[:3] / f"{track_id:06d}.mp3"
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "empty":
            path.write_bytes(b"")
        else:
            sf.write(path, toy_clip("Rock", seed=track_id, seconds=seconds), 22050)
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        rows.append((track_id, "medium", "training", "Rock", f"artist {track_id}"))
        track_id += 1
    rows.append((track_id, "large", "training", "Rock", "not in medium"))  # filtered out by subset
    columns = pd.MultiIndex.from_tuples(
        [("set", "subset"), ("set", "split"), ("track", "genre_top"), ("artist", "name")]
    )
    frame = pd.DataFrame(
        [r[1:] for r in rows], index=pd.Index([r[0] for r in rows], name="track_id"), columns=columns
    )
    frame.to_csv(metadata / "tracks.csv")
    return metadata, audio


def exit_on_short_clip(decoded) -> float:
    """A decode-worker transform that kills its process on clips under 1 s, as a decoder segfault
    would: the pool must survive it (see test_audio.py)."""
    import os

    if decoded.seconds < 1:
        os._exit(3)
    return decoded.seconds


def hang_on_short_clip(decoded) -> float:
    """A decode-worker transform that never returns on clips under 1 s, as a decoder stuck in a
    loop would: the file must time out, the others go on (see test_audio.py)."""
    import time

    while decoded.seconds < 1:
        time.sleep(1)
    return decoded.seconds


def sigint_enabled() -> None:
    """preexec_fn for the ^C tests: a shell that runs the suite as a background job has its
    children ignore SIGINT, and Python then never raises KeyboardInterrupt; restore the default."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt_decoding(monkeypatch, after: int) -> None:
    """Make the feature cache's decoding raise KeyboardInterrupt (as ^C would) after `after` tracks."""
    import model.feature_cache

    real = model.feature_cache.decode_many

    def interrupted(*args, **kwargs):
        for count, item in enumerate(real(*args, **kwargs)):
            if count == after:
                raise KeyboardInterrupt
            yield item

    monkeypatch.setattr("model.feature_cache.decode_many", interrupted)


def run_predict(payload: Path, weights: Path, out: Path, *extra: str):
    """predict.py on a folder with an ensemble, as a user runs it: the CompletedProcess."""
    import subprocess

    command = [sys.executable, str(REPO / "predict.py"), "--payload", str(payload), "--weights", str(weights)]
    return subprocess.run([*command, "--out", str(out), *extra], capture_output=True, text=True)


@contextlib.contextmanager
def small_disk(folder: Path, size_kb: int, free_kb: int):
    """`folder` as a `size_kb` tmpfs with about `free_kb` left free (a filler file takes the
    rest; `folder / "filler"`, delete it to make room). Needs root to mount (CI runs as root);
    elsewhere the test is skipped."""
    folder.mkdir(parents=True, exist_ok=True)
    mount = ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder)]
    if os.geteuid() != 0 or subprocess.run(mount, capture_output=True).returncode:
        pytest.skip("needs root to mount a small tmpfs")
    try:
        (folder / "filler").write_bytes(b"x" * ((size_kb - free_kb) * 1024))
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=False)


def children_of(pid: int) -> set[int]:
    """Every live descendant of `pid` (from /proc)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def survivors(pids: set[int], grace: float = 10.0) -> dict[int, str]:
    """The command lines of the `pids` still alive after `grace` seconds. Multiprocessing's
    resource tracker ends only once it reads its pipe's end, a moment after the parent has exited;
    a leaked worker would stay."""
    deadline = time.time() + grace
    while time.time() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.1)
    left = {}
    for pid in pids:
        if alive(pid):
            try:
                left[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
    return left
