"""The 518-feature baseline: the documented features, trained and beating the prior."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from conftest import REPO, TOY_GENRES, make_fma_dataset, toy_clip
from model.handcrafted import FEATURE_NAMES, FEATURE_SIZES, STATISTICS, fma_features


def test_features_have_the_documented_length_names_and_order():
    assert len(FEATURE_NAMES) == 518 == 7 * sum(FEATURE_SIZES.values())
    assert FEATURE_NAMES[0] == "chroma_cens.mean.01" and FEATURE_NAMES[-1] == "zcr.max.01"
    assert FEATURE_NAMES[84] == "chroma_cqt.mean.01" and len(set(FEATURE_NAMES)) == 518
    t = np.arange(22050 * 3) / 22050
    low, high = (fma_features((0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32)) for f in (200.0, 3000.0))
    assert low.shape == (518,) and low.dtype == np.float32 and np.isfinite(low).all()
    centroid = FEATURE_NAMES.index("spectral_centroid.mean.01")
    assert low[centroid] == pytest.approx(200, rel=0.15) and high[centroid] == pytest.approx(3000, rel=0.15)
    assert set(STATISTICS) == {name.split(".")[1] for name in FEATURE_NAMES}


@pytest.fixture(scope="module")
def fma(tmp_path_factory) -> tuple:
    """One toy FMA and one feature cache for both models: the second run reads the features."""
    root = tmp_path_factory.mktemp("baseline")
    metadata, audio = make_fma_dataset(root, per_split=(25, 3, 3), seconds=2.0)  # trees need 20-sample leaves
    return metadata, audio, root / "cache"


@pytest.mark.parametrize("model", ["svm", "gbm"])
@pytest.mark.slow
def test_baseline_trains_and_beats_the_prior(fma, tmp_path, model):
    metadata, audio, cache = fma
    model_file = tmp_path / f"{model}.pkl"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "tools" / "baseline.py"),
            "train",
            "--metadata",
            str(metadata),
            "--audio",
            str(audio),
            "--model",
            model,
            "--out",
            str(model_file),
            "--cache",
            str(cache),
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "empty file (0 bytes)" in result.stderr
    test_row = next(line for line in result.stdout.splitlines() if line.startswith("| test |"))
    log_loss = float(test_row.split("|")[3])
    assert log_loss < 0.5 * np.log(len(TOY_GENRES))  # the prior scores ~log(4) = 1.39 here

    payload = tmp_path / "payload"
    payload.mkdir()
    for genre in TOY_GENRES:
        sf.write(payload / f"{genre}.mp3", toy_clip(genre, 999), 22050)
    (payload / "broken.mp3").write_bytes(b"\x00" * 10)
    out = tmp_path / "predictions.csv"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "tools" / "baseline.py"),
            "predict",
            "--model-file",
            str(model_file),
            "--payload",
            str(payload),
            "--out",
            str(out),
            "--workers",
            "0",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(out, index_col="file_id")
    assert sorted(table.index) == sorted([*TOY_GENRES, "broken"])
    for genre in TOY_GENRES:
        assert table.loc[genre].idxmax() == genre
    check = subprocess.run(
        [sys.executable, str(REPO / "evaluate.py"), str(out), "--payload", str(payload)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
