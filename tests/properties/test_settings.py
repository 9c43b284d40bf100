"""Properties of the case settings added for real code: zero initial states and the layer-only loss."""

from __future__ import annotations

import numpy as np
from hypothesis import given, note

from lstm_gradcheck import reference
from lstm_gradcheck.properties.checks import assert_agrees
from lstm_gradcheck.properties.counting import count_example
from lstm_gradcheck.properties.strategies import Judged, active_space, cases, judged_cases
from lstm_gradcheck.reference.case import make_case
from lstm_gradcheck.reference.config import UPSTREAM, ZERO

SPACE = active_space()
UPSTREAM_SPACE = SPACE.restrict(loss=(UPSTREAM,))


@given(cases(SPACE.restrict(h0=("random",), c0=("random",), dtype=("float64",))))
def test_zero_states_are_the_random_case_with_zero_arrays(case):
    """A zero-state case is the random-state case of the same seed with h0 = c0 = 0, and the
    reference's gradients on the two are the same numbers."""
    count_example("zero states = random case with zero arrays")
    zero = make_case(case.config.replace(h0=ZERO, c0=ZERO), case.seed, case.lengths, weight_scale=case.weight_scale)
    by_hand = case.with_arrays({"h0": np.zeros_like(case.h0), "c0": np.zeros_like(case.c0)})
    for name, array in zero.arrays().items():
        assert np.array_equal(array, by_hand.arrays()[name]), name
    assert np.array_equal(zero.targets, case.targets)
    loss, g = reference.grads(zero)
    loss_by_hand, g_by_hand = reference.grads(by_hand)
    assert loss == loss_by_hand
    for name, value in g.items():
        assert np.array_equal(value, g_by_hand[name]), name


@given(judged_cases(UPSTREAM_SPACE.restrict(dtype=("float64",))))
def test_layer_only_loss_equals_torch_autograd(drawn: Judged):
    """loss = sum(dh_top * h_top) over the scored steps (+ the final-state term): the reference
    against torch autograd on the same functional, with no head parameters at all."""
    count_example("upstream loss = torch autograd (float64)")
    check = assert_agrees(drawn.exact, drawn.context(), "torch")
    assert not drawn.case.config.has_head and "head.weight" not in drawn.case.params
    assert {t.name for t in check.tensors} == set(drawn.case.arrays())


@given(
    judged_cases(
        UPSTREAM_SPACE.restrict(dtype=("float64",), cell_output=("tanh",), peepholes=(False,), coupled=(False,))
    )
)
def test_layer_only_loss_equals_torch_nn_lstm(drawn: Judged):
    """The same against the real torch.nn.LSTM's outputs (packed sequences for lengths)."""
    count_example("upstream loss = torch.nn.LSTM (float64)")
    assert_agrees(drawn.exact, drawn.context(), "torch-nn")


@given(judged_cases(UPSTREAM_SPACE.restrict(dtype=("float32",))))
def test_layer_only_loss_in_float32_within_the_derived_tolerance(drawn: Judged):
    count_example("upstream loss in float32 (2 eps^(2/3))")
    note(f"dh_top scale {float(np.max(np.abs(drawn.case.dh_top))):.3g}")
    assert_agrees(reference.grads, drawn.context(), "torch")
