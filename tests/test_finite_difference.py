"""Unit tests of the NumPy oracles: fd, richardson, complex-step, taylor, directional.

Every planted-bug test asserts that the oracle catches the bug on its own;
every tolerance here is derived from the oracle's own error estimate or from
eps, and printed in the assertion message.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from lstm_gradcheck.oracles import batched, batched_forward, batched_gates
from lstm_gradcheck.oracles.complex_step import complex_step_gradient
from lstm_gradcheck.oracles.cost import fd_costly
from lstm_gradcheck.oracles.directional import directional_judge, probes_for
from lstm_gradcheck.oracles.directions import random_direction
from lstm_gradcheck.oracles.fd_bounds import (
    CENTRAL_STEP,
    EPS,
    RICHARDSON_MULTIPLES,
    RICHARDSON_STEP,
    central_estimate,
    element_steps,
    richardson_estimate,
)
from lstm_gradcheck.oracles.finite_difference import central_gradient, central_with_loss, richardson_gradient
from lstm_gradcheck.oracles.judging import judging_context
from lstm_gradcheck.oracles.registry import default_oracles, run_oracle
from lstm_gradcheck.oracles.smoothness import ROUGHNESS_LIMIT, roughness
from lstm_gradcheck.oracles.taylor import SLOPE_THRESHOLD, taylor_judge
from lstm_gradcheck.reference.case import make_case
from lstm_gradcheck.reference.config import LSTMConfig
from lstm_gradcheck.reference.layout import gate_slice, gradient_names
from lstm_gradcheck.reference.lstm import forward, grads

EVERYTHING = LSTMConfig(
    input_size=3, hidden_size=4, num_layers=2, output_size=3, seq_len=5, batch_size=3, loss="bce", final_state=True
)


def rel_errors(got, exact):
    return {n: float(np.max(np.abs(got[n] - exact[n])) / np.max(np.abs(exact[n]))) for n in got}


# ----------------------------------------------------------------------------- complex gates


@pytest.mark.parametrize("imag_scale", [1e-20, 1e-3, 0.7])
def test_complex_gates_equal_numpy_complex_functions(imag_scale):
    rng = np.random.default_rng(7)
    a = np.concatenate([rng.normal(0, 3, 500), [-40.0, -20.0, 0.0, 1e-8, 20.0, 40.0]])
    z = a + 1j * imag_scale * rng.normal(0, 1, a.size)
    out = np.empty_like(z)
    expected_tanh = np.tanh(z)
    got = batched_gates.complex_tanh(z, out.copy())
    # Relative to each part's own size: the imaginary part carries the complex step's derivative.
    for part in ("real", "imag"):
        e, g = getattr(expected_tanh, part), getattr(got, part)
        err = np.abs(g - e) / np.maximum(np.abs(e), np.finfo(float).tiny)
        assert err.max() <= 64 * EPS, f"tanh {part}: worst relative error {err.max():.3g} > 64 eps"
    expected_sigmoid = 1.0 / (1.0 + np.exp(-z))
    got = batched_gates.complex_sigmoid(z, out.copy())
    for part in ("real", "imag"):
        e, g = getattr(expected_sigmoid, part), getattr(got, part)
        err = np.abs(g - e) / np.maximum(np.abs(e), np.finfo(float).tiny)
        assert err.max() <= 64 * EPS, f"sigmoid {part}: worst relative error {err.max():.3g} > 64 eps"


# ----------------------------------------------------------------------------- the batched copies


@pytest.mark.parametrize("lengths", [None, [5, 2, 4]])
def test_batched_copies_match_whole_forward_passes(lengths):
    """Differences of partial losses equal differences of the reference's full losses."""
    case = make_case(EVERYTHING, seed=11, lengths=lengths)
    base = batched_forward.prepare(case)
    loss0 = forward(case)[0].loss
    assert abs(base.loss - loss0) <= 16 * EPS * abs(loss0), (base.loss, loss0)
    rng = np.random.default_rng(3)
    arrays = case.arrays()
    for name in gradient_names(EVERYTHING.num_layers):
        size = arrays[name].size
        index = rng.choice(size, size=min(3, size), replace=False)
        delta = np.array([0.3, -0.2, 0.1])[: len(index)]
        got = batched.partial_losses(base, name, index, delta) - batched.base_partial_losses(base, name, index)
        for k, i in enumerate(index):
            moved = arrays[name].copy()
            moved.flat[i] += delta[k]
            expected = forward(case.with_arrays({name: moved}))[0].loss - loss0
            assert abs(got[k] - expected) <= 1e3 * EPS * max(1.0, abs(loss0)), (name, i, got[k], expected)


def test_one_and_two_workers_agree(monkeypatch):
    case = make_case(EVERYTHING, seed=2)
    base = batched_forward.prepare(case)
    index = np.arange(case.params["weight_hh_l0"].size)
    delta = np.full(index.size, 1e-3)
    monkeypatch.setattr(batched, "TARGET_COLUMNS", 8)  # many chunks
    two = batched.partial_losses(base, "weight_hh_l0", index, delta)
    monkeypatch.setattr(batched, "WORKERS", 1)
    one = batched.partial_losses(base, "weight_hh_l0", index, delta)
    assert np.max(np.abs(two - one)) <= 16 * EPS * np.max(np.abs(one))


# ----------------------------------------------------------------------------- formulas


def test_step_rule_is_relative_above_one_and_absolute_below():
    np.testing.assert_array_equal(element_steps(np.array([0.0, -0.5, 2.0, -300.0]), 1e-5), [1e-5, 1e-5, 2e-5, 3e-3])


def test_central_error_bound_covers_the_true_error_of_a_known_function():
    theta = np.linspace(-2, 2, 41)
    h = element_steps(theta, CENTRAL_STEP)
    noise = 9 * EPS  # |exp| < e^2.1 < 9: one evaluation's roundoff is below 9 eps / 2
    f = np.exp
    d, err = central_estimate(f(theta + h), f(theta - h), f(theta + 2 * h), f(theta), h, noise)
    true = np.abs(d - np.exp(theta))
    assert np.all(true <= err), f"worst true/estimate {np.max(true / err):.3g}"
    # Not loose either: at most twice the truncation h²/6 f''' plus the noise terms (1 + 8/6 + 8/6) ε/h.
    bound = 2 * h**2 / 6 * np.exp(theta + 2 * h) + (1 + 16 / 6) * noise / h
    assert np.all(err <= bound), f"estimate over its derivation by {np.max(err / bound):.3g}x"


def test_richardson_error_bound_covers_the_true_error_of_a_known_function():
    theta = np.linspace(-2, 2, 41)
    h = element_steps(theta, RICHARDSON_STEP)
    f = {m: (np.sin(3 * (theta + m * h)), np.sin(3 * (theta - m * h))) for m in RICHARDSON_MULTIPLES}

    r, err = richardson_estimate(f, h, 2 * EPS)
    true = np.abs(r - 3 * np.cos(3 * theta))
    assert np.all(true <= err), f"worst true/estimate {np.max(true / err):.3g}"
    assert np.max(err) <= 1e-10, f"estimate {np.max(err):.3g}"


# ----------------------------------------------------------------------------- full gradients


@pytest.mark.parametrize("lengths", [None, [1, 5, 3]])
def test_full_gradients_agree_with_the_reference_within_their_own_bounds(lengths):
    case = make_case(EVERYTHING, seed=5, lengths=lengths)
    _, exact = grads(case)
    for fn, goal in ((central_gradient, 1e-6), (richardson_gradient, 1e-9), (complex_step_gradient, 1e-12)):
        result = fn(case)
        errs = rel_errors(result.grads, exact)
        assert max(errs.values()) <= goal, f"{fn.__name__}: {errs}"
        for name, bound in (result.errors or {}).items():
            true = np.abs(result.grads[name] - exact[name])
            assert np.all(true <= bound), f"{fn.__name__} {name}: true error over its bound {np.max(true / bound):.3g}x"


# Saturated gates (10x torch's weights): R(10H) agrees with R(20H) while both are 5e-8 off; the
# retry at 10H must not be trusted (Note [Adaptive steps]; richardson_bound in oracles/fd_bounds.py).

SATURATED = LSTMConfig(
    input_size=1, hidden_size=6, num_layers=2, output_size=2, seq_len=5, batch_size=6, loss="mse", loss_at="last"
)
# 200 steps of a 3-layer identity cell: chaotic at every step >= 1e-5 (Note [Smooth enough for finite differences]).
CHAOTIC = LSTMConfig(
    input_size=2, hidden_size=6, num_layers=3, output_size=2, seq_len=200, batch_size=5, loss="bce",
    loss_at="last", reduction="mean", cell_output="identity", final_state=True,
)  # fmt: skip


def test_richardson_keeps_its_base_estimate_where_a_larger_step_disagrees():
    case = make_case(SATURATED, seed=2, weight_scale=10.0)
    loss, exact = grads(case)
    report = run_oracle("richardson", judging_context(case), loss, exact, requested=True)
    worst = max(report.check.tensors, key=lambda t: t.max_abs_err / t.allowed)
    assert report.verdict == "pass", f"{worst.name}: {worst.max_abs_err:.3g} over allowed {worst.allowed:.3g}"


def test_fd_oracles_abstain_where_the_loss_is_too_rough_at_their_step():
    chaotic = make_case(CHAOTIC, seed=3038295, weight_scale=2.0)
    loss, exact = grads(chaotic)
    context = judging_context(chaotic)
    for oracle in ("fd", "richardson"):
        report = run_oracle(oracle, context, loss, exact, requested=True)
        assert report.verdict == "skipped" and "too rough" in report.reason, (oracle, report.verdict, report.reason)
    # The exact gradient is still well defined and judged by the oracles that take no step.
    assert run_oracle("complex-step", context, loss, exact, requested=True).verdict == "pass"
    # An ordinary case is nowhere near the limit, so nothing abstains there.
    name, fraction = roughness(judging_context(make_case(EVERYTHING, seed=5)), RICHARDSON_STEP)
    assert fraction < ROUGHNESS_LIMIT / 100, (name, fraction)


def test_float32_case_is_differentiated_at_its_exact_values_in_float64():

    case32 = make_case(EVERYTHING.replace(dtype="float32"), seed=5)
    _, exact = grads(case32.astype("float64"))
    errs = rel_errors(complex_step_gradient(case32).grads, exact)
    assert max(errs.values()) <= 1e-12, errs


def test_central_with_a_foreign_loss_function_matches_the_batched_one():
    case = make_case(EVERYTHING, seed=8)
    looped = central_with_loss(case, "weight_hh_l1", lambda c: forward(c)[0].loss)
    batch = central_gradient(case, ["weight_hh_l1"])
    diff = np.abs(looped.grads["weight_hh_l1"] - batch.grads["weight_hh_l1"])
    assert np.all(diff <= looped.errors["weight_hh_l1"] + batch.errors["weight_hh_l1"])
    assert looped.forward_passes == 3 * case.params["weight_hh_l1"].size + 1


# ----------------------------------------------------------------------------- planted bugs


def planted(case, name, how):
    """The reference's gradients with one planted error: ``flip`` the largest element of
    ``name`` by a relative 1e-3, or ``drop`` its forget-gate rows."""
    _, g = grads(case)
    wrong = {n: a.copy() for n, a in g.items()}
    if how == "flip":
        i = np.unravel_index(np.argmax(np.abs(g[name])), g[name].shape)
        wrong[name][i] *= 1 + 1e-3
    else:
        wrong[name][gate_slice("f", case.config.hidden_size)] = 0.0
    return g, wrong


@pytest.mark.parametrize("oracle", ["fd", "richardson", "complex-step", "taylor", "directional"])
@pytest.mark.parametrize(("name", "how"), [("weight_hh_l0", "flip"), ("bias_ih_l1", "drop"), ("c0", "flip")])
def test_each_oracle_catches_a_planted_bug_on_its_own(oracle, name, how):
    case = make_case(EVERYTHING, seed=4)
    right, wrong = planted(case, name, how)
    loss = forward(case)[0].loss
    context = judging_context(case)
    good = run_oracle(oracle, context, loss, right)
    assert good.verdict == "pass", [t.describe() for t in good.check.tensors if not t.ok]
    bad = run_oracle(oracle, context, loss, wrong)
    assert bad.verdict == "fail", f"{oracle} missed the planted bug in {name}"
    flagged = [t for t in bad.check.tensors if t.status == "mismatch"]
    assert [t.name for t in flagged] == [name], [t.describe() for t in flagged]
    if how == "drop":
        assert flagged[0].worst is not None and flagged[0].worst.gate == "f", flagged[0].describe()


def test_taylor_slope_is_two_when_right_and_one_when_wrong():
    case = make_case(EVERYTHING, seed=6)
    right, wrong = planted(case, "weight_ih_l1", "flip")
    loss = forward(case)[0].loss
    context = judging_context(case)
    slopes = taylor_judge(context, loss, right).details["slopes"]
    judged = [s for s in slopes.values() if s is not None]
    assert judged and all(abs(s - 2) <= 0.2 for s in judged), slopes
    slopes = taylor_judge(context, loss, wrong).details["slopes"]
    assert abs(slopes["weight_ih_l1"] - 1) <= 0.2, slopes
    assert SLOPE_THRESHOLD == 1.5


# ----------------------------------------------------------------------------- probes and directions


def test_directions_are_seeded_random_and_never_all_ones():
    case = make_case(EVERYTHING, seed=9)
    a = random_direction(case, "taylor", "x", ("x",))["x"]
    b = random_direction(case, "taylor", "x", ("x",))["x"]
    c = random_direction(case, "taylor", "h0", ("x",))["x"]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.all(np.abs(a) >= 0.5) and len(np.unique(np.abs(a))) == a.size
    assert (a > 0).any() and (a < 0).any()


def test_gate_probes_touch_only_their_gate():
    case = make_case(EVERYTHING, seed=9)
    probes = probes_for(case, "weight_ih_l0")
    assert [gate for gate, _ in probes] == [None, "i", "f", "g", "o"]
    for gate, v in probes[1:]:
        rows = np.flatnonzero(np.any(v["weight_ih_l0"] != 0, axis=1))
        expected = np.arange(4 * EVERYTHING.hidden_size)[gate_slice(gate, EVERYTHING.hidden_size)]
        np.testing.assert_array_equal(rows, expected)


def test_directional_checks_an_implementation_against_its_own_loss():
    """A loss function that is not the reference's: the fallback loops over its own forward."""
    case = make_case(EVERYTHING, seed=4)
    right, wrong = planted(case, "weight_hh_l0", "flip")
    loss = forward(case)[0].loss

    def own_loss(c):
        return forward(c)[0].loss

    report = directional_judge(judging_context(case), loss, wrong, own_loss)
    assert report.verdict == "fail"
    (record,) = [t for t in report.check.tensors if t.status == "mismatch"]
    i = np.unravel_index(np.argmax(np.abs(right["weight_hh_l0"])), right["weight_hh_l0"].shape)
    assert record.worst.index == tuple(int(k) for k in i), record.describe()


def test_directional_sharpens_its_step_where_roundoff_hides_a_small_gradient():
    """Found by Hypothesis: a relative 1e-3 error in h0, whose gradient is 2e-6 of the largest,
    passed a probe at the base step (its roundoff 4 ε_L/h was larger than the error); the
    probe repeated at 10x and 100x the step catches it (Note [Directional probes])."""
    config = LSTMConfig(
        input_size=2, hidden_size=2, num_layers=1, output_size=2, seq_len=12, batch_size=1, loss_at="last",
        loss="cross_entropy", reduction="mean", forget_bias=0.0, final_state=False,
    )  # fmt: skip
    case = make_case(config, seed=2)
    loss, right = grads(case)
    assert np.max(np.abs(right["h0"])) < 1e-5 * max(np.max(np.abs(g)) for g in right.values())
    wrong = {n: g.copy() for n, g in right.items()}
    i = int(np.argmax(np.abs(right["h0"])))
    wrong["h0"].reshape(-1)[i] *= 1.001
    report = directional_judge(judging_context(case), loss, wrong)
    assert report.verdict == "fail", report.details["summary"]
    (record,) = [t for t in report.check.tensors if t.status == "mismatch"]
    assert record.name == "h0" and record.worst.index == np.unravel_index(i, right["h0"].shape)


def test_chunks_of_long_wide_cases_stay_within_the_memory_budget():
    small = batched._chunk_columns(EVERYTHING, 0, np.dtype(np.float64))
    assert small == batched_forward.TARGET_COLUMNS
    big = EVERYTHING.replace(hidden_size=512, seq_len=1000)
    for dtype in (np.float64, np.complex128):
        columns = batched._chunk_columns(big, 0, np.dtype(dtype))
        assert 1 <= columns < batched_forward.TARGET_COLUMNS
        assert columns * 512 * 1000 * np.dtype(dtype).itemsize <= batched.CHUNK_BYTES


def test_many_requests_in_one_pool_equal_one_request_at_a_time():
    case = make_case(EVERYTHING, seed=5)
    base = batched_forward.prepare(case)
    rng = np.random.default_rng(0)
    requests = []
    for name in gradient_names(EVERYTHING.num_layers):
        index = rng.choice(case.arrays()[name].size, size=3, replace=False)
        requests.append((name, index, rng.uniform(-1e-3, 1e-3, size=3)))
    together = batched.partial_losses_many(base, requests)
    for (name, index, delta), values in zip(requests, together, strict=True):
        np.testing.assert_array_equal(values, batched.partial_losses(base, name, index, delta), err_msg=name)
    mixed = batched.partial_losses_many(base, [requests[0], (*requests[1][:2], 1j * requests[1][2])])
    assert mixed[0].dtype == np.complex128 and np.all(mixed[0].imag == 0)
    np.testing.assert_allclose(mixed[0].real, together[0], rtol=1e-15)


# ----------------------------------------------------------------------------- registry, CLI, benchmark


def test_every_numpy_oracle_fits_the_default_case_and_fd_refuses_huge_ones():
    assert {"fd", "richardson", "complex-step", "taylor", "directional"} <= set(default_oracles(LSTMConfig()))
    huge = LSTMConfig(hidden_size=256, seq_len=200, batch_size=16)
    reason = fd_costly(huge)
    assert reason is not None and "directional" in reason
    assert {"taylor", "directional"} <= set(default_oracles(huge))
    assert "fd" not in default_oracles(huge)


def test_cli_report_runs_the_numpy_oracles_and_the_json_has_seconds_and_passes(capsys):
    from lstm_gradcheck.cli import main  # noqa: PLC0415

    oracles = ["fd", "complex-step", "taylor", "directional"]
    argv = ["report", "--json"] + [a for o in oracles for a in ("--oracle", o)]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"] == "pass"
    ran = {o["name"]: o for o in data["oracles"]}
    assert set(ran) == set(oracles)
    for name in oracles:
        assert ran[name]["verdict"] == "pass"
        assert ran[name]["forward_passes"] > 1
        assert ran[name]["seconds"] > 0
        assert data["timings"][name] == ran[name]["seconds"]


def test_benchmark_reports_medians_speedups_and_errors():
    from bench.fd import fd_benchmark  # noqa: PLC0415

    small = LSTMConfig(input_size=2, hidden_size=3, num_layers=1, output_size=2, seq_len=3, batch_size=2,
                       forget_bias=0.0, final_state=False)  # fmt: skip
    out = fd_benchmark(repeats=3, config=small)
    assert len(out["torch_gradcheck"]["runs"]) == 3 and out["torch_gradcheck"]["passed"]
    for name in ("fd", "complex_step", "richardson"):
        entry = out["methods"][name]
        assert entry["speedup"] == pytest.approx(out["torch_gradcheck"]["seconds"] / entry["seconds"])
        assert entry["meets_accuracy_goal"], entry["max_error_relative_to_scale"]
        assert set(entry["max_error_relative_to_scale"]) == set(gradient_names(1))
    with pytest.raises(ValueError, match="at least 3"):
        fd_benchmark(repeats=2, config=small)
