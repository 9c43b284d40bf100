"""The comparison rule itself: what it accepts, what it must never accept."""

from __future__ import annotations

import numpy as np
import pytest

from lstm_gradcheck import reference
from lstm_gradcheck.oracles.compare import compare_gradients, compare_tensor
from lstm_gradcheck.oracles.judging import judging_context
from lstm_gradcheck.oracles.records import GradientMismatchError
from lstm_gradcheck.oracles.tolerance import make_tolerance, relative_tolerance
from lstm_gradcheck.reference.case import make_case
from lstm_gradcheck.reference.config import LSTMConfig


@pytest.fixture(scope="module")
def case_and_grads():
    case = make_case(LSTMConfig(), seed=7)
    loss, grads = reference.grads(case)
    return case, loss, grads


def test_relative_tolerance_is_derived_from_the_dtype():
    assert relative_tolerance("float64") == pytest.approx(2 * np.finfo(np.float64).eps ** (2 / 3))
    assert relative_tolerance("float32") == pytest.approx(2 * np.finfo(np.float32).eps ** (2 / 3))
    assert 7e-11 < relative_tolerance("float64") < 1e-10
    assert 4e-5 < relative_tolerance("float32") < 5e-5


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_analytic_values_are_always_mismatches(case_and_grads, bad):
    case, loss, grads = case_and_grads
    tol = make_tolerance("float64", grads)
    wrong = grads["weight_hh_l0"].copy()
    wrong[3, 1] = bad
    result = compare_tensor("weight_hh_l0", wrong, grads["weight_hh_l0"], tol, case.config.hidden_size, "torch")
    assert result.status == "mismatch"
    assert result.worst.index == (3, 1)
    nan_loss = compare_gradients(case, float("nan"), grads, loss, grads, "torch", tolerance=tol)
    assert nan_loss.loss.status == "mismatch"


def test_identical_gradients_pass_and_one_planted_element_is_located(case_and_grads):
    case, loss, grads = case_and_grads
    tol = make_tolerance("float64", grads)
    assert compare_gradients(case, loss, grads, loss, grads, "torch", tolerance=tol).ok
    wrong = {k: v.copy() for k, v in grads.items()}
    row = 1 * case.config.hidden_size + 2  # forget gate, unit 2
    wrong["weight_ih_l1"][row, 4] *= 1 + 1e-6
    result = compare_gradients(case, loss, wrong, loss, grads, "torch", tolerance=tol)
    assert not result.ok
    (bad,) = result.mismatches
    assert bad.worst.describe() == "weight_ih_l1[forget gate, unit 2, h[4]]"
    with pytest.raises(GradientMismatchError, match=r"weight_ih_l1\[forget gate, unit 2, h\[4\]\]"):
        result.raise_if_mismatch()


def test_missing_tensors_are_not_provided_never_passed(case_and_grads):
    case, loss, grads = case_and_grads
    partial = {k: v for k, v in grads.items() if k not in ("x", "h0")}
    result = compare_gradients(case, loss, partial, loss, grads, "torch", tolerance=make_tolerance("float64", grads))
    statuses = {t.name: t.status for t in result.tensors}
    assert statuses["x"] == statuses["h0"] == "not provided"
    assert result.ok  # the provided ones agree; the missing ones are reported, not failed and not passed


def test_severity_is_the_worst_ratio_when_oracle_errors_differ_per_element(case_and_grads):
    # A large error where the oracle's own error estimate is large, a small one where it is tiny:
    # only the second is over its allowance, and severity must say by how much, not mix the two.
    case, _, grads = case_and_grads
    exact = grads["bias_hh_l0"]
    oracle_error = np.full(exact.shape, 1e-14)
    oracle_error[0] = 1e-3
    wrong = exact.copy()
    wrong[0] += 1e-3
    wrong[5] += 1e-9
    tol = make_tolerance("float64", grads)
    result = compare_tensor("bias_hh_l0", wrong, exact, tol, case.config.hidden_size, "fd", oracle_error)
    allowed_5 = tol.allowed("bias_hh_l0", float(np.max(np.abs(exact)))) + tol.oracle_error_factor * 1e-14
    assert result.status == "mismatch" and result.bad == 1 and result.worst.index == (5,)
    assert result.severity == pytest.approx(1e-9 / allowed_5, rel=1e-3), (result.severity, 1e-9 / allowed_5)
    assert result.max_abs_err == pytest.approx(1e-3)  # the largest error is still reported as such


def test_conditioning_covers_the_rounding_of_a_confident_softmax():
    """Found by the false-alarm study: a float32 softmax at p = 0.999 forms dy = p - 1 with a
    relative error of 6e-5, six times what perturbing the inputs alone allowed for head.weight
    (the rule held only through rtol). Perturbing dy by eps times its terms covers it."""
    config = LSTMConfig(
        input_size=1, hidden_size=2, num_layers=3, output_size=3, seq_len=3, batch_size=1, loss_at="last",
        loss="cross_entropy", reduction="sum", forget_bias=0.99, cell_output="identity", dtype="float32",
        final_state=False,
    )  # fmt: skip
    case = make_case(config, seed=175, weight_scale=10.0)
    _, g32 = reference.grads(case)
    _, g64 = reference.grads(case.astype("float64"))
    error = float(np.max(np.abs(g32["head.weight"] - g64["head.weight"])))
    assert error > 4e-5 * float(np.max(np.abs(g64["head.weight"])))  # the case still shows the rounding
    assert error <= judging_context(case).conditioning["head.weight"]


def test_gradient_terms_are_the_parts_dy_is_the_difference_of():
    """|a| + |a - b| with a = softmax(y), 2 y or sigmoid(y) and b the target term, written out
    here independently of how gradient_terms recovers a from dy."""
    from lstm_gradcheck.reference.activations import sigmoid  # noqa: PLC0415
    from lstm_gradcheck.reference.losses import gradient_terms, head_loss, scored_steps  # noqa: PLC0415

    config = LSTMConfig(input_size=2, hidden_size=2, output_size=3, seq_len=2, batch_size=2, reduction="mean")
    for loss in ("cross_entropy", "mse", "bce"):
        case = make_case(config.replace(loss=loss), seed=1)
        scored = scored_steps(case.config, case.targets, case.lengths)
        y = reference.forward(case)[0].y
        if loss == "cross_entropy":
            a = np.exp(y) / np.sum(np.exp(y), axis=-1, keepdims=True)
            b = np.eye(3)[case.targets.reshape(2, 2)]
        elif loss == "mse":
            a, b = 2 * y, 2 * case.targets
        else:
            a, b = sigmoid(y), case.targets
        expected = (np.abs(a) + np.abs(a - b)) * scored.weight[..., None] / scored.count
        dy = head_loss(y, case.config, scored)[1]
        np.testing.assert_allclose(gradient_terms(dy, case.config, scored), expected, rtol=1e-12, atol=1e-15)
    # A confident, right softmax: dy is ~1e-13, its terms ~1.
    one = config.replace(loss="cross_entropy", seq_len=1, batch_size=1)
    scored = scored_steps(one, np.array([0]), None)
    dy = head_loss(np.array([[[30.0, 0.0, 0.0]]]), one, scored)[1]
    assert abs(dy[0, 0, 0]) < 1e-12
    assert gradient_terms(dy, one, scored)[0, 0, 0] == pytest.approx(1.0, rel=1e-9)


def test_a_confident_cross_entropy_in_float32_is_judged_at_its_terms_roundoff():
    """Its loss (~2e-6) is far smaller than its logits (~4 and -9): float32's log-sum-exp,
    torch's included, rounds 1 + e^-13 to a multiple of eps and is off by ~3e-3 relative,
    which an allowance proportional to |L| alone called a mismatch of a correct reference."""
    config = LSTMConfig(
        input_size=1, hidden_size=6, num_layers=1, output_size=2, seq_len=12, batch_size=1, loss_at="last",
        loss="cross_entropy", forget_bias=1.0,
        reduction="sum", dtype="float32", final_state=False,
    )  # fmt: skip
    case = make_case(config, seed=2770463, weight_scale=10.0)
    context = judging_context(case)
    loss32, grads32 = reference.grads(case)
    exact_loss, exact_grads = context.exact
    eps = float(np.finfo(np.float32).eps)
    assert abs(loss32 - exact_loss) > 64 * eps * abs(exact_loss)  # the case needs the terms' floor
    tol = context.tolerance(exact_grads)
    assert tol.loss_magnitude > 1000 * abs(exact_loss)
    assert compare_gradients(case, loss32, grads32, exact_loss, exact_grads, "torch", tolerance=tol).loss.status == "ok"


def test_a_wrong_loss_is_still_a_mismatch(case_and_grads):
    case, loss, grads = case_and_grads
    tol = judging_context(case).tolerance(grads)
    assert tol.allowed_loss(loss) < 1e-9 * max(abs(loss), tol.loss_magnitude)
    result = compare_gradients(case, loss * (1 + 1e-6), grads, loss, grads, "torch", tolerance=tol)
    assert result.loss.status == "mismatch"
