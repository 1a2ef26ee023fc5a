"""The ONNX Runtime backend (model/exported.py) gives torch's numbers for every member kind."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import REPO, random_state_dicts, tiny_ensemble_manifest
from model.ensemble import load_ensemble
from model.genres import GENRES, fma_medium_prior
from model.manifest import Manifest, MemberSpec, load_manifest
from model.musicnn import MUSICNN_CHUNK_SECONDS, MUSICNN_SPECTROGRAM
from model.networks.musicnn_transfer import MusicnnTransfer
from model.saving import save_ensemble

PAIR_FILE = REPO / "weights" / "musicnn" / "musicnn_pair.pt"


@pytest.fixture(scope="module")
def every_kind(tmp_path_factory, zero_shot_weights) -> Path:
    """One ensemble with a member of every kind: CNNs on two spectrograms, the zero-shot taggers,
    a frozen transfer head (sharing the taggers), a fine-tuned one (its own taggers), the prior."""
    folder = tmp_path_factory.mktemp("every-kind")
    (folder / "musicnn").mkdir()
    (folder / "musicnn" / "musicnn_pair.pt").write_bytes(PAIR_FILE.read_bytes())
    tiny = tiny_ensemble_manifest()
    states = random_state_dicts(tiny)
    shipped = load_manifest(zero_shot_weights).members[0]
    members = [*tiny.members, MemberSpec(**{**shipped.__dict__, "max_chunks": 3})]
    common = dict(spectrogram=MUSICNN_SPECTROGRAM, chunk_seconds=MUSICNN_CHUNK_SECONDS, max_chunks=3)
    for i, fine_tune in enumerate((False, True)):
        hparams = {"hidden": 8, "fine_tune": fine_tune}
        torch.manual_seed(i)
        network = MusicnnTransfer(96, 16, **hparams)
        network.load_state_dict(torch.load(PAIR_FILE, weights_only=True), strict=False)
        if fine_tune:
            network.msd.output.bias.data += 0.5
        members.append(
            MemberSpec(name=f"head{i}", architecture="musicnn_transfer", hparams=hparams, **common)
        )
        states[f"head{i}"] = network.state_dict()
    manifest = Manifest(GENRES, 16000, 0.8, tuple(fma_medium_prior()), tuple(members), "every kind")
    save_ensemble(folder, manifest, states)
    return folder


@pytest.fixture
def two_torch_threads():
    """torch on 2 threads for the test, whatever it had before (its thread count is process-wide)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def waveforms(lengths: list[int], seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    batch = torch.zeros(len(lengths), max(lengths))
    for row, n in enumerate(lengths):
        t = np.arange(n) / 16000
        tone = np.sin(2 * np.pi * rng.uniform(100, 2000) * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
        batch[row, :n] = torch.from_numpy((0.3 * tone + 0.05 * rng.standard_normal(n)).astype(np.float32))
    return batch


def member_outputs(ensemble, batch: torch.Tensor, lengths: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return ensemble.member_log_probs(ensemble.spectrograms(batch), ensemble.frames(lengths), len(lengths))


@pytest.mark.slow
def test_every_member_kind_gives_torchs_log_probabilities(every_kind):
    torch_ensemble = load_ensemble(every_kind)
    exported = load_ensemble(every_kind)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no member may fall back to torch here
        exported.use_onnxruntime(threads=2)
    kinds = {m.name: m.kind for m in exported.manifest.members}
    assert set(kinds.values()) == {"cnn", "zero_shot", "transfer", "prior"}
    # the CNNs and the fine-tuned head by name, the shared frozen taggers once by their key
    assert set(exported.exported) == {"a", "b", "c", "head1", exported.backbone_keys["head0"]}
    for lengths in ([16000 * 12, 16000 * 7, 8000], [16000 * 30] * 3, [16000 * 2]):
        batch = waveforms(lengths, seed=len(lengths))
        want, got = member_outputs(torch_ensemble, batch, lengths), member_outputs(exported, batch, lengths)
        for m, name in enumerate(kinds):
            assert (want[m] - got[m]).abs().max() < 1e-4, name
        with torch.inference_mode():
            rows = (torch_ensemble(batch, lengths) - exported(batch, lengths)).abs().max()
        assert rows < 1e-4


def test_a_network_that_cannot_be_exported_stays_on_torch_with_a_warning(
    every_kind, monkeypatch, two_torch_threads
):
    import model.exported

    real = model.exported.ExportedFunction

    def refuse_cnns(module, example, outputs, threads):
        if example.shape[1] != 96:  # not the musicnn taggers
            raise RuntimeError("Exporting the operator 'aten::frobnicate' to ONNX is not supported")
        return real(module, example, outputs, threads)

    monkeypatch.setattr(model.exported, "ExportedFunction", refuse_cnns)
    ensemble = load_ensemble(every_kind)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ensemble.use_onnxruntime(threads=2)
    assert [str(w.message).split(":")[0] for w in caught] == [f"member {n!r} stays on torch" for n in "abc"]
    assert all("frobnicate" in str(w.message) for w in caught)
    assert "a" not in ensemble.exported and "head1" in ensemble.exported and not ensemble.all_exported
    lengths = [16000 * 5]
    batch = waveforms(lengths)
    seen: list[int] = []  # torch's threads while the network left on torch runs: all of them
    ensemble.networks["a"].register_forward_pre_hook(lambda *_: seen.append(torch.get_num_threads()))
    with torch.inference_mode():
        assert (load_ensemble(every_kind)(batch, lengths) - ensemble(batch, lengths)).abs().max() < 1e-4
    assert seen == [2]


def test_the_exported_front_end_max_is_the_plain_one():
    """The form musicnn's front end takes for ONNX Runtime (channels padded to whole blocks,
    pooled, cut back) computes the plain conv-then-max, for both of its channel counts."""
    import torch.nn.functional as F

    from model.musicnn import _conv_max_for_onnxruntime

    x = torch.randn(3, 1, 40, 96)
    for channels, kernel in ((51, (8, 1)), (204, (7, 38))):
        weight, bias = torch.randn(channels, 1, *kernel), torch.randn(channels)
        got = _conv_max_for_onnxruntime(x, weight, bias)
        assert got.shape == (3, channels, 40 - kernel[0] + 1)
        assert (got - F.conv2d(x, weight, bias).amax(dim=3)).abs().max() < 1e-5


def test_musicnn_front_end_exports_as_a_max_pool_not_a_reduce_max():
    """The form ONNX Runtime keeps in its blocked layout (model/musicnn.py); a ReduceMax there
    would still give the same numbers, only slower, so no other test would notice."""
    import io

    import onnx

    from model.musicnn import _FrontEndBlock

    block, buffer = _FrontEndBlock(204, (7, 38), (3, 3)).eval(), io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            block,
            (torch.randn(2, 1, 187, 96),),
            buffer,
            dynamo=False,
            dynamic_axes={"x": {0: "n"}},
            input_names=["x"],
        )
    operators = {node.op_type for node in onnx.load_from_string(buffer.getvalue()).graph.node}
    assert "MaxPool" in operators and "ReduceMax" not in operators


def test_torch_runs_on_one_thread_beside_onnxruntime_and_gets_its_threads_back(
    every_kind, monkeypatch, two_torch_threads
):
    import model.ensemble
    from model.spectrogram import LogMel

    seen: list[int] = []  # torch's threads in the log-mel and where member outputs are averaged

    def recording(function):
        return lambda *args: seen.append(torch.get_num_threads()) or function(*args)

    monkeypatch.setattr(LogMel, "forward", recording(LogMel.forward))
    monkeypatch.setattr(model.ensemble, "mean_by_owner", recording(model.ensemble.mean_by_owner))
    lengths = [16000 * 4]
    batch = waveforms(lengths)
    with torch.inference_mode():
        load_ensemble(every_kind)(batch, lengths)
        assert set(seen) == {2}  # the torch backend keeps the threads it is given
        exported = load_ensemble(every_kind)
        exported.use_onnxruntime(threads=2)
        assert exported.all_exported
        seen.clear()
        exported(batch, lengths)
        assert len(seen) > 2 and set(seen) == {1}
        assert torch.get_num_threads() == 2
        with pytest.raises(KeyError):  # and gets them back when a call fails
            exported.member_log_probs({}, {}, 1)
        assert torch.get_num_threads() == 2


def test_chunks_of_another_shape_go_to_torch(every_kind):
    from model.exported import ExportedFunction

    network = load_ensemble(every_kind).networks["a"]
    function = ExportedFunction(network, torch.randn(2, 32, 47), ["logits"], threads=1)
    other = torch.randn(3, 32, 60)
    with torch.inference_mode():
        assert torch.equal(function(other), network(other))
        same = torch.randn(5, 32, 47)
        assert (function(same) - network(same)).abs().max() < 1e-4


@pytest.mark.slow
def test_predict_py_backends_write_the_same_rows(tmp_path):
    payload = REPO / "examples"
    rows = {}
    for backend in ("torch", "onnxruntime"):
        out = tmp_path / f"{backend}.csv"
        done = subprocess.run(
            [
                sys.executable,
                str(REPO / "predict.py"),
                "--payload",
                str(payload),
                "--out",
                str(out),
                "--backend",
                backend,
                "--device",
                "cpu",
            ],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        assert f"device: cpu ({backend})" in done.stderr
        rows[backend] = pd.read_csv(out, index_col="file_id")
    assert np.abs(rows["torch"].to_numpy() - rows["onnxruntime"].to_numpy()).max() < 1e-5


def test_genre_model_refuses_onnxruntime_off_the_cpu_and_unknown_backends(monkeypatch):
    import model.genre_model
    from model import GenreModel

    with pytest.raises(ValueError, match="backend must be one of auto, torch, onnxruntime"):
        GenreModel.load(backend="tensorrt")
    monkeypatch.setattr(model.genre_model, "choose_device", lambda requested: (torch.device("cuda"), None))
    with pytest.raises(ValueError, match="the onnxruntime backend runs on the CPU"):
        GenreModel.load(device="cuda", backend="onnxruntime")
