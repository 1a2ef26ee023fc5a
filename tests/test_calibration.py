"""The maths behind the probabilities: balanced sampling + bias correction, the temperature, the
one combination rule, and the pieces of training that validation depends on."""

import math

import numpy as np
import torch
from torch import nn

from model.calibration import (
    PROBABILITY_FLOOR,
    combine,
    fit_temperature,
    output_log_loss,
    output_probabilities,
)
from model.features import ClipSet, FeatureStore
from model.genres import GENRES
from model.members import MemberConfig
from model.metrics import log_loss
from model.networks import GenreNetwork, build_network
from model.training import (
    class_prior,
    correct_output_bias,
    epoch_steps,
    predict_clips,
    sampling_plan,
    settle_batch_norm,
)

# Four genres of very different frequency, as in FMA (Rock ~28 %, Easy Listening ~0.1 %).
PRESENT = torch.tensor([GENRES.index(g) for g in ("Rock", "Electronic", "Classical", "Easy Listening")])
PRIOR = torch.tensor([0.6, 0.3, 0.08, 0.02], dtype=torch.float64)
MEANS = torch.tensor([[0.0, 0.0], [1.5, 0.0], [0.0, 1.5], [1.5, 1.5]], dtype=torch.float64)


def gaussian_classes(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Overlapping unit-variance Gaussians in 2-D with the prior above: the Bayes posterior is
    known exactly, so a calibrated model's log loss can be compared with the best possible one."""
    which = torch.multinomial(PRIOR, n, replacement=True, generator=generator)
    x = MEANS[which] + torch.randn(n, 2, generator=generator, dtype=torch.float64)
    return x.float(), PRESENT[which]


def bayes_log_probs(x: torch.Tensor) -> torch.Tensor:
    """(n, 16) log P(genre | x) under the generating model (absent genres: probability 0)."""
    log_joint = PRIOR.log() - 0.5 * ((x.double()[:, None, :] - MEANS[None]) ** 2).sum(-1)
    out = torch.full((len(x), len(GENRES)), -math.inf, dtype=torch.float64)
    out[:, PRESENT] = torch.log_softmax(log_joint, dim=1)
    return out


class LinearNetwork(GenreNetwork):
    """A linear model of 2-D points, as a network the bias correction can be applied to."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, len(GENRES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)

    def output_layer(self) -> nn.Linear:
        return self.linear


def test_sqrt_balanced_sampling_and_the_bias_correction_give_calibrated_probabilities():
    generator = torch.Generator().manual_seed(0)
    x, labels = gaussian_classes(20_000, generator)
    weights, sampling_prior = sampling_plan(labels, "sqrt")
    present_q = sampling_prior[PRESENT] / sampling_prior[PRESENT].sum()
    assert torch.allclose(present_q, PRIOR.sqrt() / PRIOR.sqrt().sum(), atol=0.01)  # ∝ sqrt(count)

    torch.manual_seed(0)
    model = LinearNetwork()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    draws = torch.multinomial(weights, 600 * 1024, replacement=True, generator=generator).view(600, 1024)
    for step, which in enumerate(draws):  # trained on draws from the balanced sampling, as in training
        loss = nn.functional.cross_entropy(model(x[which]), labels[which])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step == 400:
            optimizer.param_groups[0]["lr"] = 0.005

    test_x, test_labels = gaussian_classes(20_000, generator)
    with torch.no_grad():
        uncorrected = torch.log_softmax(model(test_x), dim=1)
        correct_output_bias(model, torch.log(class_prior(labels) / sampling_prior))
        corrected = torch.log_softmax(model(test_x), dim=1)
    best = output_log_loss(bayes_log_probs(test_x)[None], test_labels).item()
    loss_corrected = output_log_loss(corrected[None], test_labels).item()
    loss_uncorrected = output_log_loss(uncorrected[None], test_labels).item()
    assert loss_corrected - best < 0.01, (loss_corrected, best)
    assert loss_uncorrected - best > 0.05, (loss_uncorrected, best)  # the correction is what does it

    # Calibrated: per genre, the mean predicted probability matches the frequency; per confidence
    # bin, the confidence matches the accuracy.
    probs = output_probabilities(corrected[None]).numpy()
    frequency = np.bincount(test_labels.numpy(), minlength=len(GENRES)) / len(test_labels)
    assert np.abs(probs.mean(axis=0) - frequency).max() < 0.01
    from model.metrics import expected_calibration_error

    assert expected_calibration_error(test_labels.numpy(), probs) < 0.02


def test_fit_temperature_recovers_a_known_temperature():
    generator = torch.Generator().manual_seed(1)
    logits = 3 * torch.randn(30_000, len(GENRES), generator=generator, dtype=torch.float64)
    members = torch.stack(
        [
            torch.log_softmax(
                logits + 0.3 * torch.randn(logits.shape, generator=generator, dtype=torch.float64), dim=1
            )
            for _ in range(3)
        ]
    )
    for true_temperature in (0.5, 2.0):
        truth = torch.softmax(members.mean(0) / true_temperature, dim=1)  # the labels' real distribution
        labels = torch.multinomial(truth, 1, generator=generator)[:, 0]
        fitted = fit_temperature(members, labels)
        assert abs(fitted / true_temperature - 1) < 0.05, (fitted, true_temperature)
        at_fit = output_log_loss(members, labels, fitted).item()
        assert at_fit <= min(output_log_loss(members, labels, fitted * f).item() for f in (0.9, 1.1))


def test_the_combination_rule_is_what_the_scorer_sees():
    """output_probabilities = softmax(mean member log-probs / T), floored; sklearn's log loss of
    those rows equals output_log_loss (the floor keeps them inside sklearn's clipping)."""
    generator = torch.Generator().manual_seed(2)
    members = torch.log_softmax(8 * torch.randn(2, 50, len(GENRES), generator=generator), dim=2)
    labels = torch.randint(len(GENRES), (50,), generator=generator)
    probs = output_probabilities(members, 1.7)
    expected = torch.softmax((members.double().mean(0)) / 1.7, dim=1)
    assert torch.allclose(probs, PROBABILITY_FLOOR + (1 - 16 * PROBABILITY_FLOOR) * expected)
    assert torch.allclose(combine(members, 1.7).exp(), expected.float(), atol=1e-6)
    assert probs.min() >= PROBABILITY_FLOOR and torch.allclose(
        probs.sum(1), torch.ones(50, dtype=probs.dtype)
    )
    assert math.isclose(
        log_loss(labels.numpy(), probs.numpy()), output_log_loss(members, labels, 1.7).item(), rel_tol=1e-9
    )


def tiny_store(clips: int = 12, frames: int = 120, n_mels: int = 16) -> tuple[FeatureStore, ClipSet]:
    generator = torch.Generator().manual_seed(3)
    data = (torch.randn(clips * frames, n_mels, generator=generator) * 10 - 40).half().numpy()
    offsets = torch.arange(clips) * frames
    return FeatureStore(data, torch.device("cpu")), ClipSet(
        offsets, torch.full((clips,), frames), torch.arange(clips) % 4
    )


def test_validation_with_the_correction_equals_the_corrected_network():
    """What training validates (correction added to the logits) is what the shipped network, with
    the correction folded into its output bias, predicts."""
    store, clips = tiny_store()
    torch.manual_seed(0)
    network = build_network("short_chunk_resnet", 16, len(GENRES), {"channels": [4, 8]}).eval()
    correction = torch.log(class_prior(clips.labels) / sampling_plan(clips.labels, "sqrt")[1]).float()
    validated = predict_clips(network, store, clips, 40, correction)
    correct_output_bias(network, correction)
    shipped = predict_clips(network, store, clips, 40, None)
    assert torch.allclose(validated, shipped, atol=1e-5)


def test_batch_norm_is_settled_on_clean_crops_whatever_came_before():
    store, clips = tiny_store()
    config = MemberConfig(name="m", batch_size=8, batch_norm_crops=64)
    torch.manual_seed(0)
    network = build_network("short_chunk_resnet", 16, len(GENRES), {"channels": [4, 8]})
    settle_batch_norm(network, store, clips, 40, config, seed=5)
    first = {k: v.clone() for k, v in network.state_dict().items() if "running" in k}
    assert abs(network.input_norm.running_mean.item() + 40) < 1  # the features' own mean (-40)
    for module in network.modules():  # stale statistics, as after a few steps of a moving network
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.fill_(7.0)
            module.running_var.fill_(0.01)
    settle_batch_norm(network, store, clips, 40, config, seed=5)
    again = {k: v for k, v in network.state_dict().items() if "running" in k}
    assert all(torch.allclose(first[k], again[k]) for k in first)
    assert network.input_norm.momentum == 0.1 and not network.training


def test_batch_norm_settling_leaves_frozen_taggers_alone():
    store, clips = tiny_store(n_mels=96, frames=200)
    torch.manual_seed(0)
    network = build_network("musicnn_transfer", 96, len(GENRES), {"hidden": 8})
    before = {k: v.clone() for k, v in network.state_dict().items()}
    settle_batch_norm(
        network, store, clips, 187, MemberConfig(name="m", batch_size=4, batch_norm_crops=8), seed=0
    )
    assert all(torch.equal(before[k], v) for k, v in network.state_dict().items())


def test_an_epoch_has_enough_steps_on_small_data():
    config = MemberConfig(name="m")  # batch 64, at least 32 steps
    assert epoch_steps(112, config) == 32  # would be 2 steps: patience 6 = 12 steps
    assert epoch_steps(19_922, config) == 312  # FMA-medium: one pass, unchanged


def test_a_few_perfect_validation_clips_do_not_make_the_temperature_extreme():
    """16 clips, all right at 90 % confidence: without the prior on T the fit would promise 99.9 %."""
    members = torch.log(torch.full((1, 16, len(GENRES)), 0.1 / 15)).scatter(
        2, torch.zeros(1, 16, 1, dtype=torch.long), math.log(0.9)
    )
    labels = torch.zeros(16, dtype=torch.long)
    assert fit_temperature(members, labels, prior_sd=100.0) < 0.4  # what maximum likelihood alone does
    assert 0.6 < fit_temperature(members, labels) <= 1.0
