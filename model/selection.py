"""Which members, and how much of each: ensemble selection on validation predictions.

Greedy forward selection with replacement (Caruana, Niculescu-Mizil, Crew & Ksikes 2004, as
auto-sklearn's `EnsembleSelection` runs it): start from nothing; each round, add the candidate
(possibly one already in) whose addition most lowers the validation log loss of what would ship,
ties going to a seeded random draw. A member's weight is the number of times it was picked, so a
strong member can count double instead of a weak one being forced in.

"What would ship" is the one combination rule (`calibration.output_log_loss`: the weighted mean of
the members' log-probabilities, over one temperature, softmax, floor) at the temperature fitted on
that very mix (`calibration.fit_temperature`), as train.py fits it: members are not calibrated one
by one, and a mix judged at temperature 1 is judged on a scale it will not be used at.
"""

from __future__ import annotations

import numpy as np
import torch

from .calibration import fit_temperature, output_log_loss

ROUNDS = 50  # auto-sklearn's default ensemble size


def greedy_selection(
    member_log_probs: torch.Tensor, labels: torch.Tensor, rounds: int = ROUNDS, seed: int = 0
) -> tuple[np.ndarray, list[float]]:
    """(pick counts per member, the validation log loss after each round) for member_log_probs
    (members, clips, classes) and labels (clips,)."""
    member_log_probs, labels = member_log_probs.double(), labels.long()
    rng = np.random.default_rng(seed)
    counts = np.zeros(len(member_log_probs), dtype=np.int64)
    history, temperatures = [], np.ones(len(member_log_probs))
    for _ in range(rounds):
        losses = []
        for candidate in range(len(member_log_probs)):
            trial = counts.copy()
            trial[candidate] += 1
            weights = torch.from_numpy(trial.astype(np.float64))
            # started from this candidate's T of the last round: one pick moves it little
            temperatures[candidate] = fit_temperature(
                member_log_probs, labels, weights=weights, start=temperatures[candidate]
            )
            losses.append(output_log_loss(member_log_probs, labels, temperatures[candidate], weights).item())
        losses = np.array(losses)
        best = np.flatnonzero(losses <= losses.min() + 1e-12)
        counts[rng.choice(best)] += 1
        history.append(float(losses.min()))
    return counts, history
