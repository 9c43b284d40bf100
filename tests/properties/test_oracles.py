"""The reference agrees with both torch oracles on random cases of the whole contract space."""

from __future__ import annotations

from hypothesis import given

from lstm_gradcheck import reference
from lstm_gradcheck.oracles.tolerance import relative_tolerance
from lstm_gradcheck.properties.checks import assert_agrees
from lstm_gradcheck.properties.counting import count_example
from lstm_gradcheck.properties.strategies import Judged, active_space, judged_cases

SPACE = active_space()  # the thorough profile draws long sequences and saturated gates
FLOAT64 = SPACE.restrict(dtype=("float64",))


# Each property takes the case with its exact answer (the strategy's filter computes it with
# the reference): for float64 that is the reference's own answer, handed on, not computed twice.


@given(judged_cases(FLOAT64))
def test_reference_equals_torch_autograd_float64(drawn: Judged):
    """Loss and every gradient within 1e-10 of each tensor's scale (rtol 7.3e-11 + roundoff floor)."""
    count_example("reference = torch autograd (float64)")
    check = assert_agrees(drawn.exact, drawn.context(), "torch")
    assert check.tolerance.rtol <= 1e-10
    assert {t.name for t in check.tensors} == set(drawn.case.arrays())


@given(judged_cases(FLOAT64.restrict(cell_output=("tanh",), peepholes=(False,), coupled=(False,))))
def test_reference_equals_torch_nn_lstm(drawn: Judged):
    """Against the real torch.nn.LSTM (packed sequences, torch's loss modules, its own proj_size and
    bidirectional; it has no identity cell, peepholes or coupled gates)."""
    count_example("reference = torch.nn.LSTM (float64)")
    assert_agrees(drawn.exact, drawn.context(), "torch-nn")


@given(judged_cases(SPACE.restrict(dtype=("float32",))))
def test_float32_reference_within_derived_tolerance(drawn: Judged):
    """The reference computed in float32 against torch in float64 on the same (float32) inputs."""
    count_example("float32 reference within 2 eps^(2/3)")
    check = assert_agrees(reference.grads, drawn.context(), "torch")
    assert check.tolerance.rtol == relative_tolerance("float32")
