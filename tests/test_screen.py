"""The screen oracle, the cost model and the report's budget.

The screen judges every tensor with a few complex-step directions, each gate block and tensor
weighted alike (Note [Screen]); the budget decides which other oracles run (Note [Report
budget]) from the one cost model's estimates (Note [Cost model]).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import assume, given, note, settings
from hypothesis import strategies as st

from lstm_gradcheck import reference
from lstm_gradcheck.budget import DEFAULT_BUDGET, FIXED
from lstm_gradcheck.implementation import InProcess, reference_implementation
from lstm_gradcheck.oracles import cost
from lstm_gradcheck.oracles.judging import judging_context
from lstm_gradcheck.oracles.registry import run_oracle
from lstm_gradcheck.oracles.screen import screen_unfit
from lstm_gradcheck.properties.strategies import DEFAULT_SPACE, cases
from lstm_gradcheck.reference.case import make_case
from lstm_gradcheck.reference.config import LSTMConfig
from lstm_gradcheck.reference.layout import model_gradient_names
from lstm_gradcheck.report import build_report

PLAIN = DEFAULT_SPACE.plain().restrict(dtype=("float64",))


def _screen(case, grads, loss=None):
    context = judging_context(case)
    return run_oracle("screen", context, context.exact_loss if loss is None else loss, grads)


@settings(max_examples=40, deadline=None)
@given(cases(PLAIN))
def test_the_screen_passes_the_reference(case):
    loss, grads = reference.grads(case)
    report = _screen(case, grads, loss)
    note(report.details.get("summary", ""))
    assert report.verdict == "pass", report.details.get("summary")


@st.composite
def planted(draw):
    """A plain case and the reference's gradients with one element off by a relative 5%, among the
    elements at least a tenth of their tensor's scale."""
    case = draw(cases(PLAIN))
    _, exact = reference.grads(case)
    names = [n for n in model_gradient_names(case.config) if np.max(np.abs(exact[n]), initial=0) > 0]
    assume(names)
    name = draw(st.sampled_from(names))
    g = exact[name].reshape(-1)
    big = np.flatnonzero(np.abs(g) >= 0.1 * np.max(np.abs(g)))
    i = int(draw(st.sampled_from(big.tolist())))
    wrong = {n: a.copy() for n, a in exact.items()}
    wrong[name].reshape(-1)[i] *= 1.05
    context = judging_context(case)
    # Below the rule's allowance for that element the plant is not an error at all.
    assume(0.05 * abs(g[i]) > 10 * context.tolerance(exact).allowed(name, float(np.max(np.abs(g)))))
    return case, wrong, name, i


@settings(max_examples=40, deadline=None)
@given(planted())
def test_the_screen_finds_and_locates_a_planted_element(bug):
    case, wrong, name, i = bug
    report = _screen(case, wrong)
    summary = report.details.get("summary", "")
    note(summary)
    flagged = [t for t in report.check.tensors if t.status == "mismatch"]
    assert report.verdict == "fail", summary
    assert [t.name for t in flagged] == [name], summary
    worst = flagged[0].worst
    if worst is not None and worst.index:  # searched to one element: the planted one
        assert worst.index == np.unravel_index(i, wrong[name].shape), summary


def test_the_screen_abstains_on_the_family():
    assert screen_unfit(LSTMConfig()) is None
    for setting in ({"peepholes": True}, {"proj_size": 1}, {"bidirectional": True}, {"coupled": True}):
        assert "plain LSTM only" in screen_unfit(LSTMConfig(**setting))


def _timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


#: Sizes and the oracles timed at each (the full checks only where they take seconds, not minutes).
SIZES = [
    (dict(seq_len=20, batch_size=4, input_size=8, hidden_size=16), ("screen", "complex-step", "fd", "taylor")),
    (dict(seq_len=60, batch_size=8, input_size=16, hidden_size=32, num_layers=2), ("screen", "taylor", "directional")),
    (dict(seq_len=100, batch_size=16, input_size=32, hidden_size=64), ("screen", "torch")),
]
#: Below this a measured time is the clock's and the interpreter's, and decides nothing in a budget.
RESOLUTION = 0.05


@pytest.mark.parametrize(
    ("sizes", "oracles"),
    SIZES,
    ids=lambda s: "-".join(f"{v}" for v in s) if isinstance(s, tuple) else f"T{s['seq_len']}-H{s['hidden_size']}",
)
def test_cost_estimates_hold_within_the_stated_factor(sizes, oracles):
    """Calibrated as a report calibrates (on its exact answer and conditioning probes, measured),
    each oracle's estimate is within ESTIMATE_FACTOR of its measured time, wherever that time is
    above RESOLUTION."""
    case = make_case(LSTMConfig(**sizes, output_size=3), seed=1)
    loss, grads = reference.grads(case)
    context = judging_context(case, exact=(loss, grads))
    measured = _timed(lambda: judging_context(case), repeat=2)
    speed = cost.calibrated(measured, cost.reference_work(case.config) + cost.conditioning_work(case.config))
    ratios = {}
    for oracle in oracles:
        seconds = _timed(lambda o=oracle: run_oracle(o, context, loss, grads, requested=True), repeat=2)
        if seconds >= RESOLUTION:
            ratios[oracle] = speed.seconds(cost.oracle_work(case.config, oracle)) / seconds
    print(f"estimate / measured at {sizes}: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
    assert ratios, "nothing took long enough to compare"
    for oracle, ratio in ratios.items():
        assert 1 / cost.ESTIMATE_FACTOR <= ratio <= cost.ESTIMATE_FACTOR, (oracle, ratios)


def test_a_zero_budget_runs_the_fixed_oracles_and_names_every_skip():
    case = make_case(LSTMConfig(seq_len=5, batch_size=2, input_size=3, hidden_size=4), seed=2)
    report = build_report(case, reference_implementation(), budget=0.0)
    ran = {o.name for o in report.oracles if o.verdict != "skipped"}
    skipped = {o.name: o.reason for o in report.oracles if o.verdict == "skipped"}
    assert ran == set(FIXED) and report.verdict == "pass"
    assert skipped and all("raise --budget" in why for why in skipped.values()), skipped
    data = report.as_json()
    assert data["budget"]["seconds"] == 0.0 and set(data["budget"]["estimates"]) >= set(skipped)


def test_oracles_named_by_the_caller_run_whatever_the_budget():
    case = make_case(LSTMConfig(seq_len=5, batch_size=2, input_size=3, hidden_size=4), seed=2)

    def wrong(c):
        loss, grads = reference.grads(c)
        grads["bias_hh_l0"] = grads["bias_hh_l0"] * 1.01
        return loss, grads

    report = build_report(case, InProcess("wrong", wrong), ["fd", "complex-step"], budget=0.0)
    assert [(o.name, o.verdict) for o in report.oracles] == [("fd", "fail"), ("complex-step", "fail")]


def test_a_wrong_gradient_fails_within_a_zero_budget():
    case = make_case(LSTMConfig(seq_len=5, batch_size=2, input_size=3, hidden_size=4), seed=3)

    def wrong(c):
        loss, grads = reference.grads(c)
        grads["weight_hh_l0"] = grads["weight_hh_l0"] * 1.01
        return loss, grads

    report = build_report(case, InProcess("wrong", wrong), budget=0.0)
    screen = next(o for o in report.oracles if o.name == "screen")
    assert report.verdict == "fail" and screen.verdict == "fail"
    assert [t.name for t in report.tensors if t.status == "mismatch"] == ["weight_hh_l0"]


def test_the_default_budget_is_stated_and_reaches_every_oracle_on_a_small_case():
    assert DEFAULT_BUDGET > 0
    case = make_case(LSTMConfig(seq_len=4, batch_size=2, input_size=3, hidden_size=3), seed=4)
    report = build_report(case, reference_implementation())
    assert all(o.verdict == "pass" for o in report.oracles), [(o.name, o.verdict, o.reason) for o in report.oracles]
