"""Runs you can watch and combine: each run's record (config.json, TensorBoard events,
predictions.npz), tools/runs.py's table, and ensembles built from the members of several runs
(model/selection.py), which predict.py loads like any other."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import REPO, make_fma_dataset, random_state_dicts, run_predict, tiny_ensemble_manifest
from model.calibration import fit_temperature, output_log_loss
from model.genres import GENRES
from model.manifest import Manifest, load_manifest
from model.runs import load_predictions, save_predictions, write_config
from model.saving import save_ensemble
from model.selection import greedy_selection

RUNS = [sys.executable, str(REPO / "tools" / "runs.py")]


def runs_py(capsys, *arguments) -> tuple[int, str, str]:
    """tools/runs.py in this process (a subprocess would spend its time importing torch):
    (exit code, stdout, stderr)."""
    from tools import runs

    try:
        code = runs.main([str(a) for a in arguments])
    except SystemExit as exit:
        code = exit.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def noisy_log_probs(labels: np.ndarray, skill: float, seed: int) -> np.ndarray:
    """(clips, 16) log-probabilities that favour the true class by `skill` nats, plus noise."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1, (len(labels), len(GENRES)))
    logits[np.arange(len(labels)), labels] += skill
    return torch.log_softmax(torch.from_numpy(logits), dim=1).numpy()


def fake_run(folder: Path, skills: list[float], seed: int, keys: list[str] | None = None) -> Path:
    """A finished run as train.py leaves it, with random tiny networks and predictions whose quality
    is set by `skills` (one per member): manifest, predictions.npz, config.json, checkpoints."""
    base = tiny_ensemble_manifest()
    cnns = [m for m in base.members if m.kind == "cnn"][: len(skills)]
    manifest = Manifest(
        base.classes, base.sample_rate, 1.0, base.class_prior, tuple(cnns), f"fake run {seed}"
    )
    save_ensemble(folder, manifest, random_state_dicts(manifest, seed))
    keys = keys or [str(k) for k in range(100, 160)]
    labels = np.arange(len(keys)) % 4
    predictions = {
        split: [
            (m.name, noisy_log_probs(labels, skill, seed + i + 10 * s))
            for i, (m, skill) in enumerate(zip(cnns, skills))
        ]
        for s, split in enumerate(("validation", "test"))
    }
    save_predictions(folder, {s: (keys, labels) for s in ("validation", "test")}, predictions)
    tracks = pd.DataFrame({"key": keys, "genre": [GENRES[i] for i in labels], "split": "validation"})
    write_config(folder, {"seed": seed, "members": len(skills), "out": str(folder)}, tracks, [])
    for member, skill in zip(cnns, skills):
        torch.save(
            {"best_loss": 2.0 / (1 + skill), "best_epoch": 3, "epoch": 5}, folder / f"{member.name}.ckpt"
        )
    return folder


def test_selection_picks_the_strong_member_and_beats_any_single_one():
    labels = torch.from_numpy(np.arange(300) % 16)
    strong, weak, other = (
        noisy_log_probs(labels.numpy(), s, seed) for s, seed in ((3.0, 1), (0.5, 2), (2.5, 3))
    )
    members = torch.from_numpy(np.stack([weak, strong, other]))
    counts, history = greedy_selection(members, labels, rounds=10, seed=0)
    assert counts.sum() == 10 and counts[1] == counts.max() and counts[0] < counts[1]
    singles = [output_log_loss(m[None], labels, fit_temperature(m[None], labels)).item() for m in members]
    assert history[0] == pytest.approx(min(singles), abs=1e-9)  # round 1: the best member alone
    assert min(history) <= min(singles)
    again, _ = greedy_selection(members, labels, rounds=10, seed=0)
    assert np.array_equal(counts, again)  # seeded: the same picks


def test_list_shows_what_differs_and_how_each_run_did(tmp_path, capsys):
    fake_run(tmp_path / "alpha", [2.0, 1.0], seed=1)
    fake_run(tmp_path / "beta", [1.5], seed=2)
    interrupted = tmp_path / "gamma"
    interrupted.mkdir()
    shutil.copy(tmp_path / "alpha" / "a.ckpt", interrupted / "a.ckpt")
    code, out, err = runs_py(capsys, "list", *sorted(tmp_path.iterdir()))
    assert code == 0, err
    header, _, alpha, beta, gamma = out.splitlines()
    assert "| members | seed |" in header and "| out |" not in header  # where it wrote is not compared
    assert alpha.startswith("| alpha | finished | 2 | 1 |") and "a 0.667 (3), b 1.000 (3)" in alpha
    assert beta.startswith("| beta | finished | 1 | 2 |")
    assert gamma.startswith("| gamma | interrupted |") and "a 0.667 (3)" in gamma


def test_build_writes_a_weighted_ensemble_predict_py_loads(tmp_path, capsys):
    runs = [fake_run(tmp_path / "alpha", [3.0, 0.3], seed=1), fake_run(tmp_path / "beta", [2.5], seed=2)]
    out = tmp_path / "built"
    code, stdout, err = runs_py(capsys, "build", "--rounds", 10, "--out", out, *runs)
    assert code == 0, err
    manifest = load_manifest(out)
    weights = {m.name: m.weight for m in manifest.members}
    assert (
        sum(weights.values()) == 10
        and "alpha-a" in weights
        and weights.get("alpha-b", 0) < weights["alpha-a"]
    )
    report = json.loads((out / "report.json").read_text())
    assert report["method"] == "select" and report["ensemble"]["clips"] == 60
    assert "| **built (select)** |" in stdout and "| average of all 3 |" in stdout

    # the weights are the ones its combination rule reproduces
    predictions = [load_predictions(run)["validation"] for run in runs]
    stacked = {
        f"{run.name}-{name}": p["members"][name] for run, p in zip(runs, predictions) for name in p["members"]
    }
    members = torch.from_numpy(np.stack([stacked[m.name] for m in manifest.members]))
    weights_tensor = torch.tensor([m.weight for m in manifest.members], dtype=torch.float64)
    labels = torch.from_numpy(predictions[0]["labels"])
    assert output_log_loss(members, labels, manifest.temperature, weights_tensor).item() == pytest.approx(
        report["validation_log_loss"]
    )

    csv = tmp_path / "out.csv"
    predicted = run_predict(REPO / "examples", out, csv)
    assert predicted.returncode == 0, predicted.stderr
    assert len(csv.read_text().splitlines()) == 4

    code, _, err = runs_py(capsys, "build", "--method", "average", "--out", tmp_path / "avg", *runs)
    assert code == 0 and {m.weight for m in load_manifest(tmp_path / "avg").members} == {1.0}, err


def test_build_refuses_what_it_cannot_combine_in_one_line(tmp_path, capsys):
    alpha = fake_run(tmp_path / "alpha", [2.0], seed=1)
    other = fake_run(tmp_path / "other", [2.0], seed=2, keys=[str(k) for k in range(200, 260)])
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    shutil.copy(alpha / "a.ckpt", unfinished)

    def build(*arguments):
        return runs_py(capsys, "build", "--rounds", 5, *arguments)

    code, _, err = build("--out", tmp_path / "x", alpha, other)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "validation clips differ" in err and not (tmp_path / "x" / "manifest.json").exists()
    code, _, err = build("--out", tmp_path / "y", alpha, unfinished)
    assert code == 0 and f"warning: skipping {unfinished}: not a finished run" in err
    code, _, err = build("--out", tmp_path / "y", alpha)
    assert code == 2 and "pass --force to replace it" in err
    assert build("--out", tmp_path / "y", "--force", alpha)[0] == 0
    code, _, err = build("--out", tmp_path / "z", unfinished)
    assert code == 1 and "no finished run" in err


@pytest.mark.slow
def test_two_real_runs_are_recorded_and_combine(tmp_path):
    """train.py twice (two architectures, one run on a slice), then list and build."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    metadata, audio = make_fma_dataset(tmp_path / "fma", per_split=(12, 4, 4), seconds=2.5)
    common = ["--metadata", str(metadata), "--audio", str(audio), "--cache", str(tmp_path / "cache")]
    common += [
        "--device",
        "cpu",
        "--workers",
        "0",
        "--channels",
        "8,16",
        "--batch-size",
        "8",
        "--epochs",
        "3",
    ]
    common += ["--chunk-seconds", "1", "--min-epoch-steps", "6"]
    runs = {
        "resnet": ["--members", "1"],
        "crnn": [
            "--members",
            "2",
            "--architecture",
            "crnn,short_chunk_resnet",
            "--max-tracks",
            "24",
            "--seed",
            "3",
        ],
    }
    for name, extra in runs.items():
        result = subprocess.run(
            [sys.executable, str(REPO / "train.py"), *common, "--run-dir", str(tmp_path / name), *extra],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr[-3000:]
    config = json.loads((tmp_path / "crnn" / "config.json").read_text())
    assert (
        config["options"]["architecture"] == ["crnn", "short_chunk_resnet"]
        and config["options"]["max_tracks"] == 24
    )
    assert config["data"]["tracks"]["training"] == 24 and config["git"]["commit"]
    assert (
        config["data"]["training_index_sha256"]
        != json.loads((tmp_path / "resnet" / "config.json").read_text())["data"]["training_index_sha256"]
    )
    events = EventAccumulator(str(tmp_path / "crnn"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {
        "cnn0/train_loss",
        "cnn0/lr",
        "cnn1/valid_log_loss",
        "cnn1/valid_accuracy",
        "cnn1/valid_ece",
        "cnn1/epoch_seconds",
    } <= tags
    assert {"ensemble/valid_log_loss", "ensemble/test_log_loss"} <= tags
    assert len(events.Scalars("cnn0/train_loss")) == 3 * 6  # one per optimizer step

    listing = subprocess.run(
        [*RUNS, "list", str(tmp_path / "resnet"), str(tmp_path / "crnn")], capture_output=True, text=True
    )
    assert listing.returncode == 0 and "| architecture |" in listing.stdout.splitlines()[0]
    out = tmp_path / "built"
    built = subprocess.run(
        [*RUNS, "build", "--out", str(out), str(tmp_path / "resnet"), str(tmp_path / "crnn")],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    predicted = run_predict(audio / "000", out, tmp_path / "out.csv")
    assert predicted.returncode == 0, predicted.stderr
