"""One temperature for the whole ensemble, fitted on validation log-probabilities.

Averaged member log-probabilities are sharper or flatter than the truth; dividing them by one
temperature T (fitted by LBFGS on the validation negative log-likelihood) fixes most of it without
changing any decision (Guo et al. 2017). Fitting log T keeps T positive.
"""

from __future__ import annotations

import torch


def fit_temperature(log_probs: torch.Tensor, labels: torch.Tensor) -> float:
    """T minimising NLL(log_softmax(log_probs / T), labels); log_probs (n, classes), labels (n,)."""
    log_probs, labels = log_probs.double().detach().cpu(), labels.long().cpu()
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(log_probs / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp().clamp(0.05, 20.0).item())
