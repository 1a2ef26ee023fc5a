"""The FMA paper's 518 hand-crafted features, for the starter kit's baseline.

Eleven librosa features, each summarised over time by seven statistics (mean, std, skew,
kurtosis, median, min, max), in the layout of FMA's features.csv:
chroma_cens 12, chroma_cqt 12, chroma_stft 12, mfcc 20, rms 1, spectral_bandwidth 1,
spectral_centroid 1, spectral_contrast 7, spectral_rolloff 1, tonnetz 6, zcr 1
-> 74 rows x 7 statistics = 518 numbers. Parameters follow mdeff/fma's features.py (n_fft 2048,
hop 512, a 7-octave CQT); the audio comes from the project's one decode path at 22,050 Hz
(FMA computed at each file's native rate).
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 22050
FEATURE_SIZES = {
    "chroma_cens": 12,
    "chroma_cqt": 12,
    "chroma_stft": 12,
    "mfcc": 20,
    "rms": 1,
    "spectral_bandwidth": 1,
    "spectral_centroid": 1,
    "spectral_contrast": 7,
    "spectral_rolloff": 1,
    "tonnetz": 6,
    "zcr": 1,
}
STATISTICS = ("mean", "std", "skew", "kurtosis", "median", "min", "max")
FEATURE_NAMES: tuple[str, ...] = tuple(
    f"{feature}.{statistic}.{i:02d}"
    for feature, size in FEATURE_SIZES.items()
    for statistic in STATISTICS
    for i in range(1, size + 1)
)


def fma_features(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(518,) float32 features of a mono clip, in `FEATURE_NAMES` order."""
    import librosa

    hop = 512
    cqt = np.abs(librosa.cqt(audio, sr=sample_rate, hop_length=hop, bins_per_octave=12, n_bins=7 * 12))
    stft = np.abs(librosa.stft(audio, n_fft=2048, hop_length=hop))
    chroma_cens = librosa.feature.chroma_cens(C=cqt, sr=sample_rate, n_chroma=12, n_octaves=7)
    mel = librosa.feature.melspectrogram(sr=sample_rate, S=stft**2)
    series = {
        "chroma_cens": chroma_cens,
        "chroma_cqt": librosa.feature.chroma_cqt(C=cqt, sr=sample_rate, n_chroma=12, n_octaves=7),
        "chroma_stft": librosa.feature.chroma_stft(S=stft**2, sr=sample_rate, n_chroma=12),
        "mfcc": librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=20),
        "rms": librosa.feature.rms(S=stft),
        "spectral_bandwidth": librosa.feature.spectral_bandwidth(S=stft, sr=sample_rate),
        "spectral_centroid": librosa.feature.spectral_centroid(S=stft, sr=sample_rate),
        "spectral_contrast": librosa.feature.spectral_contrast(S=stft, sr=sample_rate, n_bands=6),
        "spectral_rolloff": librosa.feature.spectral_rolloff(S=stft, sr=sample_rate),
        "tonnetz": librosa.feature.tonnetz(chroma=chroma_cens, sr=sample_rate),
        "zcr": librosa.feature.zero_crossing_rate(audio, frame_length=2048, hop_length=hop),
    }
    return np.concatenate([_statistics(series[name]) for name in FEATURE_SIZES]).astype(np.float32)


def _statistics(values: np.ndarray) -> np.ndarray:
    """(rows, frames) -> the 7 statistics over frames, statistic-major like FMA's features.csv."""
    from scipy import stats

    values = values.astype(np.float64)
    with np.errstate(all="ignore"):  # constant rows have undefined skew/kurtosis: reported as 0
        rows = [
            values.mean(axis=1),
            values.std(axis=1),
            stats.skew(values, axis=1),
            stats.kurtosis(values, axis=1),
            np.median(values, axis=1),
            values.min(axis=1),
            values.max(axis=1),
        ]
    return np.nan_to_num(np.concatenate(rows))
