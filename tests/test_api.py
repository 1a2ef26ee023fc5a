"""The Python API (model.GenreModel) is predict.py's own pipeline: same rows for the same audio,
whatever form the audio comes in; segments that add up to the clip where the chunking allows."""

from __future__ import annotations

import doctest
import io
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from conftest import REPO, random_state_dicts, signal, write_mp3
from model import GenreModel, UnusableAudio
from model.calibration import PROBABILITY_FLOOR
from model.genres import GENRES


@pytest.fixture(scope="module")
def songs(tmp_path_factory) -> Path:
    """Stereo mp3s at 22.05 and 48 kHz, one VBR, and a silent one, in one payload folder."""
    folder = tmp_path_factory.mktemp("api-payload")
    write_mp3(folder / "low.mp3", signal(6.0, 22050, freq=330.0, seed=1), 22050)
    write_mp3(folder / "high.mp3", signal(7.5, 48000, freq=880.0, seed=2), 48000, vbr=True)
    write_mp3(folder / "quiet.mp3", np.zeros((48000, 2), np.float32), 48000)
    return folder


@pytest.fixture(scope="module")
def cnn_weights(tmp_path_factory) -> Path:
    from conftest import tiny_ensemble_manifest
    from model.saving import save_ensemble

    folder = tmp_path_factory.mktemp("api-weights") / "weights"
    manifest = tiny_ensemble_manifest()
    save_ensemble(folder, manifest, random_state_dicts(manifest))
    return folder


def predict_py_rows(payload: Path, weights: Path, out: Path) -> pd.DataFrame:
    subprocess.run(
        [
            sys.executable,
            str(REPO / "predict.py"),
            "--payload",
            str(payload),
            "--out",
            str(out),
            "--weights",
            str(weights),
        ],
        check=True,
        capture_output=True,
    )
    return pd.read_csv(out, index_col="file_id")


@pytest.mark.parametrize("which", ["cnn", "zero_shot"])
def test_every_input_form_gives_predict_py_row(songs, cnn_weights, zero_shot_weights, tmp_path, which):
    weights = cnn_weights if which == "cnn" else zero_shot_weights
    expected = predict_py_rows(songs, weights, tmp_path / "out.csv")
    model = GenreModel.load(weights, device="cpu")
    for name in ("low", "high"):
        path = songs / f"{name}.mp3"
        want = expected.loc[name].to_numpy()
        stereo, rate = sf.read(path, dtype="float32")  # (samples, channels), the file's own rate
        assert rate == (22050 if name == "low" else 48000)
        rows = {
            "path": model.predict(path),
            "str path": model.predict(str(path)),
            "bytes": model.predict(path.read_bytes()),
            "file object": model.predict(open(path, "rb")),
            "BytesIO": model.predict(io.BytesIO(path.read_bytes())),
            "channels last": model.predict(stereo, sample_rate=rate),
            "channels first": model.predict(stereo.T.copy(), sample_rate=rate),
            "mono": model.predict(stereo.mean(axis=1), sample_rate=rate),
        }
        for form, row in rows.items():
            assert list(row.index) == list(GENRES), form
            assert abs(row.sum() - 1) < 1e-9, form
            np.testing.assert_allclose(row.to_numpy(), want, atol=2e-6, err_msg=f"{name}: {form}")
        assert rows["path"].name == name and rows["bytes"].name is None


def test_predict_many_is_predict_py(songs, cnn_weights, tmp_path):
    expected = predict_py_rows(songs, cnn_weights, tmp_path / "out.csv")
    model = GenreModel.load(cnn_weights, device="cpu")
    paths = sorted(songs.glob("*.mp3"), reverse=True)  # input order is kept, whatever it is
    with pytest.warns(UserWarning, match="1 of 3 files got the class prior"):
        table = model.predict_many(paths, workers=2, progress=False)
    assert list(table.index) == ["quiet", "low", "high"] and list(table.columns) == list(GENRES)
    np.testing.assert_allclose(table.to_numpy(), expected.loc[table.index].to_numpy(), atol=2e-8)
    assert table.attrs["fallbacks"] == {"quiet": "silent (digital silence)"}


def test_unusable_audio_gives_the_prior_with_a_warning_or_raises_when_strict(songs, cnn_weights):
    model = GenreModel.load(cnn_weights, device="cpu")
    prior = model.ensemble.fallback_probabilities()
    with pytest.warns(UserWarning, match="quiet: silent"):
        row = model.predict(songs / "quiet.mp3")
    np.testing.assert_allclose(row.to_numpy(), prior)
    with pytest.raises(UnusableAudio, match="quiet: silent"):
        model.predict(songs / "quiet.mp3", strict=True)
    with pytest.raises(UnusableAudio, match="no decodable audio|not an audio file"):
        model.predict(b"not an mp3 at all" * 100, strict=True)
    with pytest.raises(UnusableAudio, match="too short"):
        model.predict(np.ones(100, np.float32) * 0.1, sample_rate=16000, strict=True)


def test_a_path_that_names_no_readable_file_raises_instead_of_returning_the_prior(
    songs, cnn_weights, tmp_path
):
    model = GenreModel.load(cnn_weights, device="cpu")
    calls = [
        model.predict,
        model.segments,
        lambda path: model.predict_many([songs / "low.mp3", path], progress=False),
    ]
    for call in calls:
        with pytest.raises(FileNotFoundError, match="no/such/file.mp3"):
            call("no/such/file.mp3")
        with pytest.raises(IsADirectoryError):
            call(songs)
    unreadable = tmp_path / "locked.mp3"
    unreadable.write_bytes((songs / "low.mp3").read_bytes())
    unreadable.chmod(0)
    if not os.access(unreadable, os.R_OK):  # root reads anything
        with pytest.raises(PermissionError):
            model.predict(unreadable)


def test_bad_waveform_arguments_are_refused_in_one_line(cnn_weights):
    model = GenreModel.load(cnn_weights, device="cpu")
    with pytest.raises(ValueError, match="needs its sample_rate"):
        model.predict(np.zeros(16000, np.float32))
    with pytest.raises(ValueError, match="1-D or 2-D"):
        model.predict(np.zeros((2, 2, 100), np.float32), sample_rate=16000)
    with pytest.raises(ValueError, match="sample_rate is for waveforms"):
        model.predict("examples/beat.mp3", sample_rate=16000)
    with pytest.raises(TypeError, match="binary mode"):
        model.predict(io.StringIO("text"))


def test_integer_waveforms_are_scaled(cnn_weights):
    model = GenreModel.load(cnn_weights, device="cpu")
    audio = signal(3.0, 16000, channels=1, seed=3)[:, 0]
    as_int16 = np.round(audio * 32768).astype(np.int16)
    np.testing.assert_allclose(
        model.predict(as_int16, sample_rate=16000).to_numpy(),
        model.predict(as_int16 / 32768, sample_rate=16000).to_numpy(),
        atol=1e-6,
    )


def unfloored(probabilities: np.ndarray) -> np.ndarray:
    return (probabilities - PROBABILITY_FLOOR) / (1 - probabilities.shape[-1] * PROBABILITY_FLOOR)


def test_segments_combine_to_the_clip_row_when_every_member_chunks_like_the_segments(tmp_path):
    """Two CNNs with 1-s chunks, a temperature, a clip exactly 4 chunks long: the clip's row is the
    renormalised geometric mean of its 4 segment rows (model/segments.py says why)."""
    from model.genres import fma_medium_prior
    from model.manifest import Manifest, MemberSpec
    from model.saving import save_ensemble
    from model.spectrogram import SpectrogramConfig

    config = SpectrogramConfig(n_mels=32)
    cnn = dict(
        architecture="short_chunk_resnet",
        hparams={"channels": [4, 8], "dropout": 0.1},
        spectrogram=config,
        chunk_seconds=1.0,
    )
    manifest = Manifest(
        GENRES,
        16000,
        0.7,
        tuple(fma_medium_prior()),
        (MemberSpec(name="a", **cnn), MemberSpec(name="b", **cnn)),
        "segments test",
    )
    save_ensemble(tmp_path / "w", manifest, random_state_dicts(manifest, seed=5))
    model = GenreModel.load(tmp_path / "w", device="cpu")
    chunk = config.seconds_to_frames(1.0)
    samples = (4 * chunk - 1) * config.hop_length  # exactly 4 chunks of frames
    audio = signal(samples / 16000, 16000, channels=1, freq=500.0, seed=4)[:, 0]
    audio[: samples // 2] *= np.linspace(0, 3, samples // 2, dtype=np.float32)  # a clip that changes
    timeline = model.segments(audio, sample_rate=16000)
    assert len(timeline) == 4
    np.testing.assert_allclose(timeline["start"], np.arange(4) * chunk * config.hop_length / 16000)
    segments = unfloored(timeline[list(GENRES)].to_numpy())
    assert np.ptp(segments, axis=0).max() > 1e-3  # the segments do differ
    geometric = np.exp(np.log(segments).mean(axis=0))
    clip = unfloored(model.predict(audio, sample_rate=16000).to_numpy())
    np.testing.assert_allclose(geometric / geometric.sum(), clip, rtol=1e-5, atol=1e-7)


def test_segments_of_the_shipped_kind_cover_the_clip(zero_shot_weights, songs):
    model = GenreModel.load(zero_shot_weights, device="cpu")
    timeline = model.segments(songs / "high.mp3")
    assert list(timeline.columns) == ["start", "end", *GENRES]
    window = max(m.chunk_seconds for m in model.ensemble.manifest.members if m.kind != "prior")
    assert timeline["start"].iloc[0] == 0 and abs(timeline["end"].iloc[-1] - 7.5) < 0.05
    assert (timeline["end"] - timeline["start"]).max() <= window + 1e-9
    assert timeline["start"].is_monotonic_increasing
    np.testing.assert_allclose(timeline[list(GENRES)].sum(axis=1), 1, atol=1e-9)
    dense = model.segments(songs / "high.mp3", hop_seconds=0.5)
    assert len(dense) > 2 * len(timeline)
    with pytest.warns(UserWarning, match="silent"):
        quiet = model.segments(songs / "quiet.mp3")
    assert len(quiet) == 1 and quiet["end"].iloc[0] == pytest.approx(1.0, abs=0.05)


def test_segments_scored_as_the_audio_streams_in_equal_those_of_the_whole(shared_tiny_weights, monkeypatch):
    """Audio arriving in 97-sample blocks, scored every 5 s: the rows of scoring it all at once,
    on the tiny ensemble's two spectrograms (hops of 256 and 512, FFTs of 512 and 1024). A
    dense hop puts segments right at every cut: without the samples kept either side of a cut
    for the spectrogram frames there, rows differ by ~1e-4."""
    import model.segments as segments

    ensemble = GenreModel.load(shared_tiny_weights, device="cpu").ensemble
    audio = signal(20.3, 16000, channels=1, freq=300, seed=3)[:, 0]
    audio *= np.linspace(0.1, 2, len(audio), dtype=np.float32)  # rows that change over time
    for hop in (0.02, 0.5, None):
        whole = segments.segment_probabilities(ensemble, audio, hop)
        monkeypatch.setattr(segments, "SCORED_SECONDS", 5.0)
        blocks = [audio[i : i + 97] for i in range(0, len(audio), 97)]
        parts = list(segments.stream_segments(ensemble, blocks, hop))
        monkeypatch.undo()
        assert len(parts) >= 4  # it was scored in stretches
        streamed = [np.concatenate(column) for column in zip(*parts)]
        np.testing.assert_array_equal(streamed[0], whole[0])
        np.testing.assert_array_equal(streamed[1], whole[1])
        np.testing.assert_allclose(streamed[2], whole[2], rtol=0, atol=1e-6)


def test_segments_of_a_long_file_cover_all_of_it_from_bytes_too(shared_tiny_weights, monkeypatch, tmp_path):
    """A file longer than what is decoded at once (audio.MAX_SECONDS, 20 s here): its row hears
    excerpts spread over it, and its segments are read again, whole, in blocks: they run to its
    end, and the input given as bytes stays on disk while they are read."""
    import model.audio
    import model.segments

    monkeypatch.setattr(model.audio, "MAX_SECONDS", 20.0)
    monkeypatch.setattr(model.segments, "SCORED_SECONDS", 8.0)
    model = GenreModel.load(shared_tiny_weights, device="cpu")
    audio = signal(50, 22050, channels=1, freq=440, seed=6)
    path = write_mp3(tmp_path / "long.mp3", audio, 22050)
    timeline = model.segments(path.read_bytes(), hop_seconds=2.0)
    assert timeline["start"].iloc[0] == 0 and timeline["end"].iloc[-1] == pytest.approx(50, abs=0.1)
    assert np.diff(timeline["start"]).max() == pytest.approx(2.0, abs=0.02)  # no gap between blocks
    np.testing.assert_allclose(timeline[list(GENRES)].sum(axis=1), 1, atol=1e-9)
    assert model.segments(path, hop_seconds=2.0).equals(timeline)


def test_a_long_files_segments_that_cannot_be_read_again_fall_back_to_its_row(
    shared_tiny_weights, monkeypatch, tmp_path
):
    """Reading a long file again for its segments fails (a decoder bug, here a ValueError): one
    segment spanning the whole file with the clip's row, and a warning; the run goes on."""
    import model.audio
    import model.inference

    def broken(path, rate):
        raise ValueError("invalid data found when processing input")
        yield  # a generator, as audio.stream is

    monkeypatch.setattr(model.audio, "MAX_SECONDS", 20.0)
    monkeypatch.setattr(model.inference, "stream", broken)
    model = GenreModel.load(shared_tiny_weights, device="cpu")
    path = write_mp3(tmp_path / "long.mp3", signal(50, 22050, channels=1, seed=7), 22050)
    with pytest.warns(UserWarning, match="segment scores failed \\(ValueError: invalid data"):
        timeline = model.segments(path)
    assert len(timeline) == 1 and timeline["end"].iloc[0] == pytest.approx(50, abs=0.1)
    np.testing.assert_allclose(timeline[list(GENRES)].iloc[0], model.predict(path), rtol=1e-9)


def test_docstring_examples_run(zero_shot_weights, monkeypatch):
    import model.genre_model

    monkeypatch.chdir(REPO)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = GenreModel.load(zero_shot_weights, device="cpu")
    result = doctest.testmod(model.genre_model, extraglobs={"model": loaded, "Path": Path}, verbose=False)
    assert result.attempted >= 6 and result.failed == 0


def test_the_readme_example_runs_as_a_script_from_outside_the_checkout(tmp_path):
    """Pasted into a script elsewhere, with PYTHONPATH set as the README says: it must run (the
    decode workers import the script again; the guard keeps them from running it)."""
    import re

    readme = (REPO / "README.md").read_text()
    script = tmp_path / "my_genres.py"
    script.write_text(re.search(r"```python\n(# my_genres.py.*?)```", readme, re.S).group(1))
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        cwd=REPO,  # the example's paths are the checkout's examples/
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "silence" in result.stdout and "'silence': 'silent (digital silence)'" in result.stdout


def test_a_worker_importing_an_unguarded_script_stops_with_the_reason(monkeypatch):
    import multiprocessing

    from model.genre_model import _refuse_while_a_worker_imports_the_script

    monkeypatch.setattr(multiprocessing.current_process(), "_inheriting", True, raising=False)
    with pytest.raises(RuntimeError, match='under `if __name__ == "__main__":`'):
        _refuse_while_a_worker_imports_the_script()
