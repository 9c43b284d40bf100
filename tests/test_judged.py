"""The exact answer a drawn case carries, and how the oracle properties use it."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings

from lstm_gradcheck import reference
from lstm_gradcheck.oracles.judging import judging_context
from lstm_gradcheck.properties.checks import agree
from lstm_gradcheck.properties.strategies import DEFAULT_SPACE, Judged, judged_cases
from lstm_gradcheck.reference.case import make_case
from lstm_gradcheck.reference.config import LSTMConfig
from lstm_gradcheck.reference.variants import get_variant


@settings(max_examples=20, database=None)
@given(judged_cases(DEFAULT_SPACE))
def test_the_drawn_exact_answer_is_the_float64_reference_on_the_case(drawn: Judged):
    # The conditioning probes start from it: an answer of another case or dtype would
    # move every allowance, and the float64 properties take it as the reference's own.
    loss, grads = reference.grads(drawn.case.astype("float64"))
    assert drawn.exact[0] == loss
    assert drawn.exact[1].keys() == grads.keys()
    for name, g in grads.items():
        np.testing.assert_array_equal(drawn.exact[1][name], g)


def test_a_wrong_implementation_is_run_and_caught_whatever_context_it_is_judged_in():
    case = make_case(LSTMConfig(seq_len=3, num_layers=1, forget_bias=0.0, final_state=False), seed=5)
    context = judging_context(case)
    wrong = get_variant("seed004_eq3_no_recurrent_dh").grads  # drops W_hh^T dz_{t+1}: wrong from T = 2
    check = agree(wrong, context, "torch")
    assert {t.name for t in check.mismatches} >= {"weight_hh_l0", "h0"}
    assert not agree(reference.grads, context, "torch").mismatches
    assert not agree(context.exact, context, "torch").mismatches  # the exact answer is the reference's
