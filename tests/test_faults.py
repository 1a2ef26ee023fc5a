"""How runs end when stopped from outside, by fault injection: SIGTERM (docker stop, Kubernetes,
Slurm) ends predict.py as ^C does, with one line, exit code 143, the journal kept, no decode worker
left behind, and --resume gives the uninterrupted run's rows; a full disk is one line naming the
file and the space, at every place that writes, and nothing half-written is read back."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import conftest
from conftest import REPO, children_of, survivors
from model.atomic import write_atomic
from model.journal import Journal, read_journal
from model.stopping import OutOfSpace

PREDICT = [sys.executable, str(REPO / "predict.py")]


@pytest.fixture(scope="module")
def payload(tmp_path_factory, clips) -> Path:
    folder = tmp_path_factory.mktemp("fault-payload")
    for i in range(40):
        shutil.copy(clips["cbr30"], folder / f"clip{i:02d}.mp3")
    shutil.copy(clips["empty"], folder / "empty.mp3")
    return folder


@pytest.fixture(scope="module")
def weights(shared_tiny_weights) -> Path:
    return shared_tiny_weights


@pytest.fixture(scope="module")
def common(payload, weights) -> list[str]:
    return ["--payload", str(payload), "--weights", str(weights), "--workers", "2", "--batch-size", "4"]


@pytest.fixture(scope="module")
def straight(common, tmp_path_factory) -> str:
    """The rows of an uninterrupted run: what every stopped and resumed run must give."""
    out = tmp_path_factory.mktemp("straight") / "straight.csv"
    subprocess.run([*PREDICT, *common, "--out", str(out)], check=True, capture_output=True)
    return out.read_text()


def resume(common: list[str], out: Path, kept: int) -> str:
    resumed = subprocess.run(
        [*PREDICT, *common, "--out", str(out), "--resume"], capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming: {kept} of 41 files already predicted" in resumed.stderr
    assert "Traceback" not in resumed.stderr
    return out.read_text()


def stop_between_batches(command: list[str], journal: Path, stop: int) -> tuple[int, str, set[int]]:
    """Start `command`, send `stop` once 8 rows are journaled; (exit code, stderr, its children)."""
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline, children = time.time() + 120, set()
    while time.time() < deadline and process.poll() is None:
        children |= children_of(process.pid)
        if journal.exists() and len(journal.read_text().splitlines()) >= 8:
            break  # between batches, decoding under way
        time.sleep(0.05)
    process.send_signal(stop)
    stderr = process.communicate(timeout=60)[1]
    return process.returncode, stderr, children


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc to find the decode workers")
def test_sigterm_stops_predict_py_in_one_line_keeps_the_journal_and_resume_matches(
    common, straight, tmp_path
):
    out = tmp_path / "out.csv"
    journal = out.with_name("out.csv.partial.jsonl")
    code, stderr, workers = stop_between_batches(
        [*PREDICT, *common, "--out", str(out)], journal, signal.SIGTERM
    )
    assert code == 143, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("predict.py: error: terminated (SIGTERM): ") and "--resume" in last, stderr
    assert "Traceback" not in stderr and not out.exists()
    assert workers and survivors(workers) == {}  # no decode worker left behind
    kept = len(journal.read_text().splitlines())
    assert 8 <= kept < 41
    assert resume(common, out, kept) == straight  # the same rows, to the last digit


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc to find the decode workers")
def test_sigkill_between_batches_loses_nothing_journaled_and_the_workers_end(common, straight, tmp_path):
    out = tmp_path / "out.csv"
    journal = out.with_name("out.csv.partial.jsonl")
    code, _, workers = stop_between_batches([*PREDICT, *common, "--out", str(out)], journal, signal.SIGKILL)
    assert code == -signal.SIGKILL and not out.exists()
    assert workers and survivors(workers) == {}  # orphaned, they still end: their pipe closed
    kept = len(journal.read_text().splitlines())
    assert resume(common, out, kept) == straight


@pytest.mark.slow  # three kills and resumes: ~30 s
@pytest.mark.parametrize(
    "points, kept",
    [
        (["journal:10"], 9),
        (["journal:10", "file:out.csv.partial.jsonl"], 9),
        (["file:out.csv"], 41),
    ],
    ids=["mid-journal-line", "then-while-resume-rewrites-the-journal", "while-writing-the-csv"],
)
def test_sigkill_mid_write_then_resume_gives_the_same_rows(common, straight, tmp_path, points, kept):
    """Killed with half a line in the journal, with half the kept journal in its temp file while a
    resumed run rewrites it, or with half the CSV in its temp file: the next --resume ignores the
    cut line (with a warning) and the temp files, and gives the uninterrupted run's rows."""
    out = tmp_path / "out.csv"
    for n, point in enumerate(points):
        kill_at = [sys.executable, str(REPO / "tests" / "kill_at.py"), point]
        command = [*kill_at, str(REPO / "predict.py"), *common, "--out", str(out)] + ["--resume"] * (n > 0)
        killed = subprocess.run(command, capture_output=True, text=True)
        assert killed.returncode == -signal.SIGKILL, killed.stderr  # the point was reached
        assert not out.exists()
    assert resume(common, out, kept) == straight


def test_sigterm_before_any_file_is_one_line(tiny_weights, payload, tmp_path):
    process = subprocess.Popen(
        [
            *PREDICT,
            "--payload",
            str(payload),
            "--out",
            str(tmp_path / "o.csv"),
            "--weights",
            str(tiny_weights),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.5)  # importing: no journal yet
    process.send_signal(signal.SIGTERM)
    stderr = process.communicate(timeout=60)[1]
    assert process.returncode == 143 and "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("predict.py: error: terminated (SIGTERM)")


@pytest.fixture
def small_disk(tmp_path) -> Path:
    with conftest.small_disk(tmp_path / "small", 256, free_kb=16) as folder:
        yield folder


def test_a_full_disk_under_the_output_is_one_line_and_resume_finishes_elsewhere(
    payload, tiny_weights, small_disk, tmp_path
):
    out = small_disk / "out.csv"
    common = ["--payload", str(payload), "--weights", str(tiny_weights), "--workers", "2"]
    result = subprocess.run([*PREDICT, *common, "--out", str(out)], capture_output=True, text=True)
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert (
        last.startswith(f"predict.py: error: no space left to write {small_disk}/") and "free there" in last
    )
    assert "Traceback" not in result.stderr and not out.exists()  # no half-written CSV
    for stale in small_disk.glob(".*.tmp"):
        pytest.fail(f"a temporary file was left behind: {stale}")
    # the journal keeps whole lines only: a resumed run reads it without failing
    (small_disk / "filler").unlink()
    resumed = subprocess.run(
        [*PREDICT, *common, "--out", str(out), "--resume"], capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    assert len(out.read_text().splitlines()) == 42


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_each_write_site_reports_a_full_disk_by_name(tmp_path, monkeypatch):
    """Injected ENOSPC (works without root): atomic writes (CSV, report, checkpoints, manifests,
    state dicts, run records), the journal and the feature cache."""
    target = tmp_path / "out.csv"
    write_atomic(target, b"old")
    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(
        OutOfSpace, match=rf"no space left to write {target} \(needed 3 bytes, .* free there\)"
    ):
        write_atomic(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]

    journal = Journal(tmp_path / "j.jsonl", "w", [])
    journal.file = type("Full", (), {"write": no_space, "flush": lambda self: None, "close": no_space})()
    clip = tmp_path / "c.mp3"
    clip.write_bytes(b"x")
    with pytest.raises(OutOfSpace, match="no space left to write .*j.jsonl"):
        journal.add(clip, np.full(16, 1 / 16), {"status": "ok", "seconds": 1, "decoder": "x", "reason": None})
    journal.close()  # a second failure while closing is not raised again

    from model.feature_cache import _CacheWriter
    from model.spectrogram import SpectrogramConfig

    writer = _CacheWriter(tmp_path / "cache", SpectrogramConfig(n_mels=8))
    writer.data = type("Full", (), {"write": no_space})()
    with pytest.raises(OutOfSpace, match="no space left to write .*logmel.f16 \\(needed 160 bytes"):
        writer.add("k", np.zeros((10, 8), np.float16))


def test_a_journal_line_cut_short_is_ignored_with_a_warning(tmp_path):
    path = tmp_path / "j.jsonl"
    clip = tmp_path / "c.mp3"
    clip.write_bytes(b"x")
    journal = Journal(path, "w", [])
    journal.add(clip, np.full(16, 1 / 16), {"status": "ok", "seconds": 1, "decoder": "x", "reason": None})
    journal.close()
    with open(path, "a") as file:
        file.write('{"file": ["d.mp3", 1, 2], "weights": "w", "probabil')  # the disk filled mid-line
    with pytest.warns(UserWarning, match="line 2: cut short, ignored"):
        entries = read_journal(path, "w")
    assert list(entries) == [("c.mp3", 1, clip.stat().st_mtime_ns)]
