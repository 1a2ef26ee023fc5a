"""Waveforms -> log-mel spectrograms, as a torch module: the one spectrogram path of the project.

`torch.stft` + a `librosa.filters.mel` matrix, in float32 on whatever device the module is on,
so training (on GPU) and prediction (often on CPU) compute the same numbers. Frames are centred
with zero padding, which makes the result independent of batching: a clip zero-padded to the
length of a longer clip in its batch has exactly the frames it would have alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import librosa
import torch
from torch import nn


@dataclass(frozen=True)
class SpectrogramConfig:
    # Defaults follow the short-chunk CNN recipe (Won et al. 2020) and musicnn's input.
    sample_rate: int = 16000
    n_fft: int = 512
    hop_length: int = 256
    n_mels: int = 128
    f_min: float = 0.0
    f_max: float | None = None  # None: Nyquist

    def __post_init__(self) -> None:
        if self.n_fft < 2 or self.hop_length < 1 or self.n_mels < 1 or self.sample_rate < 1:
            raise ValueError(f"invalid spectrogram config: {self}")

    def frames(self, samples: int) -> int:
        """Frames `LogMel` returns for a clip of `samples` samples."""
        return 1 + samples // self.hop_length

    def seconds_to_frames(self, seconds: float) -> int:
        return max(1, round(seconds * self.sample_rate / self.hop_length))

    def to_dict(self) -> dict:
        return asdict(self)


class LogMel(nn.Module):
    """(batch, samples) float waveforms -> (batch, n_mels, frames) log-mel power in dB."""

    def __init__(self, config: SpectrogramConfig):
        super().__init__()
        self.config = config
        mel = librosa.filters.mel(
            sr=config.sample_rate,
            n_fft=config.n_fft,
            n_mels=config.n_mels,
            fmin=config.f_min,
            fmax=config.f_max,
        )
        self.register_buffer("mel_basis", torch.from_numpy(mel), persistent=False)
        self.register_buffer("window", torch.hann_window(config.n_fft), persistent=False)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(
            waveforms.float(),
            n_fft=self.config.n_fft,
            hop_length=self.config.hop_length,
            window=self.window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )
        power = spec.real.square() + spec.imag.square()
        mel = torch.matmul(self.mel_basis, power)
        return 10.0 * torch.log10(mel.clamp_min(1e-10))
