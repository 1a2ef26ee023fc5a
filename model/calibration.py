"""From member log-probabilities to the probabilities we promise: one rule, used everywhere.

`output_probabilities` is what predict.py writes for a clip, and the only place that says how:
average the members' log-probabilities (a geometric mean of probabilities, blind to each member's
logit offset), divide by ONE temperature, softmax, then lift every probability to at least
`PROBABILITY_FLOOR` by mixing with the uniform distribution, so that one confident mistake cannot
cost more than log(1 / 1e-4) = 9.2 nats. The ensemble (prediction), training's validation and
report, and the temperature fit all call it, so the loss training minimises and logs is the loss
the shipped output scores.

The temperature T is fitted by LBFGS on the validation log loss of that very output (Guo et al.
2017: averaged members are sharper or flatter than the truth; one T fixes most of it without
changing any decision). Fitting log T keeps T positive. A few validation clips, all classified
right, would drive T towards 0 -- promising near-certainty on the strength of 16 examples. So the
fit is a MAP estimate: log T has a normal prior centred on 0 (T = 1) with standard deviation
`TEMPERATURE_PRIOR_SD`, weighed against the n clips' log likelihood. On FMA's 2,505 validation
clips the prior moves T by well under 1 %; on 16 clips it keeps T from sharpening on no evidence.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

PROBABILITY_FLOOR = 1e-4
TEMPERATURE_PRIOR_SD = 0.5  # of log T: T within a factor e^0.5 = 1.65 of 1 a priori, at one SD


def combine(
    member_log_probs: Tensor, temperature: float | Tensor = 1.0, weights: Tensor | None = None
) -> Tensor:
    """(members, clips, classes) log-probabilities -> (clips, classes) calibrated log-probabilities:
    their mean (weighted by `weights`, one per member, when given), over T, log-softmaxed."""
    if weights is None:
        mean = member_log_probs.mean(dim=0)
    else:
        weights = torch.as_tensor(weights, dtype=member_log_probs.dtype, device=member_log_probs.device)
        mean = torch.tensordot(weights / weights.sum(), member_log_probs, dims=1)
    return torch.log_softmax(mean / temperature, dim=-1)


def floor_probabilities(probs: np.ndarray | Tensor) -> np.ndarray | Tensor:
    """Mix with the uniform distribution so every entry is >= PROBABILITY_FLOOR and rows sum to 1
    (numpy arrays and torch tensors alike)."""
    classes = probs.shape[-1]
    probs = probs / probs.sum(-1, keepdims=True)
    return PROBABILITY_FLOOR + (1.0 - classes * PROBABILITY_FLOOR) * probs


def output_probabilities(
    member_log_probs: Tensor, temperature: float | Tensor = 1.0, weights: Tensor | None = None
) -> Tensor:
    """(members, clips, classes) -> (clips, classes): exactly the rows predict.py writes."""
    return floor_probabilities(combine(member_log_probs.double(), temperature, weights).exp())


def output_log_loss(
    member_log_probs: Tensor, labels: Tensor, temperature: float | Tensor = 1.0, weights: Tensor | None = None
) -> Tensor:
    """Mean log loss of `output_probabilities` on class-index `labels` (the challenge's metric;
    the floor keeps it inside sklearn's clipping, so the two agree)."""
    probs = output_probabilities(member_log_probs, temperature, weights)
    return -probs.gather(1, labels.long().to(probs.device)[:, None]).log().mean()


def fit_temperature(
    member_log_probs: Tensor,
    labels: Tensor,
    prior_sd: float = TEMPERATURE_PRIOR_SD,
    weights: Tensor | None = None,
    start: float = 1.0,
) -> float:
    """T maximising the posterior of `output_log_loss`'s likelihood under a normal prior on log T
    (see the module docstring); member_log_probs (members, n, classes), labels (n,), optional
    member `weights`; the search starts from `start` (a nearby mix's T converges in a few steps)."""
    member_log_probs, labels = member_log_probs.double().detach().cpu(), labels.long().cpu()
    log_t = torch.tensor([math.log(start)], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = output_log_loss(member_log_probs, labels, log_t.exp(), weights) + (log_t**2).sum() / (
            2 * prior_sd**2 * len(labels)
        )
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp().clamp(0.05, 20.0).item())
