"""Properties of the LSTM family's settings: peepholes, projection, bidirectional, coupled gates.

Each setting is forced on in its own space (the others still drawn sometimes, so they also
meet in combination) and the reference is checked against torch autograd in float64 and
float32, against the real torch.nn.LSTM where it has the setting (proj_size, bidirectional),
against every NumPy oracle, and by the identities that need no oracle. Example counts scale
with the Hypothesis profile (:data:`COUNTS`): a few in dev, a CI share that keeps the suite
short, a hunt under ``thorough``.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
from hypothesis import assume, given, note, settings

from lstm_gradcheck import reference
from lstm_gradcheck.oracles.judging import judging_context
from lstm_gradcheck.oracles.registry import run_oracle
from lstm_gradcheck.oracles.tolerance import relative_tolerance
from lstm_gradcheck.properties.checks import assert_agrees
from lstm_gradcheck.properties.counting import count_example
from lstm_gradcheck.properties.metamorphic import bidirectional_forward_half, peepholes_zero
from lstm_gradcheck.properties.strategies import DEFAULT_SPACE, Judged, active_space, cases, judged_cases
from lstm_gradcheck.reference.case import step_mask
from lstm_gradcheck.reference.family_layer import family_layer_backward, family_layer_forward
from lstm_gradcheck.reference.layer import layer_backward, layer_forward
from lstm_gradcheck.reference.lstm import direction_params
from tests.properties.test_finite_difference import _check_full

SPACE = active_space()
#: Each setting forced on; the other settings of the family still come sometimes.
FORCED = {
    "peepholes": {"peepholes": (True,)},
    "proj_size": {"require_projection": True},
    "bidirectional": {"bidirectional": (True,)},
    "coupled": {"coupled": (True,)},
}
SETTINGS = tuple(FORCED)
#: Examples per property and setting: (dev, ci, thorough).
COUNTS = {"torch": (4, 25, 400), "numpy": (2, 6, 150), "identity": (3, 15, 300)}
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "dev")


def examples(kind: str) -> settings:
    dev, ci, thorough = COUNTS[kind]
    return settings(max_examples={"ci": ci, "thorough": thorough}.get(PROFILE, dev))


def space(setting: str, **changes: object):
    return SPACE.restrict(**FORCED[setting], **changes)


def forced(setting: str, dtype: str = "float64", **changes: object):
    return judged_cases(space(setting, dtype=(dtype,), **changes))


def _assert_on(setting: str, case) -> None:
    assert getattr(case.config, setting), f"{setting} was not drawn: {case.describe()}"


# ----------------------------------------------------------------------------- torch


@pytest.mark.parametrize("setting", SETTINGS)
def test_reference_equals_torch_autograd_float64(setting):
    @examples("torch")
    @given(forced(setting))
    def prop(drawn: Judged):
        count_example(f"family {setting} = torch autograd (float64)")
        _assert_on(setting, drawn.case)
        check = assert_agrees(drawn.exact, drawn.context(), "torch")
        assert {t.name for t in check.tensors} == set(drawn.case.arrays())

    prop()


@pytest.mark.parametrize("setting", SETTINGS)
def test_float32_reference_within_derived_tolerance(setting):
    @examples("torch")
    @given(forced(setting, "float32"))
    def prop(drawn: Judged):
        count_example(f"family {setting} = torch autograd (float32)")
        _assert_on(setting, drawn.case)
        check = assert_agrees(reference.grads, drawn.context(), "torch")
        assert check.tolerance.rtol == relative_tolerance("float32")

    prop()


@pytest.mark.parametrize("setting", ["proj_size", "bidirectional"])
def test_reference_equals_torch_nn_lstm(setting):
    """torch.nn.LSTM has these two settings of its own (weight_hr_l{k}, the _reverse parameters)."""

    @examples("torch")
    @given(forced(setting, cell_output=("tanh",), peepholes=(False,), coupled=(False,)))
    def prop(drawn: Judged):
        count_example(f"family {setting} = torch.nn.LSTM (float64)")
        _assert_on(setting, drawn.case)
        assert_agrees(drawn.exact, drawn.context(), "torch-nn")

    prop()


@pytest.mark.parametrize("setting", ["peepholes", "coupled"])
def test_torch_nn_lstm_says_why_it_cannot_judge(setting):
    case = reference.make_case(reference.LSTMConfig(**{setting: True}))
    loss, grads = reference.grads(case)
    report = run_oracle("torch-nn", judging_context(case), loss, grads)
    assert report.check is None and {"peepholes": "peephole", "coupled": "coupled gates"}[setting] in report.reason


# ----------------------------------------------------------------------------- the NumPy oracles

SMALL = dict(max_hidden=4, max_input=4, max_batch=3, short_seq=8, long_seq=8, max_layers=2)


@pytest.mark.parametrize("oracle", ["fd", "richardson", "complex-step"])
@pytest.mark.parametrize("setting", SETTINGS)
def test_reference_agrees_with_the_full_numpy_oracles(setting, oracle):
    """The oracles' accuracy goals and error bounds (tests/properties/test_finite_difference.py)."""

    @examples("numpy")
    @given(cases(DEFAULT_SPACE.restrict(**FORCED[setting], dtype=("float64",), **SMALL)))
    def prop(case):
        count_example(f"family {setting} = {oracle}")
        # Richardson's goal (1e-9 of scale) does not hold on the family: a peephole case with
        # the identity cell output (c grows, w_co's curvature with it) is off by 1.3e-7 of its
        # scale. Its per-element bound, which the judge uses, holds and is checked.
        _check_full(case, oracle, goal=oracle != "richardson")

    prop()


@pytest.mark.parametrize("oracle", ["taylor", "directional"])
@pytest.mark.parametrize("setting", SETTINGS)
def test_reference_passes_the_judging_oracles(setting, oracle):
    @examples("numpy")
    @given(judged_cases(DEFAULT_SPACE.restrict(**FORCED[setting], dtype=("float64",), **SMALL)))
    def prop(drawn: Judged):
        count_example(f"family {setting} = {oracle}")
        report = run_oracle(oracle, drawn.context(), *drawn.exact)
        note(str(report.details))
        assert report.verdict == "pass", report.details.get("summary")

    prop()


# ----------------------------------------------------------------------------- identities


def _holds(check, case) -> None:
    assert check is not None, "the property does not apply to this case: the strategy is wrong"
    note(f"case: {case.describe()}")
    note(check.describe())
    check.raise_if_mismatch()


@examples("identity")
@given(cases(SPACE.restrict(peepholes=(True,), dtype=("float64",))))
def test_zero_peepholes_are_the_plain_lstm(case):
    """Every peephole weight zero: the loss and every other gradient of the case without peepholes."""
    count_example("family: peepholes zero = no peepholes")
    _holds(peepholes_zero(reference.grads, case), case)


@examples("identity")
@given(cases(SPACE.restrict(bidirectional=(True,), dtype=("float64",))))
def test_a_bidirectional_layers_forward_half_is_the_unidirectional_lstm(case):
    """Reverse outputs cut off: the forward direction's gradients are the unidirectional case's, the
    reverse direction's are zero."""
    count_example("family: bidirectional forward half = unidirectional")
    _holds(bidirectional_forward_half(reference.grads, case), case)


@examples("identity")
@given(cases(SPACE.restrict(dtype=("float64",), with_projection=False)))
def test_a_projection_of_width_h_by_the_identity_is_no_projection(case):
    """torch (and so the contract) forbids proj_size >= H, so the identity proj_size = H, W_hr = I is
    stated on one direction of the reference's family layer, where any (P, H) matrix may project:
    the same outputs and gradients, and dW_hr = sum_t dr_t m_t^T."""
    count_example("family: projection by I (P = H) = no projection")
    cfg = case.config
    rng = np.random.default_rng(case.seed)
    mask = step_mask(case.lengths, cfg.seq_len)
    p = direction_params(case, 0, 0)
    bare = family_layer_forward(case.x, p, case.h0[0], case.c0[0], cell_output=cfg.cell_output,
                                coupled=cfg.coupled, mask=mask)  # fmt: skip
    eye = dataclasses.replace(p, w_hr=np.eye(cfg.hidden_size))
    projected = family_layer_forward(case.x, eye, case.h0[0], case.c0[0], cell_output=cfg.cell_output,
                                     coupled=cfg.coupled, mask=mask)  # fmt: skip
    np.testing.assert_allclose(projected.h, bare.h, rtol=1e-14, atol=1e-15)
    dh_out = rng.standard_normal(bare.h[1:].shape)
    dh_n, dc_n = rng.standard_normal(bare.h[0].shape), rng.standard_normal(bare.c[0].shape)
    plain, proj = family_layer_backward(bare, dh_out, dh_n, dc_n), family_layer_backward(projected, dh_out, dh_n, dc_n)
    for name in ("du", "dw_ih", "dw_hh", "db", "dh0", "dc0", "dz"):
        np.testing.assert_allclose(getattr(proj, name), getattr(plain, name), rtol=1e-12, atol=1e-13, err_msg=name)
    expected = np.einsum("tbp,tbh->ph", plain.dr, bare.m)
    np.testing.assert_allclose(proj.dw_hr, expected, rtol=1e-12, atol=1e-13)


def _within_scale(got: np.ndarray, want: np.ndarray, rtol: float, atol: float) -> bool:
    """|got - want| <= rtol * max |want| + atol, against the array's scale as the tolerance rule
    measures: the two paths round apart, and an element far below its array's scale (0.014 beside
    18 after 118 steps) differs by more than rtol of itself while both sit within roundoff."""
    scale = float(np.max(np.abs(want), initial=0.0))
    return float(np.max(np.abs(got - want), initial=0.0)) <= rtol * scale + atol


@examples("identity")
@given(cases(SPACE.plain().restrict(dtype=("float64",))))
def test_the_family_layer_with_every_setting_off_is_the_plain_layer(case):
    """The reference's two layer implementations, the plain fast path and the family's, agree."""
    cfg = case.config
    # Where the case's own conditioning (roundoff amplified by the recurrence: weight_scale 10, the
    # identity cell) exceeds 1e-13 of a gradient's scale, two roundings of the same sums differ
    # by more than these bounds; the full model is judged there by the tolerance rule, above.
    context = judging_context(case)
    exact = context.exact_grads
    assume(all(context.conditioning[n] <= 1e-13 * float(np.max(np.abs(exact[n]), initial=0.0)) for n in exact))
    count_example("family layer with nothing on = plain layer")
    mask = step_mask(case.lengths, cfg.seq_len)
    p = direction_params(case, 0, 0)
    fast = layer_forward(case.x, p.w_ih, p.w_hh, p.bias, case.h0[0], case.c0[0], cell_output=cfg.cell_output, mask=mask)
    family = family_layer_forward(case.x, p, case.h0[0], case.c0[0], cell_output=cfg.cell_output, mask=mask)
    assert _within_scale(family.h, fast.h, 1e-13, 1e-14), "h"
    dh_out = np.random.default_rng(case.seed).standard_normal(fast.h[1:].shape)
    a, b = layer_backward(fast, dh_out), family_layer_backward(family, dh_out)
    for name in ("du", "dw_ih", "dw_hh", "db", "dh0", "dc0"):
        assert _within_scale(getattr(b, name), getattr(a, name), 1e-11, 1e-13), name
