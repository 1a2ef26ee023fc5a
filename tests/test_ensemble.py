"""The ensemble on disk: validated with clear messages, written atomically, predicting sanely."""

import hashlib
import json

import numpy as np
import pytest
import torch

from conftest import random_state_dicts, tiny_ensemble_manifest
from model.calibration import PROBABILITY_FLOOR, floor_probabilities
from model.chunking import make_chunks
from model.ensemble import load_ensemble
from model.genres import GENRES, fma_medium_prior
from model.manifest import ManifestError, load_manifest
from model.saving import save_ensemble
from model.spectrogram import LogMel


def waveforms(lengths, seed=0):
    """Noise clips 20 dB apart in level, zero-padded to the longest."""
    generator = torch.Generator().manual_seed(seed)
    batch = torch.zeros(len(lengths), max(lengths))
    for row, n in enumerate(lengths):
        batch[row, :n] = 0.3 * 10 ** (-row) * torch.randn(n, generator=generator)
    return batch


def test_tiny_ensemble_round_trips_and_predicts(tiny_weights):
    ensemble = load_ensemble(tiny_weights)
    assert len(ensemble.logmels) == 2  # three CNN members, two distinct spectrogram configs
    lengths = [16000 * 30, 16000 * 7, 16000 * 2]
    with torch.inference_mode():
        log_probs = ensemble(waveforms(lengths), lengths)
    probs = floor_probabilities(log_probs.double().exp().numpy())
    assert probs.shape == (3, 16) and np.allclose(probs.sum(axis=1), 1) and probs.min() >= PROBABILITY_FLOOR
    assert not np.allclose(probs[0], probs[1], atol=1e-4)  # the networks do listen to the audio


def test_ensemble_is_the_tempered_mean_of_member_log_probs(tiny_weights):
    """Recompute the ensemble by hand, one unpadded clip and one member at a time."""
    ensemble = load_ensemble(tiny_weights)
    lengths = [16000 * 10, 16000 * 4]
    batch = waveforms(lengths, seed=3)
    log_prior = torch.tensor(fma_medium_prior()).float().log()
    expected = []
    with torch.inference_mode():
        for clip, n in enumerate(lengths):
            member_log_probs = []
            for member in ensemble.manifest.members:
                if member.kind == "prior":
                    member_log_probs.append(log_prior)
                    continue
                config = member.spectrogram
                spec = LogMel(config)(batch[clip : clip + 1, :n])  # as the member's own front end
                chunk = config.seconds_to_frames(member.chunk_seconds)
                chunks, _ = make_chunks(spec, [config.frames(n)], chunk)
                logits = ensemble.networks[member.name](chunks).mean(dim=0)
                member_log_probs.append(torch.log_softmax(logits, dim=0))
            mean = torch.stack(member_log_probs).mean(dim=0)
            expected.append(torch.log_softmax(mean / ensemble.manifest.temperature, dim=0))
        assert torch.allclose(ensemble(batch, lengths), torch.stack(expected), atol=1e-4)


def test_save_is_content_addressed_and_cleans_stale_files(tmp_path):
    manifest = tiny_ensemble_manifest()
    first = save_ensemble(tmp_path, manifest, random_state_dicts(manifest, seed=1))
    second = save_ensemble(tmp_path, manifest, random_state_dicts(manifest, seed=2))
    files = sorted(p.name for p in tmp_path.glob("*.pt"))
    assert files == sorted(m.state_dict for m in second.members if m.kind == "cnn")
    assert {m.state_dict for m in first.members} != {m.state_dict for m in second.members}
    assert not list(tmp_path.glob(".*tmp"))
    load_manifest(tmp_path)


def edit_manifest(weights, change):
    path = weights / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.update(classes=d["classes"][::-1]), "same names in another order"),
        (
            lambda d: d.update(classes=d["classes"][:-1] + ["Disco"]),
            r"unknown: \['Disco'\], absent: \['Spoken'\]",
        ),
        (lambda d: d.update(temperature=0), "temperature must be a positive number"),
        (lambda d: d.update(class_prior=[1 / 15] * 15), "class_prior must be 16 positive numbers"),
        (lambda d: d.update(format_version=99), "format_version is 99"),
        (lambda d: d["members"][0].update(architecture="transformer"), "unknown architecture 'transformer'"),
        (lambda d: d["members"][0].update(kind="svm"), "kind must be one of"),
        (
            lambda d: d["members"][0]["spectrogram"].update(sample_rate=22050),
            "differs from the ensemble's 16000",
        ),
        (lambda d: d["members"][1].update(name="a"), "member names must be unique"),
        (lambda d: d.pop("members"), "missing key.*members"),
        (lambda d: d["members"][0].update(state_dict="gone.pt"), "gone.pt is missing"),
        (lambda d: d["members"][0].update(sha256="0" * 64), "SHA-256 is"),
        (
            lambda d: d["members"][0].update(hparams={"channels": [4, 8], "depth": 3}),
            "short_chunk_resnet takes no hyper-parameter 'depth'; it takes channels, dropout",
        ),
        (
            lambda d: d["members"][0].update(base_state_dict="/etc/base.pt", base_sha256="0"),
            "base_state_dict must be a path inside",
        ),
        (lambda d: d["members"][0].update(base_state_dict="base.pt"), "needs its base_sha256"),
        (
            lambda d: d["members"][0].update(base_state_dict="base.pt", base_sha256="0" * 64),
            "base.pt is missing",
        ),
        (
            lambda d: d["members"][0].update(
                base_state_dict=d["members"][1]["state_dict"], base_sha256="0" * 64
            ),
            "SHA-256 is",
        ),
    ],
)
def test_invalid_manifests_say_what_is_wrong(tiny_weights, change, message):
    edit_manifest(tiny_weights, change)
    with pytest.raises(ManifestError, match=message):
        load_ensemble(tiny_weights)


def test_git_lfs_pointer_is_named(tiny_weights):
    state_file = next(tiny_weights.glob("a-*.pt"))
    state_file.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n")
    with pytest.raises(ManifestError, match="Git LFS pointer"):
        load_manifest(tiny_weights)


def test_missing_manifest_and_bad_json(tmp_path, tiny_weights):
    with pytest.raises(ManifestError, match="does not exist"):
        load_manifest(tmp_path / "nowhere")
    with pytest.raises(ManifestError, match="manifest.json is missing"):
        load_manifest(tmp_path)
    (tiny_weights / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        load_manifest(tiny_weights)


def test_state_dict_of_the_wrong_shape_is_refused(tiny_weights):
    # member c (three blocks) pointed at member a's file (two blocks)
    edit_manifest(
        tiny_weights,
        lambda d: d["members"][2].update(
            state_dict=d["members"][0]["state_dict"], sha256=d["members"][0]["sha256"]
        ),
    )
    with pytest.raises(ManifestError, match="member 'c'.*cannot load the state dict"):
        load_ensemble(tiny_weights)


def test_floor_keeps_rows_normalised():
    probs = floor_probabilities(np.eye(16)[:3])
    assert np.allclose(probs.sum(axis=1), 1) and probs.min() >= PROBABILITY_FLOOR
    assert probs.argmax(axis=1).tolist() == [0, 1, 2]
    assert len(GENRES) == 16


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cpu_and_cuda_agree(tiny_weights):
    lengths = [16000 * 12, 16000 * 3]
    batch = waveforms(lengths)
    with torch.inference_mode():
        cpu = load_ensemble(tiny_weights, "cpu")(batch, lengths).exp()
        gpu = load_ensemble(tiny_weights, "cuda")(batch.cuda(), lengths).exp().cpu()
    assert (cpu - gpu).abs().max() < 1e-3


def test_base_weights_are_placed_with_their_licence_only(tmp_path):
    from model.saving import place_base_weights

    source = tmp_path / "downloads"
    source.mkdir()
    for name in ("pair.pt", "LICENSE-pair.txt", "provenance.json", "holiday.jpg"):
        (source / name).write_bytes(name.encode())
    out = tmp_path / "weights"
    relative, digest = place_base_weights(out, source / "pair.pt")
    assert relative == "downloads/pair.pt" and digest == hashlib.sha256(b"pair.pt").hexdigest()
    assert sorted(p.name for p in (out / "downloads").iterdir()) == [
        "LICENSE-pair.txt",
        "pair.pt",
        "provenance.json",
    ]
    assert place_base_weights(out, source / "pair.pt") == (relative, digest)  # already there: nothing to do
    (source / "pair.pt").write_bytes(b"other weights")
    with pytest.raises(ValueError, match="holds other weights"):
        place_base_weights(out, source / "pair.pt")
