"""The validator, the local grader and the starter-kit tools."""

import json
import math
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from model.genres import GENRES
from model.submission import HEADER, submission_csv, validate_submission

HEAD = ",".join(HEADER)
UNIFORM = ",".join(["0.0625"] * 16)


def run(script, *arguments, cwd=None):
    return subprocess.run(
        [sys.executable, str(REPO / script), *map(str, arguments)], capture_output=True, text=True, cwd=cwd
    )


def test_a_valid_submission_passes():
    text = submission_csv(["a", "b, c"], np.full((2, 16), 1 / 16))
    assert validate_submission(text, ["a", "b, c"]) == []


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "the file is empty"),
        ("file_id,Rock\n", "line 1: header is"),
        (f"{HEAD}\na,{UNIFORM},0.1\n", "line 2: 18 fields, expected 17"),
        (f"{HEAD}\na,{UNIFORM}\na,{UNIFORM}\n", "line 3: file_id 'a' repeats line 2"),
        (f"{HEAD}\n,{UNIFORM}\n", "line 2: empty file_id"),
        (f"{HEAD}\na,x{UNIFORM[6:]}\n", "line 2: 'x' is not a number"),
        (f"{HEAD}\na,nan{UNIFORM[6:]}\n", "line 2: non-finite probability"),
        (f"{HEAD}\na,1.5,-0.5{UNIFORM[13:]}\n", r"line 2: probabilities must lie in \[0, 1\]"),
        (f"{HEAD}\na,0.5{UNIFORM[6:]}\n", "line 2: probabilities sum to 1.437500, not 1"),
    ],
)
def test_each_kind_of_invalid_csv_gets_its_message(text, message):
    problems = validate_submission(text)
    assert len(problems) == 1 and re.search(message, problems[0]), problems


def test_ids_must_match_the_payload(tmp_path):
    text = submission_csv(["a", "b", "x"], np.full((3, 16), 1 / 16))
    problems = validate_submission(text, ["a", "b", "c", "d"])
    assert problems == ["2 file id(s) have no row: c, d", "1 row(s) for files not in the payload: x"]
    payload = tmp_path / "payload"
    payload.mkdir()
    for name in ("a", "b", "c"):
        (payload / f"{name}.mp3").write_bytes(b"")
    (tmp_path / "sub.csv").write_text(text)
    result = run("evaluate.py", tmp_path / "sub.csv", "--payload", payload)
    assert result.returncode == 1
    assert "1 file id(s) have no row: c" in result.stderr and "files not in the payload: x" in result.stderr


def test_grader_scores_match_an_independent_computation(tmp_path):
    truth = {"a": "Rock", "b": "Rock", "c": "Jazz", "d": "Pop", "e": "Jazz"}
    rows = {  # predicted class -> probability 0.6 there, the rest spread evenly
        "a": "Rock",
        "b": "Jazz",
        "c": "Jazz",
        "d": "Pop",
        "e": "Rock",
    }
    probs = {}
    for fid, predicted in rows.items():
        p = np.full(16, 0.4 / 15)
        p[GENRES.index(predicted)] = 0.6
        probs[fid] = p
    (tmp_path / "pred.csv").write_text(submission_csv(list(probs), np.stack(list(probs.values()))))
    pd.DataFrame({"file_id": list(truth), "genre": list(truth.values())}).to_csv(
        tmp_path / "truth.csv", index=False
    )
    result = run("evaluate.py", tmp_path / "pred.csv", "--labels", tmp_path / "truth.csv")
    assert result.returncode == 0, result.stderr

    # By hand: 3 of 5 right (p = 0.6), 2 wrong (p = 0.4/15 for the true class).
    log_loss = -(3 * math.log(0.6) + 2 * math.log(0.4 / 15)) / 5
    # Rock: tp 1 (a), fp 1 (e), fn 1 (b) -> F1 0.5; Jazz: tp 1 (c), fp 1 (b), fn 1 (e) -> 0.5; Pop: 1.0
    macro_f1 = (0.5 + 0.5 + 1.0) / 3
    assert f"log loss {log_loss:.4f}" in result.stdout
    assert f"macro F1 {macro_f1:.4f}" in result.stdout
    assert "accuracy 0.6000" in result.stdout
    assert "| Rock | 0.500 | 0.500 | 0.500 | 2 |" in result.stdout
    report = json.loads((tmp_path / "pred.report.json").read_text())
    assert report["log_loss"] == pytest.approx(log_loss, abs=1e-9)
    assert report["confusion"][GENRES.index("Rock")][GENRES.index("Jazz")] == 1
    assert (tmp_path / "pred.confusion.png").stat().st_size > 10_000


def test_missing_and_extra_ids_are_errors_listed_by_id(tmp_path):
    (tmp_path / "pred.csv").write_text(submission_csv(["a", "b", "zz"], np.full((3, 16), 1 / 16)))
    (tmp_path / "truth.csv").write_text("file_id,genre\na,Rock\nb,Pop\nc,Jazz\n")
    result = run("evaluate.py", tmp_path / "pred.csv", "--labels", tmp_path / "truth.csv")
    assert result.returncode == 1
    assert "1 id(s) labelled but not predicted: c" in result.stderr
    assert "1 id(s) predicted but not labelled: zz" in result.stderr


@pytest.mark.slow
def test_fma_tracks_csv_labels_conversion_and_the_prior_submission(tmp_path):
    from conftest import make_fma_dataset

    metadata, audio = make_fma_dataset(tmp_path, per_split=(2, 1, 1), seconds=1.0)
    labels = tmp_path / "train_labels.csv"
    result = run("tools/convert_labels.py", metadata / "tracks.csv", labels)
    assert result.returncode == 0, result.stderr
    converted = pd.read_csv(labels)
    assert list(converted.columns) == ["track_id", "genre"] and len(converted) == 18  # 16 + empty + truncated

    test_ids = pd.read_csv(metadata / "tracks.csv", index_col=0, header=[0, 1])
    test_ids = test_ids[test_ids[("set", "split")] == "test"].index
    payload = tmp_path / "payload"
    payload.mkdir()
    for tid in test_ids:
        (payload / f"{tid:06d}.mp3").write_bytes((audio / f"{tid:06d}"[:3] / f"{tid:06d}.mp3").read_bytes())
    prior_csv = tmp_path / "prior.csv"
    result = run("tools/prior_submission.py", "--payload", payload, "--out", prior_csv)
    assert result.returncode == 0, result.stderr

    graded = run(
        "evaluate.py", prior_csv, "--payload", payload, "--labels", metadata / "tracks.csv", "--split", "test"
    )
    assert graded.returncode == 0, graded.stderr  # "000042" predictions match track 42 in tracks.csv
    from model.genres import fma_medium_prior

    prior = 1e-4 + (1 - 16e-4) * fma_medium_prior()
    genres = pd.read_csv(metadata / "tracks.csv", index_col=0, header=[0, 1]).loc[
        test_ids, ("track", "genre_top")
    ]
    expected = -np.mean([math.log(prior[GENRES.index(g)]) for g in genres])
    assert f"log loss {expected:.4f}" in graded.stdout


def test_outputs_that_need_labels_are_refused_without_them(tmp_path):
    csv = tmp_path / "p.csv"
    csv.write_text("file_id," + ",".join(GENRES) + "\n")
    for flag in ("--report", "--confusion"):
        result = run("evaluate.py", str(csv), flag, str(tmp_path / "x"))
        assert result.returncode == 2
        assert (
            result.stderr.strip()
            == f"evaluate.py: error: {flag} holds scores, which need --labels (see --help)"
        )
    assert "the FMA subset whose tracks are scored" in " ".join(run("evaluate.py", "--help").stdout.split())
