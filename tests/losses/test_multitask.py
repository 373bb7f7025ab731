"""Multi-task weighting and task sampling against hand-computed values and naive formulas."""

from __future__ import annotations

import math

import pytest
import torch

from trimodal.losses.multitask import (
    DynamicWeightAverage,
    LossDrivenTaskSampler,
    MultiTaskOutput,
    StaticWeighting,
    UncertaintyWeighting,
    build_weighting,
)


def _losses(**values: float) -> dict[str, torch.Tensor]:
    return {task: torch.tensor(value, dtype=torch.float64) for task, value in values.items()}


def _softmax(values: list[float]) -> list[float]:
    exps = [math.exp(v) for v in values]
    return [e / sum(exps) for e in exps]


# --- static -----------------------------------------------------------------------------------


def test_static_weighting_defaults_missing_weights_to_one() -> None:
    out = StaticWeighting({"caption": 2.0, "unused": 5.0})(_losses(caption=1.5, retrieval=0.25))
    assert isinstance(out, MultiTaskOutput)
    assert out.total.item() == pytest.approx(2.0 * 1.5 + 0.25)
    assert out.weights == {"caption": 2.0, "retrieval": 1.0}
    assert {k: v.item() for k, v in out.parts.items()} == {"caption": 1.5, "retrieval": 0.25}


def test_static_weighting_keeps_the_graph() -> None:
    loss = torch.tensor(3.0, requires_grad=True)
    StaticWeighting({"a": 0.5})({"a": loss}).total.backward()
    assert loss.grad is not None and loss.grad.item() == 0.5


def test_weighting_rejects_empty_losses() -> None:
    with pytest.raises(ValueError, match="no task losses"):
        StaticWeighting()({})


# --- uncertainty ------------------------------------------------------------------------------


def test_uncertainty_initial_total_and_weights() -> None:
    out = UncertaintyWeighting(["a", "b"])(_losses(a=2.0, b=4.0))
    assert out.total.item() == pytest.approx(0.5 * 2.0 + 0.5 * 4.0)
    assert out.weights == {"a": 0.5, "b": 0.5}


def test_uncertainty_total_gradient_and_weights_match_formula() -> None:
    weighting = UncertaintyWeighting(["a", "b", "c"]).double()
    s = [0.3, -0.7, 1.1]
    with torch.no_grad():
        weighting.log_vars.copy_(torch.tensor(s, dtype=torch.float64))
    values = {"a": 2.0, "c": 0.4}  # "b" absent
    out = weighting(_losses(**values))

    expected = sum(0.5 * math.exp(-s[i]) * values[t] + 0.5 * s[i] for i, t in [(0, "a"), (2, "c")])
    assert out.total.item() == pytest.approx(expected, abs=1e-12)
    assert out.weights == pytest.approx({"a": 0.5 * math.exp(-0.3), "c": 0.5 * math.exp(-1.1)})

    out.total.backward()
    grad = weighting.log_vars.grad
    assert grad is not None
    assert grad[0].item() == pytest.approx(0.5 - 0.5 * math.exp(-0.3) * 2.0, abs=1e-12)
    assert grad[1].item() == 0.0
    assert grad[2].item() == pytest.approx(0.5 - 0.5 * math.exp(-1.1) * 0.4, abs=1e-12)


def test_uncertainty_converges_to_log_loss() -> None:
    """Plain SGD written out: constructing the first torch.optim optimizer costs seconds."""
    weighting = UncertaintyWeighting(["a", "b"]).double()
    losses = _losses(a=3.0, b=0.2)
    for _ in range(300):
        (grad,) = torch.autograd.grad(weighting(losses).total, weighting.log_vars)
        with torch.no_grad():
            weighting.log_vars.sub_(0.5 * grad)
    assert weighting.log_vars[0].item() == pytest.approx(math.log(3.0), abs=1e-2)
    assert weighting.log_vars[1].item() == pytest.approx(math.log(0.2), abs=1e-2)


def test_uncertainty_rejects_unknown_task() -> None:
    with pytest.raises(ValueError, match="unknown tasks"):
        UncertaintyWeighting(["a"])(_losses(z=1.0))


# --- dynamic weight average -------------------------------------------------------------------


def test_dwa_equal_weights_until_two_windows() -> None:
    dwa = DynamicWeightAverage(["a", "b"])
    out = dwa(_losses(a=2.0, b=4.0))
    assert out.weights == {"a": 1.0, "b": 1.0}
    assert out.total.item() == pytest.approx(6.0)
    dwa.step_epoch()
    assert dwa(_losses(a=1.0, b=4.0)).weights == {"a": 1.0, "b": 1.0}


def test_dwa_hand_computed() -> None:
    """Window means a: 2 then 1 (r = 0.5), b: 4 then 4 (r = 1); T = 2, K = 2."""
    dwa = DynamicWeightAverage(["a", "b"], temperature=2.0)
    dwa(_losses(a=1.0, b=4.0))
    dwa(_losses(a=3.0, b=4.0))  # window 1 means: a 2, b 4
    dwa.step_epoch()
    dwa(_losses(a=1.0, b=5.0))
    dwa(_losses(a=1.0, b=3.0))  # window 2 means: a 1, b 4
    dwa.step_epoch()

    w_a = 2 * math.exp(0.25) / (math.exp(0.25) + math.exp(0.5))
    w_b = 2 * math.exp(0.5) / (math.exp(0.25) + math.exp(0.5))
    out = dwa(_losses(a=10.0, b=1.0))
    assert out.weights == pytest.approx({"a": w_a, "b": w_b}, abs=1e-12)
    assert out.total.item() == pytest.approx(w_a * 10.0 + w_b * 1.0, abs=1e-12)
    assert sum(out.weights.values()) == pytest.approx(2.0)


def test_dwa_uses_only_last_two_windows_and_neutral_ratio_for_unseen() -> None:
    dwa = DynamicWeightAverage(["a", "b", "c"], temperature=1.0)
    for a, b in [(8.0, 1.0), (4.0, 2.0), (2.0, 1.0)]:  # c never seen
        dwa(_losses(a=a, b=b))
        dwa.step_epoch()
    # last two windows: a 4 -> 2 (r 0.5), b 2 -> 1 (r 0.5), c unseen (r 1).
    expected = [3 * p for p in _softmax([0.5, 0.5, 1.0])]
    assert list(dwa.current_weights().values()) == pytest.approx(expected, abs=1e-12)


def test_dwa_eval_mode_does_not_record_and_state_resumes() -> None:
    dwa = DynamicWeightAverage(["a", "b"])
    dwa(_losses(a=2.0, b=1.0))
    dwa.step_epoch()
    dwa.eval()
    dwa(_losses(a=100.0, b=100.0))
    dwa.train()
    dwa(_losses(a=1.0, b=1.0))
    dwa.step_epoch()
    resumed = DynamicWeightAverage(["a", "b"])
    resumed.load_state_dict(dwa.state_dict())
    expected = [2 * p for p in _softmax([0.5 / 2.0, 1.0 / 2.0])]
    assert list(resumed.current_weights().values()) == pytest.approx(expected, abs=1e-12)
    assert resumed.current_weights() == dwa.current_weights()


# --- build_weighting --------------------------------------------------------------------------


def test_build_weighting_by_name() -> None:
    static = build_weighting("static", ["a", "b"], weights={"a": 3.0})
    assert isinstance(static, StaticWeighting)
    assert static(_losses(a=1.0, b=1.0)).weights == {"a": 3.0, "b": 1.0}
    assert isinstance(build_weighting("uncertainty", ["a"]), UncertaintyWeighting)
    dwa = build_weighting("dwa", ["a"], temperature=1.5)
    assert isinstance(dwa, DynamicWeightAverage) and dwa.temperature == 1.5


def test_build_weighting_unknown_lists_names() -> None:
    with pytest.raises(ValueError, match=r"'static', 'uncertainty', 'dwa'"):
        build_weighting("gradnorm", ["a"])


# --- loss-driven task sampler -----------------------------------------------------------------


def test_sampler_uniform_before_updates() -> None:
    sampler = LossDrivenTaskSampler(["a", "b", "c", "d"])
    assert sampler.probabilities() == pytest.approx(dict.fromkeys("abcd", 0.25))


def test_sampler_probabilities_hand_computed() -> None:
    sampler = LossDrivenTaskSampler(["a", "b"], temperature=0.5, momentum=0.9)
    sampler.update({"a": 1.0, "b": 2.0})  # first value seeds the EMA
    sampler.update({"a": 3.0})  # a: 0.9 * 1 + 0.1 * 3 = 1.2
    assert sampler.ema == pytest.approx({"a": 1.2, "b": 2.0})
    p_a, p_b = _softmax([1.2 / 0.5, 2.0 / 0.5])
    assert sampler.probabilities() == pytest.approx({"a": p_a, "b": p_b}, abs=1e-12)
    assert p_b > p_a


def test_sampler_unseen_task_counts_as_highest_loss() -> None:
    sampler = LossDrivenTaskSampler(["a", "b", "c"])
    sampler.update({"a": 1.0, "b": 3.0})
    expected = _softmax([1.0, 3.0, 3.0])
    assert list(sampler.probabilities().values()) == pytest.approx(expected, abs=1e-12)


def test_sampler_prefers_high_loss_task() -> None:
    sampler = LossDrivenTaskSampler(["easy", "hard"], seed=1)
    sampler.update({"easy": 0.1, "hard": 2.0})
    draws = [sampler.sample(1)[0] for _ in range(400)]
    # p(hard) = 1 / (1 + e^-1.9) ~ 0.87
    assert 0.8 < draws.count("hard") / len(draws) < 0.94


def test_sampler_draws_without_replacement_and_checks_k() -> None:
    sampler = LossDrivenTaskSampler(["a", "b", "c"])
    drawn = sampler.sample(3)
    assert sorted(drawn) == ["a", "b", "c"]
    with pytest.raises(ValueError):
        sampler.sample(4)
    with pytest.raises(ValueError):
        sampler.update({"z": 1.0})


def test_sampler_is_deterministic_under_seed() -> None:
    def run(seed: int) -> list[list[str]]:
        sampler = LossDrivenTaskSampler(["a", "b", "c", "d"], seed=seed)
        sampler.update({"a": 0.5, "b": 1.0, "c": 1.5, "d": 2.0})
        return [sampler.sample(2) for _ in range(20)]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_sampler_state_round_trip_gives_identical_next_samples() -> None:
    original = LossDrivenTaskSampler(["a", "b", "c"], seed=3)
    original.update({"a": 0.2, "b": 1.0, "c": 0.7})
    original.sample(2)
    state = original.state_dict()

    resumed = LossDrivenTaskSampler(["a", "b", "c"], seed=99)
    resumed.load_state_dict(state)
    assert resumed.probabilities() == original.probabilities()
    assert [resumed.sample(2) for _ in range(10)] == [original.sample(2) for _ in range(10)]

    with pytest.raises(ValueError, match="tasks"):
        LossDrivenTaskSampler(["a", "b"]).load_state_dict(state)
