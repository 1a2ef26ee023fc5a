"""The one spectrogram path: librosa's numbers, independent of batching, same on CPU and GPU."""

import librosa
import numpy as np
import pytest
import torch

from model.chunking import chunk_starts, make_chunks, mean_by_owner
from model.spectrogram import LogMel, SpectrogramConfig

CONFIG = SpectrogramConfig()


def test_matches_librosa():
    rng = np.random.default_rng(0)
    audio = (0.3 * rng.standard_normal(16000 * 3)).astype(np.float32)
    ours = LogMel(CONFIG)(torch.from_numpy(audio)[None])[0].numpy()
    mel = librosa.feature.melspectrogram(
        y=audio, sr=16000, n_fft=512, hop_length=256, n_mels=128, power=2.0, center=True, pad_mode="constant"
    )
    theirs = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
    assert ours.shape == theirs.shape == (128, CONFIG.frames(len(audio)))
    assert np.abs(ours - theirs).max() < 1e-3


def test_batching_does_not_change_a_clip():
    rng = np.random.default_rng(1)
    short, long = (torch.from_numpy(rng.standard_normal(n).astype(np.float32)) for n in (10000, 30000))
    alone = LogMel(CONFIG)(short[None])[0]
    padded = torch.zeros(2, 30000)
    padded[0, :10000], padded[1] = short, long
    batched = LogMel(CONFIG)(padded)[0, :, : CONFIG.frames(10000)]
    assert torch.allclose(alone, batched, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cpu_and_cuda_agree():
    audio = torch.randn(4, 16000 * 5)
    cpu = LogMel(CONFIG)(audio)
    gpu = LogMel(CONFIG).cuda()(audio.cuda()).cpu()
    assert (cpu - gpu).abs().max() < 1e-2


@pytest.mark.parametrize(
    "frames, chunk_frames", [(1876, 188), (188, 188), (189, 188), (1000, 300), (50, 188)]
)
def test_chunks_cover_the_clip_evenly(frames, chunk_frames):
    starts = chunk_starts(frames, chunk_frames)
    assert starts[0] == 0
    if frames >= chunk_frames:
        assert starts[-1] == frames - chunk_frames  # the last chunk ends on the last frame
        assert all(b - a <= chunk_frames for a, b in zip(starts, starts[1:]))  # no gap
        assert len(starts) == -(-frames // chunk_frames)


def test_short_clips_are_tiled_and_chunk_means_per_clip():
    specs = torch.arange(2 * 3 * 10, dtype=torch.float32).reshape(2, 3, 10)
    chunks, owner = make_chunks(specs, [4, 10], chunk_frames=6)
    assert owner.tolist() == [0, 1, 1]
    assert torch.equal(chunks[0], specs[0, :, [0, 1, 2, 3, 0, 1]])  # repeated, not zero-padded
    assert torch.equal(chunks[2], specs[1, :, 4:10])
    values = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 8.0]])
    assert mean_by_owner(values, owner, 2).tolist() == [[1.0, 2.0], [4.0, 6.0]]
