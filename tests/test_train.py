"""Training end to end on a tiny FMA-layout dataset of acoustically distinct synthetic genres."""

import csv
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from conftest import (
    REPO,
    TOY_GENRES,
    interrupt_decoding,
    make_fma_dataset,
    run_predict,
    sigint_enabled,
    small_disk,
    toy_clip,
)
from model import fma
from model.ensemble import load_ensemble
from model.feature_cache import build_cache, build_caches, cache_folder
from model.genres import GENRES
from model.spectrogram import SpectrogramConfig

pytestmark = pytest.mark.slow  # trains networks end to end

TINY = ["--channels", "8,16", "--batch-size", "8", "--lr", "3e-3", "--device", "cpu"]
QUICK = ["--members", "1", "--epochs", "2", "--chunk-seconds", "1", "--workers", "0"]  # one short member


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("fma")
    metadata, audio = make_fma_dataset(root, per_split=(25, 4, 4), seconds=2.5)  # 100 training clips
    return {"root": root, "metadata": metadata, "audio": audio, "cache": root / "cache"}


def train_command(
    dataset, out: Path | None, run_dir: Path, *extra: str, launcher=(sys.executable,)
) -> list[str]:
    """train.py with the tiny network on `dataset` (FMA layout unless `extra` names the labels);
    `out` None: the ensemble goes where train.py puts it by default (the run folder)."""
    command = [*launcher, str(REPO / "train.py"), "--cache", str(dataset["cache"])]
    command += ["--out", str(out)] * (out is not None) + ["--run-dir", str(run_dir), *TINY, *extra]
    if not any(a in extra for a in ("--labels", "--metadata")):
        command += ["--metadata", str(dataset["metadata"]), "--audio", str(dataset["audio"])]
    return command


def train(
    dataset, out: Path, *extra: str, run_dir: Path | None = None, **popen
) -> subprocess.CompletedProcess:
    command = train_command(dataset, out, run_dir or out.parent / f"run-{out.name}", *extra)
    return subprocess.run(command, capture_output=True, text=True, **popen)


def member_hashes(weights: Path) -> list[str]:
    manifest = json.loads((weights / "manifest.json").read_text())
    return [m["sha256"] for m in manifest["members"]]


def test_trained_ensemble_beats_the_prior_on_held_out_clips(dataset, tmp_path):
    result = train(
        dataset,
        tmp_path / "weights",
        "--members",
        "2",
        "--epochs",
        "8",
        "--chunk-seconds",
        "1,1.5",
        "--workers",
        "2",
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"skipped \d+: empty file \(0 bytes\)", result.stderr)  # reported, not fatal
    assert "| ensemble, T=" in result.stdout
    manifest = json.loads((tmp_path / "weights" / "manifest.json").read_text())
    assert [m["kind"] for m in manifest["members"]] == ["cnn", "cnn"]
    assert [m["chunk_seconds"] for m in manifest["members"]] == [1.0, 1.5]
    report = json.loads((tmp_path / "weights" / "report.json").read_text())
    assert report["split"] == "test" and set(report["members"]) == {"cnn0", "cnn1"}
    assert_every_member_beats_the_prior(report)
    assert (tmp_path / "weights" / "confusion.png").stat().st_size > 10_000
    assert_beats_prior_on_held_out_clips(tmp_path, tmp_path / "weights")

    # What training logs as validation log loss is what predict.py's output scores on those clips:
    # the ensemble at its fitted temperature, and a member alone at temperature 1.
    assert scored_by_predict(dataset, tmp_path / "weights", "validation") == pytest.approx(
        report["validation_log_loss"], abs=2e-3
    )
    alone = tmp_path / "cnn1-alone"
    shutil.copytree(tmp_path / "weights", alone)
    manifest["members"], manifest["temperature"] = (
        [m for m in manifest["members"] if m["name"] == "cnn1"],
        1.0,
    )
    (alone / "manifest.json").write_text(json.dumps(manifest))
    assert scored_by_predict(dataset, alone, "validation") == pytest.approx(
        report["members"]["cnn1"]["validation_log_loss"], abs=2e-3
    )


def test_a_member_converges_with_the_default_options_on_100_clips(dataset, tmp_path):
    """Batch 64 on 100 clips: an epoch would be 2 optimizer steps without the minimum epoch length,
    and patience would stop a member before batch-norm statistics settle. (One member: the
    rule is per member; two members with other options are trained by the tests below.)"""
    out = tmp_path / "weights"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "train.py"),
            "--cache",
            str(dataset["cache"]),
            "--out",
            str(out),
            "--run-dir",
            str(tmp_path / "run"),
            "--metadata",
            str(dataset["metadata"]),
            "--audio",
            str(dataset["audio"]),
            "--channels",
            "8,16",
            "--members",
            "1",
            "--chunk-seconds",
            "1.5",
            "--device",
            "cpu",
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert_every_member_beats_the_prior(report)
    assert report["ensemble"]["log_loss"] < 0.5 * report["prior_log_loss"], report["ensemble"]


def assert_every_member_beats_the_prior(report: dict) -> None:
    """Each member on its own, on the test split, well below the class prior's log loss."""
    for name, member in report["members"].items():
        assert member["log_loss"] < 0.5 * report["prior_log_loss"], (
            name,
            member["log_loss"],
            report["prior_log_loss"],
        )
        assert member["accuracy"] >= 0.75, (name, member["accuracy"])


def scored_by_predict(dataset: dict, weights: Path, split: str) -> float:
    """predict.py on one split of the FMA layout, scored by evaluate.py: the log loss the grader sees."""
    payload, out = weights.parent / f"{weights.name}-{split}", weights.parent / f"{weights.name}-{split}.csv"
    for command in (
        [
            str(REPO / "tools" / "split_payload.py"),
            str(dataset["metadata"]),
            str(dataset["audio"]),
            str(payload),
            "--split",
            split,
        ],
        [
            str(REPO / "predict.py"),
            "--payload",
            str(payload),
            "--out",
            str(out),
            "--weights",
            str(weights),
            "--device",
            "cpu",
        ],
        [
            str(REPO / "evaluate.py"),
            str(out),
            "--labels",
            str(dataset["metadata"] / "tracks.csv"),
            "--split",
            split,
        ],
    ):
        result = subprocess.run([sys.executable, *command], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    return float(re.search(r"log loss (\d+\.\d+)", result.stdout).group(1))


def assert_beats_prior_on_held_out_clips(tmp_path: Path, weights: Path) -> None:
    """predict.py with `weights` on fresh clips of the toy genres, plus a broken file."""
    manifest = json.loads((weights / "manifest.json").read_text())
    payload, truth = tmp_path / "held_out", {}
    payload.mkdir()
    for genre in TOY_GENRES:
        for seed in range(1000, 1004):
            sf.write(payload / f"{genre}-{seed}.mp3", toy_clip(genre, seed, seconds=4.0), 22050)
            truth[f"{genre}-{seed}"] = GENRES.index(genre)
    (payload / "broken.mp3").write_bytes(b"")
    out, report_path = tmp_path / "predictions.csv", tmp_path / "report.json"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "predict.py"),
            "--payload",
            str(payload),
            "--out",
            str(out),
            "--weights",
            str(weights),
            "--device",
            "cpu",
            "--report",
            str(report_path),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    with open(out, newline="") as file:
        rows = {row[0]: np.array(row[1:], dtype=float) for row in list(csv.reader(file))[1:]}
    labels = np.array([truth[k] for k in truth])
    probs = np.stack([rows[k] for k in truth])
    model_loss = -np.mean(np.log(probs[np.arange(len(labels)), labels]))
    prior = np.array(manifest["class_prior"])
    prior_loss = -np.mean(np.log(prior[labels]))
    assert model_loss < 0.5 * prior_loss, (model_loss, prior_loss)
    assert (probs.argmax(axis=1) == labels).mean() >= 0.75
    statuses = {e["file_id"]: e["status"] for e in json.loads(report_path.read_text())}
    assert statuses["broken"] == "fallback"


def test_heads_on_the_pretrained_musicnn_taggers_train_beside_a_cnn(dataset, tmp_path):
    """--backbone musicnn: a genre head on the frozen taggers' embedding, in one ensemble with a CNN."""
    import torch

    weights = tmp_path / "weights"
    result = train(
        dataset,
        weights,
        "--members",
        "1",
        "--backbone",
        "musicnn",
        "--backbone-members",
        "1",
        "--epochs",
        "4",
        "--chunk-seconds",
        "1",
        "--max-chunks",
        "2",
        "--workers",
        "2",
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads((weights / "manifest.json").read_text())
    kinds = {m["name"]: (m["kind"], m["architecture"], m["max_chunks"]) for m in manifest["members"]}
    assert kinds == {
        "cnn0": ("cnn", "short_chunk_resnet", None),
        "musicnn0": ("transfer", "musicnn_transfer", 2),
    }
    transfer = next(m for m in manifest["members"] if m["kind"] == "transfer")
    assert transfer["spectrogram"]["n_mels"] == 96 and transfer["spectrogram"]["compression"] == "log10_1p"
    # frozen: the member's own file holds only the head; it refers to the pretrained taggers,
    # copied with their licence, and the loaded taggers are exactly those
    assert transfer["base_state_dict"] == "musicnn/musicnn_pair.pt"
    assert {p.name for p in (weights / "musicnn").iterdir()} >= {"musicnn_pair.pt", "LICENSE-musicnn.txt"}
    assert all(k.startswith("head.") for k in torch.load(weights / transfer["state_dict"], weights_only=True))
    assert (weights / transfer["state_dict"]).stat().st_size < 1_000_000
    pretrained = torch.load(REPO / "weights" / "musicnn" / "musicnn_pair.pt", weights_only=True)
    loaded = load_ensemble(weights).networks["musicnn0"].state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in pretrained.items())
    report = json.loads((weights / "report.json").read_text())
    assert report["members"]["musicnn0"]["log_loss"] < 0.5 * report["prior_log_loss"], report["members"]
    assert_beats_prior_on_held_out_clips(tmp_path, weights)


def test_ctrl_c_ends_training_with_one_line(dataset, tmp_path):
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "train.py"),
            "--cache",
            str(dataset["cache"]),
            "--out",
            str(tmp_path / "weights"),
            "--run-dir",
            str(run_dir),
            *TINY,
            "--members",
            "1",
            "--epochs",
            "50",
            "--chunk-seconds",
            "1",
            "--workers",
            "0",
            "--metadata",
            str(dataset["metadata"]),
            "--audio",
            str(dataset["audio"]),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=sigint_enabled,
    )
    deadline = time.time() + 120
    while not (run_dir / "cnn0.ckpt").exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stderr = process.communicate(timeout=60)[1]
    assert process.returncode == 130, stderr
    assert (
        stderr.strip().splitlines()[-1].startswith("train.py: error: interrupted.")
        and "Traceback" not in stderr
    )
    assert "--resume" in stderr and not (tmp_path / "weights" / "manifest.json").exists()


KILL_ARGUMENTS = ["--members", "1", "--epochs", "4", "--chunk-seconds", "1", "--workers", "0"]
KILL_ARGUMENTS += ["--min-epoch-steps", "8"]


@pytest.fixture(scope="module")
def uninterrupted(dataset, tmp_path_factory) -> list[str]:
    """The member hashes of a run never stopped: what every stopped and resumed run must reach."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    straight = train(dataset, folder / "weights", *KILL_ARGUMENTS, run_dir=folder / "run")
    assert straight.returncode == 0, straight.stderr
    return member_hashes(folder / "weights")


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_resume_after_a_kill_reaches_the_same_ensemble(dataset, tmp_path, stop, uninterrupted):
    """Stopped after its first checkpoint: by SIGKILL (a lost node), or by SIGTERM (docker stop,
    Kubernetes, Slurm), which ends with one line, exit code 143 and nothing but checkpoints."""
    run_dir = tmp_path / "run_killed"
    process = subprocess.Popen(
        train_command(dataset, tmp_path / "killed", run_dir, *KILL_ARGUMENTS),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    checkpoint = run_dir / "cnn0.ckpt"
    deadline = time.time() + 120
    while not checkpoint.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(stop)
    stderr = process.communicate()[1]
    assert checkpoint.exists() and not (tmp_path / "killed" / "manifest.json").exists()
    if stop == signal.SIGTERM:
        assert process.returncode == 143 and "Traceback" not in stderr
        assert (
            stderr.strip()
            .splitlines()[-1]
            .startswith("train.py: error: terminated (SIGTERM). Finished epochs")
        )

    refused = train(dataset, tmp_path / "killed", *KILL_ARGUMENTS, run_dir=run_dir)
    assert refused.returncode == 2 and "pass --resume" in refused.stderr

    resumed = train(dataset, tmp_path / "killed", *KILL_ARGUMENTS, "--resume", run_dir=run_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after epoch" in resumed.stderr
    assert member_hashes(tmp_path / "killed") == uninterrupted


def test_sigkill_mid_writes_then_resume_reaches_the_same_ensemble(dataset, tmp_path, uninterrupted):
    """Killed (tests/kill_at.py) with half a spectrogram in the feature cache's data file, then on
    resuming with half the second checkpoint in its temp file, then with half the manifest in
    its temp file: each --resume reads only what is whole, and the last reaches the
    uninterrupted run's ensemble."""
    run_dir, out, cache = tmp_path / "run", tmp_path / "weights", ["--cache", str(tmp_path / "cache")]
    for n, point in enumerate(["cache:30", "file:cnn0.ckpt:2", "file:manifest.json"]):
        kill_at = (sys.executable, str(REPO / "tests" / "kill_at.py"), point)
        resume = ["--resume"] * (n > 0)
        command = train_command(dataset, out, run_dir, *KILL_ARGUMENTS, *cache, *resume, launcher=kill_at)
        killed = subprocess.run(command, capture_output=True, text=True)
        assert killed.returncode == -signal.SIGKILL, (point, killed.stderr)  # the point was reached
        assert "Traceback" not in killed.stderr and not (out / "manifest.json").exists()

    resumed = train(dataset, out, *KILL_ARGUMENTS, *cache, "--resume", run_dir=run_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert "Traceback" not in resumed.stderr
    assert member_hashes(out) == uninterrupted


@pytest.mark.parametrize("folder", ["--cache", "--run-dir", "--out"])
def test_a_full_disk_stops_training_in_one_line_and_resume_finishes(dataset, tmp_path, folder, uninterrupted):
    """The feature cache (5 MB here), the run folder (a 150 kB checkpoint) or the weights (~130
    kB) on a tmpfs with 64 kB free: one line naming the file, exit code 1, no manifest; once there
    is room, --resume reaches the uninterrupted run's ensemble."""
    places = {"--cache": tmp_path / "cache", "--run-dir": tmp_path / "run", "--out": tmp_path / "weights"}
    with small_disk(tmp_path / "small", 16384, free_kb=64) as disk:
        places[folder] = disk / "here"
        arguments = [*KILL_ARGUMENTS, "--cache", str(places["--cache"])]
        full = train(dataset, places["--out"], *arguments, run_dir=places["--run-dir"])
        assert full.returncode == 1, full.stderr
        last = full.stderr.strip().splitlines()[-1]
        assert last.startswith(f"train.py: error: no space left to write {disk}/here/"), full.stderr
        assert "free some space and rerun the same command with --resume" in last
        assert "Traceback" not in full.stderr and not (places["--out"] / "manifest.json").exists()

        (disk / "filler").unlink()
        resumed = train(dataset, places["--out"], *arguments, "--resume", run_dir=places["--run-dir"])
        assert resumed.returncode == 0, resumed.stderr
        assert member_hashes(places["--out"]) == uninterrupted


def test_cache_is_reused_keyed_by_config_and_resumable(dataset, tmp_path, monkeypatch, capsys):
    tracks = fma.load_fma(dataset["metadata"], dataset["audio"])[["key", "path"]].head(12)
    config = SpectrogramConfig(n_mels=40)
    first = build_cache(tmp_path, config, tracks, workers=0)
    assert (first.index["status"] == "ok").sum() == 12

    # A crash after the last index save: the index lost its last rows, the data file has extra bytes.
    folder = cache_folder(tmp_path, config)
    index = pd.read_csv(folder / "index.csv", dtype={"key": str})
    index.head(7).to_csv(folder / "index.csv", index=False)
    with open(folder / "logmel.f16", "ab") as data:
        data.write(b"\x00" * 1000)
    resumed = build_cache(tmp_path, config, tracks, workers=0)
    assert "5 to compute" in capsys.readouterr().err
    for key in tracks["key"]:
        assert np.array_equal(resumed.spectrogram(key), first.spectrogram(key))

    def no_decoding(*args, **kwargs):
        raise AssertionError("a cached track was decoded again")

    monkeypatch.setattr("model.feature_cache.decode_many", no_decoding)
    again = build_cache(tmp_path, config, tracks, workers=0)
    assert len(again.ok()) == 12
    other = SpectrogramConfig(n_mels=48)
    assert cache_folder(tmp_path, other) != folder
    monkeypatch.undo()
    assert build_cache(tmp_path, other, tracks, workers=0).data.shape[1] == 48


def test_an_interrupted_cache_build_keeps_what_it_computed(dataset, tmp_path, monkeypatch, capsys):
    """^C mid-build (here after 5 tracks, long before an index save is due): those 5 are saved,
    the rerun computes only the rest."""
    tracks = fma.load_fma(dataset["metadata"], dataset["audio"])[["key", "path"]].head(12)
    config = SpectrogramConfig(n_mels=40)
    interrupt_decoding(monkeypatch, after=5)
    with pytest.raises(KeyboardInterrupt):
        build_cache(tmp_path, config, tracks, workers=0)
    monkeypatch.undo()
    capsys.readouterr()
    resumed = build_cache(tmp_path, config, tracks, workers=0)
    assert "5 tracks cached, 7 to compute" in capsys.readouterr().err
    straight = build_cache(tmp_path / "straight", config, tracks, workers=0)
    for key in tracks["key"]:
        assert np.array_equal(resumed.spectrogram(key), straight.spectrogram(key))


def test_two_configs_fill_from_one_decoding_pass(dataset, tmp_path, monkeypatch):
    """The CNNs' and musicnn's caches (train.py --backbone musicnn) decode each file once."""
    import model.feature_cache
    from model.musicnn import MUSICNN_SPECTROGRAM

    tracks = fma.load_fma(dataset["metadata"], dataset["audio"])[["key", "path"]].head(8)
    alone = {
        config: build_cache(tmp_path / "alone", config, tracks, workers=0)
        for config in (SpectrogramConfig(n_mels=40), MUSICNN_SPECTROGRAM)
    }
    decoded, real = [], model.feature_cache.decode_many

    def counting(paths, *args, **kwargs):
        decoded.extend(paths)
        return real(paths, *args, **kwargs)

    monkeypatch.setattr("model.feature_cache.decode_many", counting)
    together = build_caches(tmp_path / "together", list(alone), tracks, workers=0)
    assert len(decoded) == 8
    for config, cache in together.items():
        assert cache.data.shape[1] == config.n_mels and len(cache.ok()) == 8
        for key in tracks["key"]:
            assert np.array_equal(cache.spectrogram(key), alone[config].spectrogram(key))


def test_resumed_build_computes_only_missing_configs(dataset, tmp_path, monkeypatch, capsys):
    """A track already in one cache is decoded again only for the cache that lacks it (adding
    --backbone musicnn to a CNN run), and an unusable track is listed once, not once per cache."""
    import model.feature_cache
    from model.musicnn import MUSICNN_SPECTROGRAM

    tracks = fma.load_fma(dataset["metadata"], dataset["audio"])[["key", "path"]]
    cnn = SpectrogramConfig(n_mels=40)
    build_cache(tmp_path, cnn, tracks, workers=0)
    build_cache(tmp_path, MUSICNN_SPECTROGRAM, tracks.head(4), workers=0)
    capsys.readouterr()
    computed, real = [], model.feature_cache.log_mel_features

    def counting(decoded, configs):
        computed.append(configs)
        return real(decoded, configs)

    monkeypatch.setattr("model.feature_cache.log_mel_features", counting)
    caches = build_caches(tmp_path, [cnn, MUSICNN_SPECTROGRAM], tracks, workers=0)
    assert computed and all(configs == (MUSICNN_SPECTROGRAM,) for configs in computed)
    assert len(caches[MUSICNN_SPECTROGRAM].index) == len(caches[cnn].index) == len(tracks)
    assert len(re.findall(r"skipped \d+: empty file \(0 bytes\)", capsys.readouterr().err)) == 1


def test_crowdai_and_own_labels_train(dataset, tmp_path):
    tracks = fma.load_fma(dataset["metadata"], dataset["audio"])
    labels = tmp_path / "train_labels.csv"
    tracks.assign(track_id=tracks["key"].astype(int))[["track_id", "genre"]].to_csv(labels, index=False)
    arguments = [*QUICK, "--min-epoch-steps", "8"]
    crowdai = train(
        dataset, tmp_path / "crowdai", "--labels", str(labels), "--audio", str(dataset["audio"]), *arguments
    )
    assert crowdai.returncode == 0, crowdai.stderr
    assert "not artist-filtered" in crowdai.stderr

    own = tmp_path / "own.csv"
    pd.DataFrame(
        {
            "path": [str(Path(p).relative_to(dataset["root"])) for p in tracks["path"]],
            "genre": tracks["genre"],
        }
    ).to_csv(own, index=False)
    moved = dataset["root"] / "own.csv"  # paths are relative to the labels file's folder
    moved.write_text(own.read_text())
    mine = train(dataset, tmp_path / "own", "--labels", str(moved), *arguments)
    assert mine.returncode == 0, mine.stderr
    assert json.loads((tmp_path / "own" / "manifest.json").read_text())["members"][0]["kind"] == "cnn"


def test_a_run_keeps_its_ensemble_and_shipping_it_is_a_deliberate_step(dataset, tmp_path):
    shipped = REPO / "weights" / "manifest.json"
    before = shipped.read_bytes()
    run = tmp_path / "run"
    quick = [*QUICK, "--min-epoch-steps", "4"]
    result = subprocess.run(train_command(dataset, None, run, *quick), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (run / "manifest.json").is_file() and (run / "cnn0.ckpt").is_file()  # beside its checkpoints
    assert shipped.read_bytes() == before  # the model run.sh ships is untouched
    assert f"python tools/promote_run.py {run}" in result.stderr

    target = tmp_path / "weights"
    shutil.copytree(REPO / "weights", target)  # the zero-shot default, as shipped
    promote = [sys.executable, str(REPO / "tools" / "promote_run.py"), str(run), "--to", str(target)]
    promoted = subprocess.run(promote, capture_output=True, text=True)
    assert promoted.returncode == 0, promoted.stderr
    assert "replaced: " + json.loads(before)["description"] in promoted.stdout
    assert (target / "musicnn" / "musicnn_pair.pt").is_file()  # train.py's --backbone-weights stay
    payload = dataset["audio"] / "000"
    for weights in (run, target):
        assert (
            run_predict(payload, weights, tmp_path / f"{weights.name}.csv", "--workers", "0").returncode == 0
        )
    rows = [(tmp_path / f"{weights.name}.csv").read_text() for weights in (run, target)]
    assert rows[0] == rows[1]

    again = subprocess.run(
        train_command(dataset, target, tmp_path / "run2", *quick), capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr
    assert f"replacing the ensemble in {target}: " in again.stderr  # an explicit --out says what goes
    wrong = subprocess.run([*promote[:2], str(tmp_path)], capture_output=True, text=True)
    assert wrong.returncode == 2 and "holds no ensemble" in wrong.stderr


def test_data_errors_name_the_problem(dataset, tmp_path):
    bad_columns = tmp_path / "labels.csv"
    bad_columns.write_text("id,label\n2,Rock\n")
    with pytest.raises(fma.DataError, match=r"lacks column\(s\) \['track_id', 'genre'\]"):
        fma.load_crowdai_labels(bad_columns, dataset["audio"])
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("track_id,genre\n2,Disco\n")
    with pytest.raises(fma.DataError, match=r"unknown genre\(s\) \['Disco'\]"):
        fma.load_crowdai_labels(unknown, dataset["audio"])
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "000002.mp3").write_bytes(b"x")  # no 000/ sub-folder: the wrong layout
    good = tmp_path / "good.csv"
    good.write_text("track_id,genre\n2,Rock\n")
    with pytest.raises(fma.DataError, match="expected FMA's layout .*000/000002.mp3"):
        fma.load_crowdai_labels(good, flat)
    with pytest.warns(UserWarning, match=r"1 labelled track\(s\) have no audio file and are skipped: 99999"):
        fma.load_crowdai_labels(_with_extra_row(tmp_path, dataset), dataset["audio"])
    result = train(dataset, tmp_path / "w", "--metadata", str(tmp_path), "--audio", str(dataset["audio"]))
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "tracks.csv not found" in result.stderr


@pytest.mark.parametrize(
    "rows, empty, fix",
    [
        (
            lambda t: t.assign(split="training"),
            "the validation split is empty (",
            "give some rows that split",
        ),
        (lambda t: t.head(2)[["path", "genre"]], "the validation split is empty (", "at least 3"),
    ],
)
def test_an_empty_split_is_one_line_before_any_decoding(dataset, tmp_path, rows, empty, fix):
    labels = tmp_path / "labels.csv"
    rows(fma.load_fma(dataset["metadata"], dataset["audio"])[["path", "genre", "split"]]).to_csv(
        labels, index=False
    )
    command = train_command({**dataset, "cache": tmp_path / "cache"}, tmp_path / "w", tmp_path / "run")
    command = [
        a
        for a in command
        if a not in ("--metadata", "--audio", str(dataset["metadata"]), str(dataset["audio"]))
    ]
    result = subprocess.run([*command, "--labels", str(labels)], capture_output=True, text=True)
    assert result.returncode == 1
    error = [line for line in result.stderr.splitlines() if line.startswith("train.py: error:")]
    assert len(error) == 1 and empty in error[0] and fix in error[0], result.stderr
    assert not (tmp_path / "cache").exists()  # nothing decoded


def _with_extra_row(tmp_path, dataset) -> Path:
    tracks = fma.load_fma(dataset["metadata"], dataset["audio"])
    path = tmp_path / "extra.csv"
    frame = pd.DataFrame({"track_id": tracks["key"].astype(int), "genre": tracks["genre"]})
    pd.concat([frame, pd.DataFrame({"track_id": [99999], "genre": ["Rock"]})]).to_csv(path, index=False)
    return path


def test_split_payload_links_one_split_flat(dataset, tmp_path):
    """tools/split_payload.py: FMA's nested test split as the flat folder predict.py reads."""
    out = tmp_path / "mp3s"
    command = [
        sys.executable,
        str(REPO / "tools" / "split_payload.py"),
        str(dataset["metadata"]),
        str(dataset["audio"]),
        str(out),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    tracks = fma.load_fma(dataset["metadata"], dataset["audio"])
    expected = sorted(f"{int(key):06d}.mp3" for key in tracks.loc[tracks["split"] == "test", "key"])
    assert sorted(p.name for p in out.iterdir()) == expected
    assert all((out / name).is_symlink() and (out / name).resolve().is_file() for name in expected)
    assert subprocess.run(command, capture_output=True).returncode == 0  # rerun: links replaced
    (out / "mine.mp3").write_bytes(b"")
    again = subprocess.run(command, capture_output=True, text=True)
    assert again.returncode == 2 and "holds mp3 files of its own" in again.stderr


def test_default_run_folders_never_collide_and_resume_takes_the_newest(tmp_path):
    from train import choose_run_dir

    root = tmp_path / "runs"
    first = choose_run_dir(None, False, root)
    first.mkdir(parents=True)
    (first / "cnn0.ckpt").write_bytes(b"x")
    second = choose_run_dir(None, False, root)
    assert second != first and second.parent == root
    second.mkdir()
    (second / "cnn0.ckpt").write_bytes(b"x")
    assert choose_run_dir(None, True, root) == max(first, second, key=lambda p: p.name)
    with pytest.raises(ValueError, match="holds checkpoints of an earlier run"):
        choose_run_dir(str(first), False, root)
    assert choose_run_dir(str(first), True, root) == first
    with pytest.raises(ValueError, match="no run with checkpoints"):
        choose_run_dir(None, True, tmp_path / "empty")
