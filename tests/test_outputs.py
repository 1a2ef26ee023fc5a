"""Results are never lost at the last step: odd output locations, odd names, stale journals."""

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from model.atomic import write_atomic
from model.device import usable_cores
from model.genres import GENRES
from model.journal import Journal, read_journal, reusable_entries
from model.submission import write_submission


def test_atomic_write_replaces_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "deeper" / "out.csv"
    write_atomic(target, b"old")
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new" and os.listdir(target.parent) == ["out.csv"]
    assert target.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("code", [errno.EBUSY, errno.EXDEV])
def test_a_file_that_cannot_be_renamed_over_is_overwritten_in_place(tmp_path, monkeypatch, capsys, code):
    target = tmp_path / "mounted.csv"
    target.write_bytes(b"old")

    def refuse(src, dst):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "replace", refuse)
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new" and os.listdir(tmp_path) == ["mounted.csv"]
    assert "not atomically" in capsys.readouterr().err


def test_other_write_errors_are_raised(tmp_path, monkeypatch):
    def refuse(src, dst):
        raise OSError(errno.EIO, os.strerror(errno.EIO))  # a full disk has its own test (test_faults)

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="Input/output error"):
        write_atomic(tmp_path / "out.csv", b"data")
    assert os.listdir(tmp_path) == []


def test_a_non_utf8_file_name_keeps_its_bytes(tmp_path):
    name = os.fsdecode(b"caf\xe9")  # Latin-1 on disk: not UTF-8
    probabilities = np.full((1, len(GENRES)), 1 / len(GENRES))
    write_submission(tmp_path / "out.csv", [name], probabilities)
    assert b"\ncaf\xe9," in (tmp_path / "out.csv").read_bytes()


def test_output_that_is_a_folder_gets_one_line(tmp_path):
    (tmp_path / "payload").mkdir()
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "predict.py"),
            "--payload",
            str(tmp_path / "payload"),
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"predict.py: error: --out {tmp_path}: a folder, not a file name"
    ]


def test_journal_keeps_complete_entries_only_and_transient_fallbacks_are_retried(tmp_path):
    clip = tmp_path / "clip.mp3"
    clip.write_bytes(b"x")
    journal_file = tmp_path / "out.csv.partial.jsonl"
    journal = Journal(journal_file, "w1", [])
    report = {"file_id": "clip", "status": "ok", "seconds": 30.0, "decoder": "soundfile", "reason": None}
    journal.add(clip, np.full(16, 1 / 16), report)
    journal.close()
    with open(journal_file, "a") as file:
        file.write("[1, 2]\n" + json.dumps({"weights": "w1", "file": ["other.mp3", 1, 2]}) + '\n{"cut sh')
    entries = read_journal(journal_file, "w1")
    assert list(entries) == [("clip.mp3", 1, clip.stat().st_mtime_ns)]
    assert read_journal(journal_file, "another model") == {}
    # a resumed run keeps ok rows and permanent fallbacks, and retries transient fallbacks
    cases = (("ok", "ok", False), ("empty", "fallback", False), ("crashed", "fallback", True))
    files = {name: tmp_path / f"{name}.mp3" for name, _, _ in cases}
    journal = Journal(journal_file, "w1", [])
    for name, status, transient in cases:
        files[name].write_bytes(name.encode())
        entry = {**report, "file_id": name, "status": status, "transient": transient}
        journal.add(files[name], np.full(16, 1 / 16), entry)
    journal.close()
    assert set(reusable_entries(journal_file, "w1", list(files.values()))) == {files["ok"], files["empty"]}


def test_usable_cores_honours_a_cgroup_quota(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("max 100000\n")
    assert usable_cores(cpu_max) == affinity
    cpu_max.write_text("50000 100000\n")  # half a core: still one
    assert usable_cores(cpu_max) == 1
    assert usable_cores(Path("/no/such/file")) == affinity


def run_predict(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "predict.py"), *arguments], capture_output=True, text=True
    )


def test_one_file_reads_right_names_the_report_and_logs_progress_as_lines(tmp_path, tiny_weights, clips):
    payload = tmp_path / "payload"
    payload.mkdir()
    (payload / "one.mp3").write_bytes(clips["cbr30"].read_bytes())
    out, report = tmp_path / "out.csv", tmp_path / "report.json"
    result = run_predict(
        "--payload", str(payload), "--out", str(out), "--report", str(report), "--weights", str(tiny_weights)
    )
    assert result.returncode == 0, result.stderr
    assert "1 mp3 file in" in result.stderr and "1 row, 0 fallbacks" in result.stderr
    assert f"wrote {out}, {report} (report): 1 row" in result.stderr
    assert "\r" not in result.stderr  # stderr is a pipe here: plain lines, not redrawn bars
    assert "100%" in result.stderr


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--hop", "1"], "--hop sets the step between --segments rows: give --segments CSV too"),
        (
            ["--out", "examples/beat.mp3/out.csv"],
            "--out examples/beat.mp3/out.csv: examples/beat.mp3 is not a folder",
        ),
        (["--report", "/proc/report.json"], "--report /proc/report.json: cannot create files in /proc"),
    ],
)
def test_unusable_arguments_get_one_line_before_the_model_loads(arguments, message, tmp_path):
    # Before torch is even imported (~3 s): a torch that cannot be imported must not be reached.
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("raise ImportError('torch was imported')")
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "predict.py"),
            "--payload",
            "examples",
            "--out",
            "/tmp/x.csv",
            *arguments,
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr
