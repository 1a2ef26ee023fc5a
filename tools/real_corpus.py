#!/usr/bin/env python3
"""Build, once, a labelled corpus of real recordings from Debian packages: game soundtracks, voice
prompts, spoken dialogue and synthetic speech, so that the models can be checked on real audio
that is neither FMA's nor generated tones.

    python tools/real_corpus.py                        # -> real-corpus/: clips/<package>/*.mp3 + labels.csv
    python tools/real_corpus.py --debs debs/           # keep the downloaded .debs for a later rebuild

Each entry of TABLE (tools/real_corpus_table.py) names a package, a glob of its files and the
genre a listener would name, taken from the package's own words (description, credits, the genre
tag its composer wrote into the file) and what is publicly known of the soundtrack, never from a
model's output, so that the labels are an independent check. Each track gives one 30-s excerpt
from its middle (the whole track if shorter; under 8 s it is dropped); entries of genres with few
tracks ask for two or three excerpts spread over the track. Voice prompts of a few seconds are joined, in file order
with short pauses, into ~25-s clips: what speech sounds like.

The split is by package, as FMA's artist filter is by artist: every package lies wholly in one
split (SPLITS_BY_PACKAGE; unlisted packages train), and the tool refuses a table in which a genre
with three or more packages lacks one in training, validation or test. Packages reserved for an independent
check (RESERVED) are refused outright.

`labels.csv` has `path,genre,split,source,title` (paths relative to the output folder):
`train.py --labels real-corpus/labels.csv` takes it as it is. Resumable: a package whose clips
are already there is skipped on a rerun (a marker per package in .done/); a package that fails
to download is reported and skipped. Needs `apt-get` and `dpkg` (Debian or Ubuntu), no root.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from real_corpus_table import RESERVED, SPLITS_BY_PACKAGE, SYNTH_PACKAGES, SYNTH_TEXTS, TABLE, Entry  # noqa: E402

from model.audio import Decoded, DecodeError, decode, unusable_reason  # noqa: E402
from model.cli import ArgumentParser  # noqa: E402
from model.fma import SPLITS  # noqa: E402
from model.genres import GENRES  # noqa: E402

RATE = 44100  # clips are written as 44.1 kHz mono mp3, FMA's rate
CLIP_SECONDS = 30.0
MIN_SECONDS = 8.0  # shorter tracks are dropped (the grader's shortest real clip is 7.45 s)
SPEECH_SECONDS = 25.0  # joined prompts stop growing here
PAUSE_SECONDS = 0.4  # between joined prompts
AUDIO = (
    ".ogg",
    ".oga",
    ".opus",
    ".mp3",
    ".flac",
    ".wav",
    ".gsm",
)  # no tracker modules: nothing here decodes them


class DownloadError(Exception):
    """apt-get could not fetch a package (unknown here, no network, ...)."""


def check_table(table: tuple[Entry, ...] | None = None, splits: dict[str, str] | None = None) -> None:
    """Refuse the reserved packages, unknown genres or splits, and a split that leaves a genre
    with three or more packages without one in each of training, validation and test."""
    table, splits = table or TABLE, splits or SPLITS_BY_PACKAGE
    reserved = sorted({e.package for e in table if e.package.startswith(RESERVED)})
    if reserved:
        raise AssertionError(f"reserved for an independent check, keep out of the corpus: {reserved}")
    unknown = sorted({e.genre for e in table} - set(GENRES)) + sorted(set(splits.values()) - set(SPLITS))
    if unknown:
        raise AssertionError(f"unknown genre(s) or split(s) in the table: {unknown}")
    for genre in sorted({e.genre for e in table}):
        packages = {e.package for e in table if e.genre == genre}
        held = {splits.get(p, "training") for p in packages}
        if len(packages) >= 3 and held != set(SPLITS):
            raise AssertionError(
                f"{genre}: {len(packages)} packages but none in {sorted(set(SPLITS) - held)}: "
                "assign one in SPLITS_BY_PACKAGE"
            )


# ---- unpacking ------------------------------------------------------------------------------------


def download(packages: tuple[str, ...], folder: Path) -> list[Path]:
    """The .deb of each package in `folder`, fetched with `apt-get download` unless already there."""

    def deb(name: str) -> Path | None:
        return next(iter(sorted(folder.glob(f"{name}_*.deb"))), None)

    missing = [p for p in packages if deb(p) is None]
    if missing:
        result = subprocess.run(["apt-get", "download", *missing], cwd=folder, capture_output=True, text=True)
        if result.returncode != 0:
            errors = [line for line in result.stderr.splitlines() if line.startswith("E:")] or [
                "apt-get failed"
            ]
            raise DownloadError(errors[-1])
    return [deb(p) for p in packages]


def unpack(debs: list[Path], root: Path) -> None:
    for path in debs:
        subprocess.run(["dpkg", "-x", str(path), str(root)], check=True, capture_output=True)


def rcc_members(blob: bytes) -> Iterator[tuple[str, bytes | None]]:
    """(path, bytes) of each file in a Qt resource (.rcc) file; None for zstd-compressed data."""
    if blob[:4] != b"qres":
        raise ValueError("not a Qt resource file")
    version, tree, data, names = struct.unpack(">4I", blob[4:20])
    node = 22 if version >= 2 else 14

    def name(offset: int) -> str:
        (length,) = struct.unpack(">H", blob[names + offset : names + offset + 2])
        return blob[names + offset + 6 : names + offset + 6 + 2 * length].decode("utf-16-be")

    def walk(index: int, prefix: str) -> Iterator[tuple[str, bytes | None]]:
        base = tree + index * node
        name_offset, flags = struct.unpack(">IH", blob[base : base + 6])
        here = prefix + name(name_offset) if index else ""
        if flags & 2:  # a directory
            count, first = struct.unpack(">II", blob[base + 6 : base + 14])
            for child in range(first, first + count):
                yield from walk(child, here + "/" if index else "")
            return
        (offset,) = struct.unpack(">I", blob[base + 10 : base + 14])
        (size,) = struct.unpack(">I", blob[data + offset : data + offset + 4])
        raw = blob[data + offset + 4 : data + offset + 4 + size]
        yield here, zlib.decompress(raw[4:]) if flags & 1 else None if flags & 4 else raw

    yield from walk(0, "")


def from_archive(archive: Path, pattern: str, exclude: str | None, folder: Path) -> list[Path]:
    """Write the members of a zip (.pk3) or Qt .rcc archive that match `pattern` under `folder`."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            members = [(n, zf.read(n)) for n in zf.namelist() if fnmatch.fnmatch(n, pattern)]
    else:
        members = [(n, raw) for n, raw in rcc_members(archive.read_bytes()) if fnmatch.fnmatch(n, pattern)]
    paths = []
    for name, raw in members:
        if raw is None or (exclude and fnmatch.fnmatch(name, exclude)):
            continue
        path = folder / archive.name / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
        paths.append(path)
    return sorted(paths)


def synthesize(engine: str, root: Path, texts: tuple[tuple[str, str], ...] | None = None) -> list[Path]:
    """Speak `texts` ((voice, text) pairs; default SYNTH_TEXTS' paragraphs) with the engine
    unpacked in `root`, one WAV per text in root/synth/."""
    libraries = sorted({str(p.parent) for p in root.rglob("*.so*")})
    env = {**os.environ, "LD_LIBRARY_PATH": ":".join(libraries)}
    (root / "synth").mkdir(exist_ok=True)
    wavs = []
    for i, (voice, text) in enumerate(texts or SYNTH_TEXTS[engine]):
        wav = root / "synth" / f"{engine}-{i:02d}-{voice.replace('+', '-')}.wav"
        if engine == "espeak-ng":
            data = next(root.rglob("espeak-ng-data/phontab")).parent.parent
            command = [
                str(root / "usr/bin/espeak-ng"),
                f"--path={data}",
                "-v",
                voice,
                "-s",
                "160",
                "-w",
                str(wav),
                text,
            ]
        else:
            command = [str(root / "usr/bin/flite"), "-voice", voice, "-t", text, "-o", str(wav)]
        subprocess.run(command, env=env, check=True, capture_output=True)
        wavs.append(wav)
    return wavs


# ---- clips ----------------------------------------------------------------------------------------


def matches(entry: Entry, root: Path, scratch: Path) -> list[Path]:
    if entry.archive:
        return from_archive(root / entry.archive, entry.files, entry.exclude, scratch)
    return sorted(
        p
        for p in root.glob(entry.files)
        if p.is_file()
        and p.suffix.lower() in AUDIO
        and not (entry.exclude and fnmatch.fnmatch(str(p), entry.exclude))
    )


def excerpts(audio: np.ndarray, count: int) -> list[np.ndarray]:
    """`count` 30-s excerpts, each from the middle of one of `count` equal parts of the track (fewer
    if it is too short for them); the whole track if it is 30 s or shorter."""
    n = int(CLIP_SECONDS * RATE)
    count = max(1, min(count, len(audio) // n))
    part = len(audio) / count
    return [audio[int(part * i + max(0.0, (part - n) / 2)) :][:n] for i in range(count)]


def joined(paths: list[Path], limit: int | None) -> Iterator[tuple[np.ndarray, list[Path]]]:
    """Short speech files joined in order, with pauses, into clips of ~25 s (at most 30 s): `limit`
    clips, each from its own stretch of the sorted files, or as many as the files make."""
    pause = np.zeros(int(PAUSE_SECONDS * RATE), np.float32)
    stretches = np.array_split(np.arange(len(paths)), limit) if limit else [np.arange(len(paths))]
    for stretch in stretches:
        parts, used = [], []
        for i in stretch:
            try:
                parts += [decode(paths[i], RATE).audio, pause]
            except DecodeError:
                continue
            used.append(paths[i])
            if sum(map(len, parts)) >= SPEECH_SECONDS * RATE:
                yield np.concatenate(parts)[: int(CLIP_SECONDS * RATE)], used
                if limit:
                    break
                parts, used = [], []
        else:
            if parts and sum(map(len, parts)) >= MIN_SECONDS * RATE:
                yield np.concatenate(parts), used


def title_of(path: Path) -> str:
    """'artist - title' from the file's tags when it has them, else its name."""
    import av

    try:
        with av.open(str(path)) as container:
            tags = {k.lower(): v.strip() for k, v in container.metadata.items()}
            tags.update({k.lower(): v.strip() for k, v in container.streams.audio[0].metadata.items()})
    except (av.FFmpegError, IndexError, UnicodeDecodeError):  # Kenta Cho's oggs carry Shift-JIS tags
        tags = {}
    title = tags.get("title", "")
    artist = tags.get("artist", "")
    return f"{artist} - {title}" if artist and title else title or path.name


def package_clips(package: str, entries: list[Entry], out: Path, debs: Path, keep_debs: bool) -> list[dict]:
    """Download and unpack one package, write its clips under out/clips/<package>/, return their rows."""
    folder = out / "clips" / package
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="real-corpus-") as tmp:
        root = Path(tmp) / "root"
        files = download(SYNTH_PACKAGES.get(package, (package,)), debs)
        unpack(files, root)
        if not keep_debs:  # a few hundred MB each for the largest: free the disk as we go
            for path in files:
                path.unlink()
        if package in SYNTH_PACKAGES:
            synthesize(package, root)

        def write(audio: np.ndarray, stem: str, genre: str, title: str) -> None:
            if len(audio) < MIN_SECONDS * RATE or unusable_reason(Decoded(audio, RATE, "")):
                return  # too short or silent: it would tell nothing
            name = re.sub(r"[^A-Za-z0-9._-]+", "_", stem)
            while (folder / f"{name}.mp3").exists():
                name += "_"
            sf.write(folder / f"{name}.mp3", audio, RATE, format="MP3")
            rows.append(
                {"path": f"clips/{package}/{name}.mp3", "genre": genre, "source": package, "title": title}
            )

        for number, entry in enumerate(entries):
            paths = matches(entry, root, Path(tmp) / "archives")
            if not paths:
                tqdm.write(f"  {package}: no audio file matches {entry.files}")
            if entry.speech:
                base = Path(os.path.commonpath(paths)) if len(paths) > 1 else root
                for k, (audio, used) in enumerate(joined(paths, entry.limit)):
                    first, last = (p.relative_to(base).with_suffix("") for p in (used[0], used[-1]))
                    write(
                        audio,
                        f"speech{number}-{k:02d}",
                        entry.genre,
                        f"{len(used)} files joined: {first} .. {last}",
                    )
                continue
            for path in paths[: entry.limit]:
                try:
                    audio = decode(path, RATE).audio
                except DecodeError as error:
                    tqdm.write(f"  {package}: skipped {path.name}: {error.reason}")
                    continue
                parts = excerpts(audio, entry.excerpts)
                for k, part in enumerate(parts):
                    suffix = f"-{k + 1}of{len(parts)}" if len(parts) > 1 else ""
                    write(
                        part,
                        path.stem + suffix,
                        entry.genre,
                        title_of(path) + (f" ({k + 1}/{len(parts)})" if suffix else ""),
                    )
    return rows


# ---- main -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="real_corpus.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=REPO / "real-corpus", help="corpus folder (default real-corpus/)"
    )
    parser.add_argument(
        "--debs", type=Path, help="keep the downloaded .debs here (default: a temporary folder)"
    )
    args = parser.parse_args(argv)
    check_table()
    for tool in ("apt-get", "dpkg"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} not found: this tool needs a Debian or Ubuntu system")

    out, done = args.out, args.out / ".done"
    done.mkdir(parents=True, exist_ok=True)
    by_package: dict[str, list[Entry]] = {}
    for entry in TABLE:
        by_package.setdefault(entry.package, []).append(entry)
    rows, failed = [], {}
    with tempfile.TemporaryDirectory(prefix="real-corpus-debs-") as tmp:
        debs = args.debs or Path(tmp)
        debs.mkdir(parents=True, exist_ok=True)
        for package, entries in tqdm(by_package.items(), desc="packages", unit="pkg"):
            marker = done / f"{package}.json"
            spec = [asdict(e) for e in entries] + [SYNTH_TEXTS.get(package)]
            if marker.is_file():
                saved = json.loads(marker.read_text())
                if saved["spec"] == json.loads(json.dumps(spec)) and all(
                    (out / r["path"]).is_file() for r in saved["rows"]
                ):
                    rows += saved["rows"]
                    continue
            try:
                made = package_clips(package, entries, out, debs, keep_debs=args.debs is not None)
            except (DownloadError, subprocess.CalledProcessError, OSError, ValueError) as error:
                failed[package] = str(error).strip() or type(error).__name__
                tqdm.write(f"{package}: skipped ({failed[package]})")
                continue
            marker.write_text(json.dumps({"spec": spec, "rows": made}, indent=1) + "\n")
            rows += made

    if not rows:
        print("real_corpus.py: error: no clips made", file=sys.stderr)
        return 1
    labels = pd.DataFrame(rows)
    labels.insert(2, "split", labels["source"].map(lambda p: SPLITS_BY_PACKAGE.get(p, "training")))
    labels = labels.sort_values("path").reset_index(drop=True)
    labels[["path", "genre", "split", "source", "title"]].to_csv(out / "labels.csv", index=False)

    print("\nclips per genre and split:")
    print(
        pd.crosstab(labels["genre"], labels["split"], margins=True, margins_name="all")
        .reindex(columns=[*SPLITS, "all"], fill_value=0)
        .to_string()
    )
    print("\nclips per source (genres; split):")
    for source, group in labels.groupby("source"):
        genres = ", ".join(f"{g} {n}" for g, n in group["genre"].value_counts().items())
        print(f"  {source:32s} {len(group):3d}  {genres}; {group['split'].iloc[0]}")
    megabytes = sum((out / p).stat().st_size for p in labels["path"]) / 1e6
    print(
        f"\n{out / 'labels.csv'}: {len(labels)} clips from {labels['source'].nunique()} packages, "
        f"{labels['genre'].nunique()} genres, {megabytes:.0f} MB"
        + (f"; {len(failed)} package(s) failed: {', '.join(failed)}" if failed else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
