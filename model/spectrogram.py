"""Waveforms -> log-mel spectrograms, as a torch module: the one spectrogram path of the project.

Two compressions of the mel power: decibels (`"db"`, the CNNs trained here) and
log10(1 + 10000 * power) (`"log10_1p"`, what the pretrained musicnn taggers were trained on).

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

COMPRESSIONS = ("db", "log10_1p")


def compress(power: torch.Tensor, compression: str) -> torch.Tensor:
    """Mel power -> the network's input scale."""
    if compression == "db":
        return 10.0 * torch.log10(power.clamp_min(1e-10))
    return torch.log10(1.0 + 10000.0 * power)


def to_power(x: torch.Tensor, compression: str) -> torch.Tensor:
    """The inverse of `compress`, for augmentations that act on the power (gain, mixup)."""
    if compression == "db":
        return 10.0 ** (x / 10.0)
    return (10.0**x - 1.0).clamp_min(0.0) / 10000.0


@dataclass(frozen=True)
class SpectrogramConfig:
    # Defaults follow the short-chunk CNN recipe (Won et al. 2020) and musicnn's input.
    sample_rate: int = 16000
    n_fft: int = 512
    hop_length: int = 256
    n_mels: int = 128
    f_min: float = 0.0
    f_max: float | None = None  # None: Nyquist
    compression: str = "db"  # "db" | "log10_1p"

    def __post_init__(self) -> None:
        if self.n_fft < 2 or self.hop_length < 1 or self.n_mels < 1 or self.sample_rate < 1:
            raise ValueError(f"invalid spectrogram config: {self}")
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}, got {self.compression!r}")

    def frames(self, samples: int) -> int:
        """Frames `LogMel` returns for a clip of `samples` samples."""
        return 1 + samples // self.hop_length

    def seconds_to_frames(self, seconds: float) -> int:
        return max(1, round(seconds * self.sample_rate / self.hop_length))

    def to_dict(self) -> dict:
        return asdict(self)


class LogMel(nn.Module):
    """(batch, samples) float waveforms -> (batch, n_mels, frames) compressed mel power."""

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
        return compress(mel, self.config.compression)
