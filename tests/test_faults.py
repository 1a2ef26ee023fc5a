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

from conftest import REPO
from model.atomic import write_atomic
from model.journal import Journal, read_journal
from model.stopping import OutOfSpace

PREDICT = [sys.executable, str(REPO / "predict.py")]


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


@pytest.fixture(scope="module")
def payload(tmp_path_factory, clips) -> Path:
    folder = tmp_path_factory.mktemp("fault-payload")
    for i in range(40):
        shutil.copy(clips["cbr30"], folder / f"clip{i:02d}.mp3")
    shutil.copy(clips["empty"], folder / "empty.mp3")
    return folder


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc to find the decode workers")
def test_sigterm_stops_predict_py_in_one_line_keeps_the_journal_and_resume_matches(
    payload, tiny_weights, tmp_path
):
    common = [
        "--payload",
        str(payload),
        "--weights",
        str(tiny_weights),
        "--workers",
        "2",
        "--batch-size",
        "4",
    ]
    straight = tmp_path / "straight.csv"
    subprocess.run([*PREDICT, *common, "--out", str(straight)], check=True, capture_output=True)

    out = tmp_path / "out.csv"
    journal = out.with_name("out.csv.partial.jsonl")
    process = subprocess.Popen([*PREDICT, *common, "--out", str(out)], stderr=subprocess.PIPE, text=True)
    deadline, workers = time.time() + 120, set()
    while time.time() < deadline and process.poll() is None:
        workers |= children_of(process.pid)
        if journal.exists() and len(journal.read_text().splitlines()) >= 8:
            break  # between batches, decoding under way
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    stderr = process.communicate(timeout=60)[1]
    assert process.returncode == 143, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("predict.py: error: terminated (SIGTERM): ") and "--resume" in last, stderr
    assert "Traceback" not in stderr and not out.exists()
    assert workers and survivors(workers) == {}  # no decode worker left behind
    kept = len(journal.read_text().splitlines())
    assert 8 <= kept < 41

    resumed = subprocess.run(
        [*PREDICT, *common, "--out", str(out), "--resume"], capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming: {kept} of 41 files already predicted" in resumed.stderr
    assert out.read_text() == straight.read_text()  # the same rows, to the last digit


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
    """A 256 kB filesystem: tmpfs when this runs as root (CI does), else the test is skipped (the
    injected-error tests below cover each write site everywhere)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)]).returncode
    ):
        pytest.skip("needs root to mount a small tmpfs")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_under_the_output_is_one_line_and_resume_finishes_elsewhere(
    payload, tiny_weights, small_disk, tmp_path
):
    (small_disk / "filler").write_bytes(b"x" * (256 * 1024 - 4096 * 4))  # leaves a few pages
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
