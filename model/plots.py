"""The figures of the notebook and the README: a clip's log-mel, its top genres, its genres over time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch


def log_mel_figure(model, audio: np.ndarray, title: str = ""):
    """The log-mel the first listening member sees, for mono `audio` at `model.sample_rate`."""
    import matplotlib.pyplot as plt

    ensemble = model.ensemble
    with torch.inference_mode():
        waveform = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None].to(ensemble.device)
        config, spec = next(iter(ensemble.spectrograms(waveform).items()))
        spec = spec[0].float().cpu().numpy()
    figure, axis = plt.subplots(figsize=(9, 3), layout="constrained")
    seconds = len(audio) / model.sample_rate
    image = axis.imshow(
        spec, origin="lower", aspect="auto", cmap="magma", extent=(0, seconds, 0, config.n_mels)
    )
    axis.set(xlabel="time (s)", ylabel="mel band", title=title or f"log-mel ({config.n_mels} bands)")
    figure.colorbar(image, ax=axis, label="dB" if "db" in config.compression else config.compression)
    return figure


def top_genres_figure(row: pd.Series, top: int = 8):
    """A horizontal bar chart of the `top` most probable genres."""
    import matplotlib.pyplot as plt

    shown = row.nlargest(top)[::-1]
    figure, axis = plt.subplots(figsize=(6, 0.35 * top + 0.8), layout="constrained")
    axis.barh(shown.index, shown.to_numpy(), color="tab:blue")
    for y, value in enumerate(shown.to_numpy()):
        axis.text(value, y, f" {value:.2f}", va="center")
    axis.set(
        xlim=(0, min(1.0, shown.max() * 1.25 + 0.05)),
        xlabel="probability",
        title=f"top genres{f': {row.name}' if row.name else ''}",
    )
    return figure


def timeline_figure(segments: pd.DataFrame, top: int = 5, title: str = ""):
    """Genres over time as a stacked area: the `top` genres by mean probability, the rest as "other"."""
    import matplotlib.pyplot as plt

    genres = segments.columns[2:]
    mean = segments[genres].mean().sort_values(ascending=False)
    shown = list(mean.index[:top])
    # each segment drawn at its centre; the first and last held out to the clip's edges
    centres = (segments["start"] + segments["end"]).to_numpy() / 2
    x = np.concatenate([[segments["start"].min()], centres, [segments["end"].max()]])
    layers = [segments[g].to_numpy() for g in shown] + [
        segments[genres.difference(shown)].sum(axis=1).to_numpy()
    ]
    layers = [np.concatenate([[layer[0]], layer, [layer[-1]]]) for layer in layers]
    figure, axis = plt.subplots(figsize=(9, 3), layout="constrained")
    axis.stackplot(x, layers, labels=[*shown, "other"], alpha=0.9)
    axis.set(
        xlim=(0, segments["end"].max()),
        ylim=(0, 1),
        xlabel="time (s)",
        ylabel="probability",
        title=title or "genres over time",
    )
    axis.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return figure
