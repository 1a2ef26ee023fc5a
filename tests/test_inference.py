"""One clip's trouble costs one row: model failures, non-finite output, long clips in a batch."""

from pathlib import Path

import numpy as np
import torch

from model.audio import Decoded, unusable_reason
from model.ensemble import load_ensemble
from model.inference import REFERENCE_SECONDS, _classify_batch, _groups_by_length

RATE = 16000


def clip(seconds: float, seed: int) -> Decoded:
    rng = np.random.default_rng(seed)
    return Decoded((0.3 * rng.standard_normal(int(seconds * RATE))).astype(np.float32), RATE, "soundfile")


def test_groups_bound_the_padded_audio():
    lengths = [30, 600, 29, 31, 5, 30]
    groups = _groups_by_length(lengths, budget=3 * 30)
    assert sorted(i for group in groups for i in group) == list(range(len(lengths)))
    for group in groups:
        assert len(group) == 1 or len(group) * max(lengths[i] for i in group) <= 90
    assert [1] in groups  # the long clip goes alone


def test_a_failing_or_non_finite_clip_gets_the_fallback_and_the_rest_are_unchanged(tiny_weights, monkeypatch):
    ensemble = load_ensemble(tiny_weights, torch.device("cpu"))
    batch = [(Path(f"clip{i}.mp3"), clip(seconds, seed=i)) for i, seconds in enumerate([3, 4, 2.5, 3.5, 40])]
    expected = {p.path.name: p for p in _classify_batch(ensemble, batch)}
    assert all(p.status == "ok" for p in expected.values())

    real_probabilities = ensemble.probabilities
    poisoned, nan = len(batch[1][1].audio), len(batch[3][1].audio)

    def troubled_probabilities(waveforms, lengths):
        if poisoned in lengths:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail")
        out = real_probabilities(waveforms, lengths)
        return np.where(np.array([n == nan for n in lengths])[:, None], np.nan, out)

    monkeypatch.setattr(ensemble, "probabilities", troubled_probabilities)
    got = {p.path.name: p for p in _classify_batch(ensemble, batch)}
    fallback = ensemble.fallback_probabilities()
    assert (
        got["clip1.mp3"].status == "fallback"
        and "model failed on this clip: CUDA out of memory" in got["clip1.mp3"].reason
        and got["clip1.mp3"].transient  # out of memory may not recur: a resumed run retries it
    )
    assert got["clip3.mp3"].status == "fallback" and "not finite" in got["clip3.mp3"].reason
    assert not got["clip3.mp3"].transient
    for name in ("clip1.mp3", "clip3.mp3"):
        assert np.array_equal(got[name].probabilities, fallback)
    for name in ("clip0.mp3", "clip2.mp3", "clip4.mp3"):
        assert got[name].status == "ok"
        assert np.allclose(got[name].probabilities, expected[name].probabilities, atol=1e-6)


def test_non_finite_audio_is_unusable():
    audio = clip(3, seed=0).audio.copy()
    audio[100] = np.nan
    assert "NaN or infinite" in unusable_reason(Decoded(audio, RATE, "soundfile"))
    audio[100] = np.inf
    assert "NaN or infinite" in unusable_reason(Decoded(audio, RATE, "soundfile"))


def test_a_batch_of_thirty_second_clips_stays_one_group():
    rate = 16000
    lengths = [30 * rate + extra for extra in (0, 1105, 2000, 576, 0, 1, 50, 4000)] * 2
    assert len(_groups_by_length(lengths, len(lengths) * REFERENCE_SECONDS * rate)) == 1
