"""A music library, not only a payload: nested folders, several formats, the same name in many
albums, and every entry that cannot be predicted accounted for. The grader's rule (mp3s directly
in the folder, ids = names) stays as it was."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from conftest import REPO, run_predict
from model.library import find_inputs

RATE = 22050


def tone(seconds: float, freq: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t))).astype(np.float32)


def write_m4a(path: Path, audio: np.ndarray) -> None:
    """AAC in MP4 (iTunes' format), encoded by PyAV: soundfile cannot write it."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=44100)
        stream.layout = "mono"
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=44100)
        frame = av.AudioFrame.from_ndarray(audio[None, :], format="fltp", layout="mono")
        frame.sample_rate = RATE
        for resampled in [*resampler.resample(frame), *resampler.resample(None)]:
            container.mux(stream.encode(resampled))
        container.mux(stream.encode(None))


@pytest.fixture(scope="module")
def library(tmp_path_factory, clips) -> Path:
    """Artist/Album/track in six formats, "01 Intro" in two albums, a comma and an accent in
    names, a symbolic link loop, and entries that cannot be predicted."""
    root = tmp_path_factory.mktemp("library")
    album_a, album_b = root / "Artist, The" / "First Album", root / "Ärtist B" / "Second"
    album_a.mkdir(parents=True)
    album_b.mkdir(parents=True)
    shutil.copy(clips["cbr30"], album_a / "01 Intro.mp3")
    sf.write(album_b / "01 Intro.flac", tone(4, 330), RATE)
    sf.write(album_b / "02 Song.ogg", tone(4, 660), RATE)
    sf.write(album_b / "03 Song.opus", tone(4, 220), 48000, format="OGG", subtype="OPUS")
    write_m4a(album_a / "02 Song.m4a", tone(4, 440))
    sf.write(root / "loose.wav", tone(3, 550), RATE)
    shutil.copy(clips["cbr30"], root / "top.mp3")
    (root / "notes.txt").write_text("not audio")
    (root / "cover.jpg").write_bytes(b"\xff\xd8")
    os.symlink(root, album_b / "back to the top")  # a loop
    os.symlink(root / "gone.mp3", root / "dangling.mp3")
    os.mkfifo(root / "fifo.mp3")
    (root / "folder.mp3").mkdir()
    return root


@pytest.fixture(scope="module")
def tiny(shared_tiny_weights) -> Path:
    return shared_tiny_weights


ALL_IDS = [
    "Artist, The/First Album/01 Intro",
    "Artist, The/First Album/02 Song",
    "loose",
    "top",
    "Ärtist B/Second/01 Intro",
    "Ärtist B/Second/02 Song",
    "Ärtist B/Second/03 Song",
]


def reasons(inputs) -> dict[str, str]:
    return {path.name: why for path, why in inputs.skipped}


def test_the_grader_rule_is_unchanged(library):
    """The mp3s directly in the folder, by name; what looks like an mp3 but cannot be read is
    listed, anything else (other formats, sub-folders) is not the payload's."""
    inputs = find_inputs(library)
    assert inputs.ids == ["top"] and inputs.files == [library / "top.mp3"]
    assert reasons(inputs) == {
        "dangling.mp3": "a dangling link",
        "fifo.mp3": "not a regular file (a FIFO, socket or device)",
        "folder.mp3": "a folder, not a file",
    }


def test_files_sharing_an_id_get_one_row(tmp_path):
    for name in ("a.mp3", "a.MP3", "b.mp3"):
        (tmp_path / name).touch()
    inputs = find_inputs(tmp_path)
    assert [p.name for p in inputs.files] == ["a.MP3", "b.mp3"] and inputs.ids == ["a", "b"]
    assert reasons(inputs) == {"a.mp3": "same file_id as a.MP3 (only that one gets a row)"}


def test_a_library_gives_every_audio_file_at_any_depth_with_relative_ids(library):
    inputs = find_inputs(library, recursive=True)
    assert inputs.ids == ALL_IDS  # two "01 Intro", two ids
    assert all(str(f.relative_to(library)).startswith(i) for f, i in zip(inputs.files, inputs.ids))
    assert reasons(inputs) == {
        "dangling.mp3": "a dangling link",
        "fifo.mp3": "not a regular file (a FIFO, socket or device)",
        "back to the top": "a folder already read (a symbolic link loop, or a second link to it)",
    }
    assert find_inputs(library, recursive=True, extensions=("FLAC", ".ogg")).ids == [
        "Ärtist B/Second/01 Intro",
        "Ärtist B/Second/02 Song",
    ]


def test_an_unreadable_sub_folder_costs_its_own_files_only(library, monkeypatch):
    scandir = os.scandir

    def refuse(path):
        if Path(path).name == "Second":
            raise PermissionError(13, "Permission denied")
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refuse)
    inputs = find_inputs(library, recursive=True)
    assert inputs.ids == [i for i in ALL_IDS if not i.startswith("Ärtist B/Second/")]
    assert reasons(inputs)["Second"] == "cannot list this folder: Permission denied"


def test_predict_py_recursive_writes_one_row_per_file_and_accounts_for_every_entry(
    library, zero_shot_weights, tmp_path
):
    out, report = tmp_path / "library.csv", tmp_path / "report.json"
    result = run_predict(library, zero_shot_weights, out, "--recursive", "--report", str(report))
    assert result.returncode == 0, result.stderr
    with open(out, newline="", encoding="utf-8") as file:
        rows = list(csv.reader(file))
    assert [row[0] for row in rows[1:]] == ALL_IDS  # "Artist, The/..." quoted, read back whole
    probabilities = np.array([[float(v) for v in row[1:]] for row in rows[1:]])
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-6)
    entries = json.loads(report.read_text())
    assert [e["status"] for e in entries[:7]] == ["ok"] * 7  # every format decoded
    assert {e["reason"] for e in entries[7:]} == {
        "a dangling link",
        "not a regular file (a FIFO, socket or device)",
        "a folder already read (a symbolic link loop, or a second link to it)",
    }
    assert "7 rows, 0 fallbacks to the class prior, 3 items skipped" in result.stderr
    assert "skipped Ärtist B/Second/back to the top: a folder already read" in result.stderr

    flat = run_predict(library, zero_shot_weights, tmp_path / "flat.csv")  # the grader's rule
    assert flat.returncode == 0 and "1 row, 0 fallbacks to the class prior, 3 items skipped" in flat.stderr
    top = pd.read_csv(tmp_path / "flat.csv", index_col=0)
    assert list(top.index) == ["top"]
    assert np.allclose(top.loc["top"].values, probabilities[ALL_IDS.index("top")], atol=1e-8)

    api = __import__("model").GenreModel.load(zero_shot_weights).predict_many(library, progress=False)
    assert list(api.index) == ALL_IDS and np.allclose(api.values, probabilities, atol=1e-7)
    assert len(api.attrs["skipped"]) == 3


@pytest.mark.slow  # a kill, a resume, two shards and a merge: ~15 s
def test_resume_shards_and_merge_work_the_same_way_on_a_library(library, tiny, tmp_path):
    straight = tmp_path / "straight.csv"
    assert run_predict(library, tiny, straight, "--recursive").returncode == 0
    # two "01 Intro.*" in the journal are two entries: killed after three, resumed
    out = tmp_path / "out.csv"
    kill_at = [sys.executable, str(REPO / "tests" / "kill_at.py"), "journal:4", str(REPO / "predict.py")]
    command = ["--payload", str(library), "--weights", str(tiny), "--recursive"]
    killed = subprocess.run([*kill_at, *command, "--out", str(out)], capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = run_predict(library, tiny, out, "--recursive", "--resume")
    assert resumed.returncode == 0 and "resuming: 3 of 7 files already predicted" in resumed.stderr
    assert out.read_text() == straight.read_text()  # to the last digit

    parts = []
    for shard in ("0/2", "1/2"):
        parts.append(tmp_path / f"part{shard[0]}.csv")
        assert run_predict(library, tiny, parts[-1], "--recursive", "--shard", shard).returncode == 0
    merged = tmp_path / "merged.csv"
    merge = [sys.executable, str(REPO / "tools" / "merge_predictions.py"), *map(str, parts)]
    done = subprocess.run(
        [*merge, "--payload", str(library), "--recursive", "--out", str(merged)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert merged.read_text() == straight.read_text()


@pytest.mark.slow  # 11 minutes generated and predicted twice: ~15 s
def test_a_long_file_is_scored_on_excerpts_over_its_whole_length_and_segments_keep_its_times(tiny, tmp_path):
    """11 minutes, past the 10 decoded: the row hears 20 excerpts spread from start to end (the
    report's decoder says so); --segments reads the file again, whole, and its rows run to the
    end, on the file's own times; the clip row is the same with or without --segments."""
    from conftest import signal as music
    from conftest import write_mp3

    payload = tmp_path / "set"
    payload.mkdir()
    write_mp3(payload / "set.mp3", music(660, 22050, channels=1), 22050)
    out, report, segments = tmp_path / "out.csv", tmp_path / "report.json", tmp_path / "segments.csv"
    result = run_predict(payload, tiny, out, "--report", str(report))
    assert result.returncode == 0, result.stderr
    entry = json.loads(report.read_text())[0]
    assert entry["status"] == "ok" and entry["decoder"] == "pyav, 20 excerpts over 0:11:00"
    assert entry["seconds"] == pytest.approx(600, abs=0.1)

    timed = run_predict(payload, tiny, tmp_path / "o2.csv", "--segments", str(segments))
    assert timed.returncode == 0, timed.stderr
    rows = pd.read_csv(segments)
    assert rows["start"].iloc[0] == 0 and rows["end"].iloc[-1] == pytest.approx(660, abs=0.1)
    assert np.diff(rows["start"]).max() == pytest.approx(3.0, abs=0.02)  # one grid, no gap
    assert (tmp_path / "o2.csv").read_text() == out.read_text()
