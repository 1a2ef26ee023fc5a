"""What kind of audio a 3-s chunk is -- speech, orchestral, other music -- as evidence for the genres.

The taggers' tags hear game orchestras as "ambient" and "electronic" and have no tag for speech
without music (docs/zero-shot.md), but their 400-d embeddings (with model/speech.py's two
measures) still separate the three kinds: a logistic regression fitted on real recordings
(tools/fit_audio_kinds.py; the file weights/musicnn/audio_kinds.json says on which) tells them
apart across packages it never saw. Its posterior over the kinds, divided by the kinds' prior in
its training (balanced), is a likelihood ratio P(chunk | kind) / P(chunk); a genre's is

    likelihood(genre) = sum over kinds k of P(k | genre) x posterior(k) / prior(k)

with P(kind | genre) stated beliefs, not fitted (`KIND_GIVEN_GENRE`): Classical is mostly
orchestral, FMA's Instrumental partly (soundtrack, ambient), Spoken mostly speech, every other
genre mostly other music.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from .genres import GENRES
from .musicnn import EMBEDDING_SIZE
from .speech import SPEECH_MEASURES

KINDS = ("speech", "orchestral", "other music")
FEATURES = 2 * EMBEDDING_SIZE + SPEECH_MEASURES  # both taggers' embeddings, then model/speech.py's measures

# P(kind | genre), rows in KINDS order: what share of a genre's clips sound like each kind.
KIND_GIVEN_GENRE: dict[str, tuple[float, float, float]] = {
    "Spoken": (0.9, 0.0, 0.1),  # a tenth spoken word over music
    "Classical": (0.0, 0.85, 0.15),  # solo piano, guitar, chamber music sound otherwise
    "Instrumental": (0.0, 0.4, 0.6),  # soundtrack and ambient, beside piano, guitar, beats
}
OTHER_GENRES = (0.01, 0.03, 0.96)  # skits, interludes; an orchestral passage now and then


def default_kind_given_genre() -> dict[str, list[float]]:
    """{genre: [P(speech), P(orchestral), P(other music)]}, as the manifest stores it."""
    return {genre: list(KIND_GIVEN_GENRE.get(genre, OTHER_GENRES)) for genre in GENRES}


# The fitted model's arrays and their shapes (audio_kinds.json's "model").
_SHAPES = {
    "weight": (len(KINDS), FEATURES),
    "bias": (len(KINDS),),
    "mean": (FEATURES,),
    "scale": (FEATURES,),
    "prior": (len(KINDS),),
}


class AudioKinds(nn.Module):
    """(embedding (batch, 400), speech measures (batch, 2)) -> (batch, 16) each genre's likelihood
    ratio from the kind of audio (module docstring). `fitted`: audio_kinds.json's "model";
    `given`: {genre: P(kind | genre)}. Bad values are refused here, so that an edited manifest
    fails in one line at load rather than writing NaN rows."""

    def __init__(self, fitted: dict, given: dict[str, list[float]]):
        super().__init__()
        if list(fitted.get("kinds", [])) != list(KINDS):
            raise ValueError(f'audio_kinds: needs "kinds": {list(KINDS)}')
        for name, shape in _SHAPES.items():
            if name not in fitted:
                raise ValueError(f"audio_kinds: needs {name!r}, of shape {shape}")
            values = torch.tensor(fitted[name], dtype=torch.float32)
            if values.shape != shape or not torch.isfinite(values).all():
                raise ValueError(f"audio_kinds: {name!r} must be {shape} finite numbers")
            if name in ("scale", "prior") and not (values > 0).all():
                raise ValueError(f"audio_kinds: {name!r} must be positive")
            self.register_buffer(name, values, persistent=False)
        if not isinstance(given, dict) or sorted(given) != sorted(GENRES):
            raise ValueError(f"kind_given_genre: needs a row for each of the {len(GENRES)} genres")
        for genre, row in given.items():
            values = torch.tensor(row, dtype=torch.float64)
            if values.shape != (len(KINDS),) or not (values >= 0).all() or abs(values.sum() - 1) > 1e-6:
                raise ValueError(
                    f"kind_given_genre: {genre}'s row {row} must be {len(KINDS)} probabilities "
                    f"({', '.join(KINDS)}) that sum to 1"
                )
        rows = torch.tensor([given[genre] for genre in GENRES], dtype=torch.float32)
        self.register_buffer("given", rows, persistent=False)

    def posterior(self, embedding: Tensor, speech: Tensor) -> Tensor:
        """(batch, 3) P(kind | chunk) under the training's (balanced) prior; float32, outside autocast."""
        with torch.autocast(embedding.device.type, enabled=False):
            features = torch.cat([embedding.float(), speech.float()], dim=1)
            features = (features - self.mean.float()) / self.scale.float()
            return torch.softmax(features @ self.weight.float().T + self.bias.float(), dim=1)

    def forward(self, embedding: Tensor, speech: Tensor) -> Tensor:
        with torch.autocast(embedding.device.type, enabled=False):
            ratios = (self.posterior(embedding, speech) / self.prior.float()) @ self.given.float().T
            return ratios.clamp_min(1e-6)  # as the tags' ratios: a kind's posterior may underflow


def fit_audio_kinds(features: np.ndarray, kinds: np.ndarray, strength: float) -> dict:
    """A multinomial logistic regression on standardised (embedding, speech measures), classes
    weighted to a balanced prior; `strength`: sklearn's C (smaller = smoother)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    if sorted(set(kinds.tolist())) != list(range(len(KINDS))):
        raise ValueError(f"every kind needs examples: got {sorted(set(kinds.tolist()))}")
    scaler = StandardScaler().fit(features)
    model = LogisticRegression(C=strength, max_iter=5000, class_weight="balanced")
    model.fit(scaler.transform(features), kinds)
    return {
        "kinds": list(KINDS),
        "weight": _float32_list(model.coef_),
        "bias": _float32_list(model.intercept_),
        "mean": _float32_list(scaler.mean_),
        "scale": _float32_list(scaler.scale_),
        "prior": [1.0 / len(KINDS)] * len(KINDS),
    }


def _float32_list(values: np.ndarray) -> list:
    """The numbers as the model uses them (float32), written with the 9 digits that keep them exact."""
    return np.vectorize(lambda v: float(f"{v:.9g}"))(np.float32(values)).tolist()


def read_audio_kinds(path: str | Path) -> dict:
    """weights/musicnn/audio_kinds.json -> its fitted model (the part the manifest stores)."""
    return json.loads(Path(path).read_text())["model"]
