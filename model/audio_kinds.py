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

KINDS = ("speech", "orchestral", "other music")

# P(kind | genre), rows in KINDS order: what share of a genre's clips sound like each kind.
KIND_GIVEN_GENRE: dict[str, tuple[float, float, float]] = {
    "Spoken": (0.9, 0.0, 0.1),  # a tenth spoken word over music
    "Classical": (0.0, 0.85, 0.15),  # solo piano, guitar, chamber music sound otherwise
    "Instrumental": (0.0, 0.4, 0.6),  # soundtrack and ambient, beside piano, guitar, beats
}
OTHER_GENRES = (0.01, 0.03, 0.96)  # skits, interludes; an orchestral passage now and then


def default_kind_given_genre() -> list[list[float]]:
    """(16 genres, 3 kinds) P(kind | genre) in GENRES order, as the manifest stores it."""
    return [list(KIND_GIVEN_GENRE.get(genre, OTHER_GENRES)) for genre in GENRES]


class AudioKinds(nn.Module):
    """(embedding (batch, 400), speech measures (batch, 2)) -> (batch, 16) each genre's likelihood
    ratio from the kind of audio (module docstring). `fitted`: audio_kinds.json's "model"."""

    def __init__(self, fitted: dict, given: list[list[float]]):
        super().__init__()
        weight = torch.tensor(fitted["weight"], dtype=torch.float32)  # (3, 402), on standardised inputs
        if weight.shape != (len(KINDS), 402) or list(fitted["kinds"]) != list(KINDS):
            raise ValueError(f"audio_kinds: needs a (3, 402) weight over the kinds {list(KINDS)}")
        given_t = torch.tensor(given, dtype=torch.float32)
        if given_t.shape != (len(GENRES), len(KINDS)) or not torch.allclose(given_t.sum(1), torch.ones(1)):
            raise ValueError("kind_given_genre: needs 16 rows of 3 probabilities that sum to 1")
        self.register_buffer("weight", weight, persistent=False)
        self.register_buffer("bias", torch.tensor(fitted["bias"], dtype=torch.float32), persistent=False)
        self.register_buffer("mean", torch.tensor(fitted["mean"], dtype=torch.float32), persistent=False)
        self.register_buffer("scale", torch.tensor(fitted["scale"], dtype=torch.float32), persistent=False)
        self.register_buffer("prior", torch.tensor(fitted["prior"], dtype=torch.float32), persistent=False)
        self.register_buffer("given", given_t, persistent=False)

    def posterior(self, embedding: Tensor, speech: Tensor) -> Tensor:
        """(batch, 3) P(kind | chunk) under the training's (balanced) prior."""
        features = (torch.cat([embedding.float(), speech.float()], dim=1) - self.mean) / self.scale
        return torch.softmax(features @ self.weight.T + self.bias, dim=1)

    def forward(self, embedding: Tensor, speech: Tensor) -> Tensor:
        return (self.posterior(embedding, speech) / self.prior) @ self.given.T


def fit_audio_kinds(features: np.ndarray, kinds: np.ndarray, strength: float) -> dict:
    """A multinomial logistic regression on standardised (embedding, speech measures), classes
    weighted to a balanced prior; `strength`: sklearn's C (smaller = smoother)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(features)
    model = LogisticRegression(C=strength, max_iter=5000, class_weight="balanced")
    model.fit(scaler.transform(features), kinds)
    if list(model.classes_) != list(range(len(KINDS))):
        raise ValueError(f"every kind needs examples: got {sorted(set(kinds.tolist()))}")
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
