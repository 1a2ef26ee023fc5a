"""The contract every registered architecture keeps, tested for each one found in model/networks/
(a forker's new file is tested here without writing a test): it builds at small width, scores
chunks as (batch, 16), survives the manifest's save and load, gives the same numbers on ONNX
Runtime as on torch, takes the bias correction on its output layer, and learns from toy genres."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, TOY_GENRES, toy_clip
from model.ensemble import load_ensemble
from model.features import ClipSet, FeatureStore
from model.genres import GENRES, fma_medium_prior
from model.manifest import Manifest, MemberSpec
from model.members import MemberConfig
from model.networks import build_network, get_architecture, list_architectures, resolve_hparams
from model.saving import save_ensemble
from model.spectrogram import LogMel, SpectrogramConfig
from model.training import correct_output_bias, predict_clips, train_member

ARCHITECTURES = list_architectures()
BACKBONE = REPO / "weights" / "musicnn" / "musicnn_pair.pt"  # the taggers pretrained members start from
RATE = 16000


def member_of(name: str) -> tuple[SpectrogramConfig, float, dict]:
    """The spectrogram, chunk length and (small) hyper-parameters a test member of `name` gets."""
    architecture = get_architecture(name)
    spectrogram = architecture.spectrogram or SpectrogramConfig(n_mels=64)
    return spectrogram, architecture.chunk_seconds or 1.5, resolve_hparams(name, architecture.small)


def network_of(name: str, seed: int = 0) -> torch.nn.Module:
    spectrogram, _, hparams = member_of(name)
    torch.manual_seed(seed)
    network = build_network(name, spectrogram.n_mels, len(GENRES), hparams)
    if get_architecture(name).spectrogram is not None:  # pretrained on that input: start from it
        network.load_state_dict(torch.load(BACKBONE, map_location="cpu", weights_only=True), strict=False)
    return network.eval()


def test_every_architecture_file_imported():
    from model.networks import import_failures

    assert import_failures() == {}
    assert {"short_chunk_resnet", "crnn", "musicnn_transfer", "musicnn_zero_shot"} <= set(ARCHITECTURES)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_builds_small_and_scores_chunks(name):
    spectrogram, chunk_seconds, _ = member_of(name)
    chunks = torch.randn(3, spectrogram.n_mels, spectrogram.seconds_to_frames(chunk_seconds))
    with torch.no_grad():
        logits = network_of(name)(chunks)
    assert logits.shape == (3, len(GENRES)) and torch.isfinite(logits).all()


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_manifest_round_trip_and_onnxruntime_match_torch(name, tmp_path):
    spectrogram, chunk_seconds, hparams = member_of(name)
    network = network_of(name, seed=1)
    member = MemberSpec(
        name="m", architecture=name, hparams=hparams, spectrogram=spectrogram, chunk_seconds=chunk_seconds
    )
    manifest = Manifest(GENRES, RATE, 1.0, tuple(fma_medium_prior()), (member,), f"contract test of {name}")
    save_ensemble(tmp_path, manifest, {"m": network.state_dict()})
    loaded = load_ensemble(tmp_path)
    for key, tensor in network.state_dict().items():
        assert torch.equal(loaded.networks["m"].state_dict()[key], tensor), key

    waveforms = torch.from_numpy(
        np.stack([toy_clip(g, seed=i, seconds=4.0, rate=RATE) for i, g in enumerate(TOY_GENRES)])
    )
    lengths = [waveforms.shape[1]] * len(waveforms)
    with torch.inference_mode():
        on_torch = loaded(waveforms, lengths)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # an export that fails would stay on torch with a warning
            loaded.use_onnxruntime(threads=2)
        assert loaded.all_exported
        on_onnxruntime = loaded(waveforms, lengths)
    assert (on_onnxruntime - on_torch).abs().max() < 1e-4


@pytest.mark.parametrize("name", [n for n in ARCHITECTURES if get_architecture(n).trainable])
def test_bias_correction_lands_on_the_output_layer(name):
    spectrogram, chunk_seconds, _ = member_of(name)
    network = network_of(name)
    chunks = torch.randn(2, spectrogram.n_mels, spectrogram.seconds_to_frames(chunk_seconds))
    shift = torch.linspace(-1, 1, len(GENRES))
    with torch.no_grad():
        before = network(chunks)
        correct_output_bias(network, shift)
        after = network(chunks)
    torch.testing.assert_close(after - before, shift.expand_as(after), atol=1e-5, rtol=0)


def toy_features(
    spectrogram: SpectrogramConfig, clips_per_genre: int, seed: int
) -> tuple[FeatureStore, ClipSet]:
    """Log-mels of toy genre clips in a feature store, as the cache would hold them."""
    logmel, parts, offsets, frames, labels = LogMel(spectrogram), [], [], [], []
    for i in range(clips_per_genre):
        for genre in TOY_GENRES:
            audio = torch.from_numpy(
                toy_clip(genre, seed=seed + 10 * i + TOY_GENRES.index(genre), seconds=3.0, rate=RATE)
            )
            with torch.no_grad():
                spec = logmel(audio[None])[0].T  # (frames, mels)
            offsets.append(sum(len(p) for p in parts))
            frames.append(len(spec))
            labels.append(GENRES.index(genre))
            parts.append(spec.half().numpy())
    store = FeatureStore(np.concatenate(parts), torch.device("cpu"), spectrogram.compression)
    return store, ClipSet(torch.tensor(offsets), torch.tensor(frames), torch.tensor(labels))


@pytest.mark.parametrize(
    "name",
    [  # a head on the pretrained taggers runs them on every crop (~20 s): in the full suite only
        pytest.param(n, marks=[pytest.mark.slow] if get_architecture(n).kind == "transfer" else [])
        for n in ARCHITECTURES
        if get_architecture(n).trainable
    ],
)
def test_a_short_training_on_toy_genres_lowers_the_validation_log_loss(name, tmp_path):
    spectrogram, chunk_seconds, hparams = member_of(name)
    pretrained = get_architecture(name).spectrogram is not None
    store, train = toy_features(spectrogram, clips_per_genre=6, seed=0)
    valid_store, valid = toy_features(spectrogram, clips_per_genre=3, seed=1000)
    store.features = torch.cat([store.features, valid_store.features])  # one store, as the cache is
    valid.offsets += len(store.features) - len(valid_store.features)
    config = MemberConfig(
        name=name,
        architecture=name,
        hparams=hparams,
        chunk_seconds=chunk_seconds,
        epochs=2 if pretrained else 4,  # a head on pretrained taggers learns the toy genres at once
        batch_size=8,
        min_epoch_steps=6,
        batch_norm_crops=32,
        patience=4,
        max_chunks=2,
        backbone_weights=str(BACKBONE) if pretrained else None,
    )
    frames = spectrogram.seconds_to_frames(chunk_seconds)
    untrained = network_of(name)
    correction = torch.zeros(len(GENRES))
    before = torch.nn.functional.nll_loss(
        predict_clips(untrained, store, valid, frames, correction, max_chunks=2), valid.labels
    )
    torch.set_num_threads(2)
    _, history = train_member(config, store, train, valid, frames, Path(tmp_path) / "m.ckpt")
    best = min(entry["valid_loss"] for entry in history)
    assert best < before.item() - 0.1, (before.item(), [e["valid_loss"] for e in history])
