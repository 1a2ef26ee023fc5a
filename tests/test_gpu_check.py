"""bench/gpu_check.sh, the one command a GPU machine runs, end to end at toy size on the CPU: the
real run gets one try on a borrowed GPU and must not be lost to a typo."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "bench" / "gpu_check.sh"
STEPS = [
    "wheels",
    "machine",
    "generate",
    "throughput",
    "ensemble",
    "crnn",
    "predict_ensemble",
    "predict_shipped",
    "cuda_tests",
]


def run(*args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHON": sys.executable}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=900)


@pytest.mark.slow
def test_tiny_run_completes_every_step_and_writes_its_figures(tmp_path):
    out = tmp_path / "out"
    done = run("--tiny", "--out", str(out), "--work", str(tmp_path / "work"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((out / "gpu_check.json").read_text())
    assert result["tiny"] is True
    assert list(result["steps"]) == STEPS
    assert {name: step["status"] for name, step in result["steps"].items()} == dict.fromkeys(STEPS, "ok")
    figures = result["figures"]
    assert figures["machine"]["torch"].startswith("2.")
    throughput = figures["throughput"]
    for key in (
        "decode_clips_per_s",
        "cache_clips_per_s",
        "training_crops_per_s",
        "projected_fma_medium_min",
    ):
        assert throughput[key] > 0, key
    assert (
        throughput["cache_over_decode"] == throughput["cache_clips_per_s"] / throughput["decode_clips_per_s"]
    )
    for name in ("predict_ensemble", "predict_shipped"):
        predict = figures[name]
        assert predict["failures"] == 0 and predict["clips"] == 16
        assert 0 < predict["end_to_end_over_decode"]
    assert "cnn0" in figures["predict_ensemble"]["ensemble"]  # the ensemble the run itself trained
    ensemble = figures["ensemble"]
    rows = {row["model"]: row for row in ensemble["results"]}
    assert {"cnn0", "cnn1", "cnn2", "ensemble, T=1", "class prior"} <= set(rows)
    assert all(math.isfinite(row["log_loss"]) for row in rows.values())
    crnn = {row["model"]: row for row in figures["crnn"]["results"]}  # the second architecture's row
    assert {"cnn0", "ensemble, T=1"} <= set(crnn) and "--architecture" in figures["crnn"]["train_args"]
    log = (out / "gpu_check.log").read_text()
    assert "2 skipped" in log  # the CUDA-only tests were found (and skipped without a GPU)
    assert (out / "train.log").stat().st_size > 0


def test_bad_arguments_get_a_one_line_error(tmp_path):
    done = run("--tinyy")
    assert done.returncode == 2
    assert done.stderr.splitlines()[0] == "gpu_check.sh: error: unknown argument '--tinyy'"
    done = run("--budget", "ten")
    assert done.returncode == 2 and "--budget must be whole seconds" in done.stderr
