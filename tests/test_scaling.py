"""Past one process: training under torchrun (gloo, 2 processes on the CPU), feature caches built
in shards, and prediction in shards joined by tools/merge_predictions.py."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_train import assert_every_member_beats_the_prior, member_hashes, train_command

from conftest import REPO, children_of, interrupt_decoding, make_fma_dataset, survivors
from model import fma
from model.feature_cache import build_caches, cache_folder, part_folder
from model.sharding import Shard
from model.spectrogram import SpectrogramConfig

pytestmark = pytest.mark.slow  # torchrun and spawned ranks train networks

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
# One member, 8 epochs of at least 12 steps: the single-process tests' quality bar in ~1 minute.
ONE_MEMBER = ["--members", "1", "--epochs", "8", "--chunk-seconds", "1", "--workers", "1"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("fma")
    metadata, audio = make_fma_dataset(root, per_split=(25, 4, 4), seconds=2.5)  # 100 training clips
    return {"metadata": metadata, "audio": audio, "cache": root / "cache"}


def assert_every_rank_exited_cleanly(result: subprocess.CompletedProcess) -> None:
    """torchrun exits 0 only when every rank did: a rank that aborted after a successful run (a
    SIGABRT in the process group's teardown) makes it report a ChildFailedError and exit 1, which
    a user's scheduler would count as a failed job."""
    assert result.returncode == 0, result.stderr[-3000:]
    for sign in ("ChildFailedError", "terminate called", "Signal ", "SIGABRT"):
        assert sign not in result.stderr, result.stderr[-3000:]


def test_torchrun_trains_two_ranks_in_step_and_resumes_after_sigterm_and_sigkill(dataset, tmp_path):
    straight = subprocess.run(
        train_command(
            dataset, tmp_path / "straight", tmp_path / "run_straight", *ONE_MEMBER, launcher=TORCHRUN
        ),
        capture_output=True,
        text=True,
    )
    assert_every_rank_exited_cleanly(straight)
    assert "training on 2 ranks, cpu" in straight.stderr
    assert "cnn0: parameters identical on all 2 ranks" in straight.stderr  # checked bit for bit
    assert straight.stderr.count("cnn0 epoch   1:") == 1  # rank 0 speaks for both
    # both ranks decoded a shard of the cache; rank 0 joined them
    assert straight.stderr.count("joined part") == 2
    report = json.loads((tmp_path / "straight" / "report.json").read_text())
    assert_every_member_beats_the_prior(report)
    assert report["ensemble"]["log_loss"] < 0.5 * report["prior_log_loss"]

    # SIGTERM to torchrun alone, as docker stop, Kubernetes or Slurm send it: torchrun passes it
    # to every rank, each keeps its checkpoint and ends at once, rank 0 says so in one line.
    run_dir = tmp_path / "run_killed"
    command = train_command(dataset, tmp_path / "killed", run_dir, *ONE_MEMBER, launcher=TORCHRUN)
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, start_new_session=True)
    checkpoint, ranks = run_dir / "cnn0.ckpt", set()
    deadline = time.time() + 180
    while not checkpoint.exists() and process.poll() is None and time.time() < deadline:
        ranks |= children_of(process.pid)
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    stderr = process.communicate(timeout=120)[1]
    assert ranks and survivors(ranks) == {}
    assert stderr.count("train.py: error: terminated (SIGTERM). Finished epochs") == 1, stderr[-3000:]
    assert "Received 15 death signal" in stderr  # torchrun's own word (and its exit code 1)
    assert checkpoint.exists() and not (tmp_path / "killed" / "manifest.json").exists()

    # then SIGKILL to torchrun and both ranks while they train on, as a lost node would
    process = subprocess.Popen(
        [*command, "--resume"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    first = checkpoint.stat().st_mtime_ns
    deadline = time.time() + 180
    while checkpoint.stat().st_mtime_ns == first and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "killed" / "manifest.json").exists()

    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True)
    assert_every_rank_exited_cleanly(resumed)
    assert "cnn0: resuming after epoch" in resumed.stderr
    assert member_hashes(tmp_path / "killed") == member_hashes(tmp_path / "straight")


def test_torchrun_refuses_a_batch_that_the_ranks_cannot_share(dataset, tmp_path):
    command = train_command(dataset, tmp_path / "w", tmp_path / "run", *ONE_MEMBER, launcher=TORCHRUN)
    command[command.index("--batch-size") + 1] = "7"
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode != 0
    assert "train.py: error: --batch-size 7 must be a multiple of the 2 ranks" in result.stderr


def test_cache_shards_join_into_what_one_build_makes_without_decoding_again(
    dataset, tmp_path, monkeypatch, capsys
):
    tracks = fma.load_fma(dataset["metadata"], dataset["audio"])[["key", "path"]]
    config = SpectrogramConfig(n_mels=40)
    shards = [Shard(0, 2), Shard(1, 2)]
    for shard in shards:
        part = build_caches(tmp_path / "sharded", [config], tracks, workers=0, shard=shard)[config]
        assert part.folder == part_folder(tmp_path / "sharded", config, shard)
        assert set(part.index["key"]) == set(shard.take(tracks["key"].astype(str)))
    assert not (cache_folder(tmp_path / "sharded", config) / "index.csv").exists()

    def no_decoding(paths, *args, **kwargs):
        assert not list(paths), "joining shards must not decode"
        return iter(())

    monkeypatch.setattr("model.feature_cache.decode_many", no_decoding)
    capsys.readouterr()
    joined = build_caches(tmp_path / "sharded", [config], tracks, workers=0)[config]
    err = capsys.readouterr().err
    assert err.count("joined part") == 2 and "0 to compute" in err
    assert not (cache_folder(tmp_path / "sharded", config) / "parts").exists()
    monkeypatch.undo()

    one_shot = build_caches(tmp_path / "one_shot", [config], tracks, workers=0)[config]
    assert len(joined.index) == len(one_shot.index) == len(tracks)
    by_key = one_shot.index.set_index("key")
    for row in joined.index.itertuples():
        assert (row.status, row.reason) == tuple(by_key.loc[row.key, ["status", "reason"]])
        if row.status == "ok":
            assert np.array_equal(joined.spectrogram(row.key), one_shot.spectrogram(row.key))
    assert (joined.index["status"] == "failed").sum() == 1  # the empty mp3 (the truncated one decodes)


def test_a_cache_shard_resumes_and_skips_what_the_joined_cache_has(dataset, tmp_path, monkeypatch, capsys):

    tracks = fma.load_fma(dataset["metadata"], dataset["audio"])[["key", "path"]].head(20)
    config, shard = SpectrogramConfig(n_mels=40), Shard(1, 2)
    interrupt_decoding(monkeypatch, after=4)
    with pytest.raises(KeyboardInterrupt):
        build_caches(tmp_path, [config], tracks, workers=0, shard=shard)
    monkeypatch.undo()
    capsys.readouterr()
    build_caches(tmp_path, [config], tracks.head(0), workers=0)  # a join now must leave the part alone
    assert "is not complete" in capsys.readouterr().err
    assert (part_folder(tmp_path, config, shard) / "index.csv").exists()
    build_caches(tmp_path, [config], tracks, workers=0, shard=shard)
    assert "4 tracks cached, 6 to compute" in capsys.readouterr().err
    assert (part_folder(tmp_path, config, shard) / "complete").exists()

    build_caches(tmp_path, [config], tracks, workers=0)  # joins shard 1, decodes shard 0's tracks
    assert build_caches(tmp_path, [config], tracks, workers=0, shard=Shard(0, 2)) == {}
    assert "shard 0/2: nothing to decode" in capsys.readouterr().err


def test_train_py_shard_builds_only_its_part(dataset, tmp_path):
    dataset = {**dataset, "cache": tmp_path / "cache"}

    def run(*extra: str) -> subprocess.CompletedProcess:
        command = train_command(dataset, tmp_path / "w", tmp_path / "run", *ONE_MEMBER, *extra)
        return subprocess.run(command, capture_output=True, text=True)

    first = run("--shard", "0/2")
    assert first.returncode == 0, first.stderr
    assert "cache shard 0/2:" in first.stderr and not (tmp_path / "w").exists()
    assert list((tmp_path / "cache").glob("logmel-*/parts/0-of-2/index.csv"))
    for bad, message in (("2/2", "need 0 <= i < n"), ("x", "expected i/n")):
        result = run("--shard", bad)
        assert result.returncode == 2 and message in result.stderr and len(result.stderr.splitlines()) == 1


@pytest.fixture(scope="module")
def shard_payload(tmp_path_factory) -> Path:
    """Seven clips, one broken, one upper-case extension: every kind of row a shard can hold."""
    import soundfile as sf

    from conftest import toy_clip

    folder = tmp_path_factory.mktemp("payload")
    for i, genre in enumerate(["Rock", "Classical", "Hip-Hop", "Electronic", "Rock", "Classical"]):
        sf.write(folder / f"clip{i}{'.MP3' if i == 4 else '.mp3'}", toy_clip(genre, i, seconds=2.0), 22050)
    (folder / "broken.mp3").write_bytes(b"not audio")
    return folder


def predict(payload: Path, out: Path, weights: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / "predict.py"), "--payload", str(payload), "--out", str(out)]
    command += ["--weights", str(weights), "--device", "cpu", "--workers", "1", *extra]
    return subprocess.run(command, capture_output=True, text=True)


def merge(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "tools" / "merge_predictions.py"), *arguments],
        capture_output=True,
        text=True,
    )


def test_prediction_shards_merge_into_the_single_run_csv(shard_payload, tiny_weights, tmp_path):
    whole = predict(shard_payload, tmp_path / "whole.csv", tiny_weights)
    assert whole.returncode == 0, whole.stderr
    parts = []
    for i in range(3):
        part = tmp_path / f"part{i}.csv"
        result = predict(shard_payload, part, tiny_weights, "--shard", f"{i}/3")
        assert result.returncode == 0, result.stderr
        assert f"shard {i}/3:" in result.stderr
        with open(part, newline="") as file:
            assert len(list(csv.reader(file))) - 1 in (2, 3)  # 7 files over 3 shards
        parts.append(str(part))

    merged = merge(*parts, "--payload", str(shard_payload), "--out", str(tmp_path / "merged.csv"))
    assert merged.returncode == 0, merged.stderr
    assert (tmp_path / "merged.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()

    missing = merge(*parts[:2], "--payload", str(shard_payload), "--out", str(tmp_path / "m2.csv"))
    assert missing.returncode == 1 and "have no row" in missing.stderr and not (tmp_path / "m2.csv").exists()
    twice = merge(*parts, parts[0], "--payload", str(shard_payload), "--out", str(tmp_path / "m3.csv"))
    assert twice.returncode == 1 and "is in both" in twice.stderr and not (tmp_path / "m3.csv").exists()
    other = tmp_path / "other"
    shutil.copytree(shard_payload, other)
    (other / "clip0.mp3").unlink()
    extra = merge(*parts, "--payload", str(other), "--out", str(tmp_path / "m4.csv"))
    assert extra.returncode == 1 and "not in the payload: clip0" in extra.stderr


def test_predict_shard_arguments_get_one_line(shard_payload, tiny_weights, tmp_path):
    for extra, message in (
        (["--shard", "3/3"], "need 0 <= i < n"),
        (["--shard", "1-3"], "expected i/n"),
    ):
        result = predict(shard_payload, tmp_path / "x.csv", tiny_weights, *extra)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    command = [
        sys.executable,
        str(REPO / "predict.py"),
        str(next(shard_payload.glob("*.mp3"))),
        "--shard",
        "0/2",
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 2 and "--shard splits a --payload folder" in result.stderr


def test_a_long_track_is_cached_as_three_windows_from_its_thirds(tmp_path):
    import soundfile as sf

    from conftest import toy_clip
    from model.audio import decode
    from model.feature_cache import build_cache, track_windows
    from model.spectrogram import LogMel

    rate = 16000
    assert track_windows(60 * rate, rate) == [(0, 60 * rate)]  # short enough: whole
    assert track_windows(90 * rate, rate) == [(0, 90 * rate)]
    windows = [(a / rate, b / rate) for a, b in track_windows(300 * rate, rate)]
    assert windows == [(35.0, 65.0), (135.0, 165.0), (235.0, 265.0)]

    path = tmp_path / "long.mp3"
    sf.write(
        path, np.concatenate([toy_clip(g, 1, seconds=40.0) for g in ("Rock", "Classical", "Hip-Hop")]), 22050
    )
    config = SpectrogramConfig(n_mels=40)
    tracks = pytest.importorskip("pandas").DataFrame({"key": ["long"], "path": [path]})
    cached = build_cache(tmp_path / "cache", config, tracks, workers=0).spectrogram("long")
    assert cached.shape == (40, 3 * config.frames(30 * rate))
    audio = decode(path, rate).audio
    (start, end) = track_windows(len(audio), rate)[1]
    middle = LogMel(config)(torch_tensor(audio[start:end]))[0].numpy()
    width = config.frames(30 * rate)
    assert np.allclose(cached[:, width : 2 * width], middle, atol=0.05)  # fp16 in the cache


def torch_tensor(audio: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(audio))[None]


def test_fma_large_and_full_keep_the_tracks_with_a_top_genre_and_count_the_rest(tmp_path):
    import pandas as pd

    rows = [
        (2, "small", "training", "Rock"),
        (3, "medium", "training", "Jazz"),
        (5, "large", "validation", "Pop"),
        (7, "large", "test", None),  # genres spanning several top-level ones: no genre_top
        (11, "large", "training", None),
    ]
    columns = pd.MultiIndex.from_tuples([("set", "subset"), ("set", "split"), ("track", "genre_top")])
    frame = pd.DataFrame(
        [r[1:] for r in rows], index=pd.Index([r[0] for r in rows], name="track_id"), columns=columns
    )
    frame.to_csv(tmp_path / "tracks.csv")
    assert list(fma.read_tracks(tmp_path, "medium")["key"]) == ["2", "3"]
    for subset in ("large", "full"):
        with pytest.warns(UserWarning, match=f"2 of the 5 tracks of fma_{subset} have no top genre"):
            table = fma.read_tracks(tmp_path, subset)
        assert list(table["key"]) == ["2", "3", "5"] and list(table["split"]) == [
            "training",
            "training",
            "validation",
        ]


def _two_ranks(rank: int, init_file: str, results: str) -> None:
    """One of two gloo processes: gather uneven blocks, then catch a replica that drifted."""
    import torch
    import torch.distributed as dist

    from model.distributed import Ranks, check_identical, finish, gather_rows

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    ranks = Ranks(rank=rank, world=2)
    mine = ranks.block(5)  # 3 rows on rank 0, 2 on rank 1
    rows = gather_rows(torch.arange(5.0)[mine.start : mine.stop, None].repeat(1, 2), 5, ranks)
    torch.manual_seed(0)
    network = torch.nn.Linear(3, 2)
    check_identical(network, ranks)  # the same seed: identical
    with torch.no_grad():
        network.weight[0, 0] += 1e-6 * rank  # one replica off by 1e-6
    try:
        check_identical(network, ranks)
        caught = ""
    except RuntimeError as error:
        caught = str(error)
    Path(results, f"{rank}.json").write_text(json.dumps({"rows": rows.tolist(), "caught": caught}))
    finish(ranks)  # as the product ends: barrier, then teardown


def test_ranks_gather_uneven_blocks_and_a_drifted_replica_is_caught(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_two_ranks, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    for rank in range(2):
        result = json.loads((tmp_path / f"{rank}.json").read_text())
        assert result["rows"] == [[float(i)] * 2 for i in range(5)]
        assert "ranks disagree on weight" in result["caught"]


def _fine_tune_rank(rank: int, init_file: str, results: str) -> None:
    """One of two gloo ranks fine-tuning a musicnn head: parameters that feed nothing (the tag
    layers) must not stall DDP, and the replicas must end identical."""
    import torch
    import torch.distributed as dist

    from model.distributed import Ranks, finish
    from model.features import ClipSet, FeatureStore
    from model.members import MemberConfig
    from model.musicnn import MUSICNN_CHUNK_FRAMES
    from model.training import train_member

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    data = (torch.rand(6 * 200, 96, generator=generator) * 4).half().numpy()
    clips = ClipSet(torch.arange(6) * 200, torch.full((6,), 200), torch.arange(6) % 3)
    store = FeatureStore(data, torch.device("cpu"), compression="log10_1p")
    config = MemberConfig(
        name="ft",
        architecture="musicnn_transfer",
        hparams={"hidden": 8, "fine_tune": True},
        epochs=1,
        batch_size=4,  # 2 per rank: batch-norm needs 2 in training
        min_epoch_steps=3,
        batch_norm_crops=4,
        mixup_alpha=0.0,
        backbone_weights=str(REPO / "weights" / "musicnn" / "musicnn_pair.pt"),
    )
    ranks = Ranks(rank=rank, world=2)
    train_member(config, store, clips, clips, MUSICNN_CHUNK_FRAMES, Path(results) / "ft.ckpt", ranks)
    Path(results, f"ft{rank}.done").write_text("ok")  # train_member checked the replicas itself
    finish(ranks)  # as the product ends: a rank that tore gloo down mid-collective aborted its peer


def test_a_fine_tuned_musicnn_head_trains_under_two_ranks(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_fine_tune_rank, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    assert (tmp_path / "ft0.done").exists() and (tmp_path / "ft1.done").exists()
    assert (tmp_path / "ft.ckpt").exists()  # written by rank 0
